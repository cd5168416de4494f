"""The whole experiment for one train/test split: data, INRs, inr2vec, EDM, synthesis, the nnU-Net models.

The chapters run these stages one at a time and show each; repeating the segmentation experiment over other
split seeds needs every stage again (the generative models may only see that split's training cases), so this
module chains them. Every stage reuses finished work in its folder, so a repeat that was run before costs only
the reading.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from lgelib.config import Profile
from lgelib.data.dataset import open_split
from lgelib.data.prepare import load_run_data
from lgelib.edm import train_edm
from lgelib.inr import fit_inrs
from lgelib.inr2vec import train_inr2vec
from lgelib.segmentation import SegmentationResult, run_segmentation
from lgelib.synthesis import nominal_spacing, synthesize


def synthesize_for_split(manifest: str | Path, profile: Profile, run_dir: Path | str, split_seed: int | None,
                         n_volumes: int, device: str | torch.device | None = None, n_train: int | None = None) -> Path:
    """Stages 0-3 for one split in ``run_dir``: canonical grid, INRs of the training cases, inr2vec, EDM and
    ``n_volumes`` synthetic volumes (``n_train``: only the first training cases); returns the synthesis folder."""
    run_dir = Path(run_dir)
    prepared = load_run_data(manifest, profile.grid, run_dir, split_seed, n_train=n_train)
    fitted = fit_inrs(prepared, run_dir / "inr", profile.inr.spec, profile.inr.fit, case_ids=list(prepared.split.train),
                      cases_per_batch=profile.inr.cases_per_batch, device=device, progress=False)
    inr2vec = train_inr2vec(fitted, run_dir / "inr2vec", profile.inr2vec, device=device, progress=False)
    edm = train_edm(inr2vec.latents, run_dir / "edm", profile.edm, device=device, progress=False)
    settings = dataclasses.replace(profile.synthesis, n_volumes=n_volumes)
    synthetic = synthesize(edm, inr2vec, run_dir / "synth", settings, tuple(profile.grid.shape),
                           nominal_spacing(prepared, inr2vec.case_ids), publishable=prepared.publishable,
                           name=run_dir.name, device=device, progress=False)
    return synthetic.folder


def repeat_split(manifest: str | Path, profile: Profile, run_dir: Path | str, split_seed: int,
                 n_synthetic: tuple[int, ...], device: str | torch.device | None = None,
                 n_train: int | None = None) -> SegmentationResult:
    """The Table 1 experiment on a seeded split, every stage included, in ``run_dir``; Dice per test case with
    a ``split_seed`` column."""
    synth = synthesize_for_split(manifest, profile, run_dir, split_seed, max(n_synthetic), device, n_train)
    result = run_segmentation(open_split(manifest, split_seed, n_train=n_train), synth, Path(run_dir) / "seg", profile.segmentation,
                              n_synthetic, device)
    return SegmentationResult(result.per_case.assign(split_seed=split_seed), result.seconds.assign(split_seed=split_seed))
