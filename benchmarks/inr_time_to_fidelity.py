"""Time to fidelity: seconds per volume until every fitted INR reproduces its volume (PSNR and myocardium Dice).

Each network (`smoke` and `paper` profiles' joint SIRENs, and the authors' published network and settings,
`lgelib.config.AUTHORS_INR`) is fitted with `lgelib.inr.fit.fit_batch` on the first training cases of a manifest,
on its profile's canonical grid. Every ``--eval-every`` steps the INRs are decoded on the whole grid and measured
(image PSNR with intensities in [0, 1], Dice of the 0.5-thresholded mask heads); the clock stops while measuring.
A run ends when every case reaches the targets (default PSNR >= 30 dB and myocardium Dice >= 0.95), at the
network's full number of steps, or at ``--max-minutes`` of fitting. Prints the summary table and writes the
curves (fidelity against fitting seconds) to a CSV.

    EMIDEC_ROOT=/path/to/emidec .venv/bin/python benchmarks/inr_time_to_fidelity.py --manifest data_manifest/emidec.yaml
    .venv/bin/python benchmarks/inr_time_to_fidelity.py --networks authors --cases 1 --max-minutes 5
    .venv/bin/python benchmarks/inr_time_to_fidelity.py --device cuda --cases 16 --max-minutes 3   # a GPU
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from inr_throughput import NETWORKS, machine_name, synchronise
from lgelib.config import get_profile
from lgelib.data.prepare import load_run_data
from lgelib.inr import decode, siren_init
from lgelib.inr.fit import fit_batch, resolve_precision
from lgelib.inr.stage import case_fidelity

REPO = Path(__file__).resolve().parents[1]
CASES = {"smoke": 16, "paper": 2, "authors": 1}
EVAL_EVERY = {"smoke": 50, "paper": 50, "authors": 10}


class Stop(Exception):
    """Raised from the step callback to end a run."""


def measure(
    network: str,
    manifest: str,
    cases: int,
    eval_every: int,
    max_seconds: float,
    psnr_target: float,
    dice_target: float,
    device: torch.device,
    precision: str,
    data_dir: Path,
) -> tuple[dict, list[dict]]:
    stage, grid_profile = NETWORKS[network]()
    prepared = load_run_data(manifest, get_profile(grid_profile).grid, data_dir / grid_profile)
    ids = list(prepared.split.train[:cases])
    index = prepared.index(ids)
    images, myo, fib = prepared.images[index], prepared.myocardium[index], prepared.fibrosis[index]
    spec, settings = stage.spec, stage.fit
    curve: list[dict] = []
    clock = {"fit": 0.0, "since": 0.0}
    reached: dict | None = None

    def evaluate(step: int, params: torch.Tensor) -> None:
        nonlocal reached
        decoded = decode(params, spec, tuple(images.shape[1:]), device)
        rows = pd.DataFrame([case_fidelity(decoded, images[i], myo[i], fib[i], i) for i in range(len(ids))])
        point = {
            "network": network,
            "step": step,
            "seconds/volume": clock["fit"] / len(ids),
            "psnr_db mean": rows.psnr_db.mean(),
            "psnr_db min": rows.psnr_db.min(),
            "myocardium_dice min": rows.myocardium_dice.min(),
            "fibrosis_dice mean": rows.fibrosis_dice.mean(),
        }
        curve.append(point)
        print(
            f"  {network:8s} step {step:5d}  {point['seconds/volume']:8.1f} s/volume  PSNR {point['psnr_db min']:5.1f}"
            f"-{rows.psnr_db.max():5.1f} dB  myocardium Dice >= {point['myocardium_dice min']:.3f}",
            flush=True,
        )
        if reached is None and point["psnr_db min"] >= psnr_target and point["myocardium_dice min"] >= dice_target:
            reached = point
            raise Stop

    def on_step(step: int, losses: torch.Tensor, params: torch.Tensor) -> None:
        done = step + 1
        if done % eval_every and done != settings.steps:
            return
        synchronise(device)
        clock["fit"] += time.perf_counter() - clock["since"]
        evaluate(done, params)
        if clock["fit"] >= max_seconds:
            raise Stop
        clock["since"] = time.perf_counter()

    synchronise(device)
    clock["since"] = time.perf_counter()
    try:
        fit_batch(
            siren_init(spec, settings.init_seed),
            spec,
            settings,
            ids,
            images,
            myo,
            fib,
            device=device,
            precision=precision,
            progress=False,
            on_step=on_step,
        )
    except Stop:
        pass
    last = curve[-1]
    summary = {
        "network": network,
        "params": spec.n_params,
        "cases": len(ids),
        "points/step": settings.points_per_step,
        "profile steps": settings.steps,
        "steps to target": reached["step"] if reached else np.nan,
        "s/volume to target": reached["seconds/volume"] if reached else np.nan,
        "steps run": last["step"],
        "s/volume run": last["seconds/volume"],
        "PSNR dB (min) at end": last["psnr_db min"],
        "myocardium Dice (min) at end": last["myocardium_dice min"],
        "fibrosis Dice (mean) at end": last["fibrosis_dice mean"],
    }
    return summary, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="smoke,paper,authors", help="comma-separated: smoke, paper, authors")
    parser.add_argument("--manifest", default=str(REPO / "data_manifest" / "phantom.yaml"))
    parser.add_argument("--cases", type=int, help="volumes fitted together (default: 16 smoke, 2 paper, 1 authors)")
    parser.add_argument("--eval-every", type=int, help="steps between measurements (default 50; authors 10)")
    parser.add_argument("--max-minutes", type=float, default=8.0, help="fitting time per network (default 8)")
    parser.add_argument("--psnr", type=float, default=30.0, help="PSNR target, dB (default 30)")
    parser.add_argument("--dice", type=float, default=0.95, help="myocardium Dice target (default 0.95)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default=None, help="fp32 | tf32 | bf16 (default: fp32 CPU, tf32 CUDA)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "runs" / "benchmarks")
    parser.add_argument("--csv", type=Path, default=REPO / "runs" / "benchmarks" / "inr_time_to_fidelity.csv")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    summaries, curves = [], []
    for network in args.networks.split(","):
        summary, curve = measure(
            network,
            args.manifest,
            args.cases or CASES[network],
            args.eval_every or EVAL_EVERY[network],
            60 * args.max_minutes,
            args.psnr,
            args.dice,
            device,
            precision,
            args.data_dir,
        )
        summaries.append(summary)
        curves += curve
    machine = f"{machine_name(device)}, {precision}; torch {torch.__version__}"
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(curves).assign(machine=machine, data=Path(args.manifest).name).to_csv(args.csv, index=False)
    print(
        f"\nmachine: {machine}; data: {Path(args.manifest).name}; "
        f"targets: PSNR >= {args.psnr} dB and myocardium Dice >= {args.dice} on every case\n"
    )
    print(pd.DataFrame(summaries).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
