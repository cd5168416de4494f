"""Scar model: coronary territories, scar regions in (AHA angle, level) space, the per-subject scar draw and
the territory test used when the scar is painted into a plane."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lgelib.data.phantom.config import PhantomSettings
from lgelib.data.phantom.harmonics import random_harmonics

# AHA 17-segment territories: (centre angle, half-width) in degrees for basal/mid and apical levels. The AHA
# angle runs from the anterior RV insertion point (0 deg) through the septum to the inferior insertion
# (~120 deg), inferior, lateral (~240 deg) and back to anterior.
_TERRITORIES = {
    "LAD": {"basal_mid": (0.0, 60.0), "apical": (15.0, 90.0)},  # segments 1, 2, 7, 8, 13, 14, 17
    "RCA": {"basal_mid": (120.0, 60.0), "apical": (150.0, 45.0)},  # segments 3, 4, 9, 10, 15
    "LCx": {"basal_mid": (240.0, 60.0), "apical": (240.0, 45.0)},  # segments 5, 6, 11, 12, 16
}
_TERRITORY_PROBABILITY = {"LAD": 0.45, "RCA": 0.35, "LCx": 0.20}
_TERRITORY_BLEED_DEG = 20.0


def _wrap_deg(angle: np.ndarray) -> np.ndarray:
    """Wrap degrees into [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class _Region:
    """A blob in (AHA angle, level) space with a wavy border: centre, half-widths and border harmonics."""

    phi0: float
    s0: float
    w_phi: float
    w_s: float
    harmonics: tuple[tuple[float, float], ...]  # (amplitude, phase) for harmonics 2, 3, ...

    def scaled(self, factor: float) -> "_Region":
        """The same region with both half-widths multiplied by ``factor``."""
        return _Region(self.phi0, self.s0, self.w_phi * factor, self.w_s * factor, self.harmonics)

    def normalised_radius(self, phi: np.ndarray, s: np.ndarray) -> np.ndarray:
        """< 1 inside the region; 0 at its centre."""
        dphi = _wrap_deg(phi - self.phi0) / self.w_phi
        ds = (s - self.s0) / self.w_s
        radius = np.sqrt(dphi * dphi + ds * ds)
        psi = np.arctan2(ds, dphi)
        border = np.ones_like(radius)
        for order, (amplitude, phase) in enumerate(self.harmonics, start=2):
            border += amplitude * np.cos(order * psi + phase)
        return radius / np.maximum(border, 0.3)


@dataclass(frozen=True)
class Scar:
    """Scar description in the LV's own coordinates (AHA angle, level, transmural depth)."""

    pattern: str  # "ischaemic" | "nonischaemic"
    territory: str | None
    regions: tuple[_Region, ...]
    kinds: tuple[str, ...]  # per region: "endo" | "midwall" | "epi"
    depth: tuple[float, ...]  # per region: peak transmurality (endo/epi) or half-thickness (midwall)
    wall_harmonics: tuple[tuple[float, float], ...]  # transmural-extent ripple around the LV
    mvo_radius: float  # 0: no MVO; else normalised radius of the MVO core
    mvo_depth: float  # MVO occupies depth < mvo_depth * transmurality

    def scaled(self, factor: float) -> "Scar":
        """The same scar with every region's extent multiplied by ``factor``."""
        regions = tuple(r.scaled(factor) for r in self.regions)
        return Scar(
            self.pattern,
            self.territory,
            regions,
            self.kinds,
            self.depth,
            self.wall_harmonics,
            self.mvo_radius,
            self.mvo_depth,
        )


def sample_scar(rng: np.random.Generator, config: PhantomSettings) -> Scar | None:
    """Draw the scar pattern: none, an ischaemic territory scar, or a non-ischaemic pattern."""
    if rng.random() < config.scar_free_fraction:
        return None
    if rng.random() < config.nonischaemic_fraction:
        return _sample_nonischaemic_scar(rng)
    return _sample_ischaemic_scar(rng, config.mvo_fraction)


def _sample_ischaemic_scar(rng: np.random.Generator, mvo_fraction: float) -> Scar:
    """One infarct in a coronary territory, growing from the endocardium, maybe with an MVO core."""
    names = list(_TERRITORY_PROBABILITY)
    territory = names[int(rng.choice(len(names), p=list(_TERRITORY_PROBABILITY.values())))]
    has_mvo = rng.random() < mvo_fraction
    if territory == "LAD":
        phi0, s0 = rng.uniform(-35.0, 35.0), rng.uniform(0.4, 0.9)
    elif territory == "RCA":
        phi0, s0 = rng.uniform(95.0, 150.0), rng.uniform(0.1, 0.65)
    else:
        phi0, s0 = rng.uniform(200.0, 280.0), rng.uniform(0.1, 0.65)
    w_phi = rng.uniform(70.0, 120.0) if has_mvo else rng.uniform(40.0, 120.0)
    w_s = rng.uniform(0.45, 0.9) if has_mvo else rng.uniform(0.3, 0.9)
    peak = rng.uniform(0.85, 1.05) if has_mvo else rng.uniform(0.5, 1.05)
    region = _Region(float(phi0), float(s0), float(w_phi), float(w_s), random_harmonics(rng, 4, 0.25))
    return Scar(
        pattern="ischaemic",
        territory=territory,
        regions=(region,),
        kinds=("endo",),
        depth=(float(peak),),
        wall_harmonics=random_harmonics(rng, 5, 0.12),
        mvo_radius=float(rng.uniform(0.35, 0.6)) if has_mvo else 0.0,
        mvo_depth=float(rng.uniform(0.45, 0.7)),
    )


def _sample_nonischaemic_scar(rng: np.random.Generator) -> Scar:
    """Septal mid-wall stripe and/or epicardial patches in the lateral wall."""
    choice = rng.random()
    regions: list[_Region] = []
    kinds: list[str] = []
    depth: list[float] = []
    if choice < 0.7:
        regions.append(
            _Region(
                float(rng.uniform(45.0, 80.0)),
                float(rng.uniform(0.2, 0.6)),
                float(rng.uniform(35.0, 60.0)),
                float(rng.uniform(0.25, 0.5)),
                random_harmonics(rng, 4, 0.2),
            )
        )
        kinds.append("midwall")
        depth.append(float(rng.uniform(0.14, 0.25)))
    if choice >= 0.5:
        for _ in range(int(rng.integers(1, 4))):
            regions.append(
                _Region(
                    float(rng.uniform(190.0, 290.0)),
                    float(rng.uniform(0.15, 0.8)),
                    float(rng.uniform(20.0, 45.0)),
                    float(rng.uniform(0.15, 0.35)),
                    random_harmonics(rng, 4, 0.25),
                )
            )
            kinds.append("epi")
            depth.append(float(rng.uniform(0.3, 0.55)))
    return Scar(
        pattern="nonischaemic",
        territory=None,
        regions=tuple(regions),
        kinds=tuple(kinds),
        depth=tuple(depth),
        wall_harmonics=random_harmonics(rng, 5, 0.1),
        mvo_radius=0.0,
        mvo_depth=0.0,
    )


def in_territory(territory: str, phi: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Whether voxels lie in (or within a small bleed of) a coronary territory at their level."""
    spans = _TERRITORIES[territory]
    centre = np.where(level < 2.0 / 3.0, spans["basal_mid"][0], spans["apical"][0])
    half = np.where(level < 2.0 / 3.0, spans["basal_mid"][1], spans["apical"][1]) + _TERRITORY_BLEED_DEG
    inside = np.abs(_wrap_deg(phi - centre)) < half
    if territory == "LAD":
        inside |= level >= 1.0  # segment 17, the apical cap
    return inside
