"""Throughput of INR fitting: the batched fitter against one volume at a time, and against the matmul peak.

For each network (the `smoke` and `paper` profiles' joint SIRENs, and the authors' published network,
`lgelib.config.AUTHORS_INR`) the script times, on the same cases, voxels per step and learning-rate schedule:

- **DataLoader loop**: one `JointSiren` module per volume, its voxels served by a shuffled `DataLoader` over a
  `TensorDataset`, autograd and Adam: how the authors' public ``fit_inr.py`` feeds its network (it is their
  loop, run here on the network named in the row);
- **autograd, one volume**: `lgelib.inr.fit.fit_batch` on one volume at a time with ``engine="autograd"``
  (voxels drawn by index, no DataLoader): the plain PyTorch way without the DataLoader's cost;
- **batched x N**: `fit_batch` with N volumes at once and the hand-written step (`lgelib.inr.step`).

It prints seconds per volume and step, the speed-up over "autograd, one volume", the achieved GFLOP/s (3 x the
forward multiply-adds of the matmuls: forward and the two backward products; sines, Adam and sampling are not
counted) and that as a share of the batched-matmul peak measured in the same run: a ``torch.bmm`` of the
network's hidden shape, into a preallocated output, for the same N, at the chunk size the fitter uses and at a
whole step's voxels (the better of the two). Writes a CSV beside the printed table.

    .venv/bin/python benchmarks/inr_throughput.py                              # CPU: all three networks
    .venv/bin/python benchmarks/inr_throughput.py --networks smoke --volumes 1,8,32
    .venv/bin/python benchmarks/inr_throughput.py --device cuda --volumes 1,8,32,85 --precision tf32
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from lgelib.config import AUTHORS_INR, get_profile
from lgelib.data.prepare import load_run_data
from lgelib.inr import JointSiren, SirenSettings, siren_init
from lgelib.inr.coords import grid_coordinates
from lgelib.inr.fit import FitSettings, fit_batch, learning_rate, matmul_precision, resolve_precision, stack_targets
from lgelib.inr.siren import flops_per_point
from lgelib.inr.step import SirenStep

REPO = Path(__file__).resolve().parents[1]
NETWORKS = {
    "smoke": lambda: (get_profile("smoke").inr, "smoke"),
    "paper": lambda: (get_profile("paper").inr, "paper"),
    "authors": lambda: (AUTHORS_INR, "paper"),
}
"""name -> (INR stage, profile whose canonical grid it is fitted on)."""
STEPS = {"smoke": 30, "paper": 6, "authors": 3}
"""Timed steps per row on a CPU (a GPU run multiplies them by 10)."""


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(n: int, rows: int, width: int, device: torch.device, precision: str, seconds: float = 1.0) -> float:
    """GFLOP/s of repeated (n, rows, width) x (n, width, width) batched matmuls into a preallocated output."""
    with matmul_precision(precision) as dtype:
        dtype = dtype or torch.float32
        a = torch.randn(n, rows, width, device=device, dtype=dtype)
        b = torch.randn(n, width, width, device=device, dtype=dtype)
        out = torch.empty(n, rows, width, device=device, dtype=dtype)
        torch.bmm(a, b, out=out)
        synchronise(device)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            torch.bmm(a, b, out=out)
            count += 1
        synchronise(device)
        elapsed = time.perf_counter() - started
    return 2 * n * rows * width * width * count / elapsed / 1e9


def dataloader_fit(
    init: torch.Tensor,
    spec: SirenSettings,
    settings: FitSettings,
    image: np.ndarray,
    myocardium: np.ndarray,
    fibrosis: np.ndarray,
    device: torch.device,
    seed: int,
) -> torch.Tensor:
    """One module, one shuffled DataLoader over the volume's voxels, Eq. 1 loss, Adam: the public code's loop."""
    model = JointSiren(spec).load_flat(init).to(device)
    coords = grid_coordinates(image.shape)
    targets = stack_targets(image[None], myocardium[None], fibrosis[None])[0]
    loader = DataLoader(
        TensorDataset(coords, targets),
        batch_size=settings.points_per_step,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    bce = torch.nn.BCEWithLogitsLoss()
    w = settings.loss_weights
    step = 0
    while step < settings.steps:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, step)
            out = model(x)
            loss = (
                w[0] * ((out[:, 0] - y[:, 0]) ** 2).mean()
                + w[1] * bce(out[:, 1], y[:, 1])
                + w[2] * bce(out[:, 2], y[:, 2])
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == settings.steps:
                break
    return model.flat().detach().cpu()


def seconds_per_step(function, steps: int, device: torch.device) -> float:
    """Seconds per step of ``function(steps)``: a (1 + steps)-step run minus the faster of two 1-step runs, so
    fixed costs (set-up, buffers, the DataLoader's first batch) cancel."""

    def timed(k: int) -> float:
        synchronise(device)
        started = time.perf_counter()
        function(k)
        synchronise(device)
        return time.perf_counter() - started

    one = min(timed(1), timed(1))
    return (timed(1 + steps) - one) / steps


def run(
    network: str,
    manifest: str,
    volumes: list[int],
    steps: int,
    device: torch.device,
    precision: str,
    data_dir: Path,
    loops: bool,
) -> list[dict]:
    stage, grid_profile = NETWORKS[network]()
    spec = stage.spec
    prepared = load_run_data(manifest, get_profile(grid_profile).grid, data_dir / grid_profile)
    available = list(prepared.case_ids)
    volumes = [n for n in volumes if n <= len(available)]
    ids = available[: max(volumes)]
    index = prepared.index(ids)
    images, myo, fib = prepared.images[index], prepared.myocardium[index], prepared.fibrosis[index]
    init = siren_init(spec, stage.fit.init_seed)
    points = stage.fit.points_per_step
    flops_per_step = 3 * flops_per_point(spec) * points
    common = {
        "network": network,
        "params": spec.n_params,
        "points/step": points,
        "device": device.type,
        "precision": precision,
    }

    def settings_for(n_steps: int) -> FitSettings:
        return dataclasses.replace(stage.fit, steps=n_steps)

    rows = []

    def add(fitter: str, n: int, per_step: float) -> None:
        peak = max(
            matmul_peak(n, rows_, spec.hidden, device, precision)
            for rows_ in {SirenStep.default_chunk(spec, n, points, device), points}
        )
        achieved = flops_per_step * n / per_step / 1e9
        rows.append(
            {
                **common,
                "fitter": fitter,
                "volumes": n,
                "s/volume-step": per_step / n,
                "volumes/hour at profile steps": 3600 * n / (per_step * stage.fit.steps),
                "GFLOP/s": achieved,
                "bmm peak GFLOP/s": peak,
                "% of peak": 100 * achieved / peak,
            }
        )
        print(
            f"  {network:8s} {fitter:22s} x{n:<3d} {per_step / n * 1e3:9.1f} ms/volume-step "
            f"{achieved:7.1f} GFLOP/s ({100 * achieved / peak:.0f}% of {peak:.0f})",
            flush=True,
        )

    if loops:
        add(
            "DataLoader loop",
            1,
            seconds_per_step(
                lambda k: dataloader_fit(init, spec, settings_for(k), images[0], myo[0], fib[0], device, 0),
                steps,
                device,
            ),
        )
    add(
        "autograd, one volume",
        1,
        seconds_per_step(
            lambda k: fit_batch(
                init,
                spec,
                settings_for(k),
                ids[:1],
                images[:1],
                myo[:1],
                fib[:1],
                device=device,
                precision=precision,
                progress=False,
                engine="autograd",
            ),
            steps,
            device,
        ),
    )
    for n in volumes:
        add(
            f"batched x{n}" if n > 1 else "batched x1",
            n,
            seconds_per_step(
                lambda k, n=n: fit_batch(
                    init,
                    spec,
                    settings_for(k),
                    ids[:n],
                    images[:n],
                    myo[:n],
                    fib[:n],
                    device=device,
                    precision=precision,
                    progress=False,
                ),
                steps,
                device,
            ),
        )
    baseline = rows[1 if loops else 0]["s/volume-step"]
    for row in rows:
        row["speed-up"] = baseline / row["s/volume-step"]
    return rows


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="smoke,paper,authors", help="comma-separated: smoke, paper, authors")
    parser.add_argument("--manifest", default=str(REPO / "data_manifest" / "phantom.yaml"))
    parser.add_argument("--volumes", default="1,2,4,8,16,32", help="batch sizes to time (default 1,2,4,8,16,32)")
    parser.add_argument(
        "--paper-volumes", default="1,2,4,8", help="batch sizes for the paper network on a CPU (default 1,2,4,8)"
    )
    parser.add_argument(
        "--authors-volumes", default="1,2,4", help="batch sizes for the authors' network on a CPU (default 1,2,4)"
    )
    parser.add_argument(
        "--steps", type=int, help="timed steps per row (default: 30 smoke, 6 paper, 3 authors; x10 on a GPU)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default=None, help="fp32 | tf32 | bf16 (default: fp32 CPU, tf32 CUDA)")
    parser.add_argument("--no-loops", action="store_true", help="skip the DataLoader loop (slow on a CPU)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "runs" / "benchmarks")
    parser.add_argument("--csv", type=Path, default=REPO / "runs" / "benchmarks" / "inr_throughput.csv")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    rows = []
    for network in args.networks.split(","):
        sizes = (
            args.volumes
            if network == "smoke" or device.type == "cuda"
            else args.paper_volumes
            if network == "paper"
            else args.authors_volumes
        )
        steps = args.steps or STEPS[network] * (10 if device.type == "cuda" else 1)
        rows += run(
            network,
            args.manifest,
            [int(v) for v in sizes.split(",")],
            steps,
            device,
            precision,
            args.data_dir,
            loops=not args.no_loops,
        )
    table = pd.DataFrame(rows)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv, index=False)
    print(f"\nmachine: {machine_name(device)}; torch {torch.__version__}; data: {Path(args.manifest).name}\n")
    columns = [
        "network",
        "fitter",
        "volumes",
        "s/volume-step",
        "speed-up",
        "volumes/hour at profile steps",
        "GFLOP/s",
        "bmm peak GFLOP/s",
        "% of peak",
    ]
    print(table[columns].to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
