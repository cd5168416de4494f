"""Canonical grid: orientation, base-to-apex order, mask resampling, normalisation and the way back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lgelib.data.cases import ScanCase
from lgelib.data.dataset import emidec_cases
from lgelib.data.grid import GridMapping, GridSettings, base_is_first, to_canonical, to_original_grid
from lgelib.data.intensity import normalize_intensity
from lgelib.data.manifest import EMIDEC_LABELS, CaseFiles
from lgelib.data.cases import read_case
from lgelib.data.nifti import read_volume

from conftest import lv_image, lv_label_map

GRID = GridSettings(shape=(8, 40, 40), inplane_spacing_mm=1.8)


def scan(labels: np.ndarray, affine: np.ndarray | None = None, case_id: str = "t") -> ScanCase:
    affine = np.diag([1.6, 1.6, 9.0, 1.0]) if affine is None else affine
    return ScanCase(
        case_id,
        lv_image(labels),
        np.isin(labels, [2, 3, 4]),
        np.isin(labels, [3, 4]),
        affine,
        CaseFiles(case_id, Path("image.nii.gz")),
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def test_output_shapes_types_and_masks() -> None:
    case = to_canonical(scan(lv_label_map()), GRID)
    assert case.image.shape == case.myocardium.shape == case.fibrosis.shape == GRID.shape
    assert case.image.dtype == np.float32 and 0.0 <= case.image.min() and case.image.max() <= 1.0
    assert case.myocardium.dtype == bool and case.fibrosis.dtype == bool
    assert not (case.fibrosis & ~case.myocardium).any() and case.fibrosis.any()
    # lv_extent: every canonical slice holds myocardium, the first (base) the largest.
    area = case.myocardium.sum(axis=(1, 2))
    assert (area > 0).all() and area[0] > area[-1]


def test_slice_order_is_detected_and_base_comes_first() -> None:
    labels = lv_label_map(apex_first=True)
    assert not base_is_first(np.moveaxis(np.isin(labels, [2, 3]), 2, 0))
    from_apex = to_canonical(scan(labels), GRID)
    from_base = to_canonical(scan(labels[..., ::-1].copy(), np.diag([1.6, 1.6, -9.0, 1.0])), GRID)
    assert from_apex.mapping.slice_order == "apex_first" and from_base.mapping.slice_order == "base_first"
    np.testing.assert_array_equal(from_apex.myocardium, from_base.myocardium)
    # The manifest can override the detection.
    forced = to_canonical(scan(labels), GRID, slice_order="base_first")
    assert forced.myocardium.sum(axis=(1, 2))[0] < forced.myocardium.sum(axis=(1, 2))[-1]


def test_same_anatomy_stored_in_another_voxel_order_gives_the_same_arrays() -> None:
    labels = lv_label_map()
    reference = to_canonical(scan(labels), GRID)
    # Store as (slice, y, x) with x flipped; the affine says where each voxel is, so the anatomy is unchanged.
    stored = np.transpose(labels, (2, 1, 0))[:, :, ::-1].copy()
    nx = labels.shape[0]
    affine = np.array([[0, 0, -1.6, 1.6 * (nx - 1)], [0, 1.6, 0, 0], [9.0, 0, 0, 0], [0, 0, 0, 1.0]])
    case = scan(stored, affine)
    case.image = np.transpose(lv_image(labels), (2, 1, 0))[:, :, ::-1].copy()
    other = to_canonical(case, GRID)
    np.testing.assert_array_equal(reference.myocardium, other.myocardium)
    np.testing.assert_array_equal(reference.fibrosis, other.fibrosis)
    np.testing.assert_allclose(reference.image, other.image, atol=1e-5)
    np.testing.assert_allclose(reference.affine, other.affine, atol=1e-6)


def test_canonical_affine_points_at_the_same_world_positions() -> None:
    labels = lv_label_map()
    case = to_canonical(scan(labels), GRID)
    centre = np.argwhere(case.myocardium).mean(axis=0)
    world = case.affine @ [*centre, 1.0]
    original = scan(labels)
    original_centre = np.argwhere(original.myocardium).mean(axis=0)
    original_world = original.affine @ [*original_centre, 1.0]
    assert np.linalg.norm(world[:3] - original_world[:3]) < 3.0  # mm, within a voxel or two


def test_round_trip_to_the_original_grid() -> None:
    labels = lv_label_map(shape=(64, 60, 9))
    original = scan(labels)
    for grid in (
        GridSettings(shape=(12, 64, 64), inplane_spacing_mm=1.2),
        GridSettings(shape=(12, 64, 64), z_mode="native"),
    ):
        case = to_canonical(original, grid)
        mapping = GridMapping.from_json(case.mapping.to_json())
        assert mapping == case.mapping
        back = to_original_grid(case.myocardium, mapping, is_mask=True)
        assert back.shape == labels.shape
        assert dice(back, original.myocardium) > 0.9
        image_back = to_original_grid(case.image, mapping, is_mask=False)
        inside = original.myocardium
        assert np.corrcoef(image_back[inside], normalize_intensity(original.image)[inside])[0, 1] > 0.9
    with pytest.raises(ValueError, match="not the canonical"):
        to_original_grid(np.zeros((3, 3, 3)), mapping, is_mask=True)


def test_native_mode_keeps_native_slices() -> None:
    labels = lv_label_map(shape=(48, 44, 7))
    case = to_canonical(scan(labels), GridSettings(shape=(10, 40, 40), inplane_spacing_mm=1.6, z_mode="native"))
    assert case.mapping.scale[0] == 1.0
    assert case.myocardium.any(axis=(1, 2)).sum() == 7  # 7 slices with myocardium, the rest padding


def test_masks_are_interpolated_as_shapes_not_blocks() -> None:
    """Between two native slices the interpolated ring lies between the two rings (shape interpolation)."""
    labels = lv_label_map(shape=(48, 44, 3), scar=False)
    case = to_canonical(scan(labels), GridSettings(shape=(5, 40, 40), inplane_spacing_mm=1.6))
    area = case.myocardium.sum(axis=(1, 2))
    assert area[0] > area[1] > area[2] > area[3] > area[4] > 0


def test_normalisation_ignores_padding_and_offsets() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (20, 20, 5)).astype(np.float32)
    padded = image.copy()
    padded[:, :6] = -500.0  # padding at an arbitrary constant, like a phase-sensitive scan
    a = normalize_intensity(image)
    b = normalize_intensity(padded)
    assert (b[:, :6] == 0).all()
    assert np.corrcoef(a[:, 6:].ravel(), b[:, 6:].ravel())[0, 1] > 0.99
    np.testing.assert_allclose(normalize_intensity(image * 3 - 40), a, atol=1e-5)
    assert (normalize_intensity(np.ones((4, 4, 4))) == 0).all()


def test_real_emidec_cases_on_the_paper_grid(emidec_root: Path) -> None:
    cases, problems = emidec_cases(emidec_root, ("Case_N006", "Case_P001"), emidec_root)
    assert not problems
    for files in cases:
        scan_case = read_case(files, EMIDEC_LABELS)
        labels = read_volume(files.labels, files.case_id, "labels").data
        np.testing.assert_array_equal(scan_case.myocardium, np.isin(labels, [2, 3, 4]))
        np.testing.assert_array_equal(scan_case.fibrosis, np.isin(labels, [3, 4]))
        case = to_canonical(scan_case, GridSettings())
        assert case.mapping.slice_order == "apex_first"  # as the data README says: apex at index 0
        back = to_original_grid(case.myocardium, case.mapping, is_mask=True)
        assert dice(back, scan_case.myocardium) > 0.95
        if scan_case.fibrosis.any():
            assert dice(to_original_grid(case.fibrosis, case.mapping, is_mask=True), scan_case.fibrosis) > 0.8
