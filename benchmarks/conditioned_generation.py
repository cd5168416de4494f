"""Does the scar-conditioned generator make what it is asked for? Per split and guidance scale: for each scar request
of the profile (`lgelib.conditioning.ConditioningSettings.requests`), the share of decoded volumes whose own masks
meet the request, against volumes drawn unconditionally from the same model with the same noise seeds (the base
rate) and against the real training cases.

    python benchmarks/conditioned_generation.py                                      # embedded cohort, split 0
    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/conditioned_generation.py \\
        --manifest data_manifest/emidec.yaml --split-seeds 0,1,2 --out runs/benchmarks/generator-emidec

The runs are laid out as `benchmarks/generator_variants.py` lays out its ``paper`` variant (``<out>/paper/split-<s>``,
INRs shared through ``<out>/inr-cases``), so a finished generator benchmark's INRs and inr2vec are reused and only
the conditioned EDM and its volumes are new. The table is printed and written to
``<out>/conditioned_generation_splits<seeds>_w<scales>.csv``.

Where a GPU is at hand, after `benchmarks/gpu_generator.py` (same layout, the same cut step counts, so its stages 1-2
are reused): the paper profile's conditioned EDM and its check (not yet run: no GPU was lent to the issue):

    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/conditioned_generation.py --profile paper \
        --manifest data_manifest/emidec.yaml --out runs/gpu-generator --guidance 1,2,4 \
        --set inr.fit.steps=2000 --set inr2vec.steps=3000 --set edm.steps=10000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from _options import add_run_arguments, machine_line, run_items, split_seeds
from lgelib.device import resolve_device
from lgelib.layout import RunLayout
from lgelib.run import Run, parse_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--guidance", default="2", help="comma-separated guidance scales w (1: no guidance)")
    parser.add_argument("--out", default="runs/benchmarks/generator", help="work folder (reused: finished stages load)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device}, {machine_line(device)}; {args.manifest}, profile {args.profile}", flush=True)
    out = Path(args.out)
    csv = (
        out
        / f"conditioned_generation_splits{args.split_seeds.replace(',', '-')}_w{args.guidance.replace(',', '-')}.csv"
    )
    tables = []
    for seed in split_seeds(args):
        for guidance in [float(w) for w in args.guidance.split(",")]:
            options = parse_options(
                run_items(
                    args, generator="paper", device=str(device), split_seed=seed, **{"conditioning.guidance": guidance}
                )
            )
            run = Run(options, RunLayout(out / "paper" / f"split-{seed}"), inr_cache=out / "inr-cases")
            run.write()
            started = time.perf_counter()
            inr2vec = run.train_inr2vec(run.fit_inrs())
            edm_started = time.perf_counter()
            edm = run.train_conditioned_edm(inr2vec)
            synth_started = time.perf_counter()
            table, _ = run.conditioned_synthesis(edm, inr2vec)
            now = time.perf_counter()
            table = table.reset_index().assign(
                split=seed,
                guidance=guidance,
                stages_1_2_s=round(edm_started - started),
                conditioned_edm_s=round(synth_started - edm_started),
                synthesis_s=round(now - synth_started),
            )
            tables.append(table)
            print(f"split {seed}, guidance {guidance:g}: {now - started:.0f} s", flush=True)
            print(table.drop(columns=["split", "guidance"]).round(3).to_markdown(index=False), flush=True)
            pd.concat(tables).to_csv(csv, index=False)  # kept as it grows
    table = pd.concat(tables)
    if len(tables) > 1:
        numbers = [c for c in table.columns if c.startswith("meets request") or c.startswith("median burden")]
        summary = table.groupby(["guidance", "request"], sort=False)[numbers].mean().round(3)
        print()
        print(f"mean over {table.split.nunique()} split(s)")
        print(summary.to_markdown())


if __name__ == "__main__":
    main()
