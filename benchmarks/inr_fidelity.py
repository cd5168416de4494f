"""Fidelity of the INR stage with a profile's settings: fit some training cases of a dataset, print the table.

    .venv/bin/python benchmarks/inr_fidelity.py --profile smoke                         # the embedded cohort
    EMIDEC_ROOT=/path/to/emidec .venv/bin/python benchmarks/inr_fidelity.py \\
        --profile paper --manifest data_manifest/emidec.yaml --cases 4 --with-fibrosis
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from lgelib.config import get_profile
from lgelib.data.prepare import load_run_data
from lgelib.inr import fit_inrs

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--manifest", default=str(REPO / "data_manifest" / "phantom.yaml"))
    parser.add_argument("--cases", type=int, default=None, help="first N training cases (default: all)")
    parser.add_argument("--with-fibrosis", action="store_true", help="only cases whose reference has fibrosis")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "fidelity")
    args = parser.parse_args()
    profile = get_profile(args.profile)
    name = Path(args.manifest).stem
    prepared = load_run_data(args.manifest, profile.grid, args.out / f"{name}-{args.profile}")
    ids = [
        c for c in prepared.split.train if not args.with_fibrosis or prepared.fibrosis[prepared.index([c])[0]].any()
    ][: args.cases]
    started = time.perf_counter()
    fitted = fit_inrs(
        prepared,
        args.out / f"{name}-{args.profile}" / "inr",
        profile.inr.spec,
        profile.inr.fit,
        case_ids=ids,
        cases_per_batch=profile.inr.cases_per_batch,
        device=args.device,
    )
    seconds = time.perf_counter() - started
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(
        f"\n{args.profile} profile, {name}: {len(ids)} training cases, {profile.inr.fit.steps} steps x "
        f"{profile.inr.fit.points_per_step} voxels, {profile.inr.spec.n_params:,} parameters; {seconds:.0f} s "
        f"this run on {args.device or 'the default device'} ({machine})\n"
    )
    table = fitted.fidelity.drop(columns="seconds")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    summary = table[["psnr_db", "myocardium_dice", "fibrosis_dice"]].agg(["mean", "min", "max"])
    print("\n" + summary.to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
