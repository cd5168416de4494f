"""Profiles: named settings for the whole pipeline. ``smoke`` runs on 2 CPU cores in minutes; ``paper``
matches the paper's settings and wants a GPU. Each stage adds its own section as it is built."""

from __future__ import annotations

from dataclasses import dataclass

from lgelib.data.grid import GridSpec


@dataclass(frozen=True)
class Profile:
    """Settings of one profile."""

    name: str
    grid: GridSpec


PROFILES: dict[str, Profile] = {
    # Same 160 mm field of view in both; the smoke grid is coarser so every later stage runs on a CPU.
    "smoke": Profile(name="smoke", grid=GridSpec(shape=(8, 64, 64), inplane_spacing_mm=2.5)),
    "paper": Profile(name="paper", grid=GridSpec(shape=(12, 128, 128), inplane_spacing_mm=1.25)),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None
