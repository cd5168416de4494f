"""Throughput of the batched INR fitter against one model per volume with a DataLoader (the authors' way).

Both fit the same cases from the same shared initialisation for the same number of steps and voxels per step,
with the same learning-rate schedule and uniform voxel sampling; the script prints volumes fitted per hour,
their ratio, the fidelity each reaches (it must match), and the achieved GFLOP/s against the peak of a plain
batched matmul of the network's hidden layer shape, measured in the same run.

    .venv/bin/python benchmarks/inr_throughput.py                      # smoke and paper profiles on this machine
    .venv/bin/python benchmarks/inr_throughput.py --profile paper --device cuda --cases 64 --steps 200
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

from lgelib.config import get_profile
from lgelib.data.prepare import load_run_data
from lgelib.inr import FitSettings, JointSiren, SirenSpec, decode, siren_init
from lgelib.inr.coords import grid_coordinates
from lgelib.inr.fit import fit_batch, learning_rate, matmul_precision, resolve_precision, stack_targets
from lgelib.inr.siren import flops_per_point
from lgelib.inr.stage import case_fidelity

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = {"smoke": {"cases": 16, "steps": 300}, "paper": {"cases": 2, "steps": 40}}


def baseline_fit(init: torch.Tensor, spec: SirenSpec, settings: FitSettings, image: np.ndarray, myocardium: np.ndarray,
                 fibrosis: np.ndarray, device: torch.device, seed: int) -> torch.Tensor:
    """One model, one DataLoader over the volume's voxels (shuffled), Eq. 1 loss, Adam: as in the public code."""
    model = JointSiren(spec).load_flat(init).to(device)
    coords = grid_coordinates(image.shape)
    targets = stack_targets(image[None], myocardium[None], fibrosis[None])[0]
    loader = DataLoader(TensorDataset(coords, targets), batch_size=settings.points_per_step, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    bce = torch.nn.BCEWithLogitsLoss()
    step = 0
    while step < settings.steps:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, step)
            out = model(x)
            loss = ((out[:, 0] - y[:, 0]) ** 2).mean() + bce(out[:, 1], y[:, 1]) + bce(out[:, 2], y[:, 2])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == settings.steps:
                break
    return model.flat().detach().cpu()


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(n: int, points: int, width: int, device: torch.device, precision: str, seconds: float = 3.0) -> float:
    """GFLOP/s of repeated (n, points, width) x (n, width, width) batched matmuls: this machine's ceiling here."""
    a = torch.randn(n, points, width, device=device)
    b = torch.randn(n, width, width, device=device)
    with matmul_precision(precision) as dtype:
        if dtype is not None:
            a, b = a.to(dtype), b.to(dtype)
        torch.bmm(a, b)
        synchronise(device)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            torch.bmm(a, b)
            count += 1
        synchronise(device)
        elapsed = time.perf_counter() - started
    return 2 * n * points * width * width * count / elapsed / 1e9


def fidelity(params: torch.Tensor, spec: SirenSpec, images, myocardium, fibrosis, device) -> dict[str, float]:
    decoded = decode(params, spec, tuple(images.shape[1:]), device)
    rows = [case_fidelity(decoded, images[i], myocardium[i], fibrosis[i], i) for i in range(len(images))]
    table = pd.DataFrame(rows)
    return {"psnr_db": table.psnr_db.mean(), "myocardium_dice": table.myocardium_dice.mean(),
            "fibrosis_dice": table.fibrosis_dice.mean()}


def run(profile_name: str, manifest: str, cases: int, steps: int, points: int | None, device: torch.device,
        precision: str, data_dir: Path) -> list[dict]:
    profile = get_profile(profile_name)
    spec = profile.inr.spec
    settings = dataclasses.replace(profile.inr.fit, steps=steps, myocardium_fraction=0.0, fibrosis_fraction=0.0,
                                   points_per_step=points or profile.inr.fit.points_per_step)
    prepared = load_run_data(manifest, profile.grid, data_dir / profile_name)
    ids = list(prepared.split.train[:cases])
    if len(ids) < cases:
        raise SystemExit(f"{manifest} has only {len(ids)} training cases, asked for {cases}")
    index = prepared.index(ids)
    images, myo, fib = prepared.images[index], prepared.myocardium[index], prepared.fibrosis[index]
    init = siren_init(spec, settings.init_seed)
    train_flops = 3 * flops_per_point(spec) * settings.points_per_step * settings.steps * len(ids)

    synchronise(device)
    started = time.perf_counter()
    loop = torch.stack([baseline_fit(init, spec, settings, images[i], myo[i], fib[i], device, seed=i)
                        for i in range(len(ids))])
    synchronise(device)
    loop_seconds = time.perf_counter() - started

    started = time.perf_counter()
    batched = fit_batch(init, spec, settings, ids, images, myo, fib, device=device, precision=precision,
                        progress=False)
    synchronise(device)
    batched_seconds = time.perf_counter() - started

    peak = matmul_peak(len(ids), settings.points_per_step, spec.hidden, device, precision)
    common = {"profile": profile_name, "device": device.type, "precision": precision, "cases": len(ids),
              "steps": settings.steps, "points/step": settings.points_per_step, "params": spec.n_params,
              "bmm peak GFLOP/s": peak}
    rows = []
    for name, params, seconds in (("one model per volume + DataLoader", loop, loop_seconds),
                                  ("batched (lgelib)", batched, batched_seconds)):
        achieved = train_flops / seconds / 1e9
        rows.append({**common, "fitter": name, "seconds": seconds, "volumes/hour": len(ids) * 3600 / seconds,
                     "GFLOP/s": achieved, "% of peak": 100 * achieved / peak,
                     **fidelity(params, spec, images, myo, fib, device)})
    rows[1]["speed-up"] = loop_seconds / batched_seconds
    rows[0]["speed-up"] = 1.0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["smoke", "paper", "all"], default="all")
    parser.add_argument("--manifest", default=str(REPO / "data_manifest" / "phantom.yaml"))
    parser.add_argument("--cases", type=int, help="volumes (default: 16 smoke, 2 paper)")
    parser.add_argument("--steps", type=int, help="steps per volume (default: 300 smoke, 40 paper)")
    parser.add_argument("--points", type=int, help="voxels per step (default: the profile's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default=None, help="fp32 | tf32 | bf16 (default: fp32 CPU, tf32 CUDA)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "runs" / "benchmarks")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    profiles = ["smoke", "paper"] if args.profile == "all" else [args.profile]
    rows = []
    for name in profiles:
        rows += run(name, args.manifest, args.cases or DEFAULTS[name]["cases"], args.steps or DEFAULTS[name]["steps"],
                    args.points, device, precision, args.data_dir)
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                    f"{torch.get_num_threads()} torch threads")
    print(f"\nmachine: {machine}; torch {torch.__version__}; data: {Path(args.manifest).name}\n")
    table = pd.DataFrame(rows)
    columns = ["profile", "device", "fitter", "cases", "steps", "points/step", "seconds", "volumes/hour", "speed-up",
               "psnr_db", "myocardium_dice", "fibrosis_dice", "GFLOP/s", "bmm peak GFLOP/s", "% of peak"]
    print(table[columns].to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
