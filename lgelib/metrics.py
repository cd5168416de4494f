"""Image and mask agreement measures used across the stages."""

from __future__ import annotations

import numpy as np


def psnr(prediction: np.ndarray, reference: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all voxels; inf for identical inputs."""
    mse = float(np.mean((np.asarray(prediction, np.float64) - np.asarray(reference, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice overlap of two boolean masks; NaN when both are empty (no structure to agree on)."""
    prediction = np.asarray(prediction, bool)
    reference = np.asarray(reference, bool)
    total = int(prediction.sum()) + int(reference.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(prediction, reference).sum()) / total
