"""Tissues and contrast: tissue codes, post-contrast T1 and proton-density tables, the inversion-recovery
signal model and the per-subject contrast draw."""

from __future__ import annotations

import math

import numpy as np

from lgelib.data.phantom.config import PhantomSettings

# Tissue codes (internal): index into the tables below.
AIR, FAT, MUSCLE, LUNG, LIVER, BLOOD, MYO, SCAR, MVO, MARROW, BONE, SOFT = range(12)
_N_TISSUES = 12

# Post-contrast T1 (ms) ranges at 1.5 T about 10-20 min after gadolinium, and relative proton density. Liver and
# other soft tissue sit at the short end of published post-contrast values; with the long inversion time they
# are mid-grey, which brings the background's normalised median into the range of the real cases.
_T1_RANGE_MS = {
    BLOOD: (320.0, 400.0),
    MYO: (450.0, 550.0),
    SCAR: (265.0, 340.0),
    FAT: (240.0, 280.0),
    LIVER: (350.0, 450.0),
    MUSCLE: (550.0, 750.0),
    SOFT: (350.0, 430.0),
    LUNG: (900.0, 1200.0),
    MARROW: (330.0, 420.0),
    BONE: (1000.0, 1000.0),
}
_PROTON_DENSITY = {
    AIR: 0.0,
    FAT: 1.0,
    MUSCLE: 0.75,
    LUNG: 0.25,
    LIVER: 0.75,
    BLOOD: 0.95,
    MYO: 0.8,
    SCAR: 0.8,
    MVO: 0.85,
    MARROW: 0.8,
    BONE: 0.08,
    SOFT: 0.8,
}
# Relative texture amplitudes (fine, coarse) per tissue: heterogeneity that is not noise.
_TEXTURE = {
    FAT: (0.04, 0.08),
    MUSCLE: (0.08, 0.10),
    LUNG: (0.35, 0.35),
    LIVER: (0.05, 0.06),
    BLOOD: (0.03, 0.05),
    MYO: (0.06, 0.05),
    SCAR: (0.08, 0.06),
    MVO: (0.08, 0.05),
    MARROW: (0.10, 0.10),
    BONE: (0.2, 0.1),
    SOFT: (0.08, 0.10),
    AIR: (0.0, 0.0),
}


def _inversion_recovery(t1_ms: np.ndarray | float, ti_ms: float, recovery_ms: float) -> np.ndarray:
    """Signed longitudinal magnetisation at the readout of an IR sequence (perfect inversion)."""
    t1 = np.asarray(t1_ms, dtype=np.float64)
    return 1.0 - 2.0 * np.exp(-ti_ms / t1) + np.exp(-recovery_ms / t1)


def _myocardial_null_ti(t1_ms: float, recovery_ms: float) -> float:
    """Inversion time at which tissue with this T1 gives zero signal."""
    return float(t1_ms * math.log(2.0 / (1.0 + math.exp(-recovery_ms / t1_ms))))


def sample_contrast(
    rng: np.random.Generator, config: PhantomSettings
) -> tuple[dict[int, float], float, float, np.ndarray]:
    """Per-tissue T1 (ms), recovery time and inversion time (ms), and coil-bias coefficients."""
    t1 = {tissue: float(rng.uniform(*bounds)) for tissue, bounds in _T1_RANGE_MS.items()}
    t1[SCAR] = min(t1[SCAR], t1[MYO] - 150.0)
    t1[BLOOD] = min(t1[BLOOD], t1[MYO] - 100.0)
    t1[MVO] = t1[MYO] * float(rng.uniform(1.15, 1.4))  # little contrast reaches the obstructed core
    recovery = float(rng.uniform(1500.0, 2100.0))  # two RR intervals
    ti = _myocardial_null_ti(t1[MYO], recovery) + float(rng.uniform(*config.ti_offset_ms))
    bias = np.clip(
        rng.normal(0.0, config.bias_strength, size=6), -2.0 * config.bias_strength, 2.0 * config.bias_strength
    )
    bias[0] = -abs(bias[0])  # anterior (surface coil side) brighter
    return t1, recovery, ti, bias


def tissue_tables(t1: dict[int, float], ti_ms: float, recovery_ms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-tissue signed IR signal and its fine / coarse texture gains, indexed by tissue code."""
    base = np.zeros(_N_TISSUES, dtype=np.float32)
    fine = np.zeros(_N_TISSUES, dtype=np.float32)
    coarse = np.zeros(_N_TISSUES, dtype=np.float32)
    for tissue in range(_N_TISSUES):
        if tissue == AIR:
            continue
        signal = _PROTON_DENSITY[tissue] * float(_inversion_recovery(t1[tissue], ti_ms, recovery_ms))
        base[tissue] = signal
        fine[tissue] = signal * _TEXTURE[tissue][0]
        coarse[tissue] = signal * _TEXTURE[tissue][1]
    return base, fine, coarse
