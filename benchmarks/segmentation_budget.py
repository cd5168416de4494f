"""Dice of nnU-Net's real-only baseline (N0) against its training budget, on one split of an EMIDEC-layout folder.

Each budget is a complete training (nnU-Net's learning-rate schedule anneals over its own length), not a
checkpoint of a longer one. Prints one row per budget: iterations, patch, spacing, wall time, Volume Dice of the
myocardium (every test case) and of fibrosis (test cases with scar), and false scar (mL) on scar-free cases.

    EMIDEC_ROOT=/path/to/emidec .venv/bin/python benchmarks/segmentation_budget.py --out runs/budget \
        --budget 3mm-64:40x15 --budget 3mm-64:100x15

A budget is ``<spacing>mm-<patch>:<epochs>x<iterations>[:b<batch>][:f<max features>][:o<foreground share>]
[:bf16]``; the rest is the smoke profile's nnU-Net (2d, one model on every training case, two thirds of the
patches centred on a label unless ``:o`` says otherwise; ``:bf16`` trains under bfloat16 autocast).

``--arms N0,N0-seed1`` also retrains each budget's baseline with another seed (one row per arm): whether a budget
learns scar reliably, or only for a lucky seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path

import pandas as pd

from lgelib.comparisons import headline
from lgelib.config import SMOKE_SEGMENTATION
from lgelib.data.dataset import open_split
from lgelib.segmentation import run_segmentation
from lgelib.segmentation_setup import SegmentationSettings

_BUDGET = re.compile(
    r"^(?P<mm>[\d.]+)mm-(?P<patch>\d+):(?P<epochs>\d+)x(?P<its>\d+)"
    r"(?::b(?P<batch>\d+))?(?::f(?P<features>\d+))?(?::o(?P<oversample>[\d.]+))?(?P<bf16>:bf16)?$"
)


def parse_budget(text: str, base: SegmentationSettings) -> SegmentationSettings:
    match = _BUDGET.match(text)
    if match is None:
        raise SystemExit(
            f"budget {text!r} is not <spacing>mm-<patch>:<epochs>x<iterations>[:b<batch>][:f<features>]"
            "[:o<foreground share>]"
        )
    mm, patch = float(match["mm"]), int(match["patch"])
    return dataclasses.replace(
        base,
        target_spacing_mm=(base.target_spacing_mm[0], mm, mm),
        patch_size=(patch, patch),
        epochs=int(match["epochs"]),
        iterations_per_epoch=int(match["its"]),
        batch_size=int(match["batch"]) if match["batch"] else base.batch_size,
        max_features=int(match["features"]) if match["features"] else base.max_features,
        foreground_oversampling=float(match["oversample"]) if match["oversample"] else base.foreground_oversampling,
        cpu_bf16=bool(match["bf16"]),
        save_every=max(1, int(match["epochs"]) // 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default="data_manifest/emidec.yaml")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/segmentation-budget"))
    parser.add_argument("--budget", action="append", required=True, help="repeatable; see the module docstring")
    parser.add_argument("--arms", default="N0", help="real-only arms, comma-separated (e.g. N0,N0-seed1)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    real = open_split(args.manifest, args.split_seed)
    print(
        f"{real.manifest.name}: {len(real.split.train)} training / {len(real.split.test)} test cases, "
        f"split seed {args.split_seed}",
        flush=True,
    )
    rows = []
    for text in args.budget:
        settings = parse_budget(text, SMOKE_SEGMENTATION)
        started = time.perf_counter()
        result = run_segmentation(real, None, args.out / text.replace(":", "_"), settings, args.arms, args.device)
        wall_s = round(time.perf_counter() - started)
        numbers = headline(result.per_case).set_index("arm")
        train_s = result.seconds.set_index("arm")["train_s"]
        for arm, row in numbers.iterrows():
            rows.append(
                {
                    "budget": text,
                    "arm": arm,
                    "iterations": settings.epochs * settings.iterations_per_epoch,
                    "batch": settings.batch_size,
                    "wall_s (all arms)": wall_s,
                    "train_s": round(float(train_s[arm])),
                    "myocardium_dice": row.myocardium_dice,
                    "fibrosis_dice": row.fibrosis_dice,
                    "false_scar_ml": row.false_scar_ml,
                    "n_scar_cases": row.n_scar_cases,
                    "n_scar_free": row.n_scar_free,
                }
            )
        print(pd.DataFrame(rows).round(3).to_markdown(index=False), flush=True)


if __name__ == "__main__":
    main()
