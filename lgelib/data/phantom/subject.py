"""Subject parameters: the per-subject description of the heart, the torso around it and the acquisition,
drawn from the case's random generator in a fixed order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lgelib.data.phantom.config import PhantomSettings
from lgelib.data.phantom.contrast import BLOOD, FAT, LIVER, MUSCLE, SOFT, sample_contrast
from lgelib.data.phantom.harmonics import random_harmonics
from lgelib.data.phantom.scar import Scar, sample_scar

# Extremes of LV size seen in real cohorts, and the most slices a real stack holds with myocardium.
_MAX_MYOCARDIUM_ML = 300.0
_MIN_MYOCARDIUM_ML = 65.0
_MAX_CAVITY_ML = 420.0
_MIN_CAVITY_ML = 55.0
_MAX_MYOCARDIUM_SLICES = 10


@dataclass(frozen=True)
class _Torso:
    """Anatomy around the heart (mm). u runs anterior -> posterior/inferior (array axis 0), v runs from the
    LV's lateral wall towards the RV / patient's right (array axis 1); positions marked "LV" are relative
    to the LV base centre in the plane."""

    body: tuple[float, float, float, float, float]  # centre u, v (image frame), semi-axes u, v, squareness
    body_ripple: tuple[tuple[float, float], ...]
    subcut_fat: tuple[float, float]  # anterior, posterior thickness
    chest_wall: float  # muscle thickness inside the fat
    lungs: tuple[tuple[float, float, float, float], ...]  # LV: left and right lung centre u, v, semi-axes u, v
    lung_ripple: tuple[tuple[tuple[float, float], ...], ...]
    diaphragm: tuple[float, float, float, float]  # gap beyond the LV axis at the apex, rise per mm towards
    # the base, dome curvature (1/mm), dome offset along v
    liver_side: float  # LV: v beyond which the abdomen is liver
    organs: tuple[tuple[float, float, float, float, int], ...]  # LV: abdominal blobs u, v, au, av, tissue
    aorta: tuple[float, float, float]  # LV: centre u, v, radius
    spine: tuple[float, float, float]  # LV: centre u, v, radius
    ribs: tuple[tuple[float, float], ...]  # angle around the body (rad), size


@dataclass(frozen=True)
class Subject:
    """All per-subject parameters (mm, ms, degrees)."""

    matrix: tuple[int, int]
    spacing: tuple[float, float, float]
    thickness: float
    n_slices: int
    slice_shifts: np.ndarray  # (n_slices, 2) breath-hold shifts, mm
    # left ventricle
    base_centre: np.ndarray  # (3,) mm in the image frame
    axis: np.ndarray  # (3,) unit vector base -> apex
    e_septal: np.ndarray  # (3,) unit, towards the septum / RV
    e_anterior: np.ndarray  # (3,) unit, towards the anterior wall
    r_epi: float
    r_endo: float
    l_epi: float
    l_endo: float
    q: float
    ellipse_ratio: float
    ellipse_angle: float  # rad
    endo_ripple: tuple[tuple[float, float], ...]
    papillary: tuple[tuple[float, float], ...]  # (angle rad, radius mm)
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
    fat_angle: float  # relative size of the inferior-groove fat
    roll: float  # in-plane rotation (rad) of the chest layout
    torso: _Torso  # everything around the heart
    # contrast
    t1: dict[int, float]
    ti_ms: float
    recovery_ms: float
    noise_fraction: float
    bias_coefficients: np.ndarray
    scar: Scar | None


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
    l_endo = l_epi - float(rng.uniform(3.5, 6.5))  # apical wall thickness
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
    axis = np.array([math.sin(tilt) * math.cos(tilt_dir), math.sin(tilt) * math.sin(tilt_dir), -math.cos(tilt)])
    # Septum / RV towards +v (array axis 1) and somewhat anterior (-u), as in the real stacks.
    # The whole chest is rolled in plane by a small angle; anatomy is laid out in the unrolled frame.
    roll = math.radians(float(np.clip(rng.normal(0.0, 15.0), -30.0, 30.0)))
    rv_dir = math.radians(rng.uniform(10.0, 35.0))
    towards_rv = _unroll(np.array([-math.sin(rv_dir), math.cos(rv_dir)]), roll)
    e_septal = _unit(towards_rv - towards_rv.dot(axis) * axis)
    anterior = _unroll(np.array([-1.0, 0.0]), roll)
    e_anterior = _unit(anterior - anterior.dot(axis) * axis - anterior.dot(e_septal) * e_septal)
    return tilt, axis, e_septal, e_anterior, roll


def _sample_stack(
    rng: np.random.Generator,
    config: PhantomSettings,
    dz: float,
    r_epi: float,
    l_epi: float,
    tilt: float,
    axis: np.ndarray,
) -> tuple[int, np.ndarray, np.ndarray]:
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
    shifts = np.clip(
        rng.normal(0.0, config.breath_hold_shift_mm, size=(n_slices, 2)),
        -2.5 * config.breath_hold_shift_mm,
        2.5 * config.breath_hold_shift_mm,
    )
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


def sample_subject(rng: np.random.Generator, config: PhantomSettings) -> Subject:
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
    t1, recovery, ti, bias = sample_contrast(rng, config)
    scar = sample_scar(rng, config)
    return Subject(
        matrix=(int(nu), int(nv)),
        spacing=(du, du, dz),
        thickness=thickness,
        n_slices=n_slices,
        slice_shifts=shifts,
        base_centre=base_centre,
        axis=axis,
        e_septal=e_septal,
        e_anterior=e_anterior,
        r_epi=r_epi,
        r_endo=r_endo,
        l_epi=l_epi,
        l_endo=l_endo,
        q=q,
        ellipse_ratio=float(rng.uniform(1.0, 1.2)),
        ellipse_angle=float(rng.uniform(0, np.pi)),
        endo_ripple=random_harmonics(rng, 6, 0.03),
        papillary=papillary,
        insertion_deg=insertion,
        rv_centre=rv_centre,
        rv_a=rv_a,
        rv_b=rv_b,
        rv_wall=float(rng.uniform(2.5, 4.0)),
        rv_length=l_epi * float(rng.uniform(0.65, 0.85)),
        fat_base=float(rng.uniform(-1.0, 1.5)),
        fat_extra=float(rng.uniform(3.0, 9.0)),
        fat_angle=float(rng.uniform(0.3, 1.0)),
        roll=roll,
        torso=torso,
        t1=t1,
        ti_ms=ti,
        recovery_ms=recovery,
        noise_fraction=float(rng.uniform(*config.noise_fraction)),
        bias_coefficients=bias,
        scar=scar,
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
    diaphragm = (
        float(rng.uniform(r_epi * 0.1, r_epi * 0.6)),
        float(rng.uniform(0.15, 0.6)),
        float(rng.uniform(0.004, 0.01)),
        float(rng.uniform(-30.0, 30.0)),
    )
    left_v, right_v = float(rng.uniform(35.0, 70.0)), float(rng.uniform(28.0, 55.0))
    lungs = (
        (
            float(rng.uniform(-25.0, 15.0)),
            -(r_epi + float(rng.uniform(2.0, 15.0)) + left_v),
            float(rng.uniform(50.0, 85.0)),
            left_v,
        ),
        (
            float(rng.uniform(-15.0, 25.0)),
            rv_reach + float(rng.uniform(5.0, 25.0)) + right_v,
            float(rng.uniform(40.0, 70.0)),
            right_v,
        ),
    )
    organ_tissues = (SOFT, SOFT, MUSCLE, FAT, LIVER, BLOOD)
    organs = tuple(
        (
            float(rng.uniform(r_epi + 10.0, r_epi + 110.0)),
            float(rng.uniform(-130.0, 40.0)),
            float(rng.uniform(10.0, 35.0)),
            float(rng.uniform(10.0, 40.0)),
            int(organ_tissues[int(rng.integers(0, len(organ_tissues)))]),
        )
        for _ in range(int(rng.integers(2, 6)))
    )
    aorta = (r_epi + float(rng.uniform(30.0, 60.0)), -float(rng.uniform(20.0, 50.0)), float(rng.uniform(9.0, 13.0)))
    spine = (
        aorta[0] + float(rng.uniform(25.0, 50.0)),
        aorta[1] + float(rng.uniform(0.0, 30.0)),
        float(rng.uniform(15.0, 20.0)),
    )
    ribs = tuple(
        (float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(5.0, 9.0))) for _ in range(int(rng.integers(4, 9)))
    )
    return _Torso(
        body=body,
        body_ripple=random_harmonics(rng, 4, 0.04),
        subcut_fat=(float(rng.uniform(5.0, 18.0)), float(rng.uniform(10.0, 30.0))),
        chest_wall=float(rng.uniform(6.0, 14.0)),
        lungs=lungs,
        lung_ripple=(random_harmonics(rng, 4, 0.15), random_harmonics(rng, 4, 0.15)),
        diaphragm=diaphragm,
        liver_side=float(rng.uniform(-30.0, 10.0)),
        organs=organs,
        aorta=aorta,
        spine=spine,
        ribs=ribs,
    )
