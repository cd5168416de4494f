"""Dice of nnU-Net's real-only baseline (N0) against its training budget, on one split of an EMIDEC-layout folder.

Each budget is a complete training (nnU-Net's learning-rate schedule anneals over its own length), not a
checkpoint of a longer one. Prints one row per budget: iterations, patch, spacing, wall time, Volume Dice of the
myocardium (every test case) and of fibrosis (test cases with scar), and false scar (mL) on scar-free cases.

    EMIDEC_ROOT=/path/to/emidec .venv/bin/python benchmarks/segmentation_budget.py --out runs/budget \
        --budget 3mm-64:40x15 --budget 3mm-64:100x15

A budget is ``<spacing>mm-<patch>:<epochs>x<iterations>[:b<batch>][:f<max features>][:o<foreground share>]
[:bf16]``; the rest is the smoke profile's nnU-Net (2d, one model on every training case, two thirds of the
patches centred on a label unless ``:o`` says otherwise; ``:bf16`` trains under bfloat16 autocast).
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
        result = run_segmentation(real, None, args.out / text.replace(":", "_"), settings, ("N0",), args.device)
        numbers = headline(result.per_case).iloc[0]
        rows.append(
            {
                "budget": text,
                "iterations": settings.epochs * settings.iterations_per_epoch,
                "batch": settings.batch_size,
                "wall_s": round(time.perf_counter() - started),
                "train_s": round(float(result.seconds.train_s.iloc[0])),
                "myocardium_dice": numbers.myocardium_dice,
                "fibrosis_dice": numbers.fibrosis_dice,
                "false_scar_ml": numbers.false_scar_ml,
                "n_scar_cases": numbers.n_scar_cases,
                "n_scar_free": numbers.n_scar_free,
            }
        )
        print(pd.DataFrame(rows).round(3).to_markdown(index=False), flush=True)


if __name__ == "__main__":
    main()
