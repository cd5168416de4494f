"""Calibration table: per-case statistics of the real EMIDEC-derived cases next to a phantom cohort.

Usage (from the repository root):

    python benchmarks/calibrate_phantom.py [--real DIR] [--n 48] [--seed 0]

The real folder is ``$EMIDEC_ROOT`` (an EMIDEC-layout folder), or ``--real``.
Only aggregate statistics of the real data are printed. When the folder is absent, the phantom side is
printed alone. The output is markdown (``benchmarks/calibration.md`` holds a copy).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lgelib.data.cohort import write_phantom_cohort  # noqa: E402
from lgelib.data.dataset import emidec_cases  # noqa: E402
from lgelib.data.intensity import normalize_intensity  # noqa: E402
from lgelib.data.nifti import read_volume, voxel_spacing  # noqa: E402
from lgelib.data.phantom import PhantomSettings, generate_case  # noqa: E402
from lgelib.data.stats import STATISTIC_NAMES, label_map_statistics  # noqa: E402

HEALTHY_SPREAD = "healthy_intensity_std"
ROWS = (*STATISTIC_NAMES, HEALTHY_SPREAD)
MATCHED = (
    "cavity_ml",
    "myocardium_ml",
    "scar_ml",
    "scar_burden",
    "myocardium_slices",
    "intensity_cavity",
    "intensity_healthy",
    "intensity_scar",
    "intensity_background",
)


def default_real_root() -> Path:
    """``$EMIDEC_ROOT`` if set, else the data folder beside the repository this project is developed with."""
    env = os.environ.get("EMIDEC_ROOT")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "emidec-derived"


def case_statistics(image: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    """``label_map_statistics`` plus the spread (std) of normalised intensity inside healthy myocardium."""
    stats = label_map_statistics(image, labels, spacing)
    healthy = normalize_intensity(image)[labels == 2]
    stats[HEALTHY_SPREAD] = float(healthy.std()) if healthy.size else float("nan")
    return stats


def real_statistics(root: Path) -> list[dict[str, float]]:
    """Statistics of every ``Case_*`` under ``root`` (EMIDEC layout), read with the library's readers."""
    cases, problems = emidec_cases(root, None, root)
    if problems:
        raise SystemExit("\n".join(str(p) for p in problems))
    rows = []
    for case in cases:
        assert case.labels is not None
        image = read_volume(case.image, case.case_id, "image")
        labels = read_volume(case.labels, case.case_id, "labels").data.astype(np.uint8)
        rows.append(case_statistics(image.data, labels, image.spacing))
    return rows


def cohort_seconds(n: int, seed: int) -> float:
    """Wall time of writing a whole cohort (generation plus NIfTI files), as ``lgelib phantom`` does."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_phantom_cohort(PhantomSettings(n_cases=n, seed=seed), Path(folder) / "cohort", progress=False)
        return time.perf_counter() - start


def phantom_statistics(n: int, seed: int) -> tuple[list[dict[str, float]], list[float]]:
    """Statistics of phantom cases 0..n-1 and the wall time of each ``generate_case`` call."""
    config = PhantomSettings(n_cases=n, seed=seed)
    rows, seconds = [], []
    for index in range(n):
        start = time.perf_counter()
        case = generate_case(config, index)
        seconds.append(time.perf_counter() - start)
        rows.append(case_statistics(case.image, case.labels, voxel_spacing(case.affine)))
    return rows, seconds


def _values(rows: list[dict[str, float]], name: str) -> np.ndarray:
    values = np.array([row[name] for row in rows], dtype=float)
    return values[np.isfinite(values)]


def _summary(values: np.ndarray) -> list[str]:
    if values.size == 0:
        return ["0"] + ["-"] * 5
    q = np.percentile(values, [0, 5, 50, 95, 100])
    return [str(values.size)] + [f"{x:.3f}" for x in q]


def _ordering(rows: list[dict[str, float]]) -> tuple[str, str]:
    cavity = sum(r["intensity_cavity"] > r["intensity_healthy"] for r in rows)
    scarred = [r for r in rows if np.isfinite(r["intensity_scar"])]
    scar = sum(r["intensity_scar"] > r["intensity_healthy"] for r in scarred)
    return f"{cavity}/{len(rows)}", f"{scar}/{len(scarred)}"


def render_table(real: list[dict[str, float]] | None, phantom: list[dict[str, float]]) -> str:
    """Markdown table: one row per statistic, real and phantom (n, min, 5%, median, 95%, max)."""
    head = ["statistic"]
    if real is not None:
        head += ["real n", "min", "5%", "median", "95%", "max"]
    head += ["phantom n", "min", "5%", "median", "95%", "max"]
    if real is not None:
        head += ["phantom outside real range"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in ROWS:
        cells = [name]
        ph = _values(phantom, name)
        if real is not None:
            re = _values(real, name)
            cells += _summary(re)
        cells += _summary(ph)
        if real is not None:
            outside = int(((ph < re.min()) | (ph > re.max())).sum()) if re.size and ph.size else 0
            cells.append(str(outside) if name in MATCHED else f"({outside})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=None, help="EMIDEC-derived folder (Case_*/Images, Contours)")
    parser.add_argument("--n", type=int, default=48, help="phantom cases")
    parser.add_argument("--seed", type=int, default=0, help="phantom cohort seed")
    args = parser.parse_args(argv)

    root = args.real if args.real is not None else default_real_root()
    real = real_statistics(root) if root.is_dir() else None
    phantom, seconds = phantom_statistics(args.n, args.seed)

    print("# Phantom calibration against the EMIDEC-derived cases\n")
    print(
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}; "
        f"date {_dt.date.today().isoformat()}.\n"
    )
    print(f"Command: `python benchmarks/calibrate_phantom.py --n {args.n} --seed {args.seed}`\n")
    if real is None:
        print(f"Real data folder `{root}` not found: phantom side only.\n")
    else:
        print(
            f"Real: {len(real)} cases from `{root.name}`. Phantom: {args.n} cases, seed {args.seed}, "
            "default `PhantomSettings`.\n"
        )
    print(render_table(real, phantom))
    print()
    cavity, scar = _ordering(phantom)
    if real is not None:
        real_cavity, real_scar = _ordering(real)
        print(f"- intensity_cavity > intensity_healthy: real {real_cavity}, phantom {cavity}")
        print(f"- intensity_scar > intensity_healthy (cases with scar): real {real_scar}, phantom {scar}")
    else:
        print(f"- intensity_cavity > intensity_healthy: phantom {cavity}")
        print(f"- intensity_scar > intensity_healthy (cases with scar): phantom {scar}")
    print(
        f"- generate_case time per case (one process): mean {np.mean(seconds):.3f} s, "
        f"median {np.median(seconds):.3f} s, max {np.max(seconds):.3f} s"
    )
    default = PhantomSettings()
    print(
        f"- the default cohort ({default.n_cases} cases, seed {default.seed}) written as NIfTI + manifest, one "
        f"process: {cohort_seconds(default.n_cases, default.seed):.1f} s"
    )
    if real is not None:
        print(
            "- 'phantom outside real range': phantom cases below the real min or above the real max; "
            "in parentheses for statistics that are reported but not calibrated."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
