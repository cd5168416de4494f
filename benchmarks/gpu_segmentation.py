"""What the GPU path of the segmentation experiment costs: N0 and N200-balanced on one EMIDEC-derived split with the
2d configuration and a short GPU budget (nnU-Net's own planned spacing and patch). Prints the wall time of the
generative stages and of each model, and each arm's Dice. Written to fit one 10-minute call on one GPU.

    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/gpu_segmentation.py --out runs/gpu-seg

Not yet run: no GPU was lent to the issue that wrote it (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from lgelib.comparisons import headline
from lgelib.run import parse_options
from lgelib.experiment import run_experiment
from lgelib.segmentation_setup import SegmentationSettings

GPU_SHORT = SegmentationSettings(
    configuration="2d", epochs=20, iterations_per_epoch=100, val_iterations_per_epoch=5, folds=("all",), save_every=10
)
"""nnU-Net's 2d plan as planned (spacing, patch, batch, channels), 2,000 iterations: minutes on one GPU."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default="data_manifest/emidec.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-segmentation"))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=GPU_SHORT.epochs)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu (no GPU found)'}", flush=True)
    budget = dataclasses.replace(GPU_SHORT, epochs=args.epochs)
    options = parse_options(
        {
            "profile": "smoke",
            "manifest": args.manifest,
            "device": device,
            "seg_arms": ["N0", "N200-balanced"],
            "overrides": {f"segmentation.{key}": value for key, value in dataclasses.asdict(budget).items()},
        }
    )
    started = time.perf_counter()
    result = run_experiment(options, args.out, [args.split_seed])
    print(f"\nwall time {time.perf_counter() - started:.0f} s; per arm (train includes planning/preprocessing):")
    print(result.seconds.round(1).to_markdown(index=False))
    print(headline(result.per_case).round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
