"""Segmentation experiments (paper sections 3.4-3.5): nnU-Net trained on the real training cases plus N synthetic
volumes, tested on the real test cases, all through nnunetv2's Python API.

Layout of ``<run_dir>/seg``::

    nnUNet_raw/DatasetXXX_LGE_N<n>/    imagesTr, labelsTr, dataset.json, export.json (what went in)
    nnUNet_preprocessed/, nnUNet_results/   nnU-Net's own folders, kept inside the run directory
    predictions/N<n>/<case>.nii.gz     label maps on each test scan's ORIGINAL voxel grid (file axes and affine)
    logs/<stage>-N<n>.log              each nnU-Net stage's full output

Labels are 0 background, 1 myocardium without scar, 2 fibrosis; "myocardium" in every Dice is labels 1 and 2
together (the whole wall, scar included), "fibrosis" is label 2. Real cases are exported on their own voxel
grid, never on the canonical grid (that grid is placed with the reference masks, which a test scan must not
use); images are scaled with the same percentile normalisation as the canonical grid
(`lgelib.data.intensity.normalize_intensity`), so real and synthetic images share an intensity range before
nnU-Net's own z-scoring. Every volume is written with its slice axis as the file's third axis, so nnU-Net
sees one axis layout; predictions are mapped back to each scan's own layout.

Each stage (plan + preprocess, train per fold, predict) runs in its own process (`lgelib.nnunet_stages`).
A model whose ``checkpoint_final.pth`` exists is not retrained; an interrupted training resumes from
``checkpoint_latest.pth``; a changed input (other cases, other synthetic set, other budget) starts that model
afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from nibabel.orientations import apply_orientation, inv_ornt_aff

from lgelib.data.cases import ScanCase, read_case
from lgelib.data.dataset import Dataset
from lgelib.data.grid import inverse_ornt, orient_case
from lgelib.data.intensity import normalize_intensity
from lgelib.data.nifti import slice_axis, voxel_spacing, write_volume
from lgelib.data.prepare import load_prepared
from lgelib.fsutil import atomic_directory
from lgelib.metrics import regional_dice
from lgelib.nnunet_stages import TRAINER_FOLDER

LABELS = {"background": 0, "myocardium": 1, "fibrosis": 2}
FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class SegmentationSettings:
    """nnU-Net's budget. The defaults are nnU-Net's own (3d_fullres, 1000 epochs of 250 iterations, 5-fold
    cross-validation whose 5 models are ensembled at test time, no test-time mirroring on a CPU).

    ``target_spacing_mm`` (slice, row, col), ``batch_size``, ``patch_size`` (voxels, in-plane for 2d; each a
    multiple of 2 ** (stages - 1) of nnU-Net's plan) and ``max_features`` (a cap on the U-Net's channels
    per stage) override what nnU-Net plans, ``foreground_oversampling`` its share of patches centred on a label
    (0.33); None keeps nnU-Net's choice. ``folds`` may be ``("all",)``: one model trained on every case.
    """

    configuration: str = "3d_fullres"
    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations_per_epoch: int = 50
    folds: tuple[int | str, ...] = (0, 1, 2, 3, 4)
    target_spacing_mm: tuple[float, float, float] | None = None
    batch_size: int | None = None
    patch_size: tuple[int, ...] | None = None
    max_features: int | None = None
    foreground_oversampling: float | None = None
    save_every: int = 50
    test_time_mirroring: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.configuration not in ("2d", "3d_fullres", "3d_lowres"):
            raise ValueError(f"configuration must be 2d, 3d_fullres or 3d_lowres, got {self.configuration!r}")
        if min(self.epochs, self.iterations_per_epoch, self.val_iterations_per_epoch, self.save_every) < 1:
            raise ValueError("epochs, iterations_per_epoch, val_iterations_per_epoch and save_every must be >= 1")
        for fold in self.folds:
            if fold != "all" and not (isinstance(fold, int) and 0 <= fold < 5):
                raise ValueError(f"folds are 0-4 or 'all', got {fold!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NnunetFolders:
    """nnU-Net's three folders inside ``<run_dir>/seg``, and what the stage processes get in their environment."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "nnUNet_results"

    def environment(self, device: torch.device, stage: str) -> dict[str, str]:
        cores = str(os.cpu_count() or 1)
        env = {**os.environ, "nnUNet_raw": str(self.raw), "nnUNet_preprocessed": str(self.preprocessed),
               "nnUNet_results": str(self.results), "nnUNet_compile": "false", "nnUNet_def_n_proc": cores,
               "PYTHONUNBUFFERED": "1",
               # The stage processes import lgelib from wherever this one did, installed or not.
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                           os.environ.get("PYTHONPATH")]))}
        # Training augments in the training process itself on a CPU (no worker processes competing for the two
        # cores); nnU-Net's default worker count on CUDA. Planning needs at least 1 (0 crashes it).
        if device.type == "cpu":
            env["nnUNet_n_proc_DA"] = "0" if stage == "train" else "1"
        return env


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None: CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --- export --------------------------------------------------------------------------------------------------

def slice_axis_last(affine: np.ndarray) -> np.ndarray:
    """nibabel ornt that moves the axis with the largest voxel spacing (the slice axis) to the third position,
    keeping the in-plane axes in their order and no axis flipped."""
    through_plane = slice_axis(voxel_spacing(affine))
    order = [a for a in range(3) if a != through_plane] + [through_plane]
    ornt = np.zeros((3, 2))
    for target, source in enumerate(order):
        ornt[source] = (target, 1)
    return ornt


def to_scan_layout(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Undo `slice_axis_last` for a scan with this ``affine``: a volume as exported back to the file's axes."""
    return apply_orientation(volume, inverse_ornt(slice_axis_last(affine)))


def label_map(myocardium: np.ndarray, fibrosis: np.ndarray) -> np.ndarray:
    """0 background, 1 myocardium without scar, 2 fibrosis."""
    labels = np.asarray(myocardium, bool).astype(np.uint8)
    labels[np.asarray(fibrosis, bool)] = LABELS["fibrosis"]
    return labels


def _write(path: Path, data: np.ndarray, affine: np.ndarray, ornt: np.ndarray) -> None:
    """Write ``data`` (on the grid of ``affine``) reoriented by ``ornt``, with the matching affine."""
    write_volume(path, apply_orientation(data, ornt), affine @ inv_ornt_aff(ornt, data.shape))


def export_real_case(case: ScanCase, images_dir: Path, labels_dir: Path | None) -> None:
    """A real case on its own grid: normalised image (and label map), slice axis last."""
    ornt = slice_axis_last(case.affine)
    _write(images_dir / f"{case.case_id}_0000{FILE_ENDING}", normalize_intensity(case.image), case.affine, ornt)
    if labels_dir is not None:
        _write(labels_dir / f"{case.case_id}{FILE_ENDING}", label_map(case.myocardium, case.fibrosis), case.affine,
               ornt)


def _digest(paths: list[Path], extra: dict) -> str:
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def dataset_name(folders: NnunetFolders, n_synthetic: int) -> str:
    """``DatasetXXX_LGE_N<n>``: the id already used for this N in the run, else the next free one."""
    folders.raw.mkdir(parents=True, exist_ok=True)
    existing = {int(p.name[7:10]): p.name for p in folders.raw.glob("Dataset[0-9][0-9][0-9]_*")}
    for name in existing.values():
        if name.endswith(f"_LGE_N{n_synthetic}"):
            return name
    return f"Dataset{max(existing, default=0) + 1:03d}_LGE_N{n_synthetic}"


def export_training_set(folders: NnunetFolders, real: Dataset, synthetic_dir: Path | None, n_synthetic: int,
                        settings: SegmentationSettings) -> tuple[str, bool]:
    """nnU-Net's raw dataset of the real training cases plus the first ``n_synthetic`` synthetic ones.

    Returns the dataset name and whether it changed. When it did, that dataset's preprocessed data and models
    are removed, so nothing trained on other data is reused.
    """
    train_ids = set(real.split.train)
    train_files = [c for c in real.cases if c.case_id in train_ids]
    synthetic_ids: list[str] = []
    synthetic = None
    if n_synthetic:
        if synthetic_dir is None:
            raise ValueError(f"N={n_synthetic} synthetic volumes asked for but no synthesis folder given")
        synthetic = load_prepared(synthetic_dir)
        if len(synthetic.case_ids) < n_synthetic:
            raise ValueError(f"{synthetic_dir} holds {len(synthetic.case_ids)} synthetic volumes, fewer than the "
                             f"N={n_synthetic} asked for: synthesise more (n_synthetic)")
        synthetic_ids = synthetic.case_ids[:n_synthetic]
    sources = [p for c in train_files for p in c.paths]
    if synthetic_ids:
        sources += [synthetic_dir / "cases" / c / f"{role}.nii.gz" for c in synthetic_ids
                    for role in ("image", "myocardium", "fibrosis")]
    key = _digest(sources, {"labels": LABELS, "format": 2, "budget": settings.to_dict()})
    name = dataset_name(folders, n_synthetic)
    target = folders.raw / name
    record = target / "export.json"
    if record.is_file() and json.loads(record.read_text())["key"] == key:
        return name, False
    for stale in (folders.preprocessed / name, folders.results / name):
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_directory(target, replace=True) as staging:
        images, labels = staging / "imagesTr", staging / "labelsTr"
        images.mkdir()
        labels.mkdir()
        for files in train_files:
            export_real_case(read_case(files, real.label_mapping), images, labels)
        if synthetic is not None:
            for i, case_id in enumerate(synthetic_ids):
                affine = nib.load(str(synthetic_dir / "cases" / case_id / "image.nii.gz")).affine
                ornt = slice_axis_last(affine)
                _write(images / f"{case_id}_0000{FILE_ENDING}", synthetic.images[i], affine, ornt)
                _write(labels / f"{case_id}{FILE_ENDING}", label_map(synthetic.myocardium[i], synthetic.fibrosis[i]),
                       affine, ornt)
        dataset_json = {"channel_names": {"0": "LGE"}, "labels": LABELS,
                        "numTraining": len(train_files) + len(synthetic_ids), "file_ending": FILE_ENDING,
                        "description": f"{len(train_files)} real training cases of {real.manifest.name} + "
                                       f"{len(synthetic_ids)} synthetic volumes"}
        (staging / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
        (staging / "export.json").write_text(json.dumps(
            {"key": key, "real": [c.case_id for c in train_files], "synthetic": synthetic_ids}, indent=1))
    return name, True


def export_test_images(real: Dataset, out: Path) -> dict[str, Path]:
    """The real test scans as nnU-Net reads them (normalised, slice axis last) in ``out``; case id -> file."""
    out.mkdir(parents=True, exist_ok=True)
    files, test_ids = {}, set(real.split.test)
    for case in real.cases:
        if case.case_id in test_ids:
            export_real_case(read_case(case, real.label_mapping), out, None)
            files[case.case_id] = out / f"{case.case_id}_0000{FILE_ENDING}"
    return files


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


def run_stage(folders: NnunetFolders, stage: str, arguments: dict, log: Path, device: torch.device,
              echo: bool = True) -> None:
    """Run one stage in a fresh Python process; its output goes to ``log``, its progress lines to stdout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=log.parent, delete=False) as handle:
        json.dump(arguments, handle)
    try:
        with open(log, "a", encoding="utf-8") as sink:
            process = subprocess.Popen([sys.executable, "-m", "lgelib.nnunet_stages", stage, handle.name],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       env=folders.environment(device, stage), cwd=folders.root)
            assert process.stdout is not None
            for line in process.stdout:
                sink.write(line)
                if echo and line.startswith("[lgelib]") and _worth_showing(line):
                    print(line.rstrip(), flush=True)
            code = process.wait()
    finally:
        os.unlink(handle.name)
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-25:])
        raise NnunetStageFailed(f"nnU-Net stage {stage!r} failed (exit {code}); full output in {log}:\n{tail}")


def model_folder(folders: NnunetFolders, name: str, settings: SegmentationSettings) -> Path:
    return folders.results / name / TRAINER_FOLDER.format(configuration=settings.configuration)


def is_trained(folders: NnunetFolders, name: str, settings: SegmentationSettings) -> bool:
    folder = model_folder(folders, name, settings)
    return all((folder / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in settings.folds)


def train_model(folders: NnunetFolders, name: str, settings: SegmentationSettings, device: torch.device,
                echo: bool = True) -> float:
    """Plan, preprocess and train every fold of dataset ``name`` that is not trained yet; returns seconds spent."""
    started = time.perf_counter()
    dataset_id = int(name[7:10])
    logs = folders.root / "logs"
    if not (folders.preprocessed / name / "planned.json").is_file():
        # (slice, row, col) is also nnU-Net's axis order here: SimpleITK reverses the exported file axes.
        spacing = None if settings.target_spacing_mm is None else [float(s) for s in settings.target_spacing_mm]
        run_stage(folders, "plan", {"dataset_id": dataset_id, "configuration": settings.configuration,
                                    "target_spacing": spacing, "batch_size": settings.batch_size,
                                    "patch_size": settings.patch_size,
                                    "max_features": settings.max_features,
                                    "processes": os.cpu_count() or 1}, logs / f"plan-{name}.log", device, echo)
        (folders.preprocessed / name / "planned.json").write_text(json.dumps(settings.to_dict()))
    for fold in settings.folds:
        if (model_folder(folders, name, settings) / f"fold_{fold}" / "checkpoint_final.pth").is_file():
            continue
        run_stage(folders, "train", {"dataset_id": dataset_id, "configuration": settings.configuration,
                                     "fold": fold, "device": str(device), "epochs": settings.epochs,
                                     "iterations_per_epoch": settings.iterations_per_epoch,
                                     "val_iterations_per_epoch": settings.val_iterations_per_epoch,
                                     "save_every": settings.save_every, "seed": settings.seed,
                                     "foreground_oversampling": settings.foreground_oversampling},
                  logs / f"train-{name}-fold_{fold}.log", device, echo)
    return time.perf_counter() - started


def predict_test(folders: NnunetFolders, name: str, n_synthetic: int, real: Dataset, settings: SegmentationSettings,
                 device: torch.device, echo: bool = True) -> dict[str, Path]:
    """Predict every real test scan with the model of dataset ``name``; the label maps are written on each
    scan's original voxel grid (its file's axis order and affine). Returns case id -> prediction file."""
    out = folders.root / "predictions" / f"N{n_synthetic}"
    record = out / "predicted.json"
    weights = [model_folder(folders, name, settings) / f"fold_{f}" / "checkpoint_final.pth" for f in settings.folds]
    test_ids = list(real.split.test)
    sources = [p for c in real.cases if c.case_id in real.split.test for p in c.paths]
    key = _digest(sources, {"model": name, "weights": [p.stat().st_mtime_ns for p in weights],
                            "mirroring": settings.test_time_mirroring})
    if record.is_file() and json.loads(record.read_text())["key"] == key and all(
            (out / f"{c}{FILE_ENDING}").is_file() for c in test_ids):
        return {c: out / f"{c}{FILE_ENDING}" for c in test_ids}
    mirroring = device.type == "cuda" if settings.test_time_mirroring is None else settings.test_time_mirroring
    with atomic_directory(out, replace=True) as staging:
        images = export_test_images(real, staging / "inputs")
        raw = staging / "nnunet"
        run_stage(folders, "predict", {"model_folder": str(model_folder(folders, name, settings)),
                                       "folds": list(settings.folds), "inputs": [str(images[c]) for c in test_ids],
                                       "outputs": [str(raw / f"{c}{FILE_ENDING}") for c in test_ids],
                                       "device": str(device), "mirroring": mirroring},
                  folders.root / "logs" / f"predict-{name}.log", device, echo)
        files_by_id = {c.case_id: c for c in real.cases}
        for case_id in test_ids:
            original = nib.load(str(files_by_id[case_id].image))
            predicted = nib.load(str(raw / f"{case_id}{FILE_ENDING}"))
            labels = to_scan_layout(np.asarray(predicted.dataobj).astype(np.uint8), original.affine)
            if labels.shape != original.shape[:3]:
                raise RuntimeError(f"{case_id}: prediction shape {labels.shape} does not match the scan's "
                                   f"{original.shape[:3]} ({files_by_id[case_id].image})")
            write_volume(staging / f"{case_id}{FILE_ENDING}", labels, original.affine)
        shutil.rmtree(raw)
        shutil.rmtree(staging / "inputs")
        (staging / "predicted.json").write_text(json.dumps({"key": key, "cases": test_ids}))
    return {c: out / f"{c}{FILE_ENDING}" for c in test_ids}


# --- evaluation ----------------------------------------------------------------------------------------------

def evaluate_case(case: ScanCase, prediction: Path) -> pd.DataFrame:
    """Regional Dice (`lgelib.metrics.regional_dice`) of one test scan's prediction, both oriented base first
    (the reference myocardium decides which end is basal, as on the canonical grid)."""
    labels = np.asarray(nib.load(str(prediction)).dataobj)
    if labels.shape != case.image.shape:
        raise ValueError(f"{case.case_id}: prediction {prediction} has shape {labels.shape}, "
                         f"the scan {case.image.shape}")
    _, (reference_myo, reference_fib), ornt, _ = orient_case(case)
    predicted = apply_orientation(labels, ornt)
    return regional_dice(reference_myo, reference_fib, predicted >= LABELS["myocardium"],
                         predicted == LABELS["fibrosis"])


def evaluate(real: Dataset, predictions: dict[str, Path]) -> pd.DataFrame:
    """Per test case, region and structure: Dice, whether the region was empty in both, its slice count."""
    files_by_id = {c.case_id: c for c in real.cases}
    tables = [evaluate_case(read_case(files_by_id[c], real.label_mapping), p).assign(case_id=c)
              for c, p in predictions.items()]
    return pd.concat(tables, ignore_index=True)


@dataclass
class SegmentationResult:
    """Per-case Dice of every model and the time each took (training includes planning and preprocessing)."""

    per_case: pd.DataFrame
    seconds: pd.DataFrame


def run_segmentation(real: Dataset, synthetic_dir: Path | None, out_dir: Path | str,
                     settings: SegmentationSettings, n_synthetic: tuple[int, ...] = (0, 100, 200),
                     device: str | torch.device | None = None, echo: bool = True) -> SegmentationResult:
    """The experiment of Table 1: one nnU-Net per N in ``n_synthetic``, trained on the real training cases plus
    the first N synthetic volumes of ``synthetic_dir``, evaluated on the real test cases.

    Writes ``per_case_dice.csv`` (columns n_synthetic, case_id, region, structure, dice, empty, n_slices) in
    ``out_dir``.
    """
    folders = NnunetFolders(Path(out_dir).resolve())
    torch_device = resolve_device(device)
    tables, timings = [], []
    for n in n_synthetic:
        name, changed = export_training_set(folders, real, synthetic_dir, n, settings)
        if echo:
            state = "trained" if is_trained(folders, name, settings) else ("new" if changed else "resuming")
            print(f"[lgelib] N={n}: {name} ({state}); {settings.configuration}, {settings.epochs} epochs x "
                  f"{settings.iterations_per_epoch} iterations, folds {list(settings.folds)}, on {torch_device}",
                  flush=True)
        train_seconds = train_model(folders, name, settings, torch_device, echo)
        started = time.perf_counter()
        predictions = predict_test(folders, name, n, real, settings, torch_device, echo)
        predict_seconds = time.perf_counter() - started
        tables.append(evaluate(real, predictions).assign(n_synthetic=n))
        timings.append({"n_synthetic": n, "dataset": name, "train_s": train_seconds, "predict_s": predict_seconds})
    per_case = pd.concat(tables, ignore_index=True)[
        ["n_synthetic", "case_id", "region", "structure", "dice", "empty", "n_slices"]]
    per_case.to_csv(folders.root / "per_case_dice.csv", index=False)
    return SegmentationResult(per_case, pd.DataFrame(timings))
