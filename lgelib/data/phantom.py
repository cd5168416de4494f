"""Synthetic LGE short-axis cohort: the embedded phantom that stands in for the paper's private scans.

Each case is a stack of thick short-axis slices (apex at slice index 0, base at the last index) with an
EMIDEC-style label map (0 background, 1 LV cavity, 2 healthy myocardium, 3 scar, 4 microvascular obstruction).

How a case is made, and why:

* **Anatomy in millimetres.** The left ventricle is a truncated ellipsoidal shell whose radius follows
  ``r(h) = R * (1 - (h / L)**q) ** 0.5`` from the base plane (``h = 0``) to the apex (``h = L``), with
  separate endocardial and epicardial surfaces, so the wall thins towards the apex. Cavity size, wall
  thickness, length, ``q``, in-plane ellipticity, a slight long-axis tilt, the position in the field of view
  and an in-plane roll of the whole chest vary per subject. The right ventricle is a crescent of blood with a
  thin free wall wrapped around the septum, ending before the apex. Papillary muscles are dark blobs in the
  cavity, labelled cavity as annotators do. Around the heart: fat in the atrioventricular and
  interventricular grooves, lungs with small vessels, chest wall (subcutaneous fat, muscle, ribs), spine,
  descending aorta, and below a diaphragm dome that rises towards the apex the liver and other abdominal
  organs; a smooth random field breaks the soft tissue into fatty and muscular patches.
* **Scar.** Ischaemic scars lie in one coronary territory of the AHA 17-segment model (angle measured from
  the anterior RV insertion, basal/mid/apical thirds and the apical cap), grow from the endocardium with
  25-100 % transmurality that varies smoothly, have irregular borders and, in some, a dark
  microvascular-obstruction core in their sub-endocardial middle. Non-ischaemic scars are a septal mid-wall
  stripe and/or epicardial patches of the lateral wall. Scar size is nudged so every scar is 3.5 mL or more
  and 4-45 % of the myocardium, as in real cohorts.
* **Contrast.** An inversion-recovery signal model with post-contrast T1 values, proton densities and a
  per-subject inversion time set longer than the myocardial null point (healthy myocardium dark grey, not
  black). The signed signal is averaged over thin sub-slices across the slice thickness (partial volume;
  labels come from the central plane), blurred by a small in-plane point-spread function, multiplied by a
  smooth coil bias field and made Rician by taking the magnitude of signal plus complex Gaussian noise.
  The heart and abdomen move by a few millimetres between breath holds (slices); most subjects get a band of
  exact-zero padding (reduced phase field of view).

Calibration: the size distributions, T1 ranges and inversion-time offsets were tuned so that the statistics
of :func:`lgelib.data.stats.label_map_statistics` match 85 real EMIDEC-derived cases; see
``benchmarks/calibrate_phantom.py`` and ``benchmarks/calibration.md``.

Everything a case needs comes from ``np.random.default_rng([config.seed, index])``, so a case depends only on
(seed, index) and the config, never on how many other cases are made or in which order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

__all__ = ["PhantomCase", "PhantomConfig", "generate_case", "phantom_case_id"]

# ----------------------------------------------------------------------------------------------------------
# Public interface
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhantomConfig:
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
            default is calibrated so normalised intensities match the real cases (see module docstring);
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
        for name in ("scar_free_fraction", "nonischaemic_fraction", "mvo_fraction",
                     "padding_probability", "beyond_apex_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.n_cases < 0:
            raise ValueError("n_cases must be >= 0")
        if len(self.matrix) != 2 or min(self.matrix) < 64:
            raise ValueError("matrix must be two sizes >= 64")
        if self.sub_slices < 1 or self.sub_slices % 2 == 0:
            raise ValueError("sub_slices must be a positive odd number")
        for name in ("inplane_spacing_mm", "slice_spacing_mm", "slice_gap_fraction", "noise_fraction",
                     "ti_offset_ms"):
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


def generate_case(config: PhantomConfig, index: int) -> PhantomCase:
    """Make cohort member ``index``; deterministic in (config, index), independent of ``config.n_cases``."""
    if index < 0:
        raise ValueError("index must be >= 0")
    rng = np.random.default_rng([config.seed, index])
    subject = _sample_subject(rng, config)
    labels = _render_labels(subject)
    subject = _fit_scar_size(subject, labels)
    if subject.scar is not None:
        labels = _render_labels(subject)
    image = _render_image(subject, config, rng)
    _apply_padding(image, labels, config, rng)
    scar = subject.scar
    return PhantomCase(
        case_id=phantom_case_id(index),
        image=image,
        labels=labels,
        affine=_affine(subject),
        scar_pattern="none" if scar is None else scar.pattern,
        territory=None if scar is None else scar.territory,
    )


# ----------------------------------------------------------------------------------------------------------
# Tissues and contrast
# ----------------------------------------------------------------------------------------------------------

AIR, FAT, MUSCLE, LUNG, LIVER, BLOOD, MYO, SCAR, MVO, MARROW, BONE, SOFT = range(12)
_N_TISSUES = 12

# Post-contrast T1 (ms) ranges at 1.5 T about 10-20 min after gadolinium, and relative proton density. Liver and
# other soft tissue sit at the short end of published post-contrast values; with the long inversion time they
# are mid-grey, which brings the background's normalised median into the range of the real cases.
# Tissue codes (internal): index into the tables below.
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
    AIR: 0.0, FAT: 1.0, MUSCLE: 0.75, LUNG: 0.25, LIVER: 0.75, BLOOD: 0.95, MYO: 0.8,
    SCAR: 0.8, MVO: 0.85, MARROW: 0.8, BONE: 0.08, SOFT: 0.8,
}
# Relative texture amplitudes (fine, coarse) per tissue: heterogeneity that is not noise.
_TEXTURE = {
    FAT: (0.04, 0.08), MUSCLE: (0.08, 0.10), LUNG: (0.35, 0.35), LIVER: (0.05, 0.06), BLOOD: (0.03, 0.05),
    MYO: (0.06, 0.05), SCAR: (0.08, 0.06), MVO: (0.08, 0.05), MARROW: (0.10, 0.10), BONE: (0.2, 0.1),
    SOFT: (0.08, 0.10), AIR: (0.0, 0.0),
}
_SIGNAL_SCALE = 1000.0


def _inversion_recovery(t1_ms: np.ndarray | float, ti_ms: float, recovery_ms: float) -> np.ndarray:
    """Signed longitudinal magnetisation at the readout of an IR sequence (perfect inversion)."""
    t1 = np.asarray(t1_ms, dtype=np.float64)
    return 1.0 - 2.0 * np.exp(-ti_ms / t1) + np.exp(-recovery_ms / t1)


def _myocardial_null_ti(t1_ms: float, recovery_ms: float) -> float:
    """Inversion time at which tissue with this T1 gives zero signal."""
    return float(t1_ms * math.log(2.0 / (1.0 + math.exp(-recovery_ms / t1_ms))))


# ----------------------------------------------------------------------------------------------------------
# Subject parameters
# ----------------------------------------------------------------------------------------------------------

# AHA 17-segment territories: (centre angle, half-width) in degrees for basal/mid and apical levels. The AHA
# angle runs from the anterior RV insertion point (0 deg) through the septum to the inferior insertion
# (~120 deg), inferior, lateral (~240 deg) and back to anterior.
_TERRITORIES = {
    "LAD": {"basal_mid": (0.0, 60.0), "apical": (15.0, 90.0)},   # segments 1, 2, 7, 8, 13, 14, 17
    "RCA": {"basal_mid": (120.0, 60.0), "apical": (150.0, 45.0)},  # segments 3, 4, 9, 10, 15
    "LCx": {"basal_mid": (240.0, 60.0), "apical": (240.0, 45.0)},  # segments 5, 6, 11, 12, 16
}
_TERRITORY_PROBABILITY = {"LAD": 0.45, "RCA": 0.35, "LCx": 0.20}
_TERRITORY_BLEED_DEG = 20.0
_MIN_SCAR_ML = 3.5
_MIN_SCAR_BURDEN = 0.04
_MAX_SCAR_BURDEN = 0.45
_MAX_MYOCARDIUM_ML = 300.0
_MIN_MYOCARDIUM_ML = 65.0
_MAX_CAVITY_ML = 420.0
_MIN_CAVITY_ML = 55.0
_MAX_MYOCARDIUM_SLICES = 10


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
class _Scar:
    """Scar description in the LV's own coordinates (AHA angle, level, transmural depth)."""

    pattern: str                # "ischaemic" | "nonischaemic"
    territory: str | None
    regions: tuple[_Region, ...]
    kinds: tuple[str, ...]      # per region: "endo" | "midwall" | "epi"
    depth: tuple[float, ...]    # per region: peak transmurality (endo/epi) or half-thickness (midwall)
    wall_harmonics: tuple[tuple[float, float], ...]  # transmural-extent ripple around the LV
    mvo_radius: float           # 0: no MVO; else normalised radius of the MVO core
    mvo_depth: float            # MVO occupies depth < mvo_depth * transmurality

    def scaled(self, factor: float) -> "_Scar":
        """The same scar with every region's extent multiplied by ``factor``."""
        regions = tuple(r.scaled(factor) for r in self.regions)
        return _Scar(self.pattern, self.territory, regions, self.kinds, self.depth, self.wall_harmonics,
                     self.mvo_radius, self.mvo_depth)


@dataclass(frozen=True)
class _Torso:
    """Anatomy around the heart (mm). u runs anterior -> posterior/inferior (array axis 0), v runs from the
    LV's lateral wall towards the RV / patient's right (array axis 1); positions marked "LV" are relative
    to the LV base centre in the plane."""

    body: tuple[float, float, float, float, float]  # centre u, v (image frame), semi-axes u, v, squareness
    body_ripple: tuple[tuple[float, float], ...]
    subcut_fat: tuple[float, float]                 # anterior, posterior thickness
    chest_wall: float                               # muscle thickness inside the fat
    lungs: tuple[tuple[float, float, float, float], ...]  # LV: left and right lung centre u, v, semi-axes u, v
    lung_ripple: tuple[tuple[tuple[float, float], ...], ...]
    diaphragm: tuple[float, float, float, float]    # gap beyond the LV axis at the apex, rise per mm towards
                                                    # the base, dome curvature (1/mm), dome offset along v
    liver_side: float                               # LV: v beyond which the abdomen is liver
    organs: tuple[tuple[float, float, float, float, int], ...]  # LV: abdominal blobs u, v, au, av, tissue
    aorta: tuple[float, float, float]               # LV: centre u, v, radius
    spine: tuple[float, float, float]               # LV: centre u, v, radius
    ribs: tuple[tuple[float, float], ...]           # angle around the body (rad), size


@dataclass(frozen=True)
class _Subject:
    """All per-subject parameters (mm, ms, degrees)."""

    matrix: tuple[int, int]
    spacing: tuple[float, float, float]
    thickness: float
    n_slices: int
    slice_shifts: np.ndarray         # (n_slices, 2) breath-hold shifts, mm
    # left ventricle
    base_centre: np.ndarray          # (3,) mm in the image frame
    axis: np.ndarray                 # (3,) unit vector base -> apex
    e_septal: np.ndarray             # (3,) unit, towards the septum / RV
    e_anterior: np.ndarray           # (3,) unit, towards the anterior wall
    r_epi: float
    r_endo: float
    l_epi: float
    l_endo: float
    q: float
    ellipse_ratio: float
    ellipse_angle: float             # rad
    endo_ripple: tuple[tuple[float, float], ...]
    papillary: tuple[tuple[float, float], ...]   # (angle rad, radius mm)
    # right ventricle
    insertion_deg: float
    rv_centre: float
    rv_a: float
    rv_b: float
    rv_wall: float
    rv_length: float
    # fat around the heart
    fat_base: float
    fat_extra: float
    fat_angle: float                 # relative size of the inferior-groove fat
    roll: float                      # in-plane rotation (rad) of the chest layout
    torso: _Torso                    # everything around the heart
    # contrast
    t1: dict[int, float]
    ti_ms: float
    recovery_ms: float
    noise_fraction: float
    bias_coefficients: np.ndarray
    scar: _Scar | None


def _wrap_deg(angle: np.ndarray) -> np.ndarray:
    """Wrap degrees into [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def _harmonics(rng: np.random.Generator, count: int, amplitude: float) -> tuple[tuple[float, float], ...]:
    """Random Fourier harmonics with amplitudes falling off with order (smooth, irregular borders)."""
    return tuple(
        (float(amplitude * rng.uniform(0.3, 1.0) / (1 + 0.5 * k)), float(rng.uniform(0, 2 * np.pi)))
        for k in range(count)
    )


def _unit(vector: np.ndarray) -> np.ndarray:
    """The vector scaled to length 1."""
    return vector / np.linalg.norm(vector)


def _unroll(vector_uv: np.ndarray, roll: float) -> np.ndarray:
    """3-D image-frame vector of an in-plane direction given in the chest's unrolled frame."""
    c, s = math.cos(roll), math.sin(roll)
    return np.array([c * vector_uv[0] - s * vector_uv[1], s * vector_uv[0] + c * vector_uv[1], 0.0])


def _ellipsoid_ml(radius: float, length: float, q: float) -> float:
    """Volume (mL) of the half-solid r(h) = radius * (1 - (h / length)**q) ** 0.5, 0 <= h <= length."""
    return math.pi * radius * radius * length * q / (q + 1.0) / 1000.0


def _sample_lv_size(rng: np.random.Generator, dz: float) -> tuple[float, float, float, float, float, float]:
    """LV body-size factor, cavity radius, basal wall thickness, epicardial and endocardial length, and q."""
    # A shared body-size factor; cavity dilation and wall thickness vary on top of it.
    size = float(np.exp(np.clip(rng.normal(0.0, 0.12), -0.25, 0.22)))
    r_endo = float(np.clip(31.0 * size * np.exp(rng.normal(0.0, 0.15)), 18.0, 52.0))
    wall = float(np.clip(12.5 * np.sqrt(size) * np.exp(rng.normal(0.0, 0.18)), 7.0, 19.0))
    l_epi = float(np.clip(72.0 * size * np.exp(rng.normal(0.0, 0.10)), 46.0, 100.0))
    l_epi = min(l_epi, _MAX_MYOCARDIUM_SLICES * dz)  # real stacks hold at most ~10 slices with myocardium
    l_endo = l_epi - float(rng.uniform(3.5, 6.5))   # apical wall thickness
    q = float(rng.uniform(1.8, 3.2))
    # Keep the extremes inside what real cohorts show (myocardium 65-300 mL, cavity 55-420 mL).
    while _ellipsoid_ml(r_endo + wall, l_epi, q) - _ellipsoid_ml(r_endo, l_endo, q) > _MAX_MYOCARDIUM_ML:
        wall *= 0.95
    while _ellipsoid_ml(r_endo + wall, l_epi, q) - _ellipsoid_ml(r_endo, l_endo, q) < _MIN_MYOCARDIUM_ML:
        wall *= 1.05
    while _ellipsoid_ml(r_endo, l_endo, q) > _MAX_CAVITY_ML:
        r_endo *= 0.97
    while _ellipsoid_ml(r_endo, l_endo, q) < _MIN_CAVITY_ML:
        r_endo *= 1.03
    return size, r_endo, wall, l_epi, l_endo, q


def _sample_orientation(rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, float]:
    """Long-axis tilt (rad), the LV frame (axis base->apex, septal and anterior directions) and chest roll."""
    tilt = math.radians(rng.uniform(0.0, 9.0))
    tilt_dir = rng.uniform(0, 2 * np.pi)
    axis = np.array([math.sin(tilt) * math.cos(tilt_dir), math.sin(tilt) * math.sin(tilt_dir),
                     -math.cos(tilt)])
    # Septum / RV towards +v (array axis 1) and somewhat anterior (-u), as in the real stacks.
    # The whole chest is rolled in plane by a small angle; anatomy is laid out in the unrolled frame.
    roll = math.radians(float(np.clip(rng.normal(0.0, 15.0), -30.0, 30.0)))
    rv_dir = math.radians(rng.uniform(10.0, 35.0))
    towards_rv = _unroll(np.array([-math.sin(rv_dir), math.cos(rv_dir)]), roll)
    e_septal = _unit(towards_rv - towards_rv.dot(axis) * axis)
    anterior = _unroll(np.array([-1.0, 0.0]), roll)
    e_anterior = _unit(anterior - anterior.dot(axis) * axis - anterior.dot(e_septal) * e_septal)
    return tilt, axis, e_septal, e_anterior, roll


def _sample_stack(rng: np.random.Generator, config: PhantomConfig, dz: float, r_epi: float, l_epi: float,
                  tilt: float, axis: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Slice count, LV base centre (image frame, mm) and per-slice breath-hold shifts.

    The basal slice centre lies just below the base plane; slices follow towards the apex until it is
    reached, sometimes with one more slice beyond it.
    """
    base_gap = max(dz * rng.uniform(0.15, 0.5), r_epi * math.tan(tilt) + 0.5)
    apex_margin = rng.uniform(3.0, 12.0)
    axial_length = l_epi * math.cos(tilt)
    n_myo = max(3, int(math.floor((axial_length - base_gap - apex_margin) / dz)) + 1)
    n_myo = min(n_myo, _MAX_MYOCARDIUM_SLICES)
    n_slices = n_myo + int(rng.random() < config.beyond_apex_probability)
    z_top = (n_slices - 1 - (n_slices - 1) / 2.0) * dz  # centre of the basal slice in the image frame
    centre_uv = np.clip(rng.normal(0.0, 7.0, size=2), -14.0, 14.0)
    base_centre = np.array([centre_uv[0], centre_uv[1], z_top]) - base_gap * axis
    shifts = np.clip(rng.normal(0.0, config.breath_hold_shift_mm, size=(n_slices, 2)),
                     -2.5 * config.breath_hold_shift_mm, 2.5 * config.breath_hold_shift_mm)
    return n_slices, base_centre, shifts


def _sample_rv(rng: np.random.Generator, r_epi: float, size: float) -> tuple[float, float, float, float]:
    """RV insertion half-angle (deg) and the RV ellipse (centre along the septal axis, semi-axes a, b).

    The ellipse is placed so that it meets the LV epicardium at +-insertion degrees from the septum's centre.
    """
    insertion = float(rng.uniform(55.0, 72.0))
    rv_depth = float(rng.uniform(10.0, 22.0) * size)
    rv_b = r_epi * float(rng.uniform(1.25, 1.6))
    sin_i, cos_i = math.sin(math.radians(insertion)), math.cos(math.radians(insertion))
    root = math.sqrt(max(1e-3, 1.0 - (r_epi * sin_i / rv_b) ** 2))
    rv_centre = (root * (r_epi + rv_depth) + r_epi * cos_i) / (1.0 + root)
    return insertion, rv_centre, r_epi + rv_depth - rv_centre, rv_b


def _sample_contrast(rng: np.random.Generator, config: PhantomConfig) -> tuple[dict[int, float], float, float,
                                                                                  np.ndarray]:
    """Per-tissue T1 (ms), recovery time and inversion time (ms), and coil-bias coefficients."""
    t1 = {tissue: float(rng.uniform(*bounds)) for tissue, bounds in _T1_RANGE_MS.items()}
    t1[SCAR] = min(t1[SCAR], t1[MYO] - 150.0)
    t1[BLOOD] = min(t1[BLOOD], t1[MYO] - 100.0)
    t1[MVO] = t1[MYO] * float(rng.uniform(1.15, 1.4))  # little contrast reaches the obstructed core
    recovery = float(rng.uniform(1500.0, 2100.0))  # two RR intervals
    ti = _myocardial_null_ti(t1[MYO], recovery) + float(rng.uniform(*config.ti_offset_ms))
    bias = np.clip(rng.normal(0.0, config.bias_strength, size=6), -2.0 * config.bias_strength,
                   2.0 * config.bias_strength)
    bias[0] = -abs(bias[0])  # anterior (surface coil side) brighter
    return t1, recovery, ti, bias


def _sample_subject(rng: np.random.Generator, config: PhantomConfig) -> _Subject:
    """Draw one subject's anatomy, scar, geometry and contrast parameters (in a fixed draw order)."""
    du = float(rng.uniform(*config.inplane_spacing_mm))
    dz = float(rng.uniform(*config.slice_spacing_mm))
    thickness = dz * (1.0 - float(rng.uniform(*config.slice_gap_fraction)))
    size, r_endo, wall, l_epi, l_endo, q = _sample_lv_size(rng, dz)
    r_epi = r_endo + wall
    tilt, axis, e_septal, e_anterior, roll = _sample_orientation(rng)
    n_slices, base_centre, shifts = _sample_stack(rng, config, dz, r_epi, l_epi, tilt, axis)
    insertion, rv_centre, rv_a, rv_b = _sample_rv(rng, r_epi, size)
    papillary = (
        (math.radians(rng.uniform(115.0, 150.0)), float(rng.uniform(3.5, 6.0) * size)),
        (math.radians(rng.uniform(-150.0, -115.0)), float(rng.uniform(3.5, 6.0) * size)),
    )
    nu, nv = config.matrix
    torso = _sample_torso(rng, r_epi, rv_centre + rv_a, 0.5 * min(nu, nv) * du)
    t1, recovery, ti, bias = _sample_contrast(rng, config)
    scar = _sample_scar(rng, config)
    return _Subject(
        matrix=(int(nu), int(nv)), spacing=(du, du, dz), thickness=thickness, n_slices=n_slices,
        slice_shifts=shifts, base_centre=base_centre, axis=axis, e_septal=e_septal, e_anterior=e_anterior,
        r_epi=r_epi, r_endo=r_endo, l_epi=l_epi, l_endo=l_endo, q=q,
        ellipse_ratio=float(rng.uniform(1.0, 1.2)), ellipse_angle=float(rng.uniform(0, np.pi)),
        endo_ripple=_harmonics(rng, 6, 0.03), papillary=papillary,
        insertion_deg=insertion, rv_centre=rv_centre, rv_a=rv_a, rv_b=rv_b,
        rv_wall=float(rng.uniform(2.5, 4.0)), rv_length=l_epi * float(rng.uniform(0.65, 0.85)),
        fat_base=float(rng.uniform(-1.0, 1.5)), fat_extra=float(rng.uniform(3.0, 9.0)),
        fat_angle=float(rng.uniform(0.3, 1.0)),
        roll=roll, torso=torso,
        t1=t1, ti_ms=ti, recovery_ms=recovery,
        noise_fraction=float(rng.uniform(*config.noise_fraction)), bias_coefficients=bias, scar=scar,
    )


def _sample_torso(rng: np.random.Generator, r_epi: float, rv_reach: float, half_fov: float) -> _Torso:
    """Body wall, lungs, abdomen and mediastinum placed around a heart of the given size.

    The field of view is set tightly on the chest, as in clinical short-axis stacks: the anterior skin lies
    just inside the top edge and the lateral body walls near the side edges.
    """
    body_au = float(rng.uniform(190.0, 250.0))
    body_av = half_fov * float(rng.uniform(1.1, 1.4))
    skin_u = -half_fov + float(rng.uniform(2.0, 15.0))
    body = (skin_u + body_au, float(rng.uniform(-20.0, 30.0)), body_au, body_av, float(rng.uniform(3.0, 5.0)))
    diaphragm = (float(rng.uniform(r_epi * 0.1, r_epi * 0.6)), float(rng.uniform(0.15, 0.6)),
                 float(rng.uniform(0.004, 0.01)), float(rng.uniform(-30.0, 30.0)))
    left_v, right_v = float(rng.uniform(35.0, 70.0)), float(rng.uniform(28.0, 55.0))
    lungs = (
        (float(rng.uniform(-25.0, 15.0)), -(r_epi + float(rng.uniform(2.0, 15.0)) + left_v),
         float(rng.uniform(50.0, 85.0)), left_v),
        (float(rng.uniform(-15.0, 25.0)), rv_reach + float(rng.uniform(5.0, 25.0)) + right_v,
         float(rng.uniform(40.0, 70.0)), right_v),
    )
    organ_tissues = (SOFT, SOFT, MUSCLE, FAT, LIVER, BLOOD)
    organs = tuple(
        (float(rng.uniform(r_epi + 10.0, r_epi + 110.0)), float(rng.uniform(-130.0, 40.0)),
         float(rng.uniform(10.0, 35.0)), float(rng.uniform(10.0, 40.0)),
         int(organ_tissues[int(rng.integers(0, len(organ_tissues)))]))
        for _ in range(int(rng.integers(2, 6)))
    )
    aorta = (r_epi + float(rng.uniform(30.0, 60.0)), -float(rng.uniform(20.0, 50.0)), float(rng.uniform(9.0, 13.0)))
    spine = (aorta[0] + float(rng.uniform(25.0, 50.0)), aorta[1] + float(rng.uniform(0.0, 30.0)),
             float(rng.uniform(15.0, 20.0)))
    ribs = tuple((float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(5.0, 9.0)))
                 for _ in range(int(rng.integers(4, 9))))
    return _Torso(
        body=body, body_ripple=_harmonics(rng, 4, 0.04),
        subcut_fat=(float(rng.uniform(5.0, 18.0)), float(rng.uniform(10.0, 30.0))),
        chest_wall=float(rng.uniform(6.0, 14.0)), lungs=lungs,
        lung_ripple=(_harmonics(rng, 4, 0.15), _harmonics(rng, 4, 0.15)), diaphragm=diaphragm,
        liver_side=float(rng.uniform(-30.0, 10.0)), organs=organs, aorta=aorta, spine=spine, ribs=ribs,
    )


def _sample_scar(rng: np.random.Generator, config: PhantomConfig) -> _Scar | None:
    """Draw the scar pattern: none, an ischaemic territory scar, or a non-ischaemic pattern."""
    if rng.random() < config.scar_free_fraction:
        return None
    if rng.random() < config.nonischaemic_fraction:
        return _sample_nonischaemic_scar(rng)
    return _sample_ischaemic_scar(rng, config.mvo_fraction)


def _sample_ischaemic_scar(rng: np.random.Generator, mvo_fraction: float) -> _Scar:
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
    region = _Region(float(phi0), float(s0), float(w_phi), float(w_s), _harmonics(rng, 4, 0.25))
    return _Scar(
        pattern="ischaemic", territory=territory, regions=(region,), kinds=("endo",), depth=(float(peak),),
        wall_harmonics=_harmonics(rng, 5, 0.12),
        mvo_radius=float(rng.uniform(0.35, 0.6)) if has_mvo else 0.0,
        mvo_depth=float(rng.uniform(0.45, 0.7)),
    )


def _sample_nonischaemic_scar(rng: np.random.Generator) -> _Scar:
    """Septal mid-wall stripe and/or epicardial patches in the lateral wall."""
    choice = rng.random()
    regions: list[_Region] = []
    kinds: list[str] = []
    depth: list[float] = []
    if choice < 0.7:
        regions.append(_Region(float(rng.uniform(45.0, 80.0)), float(rng.uniform(0.2, 0.6)),
                               float(rng.uniform(35.0, 60.0)), float(rng.uniform(0.25, 0.5)),
                               _harmonics(rng, 4, 0.2)))
        kinds.append("midwall")
        depth.append(float(rng.uniform(0.14, 0.25)))
    if choice >= 0.5:
        for _ in range(int(rng.integers(1, 4))):
            regions.append(_Region(float(rng.uniform(190.0, 290.0)), float(rng.uniform(0.15, 0.8)),
                                   float(rng.uniform(20.0, 45.0)), float(rng.uniform(0.15, 0.35)),
                                   _harmonics(rng, 4, 0.25)))
            kinds.append("epi")
            depth.append(float(rng.uniform(0.3, 0.55)))
    return _Scar(pattern="nonischaemic", territory=None, regions=tuple(regions), kinds=tuple(kinds),
                 depth=tuple(depth), wall_harmonics=_harmonics(rng, 5, 0.1), mvo_radius=0.0, mvo_depth=0.0)


# ----------------------------------------------------------------------------------------------------------
# Geometry of one plane
# ----------------------------------------------------------------------------------------------------------


def _plane_grid(subject: _Subject) -> tuple[np.ndarray, np.ndarray]:
    """In-plane coordinates (mm) of the voxel centres, relative to the image centre."""
    nu, nv = subject.matrix
    du = subject.spacing[0]
    u = ((np.arange(nu, dtype=np.float32) - (nu - 1) / 2.0) * du)[:, None]
    v = ((np.arange(nv, dtype=np.float32) - (nv - 1) / 2.0) * du)[None, :]
    return np.broadcast_to(u, (nu, nv)), np.broadcast_to(v, (nu, nv))


def _slice_z(subject: _Subject, k: int) -> float:
    """Centre of slice ``k`` along the slice axis (mm, image frame)."""
    return (k - (subject.n_slices - 1) / 2.0) * subject.spacing[2]


def _heart_window(subject: _Subject) -> tuple[slice, slice]:
    """Array window that holds the heart and its fat in every slice (the heart is only computed there)."""
    s = subject
    nu, nv = s.matrix
    du = s.spacing[0]
    margin = 20.0 + 3.0 * s.slice_shifts.std() + 5.0  # fat, breath-hold shifts, partial-volume planes
    lateral = max(s.rv_b, s.r_epi) + margin
    corners = [
        s.base_centre + x1 * s.e_septal + x2 * s.e_anterior + h * s.axis
        for x1 in (-(s.r_epi + margin), s.rv_centre + s.rv_a + margin)
        for x2 in (-lateral, lateral)
        for h in (-10.0, s.l_epi + 5.0)
    ]
    u = np.array([c[0] for c in corners]) / du + (nu - 1) / 2.0
    v = np.array([c[1] for c in corners]) / du + (nv - 1) / 2.0
    return (slice(max(0, int(u.min())), min(nu, int(u.max()) + 2)),
            slice(max(0, int(v.min())), min(nv, int(v.max()) + 2)))


def _implicit_distance(rho: np.ndarray, h_pos: np.ndarray, radius: np.ndarray | float, length: float,
                       q: float) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to the surface (rho/R)^2 + (h/L)^q = 1."""
    a = rho / radius
    b = h_pos / length
    b_q1 = b ** (q - 1.0)
    f = a * a + b_q1 * b - 1.0
    grad = np.sqrt((2.0 * a / radius) ** 2 + (q * b_q1 / length) ** 2) + 1e-6
    return f / grad


def _wrap_rad(angle: np.ndarray) -> np.ndarray:
    """Wrap radians into [-pi, pi)."""
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


@dataclass
class _HeartPlane:
    """Tissue codes and labels of the heart window in one plane."""

    tissue: np.ndarray
    labels: np.ndarray
    mask: np.ndarray  # where the heart (or its fat) overrides the background


def _heart_plane(subject: _Subject, u: np.ndarray, v: np.ndarray, z: float) -> _HeartPlane:
    """Heart tissues and LV labels in one plane, given heart-window coordinates shifted for breath hold."""
    s = subject
    ru = u - np.float32(s.base_centre[0])
    rv = v - np.float32(s.base_centre[1])
    rz = float(z - s.base_centre[2])
    a0, a1, a2 = (float(c) for c in s.axis)
    s0, s1, s2 = (float(c) for c in s.e_septal)
    n0, n1, n2 = (float(c) for c in s.e_anterior)
    h = ru * a0 + rv * a1 + rz * a2           # depth below the base plane along the long axis
    x1 = ru * s0 + rv * s1 + rz * s2          # towards the septum / RV
    x2 = ru * n0 + rv * n1 + rz * n2          # towards the anterior wall
    theta = np.arctan2(x2, x1)

    ca, sa = math.cos(s.ellipse_angle), math.sin(s.ellipse_angle)
    ea = math.sqrt(s.ellipse_ratio)
    xr = (x1 * ca + x2 * sa) / ea
    yr = (-x1 * sa + x2 * ca) * ea
    rho = np.sqrt(xr * xr + yr * yr)
    h_pos = np.maximum(h, 0.0)
    below_base = h >= 0.0

    ripple = np.ones_like(rho)
    for order, (amplitude, phase) in enumerate(s.endo_ripple, start=3):
        ripple += amplitude * np.cos(order * theta + phase)
    d_epi = _implicit_distance(rho, h_pos, s.r_epi, s.l_epi, s.q)
    d_endo = _implicit_distance(rho, h_pos, s.r_endo * ripple, s.l_endo, s.q)
    epi_in = (d_epi < 0) & below_base
    endo_in = (d_endo < 0) & below_base
    myo = epi_in & ~endo_in

    tissue = np.zeros(h.shape, dtype=np.uint8)
    labels = np.zeros(h.shape, dtype=np.uint8)

    rv_outer, rv_blood, rv_dist = _right_ventricle(s, x1, x2, h_pos)
    lv_dist = np.where(below_base, d_epi, rho - (s.r_endo + 4.0))
    heart_dist = np.minimum(lv_dist, np.where(rv_outer, -1.0, rv_dist))
    fat = heart_dist < _epicardial_fat_thickness(s, theta, h, h_pos)
    tissue[fat] = FAT
    tissue[rv_outer] = MYO
    tissue[rv_blood] = BLOOD

    # Above the base plane: atrium / outflow tract (blood with a thin wall), not labelled as LV.
    above = ~below_base
    atrium_wall = above & (rho < s.r_endo + 3.0)
    tissue[atrium_wall] = MYO
    tissue[above & (rho < s.r_endo)] = BLOOD

    tissue[myo] = MYO
    labels[myo] = 2
    tissue[endo_in] = BLOOD
    labels[endo_in] = 1
    _paint_papillary(s, x1, x2, h_pos, endo_in, tissue)

    if s.scar is not None and myo.any():
        idx = np.nonzero(myo)
        scar, mvo = _scar_masks(s, theta[idx], h_pos[idx], d_endo[idx], d_epi[idx])
        tissue[idx[0][scar], idx[1][scar]] = SCAR
        labels[idx[0][scar], idx[1][scar]] = 3
        tissue[idx[0][mvo], idx[1][mvo]] = MVO
        labels[idx[0][mvo], idx[1][mvo]] = 4
    return _HeartPlane(tissue=tissue, labels=labels, mask=fat | rv_outer | atrium_wall | epi_in)


def _right_ventricle(s: _Subject, x1: np.ndarray, x2: np.ndarray,
                     h_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RV (wall + blood) and RV blood masks, and the approximate distance (mm) outside the RV.

    The RV is an ellipse hugging the septum that shrinks with the LV and tapers to end before the apex.
    """
    lv_scale = np.sqrt(np.clip(1.0 - (h_pos / s.l_epi) ** s.q, 0.0, 1.0))
    rv_taper = np.sqrt(np.clip(1.0 - (h_pos / s.rv_length) ** 2, 0.0, 1.0))
    rv_scale = lv_scale * rv_taper + 1e-3
    rv_cu = s.rv_centre * lv_scale
    rv_n = np.sqrt(((x1 - rv_cu) / (s.rv_a * rv_scale)) ** 2 + (x2 / (s.rv_b * rv_scale)) ** 2)
    distance = (rv_n - 1.0) * np.minimum(s.rv_a, s.rv_b) * rv_scale
    present = rv_taper > 0.05
    return (distance < 0) & present, (distance < -s.rv_wall) & present, distance


def _epicardial_fat_thickness(s: _Subject, theta: np.ndarray, h: np.ndarray, h_pos: np.ndarray) -> np.ndarray:
    """Thickness (mm) of fat outside the heart: interventricular and AV grooves, a little at the apex."""
    apex_pad = 2.0 * np.clip(h_pos / s.l_epi, 0, 1) ** 8
    av_groove = 5.0 * np.exp(-np.abs(h) / 6.0)
    # Interventricular grooves at the RV insertions (theta = +-insertion), with the coronary arteries' fat.
    insertion = math.radians(s.insertion_deg)
    lobes = (np.exp(-(_wrap_rad(theta - insertion) / 0.45) ** 2)
             + s.fat_angle * np.exp(-(_wrap_rad(theta + insertion) / 0.4) ** 2))
    return s.fat_base + s.fat_extra * lobes + apex_pad + av_groove


def _paint_papillary(s: _Subject, x1: np.ndarray, x2: np.ndarray, h_pos: np.ndarray, cavity: np.ndarray,
                     tissue: np.ndarray) -> None:
    """Two papillary muscles (myocardial signal inside the cavity) from mid-ventricle towards the apex."""
    frac = h_pos / s.l_endo
    extent = np.clip(1.0 - ((frac - 0.55) / 0.3) ** 2, 0.0, 1.0)
    if not (extent > 0).any():
        return
    r_level = s.r_endo * np.sqrt(np.clip(1.0 - frac ** s.q, 0.0, 1.0))
    for angle, radius in s.papillary:
        r_pm = radius * np.sqrt(extent)
        centre = r_level - 0.8 * r_pm
        cu, cv = centre * math.cos(angle), centre * math.sin(angle)
        inside = ((x1 - cu) ** 2 + (x2 - cv) ** 2 < r_pm * r_pm) & cavity
        tissue[inside] = MYO


def _aha_angle(s: _Subject, theta: np.ndarray) -> np.ndarray:
    """AHA angle in degrees: 0 at the anterior RV insertion, increasing through septum, inferior, lateral."""
    return (s.insertion_deg - np.degrees(theta)) % 360.0


def _scar_masks(s: _Subject, theta: np.ndarray, h_pos: np.ndarray, d_endo: np.ndarray,
                d_epi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scar and MVO among myocardial voxels, from AHA angle, level and transmural depth."""
    scar_model = s.scar
    assert scar_model is not None
    phi = _aha_angle(s, theta)
    level = h_pos / s.l_endo                      # 0 base, 1 cavity tip, > 1 apical cap
    depth = d_endo / (d_endo - d_epi + 1e-6)      # 0 endocardium, 1 epicardium
    ripple = np.zeros_like(phi)
    for order, (amplitude, phase) in enumerate(scar_model.wall_harmonics, start=1):
        ripple += amplitude * np.cos(order * np.radians(phi) + phase + 3.0 * order * level)
    scar = np.zeros(phi.shape, dtype=bool)
    mvo = np.zeros(phi.shape, dtype=bool)
    for region, kind, extent in zip(scar_model.regions, scar_model.kinds, scar_model.depth):
        radius = region.normalised_radius(phi, level)
        inside = radius < 1.0
        if kind == "endo":
            core = np.clip(1.0 - radius * radius, 0.0, 1.0) ** 0.25
            transmural = np.clip(0.25 + (extent - 0.25) * core + ripple, 0.25, 1.0)
            if scar_model.territory is not None:
                inside &= _in_territory(scar_model.territory, phi, level)
            scar |= inside & (depth < transmural)
            if scar_model.mvo_radius > 0:
                mvo |= inside & (radius < scar_model.mvo_radius) & (depth < scar_model.mvo_depth * transmural)
        elif kind == "midwall":
            centre = 0.5 + 0.5 * ripple
            half = extent * np.sqrt(np.clip(1.0 - radius * radius, 0.0, 1.0)) + 0.04
            scar |= inside & (np.abs(depth - centre) < half)
        else:
            core = np.sqrt(np.clip(1.0 - radius * radius, 0.0, 1.0))
            transmural = np.clip(0.15 + (extent - 0.15) * core + ripple, 0.1, 0.7)
            scar |= inside & (depth > 1.0 - transmural)
    return scar & ~mvo, mvo


def _in_territory(territory: str, phi: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Whether voxels lie in (or within a small bleed of) a coronary territory at their level."""
    spans = _TERRITORIES[territory]
    centre = np.where(level < 2.0 / 3.0, spans["basal_mid"][0], spans["apical"][0])
    half = np.where(level < 2.0 / 3.0, spans["basal_mid"][1], spans["apical"][1]) + _TERRITORY_BLEED_DEG
    inside = np.abs(_wrap_deg(phi - centre)) < half
    if territory == "LAD":
        inside |= level >= 1.0  # segment 17, the apical cap
    return inside


# ----------------------------------------------------------------------------------------------------------
# Background anatomy
# ----------------------------------------------------------------------------------------------------------


def _ellipse_radius(du: np.ndarray, dv: np.ndarray, au: float, av: float) -> np.ndarray:
    """Normalised radius of offsets (du, dv) in an axis-aligned ellipse with semi-axes au, av (< 1 inside)."""
    return np.sqrt((du / au) ** 2 + (dv / av) ** 2)


def _chest_frame(s: _Subject, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-frame coordinates rotated about the LV by the subject's roll: the frame the torso is laid out in."""
    cu, cv = float(s.base_centre[0]), float(s.base_centre[1])
    c, sn = math.cos(s.roll), math.sin(s.roll)
    du, dv = u - cu, v - cv
    return cu + c * du + sn * dv, cv - sn * du + c * dv


def _static_background(s: _Subject, u: np.ndarray, v: np.ndarray, z: float,
                       organ_field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissues that do not move with breathing: body wall, ribs, lungs, mediastinum, spine, aorta.

    ``u``, ``v`` are in the chest frame (see :func:`_chest_frame`). ``organ_field`` is a smooth random
    field that breaks the soft tissue into fatty and muscular patches and the chest wall by fat planes, so
    the background has some of the clutter of real anatomy. Returns the tissue codes and the thoracic
    interior (where the abdomen may rise into the plane).
    """
    t = s.torso
    bu, bv, au, av, power = t.body
    du_, dv_ = u - bu, v - bv
    angle = np.arctan2(du_ / au, dv_ / av)
    ripple = np.ones_like(u)
    for order, (amplitude, phase) in enumerate(t.body_ripple, start=2):
        ripple += amplitude * np.cos(order * angle + phase + 0.01 * z)
    r_body = (np.abs(du_ / au) ** power + np.abs(dv_ / av) ** power) ** (1.0 / power) / ripple
    tissue = np.full(u.shape, AIR, dtype=np.uint8)
    tissue[r_body < 1.0] = FAT
    # Subcutaneous fat thinner anteriorly (towards -u), chest-wall muscle inside it, soft tissue inside that.
    fat_front, fat_back = t.subcut_fat
    frac_front = np.clip(0.5 - 0.5 * du_ / au, 0.0, 1.0)
    fat_t = fat_back + (fat_front - fat_back) * frac_front
    scale = math.sqrt(au * av)
    depth = (1.0 - r_body) * scale
    tissue[depth > fat_t] = MUSCLE
    interior = depth > fat_t + t.chest_wall
    tissue[interior] = SOFT
    _patchwork(tissue, interior, organ_field)
    tissue[(depth > fat_t) & ~interior & (np.abs(organ_field - 0.5) < 0.06)] = FAT  # intermuscular fat planes
    cu, cv = float(s.base_centre[0]), float(s.base_centre[1])
    # Lungs lateral to the LV and beyond the RV, bounded by the chest wall; the abdomen (painted per plane)
    # and the heart with its fat (painted last) cut into them.
    for (lu, lv, lau, lav), harmonics in zip(t.lungs, t.lung_ripple):
        du_l, dv_l = u - cu - lu, v - cv - lv
        angle_l = np.arctan2(du_l / lau, dv_l / lav)
        border = np.ones_like(u)
        for order, (amplitude, phase) in enumerate(harmonics, start=2):
            border += amplitude * np.cos(order * angle_l + phase + 0.02 * z)
        tissue[interior & (_ellipse_radius(du_l, dv_l, lau, lav) < border)] = LUNG
    # Ribs within the chest wall.
    ring = 1.0 - (float(np.mean(t.subcut_fat)) + 0.5 * t.chest_wall) / scale
    for angle_r, size in t.ribs:
        ru = bu + au * ring * math.sin(angle_r)
        rv = bv + av * ring * math.cos(angle_r)
        r = _ellipse_radius(u - ru, v - rv, size * 0.6, size)
        tissue[r < 1.0] = BONE
        tissue[r < 0.65] = MARROW
    # Posterior mediastinum (oesophagus, aorta) and the spine with paraspinal muscle.
    au_, av_, ar = t.aorta
    su, sv, sr = t.spine
    mediastinum = _ellipse_radius(u - cu - 0.5 * (au_ + su), v - cv - 0.5 * (av_ + sv),
                                  0.5 * abs(su - au_) + sr + 8.0, 0.5 * abs(sv - av_) + sr + 10.0) < 1.0
    tissue[mediastinum & interior] = SOFT
    r = np.hypot(u - cu - su, v - cv - sv)
    tissue[_ellipse_radius(u - cu - su - 10.0, v - cv - sv, sr + 10.0, sr + 22.0) < 1.0] = MUSCLE
    tissue[r < sr] = BONE
    tissue[r < sr - 2.0] = MARROW
    r = np.hypot(u - cu - au_, v - cv - av_)
    tissue[r < ar + 1.2] = MUSCLE
    tissue[r < ar] = BLOOD
    return tissue, interior & ((tissue == LUNG) | (tissue == SOFT))


def _patchwork(tissue: np.ndarray, region: np.ndarray, field: np.ndarray) -> None:
    """Split a soft-tissue region into fatty (bright) and muscle-like (dark) patches."""
    tissue[region & (field > 1.7)] = FAT
    tissue[region & (field < -1.9)] = MUSCLE


def _lv_axis_point(s: _Subject, z: float) -> tuple[float, float, float]:
    """In-plane position of the LV long axis in the plane at ``z`` and that plane's height above the apex."""
    t = (z - s.base_centre[2]) / s.axis[2]
    point = s.base_centre + t * s.axis
    apex_z = s.base_centre[2] + s.l_epi * s.axis[2]
    return float(point[0]), float(point[1]), float(z - apex_z)


def _paint_abdomen(s: _Subject, u: np.ndarray, v: np.ndarray, z: float, tissue: np.ndarray,
                   interior: np.ndarray, organ_field: np.ndarray) -> None:
    """Diaphragm, liver and other abdominal organs below a dome that rises towards the apex.

    ``u``, ``v`` are chest-frame coordinates already shifted for the slice's breath hold, so the abdomen
    moves with the heart.
    """
    t = s.torso
    gap, rise, curvature, dome = t.diaphragm
    cu, cv, above_apex = _lv_axis_point(s, z)
    cu, cv = (float(c) for c in _chest_frame(s, np.float64(cu), np.float64(cv)))
    ur, vr = u - cu, v - cv
    boundary = gap + rise * max(above_apex, 0.0) + curvature * (vr - dome) ** 2
    tissue[(ur > boundary - 5.0) & interior] = MUSCLE
    abdomen = (ur > boundary) & interior
    tissue[abdomen] = SOFT
    _patchwork(tissue, abdomen, organ_field)
    for ou, ov, oau, oav, organ in t.organs:
        blob = _ellipse_radius(u - float(s.base_centre[0]) - ou, v - float(s.base_centre[1]) - ov, oau, oav) < 1.0
        tissue[blob & abdomen] = organ
    liver = abdomen & (vr > t.liver_side + 10.0 * np.sin(ur / 25.0))
    tissue[liver] = LIVER
    tissue[liver & (organ_field > 1.8)] = BLOOD  # hepatic vessels


def _random_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Smooth Gaussian random field with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    return field / (field.std() + 1e-6)


def _lung_vessels(rng: np.random.Generator, shape: tuple[int, int], du: float) -> np.ndarray:
    """Boolean map of small round vessels (blood) to scatter over the lungs."""
    impulses = np.zeros(shape, dtype=np.float32)
    count = int(shape[0] * shape[1] * du * du / 2000.0)
    rows = rng.integers(0, shape[0], size=count)
    cols = rng.integers(0, shape[1], size=count)
    impulses[rows, cols] = rng.uniform(0.05, 1.0, size=count) ** 2
    blurred = ndimage.gaussian_filter(impulses, 1.5 / du)
    return blurred > 0.02


# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------


def _sub_slice_offsets(subject: _Subject, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (mm) and weights of thin planes across the slice thickness (smooth slice profile)."""
    offsets = (np.arange(count) - (count - 1) / 2.0) * (subject.thickness / count)
    weights = np.cos(0.5 * np.pi * offsets / (0.5 * subject.thickness + 1e-6)) ** 0.5 if count > 1 else np.ones(1)
    return offsets, weights / weights.sum()


def _render_labels(subject: _Subject) -> np.ndarray:
    """Label map from the central plane of every slice (what an annotator contours)."""
    nu, nv = subject.matrix
    labels = np.zeros((nu, nv, subject.n_slices), dtype=np.uint8)
    u, v = _plane_grid(subject)
    win = _heart_window(subject)
    for k in range(subject.n_slices):
        shift = subject.slice_shifts[k]
        plane = _heart_plane(subject, u[win] - shift[0], v[win] - shift[1], _slice_z(subject, k))
        labels[win[0], win[1], k] = plane.labels
    return labels


def _fit_scar_size(subject: _Subject, labels: np.ndarray) -> _Subject:
    """Grow or shrink the scar so its volume and burden stay inside the range seen in real cohorts."""
    if subject.scar is None:
        return subject
    voxel_ml = float(np.prod(subject.spacing)) / 1000.0
    myo_ml = float(np.isin(labels, (2, 3, 4)).sum()) * voxel_ml
    scar_ml = float(np.isin(labels, (3, 4)).sum()) * voxel_ml
    target_low = max(_MIN_SCAR_ML, _MIN_SCAR_BURDEN * myo_ml)
    target_high = _MAX_SCAR_BURDEN * myo_ml
    factor = 1.0
    if scar_ml < target_low:
        factor = math.sqrt(target_low / max(scar_ml, 0.3)) * 1.15
    elif scar_ml > target_high:
        factor = math.sqrt(target_high / scar_ml) * 0.95
    if factor == 1.0:
        return subject
    return replace(subject, scar=subject.scar.scaled(min(factor, 2.5)))


def _tissue_tables(s: _Subject) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-tissue signed IR signal and its fine / coarse texture gains, indexed by tissue code."""
    base = np.zeros(_N_TISSUES, dtype=np.float32)
    fine = np.zeros(_N_TISSUES, dtype=np.float32)
    coarse = np.zeros(_N_TISSUES, dtype=np.float32)
    for tissue in range(_N_TISSUES):
        if tissue == AIR:
            continue
        signal = _PROTON_DENSITY[tissue] * float(_inversion_recovery(s.t1[tissue], s.ti_ms, s.recovery_ms))
        base[tissue] = signal
        fine[tissue] = signal * _TEXTURE[tissue][0]
        coarse[tissue] = signal * _TEXTURE[tissue][1]
    return base, fine, coarse


def _bias_field(s: _Subject, u: np.ndarray, v: np.ndarray, z: float) -> np.ndarray:
    """Smooth multiplicative coil sensitivity: exp of a low-order polynomial over the field of view."""
    c = s.bias_coefficients
    un, vn, zn = u / 150.0, v / 150.0, z / 60.0
    return np.exp(c[0] * un + c[1] * vn + 0.5 * c[2] * un * un + 0.5 * c[3] * vn * vn + 0.5 * c[4] * un * vn
                  + 0.3 * c[5] * zn).astype(np.float32)


def _render_image(s: _Subject, config: PhantomConfig, rng: np.random.Generator) -> np.ndarray:
    """Noise-free signal per slice (sub-slice average, PSF, bias), then Rician noise."""
    nu, nv = s.matrix
    u, v = _plane_grid(s)
    win = _heart_window(s)
    base, fine_gain, coarse_gain = _tissue_tables(s)
    offsets, weights = _sub_slice_offsets(s, config.sub_slices)
    sigma = s.noise_fraction * abs(base[BLOOD])
    image = np.empty((nu, nv, s.n_slices), dtype=np.float32)
    organ_scale_px = 12.0 / s.spacing[0]
    shared_field = _random_field(rng, (nu, nv), organ_scale_px)
    for k in range(s.n_slices):
        z = _slice_z(s, k)
        organ_field = 0.8 * shared_field + 0.6 * _random_field(rng, (nu, nv), organ_scale_px)
        static, thorax = _static_background(s, *_chest_frame(s, u, v), z, organ_field)
        fine = _random_field(rng, (nu, nv), 1.0)
        coarse = _random_field(rng, (nu, nv), 5.0)
        vessels = _lung_vessels(rng, (nu, nv), s.spacing[0])
        static[(static == LUNG) & vessels] = BLOOD
        shift = s.slice_shifts[k]
        us, vs = u - np.float32(shift[0]), v - np.float32(shift[1])
        chest_u, chest_v = _chest_frame(s, us, vs)
        signal = np.zeros((nu, nv), dtype=np.float32)
        for offset, weight in zip(offsets, weights):
            tissue = static.copy()
            _paint_abdomen(s, chest_u, chest_v, z + offset, tissue, thorax, organ_field)
            heart = _heart_plane(s, us[win], vs[win], z + offset)
            window = tissue[win]
            window[heart.mask] = heart.tissue[heart.mask]
            signal += weight * (base[tissue] + fine_gain[tissue] * fine + coarse_gain[tissue] * coarse)
        signal = ndimage.gaussian_filter(signal, config.psf_sigma_px) if config.psf_sigma_px > 0 else signal
        signal *= _bias_field(s, u, v, z)
        real = signal + rng.normal(0.0, sigma, size=signal.shape).astype(np.float32)
        imag = rng.normal(0.0, sigma, size=signal.shape).astype(np.float32)
        image[:, :, k] = np.sqrt(real * real + imag * imag) * _SIGNAL_SCALE
    return image


def _apply_padding(image: np.ndarray, labels: np.ndarray, config: PhantomConfig, rng: np.random.Generator) -> None:
    """Zero a band along the phase-encoding direction in some subjects (reduced phase field of view)."""
    if rng.random() >= config.padding_probability:
        return
    axis = int(rng.integers(0, 2))
    size = image.shape[axis]
    heart = np.nonzero(labels.any(axis=(1 - axis, 2)))[0]
    first, last = (int(heart.min()), int(heart.max())) if heart.size else (size // 2, size // 2)
    total = rng.uniform(0.04, 0.25) * size
    split = rng.uniform(0.0, 1.0) if rng.random() < 0.4 else float(rng.integers(0, 2))
    low = int(min(total * split, max(first - 8, 0)))
    high = int(min(total * (1 - split), max(size - 1 - last - 8, 0)))
    index = [slice(None)] * 3
    if low > 0:
        index[axis] = slice(0, low)
        image[tuple(index)] = 0.0
    if high > 0:
        index[axis] = slice(size - high, size)
        image[tuple(index)] = 0.0


def _affine(s: _Subject) -> np.ndarray:
    """Voxel -> world (mm): spacing on the diagonal, world origin at the volume centre."""
    affine = np.diag([s.spacing[0], s.spacing[1], s.spacing[2], 1.0])
    shape = (s.matrix[0], s.matrix[1], s.n_slices)
    affine[:3, 3] = [-(n - 1) / 2.0 * d for n, d in zip(shape, s.spacing)]
    return affine
