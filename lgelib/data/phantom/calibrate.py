"""The phantom calibrated to one training set: what a simulator baseline may know about the real data.

The default `PhantomSettings` were tuned once by hand against aggregate statistics of all 85 EMIDEC-derived cases
(``benchmarks/calibration.md``), test cases included. A phantom arm (``P<n>``) of the segmentation experiment must
know no more about the real data than the learned generator does, which sees the split's training cases only. So
its two cohort-level settings that real statistics pin down are set from the training cases of the split:

- ``scar_free_fraction``: the share of training cases without scar;
- ``ti_offset_ms``: the inversion-time mis-setting, shifted (the width of its range kept) until the phantom's
  median normalised intensity of healthy myocardium equals the training cases' (bisection over a fixed set of
  probe subjects: darker myocardium with a shorter offset).

Everything else (heart sizes, scar patterns, noise) keeps the hand-tuned defaults: the other statistics are not
cohort settings of the phantom.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from lgelib.data.cases import ScanCase
from lgelib.data.intensity import normalize_intensity
from lgelib.data.phantom.config import PhantomSettings
from lgelib.data.phantom.generate import generate_case
from lgelib.data.stats import FIBROSIS_LABELS, MYOCARDIUM_LABELS
from lgelib.fingerprint import fingerprint
from lgelib.fsutil import write_text_atomic

SHIFT_RANGE_MS = (-100.0, 150.0)
"""How far the inversion-time offset range may move from the default (its low end stays above 0 ms)."""


def healthy_intensity(image: np.ndarray, myocardium: np.ndarray, fibrosis: np.ndarray) -> float:
    """Median normalised intensity (`normalize_intensity`) of myocardium without scar (NaN without any)."""
    healthy = myocardium.astype(bool) & ~fibrosis.astype(bool)
    return float(np.median(normalize_intensity(np.asarray(image, np.float32))[healthy])) if healthy.any() else np.nan


def case_statistics(cases: Iterable[ScanCase]) -> pd.DataFrame:
    """Per case: whether it has scar, and its healthy myocardium's median normalised intensity."""
    return pd.DataFrame(
        [
            {
                "case_id": c.case_id,
                "has_scar": bool(c.fibrosis.any()),
                "intensity_healthy": healthy_intensity(c.image, c.myocardium, c.fibrosis),
            }
            for c in cases
        ]
    )


def phantom_healthy_intensity(settings: PhantomSettings, probes: int) -> float:
    """The median over subjects 0..probes-1 of ``settings`` of their healthy myocardium's median intensity."""
    values = []
    for index in range(probes):  # measured as the training scans are (`healthy_intensity`), from the label map
        case = generate_case(settings, index)
        myocardium, fibrosis = np.isin(case.labels, MYOCARDIUM_LABELS), np.isin(case.labels, FIBROSIS_LABELS)
        values.append(healthy_intensity(case.image, myocardium, fibrosis))
    return float(np.nanmedian(values))


def calibrated_settings(
    training: pd.DataFrame,
    n_cases: int,
    seed: int,
    probes: int = 12,
    iterations: int = 7,
    base: PhantomSettings | None = None,
    cache_dir: Path | None = None,
) -> tuple[PhantomSettings, dict[str, float]]:
    """``base`` (default settings) with ``n_cases``, ``seed`` and the two settings the training cases'
    statistics (`case_statistics`) pin down, and a report: the targets, what the phantom reaches, the shift.

    With ``cache_dir`` the report is kept there, keyed on the statistics and every argument, so that checking a
    phantom arm's export again does not generate the ~100 probe subjects again."""
    if training.empty:
        raise ValueError("calibrating the phantom needs at least one training case")
    base = dataclasses.replace(base or PhantomSettings(), n_cases=n_cases, seed=seed)
    free = float(1.0 - training["has_scar"].mean())
    target = float(np.nanmedian(training["intensity_healthy"]))
    low_ms, high_ms = base.ti_offset_ms

    def shifted(shift: float) -> PhantomSettings:
        return dataclasses.replace(base, scar_free_fraction=free, ti_offset_ms=(low_ms + shift, high_ms + shift))

    arguments = [dataclasses.asdict(base), free, target, len(training), probes, iterations, SHIFT_RANGE_MS]
    generator = sorted(Path(__file__).parent.glob("*.py"))  # the phantom's code: a change recalibrates
    key = fingerprint(arguments, *generator, length=16)
    cached = cache_dir / f"phantom-calibration-{key}.json" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        report = json.loads(cached.read_text())
        return shifted(report["ti_offset_shift_ms"]), report
    lowest = max(SHIFT_RANGE_MS[0], 1.0 - low_ms)
    report = _bisect(shifted, target, lowest, probes, iterations) | {"training_cases": float(len(training))}
    if cached is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cached, json.dumps(report, indent=1))
    return shifted(report["ti_offset_shift_ms"]), report


def _bisect(
    shifted: Callable[[float], PhantomSettings], target: float, lowest: float, probes: int, iterations: int
) -> dict[str, float]:
    """The offset shift in [``lowest``, `SHIFT_RANGE_MS`'s top] whose probes' healthy myocardium reaches ``target``
    (bisection), with what is reached there and the settings' scar-free share."""

    def reached(shift: float) -> float:  # probes drawn with the cohort's seed: the same subjects at every shift
        return phantom_healthy_intensity(shifted(shift), probes)

    lo, hi = lowest, SHIFT_RANGE_MS[1]
    at_lo, at_hi = reached(lo), reached(hi)
    if target <= at_lo:
        shift, value = lo, at_lo
    elif target >= at_hi:
        shift, value = hi, at_hi
    else:
        for _ in range(iterations):
            middle = (lo + hi) / 2
            if reached(middle) < target:
                lo = middle
            else:
                hi = middle
        shift = (lo + hi) / 2
        value = reached(shift)
    return {
        "scar_free_fraction": shifted(shift).scar_free_fraction,
        "target_intensity_healthy": target,
        "phantom_intensity_healthy": value,
        "ti_offset_shift_ms": shift,
    }
