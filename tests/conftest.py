"""Shared fixtures: tiny hand-built LV volumes written as NIfTI, manifests for them, and the real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EMIDEC_DERIVED = Path(os.environ.get("EMIDEC_ROOT", REPO.parent / "shared" / "data" / "emidec-derived"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generated cohorts go to a per-session folder, never to the user's cache."""
    os.environ.setdefault("LGELIB_CACHE", str(tmp_path_factory.mktemp("lgelib-cache")))


@pytest.fixture
def emidec_root() -> Path:
    if not (EMIDEC_DERIVED.is_dir() and any(EMIDEC_DERIVED.glob("Case_*"))):
        pytest.skip(f"real EMIDEC-layout data not found at {EMIDEC_DERIVED}")
    return EMIDEC_DERIVED


def lv_label_map(shape: tuple[int, int, int] = (48, 44, 7), scar: bool = True, apex_first: bool = True) -> np.ndarray:
    """An LV in EMIDEC labels: a ring per slice shrinking towards the apex, optional subendocardial scar.

    Axes (x, y, slice); with ``apex_first`` the smallest ring is at slice 0, as in EMIDEC files.
    """
    nx, ny, nz = shape
    x, y = np.meshgrid(np.arange(nx) - nx / 2 + 3.0, np.arange(ny) - ny / 2 - 1.0, indexing="ij")
    radius = np.hypot(x / 1.1, y)
    angle = np.arctan2(y, x)
    labels = np.zeros(shape, dtype=np.uint8)
    for level in range(nz):
        s = level / (nz - 1)  # 0 = base ... 1 = apex
        outer, inner = 14.0 - 6.0 * s, 9.0 - 6.0 * s
        z = nz - 1 - level if apex_first else level
        labels[..., z][radius <= inner] = 1
        labels[..., z][(radius > inner) & (radius <= outer)] = 2
        if scar and level < nz - 1:
            labels[..., z][(radius > inner) & (radius <= inner + 3) & (np.abs(angle - 0.8) < 0.7)] = 3
    return labels


def lv_image(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """LGE-like intensities: bright blood and scar, dark myocardium, textured background, zero padding band."""
    rng = np.random.default_rng(seed)
    image = np.choose(labels, [80.0, 200.0, 40.0, 230.0, 20.0]) + rng.normal(0, 8, labels.shape)
    image[:, :3] = 0.0
    return np.clip(image, 0, None).astype(np.float32)


def save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([1.6, 1.6, 9.0, 1.0]) if affine is None else affine), str(path))
    return path


def write_manifest(path: Path, cases: list[dict], split: dict | None = None, **extra: object) -> Path:
    manifest = {
        "version": 1,
        "name": "toy",
        "publishable": True,
        "source": {
            "kind": "nifti",
            "label_mapping": {"myocardium": [2, 3, 4], "fibrosis": [3, 4], "other": [1]},
            "cases": cases,
        },
        "split": split or {"seed": 0, "n_test": 1},
        **extra,
    }
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


@pytest.fixture
def toy_dataset(tmp_path: Path) -> Path:
    """Three label-map cases and one mask case; returns the manifest path."""
    cases = []
    for index in range(3):
        labels = lv_label_map(scar=index != 1)
        save(tmp_path / f"c{index}" / "image.nii.gz", lv_image(labels, index))
        save(tmp_path / f"c{index}" / "labels.nii.gz", labels)
        cases.append({"id": f"c{index}", "image": f"c{index}/image.nii.gz", "labels": f"c{index}/labels.nii.gz"})
    labels = lv_label_map()
    save(tmp_path / "m3" / "image.nii.gz", lv_image(labels, 3))
    save(tmp_path / "m3" / "myo.nii.gz", np.isin(labels, [2, 3, 4]).astype(np.uint8))
    save(tmp_path / "m3" / "fib.nii.gz", np.isin(labels, [3, 4]).astype(np.uint8))
    cases.append({"id": "m3", "image": "m3/image.nii.gz", "myocardium": "m3/myo.nii.gz", "fibrosis": "m3/fib.nii.gz"})
    return write_manifest(tmp_path / "toy.yaml", cases)
