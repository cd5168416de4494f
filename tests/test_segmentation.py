"""nnU-Net segmentation: the raw-dataset export (checked by nnU-Net's own integrity check), the axis layout
round trip back to each scan's grid, and a tiny real train / resume / predict / evaluate run on 2 CPU cores."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from lgelib.data.dataset import Split, open_split
from lgelib.data.prepare import write_case_volumes, write_nifti_manifest
from lgelib.metrics import REGIONS
from lgelib.segmentation import (LABELS, NnunetFolders, SegmentationSettings, export_training_set, is_trained,
                                 label_map, model_folder, run_segmentation, slice_axis_last, to_scan_layout,
                                 train_model)
from toys import toy_volumes

TINY = SegmentationSettings(configuration="2d", epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1,
                            folds=("all",), target_spacing_mm=(8.0, 4.0, 4.0), batch_size=2, patch_size=(32, 32),
                            max_features=16, foreground_oversampling=0.66, save_every=1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-case phantom manifest (4 train, 2 test) on a small matrix."""
    folder = tmp_path_factory.mktemp("seg-cohort")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "tiny", "publishable": True,
                                    "source": {"kind": "phantom", "n_cases": 6, "seed": 5, "matrix": [64, 64]},
                                    "split": {"seed": 0, "n_test": 2}}))
    return path


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic-like volumes in the synthesis layout: (slices, rows, cols) with 8 mm slices."""
    folder = tmp_path_factory.mktemp("seg-synth")
    images, myo, fib = toy_volumes(3, shape=(5, 24, 24))
    affine = np.diag([8.0, 3.0, 3.0, 1.0])
    ids = [f"synth-{i:04d}" for i in range(3)]
    entries = [write_case_volumes(folder / "cases" / c, c, images[i], myo[i], fib[i], affine) for i, c in enumerate(ids)]
    write_nifti_manifest(folder / "manifest.yaml", "synthetic", "toy", True, entries, Split(tuple(ids), ()))
    return folder


@pytest.mark.parametrize("slice_axis", [0, 1, 2])
def test_export_layout_round_trips_to_the_scan_grid(slice_axis: int) -> None:
    spacing = [1.5, 1.5, 1.5]
    spacing[slice_axis] = 9.0
    affine = np.diag([*spacing, 1.0])
    volume = np.random.default_rng(slice_axis).integers(0, 3, size=(7, 9, 11)).astype(np.uint8)
    ornt = slice_axis_last(affine)
    moved = nib.orientations.apply_orientation(volume, ornt)
    assert moved.shape[2] == volume.shape[slice_axis]
    assert np.array_equal(to_scan_layout(moved, affine), volume)


def test_label_map_puts_fibrosis_over_myocardium() -> None:
    myo = np.array([[1, 1, 0]], bool)
    fib = np.array([[0, 1, 0]], bool)
    assert label_map(myo, fib).tolist() == [[LABELS["myocardium"], LABELS["fibrosis"], LABELS["background"]]]


def test_export_passes_nnunets_integrity_check_and_is_reused(cohort: Path, synthetic_dir: Path, tmp_path: Path) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    real = open_split(cohort)
    folders = NnunetFolders(tmp_path / "seg")
    name, changed = export_training_set(folders, real, synthetic_dir, 2, TINY)
    assert changed and name == "Dataset001_LGE_N2"
    raw = folders.raw / name
    verify_dataset_integrity(str(raw), 1)  # raises on any problem
    dataset = json.loads((raw / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "myocardium": 1, "fibrosis": 2}
    assert dataset["numTraining"] == len(real.split.train) + 2
    labels = sorted((raw / "labelsTr").iterdir())
    assert {p.name[: -len(".nii.gz")] for p in labels} == set(real.split.train) | {"synth-0000", "synth-0001"}
    for path in labels:
        label = nib.load(str(path))
        zooms = label.header.get_zooms()
        assert zooms[2] == max(zooms), f"{path.name}: the slice axis must be the third file axis, zooms {zooms}"
        assert set(np.unique(np.asarray(label.dataobj))) <= {0, 1, 2}
    synthetic_label = np.asarray(nib.load(str(raw / "labelsTr" / "synth-0000.nii.gz")).dataobj)
    _, myo, fib = toy_volumes(3, shape=(5, 24, 24))
    assert np.array_equal(synthetic_label, np.moveaxis(label_map(myo[0], fib[0]), 0, 2))
    again, changed_again = export_training_set(folders, real, synthetic_dir, 2, TINY)
    assert again == name and not changed_again
    with pytest.raises(ValueError, match="fewer than the N=5"):
        export_training_set(folders, real, synthetic_dir, 5, TINY)


def test_tiny_nnunet_trains_resumes_predicts_on_the_scan_grid(cohort: Path, synthetic_dir: Path, tmp_path: Path) -> None:
    real = open_split(cohort)
    out = tmp_path / "seg"
    result = run_segmentation(real, synthetic_dir, out, TINY, n_synthetic=(2,), device="cpu", echo=False)
    folders = NnunetFolders(out.resolve())
    name = "Dataset001_LGE_N2"
    assert is_trained(folders, name, TINY)

    # Predictions lie on each test scan's own grid: same shape and affine as its image file.
    files = {c.case_id: c for c in real.cases}
    for case_id in real.split.test:
        prediction = nib.load(str(out / "predictions" / "N2" / f"{case_id}.nii.gz"))
        scan = nib.load(str(files[case_id].image))
        assert prediction.shape == scan.shape[:3] and np.allclose(prediction.affine, scan.affine)
        assert set(np.unique(np.asarray(prediction.dataobj))) <= {0, 1, 2}
    table = result.per_case
    assert len(table) == len(real.split.test) * len(REGIONS) * 2
    assert set(table.region) == set(REGIONS) and (table.n_synthetic == 2).all()
    assert table.dice.dropna().between(0, 1).all()
    assert (out / "per_case_dice.csv").is_file()

    # A rerun trains nothing: the final checkpoint is untouched.
    final = model_folder(folders, name, TINY) / "fold_all" / "checkpoint_final.pth"
    stamp = final.stat().st_mtime_ns
    run_segmentation(real, synthetic_dir, out, TINY, n_synthetic=(2,), device="cpu", echo=False)
    assert final.stat().st_mtime_ns == stamp

    # An interrupted run resumes: a checkpoint after epoch 2 of 3 continues to epoch 3 (loaded with weights_only).
    shutil.move(final, final.with_name("checkpoint_latest.pth"))
    longer = dataclasses.replace(TINY, epochs=3)
    train_model(folders, name, longer, device=__import__("torch").device("cpu"), echo=False)
    log = (out / "logs" / f"train-{name}-fold_all.log").read_text()
    assert "resuming after epoch 2 of 3" in log
    assert final.is_file() and not final.with_name("checkpoint_latest.pth").exists()


def test_progress_shows_stage_lines_and_every_quarter_of_training() -> None:
    from lgelib.segmentation import _worth_showing

    shown = [e for e in range(1, 41) if _worth_showing(f"[lgelib] Dataset001 fold all: epoch {e}/40, train loss 0.1")]
    assert shown == [10, 20, 30, 40]
    assert _worth_showing("[lgelib] Dataset001 fold all: epoch 1/1, train loss 0.1")
    assert _worth_showing("[lgelib] dataset 1: planned and preprocessed in 12 s")
