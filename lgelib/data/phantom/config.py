"""Public settings and result types of the phantom generator, and the case naming scheme."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PhantomSettings:
    """Cohort-level parameters of the synthetic LGE cohort.

    Attributes:
        n_cases: number of subjects in the cohort (case ``k`` does not depend on it).
        seed: cohort seed; case ``k`` is drawn from ``np.random.default_rng([seed, k])``.
        scar_free_fraction: probability that a subject has no scar.
        nonischaemic_fraction: among scarred subjects, probability of a non-ischaemic pattern
            (septal mid-wall stripe and/or lateral epicardial patches) instead of an ischaemic scar.
        mvo_fraction: among ischaemic scars, probability of a dark microvascular-obstruction core
            (label 4); such scars are drawn large, as MVO occurs in large infarcts.
        matrix: in-plane voxels (rows, columns) of every slice.
        inplane_spacing_mm: range of the (isotropic) in-plane voxel size, drawn per subject.
        slice_spacing_mm: range of the distance between slice centres, drawn per subject.
        slice_gap_fraction: range of the gap between slices as a fraction of the spacing; the slice
            thickness is ``spacing * (1 - gap)`` and never exceeds the spacing.
        sub_slices: thin planes averaged per slice to model partial volume across the thickness (odd, so
            the labels come from the central plane).
        noise_fraction: range of the Gaussian noise standard deviation per channel, relative to the
            noise-free blood-pool signal (blood SNR about 1 / noise_fraction).
        bias_strength: standard deviation of the log-amplitude of the smooth coil bias field across the field
            of view.
        psf_sigma_px: in-plane Gaussian point-spread function (pixels) of the acquisition.
        ti_offset_ms: range of the inversion-time mis-setting relative to the myocardial null point. Set
            too long (the safe side in practice), so healthy myocardium is dark grey rather than black; the
            default is calibrated so normalised intensities match the real cases (see the package docstring);
            smaller offsets give darker myocardium.
        breath_hold_shift_mm: standard deviation of the per-slice in-plane shift of the heart and abdominal
            organs between breath holds (clipped at 2.5 standard deviations).
        padding_probability: probability that a subject's volume has a band of exact-zero padding (4-25 % of
            the field of view, on one or both sides) along the phase-encoding direction (reduced phase field
            of view); never over the heart.
        beyond_apex_probability: probability that the stack has one extra slice beyond the apex.
    """

    n_cases: int = 24
    seed: int = 0
    scar_free_fraction: float = 0.3
    nonischaemic_fraction: float = 0.2
    mvo_fraction: float = 0.6
    matrix: tuple[int, int] = (192, 192)
    inplane_spacing_mm: tuple[float, float] = (1.37, 1.88)
    slice_spacing_mm: tuple[float, float] = (8.0, 10.0)
    slice_gap_fraction: tuple[float, float] = (0.0, 0.25)
    sub_slices: int = 5
    noise_fraction: tuple[float, float] = (0.03, 0.07)
    bias_strength: float = 0.12
    psf_sigma_px: float = 0.7
    ti_offset_ms: tuple[float, float] = (110.0, 175.0)
    breath_hold_shift_mm: float = 1.5
    padding_probability: float = 0.8
    beyond_apex_probability: float = 0.1

    def __post_init__(self) -> None:
        """Reject settings outside their meaningful ranges."""
        for name in (
            "scar_free_fraction",
            "nonischaemic_fraction",
            "mvo_fraction",
            "padding_probability",
            "beyond_apex_probability",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.n_cases < 0:
            raise ValueError("n_cases must be >= 0")
        if len(self.matrix) != 2 or min(self.matrix) < 64:
            raise ValueError("matrix must be two sizes >= 64")
        if self.sub_slices < 1 or self.sub_slices % 2 == 0:
            raise ValueError("sub_slices must be a positive odd number")
        for name in ("inplane_spacing_mm", "slice_spacing_mm", "slice_gap_fraction", "noise_fraction", "ti_offset_ms"):
            low, high = getattr(self, name)
            if high < low:
                raise ValueError(f"{name} must be (low, high)")
        if self.inplane_spacing_mm[0] <= 0 or self.slice_spacing_mm[0] <= 0:
            raise ValueError("spacings must be positive")
        if not (0.0 <= self.slice_gap_fraction[0] and self.slice_gap_fraction[1] < 1.0):
            raise ValueError("slice_gap_fraction must lie in [0, 1)")


@dataclass(frozen=True)
class PhantomCase:
    """One synthetic subject.

    Attributes:
        case_id: ``phantom_case_id(index)``.
        image: float32 (X, Y, Z) magnitude signal >= 0 in arbitrary units; exact zeros in padding bands.
        labels: uint8, same shape; 0 background, 1 LV cavity, 2 healthy myocardium, 3 scar, 4 MVO.
        affine: 4x4 voxel-to-world matrix (mm); voxel spacing on the diagonal, slice axis last,
            slice index 0 at the apex.
        scar_pattern: "none", "ischaemic" or "nonischaemic".
        territory: "LAD", "RCA" or "LCx" for ischaemic scars, else None.
    """

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    scar_pattern: str
    territory: str | None


def phantom_case_id(index: int) -> str:
    """Case identifier of cohort member ``index`` (0-based): ``Phantom_001`` for index 0."""
    if index < 0:
        raise ValueError("index must be >= 0")
    return f"Phantom_{index + 1:03d}"
