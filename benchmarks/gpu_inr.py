"""The INR stage on a GPU, in one call of at most 10 minutes: every EMIDEC-derived case in one batch.

For the `paper` profile's network (all cases in one batch) and for the authors' network
(`lgelib.config.AUTHORS_INR`, 16 cases a batch), with TF32 and with bf16 matmuls: seconds per step, volumes per
hour at the network's full steps, achieved TFLOP/s against a batched-matmul peak measured in the same run (same
dtype, same batch), and the time until every case reaches PSNR >= 30 dB and myocardium Dice >= 0.95
(`inr_time_to_fidelity.py`), each capped so the whole script fits its budget. Prints the tables and writes them to
``$OUT`` (or ``--out``).

    mkdir -p data-local && cp -r /path/to/emidec-derived data-local/     # an ignored folder, carried to the GPU
    EMIDEC_ROOT=data-local/emidec-derived python benchmarks/gpu_inr.py --manifest data_manifest/emidec.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import pandas as pd
import torch

from inr_throughput import NETWORKS, machine_name, matmul_peak, seconds_per_step
from inr_time_to_fidelity import measure
from lgelib.config import get_profile
from lgelib.data.prepare import load_run_data
from lgelib.inr import siren_init
from lgelib.inr.fit import fit_batch
from lgelib.inr.siren import flops_per_point

REPO = Path(__file__).resolve().parents[1]


def throughput(
    network: str, manifest: str, cases: int, steps: int, device: torch.device, precision: str, data_dir: Path
) -> dict:
    stage, grid_profile = NETWORKS[network]()
    prepared = load_run_data(manifest, get_profile(grid_profile).grid, data_dir / grid_profile)
    ids = list(prepared.case_ids[:cases])
    index = prepared.index(ids)
    spec, settings = stage.spec, stage.fit
    init = siren_init(spec, settings.init_seed)
    per_step = seconds_per_step(
        lambda k: fit_batch(
            init,
            spec,
            dataclasses.replace(settings, steps=k),
            ids,
            prepared.images[index],
            prepared.myocardium[index],
            prepared.fibrosis[index],
            device=device,
            precision=precision,
            progress=False,
        ),
        steps,
        device,
    )
    achieved = 3 * flops_per_point(spec) * settings.points_per_step * len(ids) / per_step / 1e12
    peak = matmul_peak(len(ids), min(settings.points_per_step, 8192), spec.hidden, device, precision) / 1e3
    return {
        "network": network,
        "precision": precision,
        "volumes": len(ids),
        "s/step": per_step,
        "volumes/hour": 3600 * len(ids) / (per_step * settings.steps),
        "TFLOP/s": achieved,
        "bmm peak TFLOP/s": peak,
        "% of peak": 100 * achieved / peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default=str(REPO / "data_manifest" / "emidec.yaml"))
    parser.add_argument("--cases", type=int, default=85, help="volumes in the batch (default 85: all)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps for throughput (default 20)")
    parser.add_argument(
        "--ttf-minutes", type=float, default=1.5, help="fitting time cap per time-to-fidelity run (default 1.5; 4 runs)"
    )
    parser.add_argument(
        "--authors-cases",
        type=int,
        default=16,
        help="volumes in the authors' network's batch (default 16: with bf16 it runs through autograd, "
        "whose saved activations for 85 x 65,536 voxels x 512 would not fit in GPU memory)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default="tf32,bf16")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", REPO / "runs" / "benchmarks" / "gpu")))
    parser.add_argument("--data-dir", type=Path, default=REPO / "runs" / "benchmarks")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    speed, fidelity, curves = [], [], []
    for precision in args.precisions.split(","):
        for network, cases in (("paper", args.cases), ("authors", args.authors_cases)):
            speed.append(throughput(network, args.manifest, cases, args.steps, device, precision, args.data_dir))
            print(speed[-1], flush=True)
    for precision in args.precisions.split(","):
        for network, cases in (("paper", args.cases), ("authors", args.authors_cases)):
            summary, curve = measure(
                network,
                args.manifest,
                cases,
                100 if network == "paper" else 10,
                60 * args.ttf_minutes,
                30.0,
                0.95,
                device,
                precision,
                args.data_dir,
            )
            fidelity.append({**summary, "precision": precision})
            curves += [{**point, "precision": precision} for point in curve]
    pd.DataFrame(speed).to_csv(args.out / "gpu_inr_throughput.csv", index=False)
    pd.DataFrame(fidelity).to_csv(args.out / "gpu_inr_time_to_fidelity.csv", index=False)
    pd.DataFrame(curves).to_csv(args.out / "gpu_inr_curves.csv", index=False)
    print(f"\nmachine: {machine_name(device)}; torch {torch.__version__}; {time.perf_counter() - started:.0f} s\n")
    print(pd.DataFrame(speed).to_markdown(index=False, floatfmt=".3g"))
    print()
    print(pd.DataFrame(fidelity).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
