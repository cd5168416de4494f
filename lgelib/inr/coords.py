"""Voxel coordinates for INRs: every axis of a (slices, rows, cols) grid spans [-1, 1], voxel centres at the ends."""

from __future__ import annotations

import torch
from torch import Tensor


def axis_coordinates(n: int, device: torch.device | str | None = None) -> Tensor:
    """n evenly spaced positions from -1 to 1 (a single position sits at 0)."""
    if n == 1:
        return torch.zeros(1, device=device)
    return torch.linspace(-1.0, 1.0, n, device=device)


def index_to_coordinates(index: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """Flat C-order voxel indices (any shape) -> (..., 3) coordinates in (slice, row, col) order."""
    slices, rows, cols = shape
    axes = [axis_coordinates(n, index.device) for n in shape]
    return torch.stack([axes[0][index // (rows * cols)], axes[1][(index // cols) % rows], axes[2][index % cols]], -1)


def grid_coordinates(shape: tuple[int, int, int], device: torch.device | str | None = None) -> Tensor:
    """(Z*R*C, 3) coordinates of every voxel of a grid, in C order (slice slowest)."""
    grids = torch.meshgrid(*(axis_coordinates(n, device) for n in shape), indexing="ij")
    return torch.stack(grids, dim=-1).reshape(-1, 3)
