"""Anatomical checks of myocardium and fibrosis masks, for synthetic and real volumes alike.

A short-axis myocardium slice is expected to be a closed ring around the blood pool (except, in real scans,
near the apex and in the outflow tract), the fibrosis to lie inside the myocardium, and the scar burden (scar
volume over myocardial volume) to be a few to a few tens of percent.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RING_MARKS = {1: "O", 0: "x", -1: "."}
"""How `ring_string` writes each slice: O closed ring, x myocardium that is not a closed ring, . no myocardium."""


def closed_rings(myocardium: np.ndarray) -> np.ndarray:
    """Per slice of a (slices, rows, cols) mask: 1 if its myocardium is one connected piece enclosing a cavity,
    0 if there is myocardium but not such a ring, -1 if the slice has no myocardium."""
    result = np.full(len(myocardium), -1, dtype=np.int8)
    eight = np.ones((3, 3), dtype=bool)
    for index, plane in enumerate(np.asarray(myocardium, bool)):
        if not plane.any():
            continue
        pieces = ndimage.label(plane, structure=eight)[1]
        cavity = ndimage.binary_fill_holes(plane) & ~plane
        result[index] = int(pieces == 1 and cavity.any())
    return result


def ring_string(rings: np.ndarray) -> str:
    """Closed-ring flags, base to apex, as a short string such as ``OOOOOOx.``."""
    return "".join(RING_MARKS[int(r)] for r in rings)


def tissue_volumes(myocardium: np.ndarray, fibrosis: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """The one definition of a case's tissue volumes: ``myocardium_ml`` (the whole wall, scar included),
    ``fibrosis_ml`` and ``scar_burden_pct`` (fibrosis over myocardium volume, in %; NaN without myocardium)."""
    myo_voxels, fib_voxels = int(np.count_nonzero(myocardium)), int(np.count_nonzero(fibrosis))
    return {
        "myocardium_ml": myo_voxels * voxel_ml,
        "fibrosis_ml": fib_voxels * voxel_ml,
        "scar_burden_pct": 100.0 * fib_voxels / myo_voxels if myo_voxels else float("nan"),
    }


def mask_qc(
    myocardium: np.ndarray, fibrosis: np.ndarray, voxel_ml: float, fibrosis_raw: np.ndarray | None = None
) -> dict[str, float | int | str]:
    """Quality-control numbers of one case's masks.

    Args:
        myocardium, fibrosis: boolean (slices, rows, cols); ``fibrosis`` is kept inside the myocardium.
        voxel_ml: volume of one voxel in millilitres.
        fibrosis_raw: the fibrosis before it was restricted to the myocardium (default ``fibrosis``), to count
            how much of it fell outside.

    Returns:
        myocardium_ml, fibrosis_ml, scar_burden_pct (fibrosis over myocardium volume), fibrosis_outside_pct (share
        of the raw fibrosis outside the myocardium), myocardium_slices, closed_ring_slices and ``rings``
        (`ring_string`).
    """
    myocardium = np.asarray(myocardium, bool)
    fibrosis = np.asarray(fibrosis, bool) & myocardium
    raw = np.asarray(fibrosis if fibrosis_raw is None else fibrosis_raw, bool)
    rings = closed_rings(myocardium)
    raw_voxels = int(raw.sum())
    return {
        **tissue_volumes(myocardium, fibrosis, voxel_ml),
        "fibrosis_outside_pct": 100.0 * (raw & ~myocardium).sum() / raw_voxels if raw_voxels else 0.0,
        "myocardium_slices": int((rings >= 0).sum()),
        "closed_ring_slices": int((rings == 1).sum()),
        "rings": ring_string(rings),
    }
