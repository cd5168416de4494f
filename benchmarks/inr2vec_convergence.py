"""Has inr2vec converged, and is it the encoder or the decoder that fails on unseen hearts? inr2vec trained for
several step counts on the same INRs (everything else the profile's), each measured on the training INRs and on
the INRs of the split's held-out test cases: decode(encode(INR)) against the prepared volume, and, for the
held-out INRs, decode(z*) with z* found by gradient descent through the frozen decoder from the encoder's latent
(`lgelib.inr2vec.refine_latents`: it sees only the INR's outputs, never the data).

    python benchmarks/inr2vec_convergence.py                                 # embedded cohort, split 0
    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/inr2vec_convergence.py \\
        --manifest data_manifest/emidec.yaml --split-seeds 0 --out runs/benchmarks/inr2vec-convergence \\
        --inr-cache runs/emidec-experiment/inr-cases

Read it so: if the refined held-out latents decode well, the decoder can draw unseen hearts and the encoder is
what does not generalise; if they do not, the decoder only knows its training hearts, and no encoder can help.
Where the held-out latents sit (encoder's and refined; with ``--synthetic-from``, also a synthesis run's sampled
latents): the median distance from each to its nearest training latent, over the median distance between a
training latent and its nearest other one (1: as near as training hearts are to each other).
The memorisation audit's control: the decoded held-out hearts (encoder's and refined latents) go through the
mask-space audit the synthetic hearts get (share nearer, 1 - myocardium Dice, to a real training heart than the
median real test heart is). They are real hearts inr2vec never saw, so their share is about what a generator that
made new hearts would score through this decoder; with ``--synthetic-from`` the synthetic hearts (decoded the
same way, 0.5 threshold, no clean-up) are judged against the real test median and against the refined decoded one.
The table is printed and written to ``<out>/inr2vec_convergence.csv`` after every row.

Goal (issue "a generator that makes new, scan-like hearts", item 2): held-out myocardium Dice >= 0.85 and PSNR
within 2 dB of the training decode. The training INRs are decoded from the encoder's latents only: the refined
held-out rows are compared with a one-pass training decode (refining those too would lift them as well).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _options import add_run_arguments, add_work_arguments, run_items, split_seeds, start
from lgelib.inr2vec import TrainedInr2Vec, encode, load_inr2vec, reconstruction_fidelity, refine_latents
from lgelib.layout import RunLayout
from lgelib.metrics import nearest_neighbour_distances
from lgelib.quality import decoded_mask_audit, nearer_than_median_test
from lgelib.run import Run, parse_options
from lgelib.synthesis import load_synthetic


def fidelity(model, inrs, prepared, device, latents=None) -> dict[str, float]:
    """Mean PSNR, myocardium and fibrosis Dice of the decoded INRs (encoded, or ``latents``)."""
    table = reconstruction_fidelity(model, inrs, prepared, device, latents=latents)
    return {"PSNR": table.psnr_db.mean(), "myo": table.myocardium_dice.mean(), "fib": table.fibrosis_dice.mean()}


def synthetic_latents(folder: Path, trained: TrainedInr2Vec) -> torch.Tensor:
    """The sampled latents of the synthesis run in ``folder``, after checking that it decoded with ``trained``'s
    inr2vec (its run's ``inr2vec`` folder holds the same training latents): latents of another model live in
    another space."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--synthetic-from: {folder} does not exist")
    theirs = load_inr2vec(folder.parent / "inr2vec").latents
    if theirs.shape != trained.latents.shape or not torch.allclose(theirs, trained.latents, atol=1e-5):
        raise ValueError(f"--synthetic-from: {folder} was made with another inr2vec than this run's")
    return load_synthetic(folder).latents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--steps", default="600,2400,4800", help="inr2vec step counts (default 600,2400,4800)")
    parser.add_argument("--refine-steps", type=int, default=300, help="gradient steps on z (default 300)")
    parser.add_argument("--refine-points", type=int, default=1024, help="voxels per INR and step on z (default 1024)")
    parser.add_argument("--refine-lr", type=float, default=1e-2, help="Adam learning rate on z (default 1e-2)")
    parser.add_argument(
        "--synthetic-from",
        action="append",
        default=[],
        metavar="[NAME=]TEMPLATE",
        help="synthesis folder made with the same inr2vec, {split} and {steps} filled in (e.g. "
        "runs/benchmarks/generator-{steps}/paper/split-{split}/synth from generator_variants.py "
        "--inr2vec-steps {steps}): also place its sampled latents and audit its decoded hearts; repeatable, "
        "each named NAME (default 'synthetic')",
    )
    add_work_arguments(parser, "runs/benchmarks/inr2vec-convergence")
    args = parser.parse_args()
    step_counts = [int(s) for s in args.steps.split(",") if s]
    synthetic_sources = [item.split("=", 1) if "=" in item else ("synthetic", item) for item in args.synthetic_from]
    names = [name for name, _ in synthetic_sources]
    if len(set(names)) < len(names) or {"encoder", "refined"} & set(names):
        parser.error(f"--synthetic-from names must differ from each other and from encoder/refined: {names}")
    device, out, cache = start(args)
    rows = []
    for seed in split_seeds(args):
        for steps in step_counts:
            items = run_items(args, device=str(device), split_seed=seed)
            options = parse_options({**items, "inr2vec.steps": steps})
            run = Run(options, RunLayout(out / f"split-{seed}" / f"steps-{steps}"), inr_cache=cache)
            run.write()
            train, heldout = run.fit_inrs(), run.fit_heldout_inrs()
            trained = run.train_inr2vec(train)  # a finished model is loaded; its training time is kept
            row: dict[str, object] = {
                "split": seed,
                "inr2vec steps": steps,
                "final loss": float(trained.history.loss.tail(50).mean()),
            }
            encoded = encode(trained.model, heldout.params, device)
            row |= {f"train {k}": v for k, v in fidelity(trained.model, train, run.prepared, device).items()}
            row |= {
                f"held-out {k}": v
                for k, v in fidelity(trained.model, heldout, run.prepared, device, latents=encoded).items()
            }
            started = time.perf_counter()
            z = refine_latents(
                trained.model,
                heldout,
                args.refine_steps,
                args.refine_lr,
                args.refine_points,
                seed=run.settings.inr2vec.seed,
                device=device,
            )
            refine_s = time.perf_counter() - started
            row |= {
                f"held-out refined {k}": v
                for k, v in fidelity(trained.model, heldout, run.prepared, device, latents=z).items()
            }
            training = trained.latents.numpy()
            spacing = float(np.median(nearest_neighbour_distances(training, training, exclude_self=True)))
            placed = {"encoder": encoded, "refined": z}
            for name, template in synthetic_sources:
                placed[name] = synthetic_latents(Path(template.format(split=seed, steps=steps)), trained)
            for kind, latents in placed.items():
                distances = nearest_neighbour_distances(latents.numpy(), training)
                ratio = float(np.median(distances)) / spacing
                row[f"{kind} latents: nearest training / training spacing"] = ratio
            # The mask-space memorisation audit of the decoded held-out hearts: real hearts inr2vec never saw,
            # passed through its decoder: about what a generator of new hearts as real as these would score.
            # The synthetic hearts are judged against both medians.
            audits = {
                kind: decoded_mask_audit(
                    trained.model, latents, [f"{kind}-{i}" for i in range(len(latents))], run.prepared, device
                )
                for kind, latents in placed.items()
            }
            for kind, audit in audits.items():
                row[f"{kind} decoded: nearer than median test"] = nearer_than_median_test(audit)
                row[f"{kind} decoded: median 1 - myo Dice"] = float(audit[audit.kind == "synthetic"].distance.median())
            row["real test: median 1 - myo Dice"] = float(
                audits["encoder"].query("kind == 'real test'").distance.median()
            )
            for name, _ in synthetic_sources:
                row[f"{name} decoded: nearer than median refined test"] = nearer_than_median_test(
                    audits[name], reference=audits["refined"]
                )
            row |= {"inr2vec s": trained.seconds, "refine s": refine_s}
            rows.append(row)
            table = pd.DataFrame(rows)
            print(table.tail(1).round(3).to_string(index=False), flush=True)
            out.mkdir(parents=True, exist_ok=True)
            table.to_csv(out / "inr2vec_convergence.csv", index=False)
    print(pd.DataFrame(rows).round(3).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
