"""Keep an `lgelib experiment` run's Table 1 in ``benchmarks/results/``, where chapter 06 reads it.

    .venv/bin/python benchmarks/record_table1.py runs/emidec-experiment --budget real-cpu-long \\
        [--arms N0,N100-balanced] [--results benchmarks/results]

Reads the experiment folder's ``per_case_dice.csv`` and, for each split and arm it holds, replaces that (budget,
split, arm)'s rows in

- ``table1_emidec_per_case.csv``: the per-case rows themselves (Dice and predicted volume per case, region and
  structure; no image data and no reference volumes), so that the tables below can be computed again and a later
  split or arm added to them;
- ``table1_emidec_arms.csv``: per split and arm, Volume Dice of the myocardium (every test case) and of fibrosis
  (cases with reference scar), false scar on scar-free cases (mL), and the case counts.

Then ``table1_emidec_differences.csv`` gets each arm minus N0 on the same (split, case, region) rows, over every
split of that budget where both have per-case rows on file (``splits``), every region, with the cluster-bootstrap
interval, the minimum detectable effect and the split-level sign-flip p (`lgelib.comparisons.compare_arms`). An
arm's earlier rows over splits that overlap these are superseded; rows over other splits (whose per-case rows are
not on file) are kept. Rows of other budgets, splits and arms are kept, so the files grow split by split and arm by
arm. They are written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lgelib.comparisons import compare_arms, headline_per_split, read_per_case
from lgelib.config import SEGMENTATION_BUDGETS
from lgelib.fsutil import write_text_atomic
from lgelib.table1 import RECORDED, RECORDED_PER_CASE, cell_text

ARMS_FILE, DIFFERENCES_FILE = RECORDED
PRIVATE_COLUMNS = ("reference_ml",)
"""Left out of the recorded per-case rows: each patient's reference myocardium and scar volume is a clinical
measurement of the (CC BY-NC-SA) data, not a result of this project, and no table needs it."""


def _key_text(table: pd.DataFrame, keys: list[str]) -> pd.MultiIndex:
    """``table``'s ``keys`` as text, so that a key read back from CSV as a number (split 0, or splits "2") matches the
    same key written as text or as an integer."""
    return pd.MultiIndex.from_frame(table[keys].apply(lambda column: column.map(cell_text)))


def _replace_rows(path: Path, rows: pd.DataFrame, keys: list[str], drop=None) -> pd.DataFrame:
    """``path``'s table with the rows that share ``keys`` values with ``rows`` (and those ``drop`` marks) replaced by
    ``rows``; written atomically, and returned."""
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=rows.columns)
    for key in keys:
        if key not in old.columns:
            old[key] = pd.NA
    replaced = _key_text(old, keys).isin(_key_text(rows, keys))
    if drop is not None:
        replaced |= drop(old)
    kept = old[~replaced]
    table = pd.concat([kept, rows], ignore_index=True) if len(kept) else rows.reset_index(drop=True)
    write_text_atomic(path, table.to_csv(index=False))
    return table


def _overlapping(budget: str, splits: dict[str, str]):
    """A mask over a differences table: the rows of ``budget`` whose arm is recorded anew (``splits``: arm -> the
    splits it is now paired over) and whose splits overlap those or are not named. They are superseded: the new rows
    pair over every split on file."""

    def mask(old: pd.DataFrame) -> pd.Series:
        def superseded(row) -> bool:
            if cell_text(row["budget"]) != budget or row["arm"] not in splits:
                return False
            on_file = set(cell_text(row["splits"]).split(",")) - {""}
            return not on_file or bool(on_file & set(splits[row["arm"]].split(",")))

        return old.apply(superseded, axis=1) if len(old) else pd.Series(False, index=old.index)

    return mask


def _paired_splits(per_case: pd.DataFrame, baseline: str) -> dict[str, str]:
    """Per arm, the splits (comma-separated) where both it and ``baseline`` have per-case rows."""
    splits = per_case.groupby("arm")["split_seed"].apply(lambda seeds: set(int(s) for s in seeds))
    base = splits.get(baseline, set())
    return {arm: ",".join(map(str, sorted(seeds & base))) for arm, seeds in splits.items() if arm != baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="an lgelib experiment folder (holds per_case_dice.csv)")
    parser.add_argument("--budget", required=True, choices=sorted(SEGMENTATION_BUDGETS), help="its nnU-Net budget")
    parser.add_argument("--arms", help="comma-separated arms to keep (default: every arm; N0 is always kept)")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    source = args.experiment / "per_case_dice.csv"
    if not source.is_file():
        raise SystemExit(f"{source}: no per_case_dice.csv; run lgelib experiment into {args.experiment} first")
    per_case = read_per_case(source)
    if args.arms:
        arms = {"N0", *(a.strip() for a in args.arms.split(",") if a.strip())}
        missing = arms - set(per_case["arm"])
        if missing:
            raise SystemExit(f"{source}: no rows for arm(s) {', '.join(sorted(missing))}")
        per_case = per_case[per_case["arm"].isin(arms)]
    if "N0" not in set(per_case["arm"]):
        raise SystemExit(f"{source}: no N0 rows, the baseline every difference is taken against")

    budget, splits = args.budget, sorted(int(seed) for seed in per_case["split_seed"].unique())
    keys = ["budget", "split_seed", "arm"]  # an experiment that adds an arm to a split keeps the split's other arms
    kept_per_case = per_case.drop(columns=[c for c in PRIVATE_COLUMNS if c in per_case.columns])
    recorded = _replace_rows(args.results / RECORDED_PER_CASE, kept_per_case.assign(budget=budget), keys)
    arms_table = headline_per_split(per_case).round(4).assign(budget=budget)
    arms_on_file = _replace_rows(args.results / ARMS_FILE, arms_table, keys)
    of_budget = recorded[recorded["budget"] == budget].drop(columns="budget").astype({"case_id": str, "arm": str})
    differences = compare_arms(of_budget, "N0").round(4)
    paired = _paired_splits(of_budget, "N0")
    differences = differences.assign(budget=budget, splits=differences["arm"].map(paired))
    difference_keys = ["budget", "splits", "structure", "region", "arm"]
    _replace_rows(args.results / DIFFERENCES_FILE, differences, difference_keys, drop=_overlapping(budget, paired))
    print(arms_table.to_markdown(index=False))
    volume = differences[differences["region"] == "Volume"]
    print(volume[["structure", "arm", "difference", "ci_low", "ci_high", "p", "n_pairs", "n_splits"]].to_markdown())
    for arm, splits_paired in paired.items():
        measured = arms_on_file[(arms_on_file["budget"] == budget) & (arms_on_file["arm"] == arm)]["split_seed"]
        if ",".join(map(str, sorted(int(s) for s in measured))) != splits_paired:
            print(
                f"note: {budget} {arm} is on file for splits {sorted(int(s) for s in measured)}, its per-case rows "
                f"(with N0's) for splits {splits_paired} only: its paired differences cover those; the chapter's "
                "split-by-split table covers every split"
            )
    print(f"recorded {budget}, splits {splits}, in {args.results}")


if __name__ == "__main__":
    main()
