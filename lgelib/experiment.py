"""The whole experiment over one or more train/test splits: data, INRs, inr2vec, EDM, synthesis, the nnU-Net arms.

The chapters run these stages one at a time and show each; repeating the segmentation experiment over other
split seeds needs every generative stage again (the generator may only see that split's training cases), so this
module chains them. Every stage reuses finished work in its folder, so a repeat that was run before costs only the
reading; a case's INR does not depend on the split, so the splits of one experiment share their fitted INRs
(``<root>/inr-cases``).

Layout of an experiment folder (:func:`run_experiment`)::

    split-<seed>/           one run directory per split (data, inr, inr2vec, edm, synth, seg)
    inr-cases/              fitted INRs shared by the splits
    per_case_dice.csv       every arm, split and test case (``split_seed`` column)
    comparisons.csv         each arm against N0: paired differences, cluster-bootstrap CIs, Holm-adjusted p
    timings.csv             seconds per split and stage
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from lgelib.comparisons import compare_arms
from lgelib.config import Profile
from lgelib.data.dataset import open_split
from lgelib.data.prepare import load_run_data
from lgelib.edm import train_edm
from lgelib.geometry import diffusion_inputs
from lgelib.inr import fit_inrs
from lgelib.inr2vec import train_inr2vec
from lgelib.segmentation import BASELINE, SegmentationResult, parse_arms, run_segmentation
from lgelib.synthesis import nominal_spacing, synthesize


def synthesize_for_split(manifest: str | Path, profile: Profile, run_dir: Path | str, split_seed: int | None,
                         n_volumes: int, device: str | torch.device | None = None, n_train: int | None = None,
                         precision: str | None = None, inr_cache: Path | None = None) -> Path:
    """Stages 0-3 for one split in ``run_dir``: canonical grid, INRs of the training cases, inr2vec, EDM and
    ``n_volumes`` synthetic volumes (``n_train``: only the first training cases); returns the synthesis folder.
    ``inr_cache``: finished INRs shared with other splits (see `lgelib.inr.fit_inrs`)."""
    run_dir = Path(run_dir)
    prepared = load_run_data(manifest, profile.grid, run_dir, split_seed, n_train=n_train)
    fitted = fit_inrs(prepared, run_dir / "inr", profile.inr.spec, profile.inr.fit, case_ids=list(prepared.split.train),
                      cases_per_batch=profile.inr.cases_per_batch, device=device, precision=precision,
                      progress=False, case_cache=inr_cache)
    inr2vec = train_inr2vec(fitted, run_dir / "inr2vec", profile.inr2vec, device=device, progress=False,
                            prepared=prepared)
    vectors, columns = diffusion_inputs(inr2vec.latents, prepared, inr2vec.case_ids, profile.synthesis.geometry)
    edm = train_edm(vectors, run_dir / "edm", profile.edm, device=device, progress=False, extra_columns=columns)
    settings = dataclasses.replace(profile.synthesis, n_volumes=n_volumes)
    synthetic = synthesize(edm, inr2vec, run_dir / "synth", settings, tuple(profile.grid.shape),
                           nominal_spacing(prepared, inr2vec.case_ids), publishable=prepared.publishable,
                           name=run_dir.name, device=device, progress=False)
    return synthetic.folder


def repeat_split(manifest: str | Path, profile: Profile, run_dir: Path | str, split_seed: int,
                 arms: tuple | list | str, device: str | torch.device | None = None, n_train: int | None = None,
                 precision: str | None = None, inr_cache: Path | None = None) -> SegmentationResult:
    """The Table 1 experiment on a seeded split, every stage included, in ``run_dir``; Dice per test case with
    a ``split_seed`` column, and seconds per stage."""
    arms = parse_arms(arms)
    n_synthetic = max([a.n_added for a in arms if a.source == "synthetic"] + [0])
    started = time.perf_counter()
    synth = (synthesize_for_split(manifest, profile, run_dir, split_seed, n_synthetic, device, n_train, precision,
                                  inr_cache) if n_synthetic else None)
    generative_seconds = time.perf_counter() - started
    result = run_segmentation(open_split(manifest, split_seed, n_train=n_train), synth, Path(run_dir) / "seg",
                              profile.segmentation, arms, device)
    seconds = result.seconds.assign(split_seed=split_seed, generative_s=generative_seconds)
    return SegmentationResult(result.per_case.assign(split_seed=split_seed), seconds)


@dataclass
class ExperimentResult:
    """Every split's per-case results, the arms compared with the baseline, and the time each part took."""

    per_case: pd.DataFrame
    comparisons: pd.DataFrame
    seconds: pd.DataFrame
    wall_seconds: float


def run_experiment(manifest: str | Path, profile: Profile, root: Path | str, split_seeds: list[int],
                   arms: tuple | list | str, device: str | torch.device | None = None, n_train: int | None = None,
                   precision: str | None = None) -> ExperimentResult:
    """The Table 1 experiment on every split seed in ``split_seeds`` (each in ``root/split-<seed>``, sharing
    fitted INRs), with every arm compared with N0 (`lgelib.comparisons.compare_arms`). Writes the files listed
    in the module docstring into ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    for seed in split_seeds:
        print(f"[lgelib] split seed {seed}: {root / f'split-{seed}'}", flush=True)
        results.append(repeat_split(manifest, profile, root / f"split-{seed}", int(seed), arms, device, n_train,
                                    precision, root / "inr-cases"))
    per_case = pd.concat([r.per_case for r in results], ignore_index=True)
    seconds = pd.concat([r.seconds for r in results], ignore_index=True)
    comparisons = compare_arms(per_case, BASELINE.name)
    per_case.to_csv(root / "per_case_dice.csv", index=False)
    comparisons.to_csv(root / "comparisons.csv", index=False)
    seconds.to_csv(root / "timings.csv", index=False)
    return ExperimentResult(per_case, comparisons, seconds, time.perf_counter() - started)
