"""Evaluating fitted INRs: any coordinates, or a whole grid of any shape, in one call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit
from torch import Tensor

from lgelib.inr.coords import grid_coordinates
from lgelib.device import resolve_device
from lgelib.inr.siren import ParameterLayout, SirenSettings, batched_forward


@dataclass
class Decoded:
    """Volumes decoded from N INRs, each (N, Z, R, C) float32: intensity and the two mask probabilities."""

    intensity: np.ndarray
    myocardium: np.ndarray
    fibrosis: np.ndarray

    def masks(self, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Boolean myocardium and fibrosis masks (fibrosis kept inside the myocardium)."""
        myocardium = self.myocardium > threshold
        return myocardium, (self.fibrosis > threshold) & myocardium


@torch.no_grad()
def evaluate(
    params: Tensor,
    spec: SirenSettings,
    coords: Tensor,
    device: torch.device | str | None = None,
    points_per_chunk: int | None = None,
) -> Tensor:
    """Raw outputs (N, M, 3) of N INRs (flat params (N, P) or (P,)) at the same (M, 3) coordinates."""
    device = resolve_device(device)
    flat = params.reshape(-1, params.shape[-1]).to(device=device, dtype=torch.float32)
    named = ParameterLayout(spec).unflatten(flat)
    n = flat.shape[0]
    chunk = points_per_chunk or max(1024, (1 << 26) // (n * spec.hidden))  # ~256 MB per activation
    coords = coords.to(device=device, dtype=torch.float32)
    outputs = [batched_forward(named, part.expand(n, -1, -1), spec).cpu() for part in coords.split(chunk)]
    return torch.cat(outputs, dim=1)


def decode(
    params: Tensor,
    spec: SirenSettings,
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    points_per_chunk: int | None = None,
) -> Decoded:
    """Decode N INRs on a (slices, rows, cols) grid spanning [-1, 1]^3, of any shape.

    Between the voxels it was fitted on an INR is unconstrained (a SIREN fills gaps with high frequencies, most
    visibly through-plane), so measure on the fitted grid; finer grids are for looking.
    """
    outputs = evaluate(params, spec, grid_coordinates(tuple(shape)), device, points_per_chunk)
    volumes = outputs.reshape(outputs.shape[0], *shape, 3).numpy()
    return Decoded(
        intensity=volumes[..., 0].astype(np.float32),
        myocardium=expit(volumes[..., 1]).astype(np.float32),
        fibrosis=expit(volumes[..., 2]).astype(np.float32),
    )
