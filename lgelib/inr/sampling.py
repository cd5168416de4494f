"""Which voxels each fitting step sees: uniform draws plus, optionally, extra draws in the myocardium and scar.

Fibrosis is often under 1% of a volume, so uniform sampling shows the fibrosis head few positives. A share of
every batch is drawn from a band around the myocardium (the myocardium dilated in-plane) and from a band
around the fibrosis. Each case draws from its own random stream, seeded by the run seed and its case id, so a
case gets the same coordinates whichever other cases share its batch (and after a resume).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor


def case_seed(seed: int, case_id: str) -> int:
    """A 63-bit seed for one case's sampling stream, stable across runs, machines and batch compositions."""
    digest = hashlib.sha256(f"{int(seed)}:{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def band(mask: np.ndarray, voxels: int) -> np.ndarray:
    """The mask dilated by ``voxels`` in-plane (slices are far apart, so not through-plane)."""
    if voxels <= 0 or not mask.any():
        return mask.astype(bool)
    structure = np.zeros((1, 3, 3), dtype=bool)
    structure[0] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_dilation(mask, structure=structure, iterations=voxels)


class VoxelSampler:
    """Draws (N, points) flat voxel indices per step for N cases.

    Args:
        case_ids: the cases, in batch order (they name the random streams).
        myocardium, fibrosis: (N, Z, R, C) boolean masks on the canonical grid.
        points: voxels per case per step.
        seed: the run's sampling seed.
        myocardium_fraction, fibrosis_fraction: shares of each batch drawn from the myocardium band and the
            fibrosis band; the rest is uniform. A case without fibrosis draws that share from its myocardium band.
        band_voxels: in-plane dilation of both bands, so boundaries are sampled from both sides.
        device: where the indices go.
        chunk_steps: steps drawn at once (does not change the draws).
    """

    def __init__(
        self,
        case_ids: list[str],
        myocardium: np.ndarray,
        fibrosis: np.ndarray,
        points: int,
        seed: int,
        myocardium_fraction: float = 0.0,
        fibrosis_fraction: float = 0.0,
        band_voxels: int = 2,
        device: torch.device | str = "cpu",
        chunk_steps: int = 16,
    ) -> None:
        if not 0 <= myocardium_fraction + fibrosis_fraction <= 1 or min(myocardium_fraction, fibrosis_fraction) < 0:
            raise ValueError(
                "myocardium_fraction and fibrosis_fraction must be >= 0 and sum to at most 1, got "
                f"{myocardium_fraction} and {fibrosis_fraction}"
            )
        self.n_voxels = int(np.prod(myocardium.shape[1:]))
        self.points = int(points)
        self.device = torch.device(device)
        self.chunk_steps = int(chunk_steps)
        n_myo = round(points * myocardium_fraction)
        n_fib = round(points * fibrosis_fraction)
        self.n_uniform = points - n_myo - n_fib
        self.n_myo = n_myo
        self.generators = [torch.Generator().manual_seed(case_seed(seed, cid)) for cid in case_ids]
        myo_pools, fib_pools = [], []
        for myo, fib in zip(myocardium, fibrosis):
            myo_pool = np.flatnonzero(band(myo, band_voxels))
            if myo_pool.size == 0:
                myo_pool = np.arange(self.n_voxels)
            fib_pool = np.flatnonzero(band(fib, band_voxels)) if fib.any() else myo_pool
            myo_pools.append(myo_pool)
            fib_pools.append(fib_pool)
        self.myo_pool, self.myo_count = self._pad(myo_pools)
        self.fib_pool, self.fib_count = self._pad(fib_pools)
        self._buffer: Tensor | None = None
        self._position = 0

    def _pad(self, pools: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        width = max(len(p) for p in pools)
        padded = np.zeros((len(pools), width), dtype=np.int64)
        for i, pool in enumerate(pools):
            padded[i, : len(pool)] = pool
        counts = torch.tensor([len(p) for p in pools], dtype=torch.float64, device=self.device)
        return torch.from_numpy(padded).to(self.device), counts

    def draw(self, uniforms: Tensor, rows: Tensor | None = None) -> Tensor:
        """Voxel indices from uniforms in [0, 1) shaped (..., n, points): uniform draws first, then the myocardium
        band, then the fibrosis band. ``rows`` (n,) picks which cases the n rows are (default: all, in order)."""
        n_u, n_m = self.n_uniform, self.n_myo
        myo_pool, myo_count, fib_pool, fib_count = self.myo_pool, self.myo_count, self.fib_pool, self.fib_count
        if rows is not None:
            myo_pool, myo_count, fib_pool, fib_count = myo_pool[rows], myo_count[rows], fib_pool[rows], fib_count[rows]
        lead = uniforms.shape[:-2]
        uniform = (uniforms[..., :n_u] * self.n_voxels).long()
        myo_slot = (uniforms[..., n_u : n_u + n_m] * myo_count[:, None]).long()
        fib_slot = (uniforms[..., n_u + n_m :] * fib_count[:, None]).long()
        myo = torch.gather(myo_pool.expand(*lead, -1, -1), -1, myo_slot)
        fib = torch.gather(fib_pool.expand(*lead, -1, -1), -1, fib_slot)
        return torch.cat([uniform, myo, fib], dim=-1)

    def _refill(self) -> None:
        uniforms = torch.stack(
            [torch.rand((self.chunk_steps, self.points), generator=g, dtype=torch.float64) for g in self.generators],
            dim=1,
        ).to(self.device)  # (S, N, points)
        self._buffer = self.draw(uniforms)
        self._position = 0

    def next(self) -> Tensor:
        """The next step's (N, points) voxel indices."""
        if self._buffer is None or self._position == self.chunk_steps:
            self._refill()
        indices = self._buffer[self._position]
        self._position += 1
        return indices
