"""Scar enhancement by localized partial diffusion (Hasny et al., chapter 08) on one split: the paper's Table 1,
its ablation (localized noise yes / no, mean of k yes / no) and CNR against lambda, with the training throughput.

    python benchmarks/scar_enhancement.py                                   # embedded cohort, smoke profile
    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/scar_enhancement.py \\
        --manifest data_manifest/emidec.yaml --out runs/scar-enhancement-emidec

Writes ``<out>/scar_enhancement_<profile>_split<s>.csv`` (Table 1 and the ablation as one table),
``..._lambda.csv`` and, with ``--roi-predictions``, ``..._predicted_roi.csv`` (Table 1 with the ROI from a
segmentation model's myocardium, as the paper does at inference, at each ``--roi-dilations``). The run folder is
``<out>/run``: trained denoisers are reused.

Where a GPU is at hand (issue: "train the paper-size model for as many epochs as fit one prepared <= 10 minute
script and report throughput (slices/s), time per epoch and the CNR reached"); not yet run, no GPU was lent:

    EMIDEC_ROOT=/path/to/emidec-derived timeout 580 python benchmarks/scar_enhancement.py --profile paper \\
        --manifest data_manifest/emidec.yaml --out runs/scar-enhancement-gpu --set enhancement.diffusion.epochs=40 \\
        --no-global

(``--no-global`` skips the ablation's second model, so that the time goes to the method.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _options import add_run_arguments, machine_line, run_items
from lgelib.device import resolve_device
from lgelib.layout import RunLayout
from lgelib.run import Run, parse_options
from lgelib.scar_enhancement.experiment import (
    PAPER_TABLE1,
    cnr_against_lambda,
    evaluate_enhancement,
    lambda_grid,
    original_cnr,
    predicted_roi_table,
)
from lgelib.scar_enhancement.slices import predicted_myocardium


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, split_seeds=None)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--out", default="runs/benchmarks/scar-enhancement", help="work folder (reused)")
    parser.add_argument("--no-global", action="store_true", help="skip the global (ablation) model")
    parser.add_argument(
        "--roi-predictions",
        help="a folder of a segmentation model's label maps (<case_id>.nii.gz on each scan's grid, e.g. an "
        "experiment's split-<s>/seg/predictions/N0): Table 1 again with the ROI from them, as the paper at inference",
    )
    parser.add_argument("--roi-dilations", default="0,2,4", help="pixels to grow the predicted ROI by (default 0,2,4)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device}, {machine_line(device)}", flush=True)
    out = Path(args.out)
    options = parse_options(run_items(args, device=str(device), split_seed=args.split_seed))
    run = Run(options, RunLayout(out / "run"))
    run.write()
    settings = run.settings.enhancement
    started = time.perf_counter()
    data = run.enhancement_data
    train, test = data["train"], data["test"]
    print(
        f"{run.dataset.manifest.name}: {len(train)} training slices ({len(run.split.train)} cases), {len(test)} test "
        f"slices ({int(test.with_scar.sum())} with scar); {settings.slices.size} px over "
        f"{settings.slices.fov_mm:g} mm; slices, targets and ROIs in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    rows = []
    models = {}
    for local in (True,) if args.no_global else (True, False):
        started = time.perf_counter()
        models[local] = run.train_enhancer(local, progress=True)
        wall = time.perf_counter() - started
        seconds = models[local].seconds
        steps = len(models[local].history)
        slices_per_s = steps * settings.diffusion.batch_size / seconds
        epoch_s = seconds / settings.diffusion.epochs
        rows.append(
            {
                "model": "local" if local else "global",
                "steps": steps,
                "training s": round(seconds, 1),
                "slices/s": round(slices_per_s, 1),
                "s per epoch": round(epoch_s, 2),
                "final loss (mean of last 100 steps)": round(float(models[local].history.loss.tail(100).mean()), 4),
                "wall s (0 if reused)": round(wall, 1),
            }
        )
    print("\nTraining\n")
    print(pd.DataFrame(rows).to_markdown(index=False))
    started = time.perf_counter()
    result = evaluate_enhancement(
        models[True], models.get(False), test, data["test_targets"], data["test_roi"], settings.sampling, str(device)
    )
    sampling_s = time.perf_counter() - started
    print(f"\nenhancement of {len(test)} test slices (all variants): {sampling_s:.1f} s")
    print(f"\nTable 1 ({run.dataset.manifest.name}, split {args.split_seed}, {len(test)} test slices)\n")
    print(result.table.to_markdown())
    print("\nThe paper's Table 1 (188 patients with hypertrophic cardiomyopathy)\n")
    print(PAPER_TABLE1.to_markdown())
    print("\nAblation\n")
    print(result.ablation.to_markdown(index=False))
    lambdas = lambda_grid(settings.diffusion.timesteps, settings.sampling.lam)
    started = time.perf_counter()
    curve = cnr_against_lambda(
        models[True], test, data["test_roi"], lambdas, settings.sampling.seed, device=str(device)
    )
    baseline = {name: round(value, 2) for name, value in original_cnr(test, data["test_roi"]).items()}
    print(
        f"\nCNR against lambda ({curve.slices.iloc[0]} test slices with scar, 1 sample; "
        f"the same slices, original: {baseline['CNR(scar, myo)']}, {baseline['CNR(scar, blood)']}; "
        f"{time.perf_counter() - started:.1f} s)\n"
    )
    print(curve.round(3).to_markdown(index=False))
    tag = f"{args.profile}_split{args.split_seed}"
    if args.roi_predictions:
        started = time.perf_counter()
        predicted = predicted_myocardium(run.dataset, run.split.test, settings.slices, args.roi_predictions)
        dilations = [int(d) for d in args.roi_dilations.split(",")]
        by_roi = predicted_roi_table(
            models[True], test, data["test_targets"], predicted, dilations, settings.sampling, str(device)
        )
        print(f"\nTable 1 with the ROI from {args.roi_predictions} ({time.perf_counter() - started:.1f} s)\n")
        print(by_roi.to_markdown())
        by_roi.to_csv(out / f"scar_enhancement_{tag}_predicted_roi.csv")
    table = pd.concat(
        [
            result.table,
            result.ablation.set_index("local " + result.ablation["local"] + ", mean " + result.ablation["mean"]).drop(
                columns=["local", "mean"]
            ),
        ]
    )
    table.index.name = "variant"
    table.to_csv(out / f"scar_enhancement_{tag}.csv")
    curve.to_csv(out / f"scar_enhancement_{tag}_lambda.csv", index=False)
    pd.DataFrame(rows).to_csv(out / f"scar_enhancement_{tag}_training.csv", index=False)
    gammas = data["gammas"]
    scarred = gammas.scar_gamma > 1
    print(
        f"\ngamma targets: scar gamma median {np.median(gammas.scar_gamma[scarred]):.2f} on {int(scarred.sum())} "
        f"slices with scar; blood darkened on {int((gammas.blood_gamma < 1).sum())} of {len(gammas)} slices "
        f"(reference mean blood pool {data['blood_reference']:.3f})"
    )
    print(f"written: {out}/scar_enhancement_{tag}*.csv")


if __name__ == "__main__":
    main()
