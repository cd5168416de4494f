"""Time and quality of stages 2-3 (inr2vec, EDM, synthesis) and the per-step cost of the paper profile.

    python benchmarks/latent_stages.py                        # smoke profile, embedded cohort, CPU
    python benchmarks/latent_stages.py --paper-steps 5        # also time paper-profile steps on random INRs
    python benchmarks/latent_stages.py --device cuda --paper-steps 50

The smoke part reuses (or fits) the run's training INRs, then trains inr2vec and EDM and writes the synthetic
volumes into a fresh folder, timing each; it prints the timings, inr2vec's fidelity on training and held-out INRs,
and the QC comparison of real and synthetic cases, as markdown tables. The paper part times a few optimisation
steps of inr2vec and EDM at the paper profile's sizes on random INRs (the cost of a step does not depend on what
the INRs hold) and extrapolates to the profile's full step counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from lgelib.config import get_profile
from lgelib.data.prepare import load_run_data
from lgelib.data.validate import validate_dataset
from lgelib.edm import train_edm
from lgelib.inr import FittedInrs, fit_inrs, siren_init
from lgelib.device import resolve_device
from lgelib.inr2vec import reconstruction_fidelity, train_inr2vec
from lgelib.synthesis import compare_qc, nominal_spacing, real_qc, synthesize


def smoke(args: argparse.Namespace, device: torch.device) -> None:
    profile = get_profile("smoke")
    prepared = load_run_data(args.manifest, profile.grid, args.run_dir)
    started = time.perf_counter()
    train = fit_inrs(
        prepared,
        Path(args.run_dir) / "inr",
        profile.inr.spec,
        profile.inr.fit,
        case_ids=list(prepared.split.train),
        device=device,
        progress=False,
    )
    heldout = fit_inrs(
        prepared,
        Path(args.run_dir) / "inr-heldout",
        profile.inr.spec,
        profile.inr.fit,
        case_ids=list(prepared.split.test),
        device=device,
        progress=False,
    )
    inr_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        timings = {}
        started = time.perf_counter()
        inr2vec = train_inr2vec(train, out / "inr2vec", profile.inr2vec, device=device, progress=False)
        timings["inr2vec training"] = time.perf_counter() - started
        started = time.perf_counter()
        edm = train_edm(inr2vec.latents, out / "edm", profile.edm, device=device, progress=False)
        timings["EDM training"] = time.perf_counter() - started
        started = time.perf_counter()
        settings = dataclasses.replace(profile.synthesis, n_volumes=args.n_synthetic)
        synthetic = synthesize(
            edm,
            inr2vec,
            out / "synth",
            settings,
            profile.grid.shape,
            nominal_spacing(prepared, train.case_ids),
            True,
            device=device,
            progress=False,
        )
        timings[f"sampling, decoding, checking and writing {args.n_synthetic} volumes"] = time.perf_counter() - started
        started = time.perf_counter()
        report = validate_dataset(synthetic.manifest, grid=profile.grid, progress=False)
        timings["lgelib validate of the synthetic set"] = time.perf_counter() - started
        total = sum(timings.values())
        fidelity = pd.concat(
            [
                reconstruction_fidelity(inr2vec.model, train, prepared, device).assign(set="training"),
                reconstruction_fidelity(inr2vec.model, heldout, prepared, device).assign(set="held-out"),
            ]
        )
        qc = compare_qc(
            {"real (training)": real_qc(prepared, train.case_ids), "synthetic": synthetic.qc[synthetic.qc.accepted]}
        )
    print(
        f"\n### Smoke profile: {len(train.case_ids)} training and {len(heldout.case_ids)} held-out INRs "
        f"({inr_seconds:.0f} s to fit or load them, not counted below)\n"
    )
    table = pd.DataFrame(
        {
            "stage": list(timings) + ["**total**"],
            "seconds": [f"{s:.1f}" for s in timings.values()] + [f"**{total:.1f}**"],
        }
    )
    print(table.to_markdown(index=False))
    print(
        f"\nvalidation: {report.format().splitlines()[0].split(': ', 1)[0]}; "
        f"{synthetic.record['n_drawn']} drawn for {len(synthetic.case_ids)} written\n"
    )
    columns = ["psnr_db", "inr_psnr_db", "myocardium_dice", "fibrosis_dice"]
    summary = fidelity.groupby("set", sort=False)[columns].agg(["mean", "min"]).round(3)
    summary.columns = [f"{a} {b}" for a, b in summary.columns]
    print(summary.to_markdown())
    print()
    print(qc.to_markdown())


def seconds_per_step(function, steps: int) -> float:
    """(time of a run of 1 + steps steps - time of a run of 1 step) / steps: fixed costs (decoding the INRs into
    targets, encoding them afterwards, saving) cancel out."""

    def timed(count: int) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        function(count)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - started

    timed(1)  # warm-up (allocations, kernels)
    return (timed(1 + steps) - timed(1)) / steps


def paper(args: argparse.Namespace, device: torch.device) -> None:
    profile = get_profile("paper")
    spec, i2v, edm_settings = profile.inr.spec, profile.inr2vec, profile.edm
    generator = torch.Generator().manual_seed(0)
    n = i2v.batch_size
    init = siren_init(spec, 0)
    params = init + 1e-3 * torch.randn(n, spec.n_params, generator=generator)
    fitted = FittedInrs(
        [f"random_{i:03d}" for i in range(n)],
        params,
        init,
        spec,
        profile.inr.fit,
        profile.grid.shape,
        pd.DataFrame({"case_id": [], "psnr_db": []}),
    )
    rows = []
    runs = itertools.count()  # a fresh folder per run, so no run finds a finished model
    with tempfile.TemporaryDirectory() as scratch:

        def run_inr2vec(steps: int) -> None:
            settings = dataclasses.replace(i2v, steps=steps, checkpoint_every=10**9)
            train_inr2vec(fitted, Path(scratch) / f"inr2vec-{next(runs)}", settings, device=device, progress=False)

        def run_edm(steps: int) -> None:
            latents = torch.randn(105, i2v.latent_dim, generator=generator)
            settings = dataclasses.replace(edm_settings, steps=steps, checkpoint_every=10**9)
            train_edm(latents, Path(scratch) / f"edm-{next(runs)}", settings, device=device, progress=False)

        for name, function, full in (("inr2vec", run_inr2vec, i2v.steps), ("EDM", run_edm, edm_settings.steps)):
            per_step = seconds_per_step(function, args.paper_steps)
            rows.append(
                {
                    "stage": name,
                    "steps timed": args.paper_steps,
                    "seconds per step": f"{per_step:.3f}",
                    "profile steps": full,
                    "extrapolated hours": f"{per_step * full / 3600:.2f}",
                }
            )
    print(
        f"\n### Paper profile, per step (inr2vec: {n} INRs x {i2v.points_per_inr} voxels per step; EDM: batch "
        f"{edm_settings.batch_size})\n"
    )
    print(pd.DataFrame(rows).to_markdown(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="data_manifest/phantom.yaml")
    parser.add_argument("--run-dir", default="runs/benchmarks/latent-smoke", help="where the INRs are kept")
    parser.add_argument("--device", help="cpu or cuda (default: CUDA if available)")
    parser.add_argument("--n-synthetic", type=int, default=200)
    parser.add_argument("--paper-steps", type=int, default=0, help="time this many paper-profile steps (0: skip)")
    parser.add_argument("--skip-smoke", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if not args.skip_smoke:
        smoke(args, device)
    if args.paper_steps:
        paper(args, device)


if __name__ == "__main__":
    main()
