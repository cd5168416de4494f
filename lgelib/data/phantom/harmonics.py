"""Random Fourier harmonics: the irregular borders of scars, the endocardium, the body wall and the lungs."""

from __future__ import annotations

import numpy as np


def random_harmonics(rng: np.random.Generator, count: int, amplitude: float) -> tuple[tuple[float, float], ...]:
    """Random Fourier harmonics with amplitudes falling off with order (smooth, irregular borders)."""
    return tuple(
        (float(amplitude * rng.uniform(0.3, 1.0) / (1 + 0.5 * k)), float(rng.uniform(0, 2 * np.pi)))
        for k in range(count)
    )
