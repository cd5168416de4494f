"""Segmentation experiments (paper sections 3.4-3.5): nnU-Net trained on the real training cases plus N added
volumes, tested on the real test cases, all through nnunetv2's Python API.

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

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Literal
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from nibabel.orientations import apply_orientation, inv_ornt_aff

from lgelib.data.cases import ScanCase, read_case
from lgelib.data.dataset import Dataset
from lgelib.data.grid import inverse_ornt, orient_case
from lgelib.data.manifest import SliceOrder
from lgelib.data.intensity import normalize_intensity
from lgelib.data.nifti import slice_axis, voxel_spacing, write_volume
from lgelib.data.prepare import load_prepared
from lgelib.device import resolve_device
from lgelib.fingerprint import file_digest, fingerprint, record_matches, signed_fingerprint
from lgelib.fsutil import atomic_directory
from lgelib.table1 import regional_dice
from lgelib.nnunet_stages import SAMPLING_TRAINERS, TRAINER_FOLDER
from lgelib.log import logger

LABELS = {"background": 0, "myocardium": 1, "fibrosis": 2}
FILE_ENDING = ".nii.gz"
CHANNEL = "noNorm"
"""nnU-Net's channel name for "no normalisation": inputs are already percentile-normalised per scan."""

_ARM = re.compile(r"^(?P<kind>[ND])(?P<n>\d+)(?:-(?P<sampling>uniform|balanced))?(?:-seed(?P<seed>\d+))?$")


@dataclass(frozen=True)
class Arm:
    """One nnU-Net of the experiment: the real training cases plus ``n_added`` cases of ``source``, batches drawn
    with ``sampling``, trained with the budget's seed plus ``seed_offset``. Named ``N<n>`` (synthetic) or ``D<n>``
    (duplicates of real training cases), with ``-balanced`` for a fixed real share of every batch and ``-seed<k>``
    for another training seed: ``N0``, ``N200``, ``N200-balanced``, ``D200``, and ``N0-seed1``, the seed control
    (the same training set and network retrained with another seed: what retraining alone changes)."""

    n_added: int
    source: Literal["synthetic", "duplicates"] = "synthetic"
    sampling: Literal["uniform", "balanced"] = "uniform"
    seed_offset: int = 0

    def __post_init__(self) -> None:
        if self.n_added < 0:
            raise ValueError(f"n_added must be >= 0, got {self.n_added}")
        if self.source not in ("synthetic", "duplicates") or self.sampling not in ("uniform", "balanced"):
            raise ValueError(f"unknown arm {self.source}/{self.sampling}")
        if self.n_added == 0 and (self.source, self.sampling) != ("synthetic", "uniform"):
            raise ValueError("N0 (the real-only baseline) has nothing added: it is synthetic/uniform by convention")
        if self.seed_offset < 0:
            raise ValueError(f"seed_offset must be >= 0, got {self.seed_offset}")

    @property
    def training_set(self) -> str:
        """Which cases are trained on: N<n> or D<n> (uniform and balanced arms share their training set). A seed
        control gets its own copy (``N0s1``), so that its model has its own folder; its plan is N0's, as always."""
        cases = f"{'D' if self.source == 'duplicates' else 'N'}{self.n_added}"
        return cases + (f"s{self.seed_offset}" if self.seed_offset else "")

    @property
    def name(self) -> str:
        cases = f"{'D' if self.source == 'duplicates' else 'N'}{self.n_added}"
        return (
            cases
            + ("-balanced" if self.sampling == "balanced" else "")
            + (f"-seed{self.seed_offset}" if self.seed_offset else "")
        )

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: "str | int | Arm") -> "Arm":
        """``N200``, ``N200-balanced``, ``D200``, ``N0-seed1`` or a plain number (``200`` = ``N200``)."""
        if isinstance(text, Arm):
            return text
        if isinstance(text, int) or str(text).isdigit():
            return cls(int(text))
        match = _ARM.match(str(text).strip())
        if match is None:
            raise ValueError(
                f"arm {text!r} is not N<n>, D<n>, N<n>-balanced or D<n>-balanced, with an optional -seed<k> "
                "(e.g. N200-balanced, N0-seed1)"
            )
        return cls(
            int(match["n"]),
            "duplicates" if match["kind"] == "D" else "synthetic",
            match["sampling"] or "uniform",
            int(match["seed"] or 0),
        )


BASELINE = Arm(0)
PAPER_ARMS = (Arm(0), Arm(100), Arm(200))
"""The paper's three models."""
FULL_ARMS = (
    Arm(0),
    Arm(100),
    Arm(200),
    Arm(100, sampling="balanced"),
    Arm(200, sampling="balanced"),
    Arm(200, "duplicates"),
)
"""The paper's three, the same N with balanced batches, and the real-duplicate control at the largest N."""


def parse_arms(arms: "str | int | Arm | list | tuple") -> tuple[Arm, ...]:
    """Arms from names (a list, or one comma-separated string), the baseline N0 first and always present."""
    if isinstance(arms, str):
        arms = [a for a in arms.split(",") if a.strip()]
    elif isinstance(arms, (int, Arm)):
        arms = [arms]
    parsed = [Arm.parse(a) for a in arms]
    return tuple(dict.fromkeys([BASELINE, *parsed]))


@dataclass(frozen=True)
class SegmentationSettings:
    """nnU-Net's budget. The defaults are nnU-Net's own (3d_fullres, 1000 epochs of 250 iterations, 5-fold
    cross-validation whose 5 models are ensembled at test time, no test-time mirroring on a CPU).

    ``target_spacing_mm`` (slice, row, col), ``batch_size``, ``patch_size`` (voxels, in-plane for 2d; each a
    multiple of 2 ** (stages - 1) of nnU-Net's plan) and ``max_features`` (a cap on the U-Net's channels
    per stage) override what nnU-Net plans, ``foreground_oversampling`` its share of patches centred on a label
    (0.33); None keeps nnU-Net's choice. ``folds`` may be ``("all",)``: one model trained on every case; with
    numbered folds the cross-validation splits hold real cases only in validation (added cases always train).
    ``real_share`` is the real part of every batch in ``balanced`` arms. ``cpu_bf16`` trains under bfloat16
    autocast on a CPU (None: where the CPU computes bfloat16 natively; False: float32, nnU-Net's CPU default).
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
    real_share: float = 0.5
    cpu_bf16: bool | None = False

    def __post_init__(self) -> None:
        if self.configuration not in ("2d", "3d_fullres", "3d_lowres"):
            raise ValueError(f"configuration must be 2d, 3d_fullres or 3d_lowres, got {self.configuration!r}")
        if min(self.epochs, self.iterations_per_epoch, self.val_iterations_per_epoch, self.save_every) < 1:
            raise ValueError("epochs, iterations_per_epoch, val_iterations_per_epoch and save_every must be >= 1")
        for fold in self.folds:
            if fold != "all" and not (isinstance(fold, int) and 0 <= fold < 5):
                raise ValueError(f"folds are 0-4 or 'all', got {fold!r}")
        if not 0.0 < self.real_share < 1.0:
            raise ValueError(f"real_share must lie in (0, 1), got {self.real_share}")

    def plan_dict(self) -> dict:
        """What the plan and preprocessing depend on."""
        return {
            k: getattr(self, k)
            for k in ("configuration", "target_spacing_mm", "batch_size", "patch_size", "max_features")
        }

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
        env = {
            **os.environ,
            "nnUNet_raw": str(self.raw),
            "nnUNet_preprocessed": str(self.preprocessed),
            "nnUNet_results": str(self.results),
            "nnUNet_compile": "false",
            "nnUNet_def_n_proc": cores,
            "PYTHONUNBUFFERED": "1",
            # The stage processes import lgelib from wherever this one did, installed or not.
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
            ),
        }
        # Training augments in the training process itself on a CPU (no worker processes competing for the two
        # cores); nnU-Net's default worker count on CUDA. Planning needs at least 1 (0 crashes it).
        if device.type == "cpu":
            env["nnUNet_n_proc_DA"] = "0" if stage == "train" else "1"
        return env


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
        _write(
            labels_dir / f"{case.case_id}{FILE_ENDING}", label_map(case.myocardium, case.fibrosis), case.affine, ornt
        )


def _digest(paths: list[Path], extra: dict) -> str:
    return fingerprint(extra, *map(Path, paths), length=16)


def dataset_name(folders: NnunetFolders, training_set: str) -> str:
    """``DatasetXXX_LGE_<set>``: the id already used for this training set in the run, else the next free one."""
    folders.raw.mkdir(parents=True, exist_ok=True)
    existing = {int(p.name[7:10]): p.name for p in folders.raw.glob("Dataset[0-9][0-9][0-9]_*")}
    for name in existing.values():
        if name.endswith(f"_LGE_{training_set}"):
            return name
    return f"Dataset{max(existing, default=0) + 1:03d}_LGE_{training_set}"


def duplicate_ids(train_ids: list[str], n: int) -> dict[str, str]:
    """``n`` duplicate case ids, cycling through the real training cases in order: duplicate id -> real id."""
    return {f"dup{k:03d}_{train_ids[k % len(train_ids)]}": train_ids[k % len(train_ids)] for k in range(n)}


def cross_validation_splits(
    real_ids: list[str], added: dict[str, str | None], n_folds: int = 5, seed: int = 12345
) -> list[dict[str, list[str]]]:
    """nnU-Net ``splits_final.json`` folds in which only real cases are validated: the real cases are split into
    ``n_folds`` seeded folds; every added case trains in every fold, except a duplicate (``added`` maps it to its
    real case) whose real case is validated in that fold, which would leak it."""
    if len(real_ids) < n_folds:
        raise ValueError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} real training cases, got "
            f"{len(real_ids)}: train on every case instead (folds=('all',))"
        )
    order = list(np.random.default_rng(seed).permutation(sorted(real_ids)))
    folds = [order[k::n_folds] for k in range(n_folds)]
    splits = []
    for validation in folds:
        held = set(validation)
        train = [c for c in sorted(real_ids) if c not in held]
        train += [c for c, origin in added.items() if origin not in held]
        splits.append({"train": train, "val": sorted(validation)})
    return splits


def export_training_set(
    folders: NnunetFolders, real: Dataset, synthetic_dir: Path | None, arm: Arm, settings: SegmentationSettings
) -> tuple[str, bool]:
    """nnU-Net's raw dataset of the real training cases plus the arm's added cases (the first ``n_added``
    synthetic volumes, or as many duplicates of the real training cases).

    Returns the dataset name and whether it changed. When it did, that dataset's preprocessed data and models
    are removed, so nothing trained on other data is reused.
    """
    train_ids = set(real.split.train)
    train_files = [c for c in real.cases if c.case_id in train_ids]
    synthetic_ids: list[str] = []
    synthetic = None
    duplicates: dict[str, str] = {}
    if arm.n_added and arm.source == "synthetic":
        if synthetic_dir is None:
            raise ValueError(f"arm {arm}: {arm.n_added} synthetic volumes asked for but no synthesis folder given")
        synthetic = load_prepared(synthetic_dir)
        if len(synthetic.case_ids) < arm.n_added:
            raise ValueError(
                f"{synthetic_dir} holds {len(synthetic.case_ids)} synthetic volumes, fewer than the "
                f"{arm.n_added} of arm {arm}: synthesise more (n_synthetic)"
            )
        synthetic_ids = synthetic.case_ids[: arm.n_added]
    elif arm.n_added:
        duplicates = duplicate_ids([c.case_id for c in train_files], arm.n_added)
    sources = [p for c in train_files for p in c.paths]
    if synthetic_ids:
        sources += [
            synthetic_dir / "cases" / c / f"{role}.nii.gz"
            for c in synthetic_ids
            for role in ("image", "myocardium", "fibrosis")
        ]
    key = _digest(
        sources,
        {"labels": LABELS, "format": 3, "channel": CHANNEL, "duplicates": duplicates, "budget": settings.to_dict()},
    )
    name = dataset_name(folders, arm.training_set)
    target = folders.raw / name
    record = target / "export.json"
    if record_matches(record, key=key):
        return name, False
    for stale in (folders.preprocessed / name, folders.results / name):
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_directory(target, replace=True) as staging:
        images, labels = staging / "imagesTr", staging / "labelsTr"
        images.mkdir()
        labels.mkdir()
        for files in train_files:
            export_real_case(read_case(files, real.label_mapping), images, labels)
        for duplicate, origin in duplicates.items():
            for folder, suffix in ((images, "_0000"), (labels, "")):
                shutil.copyfile(folder / f"{origin}{suffix}{FILE_ENDING}", folder / f"{duplicate}{suffix}{FILE_ENDING}")
        if synthetic is not None:
            for i, case_id in enumerate(synthetic_ids):
                affine = nib.load(str(synthetic_dir / "cases" / case_id / "image.nii.gz")).affine
                ornt = slice_axis_last(affine)
                _write(images / f"{case_id}_0000{FILE_ENDING}", synthetic.images[i], affine, ornt)
                _write(
                    labels / f"{case_id}{FILE_ENDING}",
                    label_map(synthetic.myocardium[i], synthetic.fibrosis[i]),
                    affine,
                    ornt,
                )
        added = synthetic_ids + list(duplicates)
        dataset_json = {
            "channel_names": {"0": CHANNEL},
            "labels": LABELS,
            "numTraining": len(train_files) + len(added),
            "file_ending": FILE_ENDING,
            "description": f"{len(train_files)} real training cases of {real.manifest.name} + "
            f"{len(synthetic_ids)} synthetic volumes + {len(duplicates)} duplicates of "
            "real training cases",
        }
        (staging / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
        (staging / "export.json").write_text(
            json.dumps(
                {
                    "key": key,
                    "real": [c.case_id for c in train_files],
                    "synthetic": synthetic_ids,
                    "duplicates": duplicates,
                },
                indent=1,
            )
        )
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
    added = {**{c: None for c in export["synthetic"]}, **export["duplicates"]}
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
    key = _digest(
        sources,
        {
            "model": str(folder.relative_to(folders.root)),
            "weights": [p.stat().st_mtime_ns for p in weights],
            "mirroring": settings.test_time_mirroring,
        },
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
) -> SegmentationResult:
    """The experiment of Table 1: one nnU-Net per arm (the baseline N0 always included, first), trained on the real
    training cases plus the arm's added cases, with N0's plan, and evaluated on the real test cases.

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
            names[arm.training_set] = export_training_set(folders, real, synthetic_dir, arm, settings)[0]
    base = names[BASELINE.training_set]
    tables, timings = [], []
    for arm in arms:
        name = names[arm.training_set]
        if echo:
            state = "trained" if is_trained(folders, name, settings, arm) else "to train"
            logger.info(
                f"{arm}: {name} ({state}); {settings.configuration}, {settings.epochs} epochs x "
                f"{settings.iterations_per_epoch} iterations, folds {list(settings.folds)}, {arm.sampling} "
                f"sampling, on {torch_device}"
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
