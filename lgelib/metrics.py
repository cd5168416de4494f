"""Image and mask agreement measures used across the stages."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd


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


# --- Regional Dice (Table 1) ------------------------------------------------------------------------------------------

REGIONS = ("Volume", "Bottom 25%", "Middle 50%", "Top 25%")
STRUCTURES = ("myocardium", "fibrosis")
SIMILARITY_REGIONS = ("whole slice", "myocardium", "fibrosis")


def slice_regions(n_slices: int) -> dict[str, np.ndarray]:
    """Split the n myocardial slices (ordered base to apex) into the paper's basal, middle and apical regions.

    The basal k and apical k slices form "Bottom 25%" and "Top 25%", the rest "Middle 50%", with
    k = floor(n/4 + 1/2) (25% rounded half up). Returns positions 0..n-1 into the list of myocardial slices.

    ====  ======  ======  ===
    n     Bottom  Middle  Top
    ====  ======  ======  ===
    0     0       0       0
    1     0       1       0
    2     1       0       1
    6     2       2       2
    7     2       3       2
    8     2       4       2
    9     2       5       2
    10    3       4       3
    11    3       5       3
    12    3       6       3
    13    3       7       3
    ====  ======  ======  ===
    """
    if isinstance(n_slices, bool) or int(n_slices) != n_slices or n_slices < 0:
        raise ValueError(f"n_slices must be a non-negative integer, got {n_slices!r}")
    n = int(n_slices)
    k = (n + 2) // 4  # == floor(n / 4 + 1 / 2) in exact integer arithmetic
    positions = np.arange(n)
    return {
        "Bottom 25%": positions[:k],
        "Middle 50%": positions[k : n - k],
        "Top 25%": positions[n - k :],
    }


def _check_same_shape(named: dict[str, np.ndarray], ndim: int | None = None) -> None:
    """Raise ValueError naming the arrays when their shapes (or dimensionality) disagree."""
    shapes = {name: np.shape(array) for name, array in named.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("shapes differ: " + ", ".join(f"{name} {shape}" for name, shape in shapes.items()))
    if ndim is not None:
        for name, shape in shapes.items():
            if len(shape) != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions, got shape {shape}")


def regional_dice(
    reference_myocardium: np.ndarray,
    reference_fibrosis: np.ndarray,
    predicted_myocardium: np.ndarray,
    predicted_fibrosis: np.ndarray,
    empty_score: float = float("nan"),
) -> pd.DataFrame:
    """Dice of myocardium and fibrosis for one case, over the volume and the basal/middle/apical regions.

    Volumes are (slices, rows, cols) with slice 0 the most basal. "Myocardium" is the whole myocardium including
    scar (myocardium | fibrosis). The regions split the slices that contain reference myocardium (see
    ``slice_regions``); slices outside that range only count in "Volume". Each region's Dice pools all voxels of its
    slices (one Dice per region, not a mean of per-slice Dice). Where reference and prediction are both empty the
    row is flagged ``empty`` and scored ``empty_score`` (NaN by default, i.e. left out of means); a region with no
    slices is NaN and empty with ``n_slices`` 0.
    Columns: region, structure, dice, empty, n_slices, reference_voxels, predicted_voxels (the structure's voxels
    in the region).
    """
    arrays = {
        "reference_myocardium": np.asarray(reference_myocardium),
        "reference_fibrosis": np.asarray(reference_fibrosis),
        "predicted_myocardium": np.asarray(predicted_myocardium),
        "predicted_fibrosis": np.asarray(predicted_fibrosis),
    }
    _check_same_shape(arrays, ndim=3)
    ref_fib = arrays["reference_fibrosis"].astype(bool)
    pred_fib = arrays["predicted_fibrosis"].astype(bool)
    reference = {"myocardium": arrays["reference_myocardium"].astype(bool) | ref_fib, "fibrosis": ref_fib}
    predicted = {"myocardium": arrays["predicted_myocardium"].astype(bool) | pred_fib, "fibrosis": pred_fib}

    myocardial_slices = np.flatnonzero(reference["myocardium"].any(axis=(1, 2)))
    slices = {"Volume": np.arange(reference["myocardium"].shape[0])}
    slices.update({name: myocardial_slices[pos] for name, pos in slice_regions(len(myocardial_slices)).items()})

    rows = []
    for region in REGIONS:
        index = slices[region]
        for structure in STRUCTURES:
            if len(index) == 0:
                rows.append((region, structure, float("nan"), True, 0, 0, 0))
                continue
            ref, pred = reference[structure][index], predicted[structure][index]
            empty = not ref.any() and not pred.any()
            score = float(empty_score) if empty else dice(pred, ref)
            rows.append((region, structure, score, empty, len(index), int(ref.sum()), int(pred.sum())))
    return pd.DataFrame(rows, columns=["region", "structure", "dice", "empty", "n_slices", "reference_voxels",
                                       "predicted_voxels"])


def _require_columns(table: pd.DataFrame, columns: Sequence[str], name: str = "per_case") -> None:
    """Raise ValueError listing the columns ``table`` lacks."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(table.columns)}")


def arm_labels(per_case: pd.DataFrame) -> pd.Series:
    """Each row's arm name: the ``arm`` column, or ``N<n_synthetic>`` for tables written before arms existed."""
    if "arm" in per_case.columns:
        return per_case["arm"].astype(str)
    return "N" + per_case["n_synthetic"].astype(int).astype(str)


def arm_order(arms) -> list[str]:
    """Arm names in the book's order: synthetic before duplicates, uniform before balanced, then by N
    (N0, N100, N200, N100-balanced, N200-balanced, D200); unknown names last, as given."""
    def key(name: str) -> tuple:
        match = re.match(r"^([ND])(\d+)(-balanced)?$", name)
        if match is None:
            return (2, 0, 0)
        return (int(match[1] == "D"), int(bool(match[3])), int(match[2]))

    return sorted(dict.fromkeys(str(a) for a in arms), key=key)


def table1(per_case: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of Dice in the paper's Table 1 layout: rows REGIONS, columns (structure: fibrosis then
    myocardium, arms in `arm_order`, stat: mean then std). All scored rows of a group (cases and split
    seeds) are pooled: with a ``scored`` column only those (fibrosis where the region has reference scar), else the
    non-NaN scores."""
    _require_columns(per_case, ["region", "structure", "dice"])
    arms = arm_labels(per_case)
    rows = per_case.assign(arm=arms)
    if "scored" in rows.columns:
        rows = rows[rows["scored"].astype(bool)]
    stats = rows.groupby(["region", "structure", "arm"])["dice"].agg(["mean", "std"])
    columns = pd.MultiIndex.from_product(
        [("fibrosis", "myocardium"), arm_order(arms), ("mean", "std")], names=["structure", "arm", "stat"]
    )
    table = pd.DataFrame(np.nan, index=pd.Index(REGIONS, name="region"), columns=columns)
    for (region, structure, arm), row in stats.iterrows():
        if region in REGIONS and structure in ("fibrosis", "myocardium"):
            table.loc[region, (structure, arm, "mean")] = row["mean"]
            table.loc[region, (structure, arm, "std")] = row["std"]
    return table


# --- Masked image similarity (Figure 3) -------------------------------------------------------------------------------


def _mask_or_all(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The boolean mask, or all-true when None; ValueError when its shape differs from the images'."""
    if mask is None:
        return np.ones(shape, bool)
    mask = np.asarray(mask, bool)
    if mask.shape != shape:
        raise ValueError(f"shapes differ: mask {mask.shape}, images {shape}")
    return mask


def _psnr_from_squared_error(squared_error: np.ndarray, mask: np.ndarray, data_range: float) -> float:
    """PSNR in dB from the mean of a squared-error map over a mask; NaN for an empty mask, inf for zero error."""
    if not mask.any():
        return float("nan")
    mse = float(squared_error[mask].mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def _ssim_map(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """skimage's full SSIM map (Gaussian window, sigma 1.5, population covariance, as in Wang et al. 2004)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(
        a, b, full=True, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    return full


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """PSNR (dB) from the MSE over the voxels in ``mask`` (all when None); NaN for an empty mask, inf if identical."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _check_same_shape({"a": a, "b": b})
    return _psnr_from_squared_error((a - b) ** 2, _mask_or_all(mask, a.shape), data_range)


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Mean of the SSIM map over ``mask`` (the whole, uncropped map when None); NaN for an empty mask.

    The map is computed on the whole image, so each voxel's value still uses its Gaussian neighbourhood."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _check_same_shape({"a": a, "b": b})
    mask = _mask_or_all(mask, a.shape)
    if not mask.any():
        return float("nan")
    return float(_ssim_map(a, b, data_range)[mask].mean())


def _slice_stack(stack: tuple[np.ndarray, np.ndarray, np.ndarray], name: str) -> tuple[np.ndarray, ...]:
    """Check an (images, myocardium, fibrosis) triple of (n, rows, cols) stacks; return float images, bool masks."""
    if len(stack) != 3:
        raise ValueError(f"{name} must be (images, myocardium, fibrosis), got {len(stack)} arrays")
    images, myocardium, fibrosis = (np.asarray(array) for array in stack)
    _check_same_shape(
        {f"{name} images": images, f"{name} myocardium": myocardium, f"{name} fibrosis": fibrosis}, ndim=3
    )
    return images.astype(np.float64), myocardium.astype(bool), fibrosis.astype(bool)


def slice_similarity(
    synthetic: tuple[np.ndarray, np.ndarray, np.ndarray], real: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> pd.DataFrame:
    """PSNR and SSIM of every (synthetic slice i, real slice j) pair, whole slice and within the structures.

    Each argument is (images, myocardium, fibrosis), stacks of 2D slices shaped (n, rows, cols) on the same grid,
    intensities in [0, 1]. For a pair, "whole slice" uses every pixel; "myocardium" uses the UNION of the two
    slices' myocardium masks (myocardium including scar) and "fibrosis" the union of their fibrosis masks, so
    neither slice's structure is ignored. Within a region, psnr_db = 10 log10(1 / MSE over the region's pixels) and
    ssim = the mean over the region's pixels of the SSIM map computed on the whole slices (see ``masked_ssim``).
    A region whose union mask is empty (e.g. fibrosis absent from both slices) has NaN scores.
    Long format, columns: synthetic, real (slice indices), region, psnr_db, ssim.
    """
    syn_images, syn_myo, syn_fib = _slice_stack(synthetic, "synthetic")
    real_images, real_myo, real_fib = _slice_stack(real, "real")
    if syn_images.shape[1:] != real_images.shape[1:]:
        raise ValueError(f"slice grids differ: synthetic {syn_images.shape[1:]}, real {real_images.shape[1:]}")
    syn_myo, real_myo = syn_myo | syn_fib, real_myo | real_fib
    whole = np.ones(syn_images.shape[1:], bool)
    rows = []
    for i in range(syn_images.shape[0]):
        for j in range(real_images.shape[0]):
            squared_error = (syn_images[i] - real_images[j]) ** 2
            ssim_map = _ssim_map(syn_images[i], real_images[j], 1.0)
            masks = (whole, syn_myo[i] | real_myo[j], syn_fib[i] | real_fib[j])
            for region, mask in zip(SIMILARITY_REGIONS, masks):
                ssim = float(ssim_map[mask].mean()) if mask.any() else float("nan")
                rows.append((i, j, region, _psnr_from_squared_error(squared_error, mask, 1.0), ssim))
    return pd.DataFrame(rows, columns=["synthetic", "real", "region", "psnr_db", "ssim"])


def nearest_pairs(similarity: pd.DataFrame) -> pd.DataFrame:
    """For each synthetic slice, the real slice with the highest whole-slice PSNR (first on ties), with all three
    regions' rows of that pair; the nearest-real-neighbour view of Figure 3."""
    _require_columns(similarity, ["synthetic", "real", "region", "psnr_db", "ssim"], name="similarity")
    whole = similarity[similarity["region"] == "whole slice"].sort_values(["synthetic", "real"], kind="stable")
    if whole.empty:
        return similarity.iloc[:0].reset_index(drop=True)
    best = whole.loc[whole.groupby("synthetic")["psnr_db"].idxmax(), ["synthetic", "real"]]
    chosen = similarity.merge(best, on=["synthetic", "real"], how="inner")
    order = {region: rank for rank, region in enumerate(SIMILARITY_REGIONS)}
    chosen = chosen.assign(_order=chosen["region"].map(order)).sort_values(["synthetic", "_order"], kind="stable")
    return chosen.drop(columns="_order").reset_index(drop=True)


# --- Wall thickness ---------------------------------------------------------------------------------------------------


def wall_thickness_mm(myocardium: np.ndarray, spacing: tuple[float, float]) -> float:
    """Median myocardial wall thickness (mm) of one 2D slice: twice the distance to the background along the
    wall's skeleton (its medial line); NaN for an empty slice."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    mask = np.asarray(myocardium, bool)
    if mask.ndim != 2:
        raise ValueError(f"myocardium must be a 2D slice, got shape {mask.shape}")
    if len(spacing) != 2 or min(spacing) <= 0:
        raise ValueError(f"spacing must be two positive in-plane sizes (mm), got {spacing}")
    if not mask.any():
        return float("nan")
    # Pad so that a wall touching the image edge still has background beyond it.
    padded = np.pad(mask, 1)
    skeleton = skeletonize(padded)
    distance = distance_transform_edt(padded, sampling=tuple(float(s) for s in spacing))
    return float(np.median(2.0 * distance[skeleton]))


def volume_wall_thickness_mm(myocardium3d: np.ndarray, spacing_inplane: tuple[float, float]) -> float:
    """Median over the slices that contain myocardium of each slice's wall thickness (mm); NaN if none do."""
    volume = np.asarray(myocardium3d, bool)
    if volume.ndim != 3:
        raise ValueError(f"myocardium3d must be (slices, rows, cols), got shape {volume.shape}")
    values = [wall_thickness_mm(s, spacing_inplane) for s in volume if s.any()]
    return float(np.median(values)) if values else float("nan")


# --- Memorisation audit -----------------------------------------------------------------------------------------------


def _as_rows(array: np.ndarray, ids: Sequence, name: str) -> np.ndarray:
    """(n, ...) array as (n, features), checking there is one id per row."""
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"{name} must be shaped (n, features...), got shape {array.shape}")
    if len(ids) != array.shape[0]:
        raise ValueError(f"{name} has {array.shape[0]} rows but {len(ids)} ids")
    return array.reshape(array.shape[0], -1)


def _nearest_table(
    distances: dict[str, np.ndarray], ids: dict[str, Sequence], training_ids: Sequence
) -> pd.DataFrame:
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
        raise ValueError(
            f"mask sizes differ: synthetic {syn.shape[1]}, test {tst.shape[1]}, training {trn.shape[1]}"
        )

    def one_minus_dice(queries: np.ndarray) -> np.ndarray:
        # scipy's "dice" dissimilarity is exactly 1 - Dice; it is 0/0 (NaN) only when both masks are empty.
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(cdist(queries, trn, metric="dice"), nan=0.0)

    distances = {"synthetic": one_minus_dice(syn), "real test": one_minus_dice(tst)}
    return _nearest_table(distances, {"synthetic": synthetic_ids, "real test": test_ids}, training_ids)
