"""The region of interest of localized diffusion: the heart, m = blood pool + myocardium + scar (paper Sec. 2.2),
from reference labels or from a segmentation, grown by ``dilation`` pixels where asked (the paper's stated remedy
for subendocardial scar a segmentation misses)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lgelib.scar_enhancement.slices import ScarSlices


def dilate(roi: np.ndarray, dilation: int) -> np.ndarray:
    """Each (H, W) slice of ``roi`` (N, H, W) grown by ``dilation`` pixels (a disc); unchanged for 0."""
    if dilation < 0:
        raise ValueError(f"dilation must be >= 0, got {dilation}")
    if dilation == 0:
        return roi.astype(bool)
    disc = np.hypot(*np.mgrid[-dilation : dilation + 1, -dilation : dilation + 1]) <= dilation
    return np.stack([ndimage.binary_dilation(r, disc) for r in roi])


def reference_roi(slices: ScarSlices, dilation: int = 0) -> np.ndarray:
    """The heart ROI from the reference labels."""
    return dilate(slices.blood | slices.myocardium | slices.scar, dilation)


def roi_from_segmentation(myocardium: np.ndarray, dilation: int = 0) -> np.ndarray:
    """The heart ROI from a predicted myocardium (scar included) alone, as nnU-Net here predicts no blood pool:
    the myocardium with the cavity it encloses filled in, slice by slice."""
    filled = np.stack([ndimage.binary_fill_holes(m) for m in myocardium.astype(bool)])
    return dilate(filled, dilation)
