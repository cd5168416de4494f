"""Robust intensity normalisation for LGE volumes.

Real scans carry zero padding (reduced phase field of view) and, when phase-sensitive, arbitrary offsets
and negative values; min-max scaling is then dominated by a few voxels. We scale between two percentiles of
the non-padding voxels instead and clip to [0, 1].
"""

from __future__ import annotations

import numpy as np

PADDING_FRACTION = 0.01
"""The minimum value counts as padding when at least this fraction of voxels holds it exactly."""


def padding_mask(image: np.ndarray) -> np.ndarray:
    """Voxels that are constant padding: exactly the image minimum, when that value fills >= 1% of voxels."""
    low = image.min()
    pad = image == low
    if pad.mean() < PADDING_FRACTION:
        return np.zeros(image.shape, dtype=bool)
    return pad


def normalize_intensity(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """Map the given percentiles of the non-padding voxels to 0 and 1, clip, and set padding to 0.

    Returns float32 in [0, 1]. A constant image maps to all zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    pad = padding_mask(image)
    body = image[~pad] if (~pad).any() else image.ravel()
    low, high = np.percentile(body, percentiles)
    if not high > low:
        return np.zeros(image.shape, dtype=np.float32)
    out = np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)
    out[pad] = 0.0
    return out
