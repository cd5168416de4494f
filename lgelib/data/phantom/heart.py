"""Geometry of one plane: the heart window, LV and RV shells, epicardial fat, papillary muscles and the
scar and MVO masks in the myocardium."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lgelib.data.phantom.contrast import BLOOD, FAT, MVO, MYO, SCAR
from lgelib.data.phantom.scar import in_territory
from lgelib.data.phantom.subject import Subject


def heart_window(subject: Subject) -> tuple[slice, slice]:
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
    return (
        slice(max(0, int(u.min())), min(nu, int(u.max()) + 2)),
        slice(max(0, int(v.min())), min(nv, int(v.max()) + 2)),
    )


def _implicit_distance(
    rho: np.ndarray, h_pos: np.ndarray, radius: np.ndarray | float, length: float, q: float
) -> np.ndarray:
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
class HeartPlane:
    """Tissue codes and labels of the heart window in one plane."""

    tissue: np.ndarray
    labels: np.ndarray
    mask: np.ndarray  # where the heart (or its fat) overrides the background


def heart_plane(subject: Subject, u: np.ndarray, v: np.ndarray, z: float) -> HeartPlane:
    """Heart tissues and LV labels in one plane, given heart-window coordinates shifted for breath hold."""
    s = subject
    ru = u - np.float32(s.base_centre[0])
    rv = v - np.float32(s.base_centre[1])
    rz = float(z - s.base_centre[2])
    a0, a1, a2 = (float(c) for c in s.axis)
    s0, s1, s2 = (float(c) for c in s.e_septal)
    n0, n1, n2 = (float(c) for c in s.e_anterior)
    h = ru * a0 + rv * a1 + rz * a2  # depth below the base plane along the long axis
    x1 = ru * s0 + rv * s1 + rz * s2  # towards the septum / RV
    x2 = ru * n0 + rv * n1 + rz * n2  # towards the anterior wall
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
    return HeartPlane(tissue=tissue, labels=labels, mask=fat | rv_outer | atrium_wall | epi_in)


def _right_ventricle(
    s: Subject, x1: np.ndarray, x2: np.ndarray, h_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _epicardial_fat_thickness(s: Subject, theta: np.ndarray, h: np.ndarray, h_pos: np.ndarray) -> np.ndarray:
    """Thickness (mm) of fat outside the heart: interventricular and AV grooves, a little at the apex."""
    apex_pad = 2.0 * np.clip(h_pos / s.l_epi, 0, 1) ** 8
    av_groove = 5.0 * np.exp(-np.abs(h) / 6.0)
    # Interventricular grooves at the RV insertions (theta = +-insertion), with the coronary arteries' fat.
    insertion = math.radians(s.insertion_deg)
    lobes = np.exp(-((_wrap_rad(theta - insertion) / 0.45) ** 2)) + s.fat_angle * np.exp(
        -((_wrap_rad(theta + insertion) / 0.4) ** 2)
    )
    return s.fat_base + s.fat_extra * lobes + apex_pad + av_groove


def _paint_papillary(
    s: Subject, x1: np.ndarray, x2: np.ndarray, h_pos: np.ndarray, cavity: np.ndarray, tissue: np.ndarray
) -> None:
    """Two papillary muscles (myocardial signal inside the cavity) from mid-ventricle towards the apex."""
    frac = h_pos / s.l_endo
    extent = np.clip(1.0 - ((frac - 0.55) / 0.3) ** 2, 0.0, 1.0)
    if not (extent > 0).any():
        return
    r_level = s.r_endo * np.sqrt(np.clip(1.0 - frac**s.q, 0.0, 1.0))
    for angle, radius in s.papillary:
        r_pm = radius * np.sqrt(extent)
        centre = r_level - 0.8 * r_pm
        cu, cv = centre * math.cos(angle), centre * math.sin(angle)
        inside = ((x1 - cu) ** 2 + (x2 - cv) ** 2 < r_pm * r_pm) & cavity
        tissue[inside] = MYO


def _aha_angle(s: Subject, theta: np.ndarray) -> np.ndarray:
    """AHA angle in degrees: 0 at the anterior RV insertion, increasing through septum, inferior, lateral."""
    return (s.insertion_deg - np.degrees(theta)) % 360.0


def _scar_masks(
    s: Subject, theta: np.ndarray, h_pos: np.ndarray, d_endo: np.ndarray, d_epi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scar and MVO among myocardial voxels, from AHA angle, level and transmural depth."""
    scar_model = s.scar
    assert scar_model is not None
    phi = _aha_angle(s, theta)
    level = h_pos / s.l_endo  # 0 base, 1 cavity tip, > 1 apical cap
    depth = d_endo / (d_endo - d_epi + 1e-6)  # 0 endocardium, 1 epicardium
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
                inside &= in_territory(scar_model.territory, phi, level)
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
