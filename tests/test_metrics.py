"""Regional Dice, bootstrap statistics, masked image similarity, wall thickness and memorisation audits, checked on
hand-built inputs whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from skimage.metrics import structural_similarity

from lgelib.metrics import (
    masked_psnr,
    masked_ssim,
    nearest_pairs,
    psnr,
    slice_similarity,
    volume_wall_thickness_mm,
    wall_thickness_mm,
)
from lgelib.quality import mask_overlap_audit, memorisation_audit
from lgelib.table1 import REGIONS, regional_dice, slice_regions, table1

# --- slice_regions ----------------------------------------------------------------------------------------------------

EXPECTED_SIZES = {
    0: (0, 0, 0),
    1: (0, 1, 0),
    2: (1, 0, 1),
    3: (1, 1, 1),
    4: (1, 2, 1),
    5: (1, 3, 1),
    6: (2, 2, 2),
    7: (2, 3, 2),
    8: (2, 4, 2),
    9: (2, 5, 2),
    10: (3, 4, 3),
    11: (3, 5, 3),
    12: (3, 6, 3),
    13: (3, 7, 3),
}


@pytest.mark.parametrize("n", range(14))
def test_slice_regions_sizes_partition_and_order(n: int) -> None:
    regions = slice_regions(n)
    assert list(regions) == list(REGIONS[1:])
    sizes = tuple(len(regions[name]) for name in REGIONS[1:])
    assert sizes == EXPECTED_SIZES[n]
    assert sizes[0] == sizes[2] == math.floor(n / 4 + 0.5)
    joined = np.concatenate([regions[name] for name in REGIONS[1:]])
    # Disjoint, covering 0..n-1, and in order base (0) -> middle -> apex (n-1).
    np.testing.assert_array_equal(joined, np.arange(n))
    if sizes[0]:
        assert regions["Bottom 25%"][0] == 0 and regions["Top 25%"][-1] == n - 1


@pytest.mark.parametrize("bad", [-1, 2.5])
def test_slice_regions_rejects_bad_counts(bad: float) -> None:
    with pytest.raises(ValueError, match="n_slices"):
        slice_regions(bad)  # type: ignore[arg-type]


# --- regional_dice ----------------------------------------------------------------------------------------------------


def _row(table: pd.DataFrame, region: str, structure: str) -> pd.Series:
    match = table[(table["region"] == region) & (table["structure"] == structure)]
    assert len(match) == 1
    return match.iloc[0]


def _block(volume: np.ndarray, s: int, rows: slice = slice(0, 2), cols: slice = slice(0, 5)) -> None:
    volume[s, rows, cols] = True  # 10 voxels with the defaults


def test_regional_dice_hand_built_nine_slices() -> None:
    # 9 slices; reference myocardium in slices 1..8 -> 8 myocardial slices -> Bottom {1,2}, Middle {3..6}, Top {7,8}.
    shape = (9, 8, 8)
    ref_myo, ref_fib = np.zeros(shape, bool), np.zeros(shape, bool)
    pred_myo, pred_fib = np.zeros(shape, bool), np.zeros(shape, bool)
    for s in range(1, 9):
        _block(ref_myo, s)
    for s in (7, 8):  # fibrosis only apically, 2 voxels per slice, inside the myocardium
        ref_fib[s, 0, 0:2] = True
    # Prediction: a false-positive slice 0 (outside the reference range -> Volume only); exact basal and apical
    # myocardium; middle slices 5 and 6 moved off the reference; fibrosis where the reference has none (slice 4)
    # and half of the apical fibrosis (slice 7 only).
    _block(pred_myo, 0)
    for s in (1, 2, 3, 4, 7, 8):
        _block(pred_myo, s)
    for s in (5, 6):
        _block(pred_myo, s, rows=slice(2, 4))
    pred_fib[4, 0, 0:4] = True
    pred_fib[7, 0, 0:2] = True

    table = regional_dice(ref_myo, ref_fib, pred_myo, pred_fib)
    assert list(table.columns) == [
        "region",
        "structure",
        "dice",
        "empty",
        "n_slices",
        "reference_voxels",
        "predicted_voxels",
    ]
    assert _row(table, "Volume", "fibrosis")["reference_voxels"] == 4
    assert _row(table, "Volume", "fibrosis")["predicted_voxels"] == 6
    assert _row(table, "Middle 50%", "fibrosis")["reference_voxels"] == 0
    assert list(zip(table["region"], table["structure"])) == [
        (r, s) for r in REGIONS for s in ("myocardium", "fibrosis")
    ]
    # Volume myocardium: reference 80, prediction 90, overlap 60.
    assert _row(table, "Volume", "myocardium")["dice"] == pytest.approx(2 * 60 / (80 + 90))
    # Volume fibrosis: reference 4, prediction 6, overlap 2.
    assert _row(table, "Volume", "fibrosis")["dice"] == pytest.approx(2 * 2 / (4 + 6))
    assert _row(table, "Bottom 25%", "myocardium")["dice"] == pytest.approx(1.0)
    basal_fib = _row(table, "Bottom 25%", "fibrosis")
    assert np.isnan(basal_fib["dice"]) and bool(basal_fib["empty"])
    # Middle: 40 reference voxels, 40 predicted, 20 shared -> 0.5 (pooled, not a mean of per-slice Dice 1,1,0,0).
    assert _row(table, "Middle 50%", "myocardium")["dice"] == pytest.approx(0.5)
    middle_fib = _row(table, "Middle 50%", "fibrosis")
    assert middle_fib["dice"] == 0.0 and not bool(middle_fib["empty"])
    assert _row(table, "Top 25%", "myocardium")["dice"] == pytest.approx(1.0)
    assert _row(table, "Top 25%", "fibrosis")["dice"] == pytest.approx(2 * 2 / (4 + 2))
    assert dict(zip(table["region"], table["n_slices"])) == {
        "Volume": 9,
        "Bottom 25%": 2,
        "Middle 50%": 4,
        "Top 25%": 2,
    }
    assert table["empty"].sum() == 1


def test_regional_dice_odd_count_thirteen_slices() -> None:
    # 13 myocardial slices -> Bottom 0..2, Middle 3..9, Top 10..12.
    shape = (13, 6, 6)
    ref = np.zeros(shape, bool)
    for s in range(13):
        _block(ref, s)
    pred = ref.copy()
    pred[3] = False  # the first middle slice is missed entirely
    none = np.zeros(shape, bool)
    table = regional_dice(ref, none, pred, none)
    assert _row(table, "Bottom 25%", "myocardium")["dice"] == pytest.approx(1.0)
    assert _row(table, "Middle 50%", "myocardium")["dice"] == pytest.approx(2 * 60 / (70 + 60))
    assert _row(table, "Top 25%", "myocardium")["dice"] == pytest.approx(1.0)
    assert _row(table, "Volume", "myocardium")["dice"] == pytest.approx(2 * 120 / (130 + 120))
    assert dict(zip(table["region"], table["n_slices"])) == {
        "Volume": 13,
        "Bottom 25%": 3,
        "Middle 50%": 7,
        "Top 25%": 3,
    }
    # Moving the error to slice 2 (last basal slice) moves it to the basal region.
    pred = ref.copy()
    pred[2] = False
    table = regional_dice(ref, none, pred, none)
    assert _row(table, "Bottom 25%", "myocardium")["dice"] == pytest.approx(2 * 20 / (30 + 20))
    assert _row(table, "Middle 50%", "myocardium")["dice"] == pytest.approx(1.0)


def test_regional_dice_empty_regions_and_empty_score() -> None:
    shape = (2, 6, 6)  # two myocardial slices -> Bottom {0}, Middle {}, Top {1}
    ref_myo = np.zeros(shape, bool)
    _block(ref_myo, 0)
    _block(ref_myo, 1)
    none = np.zeros(shape, bool)
    table = regional_dice(ref_myo, none, ref_myo, none, empty_score=1.0)
    middle = table[table["region"] == "Middle 50%"]
    assert middle["n_slices"].tolist() == [0, 0]
    assert middle["dice"].isna().all() and middle["empty"].all()  # no slices: NaN whatever empty_score says
    basal_fib = _row(table, "Bottom 25%", "fibrosis")
    assert basal_fib["dice"] == 1.0 and bool(basal_fib["empty"])  # both empty -> empty_score


def test_regional_dice_without_reference_myocardium_only_volume_counts() -> None:
    shape = (3, 6, 6)
    none = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    _block(pred, 1)
    table = regional_dice(none, none, pred, none)
    assert _row(table, "Volume", "myocardium")["dice"] == 0.0
    assert bool(_row(table, "Volume", "fibrosis")["empty"])
    regional = table[table["region"] != "Volume"]
    assert (regional["n_slices"] == 0).all() and regional["dice"].isna().all() and regional["empty"].all()


def test_regional_dice_myocardium_includes_scar() -> None:
    # Labels-style masks: the reference myocardium mask excludes its scar; the prediction's includes it.
    shape = (1, 6, 6)
    ref_myo, ref_fib = np.zeros(shape, bool), np.zeros(shape, bool)
    ref_myo[0, 0, :] = True
    ref_fib[0, 1, :] = True
    pred_myo = ref_myo | ref_fib
    table = regional_dice(ref_myo, ref_fib, pred_myo, ref_fib)
    assert _row(table, "Volume", "myocardium")["dice"] == pytest.approx(1.0)


def test_regional_dice_rejects_bad_shapes() -> None:
    a, b = np.zeros((3, 4, 4), bool), np.zeros((3, 4, 5), bool)
    with pytest.raises(ValueError, match="shapes differ"):
        regional_dice(a, a, a, b)
    with pytest.raises(ValueError, match="3 dimensions"):
        regional_dice(a[0], a[0], a[0], a[0])


# --- table1 ----------------------------------------------------------------------------------------


def _per_case() -> pd.DataFrame:
    rows = []
    # n_synthetic 100 listed first on purpose: the table must sort it after 0.
    for n_synthetic, myo, fib in ((100, [0.8, 0.9], [0.5, np.nan]), (0, [0.6, 0.7], [0.2, 0.4])):
        for case, (m, f) in enumerate(zip(myo, fib)):
            for region in REGIONS:
                rows.append((n_synthetic, f"c{case}", region, "myocardium", m, False))
                rows.append((n_synthetic, f"c{case}", region, "fibrosis", f, bool(np.isnan(f))))
    return pd.DataFrame(rows, columns=["n_synthetic", "case_id", "region", "structure", "dice", "empty"])


def test_table1_layout_and_values() -> None:
    table = table1(_per_case())
    assert list(table.index) == list(REGIONS)
    assert list(table.columns) == [
        (structure, n, stat)
        for structure in ("fibrosis", "myocardium")
        for n in ("N0", "N100")
        for stat in ("mean", "std")
    ]
    assert table.columns.names == ["structure", "arm", "stat"]
    for region in REGIONS:
        assert table.loc[region, ("myocardium", "N0", "mean")] == pytest.approx(0.65)
        assert table.loc[region, ("myocardium", "N100", "mean")] == pytest.approx(0.85)
        assert table.loc[region, ("myocardium", "N100", "std")] == pytest.approx(np.std([0.8, 0.9], ddof=1))
        assert table.loc[region, ("fibrosis", "N0", "mean")] == pytest.approx(0.3)
        assert table.loc[region, ("fibrosis", "N100", "mean")] == pytest.approx(0.5)  # the NaN is skipped
        assert np.isnan(table.loc[region, ("fibrosis", "N100", "std")])


def test_table1_scores_only_rows_marked_scored_and_orders_arms() -> None:
    rows = [
        ("N200-balanced", "c1", 0.9, True),
        ("D200", "c1", 0.1, True),
        ("N0", "c1", 0.4, True),
        ("N0", "c2", 0.0, False),
        ("N200", "c1", 0.6, True),
        ("N200", "c2", 0.0, False),
    ]
    per_case = pd.DataFrame(
        [
            {"arm": a, "case_id": c, "region": "Volume", "structure": "fibrosis", "dice": d, "scored": sc}
            for a, c, d, sc in rows
        ]
    )
    table = table1(per_case)
    assert list(dict.fromkeys(table.columns.get_level_values("arm"))) == ["N0", "N200", "N200-balanced", "D200"]
    # the false-positive 0 on the scar-free case c2 is not averaged in: the same case set for every arm
    assert table.loc["Volume", ("fibrosis", "N0", "mean")] == pytest.approx(0.4)
    assert table.loc["Volume", ("fibrosis", "N200", "mean")] == pytest.approx(0.6)


# --- masked PSNR / SSIM and slice similarity --------------------------------------------------------------------------


def _texture(seed: int, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape)


def test_masked_psnr_known_values() -> None:
    a = np.zeros((16, 16))
    b = np.full((16, 16), 0.5)
    mask = np.zeros((16, 16), bool)
    mask[2:4, 2:4] = True
    b[mask] = 0.1  # MSE inside the mask is 0.01 -> 20 dB, whatever happens outside
    assert masked_psnr(a, b, mask) == pytest.approx(20.0)
    assert masked_psnr(a, b) == pytest.approx(psnr(a, b))
    assert masked_psnr(a, a) == float("inf")
    assert masked_psnr(a, b, mask, data_range=2.0) == pytest.approx(20.0 + 20 * np.log10(2.0))
    assert np.isnan(masked_psnr(a, b, np.zeros((16, 16), bool)))
    with pytest.raises(ValueError, match="shapes differ"):
        masked_psnr(a, b[:8])
    with pytest.raises(ValueError, match="shapes differ"):
        masked_psnr(a, b, mask[:8])


def test_masked_ssim_identical_masked_and_empty() -> None:
    a = _texture(0)
    assert masked_ssim(a, a) == pytest.approx(1.0)
    b = a.copy()
    b[24:, 24:] = 1.0 - b[24:, 24:]  # change one corner only
    _, full = structural_similarity(
        a, b, full=True, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert masked_ssim(a, b) == pytest.approx(full.mean())  # whole (uncropped) map when no mask
    assert masked_ssim(a, b) < 0.9
    far = np.zeros_like(a, bool)
    far[:8, :8] = True  # beyond the Gaussian window's reach (radius 5) from the changed corner
    assert masked_ssim(a, b, far) == pytest.approx(1.0)
    near = np.zeros_like(a, bool)
    near[24:, 24:] = True
    assert masked_ssim(a, b, near) == pytest.approx(full[24:, 24:].mean())
    assert np.isnan(masked_ssim(a, b, np.zeros_like(a, bool)))


def _stack(images: list[np.ndarray], myo: list[np.ndarray], fib: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    return np.stack(images), np.stack(myo), np.stack(fib)


def test_slice_similarity_union_masks_and_shapes() -> None:
    shape = (32, 32)
    empty = np.zeros(shape, bool)
    syn_myo, real_myo = empty.copy(), empty.copy()
    syn_myo[4:8, 4:9] = True  # 20 pixels
    real_myo[20:24, 20:25] = True  # 20 pixels, disjoint from the synthetic slice's
    real_fib = empty.copy()
    real_fib[21, 21:23] = True
    syn_image = np.zeros(shape)
    real_image = np.zeros(shape)
    real_image[real_myo] = 0.5  # the images differ only inside the real slice's myocardium

    synthetic = _stack([syn_image, syn_image], [syn_myo, syn_myo], [empty, empty])
    real = _stack([real_image, np.zeros(shape), real_image], [real_myo, real_myo, empty], [real_fib, empty, empty])
    table = slice_similarity(synthetic, real)
    assert list(table.columns) == ["synthetic", "real", "region", "psnr_db", "ssim"]
    assert len(table) == 2 * 3 * 3
    assert set(zip(table["synthetic"], table["real"])) == {(i, j) for i in range(2) for j in range(3)}

    def row(i: int, j: int, region: str) -> pd.Series:
        return table[(table["synthetic"] == i) & (table["real"] == j) & (table["region"] == region)].iloc[0]

    # Union of the myocardium masks: 40 pixels, 20 of them with error 0.5 -> MSE 0.125 -> 10 log10(8) dB.
    # (The synthetic mask alone would see no error at all.)
    myo = row(0, 0, "myocardium")
    assert myo["psnr_db"] == pytest.approx(10 * np.log10(8.0))
    assert masked_psnr(syn_image, real_image, syn_myo) == float("inf")
    assert myo["ssim"] == pytest.approx(masked_ssim(syn_image, real_image, syn_myo | real_myo))
    assert row(0, 0, "whole slice")["psnr_db"] == pytest.approx(masked_psnr(syn_image, real_image))
    # Fibrosis: present in one slice only -> scored on that mask; absent from both -> NaN.
    fib = row(0, 0, "fibrosis")
    assert fib["psnr_db"] == pytest.approx(10 * np.log10(1 / 0.25))
    assert row(1, 1, "fibrosis")[["psnr_db", "ssim"]].isna().all()
    assert row(0, 1, "whole slice")["psnr_db"] == float("inf")
    with pytest.raises(ValueError, match="grids differ"):
        slice_similarity(synthetic, tuple(a[:, :16] for a in real))
    with pytest.raises(ValueError, match="shapes differ"):
        slice_similarity(synthetic, (real[0], real[1][:2], real[2]))


def test_nearest_pairs_picks_highest_whole_slice_psnr() -> None:
    shape = (32, 32)
    empty = np.zeros((1, *shape), bool)
    myo = np.zeros(shape, bool)
    myo[10:20, 10:20] = True
    s0, s1 = _texture(10), _texture(11)
    real_images = [_texture(12), s0 + 0.01, s1 * 0.9 + 0.05, s0 + 0.1]  # nearest: s0 -> real 1, s1 -> real 2
    synthetic = _stack([s0, s1], [myo, myo], [empty[0], empty[0]])
    real = _stack(real_images, [myo] * 4, [empty[0]] * 4)
    table = slice_similarity(synthetic, real)
    nearest = nearest_pairs(table)
    assert len(nearest) == 2 * 3
    assert dict(zip(nearest["synthetic"], nearest["real"])) == {0: 1, 1: 2}
    assert nearest["region"].tolist() == ["whole slice", "myocardium", "fibrosis"] * 2
    assert nearest.iloc[0]["psnr_db"] == pytest.approx(40.0)  # MSE 1e-4
    with pytest.raises(ValueError, match="lacks columns"):
        nearest_pairs(table.drop(columns="psnr_db"))


# --- wall thickness ---------------------------------------------------------------------------------------------------


def _annulus(inner: float, outer: float, size: int = 80) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    r = np.hypot(y - (size - 1) / 2, x - (size - 1) / 2)
    return (r >= inner) & (r < outer)


def test_wall_thickness_of_annuli() -> None:
    ring = _annulus(20, 28)  # 8 pixels thick
    assert wall_thickness_mm(ring, (1.0, 1.0)) == pytest.approx(8.0, abs=1.0)
    assert wall_thickness_mm(ring, (0.5, 0.5)) == pytest.approx(4.0, abs=0.5)
    assert wall_thickness_mm(_annulus(20, 24), (1.0, 1.0)) == pytest.approx(4.0, abs=1.0)
    assert np.isnan(wall_thickness_mm(np.zeros((20, 20), bool), (1.0, 1.0)))
    with pytest.raises(ValueError, match="2D"):
        wall_thickness_mm(ring[None], (1.0, 1.0))


def test_volume_wall_thickness_is_median_over_myocardial_slices() -> None:
    empty = np.zeros((80, 80), bool)
    volume = np.stack([empty, _annulus(20, 28), _annulus(20, 26), _annulus(20, 24), empty])
    per_slice = [wall_thickness_mm(volume[s], (1.0, 1.0)) for s in (1, 2, 3)]
    assert volume_wall_thickness_mm(volume, (1.0, 1.0)) == pytest.approx(np.median(per_slice))
    assert volume_wall_thickness_mm(volume, (1.0, 1.0)) == pytest.approx(6.0, abs=1.0)
    assert np.isnan(volume_wall_thickness_mm(np.zeros((3, 10, 10), bool), (1.0, 1.0)))


# --- memorisation audits ----------------------------------------------------------------------------------------------


def test_memorisation_audit_flags_copy() -> None:
    training = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    synthetic = np.array([[10.0, 0.0], [0.0, 9.0]])  # a copy of t1, and a point 1 from t2
    test = np.array([[1.0, 1.0]])
    table = memorisation_audit(synthetic, test, training, ["s0", "s1"], ["r0"], ["t0", "t1", "t2"])
    assert list(table.columns) == ["case_id", "kind", "nearest_training", "distance", "second_distance"]
    assert table["case_id"].tolist() == ["s0", "s1", "r0"]
    assert table["kind"].tolist() == ["synthetic", "synthetic", "real test"]
    assert table["nearest_training"].tolist() == ["t1", "t2", "t0"]
    np.testing.assert_allclose(table["distance"], [0.0, 1.0, np.sqrt(2)])
    np.testing.assert_allclose(table["second_distance"], [10.0, 9.0, np.sqrt(82)])
    # Volumes are flattened into feature vectors.
    volumes = memorisation_audit(
        synthetic[:, :, None], test[:, :, None], training[:, :, None], ["s0", "s1"], ["r0"], ["t0", "t1", "t2"]
    )
    pd.testing.assert_frame_equal(volumes, table)
    with pytest.raises(ValueError, match="ids"):
        memorisation_audit(synthetic, test, training, ["s0"], ["r0"], ["t0", "t1", "t2"])
    with pytest.raises(ValueError, match="feature sizes differ"):
        memorisation_audit(synthetic, test[:, :1], training, ["s0", "s1"], ["r0"], ["t0", "t1", "t2"])


def test_mask_overlap_audit_uses_one_minus_dice() -> None:
    training = np.zeros((3, 4, 8, 8), bool)
    training[0, 0, :4, :4] = True  # 16 voxels
    training[1, 2, 4:, 4:] = True
    training[2, 3, :2, :] = True
    copy = training[1].copy()
    half = np.zeros((4, 8, 8), bool)
    half[0, 2:6, :4] = True  # 16 voxels, 8 shared with training 0 -> Dice 0.5
    test = np.zeros((1, 4, 8, 8), bool)
    test[0, 3, :2, :4] = True  # 8 voxels inside training 2's 16 -> Dice 2*8/24
    table = mask_overlap_audit(np.stack([copy, half]), test, training, ["copy", "half"], ["r0"], ["a", "b", "c"])
    assert table["nearest_training"].tolist() == ["b", "a", "c"]
    np.testing.assert_allclose(table["distance"], [0.0, 0.5, 1 - 16 / 24])
    np.testing.assert_allclose(table["second_distance"], [1.0, 1.0, 1.0])
    # Two empty masks are identical, not undefined.
    empty = mask_overlap_audit(np.zeros((1, 4, 8, 8), bool), test, np.zeros((1, 4, 8, 8), bool), ["e"], ["r0"], ["z"])
    assert empty["distance"].tolist() == [0.0, 1.0]
    assert np.isnan(empty["second_distance"]).all()
