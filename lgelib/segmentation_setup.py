"""What a segmentation experiment is made of, before anything runs: its arms (`Arm`: what each nnU-Net adds to the
real training cases, how it samples batches, its seed), its nnU-Net budget (`SegmentationSettings`) and its folders
(`NnunetFolders`). Light to import: the profiles (`lgelib.config`) use it without loading nnU-Net's side."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

_ARM = re.compile(r"^(?P<kind>[NDPTC])(?P<n>\d+)(?:-(?P<sampling>uniform|balanced))?(?:-seed(?P<seed>\d+))?$")


_PREFIX = {"synthetic": "N", "duplicates": "D", "phantom": "P", "targeted": "T", "proportional": "C"}
"""Each source of added cases and the letter its arms are named with."""


@dataclass(frozen=True)
class Arm:
    """One nnU-Net of the experiment: the real training cases plus ``n_added`` cases of ``source``, batches drawn
    with ``sampling``, trained with the budget's seed plus ``seed_offset``. Named ``N<n>`` (synthetic volumes of
    the generator), ``T<n>`` (volumes of the scar-conditioned generator that even out the training set's scar
    levels, `lgelib.run.Run.targeted_synthesis`), ``C<n>`` (volumes of the same conditioned generator drawn in
    the training set's own scar proportions: T<n>'s control, which changes the model but not the targeting),
    ``D<n>`` (duplicates of real training cases) or ``P<n>`` (new subjects of the calibrated phantom,
    `lgelib.data.phantom`: a physics simulator as a baseline generator), with ``-balanced`` for a fixed real share
    of every batch and ``-seed<k>`` for another training seed: ``N0``, ``N200``, ``N200-balanced``,
    ``T100-balanced``, ``C100-balanced``, ``D200``, ``P200-balanced``, and ``N0-seed1``, the seed control (the
    same training set and network retrained with another seed: what retraining alone changes)."""

    n_added: int
    source: Literal["synthetic", "duplicates", "phantom", "targeted", "proportional"] = "synthetic"
    sampling: Literal["uniform", "balanced"] = "uniform"
    seed_offset: int = 0

    def __post_init__(self) -> None:
        if self.n_added < 0:
            raise ValueError(f"n_added must be >= 0, got {self.n_added}")
        if self.source not in _PREFIX or self.sampling not in ("uniform", "balanced"):
            raise ValueError(f"unknown arm {self.source}/{self.sampling}")
        if self.n_added == 0 and (self.source, self.sampling) != ("synthetic", "uniform"):
            raise ValueError("N0 (the real-only baseline) has nothing added: it is synthetic/uniform by convention")
        if self.seed_offset < 0:
            raise ValueError(f"seed_offset must be >= 0, got {self.seed_offset}")

    @property
    def training_set(self) -> str:
        """Which cases are trained on: N<n> or D<n> (uniform and balanced arms share their training set). A seed
        control gets its own copy (``N0s1``), so that its model has its own folder; its plan is N0's, as always."""
        cases = f"{_PREFIX[self.source]}{self.n_added}"
        return cases + (f"s{self.seed_offset}" if self.seed_offset else "")

    @property
    def name(self) -> str:
        cases = f"{_PREFIX[self.source]}{self.n_added}"
        return (
            cases
            + ("-balanced" if self.sampling == "balanced" else "")
            + (f"-seed{self.seed_offset}" if self.seed_offset else "")
        )

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: "str | int | Arm") -> "Arm":
        """``N200``, ``N200-balanced``, ``T100-balanced``, ``C100-balanced``, ``D200``, ``P200``, ``N0-seed1`` or
        a plain number (``200`` = ``N200``)."""
        if isinstance(text, Arm):
            return text
        if isinstance(text, int) or str(text).isdigit():
            return cls(int(text))
        match = _ARM.match(str(text).strip())
        if match is None:
            raise ValueError(
                f"arm {text!r} is not N<n>, T<n>, C<n>, D<n> or P<n> (optionally -balanced), with an optional -seed<k> "
                "(e.g. N200-balanced, P200-balanced, N0-seed1)"
            )
        return cls(
            int(match["n"]),
            {prefix: source for source, prefix in _PREFIX.items()}[match["kind"]],
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
    ``phantom_seed`` seeds the new phantom subjects of ``P<n>`` arms (it must differ from the seed of a phantom
    cohort used as the real data, or the arm would add the test subjects); ``phantom_calibration`` is
    ``"training"`` (the scar-free share and healthy-myocardium brightness of the split's training cases,
    `lgelib.data.phantom.calibrate`: the simulator knows what the learned generator knows) or ``"default"`` (the
    settings hand-tuned once on all 85 EMIDEC-derived cases, test cases included).
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
    phantom_seed: int = 1000
    phantom_calibration: str = "training"

    def __post_init__(self) -> None:
        if self.phantom_calibration not in ("training", "default"):
            raise ValueError(f"phantom_calibration must be 'training' or 'default', got {self.phantom_calibration!r}")
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

    def autocasts_bf16(self, device: str | torch.device) -> bool:
        """Whether nnU-Net trains under bfloat16 autocast on ``device``: only on a CPU, as ``cpu_bf16`` says (None:
        where the CPU computes bfloat16 natively). On CUDA nnU-Net autocasts to float16 itself."""
        from lgelib.device import cpu_bf16_autocast

        return cpu_bf16_autocast(self.cpu_bf16, device)

    def budget_text(self, device: str | torch.device) -> str:
        """The budget in one phrase, as the logs and chapter 06 print it: configuration, epochs x iterations, folds
        and the training precision on ``device``."""
        if torch.device(device).type == "cuda":
            precision = "nnU-Net's float16 autocast"
        else:
            precision = "bfloat16 autocast" if self.autocasts_bf16(device) else "float32"
        return (
            f"{self.configuration}, {self.epochs} epochs x {self.iterations_per_epoch} iterations, "
            f"folds {list(self.folds)}, {precision}"
        )


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
