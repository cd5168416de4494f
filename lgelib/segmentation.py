"""Segmentation experiments (paper sections 3.4-3.5): nnU-Net trained on the real training cases plus N added
volumes, tested on the real test cases, all through nnunetv2's Python API. This module runs the stages (plan,
train, predict) and scores the predictions; what an experiment is made of (arms, budget, folders) is
`lgelib.segmentation_setup`, and the datasets nnU-Net reads are written by `lgelib.nnunet_export`.

An **arm** (:class:`Arm`) is one nnU-Net: the real training cases plus ``N`` added cases, either synthetic volumes
(``N100``, the paper's variable) or duplicates of the real training cases (``D100``, the control: as many cases
added, no new information), drawn ``uniform``-ly as nnU-Net does (the paper) or ``balanced`` (a fixed real share of
every batch, ``N100-balanced``). Everything else is shared by construction:

- **one plan**: the real-only dataset (N0) is planned from its own fingerprint; every other dataset receives that
  plan unchanged (nnU-Net's ``move_plans_between_datasets``): the same network, target spacing, patch, batch and
  normalisation for every arm;
- **one intensity scale**: every image, real or synthetic, is percentile-normalised per scan before export
  (`lgelib.data.intensity.normalize_intensity`), and nnU-Net's own per-image z-scoring is switched off (channel
  ``noNorm``). Z-scoring over each image's field of view put the same tissue at different values in a 300 mm real
  scan and a 160 mm synthetic crop (remote myocardium -0.15 vs -0.51 SD);
- **one budget** (``SegmentationSettings``) and one evaluation set (the real test cases, scored on their own grid).

Layout of ``<run_dir>/seg``::

    nnUNet_raw/DatasetXXX_LGE_<set>/   imagesTr, labelsTr, dataset.json, export.json; <set> is N0, N100, D200, ...
    nnUNet_preprocessed/, nnUNet_results/   nnU-Net's own folders, kept inside the run directory
    predictions/<arm>/<case>.nii.gz    label maps on each test scan's ORIGINAL voxel grid (file axes and affine)
    logs/<stage>-<dataset>.log         each nnU-Net stage's full output

Labels are 0 background, 1 myocardium without scar, 2 fibrosis; "myocardium" in every Dice is labels 1 and 2
together (the whole wall, scar included), "fibrosis" is label 2. Real cases are exported on their own voxel
grid, never on the canonical grid (that grid is placed with the reference masks, which a test scan must not
use); images are scaled with the same percentile normalisation as the canonical grid. Every volume is written
with its slice axis as the file's third axis, so nnU-Net
sees one axis layout; predictions are mapped back to each scan's own layout.

Each stage (plan + preprocess, train per fold, predict) runs in its own process (`lgelib.nnunet_stages`).
A model whose ``checkpoint_final.pth`` exists and loads is not retrained; an interrupted training resumes from
``checkpoint_latest.pth``; a changed input (other cases, other synthetic set, other budget) starts that model
afresh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from nibabel.orientations import apply_orientation

from lgelib.data.cases import ScanCase, read_case
from lgelib.data.dataset import Dataset
from lgelib.data.grid import orient_case
from lgelib.data.manifest import SliceOrder
from lgelib.data.nifti import write_volume
from lgelib.device import resolve_device
from lgelib.fingerprint import file_digest, fingerprint, record_matches, signed_fingerprint
from lgelib.fsutil import atomic_directory
from lgelib.table1 import regional_dice
from lgelib.nnunet_stages import SAMPLING_TRAINERS, TRAINER_FOLDER
from lgelib.log import logger
from lgelib.nnunet_export import (
    FILE_ENDING,
    LABELS,
    cross_validation_splits,
    dataset_name,
    export_test_images,
    export_training_set,
    to_scan_layout,
)
from lgelib.segmentation_setup import (
    Arm,
    BASELINE,
    PAPER_ARMS,
    NnunetFolders,
    SegmentationSettings,
    parse_arms,
)


# --- export --------------------------------------------------------------------------------------------------


# --- running the stages --------------------------------------------------------------------------------------


class NnunetStageFailed(RuntimeError):
    """An nnU-Net stage exited with an error: names the stage, the dataset and the log file with its output."""


_EPOCH = re.compile(r"epoch (\d+)/(\d+)")


def _worth_showing(line: str) -> bool:
    """Progress lines of a stage: every line but the per-epoch ones, of which every quarter of training shows."""
    match = _EPOCH.search(line)
    if match is None:
        return True
    epoch, epochs = int(match.group(1)), int(match.group(2))
    return epoch == epochs or epoch % max(1, epochs // 4) == 0


def run_stage(
    folders: NnunetFolders, stage: str, arguments: dict, log: Path, device: torch.device, echo: bool = True
) -> None:
    """Run one stage in a fresh Python process; its output goes to ``log``, its progress lines to stdout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=log.parent, delete=False) as handle:
        json.dump(arguments, handle)
    try:
        with open(log, "a", encoding="utf-8") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "lgelib.nnunet_stages", stage, handle.name],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=folders.environment(device, stage),
                cwd=folders.root,
            )
            assert process.stdout is not None
            for line in process.stdout:
                sink.write(line)
                sink.flush()  # the log can be followed while a stage runs
                if echo and line.startswith("[lgelib]") and _worth_showing(line):
                    logger.info(line.rstrip().removeprefix("[lgelib] "))
            code = process.wait()
    finally:
        os.unlink(handle.name)
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-25:])
        raise NnunetStageFailed(f"nnU-Net stage {stage!r} failed (exit {code}); full output in {log}:\n{tail}")


def model_folder(folders: NnunetFolders, name: str, settings: SegmentationSettings, arm: Arm = BASELINE) -> Path:
    trainer = SAMPLING_TRAINERS[arm.sampling]
    return folders.results / name / TRAINER_FOLDER.format(trainer=trainer, configuration=settings.configuration)


def training_curves(out_dir: Path | str, settings: SegmentationSettings, arms: "tuple | list | str") -> pd.DataFrame:
    """Per model (arm) and epoch, what nnU-Net logged while training: training and validation loss and its moving
    average of the validation pseudo-Dice (from each fold's final checkpoint, or the latest while training runs;
    read with ``weights_only=True``). Columns: model, fold, epoch, train_loss, val_loss, ema_pseudo_dice,
    epoch_s."""
    from lgelib.nnunet_stages import safe_load

    folders = NnunetFolders(Path(out_dir).resolve())
    rows = []
    for arm in parse_arms(arms):
        folder = model_folder(folders, dataset_name(folders, arm.training_set), settings, arm)
        for fold in settings.folds:
            candidates = [folder / f"fold_{fold}" / name for name in ("checkpoint_final.pth", "checkpoint_latest.pth")]
            checkpoint = next((path for path in candidates if path.is_file()), None)
            if checkpoint is None:
                continue
            logged = safe_load(checkpoint)["logging"]
            seconds = np.subtract(logged["epoch_end_timestamps"], logged["epoch_start_timestamps"])
            for epoch, values in enumerate(
                zip(logged["train_losses"], logged["val_losses"], logged["ema_fg_dice"], seconds)
            ):
                rows.append(
                    {
                        "model": arm.name,
                        "fold": fold,
                        "epoch": epoch + 1,
                        **dict(zip(("train_loss", "val_loss", "ema_pseudo_dice", "epoch_s"), map(float, values))),
                    }
                )
    return pd.DataFrame(
        rows, columns=["model", "fold", "epoch", "train_loss", "val_loss", "ema_pseudo_dice", "epoch_s"]
    )


def _checkpoint_loads(folders: NnunetFolders, checkpoint: Path, device: torch.device) -> bool:
    """Whether a final checkpoint loads safely (a torn or foreign file counts as not trained)."""
    try:
        run_stage(folders, "check", {"path": str(checkpoint)}, folders.root / "logs" / "check.log", device, echo=False)
        return True
    except NnunetStageFailed:
        return False


def is_trained(folders: NnunetFolders, name: str, settings: SegmentationSettings, arm: Arm = BASELINE) -> bool:
    folder = model_folder(folders, name, settings, arm)
    return all((folder / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in settings.folds)


def preprocessed_content_key(folders: NnunetFolders, name: str) -> str:
    """A key of everything in dataset ``name``'s preprocessed folder (file names and bytes, ``planned.json`` aside),
    signed with this machine's key: nnU-Net unpickles these files when it trains, so only files this machine wrote
    are reused."""
    folder = folders.preprocessed / name
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "planned.json")
    return signed_fingerprint([p.relative_to(folder).as_posix() for p in files], *files)


def preprocessed_is_current(folders: NnunetFolders, name: str, expected: dict) -> bool:
    """Whether dataset ``name`` was planned and preprocessed with ``expected`` settings, by this machine, and its
    files are unchanged since (`preprocessed_content_key`)."""
    record = folders.preprocessed / name / "planned.json"
    return record.is_file() and record_matches(
        record, settings=expected, content=preprocessed_content_key(folders, name)
    )


def preprocess(
    folders: NnunetFolders,
    name: str,
    settings: SegmentationSettings,
    device: torch.device,
    plans_from: str | None = None,
    echo: bool = True,
) -> None:
    """Plan (``plans_from`` None) or receive the plans of dataset ``plans_from``, and preprocess dataset ``name``;
    write the cross-validation splits for numbered folds. Redone, with its models removed, when the budget's plan
    settings or the source plans changed, or when its files are not the ones this machine wrote
    (`preprocessed_is_current`: a run directory copied from elsewhere is preprocessed again, not unpickled)."""
    source_plans = None if plans_from is None else folders.preprocessed / plans_from / "nnUNetPlans.json"
    expected = json.loads(
        json.dumps(
            {
                "plan": settings.plan_dict(),
                "plans_from": plans_from,
                "source_plans": None if source_plans is None else file_digest(source_plans),
            }
        )
    )
    record = folders.preprocessed / name / "planned.json"
    if preprocessed_is_current(folders, name, expected):
        return
    shutil.rmtree(folders.preprocessed / name, ignore_errors=True)
    shutil.rmtree(folders.results / name, ignore_errors=True)
    export = json.loads((folders.raw / name / "export.json").read_text())
    added = {**{c: None for c in export["synthetic"] + export.get("phantom", [])}, **export["duplicates"]}
    splits = None if settings.folds == ("all",) else cross_validation_splits(export["real"], added)
    # (slice, row, col) is also nnU-Net's axis order here: SimpleITK reverses the exported file axes.
    spacing = None if settings.target_spacing_mm is None else [float(v) for v in settings.target_spacing_mm]
    run_stage(
        folders,
        "plan",
        {
            "dataset_id": int(name[7:10]),
            "configuration": settings.configuration,
            "target_spacing": spacing,
            "batch_size": settings.batch_size,
            "patch_size": settings.patch_size,
            "max_features": settings.max_features,
            "processes": os.cpu_count() or 1,
            "plans_from": None if plans_from is None else int(plans_from[7:10]),
            "splits": splits,
        },
        folders.root / "logs" / f"plan-{name}.log",
        device,
        echo,
    )
    record.write_text(json.dumps({"settings": expected, "content": preprocessed_content_key(folders, name)}))


def train_model(
    folders: NnunetFolders,
    name: str,
    settings: SegmentationSettings,
    device: torch.device,
    arm: Arm = BASELINE,
    echo: bool = True,
) -> float:
    """Train every fold of ``arm`` on dataset ``name`` (preprocessed) that is not trained yet; returns seconds.
    A final checkpoint that does not load is trained again."""
    started = time.perf_counter()
    real_cases = json.loads((folders.raw / name / "export.json").read_text())["real"]
    folder = model_folder(folders, name, settings, arm)
    for fold in settings.folds:
        final = folder / f"fold_{fold}" / "checkpoint_final.pth"
        if final.is_file():
            if _checkpoint_loads(folders, final, device):
                continue
            final.unlink()
        run_stage(
            folders,
            "train",
            {
                "dataset_id": int(name[7:10]),
                "configuration": settings.configuration,
                "fold": fold,
                "device": str(device),
                "epochs": settings.epochs,
                "iterations_per_epoch": settings.iterations_per_epoch,
                "val_iterations_per_epoch": settings.val_iterations_per_epoch,
                "save_every": settings.save_every,
                "seed": settings.seed + arm.seed_offset,
                "foreground_oversampling": settings.foreground_oversampling,
                "sampling": arm.sampling,
                "real_cases": real_cases,
                "real_share": settings.real_share,
                "cpu_bf16": settings.cpu_bf16,
            },
            folders.root / "logs" / f"train-{name}-{arm.sampling}-fold_{fold}.log",
            device,
            echo,
        )
    return time.perf_counter() - started


def predict_test(
    folders: NnunetFolders,
    name: str,
    arm: Arm,
    real: Dataset,
    settings: SegmentationSettings,
    device: torch.device,
    echo: bool = True,
) -> dict[str, Path]:
    """Predict every real test scan with the arm's model; the label maps are written on each scan's original voxel
    grid (its file's axis order and affine). Returns case id -> prediction file."""
    out = folders.root / "predictions" / arm.name
    record = out / "predicted.json"
    folder = model_folder(folders, name, settings, arm)
    weights = [folder / f"fold_{f}" / "checkpoint_final.pth" for f in settings.folds]
    test_ids = list(real.split.test)
    sources = [p for c in real.cases if c.case_id in real.split.test for p in c.paths]
    key = fingerprint(
        {
            "model": str(folder.relative_to(folders.root)),
            "weights": [p.stat().st_mtime_ns for p in weights],
            "mirroring": settings.test_time_mirroring,
        },
        *map(Path, sources),
        length=16,
    )
    if record_matches(record, key=key) and all((out / f"{c}{FILE_ENDING}").is_file() for c in test_ids):
        return {c: out / f"{c}{FILE_ENDING}" for c in test_ids}
    mirroring = device.type == "cuda" if settings.test_time_mirroring is None else settings.test_time_mirroring
    with atomic_directory(out, replace=True) as staging:
        images = export_test_images(real, staging / "inputs")
        raw = staging / "nnunet"
        run_stage(
            folders,
            "predict",
            {
                "model_folder": str(folder),
                "folds": list(settings.folds),
                "inputs": [str(images[c]) for c in test_ids],
                "outputs": [str(raw / f"{c}{FILE_ENDING}") for c in test_ids],
                "device": str(device),
                "mirroring": mirroring,
            },
            folders.root / "logs" / f"predict-{arm.name}.log",
            device,
            echo,
        )
        files_by_id = {c.case_id: c for c in real.cases}
        for case_id in test_ids:
            original = nib.load(str(files_by_id[case_id].image))
            predicted = nib.load(str(raw / f"{case_id}{FILE_ENDING}"))
            labels = to_scan_layout(np.asarray(predicted.dataobj).astype(np.uint8), original.affine)
            if labels.shape != original.shape[:3]:
                raise RuntimeError(
                    f"{case_id}: prediction shape {labels.shape} does not match the scan's "
                    f"{original.shape[:3]} ({files_by_id[case_id].image})"
                )
            write_volume(staging / f"{case_id}{FILE_ENDING}", labels, original.affine)
        shutil.rmtree(raw)
        shutil.rmtree(staging / "inputs")
        (staging / "predicted.json").write_text(json.dumps({"key": key, "cases": test_ids}))
    return {c: out / f"{c}{FILE_ENDING}" for c in test_ids}


# --- evaluation ----------------------------------------------------------------------------------------------


def evaluate_case(case: ScanCase, prediction: Path | np.ndarray, slice_order: SliceOrder = "auto") -> pd.DataFrame:
    """Regional Dice (`lgelib.table1.regional_dice`) of one test scan's prediction (a file or a label array on the
    scan's grid), both oriented base first with the manifest's ``slice_order`` ("auto": the reference myocardium
    decides which end is basal, as on the canonical grid).

    Adds ``reference_ml`` and ``predicted_ml`` (the structure's volume in the region), ``has_scar`` (the case has
    reference fibrosis anywhere) and ``scored``: whether the row enters Table 1 (myocardium: always; fibrosis: only
    where the region has reference scar, so every arm is scored on the same rows). False scar on a scar-free case
    is reported as its volume instead (``false_scar_ml``)."""
    labels = np.asarray(nib.load(str(prediction)).dataobj) if isinstance(prediction, (str, Path)) else prediction
    if labels.shape != case.image.shape:
        raise ValueError(
            f"{case.case_id}: prediction {prediction if isinstance(prediction, (str, Path)) else ''} "
            f"has shape {labels.shape}, the scan {case.image.shape}"
        )
    _, (reference_myo, reference_fib), ornt, _ = orient_case(case, slice_order)
    predicted = apply_orientation(labels, ornt)
    table = regional_dice(
        reference_myo, reference_fib, predicted >= LABELS["myocardium"], predicted == LABELS["fibrosis"]
    )
    millilitres = float(np.prod(case.spacing)) / 1000.0
    table["reference_ml"] = table.pop("reference_voxels") * millilitres
    table["predicted_ml"] = table.pop("predicted_voxels") * millilitres
    table["has_scar"] = bool(reference_fib.any())
    table["scored"] = (table["n_slices"] > 0) & ((table["structure"] == "myocardium") | (table["reference_ml"] > 0))
    return table


def evaluate(real: Dataset, predictions: dict[str, Path]) -> pd.DataFrame:
    """Per test case, region and structure: Dice, whether it is scored, volumes; slice order from the manifest."""
    files_by_id = {c.case_id: c for c in real.cases}
    tables = [
        evaluate_case(read_case(files_by_id[c], real.label_mapping), p, real.manifest.slice_order).assign(case_id=c)
        for c, p in predictions.items()
    ]
    return pd.concat(tables, ignore_index=True)


@dataclass
class SegmentationResult:
    """Per-case Dice of every arm and the time each took (training includes preprocessing where it ran)."""

    per_case: pd.DataFrame
    seconds: pd.DataFrame


PER_CASE_COLUMNS = [
    "arm",
    "n_synthetic",
    "added",
    "sampling",
    "case_id",
    "region",
    "structure",
    "dice",
    "scored",
    "empty",
    "n_slices",
    "has_scar",
    "reference_ml",
    "predicted_ml",
]


def run_segmentation(
    real: Dataset,
    synthetic_dir: Path | None,
    out_dir: Path | str,
    settings: SegmentationSettings,
    arms: "tuple | list | str" = PAPER_ARMS,
    device: str | torch.device | None = None,
    echo: bool = True,
    added_dirs: dict[str, Path] | None = None,
) -> SegmentationResult:
    """The experiment of Table 1: one nnU-Net per arm (the baseline N0 always included, first), trained on the real
    training cases plus the arm's added cases, with N0's plan, and evaluated on the real test cases. ``N<n>`` arms
    add the first n volumes of ``synthetic_dir``; arms of another generated source (``T<n>``: ``targeted``,
    ``C<n>``: ``proportional``) those of ``added_dirs[source]`` (`lgelib.layout.RunLayout.generated_set`).

    Writes ``per_case_dice.csv`` (columns ``PER_CASE_COLUMNS``; ``n_synthetic`` is the number of added cases) in
    ``out_dir``.
    """
    import importlib.util

    if importlib.util.find_spec("nnunetv2") is None:
        raise RuntimeError(
            "the segmentation experiment needs nnU-Net: pip install 'lgelib[segmentation]' "
            "(or -e '.[segmentation]' in a clone)"
        )
    folders = NnunetFolders(Path(out_dir).resolve())
    torch_device = resolve_device(device)
    arms = parse_arms(arms)
    names = {}
    for arm in arms:  # export first, so that a changed baseline is known before anything is planned from it
        if arm.training_set not in names:
            added = (added_dirs or {}).get(arm.source, synthetic_dir)
            names[arm.training_set] = export_training_set(folders, real, added, arm, settings)[0]
    base = names[BASELINE.training_set]
    tables, timings = [], []
    for arm in arms:
        name = names[arm.training_set]
        if echo:
            state = "trained" if is_trained(folders, name, settings, arm) else "to train"
            logger.info(
                f"{arm}: {name} ({state}); {settings.budget_text(torch_device)}, {arm.sampling} sampling, "
                f"on {torch_device}"
            )
        started = time.perf_counter()
        preprocess(folders, name, settings, torch_device, None if name == base else base, echo)
        train_model(folders, name, settings, torch_device, arm, echo)
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predictions = predict_test(folders, name, arm, real, settings, torch_device, echo)
        predict_seconds = time.perf_counter() - started
        tables.append(
            evaluate(real, predictions).assign(
                arm=arm.name, n_synthetic=arm.n_added, added=arm.source, sampling=arm.sampling
            )
        )
        timings.append({"arm": arm.name, "dataset": name, "train_s": train_seconds, "predict_s": predict_seconds})
    per_case = pd.concat(tables, ignore_index=True)[PER_CASE_COLUMNS]
    per_case.to_csv(folders.root / "per_case_dice.csv", index=False)
    return SegmentationResult(per_case, pd.DataFrame(timings))


def plans_table(out_dir: Path | str, configuration: str) -> pd.DataFrame:
    """What each dataset of a run trains with, read from nnU-Net's own plans: U-Net stages and channels, target
    spacing, patch, batch, normalisation, and where the plan came from (so the chapter shows, not claims, that
    every arm shares N0's plan)."""
    folders = NnunetFolders(Path(out_dir))
    rows = []
    for folder in sorted(folders.preprocessed.glob("Dataset[0-9][0-9][0-9]_LGE_*")):
        plans_file, record = folder / "nnUNetPlans.json", folder / "planned.json"
        if not plans_file.is_file():
            continue
        chosen = json.loads(plans_file.read_text())["configurations"][configuration]
        architecture = chosen["architecture"]["arch_kwargs"]
        source = json.loads(record.read_text()).get("settings", {}).get("plans_from") if record.is_file() else None
        rows.append(
            {
                "dataset": folder.name,
                "training set": folder.name.split("_LGE_")[-1],
                "plan": f"from {source.split('_LGE_')[-1]}" if source else "planned",
                "U-Net stages": architecture["n_stages"],
                "channels": architecture["features_per_stage"],
                "spacing (mm)": chosen["spacing"],
                "patch": chosen["patch_size"],
                "batch": chosen["batch_size"],
                "normalisation": chosen["normalization_schemes"],
            }
        )
    return pd.DataFrame(rows)
