"""Rendering: the label map of a subject's stack and its image (partial volume, point-spread function,
coil bias and Rician noise)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lgelib.data.phantom.background import chest_frame, lung_vessels, paint_abdomen, random_field, static_background
from lgelib.data.phantom.config import PhantomSettings
from lgelib.data.phantom.contrast import BLOOD, LUNG, tissue_tables
from lgelib.data.phantom.heart import heart_plane, heart_window
from lgelib.data.phantom.subject import Subject

_SIGNAL_SCALE = 1000.0  # arbitrary units of the magnitude image


def _plane_grid(subject: Subject) -> tuple[np.ndarray, np.ndarray]:
    """In-plane coordinates (mm) of the voxel centres, relative to the image centre."""
    nu, nv = subject.matrix
    du = subject.spacing[0]
    u = ((np.arange(nu, dtype=np.float32) - (nu - 1) / 2.0) * du)[:, None]
    v = ((np.arange(nv, dtype=np.float32) - (nv - 1) / 2.0) * du)[None, :]
    return np.broadcast_to(u, (nu, nv)), np.broadcast_to(v, (nu, nv))


def _slice_z(subject: Subject, k: int) -> float:
    """Centre of slice ``k`` along the slice axis (mm, image frame)."""
    return (k - (subject.n_slices - 1) / 2.0) * subject.spacing[2]


def _sub_slice_offsets(subject: Subject, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (mm) and weights of thin planes across the slice thickness (smooth slice profile)."""
    offsets = (np.arange(count) - (count - 1) / 2.0) * (subject.thickness / count)
    weights = np.cos(0.5 * np.pi * offsets / (0.5 * subject.thickness + 1e-6)) ** 0.5 if count > 1 else np.ones(1)
    return offsets, weights / weights.sum()


def render_labels(subject: Subject) -> np.ndarray:
    """Label map from the central plane of every slice (what an annotator contours)."""
    nu, nv = subject.matrix
    labels = np.zeros((nu, nv, subject.n_slices), dtype=np.uint8)
    u, v = _plane_grid(subject)
    win = heart_window(subject)
    for k in range(subject.n_slices):
        shift = subject.slice_shifts[k]
        plane = heart_plane(subject, u[win] - shift[0], v[win] - shift[1], _slice_z(subject, k))
        labels[win[0], win[1], k] = plane.labels
    return labels


def _bias_field(s: Subject, u: np.ndarray, v: np.ndarray, z: float) -> np.ndarray:
    """Smooth multiplicative coil sensitivity: exp of a low-order polynomial over the field of view."""
    c = s.bias_coefficients
    un, vn, zn = u / 150.0, v / 150.0, z / 60.0
    return np.exp(
        c[0] * un + c[1] * vn + 0.5 * c[2] * un * un + 0.5 * c[3] * vn * vn + 0.5 * c[4] * un * vn + 0.3 * c[5] * zn
    ).astype(np.float32)


def render_image(s: Subject, config: PhantomSettings, rng: np.random.Generator) -> np.ndarray:
    """Noise-free signal per slice (sub-slice average, PSF, bias), then Rician noise."""
    nu, nv = s.matrix
    u, v = _plane_grid(s)
    win = heart_window(s)
    base, fine_gain, coarse_gain = tissue_tables(s.t1, s.ti_ms, s.recovery_ms)
    offsets, weights = _sub_slice_offsets(s, config.sub_slices)
    sigma = s.noise_fraction * abs(base[BLOOD])
    image = np.empty((nu, nv, s.n_slices), dtype=np.float32)
    organ_scale_px = 12.0 / s.spacing[0]
    shared_field = random_field(rng, (nu, nv), organ_scale_px)
    for k in range(s.n_slices):
        z = _slice_z(s, k)
        organ_field = 0.8 * shared_field + 0.6 * random_field(rng, (nu, nv), organ_scale_px)
        static, thorax = static_background(s, *chest_frame(s, u, v), z, organ_field)
        fine = random_field(rng, (nu, nv), 1.0)
        coarse = random_field(rng, (nu, nv), 5.0)
        vessels = lung_vessels(rng, (nu, nv), s.spacing[0])
        static[(static == LUNG) & vessels] = BLOOD
        shift = s.slice_shifts[k]
        us, vs = u - np.float32(shift[0]), v - np.float32(shift[1])
        chest_u, chest_v = chest_frame(s, us, vs)
        signal = np.zeros((nu, nv), dtype=np.float32)
        for offset, weight in zip(offsets, weights):
            tissue = static.copy()
            paint_abdomen(s, chest_u, chest_v, z + offset, tissue, thorax, organ_field)
            heart = heart_plane(s, us[win], vs[win], z + offset)
            window = tissue[win]
            window[heart.mask] = heart.tissue[heart.mask]
            signal += weight * (base[tissue] + fine_gain[tissue] * fine + coarse_gain[tissue] * coarse)
        signal = ndimage.gaussian_filter(signal, config.psf_sigma_px) if config.psf_sigma_px > 0 else signal
        signal *= _bias_field(s, u, v, z)
        real = signal + rng.normal(0.0, sigma, size=signal.shape).astype(np.float32)
        imag = rng.normal(0.0, sigma, size=signal.shape).astype(np.float32)
        image[:, :, k] = np.sqrt(real * real + imag * imag) * _SIGNAL_SCALE
    return image
