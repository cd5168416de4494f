"""Per-case statistics of a label map in the EMIDEC convention, for calibrating and checking cohorts.

Labels: 0 background, 1 LV cavity, 2 healthy myocardium, 3 infarct (scar), 4 microvascular obstruction.
Myocardium = {2, 3, 4}; fibrosis = {3, 4} (the paper's masks).
"""

from __future__ import annotations

import numpy as np

from lgelib.anatomy import tissue_volumes
from lgelib.data.intensity import normalize_intensity, padding_mask
from lgelib.data.nifti import slice_axis

CAVITY, HEALTHY, SCAR, MVO = 1, 2, 3, 4
MYOCARDIUM_LABELS = (HEALTHY, SCAR, MVO)
FIBROSIS_LABELS = (SCAR, MVO)

STATISTIC_NAMES = (
    "cavity_ml",
    "myocardium_ml",
    "scar_ml",
    "scar_burden",
    "myocardium_slices",
    "intensity_cavity",
    "intensity_healthy",
    "intensity_scar",
    "intensity_background",
    "padding_fraction",
)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def label_map_statistics(
    image: np.ndarray, labels: np.ndarray, spacing_mm: tuple[float, float, float]
) -> dict[str, float]:
    """Volumes (mL), scar burden (scar / myocardium volume) and median normalised intensities per tissue.

    ``image`` and ``labels`` share one voxel grid; ``spacing_mm`` is that grid's voxel size. Intensities are
    medians after :func:`normalize_intensity`, so they are comparable between scans of different scaling.
    Intensities of a tissue that is absent are NaN.
    """
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    myocardium = np.isin(labels, MYOCARDIUM_LABELS)
    scar = np.isin(labels, FIBROSIS_LABELS)
    image = np.asarray(image, dtype=np.float32)
    normalised = normalize_intensity(image)
    padding = padding_mask(image)
    background = (labels == 0) & ~padding
    volumes = tissue_volumes(myocardium, scar, voxel_ml)
    other_axes = tuple(a for a in range(3) if a != slice_axis(spacing_mm))
    return {
        "cavity_ml": float((labels == CAVITY).sum() * voxel_ml),
        "myocardium_ml": float(volumes["myocardium_ml"]),
        "scar_ml": float(volumes["fibrosis_ml"]),
        "scar_burden": float(volumes["scar_burden_pct"] / 100),  # a fraction, as the calibration targets have it
        "myocardium_slices": float(myocardium.any(axis=other_axes).sum()),
        "intensity_cavity": _median(normalised[labels == CAVITY]),
        "intensity_healthy": _median(normalised[labels == HEALTHY]),
        "intensity_scar": _median(normalised[labels == SCAR]),
        "intensity_background": _median(normalised[background]),
        "padding_fraction": float(padding.mean()),
    }
