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


def nearest_neighbour_distances(queries: np.ndarray, references: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row (with ``exclude_self`` the queries are
    the references, and each row's distance to itself is skipped)."""
    from scipy.spatial.distance import cdist

    distances = cdist(np.asarray(queries, np.float64), np.asarray(references, np.float64))
    if exclude_self:
        np.fill_diagonal(distances, np.inf)
    return distances.min(axis=1)
