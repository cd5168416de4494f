"""Targeted augmentation (issue "beyond the paper", item 2): does drawing the synthetic volumes to fill what the real
training set lacks help more than drawing them unconditionally?

Per split, two arms that differ in which volumes are added, on the fair protocol (N0's plan, the same budget,
balanced sampling, the same number of volumes and the same noise seeds). They differ in two ways, not one: the
targeting and the model (the conditioned one, sampled with guidance); ``--control`` adds the arm that separates
them (``C<n>-balanced``: the conditioned model and guidance, conditions in the training set's own proportions).

- ``N<n>-balanced``: the first n volumes of the unconditional generator (``synth/``);
- ``T<n>-balanced``: n volumes of the scar-conditioned generator (``edm-conditioned/``), allocated over the scar
  levels (scar-free, basal, mid, apical) so that the real training set plus these volumes is as even as possible
  (`lgelib.scar_descriptors.fill_allocation`): mostly the apical and basal scars the real set lacks;
- ``C<n>-balanced`` (with ``--control``): n volumes of the same conditioned model with the same guidance, spread in
  the real training set's own proportions (`proportional_allocation`): T - C is the targeting alone, C - N the
  change of model;

with N0 and its seed control ``N0-seed1`` (what retraining alone changes). The arms run through
`lgelib.experiment.run_experiment`, so an experiment folder that already holds some of them reuses them. Prints and
writes (``<out>/targeted_*.csv``):

1. what each set holds: scar levels of the real training cases, of the N volumes and of the T volumes, measured on
   their own decoded masks (a targeted set that does not hold what it was asked for tests nothing);
2. Table 1 by region for every arm (mean Dice over the splits);
3. paired differences by region, T against N and each against N0 (cluster bootstrap over splits then cases,
   sign-flip p over splits, Holm), with the seed control beside them.

    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/targeted_augmentation.py \\
        --manifest data_manifest/emidec.yaml --split-seeds 0,1,2 --seg-budget real-cpu --out runs/emidec-experiment

The embedded cohort runs it too (``--manifest data_manifest/phantom.yaml``, the default), but its 18 training hearts
leave most scar levels with one or no heart to condition on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from _options import add_run_arguments, machine_line, run_items, split_seeds
from lgelib.comparisons import compare_arms, headline
from lgelib.conditioning import synthetic_descriptors, training_descriptors
from lgelib.data.prepare import load_prepared
from lgelib.experiment import run_experiment, split_run
from lgelib.run import parse_options
from lgelib.scar_descriptors import LEVELS
from lgelib.table1 import comparisons_markdown, table1, table1_markdown

LEVEL_COLUMNS = ["scar-free", *LEVELS]


def level_counts(descriptors: pd.DataFrame) -> dict[str, int]:
    """How many hearts of a descriptor table are scar-free or have their scar's level at each long-axis level."""
    levels = descriptors["level"].where(descriptors["present"].astype(bool), "scar-free")
    return {column: int((levels == column).sum()) for column in LEVEL_COLUMNS}


def composition(root: Path, options, seeds: list[int], n: int, control: bool = False) -> pd.DataFrame:
    """Per split: scar levels of the real training cases, the first n unconditional volumes and the n targeted
    ones (and, with ``control``, the n proportional ones), with the median scar burden (%) of each."""
    rows = []
    for seed in seeds:
        run = split_run(options, root, seed)
        inr2vec = run.trained_inr2vec()
        sets = {"real training": training_descriptors(run.prepared, inr2vec.case_ids)}
        folders = [("N (unconditional)", run.layout.synth), ("T (targeted)", run.layout.synth_targeted)]
        if control:
            folders.append(("C (proportional control)", run.layout.synth_proportional))
        for name, folder in folders:
            volumes = load_prepared(folder)
            table = synthetic_descriptors(volumes)
            sets[name] = table.iloc[:n]
        for name, table in sets.items():
            rows.append(
                {
                    "split_seed": seed,
                    "set": name,
                    "n": len(table),
                    **level_counts(table),
                    "median burden %": round(float(100 * table["burden"].median()), 1),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, split_seeds="0,1,2")
    parser.add_argument("--n", type=int, default=100, help="volumes added by each generator arm (default 100)")
    parser.add_argument(
        "--extra-arms",
        default="",
        help="more arms to run or reuse beside them, comma-separated (e.g. N200-balanced: an experiment folder that "
        "drew 200 unconditional volumes keeps that set, since N<n> arms take its first n)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="add C<n>-balanced: the conditioned model in the training set's own proportions (T's control)",
    )
    parser.add_argument("--seg-budget", default="real-cpu", help="nnU-Net budget (default real-cpu)")
    parser.add_argument("--out", default="runs/emidec-experiment", help="experiment folder (finished arms are reused)")
    args = parser.parse_args()
    seeds = split_seeds(args)
    unconditional, targeted, control = f"N{args.n}-balanced", f"T{args.n}-balanced", f"C{args.n}-balanced"
    arms = ["N0", unconditional, targeted, *([control] if args.control else []), "N0-seed1"]
    arms += [a for a in args.extra_arms.split(",") if a]
    options = parse_options(run_items(args, seg_budget=args.seg_budget, seg_arms=arms))
    out = Path(args.out)
    print(f"{machine_line()}; {args.manifest}; arms {arms}")
    started = time.perf_counter()
    result = run_experiment(options, out, seeds)
    print(f"\nexperiment: {(time.perf_counter() - started) / 60:.1f} min (finished arms reused)")

    sets = composition(out, options, seeds, args.n, args.control)
    print("\n1. What each set holds (scar level of each heart, measured on its own masks)\n")
    print(sets.to_markdown(index=False))
    print("\n2. Table 1 by region (mean Dice over the splits; fibrosis over test cases with scar in the region)\n")
    print(table1_markdown(table1(result.per_case)))
    print("\nVolume Dice and false scar on scar-free test cases\n")
    print(headline(result.per_case).round(3).to_markdown(index=False))
    against_n = compare_arms(result.per_case[result.per_case.arm.isin([unconditional, targeted])], unconditional)
    print(f"\n3. {targeted} against {unconditional}, by region (paired; cluster bootstrap; sign-flip p, Holm)\n")
    print(comparisons_markdown(against_n))
    paired = [against_n.assign(baseline=unconditional)]
    if args.control:
        against_c = compare_arms(result.per_case[result.per_case.arm.isin([control, targeted])], control)
        against_c_n = compare_arms(result.per_case[result.per_case.arm.isin([unconditional, control])], unconditional)
        print(f"\n{targeted} against {control}: the targeting alone (same model, guidance and seeds)\n")
        print(comparisons_markdown(against_c))
        print(f"\n{control} against {unconditional}: the change of model alone (no targeting)\n")
        print(comparisons_markdown(against_c_n))
        paired += [against_c.assign(baseline=control), against_c_n.assign(baseline=unconditional)]
    print("\nEach arm against N0 (N0-seed1 is the seed control)\n")
    print(comparisons_markdown(result.comparisons))
    tag = f"splits{args.split_seeds.replace(',', '-')}_n{args.n}"
    sets.to_csv(out / f"targeted_sets_{tag}.csv", index=False)
    pd.concat([*paired, result.comparisons.assign(baseline="N0")]).to_csv(
        out / f"targeted_comparisons_{tag}.csv", index=False
    )
    print(f"\nwritten: {out}/targeted_sets_{tag}.csv, {out}/targeted_comparisons_{tag}.csv")


if __name__ == "__main__":
    main()
