"""Profiles: named settings for the whole pipeline. ``smoke`` runs on 2 CPU cores in minutes; ``paper``
matches the paper's settings and wants a GPU. Each stage adds its own section as it is built."""

from __future__ import annotations

from dataclasses import dataclass

from lgelib.data.grid import GridSpec
from lgelib.inr.fit import FitSettings
from lgelib.inr.siren import SirenSpec


@dataclass(frozen=True)
class InrStage:
    """Stage 1: the joint SIREN's architecture, how each is fitted, and how many volumes share a batch."""

    spec: SirenSpec
    fit: FitSettings
    cases_per_batch: int


@dataclass(frozen=True)
class Profile:
    """Settings of one profile."""

    name: str
    grid: GridSpec
    inr: InrStage


PROFILES: dict[str, Profile] = {
    # Same 160 mm field of view in both; the smoke grid is coarser so every later stage runs on a CPU.
    "smoke": Profile(
        name="smoke", grid=GridSpec(shape=(8, 64, 64), inplane_spacing_mm=2.5),
        # 15,907 parameters; about 5 s per volume on 2 CPU cores, 18 volumes together (benchmarks/README.md).
        inr=InrStage(spec=SirenSpec(hidden=64, backbone_layers=4, head_hidden=16),
                     fit=FitSettings(steps=800, points_per_step=4096, lr=1e-3, lr_final=1e-4), cases_per_batch=32)),
    "paper": Profile(
        name="paper", grid=GridSpec(shape=(12, 128, 128), inplane_spacing_mm=1.25),
        # The paper's 4 x 256 backbone; 260,323 parameters (layout in lgelib/inr/siren.py).
        inr=InrStage(spec=SirenSpec(hidden=256, backbone_layers=4, head_hidden=80),
                     fit=FitSettings(steps=2000, points_per_step=16384, lr=3e-4, lr_final=3e-5),
                     cases_per_batch=32)),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None
