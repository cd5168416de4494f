"""The command-line options the experiment scripts of this folder share, read one way: the data manifest, the
settings profile, the device, split seeds and ``--set KEY=VALUE`` (any setting by dotted key,
`lgelib.run.RunOptions`), and the one line that names the machine a table was measured on."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import Any

import torch

from lgelib.data.manifest import parse_override
from lgelib.run import parse_split_seeds


def add_run_arguments(
    parser: argparse.ArgumentParser, manifest: str = "data_manifest/phantom.yaml", split_seeds: str | None = "0"
) -> None:
    """``--manifest``, ``--profile``, ``--device``, ``--set`` and, unless ``split_seeds`` is None, ``--split-seeds``
    (comma-separated, ``split_seeds`` by default)."""
    parser.add_argument("--manifest", default=manifest, help=f"data manifest (default {manifest})")
    parser.add_argument("--profile", default="smoke", help="settings profile (default smoke)")
    if split_seeds is not None:
        parser.add_argument(
            "--split-seeds", default=split_seeds, help=f"comma-separated split seeds (default {split_seeds})"
        )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA if available)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any setting by dotted key")


def run_items(args: argparse.Namespace, **items: Any) -> dict[str, Any]:
    """The run options (`lgelib.run.parse_options`) of ``args``' shared options, then ``items``, then each
    ``--set`` item (its value read as YAML), in that order."""
    return {
        "profile": args.profile,
        "manifest": str(Path(args.manifest).resolve()),
        "device": args.device,
        **items,
        **dict(parse_override(item) for item in args.set),
    }


def split_seeds(args: argparse.Namespace) -> list[int]:
    """``--split-seeds`` as integers (a bad item fails naming it)."""
    return parse_split_seeds(args.split_seeds)


def machine_line(device: torch.device | None = None) -> str:
    """torch's version, the CPU threads and the processor (and the GPU, for a CUDA device): the machine a table
    was measured on."""
    cpu = platform.processor() or platform.machine()
    gpu = f"; {torch.cuda.get_device_name(device)}" if device is not None and device.type == "cuda" else ""
    return f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads ({cpu}){gpu}"


def add_work_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """``--out`` (the work folder, reused; ``out`` by default) and ``--inr-cache`` (fitted case INRs to share)."""
    parser.add_argument("--out", default=out, help=f"work folder (reused; default {out})")
    parser.add_argument("--inr-cache", help="folder of fitted case INRs to share (default <out>/inr-cases)")


def start(args: argparse.Namespace) -> tuple[torch.device, Path, Path]:
    """The device, the work folder and the INR cache of ``args`` (`add_run_arguments`, `add_work_arguments`),
    after printing the line that names the machine, data and profile."""
    from lgelib.device import resolve_device

    device = resolve_device(args.device)
    out = Path(args.out)
    cache = Path(args.inr_cache) if args.inr_cache else out / "inr-cases"
    print(f"device: {device}, {machine_line(device)}; {args.manifest}, profile {args.profile}", flush=True)
    return device, out, cache
