"""The paper's evaluation (Sec. 3.3): CNR(tissue1, tissue2) = |mean(tissue1) - mean(tissue2)| / std(tissue2) for
(scar, healthy myocardium) and (scar, blood pool); SSIM and PSNR against the gamma targets on crops around the ROI
(its bounding box, at least 16 x 16 pixels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lgelib.scar_enhancement.slices import ScarSlices

PSNR_CAP_DB = 100.0
"""PSNR of identical crops is infinite; it is reported as this value."""


def cnr(image: np.ndarray, tissue1: np.ndarray, tissue2: np.ndarray) -> float:
    """|mean(tissue1) - mean(tissue2)| / std(tissue2); NaN when either tissue is absent or tissue2 is uniform."""
    if not tissue1.any() or not tissue2.any():
        return float("nan")
    spread = float(image[tissue2].std())
    if spread == 0:
        return float("nan")
    return float(abs(image[tissue1].mean() - image[tissue2].mean()) / spread)


def roi_box(roi: np.ndarray, minimum: int = 16) -> tuple[slice, slice]:
    """The bounding box of a (H, W) ROI, grown symmetrically to at least ``minimum`` pixels and kept in the image."""
    box = []
    for axis in (0, 1):
        occupied = np.flatnonzero(roi.any(axis=1 - axis))
        low, high = (occupied[0], occupied[-1] + 1) if occupied.size else (0, roi.shape[axis])
        grow = max(0, minimum - (high - low))
        low, high = low - grow // 2, high + grow - grow // 2
        shift = max(0, -low) - max(0, high - roi.shape[axis])
        box.append(slice(max(0, low + shift), min(roi.shape[axis], high + shift)))
    return box[0], box[1]


def crop_similarity(output: np.ndarray, target: np.ndarray, roi: np.ndarray) -> tuple[float, float]:
    """(SSIM, PSNR dB) of ``output`` against ``target`` on the crop around ``roi`` (data range 1)."""
    box = roi_box(roi)
    a, b = output[box].astype(np.float64), target[box].astype(np.float64)
    window = min(7, min(a.shape) - (1 - min(a.shape) % 2))
    ssim = float(structural_similarity(b, a, data_range=1.0, win_size=window))
    if np.array_equal(a, b):
        return ssim, PSNR_CAP_DB
    psnr = min(PSNR_CAP_DB, float(peak_signal_noise_ratio(b, a, data_range=1.0)))
    return ssim, psnr


def enhancement_metrics(
    slices: ScarSlices, images: np.ndarray, targets: np.ndarray | None, roi: np.ndarray
) -> pd.DataFrame:
    """Per slice: CNR(scar, myo) and CNR(scar, blood) of ``images`` (NaN without scar), and, where ``targets`` are
    given, SSIM and PSNR against them on the ROI crop."""
    rows = []
    for i in range(len(slices)):
        row = {
            "case_id": slices.case_id[i],
            "slice_index": int(slices.slice_index[i]),
            "cnr_scar_myo": cnr(images[i], slices.scar[i], slices.healthy[i]),
            "cnr_scar_blood": cnr(images[i], slices.scar[i], slices.blood[i]),
        }
        if targets is not None:
            row["ssim"], row["psnr_db"] = crop_similarity(images[i], targets[i], roi[i])
        rows.append(row)
    return pd.DataFrame(rows)


def summary_row(metrics: pd.DataFrame) -> dict[str, str]:
    """mean +- sd of each metric, as the paper's Table 1 prints it (SSIM in %)."""
    out = {}
    for column, label, scale in (
        ("ssim", "SSIM %", 100),
        ("psnr_db", "PSNR dB", 1),
        ("cnr_scar_myo", "CNR(scar, myo)", 1),
        ("cnr_scar_blood", "CNR(scar, blood)", 1),
    ):
        if column in metrics:
            values = scale * metrics[column].dropna()
            out[label] = f"{values.mean():.2f} ± {values.std():.2f}" if len(values) else "-"
        else:
            out[label] = "-"
    return out
