"""Where one run keeps its files: every stage's folder named once (as nnU-Net's ``paths.py`` names its folders).

A run directory::

    run.json            the run's resolved settings (`lgelib.run`), written once per run
    data/               the dataset on the canonical grid (chapter 01)
    inr/                one fitted INR per training case (chapter 02)
    inr-heldout/        INRs of the test cases, for held-out checks (chapter 03)
    inr2vec/            the encoder and decoder, and the training latents (chapter 03)
    edm/                the latent diffusion model (chapter 04)
    synth/              the synthetic volumes and their masks (chapter 04)
    edm-conditioned/    the diffusion model conditioned on scar descriptors (chapter 07)
    synth-conditioned/  volumes drawn for each scar request, and unconditionally, from it (chapter 07)
    synth-targeted/     conditioned volumes that even out the training set's scar levels: the T<n> arms
    synth-proportional/ conditioned volumes in the training set's own scar proportions: the C<n> arms (T's control)
    seg/                nnU-Net's folders, predictions and per-case Dice (chapter 06)
    enhance/            the scar-enhancement denoisers, localized (local/) and global (global/) (chapter 08)
    repeats/            the same stages on further split seeds (``split-<seed>/``), sharing ``inr-cases/``
    notebooks/          the executed notebooks (``lgelib book``)
    book/               the book's source and, in ``_build/html``, the built book
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository (or installed package's parent): relative manifest paths and the notebooks are found from here."""


@dataclass(frozen=True)
class RunLayout:
    """The folders and files of the run in ``root``; nothing is created until a stage writes."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def settings_file(self) -> Path:
        return self.root / "run.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def inr(self) -> Path:
        return self.root / "inr"

    @property
    def inr_heldout(self) -> Path:
        return self.root / "inr-heldout"

    @property
    def inr2vec(self) -> Path:
        return self.root / "inr2vec"

    @property
    def edm(self) -> Path:
        return self.root / "edm"

    @property
    def synth(self) -> Path:
        return self.root / "synth"

    @property
    def edm_conditioned(self) -> Path:
        return self.root / "edm-conditioned"

    def enhance(self, local: bool = True) -> Path:
        """The scar-enhancement denoiser of chapter 08: localized (the method) or global (the ablation)."""
        return self.root / "enhance" / ("local" if local else "global")

    @property
    def synth_targeted(self) -> Path:
        """The targeted set of the ``T<n>`` arms: conditioned volumes that even out the training set's scar."""
        return self.root / "synth-targeted"

    @property
    def synth_proportional(self) -> Path:
        """The control set of the ``C<n>`` arms: conditioned volumes in the training set's own scar proportions."""
        return self.root / "synth-proportional"

    def generated_set(self, source: str) -> Path:
        """The folder of the volumes an arm of ``source`` adds (`lgelib.segmentation_setup.Arm.source`): ``synth/``,
        ``synth-targeted/`` or ``synth-proportional/``."""
        folders = {"synthetic": self.synth, "targeted": self.synth_targeted, "proportional": self.synth_proportional}
        if source not in folders:
            raise ValueError(f"no generated set for arms of source {source!r} (one of {sorted(folders)})")
        return folders[source]

    def synth_conditioned(self, request: str) -> Path:
        """Volumes drawn for one scar request (its name made a folder name), or ``"unconditional"``."""
        import re

        return self.root / "synth-conditioned" / re.sub(r"[^A-Za-z0-9.-]+", "-", request).strip("-")

    @property
    def seg(self) -> Path:
        return self.root / "seg"

    @property
    def repeats(self) -> Path:
        return self.root / "repeats"

    def repeat(self, split_seed: int) -> "RunLayout":
        """The run of the same settings on another split seed."""
        return RunLayout(self.repeats / f"split-{int(split_seed)}")

    @property
    def inr_cases(self) -> Path:
        """Fitted INRs shared by the repeats (a case's INR does not depend on the split)."""
        return self.repeats / "inr-cases"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def book(self) -> Path:
        return self.root / "book"

    @property
    def html(self) -> Path:
        return self.book / "_build" / "html"

    @property
    def per_case_dice(self) -> Path:
        """Dice per arm and test case of this split (`lgelib.segmentation.run_segmentation`)."""
        return self.seg / "per_case_dice.csv"

    @property
    def per_case_dice_all_splits(self) -> Path:
        """Dice per arm and test case of this split and every repeat (chapter 06)."""
        return self.seg / "per_case_dice_all_splits.csv"
