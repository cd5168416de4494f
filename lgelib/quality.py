"""Synthesis quality beyond the anatomy QC: the paper's Figure 3 comparisons, plausibility measures and the
memorisation audit, all on the canonical grid where real and synthetic volumes share voxels.

Real cases are split as in the run: the generator learned from the training cases; the test cases are real
volumes it never saw, and serve as the yardstick ("how close is a new real patient to the training set?").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
import torch
from scipy import ndimage
from torch import Tensor

from lgelib.data.prepare import PreparedDataset
from lgelib.figures import slice_levels
from lgelib.inr2vec import LatentModel, decode_latents
from lgelib.metrics import nearest_neighbour_distances, nearest_pairs, slice_similarity, volume_wall_thickness_mm
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
        sets["real test vs nearest real"] = nearest_pairs(
            slice_similarity(middle_slices(real, list(real.split.test)), training)
        )
    return sets


def similarity_summary(sets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Median PSNR and SSIM per set and region (non-finite values left out), the numbers behind Figure 3."""
    rows = []
    for name, table in sets.items():
        for region, group in table.groupby("region", sort=False):
            psnr = group.psnr_db[np.isfinite(group.psnr_db)]
            rows.append(
                {
                    "set": name,
                    "region": region,
                    "pairs": len(group),
                    "median PSNR (dB)": psnr.median(),
                    "median SSIM": group.ssim.median(),
                }
            )
    return pd.DataFrame(rows).set_index(["set", "region"])


def anatomy_table(
    data: PreparedDataset,
    case_ids: list[str],
    qc: pd.DataFrame | None = None,
    spacing: tuple[float, float, float] | None = None,
) -> pd.DataFrame:
    """Per case: `lgelib.anatomy.mask_qc`'s numbers (from ``qc`` when given, e.g. a synthesis QC table) plus
    the median wall thickness and the share of myocardial slices that are one closed ring. ``spacing`` (mm) is
    every case's voxel size (synthetic sets share one); None reads each real case's own."""
    table = (real_qc(data, case_ids) if qc is None else qc[qc.case_id.isin(case_ids)]).set_index("case_id")
    table = table.loc[case_ids].copy()
    thickness = []
    for case_id in case_ids:
        voxel = spacing or canonical_spacing(data, case_id)
        thickness.append(volume_wall_thickness_mm(data.case(case_id)[1], voxel[1:]))
    table["wall_thickness_mm"] = thickness
    table["closed_ring_pct"] = 100 * table.closed_ring_slices / table.myocardium_slices.clip(lower=1)
    return table.reset_index()


def latent_audit(
    synthetic_latents: np.ndarray,
    test_latents: np.ndarray,
    training_latents: np.ndarray,
    synthetic_ids: list[str],
    test_ids: list[str],
    training_ids: list[str],
) -> pd.DataFrame:
    """Nearest training latent of each synthetic and each real test latent, distances divided by the median
    distance between a training latent and its nearest other training latent (1 = as far as training cases are
    from each other)."""
    audit = memorisation_audit(synthetic_latents, test_latents, training_latents, synthetic_ids, test_ids, training_ids)
    scale = float(np.median(nearest_neighbour_distances(training_latents, training_latents, exclude_self=True)))
    return audit.assign(distance=audit.distance / scale, second_distance=audit.second_distance / scale)


def mask_audit(synthetic: PreparedDataset, real: PreparedDataset) -> pd.DataFrame:
    """Nearest training case of each synthetic and each real test case by myocardium overlap (distance
    1 - Dice of the myocardium masks on the canonical grid; 0 = an exact copy of a training mask)."""
    return _myocardium_audit(synthetic.myocardium, synthetic.case_ids, real)


def _myocardium_audit(masks: np.ndarray, ids: Sequence[str], real: PreparedDataset) -> pd.DataFrame:
    """`mask_overlap_audit` of myocardium ``masks`` against ``real``'s training masks, beside its test cases'."""
    train, test = list(real.split.train), list(real.split.test)
    return mask_overlap_audit(
        masks, real.myocardium[real.index(test)], real.myocardium[real.index(train)], list(ids), test, train
    )


def decoded_mask_audit(
    model: LatentModel,
    latents: Tensor,
    ids: Sequence[str],
    real: PreparedDataset,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """`mask_audit` of hearts decoded from ``latents`` (myocardium head at 0.5, on the canonical grid), one
    "synthetic" row per latent named by ``ids``, beside the real test cases' own masks.

    Decoding the latents of the real test cases gives the audit's control: real hearts the generator never saw,
    drawn by the same decoder, so that what decoding alone does to the distances (a smooth, average-looking ring is
    near many training hearts) is not read as memorisation."""
    if len(ids) != len(latents):
        raise ValueError(f"{len(latents)} latents but {len(ids)} ids: name each decoded heart")
    myocardium, _ = decode_latents(model, latents, real.myocardium.shape[1:], device).masks()
    return _myocardium_audit(myocardium, ids, real)


def image_audit(synthetic: PreparedDataset, real: PreparedDataset) -> pd.DataFrame:
    """Nearest training case of each synthetic and each real test case by image: the RMS intensity difference of
    the two volumes on the canonical grid (intensities in [0, 1]; 0 = an exact copy of a training image)."""
    train, test = list(real.split.train), list(real.split.test)
    audit = memorisation_audit(
        synthetic.images, real.images[real.index(test)], real.images[real.index(train)], synthetic.case_ids, test, train
    )
    scale = float(np.sqrt(np.prod(real.images.shape[1:])))  # Euclidean distance -> RMS difference
    return audit.assign(distance=audit.distance / scale, second_distance=audit.second_distance / scale)


def nearer_than_median_test(audit: pd.DataFrame, reference: pd.DataFrame | None = None) -> float:
    """Share of synthetic cases nearer to a training case than the median real test case is (the memorisation
    goal: at most one half, what new draws from the real distribution would give).

    ``reference``: take the median from this audit's "synthetic" rows instead (e.g. the real test cases passed
    through the same decoder, so that decoded volumes are judged against decoded volumes)."""
    if reference is None:
        test = audit[audit.kind == "real test"].distance
    else:
        test = reference[reference.kind == "synthetic"].distance
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
    return pd.DataFrame(
        {
            "case_id": case_ids,
            "high_frequency_rms": high_frequency_rms(data.images[index]),
            "edge_strength": edge_strength(data.images[index], data.myocardium[index]),
        }
    )


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


def _as_rows(array: np.ndarray, ids: Sequence, name: str) -> np.ndarray:
    """(n, ...) array as (n, features), checking there is one id per row."""
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"{name} must be shaped (n, features...), got shape {array.shape}")
    if len(ids) != array.shape[0]:
        raise ValueError(f"{name} has {array.shape[0]} rows but {len(ids)} ids")
    return array.reshape(array.shape[0], -1)


def _nearest_table(distances: dict[str, np.ndarray], ids: dict[str, Sequence], training_ids: Sequence) -> pd.DataFrame:
    """Long table of each query's nearest and second-nearest training row from query x training distances."""
    training_ids = list(training_ids)
    rows = []
    for kind, matrix in distances.items():
        for case_id, row in zip(ids[kind], matrix):
            order = np.argsort(row, kind="stable")
            second = float(row[order[1]]) if len(order) > 1 else float("nan")
            rows.append((case_id, kind, training_ids[order[0]], float(row[order[0]]), second))
    return pd.DataFrame(rows, columns=["case_id", "kind", "nearest_training", "distance", "second_distance"])


def memorisation_audit(
    synthetic: np.ndarray,
    test: np.ndarray,
    training: np.ndarray,
    synthetic_ids: Sequence,
    test_ids: Sequence,
    training_ids: Sequence,
) -> pd.DataFrame:
    """Euclidean distance from each synthetic and each real test row to its nearest training row.

    Synthetic samples much closer to the training set than real unseen test cases are suggest memorisation; a
    distance near 0 flags a copy. Rows are feature vectors (latents or flattened volumes).
    Columns: case_id, kind ("synthetic" or "real test"), nearest_training, distance, second_distance.
    """
    from scipy.spatial.distance import cdist

    syn = _as_rows(synthetic, synthetic_ids, "synthetic").astype(np.float64)
    tst = _as_rows(test, test_ids, "test").astype(np.float64)
    trn = _as_rows(training, training_ids, "training").astype(np.float64)
    if trn.shape[0] == 0:
        raise ValueError("training must have at least one row")
    if not syn.shape[1] == tst.shape[1] == trn.shape[1]:
        raise ValueError(
            f"feature sizes differ: synthetic {syn.shape[1]}, test {tst.shape[1]}, training {trn.shape[1]}"
        )
    distances = {"synthetic": cdist(syn, trn), "real test": cdist(tst, trn)}
    return _nearest_table(distances, {"synthetic": synthetic_ids, "real test": test_ids}, training_ids)


def mask_overlap_audit(
    synthetic_masks: np.ndarray,
    test_masks: np.ndarray,
    training_masks: np.ndarray,
    synthetic_ids: Sequence,
    test_ids: Sequence,
    training_ids: Sequence,
) -> pd.DataFrame:
    """``memorisation_audit`` for boolean mask volumes with distance 1 - Dice, so a copied training mask scores ~0
    (two empty masks count as identical, distance 0). Same columns as ``memorisation_audit``."""
    from scipy.spatial.distance import cdist

    syn = _as_rows(synthetic_masks, synthetic_ids, "synthetic_masks").astype(bool)
    tst = _as_rows(test_masks, test_ids, "test_masks").astype(bool)
    trn = _as_rows(training_masks, training_ids, "training_masks").astype(bool)
    if trn.shape[0] == 0:
        raise ValueError("training_masks must have at least one volume")
    if not syn.shape[1] == tst.shape[1] == trn.shape[1]:
        raise ValueError(f"mask sizes differ: synthetic {syn.shape[1]}, test {tst.shape[1]}, training {trn.shape[1]}")

    def one_minus_dice(queries: np.ndarray) -> np.ndarray:
        # scipy's "dice" dissimilarity is exactly 1 - Dice; it is 0/0 (NaN) only when both masks are empty.
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(cdist(queries, trn, metric="dice"), nan=0.0)

    distances = {"synthetic": one_minus_dice(syn), "real test": one_minus_dice(tst)}
    return _nearest_table(distances, {"synthetic": synthetic_ids, "real test": test_ids}, training_ids)


def _overlaid_histograms(axis, samples: dict[str, np.ndarray], bins: int = 30) -> None:
    """Step histograms (density) on shared bins, one per named sample, each median a dashed vertical line."""
    samples = {name: values[np.isfinite(values)] for name, values in samples.items()}
    everything = np.concatenate([values for values in samples.values()] + [np.zeros(0)])
    if everything.size == 0:
        return
    edges = np.histogram_bin_edges(everything, bins=bins)
    for j, (name, values) in enumerate(samples.items()):
        if values.size == 0:
            continue
        median = float(np.median(values))
        axis.hist(
            values,
            bins=edges,
            density=True,
            histtype="step",
            color=f"C{j}",
            lw=1.4,
            label=f"{name} (n={values.size}, median {median:.3g})",
        )
        axis.axvline(median, color=f"C{j}", ls="--", lw=1)
    axis.set_ylabel("density")
    axis.legend(fontsize=7)


def plot_distributions(tables: dict[str, pd.DataFrame], measures: dict[str, str]) -> Figure:
    """One panel per measure (column name -> axis label with units): the distribution of that column in each named
    table (e.g. real training cases vs synthetic ones) as overlaid density histograms, medians dashed."""
    rows = (len(measures) + 1) // 2  # two panels a row: legible at the book's column width
    figure, axes = plt.subplots(rows, 2, figsize=(7.2, 3.0 * rows), squeeze=False)
    for axis, (column, label) in zip(axes.ravel(), measures.items()):
        _overlaid_histograms(
            axis, {name: table[column].to_numpy(dtype=float) for name, table in tables.items() if column in table}
        )
        axis.set_xlabel(label)
    for axis in axes.ravel()[len(measures) :]:
        axis.set_visible(False)
    figure.tight_layout()
    return figure


def plot_memorisation(audit: pd.DataFrame, label: str = "distance to nearest training case") -> Figure:
    """Memorisation check: distance of each synthetic case, and of each held-out real case, to its nearest training
    case. Synthetic cases no closer than real test ones are not copies of the training set."""
    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    _overlaid_histograms(
        axis,
        {kind: audit.loc[audit["kind"] == kind, "distance"].to_numpy(dtype=float) for kind in pd.unique(audit["kind"])},
    )
    axis.set_xlabel(label)
    figure.tight_layout()
    return figure
