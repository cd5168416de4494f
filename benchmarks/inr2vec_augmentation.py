"""Does inr2vec generalise to unseen hearts when it is trained on more INRs? Augmented copies of each training
volume (`lgelib.augmentation`: flips, in-plane rotations, gamma), fitted from the same shared initialisation,
against inr2vec trained on the real training INRs alone; both measured on the INRs of the split's held-out test
cases (decode(encode(INR)) against the prepared volume) and on the training INRs.

    python benchmarks/inr2vec_augmentation.py                                # embedded cohort, split 0
    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/inr2vec_augmentation.py \
        --manifest data_manifest/emidec.yaml --split-seeds 0 --out runs/benchmarks/inr2vec-augmentation \
        --inr-cache runs/emidec-experiment/inr-cases

Only inr2vec changes between the rows: the same INRs of the real cases (shared through ``--inr-cache``), the same
settings and seeds; the augmented row adds the copies' INRs to its training set. The copies never reach the
diffusion model, and no test case is copied. The table is printed and written to ``<out>/inr2vec_augmentation.csv``.

Goal (issue "a generator that makes new, scan-like hearts", item 2): held-out myocardium Dice >= 0.85 and PSNR
within 2 dB of the training decode.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd

from _options import add_run_arguments, add_work_arguments, run_items, split_seeds, start
from lgelib.augmentation import with_augmented_copies
from lgelib.inr import FittedInrs, fit_inrs
from lgelib.inr2vec import reconstruction_fidelity, train_inr2vec
from lgelib.layout import RunLayout
from lgelib.run import Run, parse_options


def subset(fitted: FittedInrs, case_ids: list[str]) -> FittedInrs:
    """The INRs of ``case_ids`` only (in that order)."""
    rows = [fitted.case_ids.index(c) for c in case_ids]
    fidelity = fitted.fidelity.set_index("case_id").loc[case_ids].reset_index()
    return dataclasses.replace(fitted, case_ids=list(case_ids), params=fitted.params[rows], fidelity=fidelity)


def fidelity_row(model, train: FittedInrs, heldout: FittedInrs, prepared, device) -> dict[str, float]:
    """Mean PSNR and Dice of decode(encode(INR)) for the training and the held-out INRs."""
    row = {}
    for kind, inrs in (("train", train), ("held-out", heldout)):
        table = reconstruction_fidelity(model, inrs, prepared, device)
        row |= {
            f"{kind} PSNR": table.psnr_db.mean(),
            f"{kind} myo": table.myocardium_dice.mean(),
            f"{kind} fib": table.fibrosis_dice.mean(),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument(
        "--augmentations",
        default="flip,rot15,rotm15",
        help="comma-separated copies per training case (lgelib.augmentation.AUGMENTATIONS; default flip,rot15,rotm15)",
    )
    add_work_arguments(parser, "runs/benchmarks/inr2vec-augmentation")
    args = parser.parse_args()
    names = [n for n in args.augmentations.split(",") if n]
    device, out, cache = start(args)
    rows = []
    for seed in split_seeds(args):
        options = parse_options(run_items(args, device=str(device), split_seed=seed))
        run = Run(options, RunLayout(out / f"split-{seed}"), inr_cache=cache)
        run.write()
        started = time.perf_counter()
        train, heldout = run.fit_inrs(), run.fit_heldout_inrs()
        print(
            f"split {seed}: {len(train.case_ids)} training and {len(heldout.case_ids)} held-out INRs "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        started = time.perf_counter()
        plain = run.train_inr2vec(train)
        rows.append(
            {
                "split": seed,
                "training INRs": f"{len(train.case_ids)} (real only)",
                **fidelity_row(plain.model, train, heldout, run.prepared, device),
                "copies fitted s": 0.0,
                "inr2vec s": time.perf_counter() - started,
            }
        )
        print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False), flush=True)

        augmented, copies = with_augmented_copies(run.prepared, list(train.case_ids), names)
        settings = run.settings.inr
        started = time.perf_counter()
        everything = fit_inrs(
            augmented,
            run.layout.root / "inr-augmented",
            settings.spec,
            settings.fit,
            case_ids=list(train.case_ids) + copies,
            cases_per_batch=settings.cases_per_batch,
            device=device,
            precision=options.precision,
            progress=False,
            case_cache=cache,
        )
        fitted_s = time.perf_counter() - started
        started = time.perf_counter()
        model = train_inr2vec(
            everything,
            run.layout.root / "inr2vec-augmented",
            run.settings.inr2vec,
            device=device,
            prepared=augmented,
            progress=False,
        ).model
        rows.append(
            {
                "split": seed,
                "training INRs": f"{len(everything.case_ids)} (+ {','.join(names)})",
                **fidelity_row(model, subset(everything, list(train.case_ids)), heldout, run.prepared, device),
                "copies fitted s": fitted_s,
                "inr2vec s": time.perf_counter() - started,
            }
        )
        table = pd.DataFrame(rows)
        print(table.round(3).to_string(index=False), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "inr2vec_augmentation.csv", index=False)


if __name__ == "__main__":
    main()
