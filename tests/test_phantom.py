"""Tests of the synthetic LGE cohort generator (lgelib.data.phantom)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lgelib.data.dataset import emidec_cases
from lgelib.data.intensity import padding_mask
from lgelib.data.nifti import read_volume, voxel_spacing
from lgelib.data.phantom import PhantomCase, PhantomSettings, generate_case, phantom_case_id
from lgelib.data.stats import label_map_statistics

COHORT_SIZE = 12
CALIBRATED = (
    "cavity_ml",
    "myocardium_ml",
    "scar_ml",
    "scar_burden",
    "myocardium_slices",
    "intensity_cavity",
    "intensity_healthy",
    "intensity_scar",
    "intensity_background",
)


@pytest.fixture(scope="module")
def config() -> PhantomSettings:
    return PhantomSettings(n_cases=COHORT_SIZE, seed=0)


@pytest.fixture(scope="module")
def cohort(config: PhantomSettings) -> list[PhantomCase]:
    return [generate_case(config, index) for index in range(COHORT_SIZE)]


@pytest.fixture(scope="module")
def cohort_stats(cohort: list[PhantomCase]) -> list[dict[str, float]]:
    return [label_map_statistics(c.image, c.labels, voxel_spacing(c.affine)) for c in cohort]


@pytest.fixture(scope="module")
def scarred_cohort() -> list[PhantomCase]:
    """Every subject scarred and ischaemic with MVO, on a small matrix to stay fast."""
    config = PhantomSettings(
        seed=5, scar_free_fraction=0.0, nonischaemic_fraction=0.0, mvo_fraction=1.0, matrix=(128, 128)
    )
    return [generate_case(config, index) for index in range(8)]


# -- identity and determinism ---------------------------------------------------------------------------


def test_case_ids() -> None:
    assert phantom_case_id(0) == "Phantom_001"
    assert phantom_case_id(11) == "Phantom_012"
    assert phantom_case_id(122) == "Phantom_123"


def test_same_seed_and_index_give_identical_case(config: PhantomSettings, cohort: list[PhantomCase]) -> None:
    again = generate_case(config, 3)
    first = cohort[3]
    assert again.case_id == first.case_id == "Phantom_004"
    np.testing.assert_array_equal(again.image, first.image)
    np.testing.assert_array_equal(again.labels, first.labels)
    np.testing.assert_array_equal(again.affine, first.affine)
    assert (again.scar_pattern, again.territory) == (first.scar_pattern, first.territory)


def test_case_does_not_depend_on_cohort_size_or_order(cohort: list[PhantomCase]) -> None:
    generate_case(PhantomSettings(n_cases=3, seed=0), 7)  # other cases made first, in another order
    small = generate_case(PhantomSettings(n_cases=3, seed=0), 5)
    large = generate_case(PhantomSettings(n_cases=500, seed=0), 5)
    for other in (small, large):
        np.testing.assert_array_equal(other.image, cohort[5].image)
        np.testing.assert_array_equal(other.labels, cohort[5].labels)


def test_different_seeds_give_different_cases(cohort: list[PhantomCase]) -> None:
    other = generate_case(PhantomSettings(seed=1), 0)
    assert other.image.shape != cohort[0].image.shape or not np.array_equal(other.image, cohort[0].image)
    assert other.labels.shape != cohort[0].labels.shape or not np.array_equal(other.labels, cohort[0].labels)
    assert not np.array_equal(other.affine, cohort[0].affine)


def test_different_indices_give_different_cases(cohort: list[PhantomCase]) -> None:
    assert len({c.image.tobytes() for c in cohort}) == len(cohort)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        PhantomSettings(scar_free_fraction=1.5)
    with pytest.raises(ValueError):
        PhantomSettings(sub_slices=4)
    with pytest.raises(ValueError):
        PhantomSettings(slice_gap_fraction=(0.0, 1.0))
    with pytest.raises(ValueError):
        generate_case(PhantomSettings(), -1)


# -- arrays and geometry --------------------------------------------------------------------------------


def test_shapes_dtypes_and_labels(config: PhantomSettings, cohort: list[PhantomCase]) -> None:
    for case in cohort:
        assert case.image.dtype == np.float32 and case.labels.dtype == np.uint8
        assert case.image.ndim == 3 and case.image.shape == case.labels.shape
        assert case.image.shape[:2] == config.matrix
        assert 4 <= case.image.shape[2] <= 11
        assert np.isfinite(case.image).all() and case.image.min() >= 0.0
        assert set(np.unique(case.labels)) <= {0, 1, 2, 3, 4}
        assert {1, 2} <= set(np.unique(case.labels))
        assert case.affine.shape == (4, 4) and case.affine.dtype == np.float64
        assert case.scar_pattern in {"none", "ischaemic", "nonischaemic"}
        assert (case.territory in {"LAD", "RCA", "LCx"}) == (case.scar_pattern == "ischaemic")
        has_scar = bool(np.isin(case.labels, (3, 4)).any())
        assert has_scar == (case.scar_pattern != "none")


def test_affine_spacing_in_configured_ranges(config: PhantomSettings, cohort: list[PhantomCase]) -> None:
    spacings = []
    for case in cohort:
        affine = case.affine
        np.testing.assert_array_equal(affine[3], [0, 0, 0, 1])
        np.testing.assert_allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])))  # spacing on the diagonal
        du, dv, dz = voxel_spacing(case.affine)
        assert du == pytest.approx(dv)
        assert config.inplane_spacing_mm[0] <= du <= config.inplane_spacing_mm[1]
        assert config.slice_spacing_mm[0] <= dz <= config.slice_spacing_mm[1]
        assert int(np.argmax((du, dv, dz))) == 2
        spacings.append(du)
    assert np.ptp(spacings) > 0.05  # spacing varies per subject


def test_apex_at_slice_zero(cohort: list[PhantomCase]) -> None:
    """The myocardial cross-section grows from the apex (index 0) towards the base (last index)."""
    for case in cohort:
        area = np.isin(case.labels, (2, 3, 4)).sum(axis=(0, 1)).astype(float)
        present = np.nonzero(area)[0]
        area = area[present[0] : present[-1] + 1]
        half = len(area) // 2
        assert area[:half].mean() < area[-half:].mean(), case.case_id
        assert area[0] < area.max(), case.case_id
        assert np.corrcoef(np.arange(len(area)), area)[0, 1] > 0.3, case.case_id
        # the cavity closes towards the apex: the most apical myocardial slice has the smallest cavity share
        cavity = (case.labels == 1).sum(axis=(0, 1))[present[0] : present[-1] + 1]
        assert cavity[0] <= np.median(cavity), case.case_id


def test_myocardium_slice_counts_are_realistic(cohort_stats: list[dict[str, float]]) -> None:
    counts = [s["myocardium_slices"] for s in cohort_stats]
    assert min(counts) >= 4 and max(counts) <= 10
    assert 5 <= np.median(counts) <= 9


# -- scar -----------------------------------------------------------------------------------------------


def test_scar_free_fraction_is_honoured() -> None:
    config = PhantomSettings(seed=3, scar_free_fraction=0.5, matrix=(96, 96))
    cases = [generate_case(config, index) for index in range(40)]
    free = [c.scar_pattern == "none" for c in cases]
    assert 0.25 <= np.mean(free) <= 0.75
    for case, is_free in zip(cases, free):
        assert is_free == (not np.isin(case.labels, (3, 4)).any())
    none_scarred = PhantomSettings(seed=3, scar_free_fraction=1.0, matrix=(96, 96))
    assert all(generate_case(none_scarred, i).scar_pattern == "none" for i in range(6))


def test_ischaemic_scar_grows_from_the_endocardium(scarred_cohort: list[PhantomCase]) -> None:
    cross = ndimage.generate_binary_structure(3, 1)
    cross[:, :, 0] = cross[:, :, 2] = False  # in-plane neighbours only
    for case in scarred_cohort:
        assert case.scar_pattern == "ischaemic"
        scar = np.isin(case.labels, (3, 4))
        near_cavity = ndimage.binary_dilation(case.labels == 1, structure=cross)
        touching = (scar & near_cavity).sum()
        assert touching > 0, case.case_id
        # most scarred slices have their scar touching the cavity
        slices = [k for k in range(scar.shape[2]) if scar[..., k].any() and (case.labels[..., k] == 1).any()]
        touching_slices = [k for k in slices if (scar[..., k] & near_cavity[..., k]).any()]
        assert len(touching_slices) >= 0.7 * len(slices), case.case_id


def test_mvo_lies_within_or_next_to_scar(scarred_cohort: list[PhantomCase]) -> None:
    """Every MVO island touches scar in its slice; no MVO voxel is further than a wall thickness from scar."""
    with_mvo = 0
    for case in scarred_cohort:
        mvo, scar = case.labels == 4, case.labels == 3
        if not mvo.any():
            continue
        with_mvo += 1
        for k in range(mvo.shape[2]):
            islands, count = ndimage.label(mvo[..., k])
            next_to_scar = ndimage.binary_dilation(scar[..., k])
            for island in range(1, count + 1):
                assert (next_to_scar & (islands == island)).any(), f"{case.case_id} slice {k}"
        du, dv, _ = voxel_spacing(case.affine)
        distance = ndimage.distance_transform_edt(~scar, sampling=(du, dv, 1e3))
        assert distance[mvo].max() <= 16.0, case.case_id
        assert mvo.sum() < scar.sum(), case.case_id  # a core, smaller than the scar around it
    assert with_mvo >= len(scarred_cohort) // 2


def test_no_mvo_when_disabled() -> None:
    config = PhantomSettings(seed=5, scar_free_fraction=0.0, mvo_fraction=0.0, matrix=(96, 96))
    for index in range(6):
        assert not (generate_case(config, index).labels == 4).any()


def test_nonischaemic_pattern_spares_the_endocardium() -> None:
    config = PhantomSettings(seed=2, scar_free_fraction=0.0, nonischaemic_fraction=1.0, matrix=(128, 128))
    cross = np.zeros((3, 3, 1), dtype=bool)
    cross[1, :, 0] = cross[:, 1, 0] = True
    for index in range(5):
        case = generate_case(config, index)
        assert case.scar_pattern == "nonischaemic" and case.territory is None
        scar = case.labels == 3
        assert scar.any() and not (case.labels == 4).any()
        touching = (scar & ndimage.binary_dilation(case.labels == 1, structure=cross)).sum()
        assert touching < 0.2 * scar.sum(), case.case_id


# -- intensities ----------------------------------------------------------------------------------------


def test_intensity_ordering_per_case(cohort_stats: list[dict[str, float]], scarred_cohort: list[PhantomCase]) -> None:
    scarred = [label_map_statistics(c.image, c.labels, voxel_spacing(c.affine)) for c in scarred_cohort]
    for stats in cohort_stats + scarred:
        assert stats["intensity_cavity"] > stats["intensity_healthy"]
        if stats["scar_ml"] > 0:
            assert stats["intensity_scar"] > stats["intensity_healthy"]


def test_noise_inside_healthy_myocardium_is_realistic(cohort: list[PhantomCase]) -> None:
    from lgelib.data.intensity import normalize_intensity

    spreads = [float(normalize_intensity(c.image)[c.labels == 2].std()) for c in cohort]
    assert 0.03 <= np.median(spreads) <= 0.12  # real: 0.04-0.13, median ~0.07


def test_padding_is_an_exact_zero_band_outside_the_heart() -> None:
    config = PhantomSettings(seed=4, padding_probability=1.0, matrix=(128, 128))
    for index in range(4):
        case = generate_case(config, index)
        pad = padding_mask(case.image)
        assert pad.mean() >= 0.01
        assert (case.image[pad] == 0.0).all() and (case.image[~pad] > 0.0).all()
        assert not (case.labels[pad] > 0).any()
        rows, cols = pad.all(axis=(1, 2)), pad.all(axis=(0, 2))
        band = np.zeros_like(pad)
        band[rows] = True
        band[:, cols] = True
        np.testing.assert_array_equal(band, pad)  # whole rows or columns, through every slice
    unpadded = generate_case(PhantomSettings(seed=4, padding_probability=0.0, matrix=(128, 128)), 0)
    assert not padding_mask(unpadded.image).any()


# -- calibration against real data ----------------------------------------------------------------------


@pytest.fixture
def real_ranges(emidec_root: Path) -> dict[str, tuple[float, float]]:
    cases, _ = emidec_cases(emidec_root, None, emidec_root)
    values: dict[str, list[float]] = {name: [] for name in CALIBRATED}
    for case in cases:
        assert case.labels is not None
        image = read_volume(case.image, case.case_id, "image")
        labels = read_volume(case.labels, case.case_id, "labels").data
        stats = label_map_statistics(image.data, labels, image.spacing)
        for name in CALIBRATED:
            if np.isfinite(stats[name]):
                values[name].append(stats[name])
    return {name: (min(v), max(v)) for name, v in values.items()}


def test_statistics_inside_real_ranges(
    cohort_stats: list[dict[str, float]], real_ranges: dict[str, tuple[float, float]]
) -> None:
    for name, (low, high) in real_ranges.items():
        for index, stats in enumerate(cohort_stats):
            value = stats[name]
            if np.isnan(value):
                continue
            assert low <= value <= high, f"{phantom_case_id(index)} {name}={value:.3f} outside [{low:.3f}, {high:.3f}]"


def test_calibration_to_a_training_set_recovers_its_scar_free_share_and_myocardium_brightness() -> None:
    """Training cases drawn from the default settings (another seed): the calibration gives their scar-free share
    and lands near the default inversion-time offset; a darker training set gets a shorter offset."""
    import pandas as pd

    from lgelib.data.phantom.calibrate import calibrated_settings, healthy_intensity
    from lgelib.data.stats import FIBROSIS_LABELS, MYOCARDIUM_LABELS

    rows = []
    for index in range(10):
        case = generate_case(PhantomSettings(seed=5), index)
        myocardium, fibrosis = np.isin(case.labels, MYOCARDIUM_LABELS), np.isin(case.labels, FIBROSIS_LABELS)
        rows.append(
            {"has_scar": fibrosis.any(), "intensity_healthy": healthy_intensity(case.image, myocardium, fibrosis)}
        )
    training = pd.DataFrame(rows)
    settings, report = calibrated_settings(training, n_cases=7, seed=1000, probes=6, iterations=4)
    assert settings.n_cases == 7 and settings.seed == 1000
    assert settings.scar_free_fraction == pytest.approx(1 - training.has_scar.mean())
    assert abs(report["ti_offset_shift_ms"]) < 35  # the default offset, up to the probes' sampling
    assert abs(report["phantom_intensity_healthy"] - report["target_intensity_healthy"]) < 0.03
    darker = training.assign(intensity_healthy=training.intensity_healthy - 0.05)
    _, dark = calibrated_settings(darker, n_cases=7, seed=1000, probes=6, iterations=4)
    assert dark["ti_offset_shift_ms"] < report["ti_offset_shift_ms"] - 10
    with pytest.raises(ValueError, match="at least one training case"):
        calibrated_settings(training.iloc[:0], n_cases=7, seed=1000)


def test_calibration_is_kept_in_the_cache_and_redone_when_the_training_statistics_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phantom arm's export is checked on every run: the calibration is read back, not generated again, unless
    the training cases' statistics differ."""
    import pandas as pd

    from lgelib.data.phantom import calibrate

    training = pd.DataFrame({"has_scar": [True, False, True], "intensity_healthy": [0.30, 0.35, 0.40]})
    first, report = calibrate.calibrated_settings(training, 5, 1000, probes=2, iterations=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("phantom-calibration-*.json"))) == 1

    def no_probes(*args: object) -> float:
        raise AssertionError("the probes were generated again")

    monkeypatch.setattr(calibrate, "phantom_healthy_intensity", no_probes)
    again, cached = calibrate.calibrated_settings(training, 5, 1000, probes=2, iterations=1, cache_dir=tmp_path)
    assert again == first and cached == report
    with pytest.raises(AssertionError, match="generated again"):
        brighter = training.assign(intensity_healthy=training.intensity_healthy + 0.01)
        calibrate.calibrated_settings(brighter, 5, 1000, probes=2, iterations=1, cache_dir=tmp_path)
