"""The low-data curve (issue "beyond the paper", item 3): how much real annotation can synthetic volumes replace?

For each number of real training cases n (``--sizes``; ``all`` is the whole training split), one experiment
(`lgelib.experiment.run_experiment`) with ``n_train = n``: the first n training cases of each split, every
generative stage (inr2vec, EDM, synthesis) trained on those n cases alone (`tests/test_run.py` checks that no other
case reaches them), the test cases unchanged. Its arms are the real-only baseline N0 and, by default,
``N100-balanced`` (100 synthetic volumes from that generator, half of every batch real), on N0's plan and the same
budget. All sizes share one folder of fitted INRs (a case's INR does not depend on who else is in the split).

Writes into ``<out>`` one experiment folder per size (``n-<n>/``, finished stages reused) and

- ``low_data_per_case.csv``: every size, arm, split and test case;
- ``low_data_curve.csv``: mean Dice per arm and size with its cluster-bootstrap interval (`lgelib.low_data.curve`);
- ``low_data_differences.csv``: each arm minus N0 at the same size (paired; cluster bootstrap; sign-flip p);
- ``low_data_equivalent.csv``: the real cases N0 needs to match each synthetic point;
- ``low_data_curve.png``: the figure;

and prints them as tables, with the wall time of each size.

    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/low_data_curve.py \\
        --manifest data_manifest/emidec.yaml --split-seeds 0,1,2 --sizes 10,20,40,all --seg-budget real-cpu \\
        --out runs/low-data

At the ``real-cpu`` budget every nnU-Net model takes about 9 minutes on 2 cores and each size's generator chain
about 4 minutes, so 4 sizes x 2 arms x 3 splits is about 4 hours; ``--split-seeds 0`` is a third of that. At
``real-cpu-long`` (the budget at which the real-only baseline learns scar; about 10 minutes a model) the ``all``
point is the Table 1 experiment itself: ``--all-from benchmarks/results/table1_emidec_per_case.csv`` reads its
recorded per-case rows (same splits, budget, arms and test cases, checked) instead of training those 6 models again.
``--real-only-sizes`` adds sizes at which only N0 is trained (no generative stage runs for them): points on the
real-only curve below the smallest synthetic point, so that a synthetic point that falls below N0 at its own size
can still be read as a number of real cases. The run recorded in benchmarks/README.md:

    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/low_data_curve.py --manifest data_manifest/emidec.yaml \
        --split-seeds 0,1,2 --sizes 30,all --real-only-sizes 10 --seg-budget real-cpu-long \
        --all-from benchmarks/results/table1_emidec_per_case.csv --out runs/low-data-long
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from _options import add_run_arguments, machine_line, run_items, split_seeds
from lgelib.experiment import run_experiment
from lgelib.figures import plot_low_data_curve
from lgelib.comparisons import read_per_case
from lgelib.data.dataset import open_split
from lgelib.low_data import curve, differences, equivalent_real_cases, recorded_point, stack_points
from lgelib.run import parse_options
from lgelib.segmentation_setup import parse_arms
from lgelib.table1 import comparisons_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--sizes", default="10,20,40,all", help="numbers of real training cases; all = the split's")
    parser.add_argument("--arms", default="N0,N100-balanced", help="arms at every size (N0 always runs)")
    parser.add_argument("--seg-budget", default="real-cpu", help="nnU-Net budget (default real-cpu)")
    parser.add_argument("--out", default="runs/low-data", help="folder of the experiments (finished stages reused)")
    parser.add_argument(
        "--real-only-sizes",
        default="",
        help="further numbers of real training cases at which only N0 is trained: more points on the real-only "
        "curve, to read the equivalent real cases of a synthetic point that falls below N0's smallest size",
    )
    parser.add_argument(
        "--all-from",
        help="recorded per-case rows (benchmarks/record_table1.py's table1_emidec_per_case.csv) of the same arms, "
        "splits and budget on the whole training split: the 'all' point is read from them, not trained again",
    )
    parser.add_argument("--inr-cache", help="folder of fitted INRs shared by every size (default <out>/inr-cases)")
    args = parser.parse_args()
    seeds = split_seeds(args)
    arms = [arm.name for arm in parse_arms(args.arms)]  # N0 (the real-only curve) first, names as results write them
    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
    real_only = [int(s) for s in args.real_only_sizes.split(",") if s.strip()]
    if set(real_only) & set(sizes):
        raise SystemExit(f"--real-only-sizes {args.real_only_sizes}: a size there is also in --sizes {args.sizes}")
    out = Path(args.out)
    inr_cache = Path(args.inr_cache) if args.inr_cache else out / "inr-cases"
    print(f"{machine_line()}; {args.manifest}; arms {arms}")

    points, times = {}, []
    for size in [*real_only, *sizes]:
        size_arms = ["N0"] if size in real_only else arms
        options = parse_options(run_items(args, seg_budget=args.seg_budget, seg_arms=size_arms, n_train=size))
        splits = {seed: open_split(options.manifest, seed, n_train=size).split for seed in seeds}
        n_real = {len(split.train) for split in splits.values()}
        if len(n_real) != 1:
            raise RuntimeError(f"the splits of size {size} hold different numbers of training cases: {sorted(n_real)}")
        n = n_real.pop()
        if n in points:
            raise SystemExit(f"--sizes {args.sizes}: two sizes are both {n} real training cases")
        if size is None and args.all_from:
            test_cases = {seed: split.test for seed, split in splits.items()}
            points[n] = recorded_point(read_per_case(args.all_from), args.seg_budget, size_arms, test_cases)
            times.append({"real training cases": n, "minutes": "recorded (--all-from)"})
            print(f"{n} real training cases: read from {args.all_from}", flush=True)
            continue
        started = time.perf_counter()
        result = run_experiment(options, out / f"n-{'all' if size is None else size}", seeds, inr_cache=inr_cache)
        points[n] = result.per_case
        times.append({"real training cases": n, "minutes": round((time.perf_counter() - started) / 60, 1)})
        print(f"{n} real training cases: {times[-1]['minutes']} min (finished stages reused)", flush=True)

    per_case = stack_points(points)
    table = curve(per_case)
    against_n0 = differences(per_case)
    equivalents = pd.concat(
        [
            equivalent_real_cases(table, arm, structure)
            for arm in arms
            if arm != "N0"
            for structure in ("myocardium", "fibrosis")
        ],
        ignore_index=True,
    )
    print("\nWall time per size\n")
    print(pd.DataFrame(times).to_markdown(index=False))
    print("\n1. Volume Dice against real training cases (mean over splits and test cases; 95% cluster bootstrap)\n")
    shown = table[["structure", "arm", "n_train", "mean", "ci_low", "ci_high", "n", "n_clusters"]]
    print(shown.round(3).to_markdown(index=False))
    print("\n2. Each arm minus N0 at the same number of real cases (paired)\n")
    for n, rows in against_n0.groupby("n_train"):
        print(f"\n{n} real training cases\n")
        print(comparisons_markdown(rows.drop(columns="n_train")))
    print("\n3. Real cases N0 needs to match each synthetic point (read off N0's curve of means)\n")
    print(equivalents.round(1).to_markdown(index=False))

    out.mkdir(parents=True, exist_ok=True)
    per_case.to_csv(out / "low_data_per_case.csv", index=False)
    table.to_csv(out / "low_data_curve.csv", index=False)
    against_n0.to_csv(out / "low_data_differences.csv", index=False)
    equivalents.to_csv(out / "low_data_equivalent.csv", index=False)
    plot_low_data_curve(table, f"nnU-Net budget {args.seg_budget}").savefig(out / "low_data_curve.png", dpi=120)
    print(f"\nwritten: {out}/low_data_*.csv, {out}/low_data_curve.png")


if __name__ == "__main__":
    main()
