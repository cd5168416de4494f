"""Synthesis quality beyond the anatomy QC: the paper's Figure 3 comparisons, plausibility measures and the
memorisation audit, all on the canonical grid where real and synthetic volumes share voxels.

Real cases are split as in the run: the generator learned from the training cases; the test cases are real
volumes it never saw, and serve as the yardstick ("how close is a new real patient to the training set?").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from lgelib.data.prepare import PreparedDataset
from lgelib.figures import slice_levels
from lgelib.metrics import (mask_overlap_audit, memorisation_audit, nearest_neighbour_distances, nearest_pairs,
                            slice_similarity, volume_wall_thickness_mm)
from lgelib.synthesis import canonical_spacing, real_qc

Stack = tuple[np.ndarray, np.ndarray, np.ndarray]


def middle_slices(data: PreparedDataset, case_ids: list[str]) -> Stack:
    """(images, myocardium, fibrosis) of each case's mid-ventricular slice, stacked (the paper's Figure 3 input)."""
    index = data.index(case_ids)
    mid = slice_levels(data.images.shape[1])["mid"]
    return data.images[index, mid], data.myocardium[index, mid], data.fibrosis[index, mid]


def similarity_sets(synthetic: PreparedDataset, real: PreparedDataset) -> dict[str, pd.DataFrame]:
    """Figure 3's sets of middle-slice pairs: each synthetic slice against its nearest real training slice, every
    synthetic-training pair, and (the yardstick) each real test slice against its nearest training slice."""
    training = middle_slices(real, list(real.split.train))
    every_pair = slice_similarity(middle_slices(synthetic, synthetic.case_ids), training)
    sets = {"synthetic vs nearest real": nearest_pairs(every_pair), "all synthetic-real pairs": every_pair}
    if real.split.test:
        sets["real test vs nearest real"] = nearest_pairs(slice_similarity(middle_slices(real, list(real.split.test)),
                                                                           training))
    return sets


def similarity_summary(sets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Median PSNR and SSIM per set and region (non-finite values left out), the numbers behind Figure 3."""
    rows = []
    for name, table in sets.items():
        for region, group in table.groupby("region", sort=False):
            psnr = group.psnr_db[np.isfinite(group.psnr_db)]
            rows.append({"set": name, "region": region, "pairs": len(group), "median PSNR (dB)": psnr.median(),
                         "median SSIM": group.ssim.median()})
    return pd.DataFrame(rows).set_index(["set", "region"])


def anatomy_table(data: PreparedDataset, case_ids: list[str], qc: pd.DataFrame | None = None,
                  spacing: tuple[float, float, float] | None = None) -> pd.DataFrame:
    """Per case: `lgelib.anatomy.mask_qc`'s numbers (from ``qc`` when given, e.g. a synthesis QC table) plus
    the median wall thickness and the share of myocardial slices that are one closed ring. ``spacing`` (mm) is
    every case's voxel size (synthetic sets share one); None reads each real case's own."""
    table = (real_qc(data, case_ids) if qc is None else qc[qc.case_id.isin(case_ids)]).set_index("case_id")
    table = table.loc[case_ids].copy()
    thickness = []
    for case_id in case_ids:
        voxel = spacing or canonical_spacing(data, case_id)
        thickness.append(volume_wall_thickness_mm(data.myocardium[data.index([case_id])[0]], voxel[1:]))
    table["wall_thickness_mm"] = thickness
    table["closed_ring_pct"] = 100 * table.closed_ring_slices / table.myocardium_slices.clip(lower=1)
    return table.reset_index()


def latent_audit(synthetic_latents: np.ndarray, test_latents: np.ndarray, training_latents: np.ndarray,
                 synthetic_ids: list[str], test_ids: list[str], training_ids: list[str]) -> pd.DataFrame:
    """Nearest training latent of each synthetic and each real test latent, distances divided by the median
    distance between a training latent and its nearest other training latent (1 = as far as training cases are
    from each other)."""
    audit = memorisation_audit(synthetic_latents, test_latents, training_latents, synthetic_ids, test_ids, training_ids)
    scale = float(np.median(nearest_neighbour_distances(training_latents, training_latents, exclude_self=True)))
    return audit.assign(distance=audit.distance / scale, second_distance=audit.second_distance / scale)


def mask_audit(synthetic: PreparedDataset, real: PreparedDataset) -> pd.DataFrame:
    """Nearest training case of each synthetic and each real test case by myocardium overlap (distance
    1 - Dice of the myocardium masks on the canonical grid; 0 = an exact copy of a training mask)."""
    train, test = list(real.split.train), list(real.split.test)
    return mask_overlap_audit(synthetic.myocardium, real.myocardium[real.index(test)], real.myocardium[real.index(train)],
                              synthetic.case_ids, test, train)


def nearer_than_median_test(audit: pd.DataFrame) -> float:
    """Share of synthetic cases nearer to a training case than the median real test case is (the memorisation
    goal: at most one half, what new draws from the real distribution would give)."""
    test = audit[audit.kind == "real test"].distance
    synthetic = audit[audit.kind == "synthetic"].distance
    if test.empty or synthetic.empty:
        return float("nan")
    return float((synthetic < test.median()).mean())


def high_frequency_rms(images: np.ndarray, sigma_px: float = 1.5) -> np.ndarray:
    """Per volume (N, Z, R, C): RMS of the image minus its in-plane Gaussian blur (``sigma_px`` pixels): the fine
    texture and noise a blurred decoder loses."""
    images = np.asarray(images, dtype=np.float64)
    blurred = ndimage.gaussian_filter(images, sigma=(0, 0, sigma_px, sigma_px))
    return np.sqrt(((images - blurred) ** 2).mean(axis=(1, 2, 3)))


def edge_strength(images: np.ndarray, myocardium: np.ndarray) -> np.ndarray:
    """Per volume: mean in-plane gradient magnitude (intensity per pixel) on the myocardium's boundary pixels (the
    mask minus its in-plane erosion: endo- and epicardial borders); NaN without myocardium."""
    images = np.asarray(images, dtype=np.float64)
    rows, cols = np.gradient(images, axis=2), np.gradient(images, axis=3)
    magnitude = np.hypot(rows, cols)
    structure = np.zeros((1, 1, 3, 3), dtype=bool)
    structure[0, 0] = ndimage.generate_binary_structure(2, 1)
    masks = np.asarray(myocardium, bool)
    border = masks & ~ndimage.binary_erosion(masks, structure=structure)
    counts = border.sum(axis=(1, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, (magnitude * border).sum(axis=(1, 2, 3)) / counts, np.nan)


def texture_table(data: PreparedDataset, case_ids: list[str]) -> pd.DataFrame:
    """Per case: `high_frequency_rms` and `edge_strength` on the canonical grid (real and synthetic alike)."""
    index = data.index(case_ids)
    return pd.DataFrame({"case_id": case_ids, "high_frequency_rms": high_frequency_rms(data.images[index]),
                         "edge_strength": edge_strength(data.images[index], data.myocardium[index])})


def audit_summary(audit: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of the nearest-training distance per kind, and how many synthetic cases are nearer to
    a training case than the nearest real test case is to any."""
    summary = audit.groupby("kind").distance.describe()[["count", "min", "25%", "50%", "75%"]]
    closest_test = audit[audit.kind == "real test"].distance.min()
    synthetic = audit[audit.kind == "synthetic"]
    summary["nearer than every real test case"] = np.nan
    if len(synthetic) and np.isfinite(closest_test):
        summary.loc["synthetic", "nearer than every real test case"] = int((synthetic.distance < closest_test).sum())
    return summary
