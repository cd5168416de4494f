"""Making one case: draw the subject, fit its scar size, render labels and image, pad, and set the affine."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from lgelib.data.phantom.config import PhantomCase, PhantomSettings, phantom_case_id
from lgelib.data.phantom.render import render_image, render_labels
from lgelib.data.phantom.subject import Subject, sample_subject

# Scar size range seen in real cohorts: at least 3.5 mL and 4 % of the myocardium, at most 45 % of it.
_MIN_SCAR_ML = 3.5
_MIN_SCAR_BURDEN = 0.04
_MAX_SCAR_BURDEN = 0.45


def generate_case(config: PhantomSettings, index: int) -> PhantomCase:
    """Make cohort member ``index``; deterministic in (config, index), independent of ``config.n_cases``."""
    if index < 0:
        raise ValueError("index must be >= 0")
    rng = np.random.default_rng([config.seed, index])
    subject = sample_subject(rng, config)
    labels = render_labels(subject)
    subject = _fit_scar_size(subject, labels)
    if subject.scar is not None:
        labels = render_labels(subject)
    image = render_image(subject, config, rng)
    _apply_padding(image, labels, config, rng)
    scar = subject.scar
    return PhantomCase(
        case_id=phantom_case_id(index),
        image=image,
        labels=labels,
        affine=_affine(subject),
        scar_pattern="none" if scar is None else scar.pattern,
        territory=None if scar is None else scar.territory,
    )


def _fit_scar_size(subject: Subject, labels: np.ndarray) -> Subject:
    """Grow or shrink the scar so its volume and burden stay inside the range seen in real cohorts."""
    if subject.scar is None:
        return subject
    voxel_ml = float(np.prod(subject.spacing)) / 1000.0
    myo_ml = float(np.isin(labels, (2, 3, 4)).sum()) * voxel_ml
    scar_ml = float(np.isin(labels, (3, 4)).sum()) * voxel_ml
    target_low = max(_MIN_SCAR_ML, _MIN_SCAR_BURDEN * myo_ml)
    target_high = _MAX_SCAR_BURDEN * myo_ml
    factor = 1.0
    if scar_ml < target_low:
        factor = math.sqrt(target_low / max(scar_ml, 0.3)) * 1.15
    elif scar_ml > target_high:
        factor = math.sqrt(target_high / scar_ml) * 0.95
    if factor == 1.0:
        return subject
    return replace(subject, scar=subject.scar.scaled(min(factor, 2.5)))


def _apply_padding(image: np.ndarray, labels: np.ndarray, config: PhantomSettings, rng: np.random.Generator) -> None:
    """Zero a band along the phase-encoding direction in some subjects (reduced phase field of view)."""
    if rng.random() >= config.padding_probability:
        return
    axis = int(rng.integers(0, 2))
    size = image.shape[axis]
    heart = np.nonzero(labels.any(axis=(1 - axis, 2)))[0]
    first, last = (int(heart.min()), int(heart.max())) if heart.size else (size // 2, size // 2)
    total = rng.uniform(0.04, 0.25) * size
    split = rng.uniform(0.0, 1.0) if rng.random() < 0.4 else float(rng.integers(0, 2))
    low = int(min(total * split, max(first - 8, 0)))
    high = int(min(total * (1 - split), max(size - 1 - last - 8, 0)))
    index = [slice(None)] * 3
    if low > 0:
        index[axis] = slice(0, low)
        image[tuple(index)] = 0.0
    if high > 0:
        index[axis] = slice(size - high, size)
        image[tuple(index)] = 0.0


def _affine(s: Subject) -> np.ndarray:
    """Voxel -> world (mm): spacing on the diagonal, world origin at the volume centre."""
    affine = np.diag([s.spacing[0], s.spacing[1], s.spacing[2], 1.0])
    shape = (s.matrix[0], s.matrix[1], s.n_slices)
    affine[:3, 3] = [-(n - 1) / 2.0 * d for n, d in zip(shape, s.spacing)]
    return affine
