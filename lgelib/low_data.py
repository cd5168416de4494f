"""The low-data curve: segmentation quality against the number of real training cases, with and without synthetic
volumes from a generator trained on those same cases only (the paper's open question of how much annotation
synthetic data can replace).

Each point is one experiment (`lgelib.experiment.run_experiment`) run with ``n_train = n``: the first n training
cases of each split, every generative stage trained on them alone, the test cases unchanged. Its per-case table
gets an ``n_train`` column and the points are stacked (:func:`stack_points`); this module turns the stack into

- the curve (:func:`curve`): mean Dice per arm and n with its cluster-bootstrap interval (splits, then cases);
- the paired differences of each arm against N0 at the same n (:func:`differences`): same cases, same splits;
- the "equivalent real cases" of an arm (:func:`equivalent_real_cases`): the number of real cases at which N0's
  curve, drawn as straight lines between the measured sizes, reaches the arm's mean Dice. It is read off the
  curve of means, so it carries at least the uncertainty of both curves; the columns ``equivalent_low`` and
  ``equivalent_high`` read the arm's interval ends the same way (N0's own noise is not in them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lgelib.comparisons import compare_arms, summarise_arms
from lgelib.segmentation_setup import BASELINE


def stack_points(points: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One per-case table (``per_case_dice.csv`` of an experiment) per number of real training cases, stacked
    with an ``n_train`` column."""
    if not points:
        raise ValueError("the low-data curve needs at least one experiment (number of real training cases)")
    return pd.concat([table.assign(n_train=int(n)) for n, table in sorted(points.items())], ignore_index=True)


def recorded_point(
    rows: pd.DataFrame, budget: str, arms: list[str], test_cases: dict[int, tuple[str, ...]]
) -> pd.DataFrame:
    """One point of the curve taken from per-case rows already recorded (``benchmarks/record_table1.py``'s
    ``table1_emidec_per_case.csv``, which has a ``budget`` column) instead of trained again: the rows of ``budget``,
    ``arms`` and the split seeds of ``test_cases`` (seed -> that split's test case ids), with the budget column
    dropped. Fails, naming the arm and split, unless every (arm, split) is there with exactly that split's test
    cases: a point from another split, budget or arm set would not be paired with the rest of the curve."""
    if "budget" not in rows.columns:
        raise ValueError("the recorded per-case rows have no budget column: they cannot be matched to a budget")
    chosen = rows[(rows["budget"] == budget) & rows["arm"].isin(arms) & rows["split_seed"].isin(list(test_cases))]
    for seed, cases in test_cases.items():
        for arm in arms:
            held = set(chosen.loc[(chosen["arm"] == arm) & (chosen["split_seed"] == seed), "case_id"].astype(str))
            if held != set(cases):
                differ = sorted(held ^ set(cases))
                raise ValueError(
                    f"the recorded rows of {arm} on split {seed} at budget {budget} hold {len(held)} test cases, "
                    f"the split has {len(cases)}" + (f" ({len(differ)} differ, e.g. {differ[0]})" if differ else "")
                )
    return chosen.drop(columns="budget").reset_index(drop=True)


def _per_point(per_case: pd.DataFrame, region: str, function, **kwargs) -> pd.DataFrame:
    """``function`` (a summary of one experiment's per-case table) at every ``n_train`` of ``per_case``, on one
    region's rows, with the ``n_train`` column added."""
    if "n_train" not in per_case.columns:
        raise ValueError("the per-case table has no n_train column: stack the experiments with stack_points")
    rows = per_case[per_case["region"] == region]
    tables = [function(group, **kwargs).assign(n_train=int(n)) for n, group in rows.groupby("n_train")]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def curve(per_case: pd.DataFrame, region: str = "Volume", n_resamples: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Mean Dice per (arm, structure, n_train) over the scored test rows of ``region``, with its cluster-bootstrap
    interval. Columns: arm, structure, region, mean, se, ci_low, ci_high, n, n_clusters, n_train."""
    table = _per_point(per_case, region, summarise_arms, n_resamples=n_resamples, seed=seed)
    return table.sort_values(["structure", "arm", "n_train"], ignore_index=True)


def differences(
    per_case: pd.DataFrame, region: str = "Volume", baseline: str = BASELINE.name, n_resamples: int = 4000
) -> pd.DataFrame:
    """Each arm minus ``baseline`` at the same number of real cases, on the same (split, case) rows
    (`lgelib.comparisons.compare_arms`, Holm within each n)."""
    table = _per_point(per_case, region, compare_arms, baseline=baseline, n_resamples=n_resamples)
    return table.sort_values(["structure", "arm", "n_train"], ignore_index=True)


def real_cases_reaching(sizes: np.ndarray, means: np.ndarray, target: float) -> tuple[float, str]:
    """The number of real cases at which the curve through (``sizes``, ``means``), straight between measured
    sizes, first reaches ``target``, and where that lies: ``"within"`` the measured sizes, ``"below"`` (the
    smallest size already does better), ``"above"`` (no measured size reaches it), ``"flat"`` (the curve sits at
    the target over more than one size, so no one size is its equivalent: e.g. Dice 0 where no size learned
    scar) or ``"unknown"`` (no target or a curve with a missing mean). NaN unless within."""
    order = np.argsort(sizes)
    x, y = np.asarray(sizes, np.float64)[order], np.asarray(means, np.float64)[order]
    if not np.isfinite(target) or x.size == 0 or not np.isfinite(y).all():
        return float("nan"), "unknown"
    if np.isclose(y, target, rtol=0.0, atol=1e-12).sum() > 1:
        return float("nan"), "flat"
    if y[0] > target:
        return float("nan"), "below"
    if y[0] == target:
        return float(x[0]), "within"
    for (x0, y0), (x1, y1) in zip(zip(x[:-1], y[:-1]), zip(x[1:], y[1:])):
        if y0 < target <= y1:
            return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0)), "within"
    return float("nan"), "above"


def equivalent_real_cases(table: pd.DataFrame, arm: str, structure: str, baseline: str = BASELINE.name) -> pd.DataFrame:
    """For every n at which ``arm`` was measured: the real cases N0 needs to reach the arm's mean Dice
    (`real_cases_reaching` on the ``baseline`` curve of :func:`curve`), the same for the ends of the arm's interval
    (``where_low`` and ``where_high`` say whether an end fell below or above the measured sizes), and the cases
    gained (equivalent minus n; positive where the synthetic volumes are worth real cases)."""
    rows = table[table["structure"] == structure]
    reference = rows[rows["arm"] == baseline].sort_values("n_train")
    if reference.empty:
        raise ValueError(f"no {baseline} points for {structure}: the equivalent needs the real-only curve")
    sizes, means = reference["n_train"].to_numpy(), reference["mean"].to_numpy()
    out = []
    for _, point in rows[rows["arm"] == arm].sort_values("n_train").iterrows():
        equivalent, where = real_cases_reaching(sizes, means, point["mean"])
        low, where_low = real_cases_reaching(sizes, means, point["ci_low"])
        high, where_high = real_cases_reaching(sizes, means, point["ci_high"])
        out.append(
            {
                "arm": arm,
                "structure": structure,
                "n_train": int(point["n_train"]),
                "dice": point["mean"],
                "equivalent_real_cases": equivalent,
                "equivalent_low": low,
                "equivalent_high": high,
                "where": where,
                "where_low": where_low,
                "where_high": where_high,
                "cases_gained": equivalent - point["n_train"],
            }
        )
    return pd.DataFrame(out)


RECORDED: dict[str, dict[str, str]] = {
    "real-cpu": {
        "low_data_curve_emidec.csv": "curve",
        "low_data_differences_emidec.csv": "differences",
        "low_data_equivalent_emidec.csv": "equivalent",
    },
    "real-cpu-long": {
        "low_data_curve_emidec_long.csv": "curve",
        "low_data_differences_emidec_long.csv": "differences",
        "low_data_equivalent_emidec_long.csv": "equivalent",
    },
}
"""The low-data curves measured on EMIDEC-derived by ``benchmarks/low_data_curve.py`` and kept in
``benchmarks/results/``: nnU-Net budget -> (file -> key)."""


def recorded_low_data(folder=None) -> dict[str, dict[str, pd.DataFrame]]:
    """The recorded low-data tables (:data:`RECORDED`) that exist in ``folder`` (default: the repository's
    ``benchmarks/results``): budget -> key -> table, holding only the budgets with every table on file; empty
    where the benchmarks are not at hand."""
    from lgelib.conditioning import read_recorded

    tables = {budget: read_recorded(files, folder) for budget, files in RECORDED.items()}
    return {budget: found for budget, found in tables.items() if len(found) == len(RECORDED[budget])}
