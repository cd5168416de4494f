"""Keep an `lgelib experiment` run's Table 1 in ``benchmarks/results/``, where chapter 06 reads it.

    .venv/bin/python benchmarks/record_table1.py runs/emidec-experiment --budget real-cpu-long \\
        [--arms N0,N100-balanced] [--results benchmarks/results]

Reads the experiment folder's ``per_case_dice.csv`` (every split) and replaces that budget's rows in

- ``table1_emidec_arms.csv``: per split and arm, Volume Dice of the myocardium (every test case) and of fibrosis
  (cases with reference scar), false scar on scar-free cases (mL), and the case counts;
- ``table1_emidec_differences.csv``: each arm minus N0 on the same (split, case, region) rows, every region, with
  the cluster-bootstrap interval, the minimum detectable effect and the split-level sign-flip p
  (`lgelib.comparisons.compare_arms`).

Rows of other budgets are kept, so one file holds every budget measured. The files are written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lgelib.comparisons import compare_arms, headline_per_split, read_per_case
from lgelib.config import SEGMENTATION_BUDGETS
from lgelib.fsutil import write_text_atomic
from lgelib.table1 import RECORDED

ARMS_FILE, DIFFERENCES_FILE = RECORDED


def _replace_budget(path: Path, budget: str, rows: pd.DataFrame) -> None:
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=rows.columns)
    kept = old[old["budget"] != budget]
    table = pd.concat([kept, rows], ignore_index=True) if len(kept) else rows
    write_text_atomic(path, table.to_csv(index=False))


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

    arms_table = headline_per_split(per_case).round(4)
    differences = compare_arms(per_case, "N0").round(4)
    _replace_budget(args.results / ARMS_FILE, args.budget, arms_table.assign(budget=args.budget))
    _replace_budget(args.results / DIFFERENCES_FILE, args.budget, differences.assign(budget=args.budget))
    print(arms_table.to_markdown(index=False))
    volume = differences[differences["region"] == "Volume"]
    print(volume[["structure", "arm", "difference", "ci_low", "ci_high", "p", "n_pairs", "n_splits"]].to_markdown())
    print(f"recorded {args.budget} in {args.results / ARMS_FILE} and {args.results / DIFFERENCES_FILE}")


if __name__ == "__main__":
    main()
