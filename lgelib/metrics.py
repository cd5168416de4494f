"""Image and mask agreement measures used across the stages."""

from __future__ import annotations

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

SIMILARITY_REGIONS = ("whole slice", "myocardium", "fibrosis")


def check_same_shape(named: dict[str, np.ndarray], ndim: int | None = None) -> None:
    """Raise ValueError naming the arrays when their shapes (or dimensionality) disagree."""
    shapes = {name: np.shape(array) for name, array in named.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("shapes differ: " + ", ".join(f"{name} {shape}" for name, shape in shapes.items()))
    if ndim is not None:
        for name, shape in shapes.items():
            if len(shape) != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions, got shape {shape}")


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
    check_same_shape({"a": a, "b": b})
    return _psnr_from_squared_error((a - b) ** 2, _mask_or_all(mask, a.shape), data_range)


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Mean of the SSIM map over ``mask`` (the whole, uncropped map when None); NaN for an empty mask.

    The map is computed on the whole image, so each voxel's value still uses its Gaussian neighbourhood."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    check_same_shape({"a": a, "b": b})
    mask = _mask_or_all(mask, a.shape)
    if not mask.any():
        return float("nan")
    return float(_ssim_map(a, b, data_range)[mask].mean())


def _slice_stack(stack: tuple[np.ndarray, np.ndarray, np.ndarray], name: str) -> tuple[np.ndarray, ...]:
    """Check an (images, myocardium, fibrosis) triple of (n, rows, cols) stacks; return float images, bool masks."""
    if len(stack) != 3:
        raise ValueError(f"{name} must be (images, myocardium, fibrosis), got {len(stack)} arrays")
    images, myocardium, fibrosis = (np.asarray(array) for array in stack)
    check_same_shape({f"{name} images": images, f"{name} myocardium": myocardium, f"{name} fibrosis": fibrosis}, ndim=3)
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
    require_columns(similarity, ["synthetic", "real", "region", "psnr_db", "ssim"], name="similarity")
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


def require_columns(table: pd.DataFrame, columns: Sequence[str], name: str = "per_case") -> None:
    """Raise ValueError listing the columns ``table`` lacks."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(table.columns)}")
