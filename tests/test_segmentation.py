"""nnU-Net segmentation: the raw-dataset export (checked by nnU-Net's own integrity check), the axis layout
round trip back to each scan's grid, arms and their controls, one plan and one intensity scale for every arm,
evaluation in the manifest's slice order, and a tiny real train / resume / predict / evaluate run on 2 CPU cores."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lgelib.data.dataset import Split, open_split
from lgelib.data.prepare import write_case_volumes, write_nifti_manifest
from lgelib.table1 import REGIONS
from lgelib.data.cases import ScanCase
from lgelib.data.manifest import CaseFiles
from lgelib.nnunet_export import (
    LABELS,
    cross_validation_splits,
    export_training_set,
    label_map,
    slice_axis_last,
    to_scan_layout,
)
from lgelib.segmentation import evaluate_case, is_trained, model_folder, run_segmentation, train_model
from lgelib.segmentation_setup import Arm, NnunetFolders, SegmentationSettings, parse_arms
from conftest import lv_label_map
from toys import phantom_manifest, toy_volumes

TINY = SegmentationSettings(
    configuration="2d",
    epochs=2,
    iterations_per_epoch=2,
    val_iterations_per_epoch=1,
    folds=("all",),
    target_spacing_mm=(8.0, 4.0, 4.0),
    batch_size=2,
    patch_size=(32, 32),
    max_features=16,
    foreground_oversampling=0.66,
    save_every=1,
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-case phantom manifest (4 train, 2 test) on a small matrix."""
    return phantom_manifest(tmp_path_factory.mktemp("seg-cohort") / "tiny.yaml", n_cases=6, seed=5, n_test=2)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic-like volumes in the synthesis layout: (slices, rows, cols) with 8 mm slices."""
    folder = tmp_path_factory.mktemp("seg-synth")
    images, myo, fib = toy_volumes(3, shape=(5, 24, 24))
    affine = np.diag([8.0, 3.0, 3.0, 1.0])
    ids = [f"synth-{i:04d}" for i in range(3)]
    entries = [
        write_case_volumes(folder / "cases" / c, c, images[i], myo[i], fib[i], affine) for i, c in enumerate(ids)
    ]
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
    name, changed = export_training_set(folders, real, synthetic_dir, Arm(2), TINY)
    assert changed and name == "Dataset001_LGE_N2"
    raw = folders.raw / name
    verify_dataset_integrity(str(raw), 1)  # raises on any problem
    dataset = json.loads((raw / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "myocardium": 1, "fibrosis": 2}
    assert dataset["channel_names"] == {"0": "noNorm"}  # inputs are percentile-normalised per scan already
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
    again, changed_again = export_training_set(folders, real, synthetic_dir, Arm(2, sampling="balanced"), TINY)
    assert again == name and not changed_again  # a balanced arm trains on the same cases as the uniform one
    with pytest.raises(ValueError, match="fewer than the 5 of arm N5"):
        export_training_set(folders, real, synthetic_dir, Arm(5), TINY)


def test_duplicate_control_adds_copies_of_real_training_cases(cohort: Path, tmp_path: Path) -> None:
    real = open_split(cohort)
    folders = NnunetFolders(tmp_path / "seg")
    name, _ = export_training_set(folders, real, None, Arm(6, "duplicates"), TINY)
    assert name.endswith("_LGE_D6")
    raw = folders.raw / name
    record = json.loads((raw / "export.json").read_text())
    train = list(real.split.train)
    assert list(record["duplicates"].values()) == [train[k % len(train)] for k in range(6)]
    for duplicate, origin in record["duplicates"].items():
        for sub, suffix in (("imagesTr", "_0000"), ("labelsTr", "")):
            assert (raw / sub / f"{duplicate}{suffix}.nii.gz").read_bytes() == (
                raw / sub / f"{origin}{suffix}.nii.gz"
            ).read_bytes()
    assert json.loads((raw / "dataset.json").read_text())["numTraining"] == len(train) + 6


def test_phantom_arm_adds_new_phantom_subjects_never_the_cohorts_own(cohort: Path, tmp_path: Path) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    real = open_split(cohort)  # itself a phantom cohort, seed 5
    folders = NnunetFolders(tmp_path / "seg")
    name, changed = export_training_set(folders, real, None, Arm(3, "phantom", "balanced"), TINY)
    assert changed and name.endswith("_LGE_P3")
    raw = folders.raw / name
    verify_dataset_integrity(str(raw), 1)
    record = json.loads((raw / "export.json").read_text())
    assert record["phantom"] == [f"P{TINY.phantom_seed}_Phantom_{k:03d}" for k in (1, 2, 3)]
    assert record["real"] == list(real.split.train) and not record["synthetic"] and not record["duplicates"]
    assert json.loads((raw / "dataset.json").read_text())["numTraining"] == len(real.split.train) + 3
    added = [np.asarray(nib.load(str(raw / "labelsTr" / f"{c}.nii.gz")).dataobj) for c in record["phantom"]]
    own = [np.asarray(nib.load(str(raw / "labelsTr" / f"{c}.nii.gz")).dataobj) for c in real.split.train]
    assert all((a == 1).any() for a in added)  # hearts with their exact myocardium labels
    assert not any(a.shape == o.shape and np.array_equal(a, o) for a in added for o in own)  # new subjects
    with pytest.raises(ValueError, match="phantom_seed 5"):
        export_training_set(folders, real, None, Arm(3, "phantom"), dataclasses.replace(TINY, phantom_seed=5))
    # calibrated on the training cases by default; the hand-tuned defaults are another cohort, another export
    assert record["phantom_calibration"] == TINY.phantom_calibration == "training"

    def images() -> list[np.ndarray]:
        return [np.asarray(nib.load(str(raw / "imagesTr" / f"{c}_0000.nii.gz")).dataobj) for c in record["phantom"]]

    calibrated = images()
    default = dataclasses.replace(TINY, phantom_calibration="default")
    assert export_training_set(folders, real, None, Arm(3, "phantom", "balanced"), default)[1]
    assert not all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(calibrated, images()))


def test_targeted_arms_add_the_targeted_folders_volumes_and_synthetic_arms_the_others(
    cohort: Path, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T<n> and C<n> arms read their own ``added_dirs`` folder, N<n> arms ``synthetic_dir``: each arm is exported
    from its own folder, as its own training set (its own dataset and model)."""
    import lgelib.segmentation

    real = open_split(cohort)
    folders = NnunetFolders(tmp_path / "seg")
    name, changed = export_training_set(folders, real, synthetic_dir, Arm(2, "targeted", "balanced"), TINY)
    assert changed and name.endswith("_LGE_T2")
    record = json.loads((folders.raw / name / "export.json").read_text())
    assert record["synthetic"] == ["synth-0000", "synth-0001"] and record["real"] == list(real.split.train)

    exported = {}

    class Stop(Exception):
        pass

    def record_export(folders, real, added, arm, settings):
        exported[arm.name] = added
        if len(exported) == 4:
            raise Stop  # every arm exported: nothing is trained here
        return f"Dataset00{len(exported)}_LGE_{arm.training_set}", True

    monkeypatch.setattr(lgelib.segmentation, "export_training_set", record_export)
    with pytest.raises(Stop):
        run_segmentation(
            real,
            tmp_path / "synth",
            tmp_path / "seg2",
            TINY,
            ("N2", "T2", "C2-balanced"),
            "cpu",
            False,
            {"targeted": tmp_path / "targeted", "proportional": tmp_path / "proportional"},
        )
    assert exported == {
        "N0": tmp_path / "synth",
        "N2": tmp_path / "synth",
        "T2": tmp_path / "targeted",
        "C2-balanced": tmp_path / "proportional",
    }


def test_arm_names_parse_and_the_baseline_comes_first() -> None:
    assert Arm.parse("N200-balanced") == Arm(200, "synthetic", "balanced")
    assert Arm.parse("D100") == Arm(100, "duplicates") and Arm.parse(100) == Arm(100)
    assert Arm.parse("T100-balanced") == Arm(100, "targeted", "balanced")
    assert Arm(100, "targeted").training_set == "T100"
    assert Arm.parse("C100-balanced") == Arm(100, "proportional", "balanced")
    assert Arm(100, "proportional").training_set == "C100" and Arm.parse("C100-balanced").name == "C100-balanced"
    assert [a.name for a in parse_arms("N200,D200,N200-balanced")] == ["N0", "N200", "D200", "N200-balanced"]
    assert Arm(200, sampling="balanced").training_set == "N200"
    assert Arm.parse("P200-balanced") == Arm(200, "phantom", "balanced")
    assert Arm.parse("P200-balanced").name == "P200-balanced" and Arm(200, "phantom").training_set == "P200"
    with pytest.raises(ValueError, match="is not N<n>"):
        Arm.parse("X200")
    with pytest.raises(ValueError, match="nothing added"):
        Arm(0, "duplicates")


def test_cross_validation_validates_real_cases_only_and_never_leaks_a_duplicate() -> None:
    real = [f"r{i}" for i in range(10)]
    added = {"s0": None, "s1": None, "dup000_r3": "r3", "dup001_r7": "r7"}
    splits = cross_validation_splits(real, added)
    assert len(splits) == 5
    assert sorted(c for s in splits for c in s["val"]) == sorted(real)  # every real case validated once
    for split in splits:
        assert set(split["val"]) <= set(real) and not set(split["val"]) & set(split["train"])
        assert {"s0", "s1"} <= set(split["train"])
        for duplicate, origin in (("dup000_r3", "r3"), ("dup001_r7", "r7")):
            assert (duplicate in split["train"]) == (origin not in split["val"])


def test_cross_validation_needs_a_real_case_per_fold() -> None:
    with pytest.raises(ValueError, match="at least 5 real training cases"):
        cross_validation_splits(["a", "b", "c"], {})


def test_balanced_batches_hold_the_real_share() -> None:
    from lgelib.nnunet_trainers import BalancedDataLoader

    loader = BalancedDataLoader.__new__(BalancedDataLoader)
    loader.batch_size, loader.real_share = 12, 0.5
    loader.real_indices = [f"r{i}" for i in range(4)]
    loader.added_indices = [f"s{i}" for i in range(200)]
    np.random.seed(0)
    batches = [loader.get_indices() for _ in range(50)]
    assert all(len(b) == 12 and sum(k.startswith("r") for k in b) == 6 for b in batches)
    # shuffled: the foreground-oversampled last third is not always the added cases
    assert any(b[-1].startswith("r") for b in batches) and any(b[-1].startswith("s") for b in batches)


def test_evaluation_honours_the_manifests_slice_order() -> None:
    """An apex-first scan whose prediction misses one apical slice loses Dice in the Top 25% only."""
    labels = lv_label_map(shape=(48, 44, 8), scar=False, apex_first=True)
    myocardium = labels >= 2
    case = ScanCase(
        "apex-first",
        labels.astype(np.float32),
        myocardium,
        np.zeros_like(myocardium),
        np.diag([1.6, 1.6, 9.0, 1.0]),
        CaseFiles("apex-first", Path("image.nii.gz")),
    )
    prediction = myocardium.astype(np.uint8)
    prediction[..., 0] = 0  # slice 0 of the file is the apex
    table = evaluate_case(case, prediction, slice_order="apex_first").set_index(["region", "structure"])
    dice = table.loc[(slice(None), "myocardium"), "dice"].droplevel("structure")
    assert dice["Top 25%"] < 0.9 and dice["Bottom 25%"] == 1.0 and dice["Middle 50%"] == 1.0
    # Read in the wrong order, the same miss lands in the basal region: the manifest's order decides.
    wrong = evaluate_case(case, prediction, slice_order="base_first").set_index(["region", "structure"])
    assert wrong.loc[("Bottom 25%", "myocardium"), "dice"] < 0.9 and wrong.loc[("Top 25%", "myocardium"), "dice"] == 1
    # Volumes: no scar in the reference, so no fibrosis row is scored; myocardium rows all are.
    assert not table.loc[(slice(None), "fibrosis"), "scored"].any()
    assert table.loc[(slice(None), "myocardium"), "scored"].all()
    assert table.loc[("Volume", "myocardium"), "reference_ml"] == pytest.approx(myocardium.sum() * 1.6 * 1.6 * 9 / 1000)


def test_tiny_nnunet_arms_share_one_plan_train_resume_and_predict_on_the_scan_grid(
    cohort: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    real = open_split(cohort)
    out = tmp_path / "seg"
    arms = ("N2-balanced", "D2")
    result = run_segmentation(real, synthetic_dir, out, TINY, arms, device="cpu", echo=False)
    folders = NnunetFolders(out.resolve())
    names = {"N0": "Dataset001_LGE_N0", "N2-balanced": "Dataset002_LGE_N2", "D2": "Dataset003_LGE_D2"}
    for arm in parse_arms(arms):
        assert is_trained(folders, names[arm.name], TINY, arm)
        # nnU-Net's own training curves are still drawn (after the last epoch), though not after every epoch
        assert (model_folder(folders, names[arm.name], TINY, arm) / "fold_all" / "progress.png").is_file()
    assert model_folder(folders, names["N2-balanced"], TINY, Arm.parse("N2-balanced")).name.startswith(
        "LgeBalancedTrainer__"
    )

    # One plan for every arm: N0's network, spacing, patch and normalisation, copied unchanged.
    plans = {
        arm: json.loads((folders.preprocessed / name / "nnUNetPlans.json").read_text())["configurations"]["2d"]
        for arm, name in names.items()
    }
    for arm in ("N2-balanced", "D2"):
        for key in ("architecture", "spacing", "patch_size", "normalization_schemes", "batch_size"):
            assert plans[arm][key] == plans["N0"][key], (arm, key)
    assert plans["N0"]["normalization_schemes"] == ["NoNormalization"]
    assert "with plans of Dataset001_LGE_N0" in (out / "logs" / f"plan-{names['D2']}.log").read_text()

    # Predictions lie on each test scan's own grid: same shape and affine as its image file.
    files = {c.case_id: c for c in real.cases}
    for case_id in real.split.test:
        prediction = nib.load(str(out / "predictions" / "N2-balanced" / f"{case_id}.nii.gz"))
        scan = nib.load(str(files[case_id].image))
        assert prediction.shape == scan.shape[:3] and np.allclose(prediction.affine, scan.affine)
        assert set(np.unique(np.asarray(prediction.dataobj))) <= {0, 1, 2}
    table = result.per_case
    assert len(table) == 3 * len(real.split.test) * len(REGIONS) * 2
    assert list(table.arm.unique()) == ["N0", "N2-balanced", "D2"]
    assert set(table.region) == set(REGIONS) and table.dice.dropna().between(0, 1).all()
    # every arm is scored on the same rows: the reference decides
    scored = table.pivot_table(index=["case_id", "region", "structure"], columns="arm", values="scored")
    assert (scored.nunique(axis=1) == 1).all()
    assert (out / "per_case_dice.csv").is_file()

    # A rerun trains nothing: the final checkpoint is untouched.
    name, arm = names["N0"], Arm(0)
    final = model_folder(folders, name, TINY, arm) / "fold_all" / "checkpoint_final.pth"
    stamp = final.stat().st_mtime_ns
    run_segmentation(real, synthetic_dir, out, TINY, (), device="cpu", echo=False)
    assert final.stat().st_mtime_ns == stamp

    # A torn final checkpoint does not count as trained: it is trained again.
    final.write_bytes(final.read_bytes()[:1000])
    train_model(folders, name, TINY, device=__import__("torch").device("cpu"), arm=arm, echo=False)
    assert final.stat().st_size > 1000

    # An interrupted run resumes: a checkpoint after epoch 2 of 3 continues to epoch 3 (loaded with weights_only).
    shutil.move(final, final.with_name("checkpoint_latest.pth"))
    longer = dataclasses.replace(TINY, epochs=3)
    train_model(folders, name, longer, device=__import__("torch").device("cpu"), arm=arm, echo=False)
    log = (out / "logs" / f"train-{name}-uniform-fold_all.log").read_text()
    assert "resuming after epoch 2 of 3" in log
    assert final.is_file() and not final.with_name("checkpoint_latest.pth").exists()


def test_training_curves_are_drawn_at_checkpoints_and_after_the_last_epoch_only() -> None:
    pytest.importorskip("nnunetv2")
    from lgelib.nnunet_trainers import plots_progress_after

    drawn = [epoch for epoch in range(40) if plots_progress_after(epoch, num_epochs=40, save_every=20)]
    assert drawn == [19, 39]
    assert [epoch for epoch in range(5) if plots_progress_after(epoch, 5, save_every=1)] == [0, 1, 2, 3, 4]
    assert [epoch for epoch in range(7) if plots_progress_after(epoch, 7, save_every=3)] == [2, 5, 6]


def test_a_skipped_progress_plot_draws_nothing_and_the_loggers_own_method_comes_back() -> None:
    pytest.importorskip("nnunetv2")
    from lgelib.nnunet_trainers import progress_plot_skipped

    class Logger:
        def __init__(self) -> None:
            self.drawn: list[str] = []

        def plot_progress_png(self, output_folder: str) -> None:
            self.drawn.append(output_folder)

    logger = Logger()
    with progress_plot_skipped(logger, skip=True):
        logger.plot_progress_png("skipped")
    logger.plot_progress_png("after")
    with progress_plot_skipped(logger, skip=False):
        logger.plot_progress_png("drawn")
    with pytest.raises(RuntimeError), progress_plot_skipped(logger, skip=True):
        raise RuntimeError("an epoch that fails")
    logger.plot_progress_png("after an error")
    assert logger.drawn == ["after", "drawn", "after an error"]


def test_progress_shows_stage_lines_and_every_quarter_of_training() -> None:
    from lgelib.segmentation import _worth_showing

    shown = [e for e in range(1, 41) if _worth_showing(f"[lgelib] Dataset001 fold all: epoch {e}/40, train loss 0.1")]
    assert shown == [10, 20, 30, 40]
    assert _worth_showing("[lgelib] Dataset001 fold all: epoch 1/1, train loss 0.1")
    assert _worth_showing("[lgelib] dataset 1: planned and preprocessed in 12 s")


def _tissue_means(image: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean intensity of remote myocardium (away from scar), blood pool (inside the ring) and scar; the exported
    slice axis is the last one."""
    from scipy.ndimage import binary_dilation, binary_fill_holes

    myocardium, scar = labels >= 1, labels == 2
    remote = myocardium & ~binary_dilation(scar, iterations=3)
    pool = np.stack(
        [
            binary_fill_holes(myocardium[..., k]) & ~binary_dilation(myocardium[..., k], iterations=1)
            for k in range(labels.shape[2])
        ],
        axis=-1,
    )
    return {
        "remote myocardium": float(image[remote].mean()),
        "blood pool": float(image[pool].mean()),
        "scar": float(image[scar].mean()),
    }


def test_real_and_synthetic_cases_reach_nnunet_on_one_intensity_scale(cohort: Path, tmp_path: Path) -> None:
    """The same heart exported as a real scan (its full field of view) and as a synthetic volume (a 160 mm canonical
    crop, written as the synthesis stage writes one) gets matching tissue values from what nnU-Net trains on."""
    from nnunetv2.preprocessing.normalization.map_channel_name_to_normalization import get_normalization_scheme

    from lgelib.data.grid import GridSettings
    from lgelib.data.prepare import load_prepared, prepare_dataset
    from lgelib.synthesis import nominal_spacing

    real = open_split(cohort)
    prepared = load_prepared(
        prepare_dataset(
            real, GridSettings(shape=(8, 64, 64), inplane_spacing_mm=2.5), tmp_path / "data", progress=False
        ).parent
    )
    scarred = [c for c in real.split.train if prepared.fibrosis[prepared.index([c])[0]].sum() > 20]
    case_id = scarred[0]
    i = prepared.index([case_id])[0]
    synthetic = tmp_path / "synth"
    affine = np.diag([*nominal_spacing(prepared), 1.0])
    entry = write_case_volumes(
        synthetic / "cases" / "synth-0000",
        "synth-0000",
        prepared.images[i],
        prepared.myocardium[i],
        prepared.fibrosis[i],
        affine,
    )
    write_nifti_manifest(
        synthetic / "manifest.yaml", "synthetic", "canonical copy", True, [entry], Split(("synth-0000",), ())
    )
    folders = NnunetFolders(tmp_path / "seg")
    name, _ = export_training_set(folders, real, synthetic, Arm(1), TINY)
    raw = folders.raw / name
    channel = json.loads((raw / "dataset.json").read_text())["channel_names"]["0"]

    def trained_on(case: str, scheme) -> dict[str, float]:
        image = np.asarray(nib.load(str(raw / "imagesTr" / f"{case}_0000.nii.gz")).dataobj, np.float32)
        labels = np.asarray(nib.load(str(raw / "labelsTr" / f"{case}.nii.gz")).dataobj)
        normalised = scheme(use_mask_for_norm=False, intensityproperties={}).run(image[None], labels[None])[0]
        return _tissue_means(normalised, labels)

    ours = get_normalization_scheme(channel)
    real_values, synthetic_values = trained_on(case_id, ours), trained_on("synth-0000", ours)
    for tissue, value in real_values.items():
        assert abs(synthetic_values[tissue] - value) < 0.05, (tissue, real_values, synthetic_values)
    # The check has teeth: nnU-Net's default z-scoring over each image's own field of view moves the same tissues
    # apart (the 160 mm crop holds more heart, so its mean and SD differ from the whole scan's).
    zscore = get_normalization_scheme("zscore")
    real_z, synthetic_z = trained_on(case_id, zscore), trained_on("synth-0000", zscore)
    assert max(abs(synthetic_z[t] - real_z[t]) for t in real_z) > 0.2, (real_z, synthetic_z)


def test_numbered_folds_validate_real_cases_only(cohort: Path, synthetic_dir: Path, tmp_path: Path) -> None:
    """With nnU-Net's cross-validation (the paper budget's 5 folds), the splits file lgelib writes keeps every
    synthetic case in training and validates real cases only."""
    import torch

    from lgelib.segmentation import preprocess

    from lgelib.data.dataset import open_dataset
    from lgelib.data.manifest import load_manifest

    real = open_dataset(load_manifest(cohort, {"split.n_test": 1}), progress=False)  # 5 real training cases
    folders = NnunetFolders((tmp_path / "seg").resolve())
    five_folds = dataclasses.replace(TINY, folds=(0, 1, 2, 3, 4))
    base, _ = export_training_set(folders, real, synthetic_dir, Arm(0), five_folds)
    name, _ = export_training_set(folders, real, synthetic_dir, Arm(2), five_folds)
    preprocess(folders, base, five_folds, torch.device("cpu"), echo=False)
    preprocess(folders, name, five_folds, torch.device("cpu"), plans_from=base, echo=False)
    splits = json.loads((folders.preprocessed / name / "splits_final.json").read_text())
    assert len(splits) == 5
    assert sorted(c for s in splits for c in s["val"]) == sorted(real.split.train)
    assert all({"synth-0000", "synth-0001"} <= set(s["train"]) for s in splits)


def test_a_seed_control_arm_retrains_the_same_cases_with_another_seed() -> None:
    from lgelib.segmentation_setup import Arm, parse_arms
    from lgelib.table1 import arm_order

    control = Arm.parse("N0-seed1")
    assert (control.n_added, control.source, control.sampling, control.seed_offset) == (0, "synthetic", "uniform", 1)
    assert control.name == "N0-seed1" and control.training_set == "N0s1"  # its own model folder, N0's cases
    assert Arm.parse("N200-balanced-seed2").name == "N200-balanced-seed2"
    assert [a.name for a in parse_arms("N200,N0-seed1")] == ["N0", "N200", "N0-seed1"]
    assert arm_order(["D200", "N200", "N0-seed1", "N0"]) == ["N0", "N0-seed1", "N200", "D200"]
    assert arm_order(["P200-balanced", "D200", "P200", "N0"]) == ["N0", "D200", "P200", "P200-balanced"]
    assert arm_order(["D200", "C100-balanced", "T100-balanced", "N0"]) == [
        "N0",
        "T100-balanced",
        "C100-balanced",
        "D200",
    ]
    with pytest.raises(ValueError, match="with an optional -seed<k>"):
        Arm.parse("N0-seedx")


def test_the_seed_control_trains_with_the_budgets_seed_plus_its_offset(tmp_path, monkeypatch) -> None:
    import json as json_

    import torch as torch_

    from lgelib import segmentation
    from lgelib.config import SMOKE_SEGMENTATION
    from lgelib.segmentation import train_model
    from lgelib.segmentation_setup import Arm, NnunetFolders

    folders = NnunetFolders(tmp_path)
    for name in ("Dataset001_LGE_N0", "Dataset002_LGE_N0s1"):
        (folders.raw / name).mkdir(parents=True)
        (folders.raw / name / "export.json").write_text(json_.dumps({"real": ["a"]}))
    seeds = {}
    monkeypatch.setattr(
        segmentation, "run_stage", lambda f, stage, args, *rest: seeds.setdefault(args["dataset_id"], args["seed"])
    )
    train_model(folders, "Dataset001_LGE_N0", SMOKE_SEGMENTATION, torch_.device("cpu"), Arm.parse("N0"), echo=False)
    train_model(
        folders, "Dataset002_LGE_N0s1", SMOKE_SEGMENTATION, torch_.device("cpu"), Arm.parse("N0-seed1"), echo=False
    )
    assert seeds == {1: SMOKE_SEGMENTATION.seed, 2: SMOKE_SEGMENTATION.seed + 1}


def test_bfloat16_autocast_only_on_a_cpu_as_asked_or_where_it_is_native(monkeypatch) -> None:
    import lgelib.device

    settings = {value: dataclasses.replace(TINY, cpu_bf16=value) for value in (None, True, False)}
    for native in (False, True):
        monkeypatch.setattr(lgelib.device, "cpu_has_bf16", lambda native=native: native)
        assert settings[None].autocasts_bf16("cpu") is native  # None: where the CPU computes bfloat16 itself
        assert settings[True].autocasts_bf16("cpu") and not settings[False].autocasts_bf16("cpu")
        assert not any(s.autocasts_bf16("cuda") for s in settings.values())  # nnU-Net's own float16 there
        assert settings[True].budget_text("cpu").endswith(", bfloat16 autocast")  # what logs and chapter 06 print
        assert settings[False].budget_text("cpu").endswith(", float32")
        assert settings[True].budget_text("cuda").endswith("nnU-Net's float16 autocast")
    assert TINY.budget_text("cpu").startswith(f"{TINY.configuration}, {TINY.epochs} epochs x ")
