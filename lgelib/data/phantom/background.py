"""Background anatomy: body wall, ribs, lungs, mediastinum, spine, aorta and the abdomen below the
diaphragm, plus the smooth random fields that give it texture."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from lgelib.data.phantom.contrast import AIR, BLOOD, BONE, FAT, LIVER, LUNG, MARROW, MUSCLE, SOFT
from lgelib.data.phantom.subject import Subject


def _ellipse_radius(du: np.ndarray, dv: np.ndarray, au: float, av: float) -> np.ndarray:
    """Normalised radius of offsets (du, dv) in an axis-aligned ellipse with semi-axes au, av (< 1 inside)."""
    return np.sqrt((du / au) ** 2 + (dv / av) ** 2)


def chest_frame(s: Subject, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-frame coordinates rotated about the LV by the subject's roll: the frame the torso is laid out in."""
    cu, cv = float(s.base_centre[0]), float(s.base_centre[1])
    c, sn = math.cos(s.roll), math.sin(s.roll)
    du, dv = u - cu, v - cv
    return cu + c * du + sn * dv, cv - sn * du + c * dv


def static_background(
    s: Subject, u: np.ndarray, v: np.ndarray, z: float, organ_field: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tissues that do not move with breathing: body wall, ribs, lungs, mediastinum, spine, aorta.

    ``u``, ``v`` are in the chest frame (see :func:`chest_frame`). ``organ_field`` is a smooth random
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
    mediastinum = (
        _ellipse_radius(
            u - cu - 0.5 * (au_ + su),
            v - cv - 0.5 * (av_ + sv),
            0.5 * abs(su - au_) + sr + 8.0,
            0.5 * abs(sv - av_) + sr + 10.0,
        )
        < 1.0
    )
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


def _lv_axis_point(s: Subject, z: float) -> tuple[float, float, float]:
    """In-plane position of the LV long axis in the plane at ``z`` and that plane's height above the apex."""
    t = (z - s.base_centre[2]) / s.axis[2]
    point = s.base_centre + t * s.axis
    apex_z = s.base_centre[2] + s.l_epi * s.axis[2]
    return float(point[0]), float(point[1]), float(z - apex_z)


def paint_abdomen(
    s: Subject,
    u: np.ndarray,
    v: np.ndarray,
    z: float,
    tissue: np.ndarray,
    interior: np.ndarray,
    organ_field: np.ndarray,
) -> None:
    """Diaphragm, liver and other abdominal organs below a dome that rises towards the apex.

    ``u``, ``v`` are chest-frame coordinates already shifted for the slice's breath hold, so the abdomen
    moves with the heart.
    """
    t = s.torso
    gap, rise, curvature, dome = t.diaphragm
    cu, cv, above_apex = _lv_axis_point(s, z)
    cu, cv = (float(c) for c in chest_frame(s, np.float64(cu), np.float64(cv)))
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


def random_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Smooth Gaussian random field with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    return field / (field.std() + 1e-6)


def lung_vessels(rng: np.random.Generator, shape: tuple[int, int], du: float) -> np.ndarray:
    """Boolean map of small round vessels (blood) to scatter over the lungs."""
    impulses = np.zeros(shape, dtype=np.float32)
    count = int(shape[0] * shape[1] * du * du / 2000.0)
    rows = rng.integers(0, shape[0], size=count)
    cols = rng.integers(0, shape[1], size=count)
    impulses[rows, cols] = rng.uniform(0.05, 1.0, size=count) ** 2
    blurred = ndimage.gaussian_filter(impulses, 1.5 / du)
    return blurred > 0.02
