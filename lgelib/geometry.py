"""Per-sample geometry: each synthetic heart gets its own length, drawn together with its latent.

The canonical grid spans every heart from its most basal to its most apical myocardial slice
(`lgelib.data.grid`, ``z_mode="lv_extent"``), so a case's canonical slice spacing is its left-ventricular length
divided by the slices between: the one geometric number the canonical volumes themselves do not hold. Giving every
synthetic volume the median spacing makes every synthetic LV equally long. Instead the diffusion model learns
[z, log slice spacing] jointly (`GEOMETRY_COLUMNS`, appended to each training latent), and each sample's spacing
goes into its NIfTI header (`lgelib.synthesis.synthesize`). In-plane spacing is the grid's, the same for every case.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lgelib.data.prepare import PreparedDataset

GEOMETRY_COLUMNS: tuple[str, ...] = ("log_slice_spacing_mm",)
"""The extra columns of the diffusion model's input when geometry is sampled."""


def slice_spacings(prepared: PreparedDataset, case_ids: list[str]) -> np.ndarray:
    """Canonical slice spacing (mm) of each named case, from its grid mapping."""
    from lgelib.synthesis import canonical_spacing  # synthesis imports this module

    return np.array([canonical_spacing(prepared, c)[0] for c in case_ids], dtype=np.float64)


def with_geometry(latents: Tensor, prepared: PreparedDataset, case_ids: list[str]) -> Tensor:
    """Latents (N, D) of the named cases -> (N, D + 1): each row with its case's log slice spacing appended."""
    if len(case_ids) != len(latents):
        raise ValueError(f"{len(latents)} latents but {len(case_ids)} case ids")
    spacing = torch.from_numpy(np.log(slice_spacings(prepared, case_ids))).to(latents.dtype)
    return torch.cat([latents, spacing[:, None]], dim=1)


def split_geometry(vectors: Tensor, columns: tuple[str, ...]) -> tuple[Tensor, np.ndarray | None]:
    """Sampled vectors -> (latents, slice spacing in mm per sample, or None when ``columns`` holds no geometry)."""
    if not columns:
        return vectors, None
    if tuple(columns) != GEOMETRY_COLUMNS:
        raise ValueError(
            f"unknown extra columns {columns} of the diffusion model; this version knows {GEOMETRY_COLUMNS}"
        )
    return vectors[:, :-1], np.exp(vectors[:, -1].double().numpy())


def diffusion_inputs(
    latents: Tensor, prepared: PreparedDataset, case_ids: list[str], geometry: str
) -> tuple[Tensor, tuple[str, ...]]:
    """What the diffusion stage trains on for `lgelib.synthesis.SynthesisSettings.geometry`: the latents alone
    (``"nominal"``) or with each case's log slice spacing (``"sampled"``), and the names of the extra columns."""
    if geometry == "sampled":
        return with_geometry(latents, prepared, case_ids), GEOMETRY_COLUMNS
    if geometry != "nominal":
        raise ValueError(f"geometry must be 'nominal' or 'sampled', got {geometry!r}")
    return latents, ()
