"""The paper profile's stages 1-3 on the EMIDEC-derived training split, on a GPU: wall time and throughput of each
stage, inr2vec fidelity on training and held-out INRs, and the memorisation audit, for the generator variants of
`generator_variants.py`. Written to fit one 10-minute call on one GPU; the step counts are cut to fit, and the
printed throughput gives the cost of the profile's full counts.

    EMIDEC_ROOT=/path/to/emidec-derived python benchmarks/gpu_generator.py --out runs/gpu-generator

Not yet run: no GPU was lent to the issue that wrote it (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from generator_variants import VARIANTS, measure
from lgelib.config import get_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default="data_manifest/emidec.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-generator"))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--inr-steps", type=int, default=2000, help="INR fitting steps (the paper profile: 2000)")
    parser.add_argument("--inr2vec-steps", type=int, default=3000, help="inr2vec steps (the paper profile: 20000)")
    parser.add_argument("--edm-steps", type=int, default=10000, help="EDM steps (the paper profile: 30000)")
    parser.add_argument("--variants", default="paper,data+film+select+geometry")
    parser.add_argument("--n-synthetic", type=int, default=100)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu (no GPU found)'}", flush=True)
    base = get_profile("paper")
    base = dataclasses.replace(
        base,
        inr=dataclasses.replace(base.inr, fit=dataclasses.replace(base.inr.fit, steps=args.inr_steps)),
        inr2vec=dataclasses.replace(base.inr2vec, steps=args.inr2vec_steps),
        edm=dataclasses.replace(base.edm, steps=args.edm_steps),
    )
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        started = time.perf_counter()
        row = measure(base, args.manifest, args.out, args.split_seed, name, args.n_synthetic, device)
        row["inr2vec steps/s"] = args.inr2vec_steps / row["inr2vec_s"] if row["inr2vec_s"] > 1 else float("nan")
        row["EDM steps/s"] = args.edm_steps / row["edm_s"]
        rows.append(row)
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    print(pd.DataFrame(rows).round(3).T.to_markdown())


if __name__ == "__main__":
    main()
