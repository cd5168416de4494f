"""The whole experiment over one or more train/test splits: data, INRs, inr2vec, EDM, synthesis, the nnU-Net arms.

The chapters run these stages one at a time and show each; repeating the segmentation experiment over other
split seeds needs every generative stage again (the generator may only see that split's training cases): each
split is one `lgelib.run.Run`, whose stage chain this module calls. Every stage reuses finished work in its
folder, so a repeat that was run before costs only the reading; a case's INR does not depend on the split, so the
splits of one experiment share their fitted INRs (``<root>/inr-cases``).

Layout of an experiment folder (:func:`run_experiment`)::

    split-<seed>/           one run directory per split (run.json, data, inr, inr2vec, edm, synth, seg;
                            edm-conditioned, synth-targeted and synth-proportional for T<n>
                            and C<n> arms)
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

from lgelib.comparisons import compare_arms
from lgelib.fsutil import write_text_atomic
from lgelib.layout import RunLayout
from lgelib.run import Run, RunOptions, resolve_settings
from lgelib.segmentation_setup import BASELINE
from lgelib.log import logger


@dataclass
class ExperimentResult:
    """Every split's per-case results, the arms compared with the baseline, and the time each part took."""

    per_case: pd.DataFrame
    comparisons: pd.DataFrame
    seconds: pd.DataFrame
    wall_seconds: float


def split_run(options: RunOptions, root: Path | str, split_seed: int, inr_cache: Path | str | None = None) -> Run:
    """The run of ``options`` on ``split_seed`` inside an experiment folder (``split-<seed>``), sharing the
    experiment's fitted INRs (``inr_cache``, default ``<root>/inr-cases``; experiments on the same cases, such as
    the low-data curve's sizes, may share one); its settings are written to its ``run.json``."""
    root = Path(root)
    run = Run(
        dataclasses.replace(options, split_seed=int(split_seed), repeat_split_seeds=()),
        RunLayout(root / f"split-{int(split_seed)}"),
        inr_cache=Path(inr_cache) if inr_cache is not None else root / "inr-cases",
    )
    run.write()
    return run


def run_split(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every stage of ``run`` (the generative ones only where an arm adds synthetic volumes), then its nnU-Net
    arms; Dice per test case and seconds per arm, both with a ``split_seed`` column."""
    started = time.perf_counter()
    run.generate_added_sets()
    generative_seconds = time.perf_counter() - started
    result = run.segment()
    return result.per_case, result.seconds.assign(generative_s=generative_seconds)


def run_experiment(
    options: RunOptions, root: Path | str, split_seeds: list[int], inr_cache: Path | str | None = None
) -> ExperimentResult:
    """The Table 1 experiment of ``options`` on every split seed in ``split_seeds`` (`split_run`), with every arm
    compared with N0 (`lgelib.comparisons.compare_arms`). Writes the files listed in the module docstring into
    ``root`` after every split, so that a run stopped part-way leaves the tables of the splits it finished."""
    if not split_seeds:
        raise ValueError("run_experiment needs at least one split seed")
    resolve_settings(options)  # a wrong option fails here, before anything is written
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tables, timings = [], []
    for seed in split_seeds:
        logger.info("split seed %s: %s", seed, root / f"split-{seed}")
        per_case, seconds = run_split(split_run(options, root, seed, inr_cache))
        tables.append(per_case)
        timings.append(seconds)
        result = _write_tables(root, pd.concat(tables, ignore_index=True), pd.concat(timings, ignore_index=True))
    return dataclasses.replace(result, wall_seconds=time.perf_counter() - started)


def _write_tables(root: Path, per_case: pd.DataFrame, seconds: pd.DataFrame) -> ExperimentResult:
    """The experiment's tables over the splits finished so far, written into ``root`` (each file whole or not at
    all)."""
    comparisons = compare_arms(per_case, BASELINE.name)
    for name, table in (("per_case_dice", per_case), ("comparisons", comparisons), ("timings", seconds)):
        write_text_atomic(root / f"{name}.csv", table.to_csv(index=False))
    return ExperimentResult(per_case, comparisons, seconds, float("nan"))
