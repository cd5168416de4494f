"""The generator, variant by variant: inr2vec fidelity (training and held-out INRs), the memorisation audit against
held-out real cases, anatomy QC, scar burden, LV length, texture, and the time of stages 2-3.

    python benchmarks/generator_variants.py                                  # embedded cohort, split 0
    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/generator_variants.py \
        --manifest data_manifest/emidec.yaml --split-seeds 0,1,2 --out runs/benchmarks/generator-emidec
    # a variant with further changes, kept apart as <variant>+<tag>:
    python benchmarks/generator_variants.py --variants paper --set edm.holdout_fraction=0.15 --tag select

Every variant starts from the same INRs (one per case, shared by the splits and variants through
``<out>/inr-cases``) and changes only what its name says (`lgelib.config.with_generator` describes each).

Each variant's work sits in ``<out>/<variant>/split-<seed>`` laid out as a run directory, so
``lgelib experiment --generator <variant> --out <out>/<variant>`` reuses it for Table 1. The table is printed and
written to ``<out>/generator_variants.csv`` as it grows.

Goals (issue "a generator that makes new, scan-like hearts"): held-out myocardium Dice >= 0.85 and PSNR within 2 dB
of the training decode; at most 50% of synthetic hearts nearer (1 - myocardium Dice) to a training heart than the
median real test heart is; synthetic median scar burden within 20% of the training cases'; closed rings in >= 95% of
myocardial slices; >= 98% of decoded fibrosis inside the myocardium.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _options import add_run_arguments, machine_line, run_items, split_seeds
from lgelib.config import GENERATORS as VARIANTS
from lgelib.data.prepare import load_prepared
from lgelib.geometry import slice_spacings
from lgelib.device import resolve_device
from lgelib.inr2vec import reconstruction_fidelity
from lgelib.layout import RunLayout
from lgelib.run import Run, RunOptions, parse_options
from lgelib.quality import mask_audit, nearer_than_median_test, texture_table
from lgelib.synthesis import real_qc


def measure(
    options: RunOptions,
    root: Path,
    seed: int,
    name: str,
    n_volumes: int,
    device: torch.device,
    tag: str | None = None,
) -> dict:
    """Stages 2-3 of generator ``name`` (`lgelib.config.GENERATORS`) with ``options`` on one split, and every
    number of the table. Each variant and split is one `lgelib.run.Run` laid out as ``lgelib experiment
    --generator <name> --out <root>/<name>`` lays out its own, so that experiment reuses it; the INRs are shared
    by every variant. ``tag``: the variant with further changes (made in ``options``) is called and kept as
    ``<name>+<tag>``."""
    options = dataclasses.replace(options, generator=name, device=str(device), split_seed=seed)
    label = f"{name}+{tag}" if tag else name
    run = Run(options, RunLayout(root / label / f"split-{seed}"), inr_cache=root / "inr-cases")
    run.write()
    prepared = run.prepared
    train_ids = list(prepared.split.train)
    started = time.perf_counter()
    train, heldout = run.fit_inrs(), run.fit_heldout_inrs()
    timings = {"inr_s (0 when shared)": time.perf_counter() - started}
    started = time.perf_counter()
    inr2vec = run.train_inr2vec(train)
    timings["inr2vec_s"] = time.perf_counter() - started
    started = time.perf_counter()
    edm = run.train_edm(inr2vec)
    timings["edm_s"] = time.perf_counter() - started
    started = time.perf_counter()
    synthetic = run.synthesize(edm, inr2vec, n_volumes)
    timings["synthesis_s"] = time.perf_counter() - started

    fidelity = {
        kind: reconstruction_fidelity(inr2vec.model, inrs, prepared, device)
        for kind, inrs in (("train", train), ("heldout", heldout))
    }
    data = load_prepared(synthetic.folder)
    audit = mask_audit(data, prepared)
    accepted = synthetic.qc[synthetic.qc.accepted]
    real = real_qc(prepared, train_ids)
    fibrosis_voxels = accepted.fibrosis_ml.sum()
    texture_real = texture_table(prepared, train_ids)
    texture_synthetic = texture_table(data, data.case_ids)
    real_spacing = slice_spacings(prepared, train_ids)
    row = {
        "split": seed,
        "variant": label,
        "train PSNR": fidelity["train"].psnr_db.mean(),
        "train myo": fidelity["train"].myocardium_dice.mean(),
        "train fib": fidelity["train"].fibrosis_dice.mean(),
        "held-out PSNR": fidelity["heldout"].psnr_db.mean(),
        "held-out myo": fidelity["heldout"].myocardium_dice.mean(),
        "held-out fib": fidelity["heldout"].fibrosis_dice.mean(),
        "nearer than median test": nearer_than_median_test(audit),
        "burden synth/real": accepted.scar_burden_pct.median() / max(real.scar_burden_pct.median(), 1e-9),
        "closed rings %": 100 * accepted.closed_ring_slices.sum() / max(accepted.myocardium_slices.sum(), 1),
        "fibrosis inside %": (
            100 - np.average(accepted.fibrosis_outside_pct, weights=accepted.fibrosis_ml)
            if fibrosis_voxels > 0
            else float("nan")
        ),
        "HF synth/real": texture_synthetic.high_frequency_rms.median() / texture_real.high_frequency_rms.median(),
        "edge synth/real": texture_synthetic.edge_strength.median() / texture_real.edge_strength.median(),
        "slice mm synth [min, max]": f"{accepted.slice_spacing_mm.min():.1f}-{accepted.slice_spacing_mm.max():.1f}",
        "slice mm real [min, max]": f"{real_spacing.min():.1f}-{real_spacing.max():.1f}",
        "drawn": synthetic.record["n_drawn"],
        **timings,
    }
    if edm.selection is not None:  # the snapshot kept: share nearest one half, the later one on ties
        scores = (edm.selection.share_nearer - 0.5).abs().to_numpy()
        kept = edm.selection.iloc[np.flatnonzero(scores == scores.min())[-1]]
        row["EDM step kept (share nearer)"] = f"{int(kept.step)} ({kept.share_nearer:.2f})"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--n-synthetic", type=int, default=200)
    parser.add_argument("--inr2vec-steps", type=int, help="override the profile's inr2vec steps")
    parser.add_argument(
        "--tag",
        help="suffix of each variant's name and folder (<variant>+<tag>) for the changes made with --set, so that "
        "they neither reuse nor overwrite the variant's own work",
    )
    parser.add_argument("--out", default="runs/benchmarks/generator", help="work folder (reused: finished stages load)")
    args = parser.parse_args()
    if args.set and not args.tag:
        parser.error("--set changes the variants: name the change with --tag")
    device = resolve_device(args.device)
    print(f"device: {device}, {machine_line(device)}; {args.manifest}, profile {args.profile}", flush=True)
    options = parse_options(run_items(args, inr2vec_steps=args.inr2vec_steps))
    rows = []
    for seed in split_seeds(args):
        for name in args.variants.split(","):
            started = time.perf_counter()
            rows.append(measure(options, Path(args.out), seed, name, args.n_synthetic, device, args.tag))
            print(f"split {seed}, {rows[-1]['variant']}: {time.perf_counter() - started:.0f} s", flush=True)
            pd.DataFrame(rows).to_csv(Path(args.out) / "generator_variants.csv", index=False)  # kept as it grows
    table = pd.DataFrame(rows)
    print()
    print(table.round(3).to_markdown(index=False))
    if table.split.nunique() > 1:
        numbers = table.select_dtypes("number").drop(columns="split").columns
        summary = table.groupby("variant", sort=False)[list(numbers)].agg(["mean", "std"]).round(3)
        summary.columns = [f"{a} {b}" for a, b in summary.columns]
        print()
        print(summary.T.to_markdown())


if __name__ == "__main__":
    main()
