"""Putting cases on a canonical grid around the left ventricle, and mapping results back to the scan's grid.

Two steps, both recorded in a :class:`GridMapping`:

1. **Orientation** (lossless: axis permutation and flips only). The slice axis (largest voxel spacing) becomes
   axis 0, ordered base (index 0) to apex; rows and columns follow a fixed rule on the world axes (display
   convention: superior/anterior up, patient right on the left), so files stored in different voxel orders
   give the same array.
2. **Sampling** (axis-aligned scale and shift of oriented voxel indices). In-plane, a square field of view of
   ``rows x inplane_spacing_mm`` centred on the myocardium; through-plane (``z_mode``):

   - ``"lv_extent"`` (default): the canonical slices span the myocardium from its most basal to its most
     apical slice, so canonical slice k means the same relative level in every case (what INRs and the
     diffusion model need); slices between native ones are interpolated.
   - ``"native"``: the native slices themselves, centred on the LV and zero-padded or cropped to the count.

Images are normalised (:func:`~lgelib.data.intensity.normalize_intensity`) and interpolated linearly. Masks are
interpolated as per-slice signed distance maps and thresholded at zero (shape-based interpolation), which keeps
them binary and smooth instead of blocky or speckled. Fibrosis is kept inside the myocardium.

The canonical NIfTI affine is the scan's affine composed with both steps, so canonical volumes sit in the right
place in world space; :func:`to_original_grid` maps any canonical volume (e.g. a prediction) back exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation
from scipy import ndimage
from skimage.morphology import convex_hull_image

from lgelib.data.cases import ScanCase
from lgelib.data.intensity import normalize_intensity
from lgelib.data.manifest import SliceOrder
from lgelib.data.nifti import slice_axis, voxel_spacing
from lgelib.errors import DataError, Problem

ZMode = Literal["lv_extent", "native"]
_OUTSIDE_MM = 1e3  # signed distance used for "no mask anywhere near": far outside


@dataclass(frozen=True)
class GridSettings:
    """The canonical grid: ``shape`` = (slices, rows, cols), square in-plane pixels of ``inplane_spacing_mm``."""

    shape: tuple[int, int, int] = (12, 128, 128)
    inplane_spacing_mm: float = 1.25
    z_mode: ZMode = "lv_extent"
    intensity_percentiles: tuple[float, float] = (1.0, 99.0)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 2:
            raise ValueError(f"grid shape must be 3 sizes >= 2, got {self.shape}")
        if not self.inplane_spacing_mm > 0:
            raise ValueError(f"inplane_spacing_mm must be positive, got {self.inplane_spacing_mm}")
        if self.z_mode not in ("lv_extent", "native"):
            raise ValueError(f"z_mode must be 'lv_extent' or 'native', got {self.z_mode!r}")


@dataclass(frozen=True)
class GridMapping:
    """Everything needed to go from a scan's voxel grid to the canonical grid and back (JSON-serialisable).

    ``ornt`` is nibabel's orientation transform from the file's axes to oriented axes; an oriented voxel index
    equals ``offset + scale * canonical_index`` axis by axis.
    """

    case_id: str
    original_shape: tuple[int, int, int]
    original_affine: tuple[tuple[float, ...], ...]
    ornt: tuple[tuple[int, int], ...]
    oriented_shape: tuple[int, int, int]
    oriented_spacing: tuple[float, float, float]
    offset: tuple[float, float, float]
    scale: tuple[float, float, float]
    canonical_shape: tuple[int, int, int]
    slice_order: Literal["base_first", "apex_first"]
    notes: tuple[str, ...] = field(default=())

    @property
    def canonical_affine(self) -> np.ndarray:
        """Voxel-to-world affine of the canonical volume."""
        sampling = np.diag([*self.scale, 1.0])
        sampling[:3, 3] = self.offset
        oriented_to_original = inv_ornt_aff(np.asarray(self.ornt, dtype=float), self.original_shape)
        return np.asarray(self.original_affine) @ oriented_to_original @ sampling

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "GridMapping":
        data = json.loads(text)
        tuples = {k: _to_tuple(v) for k, v in data.items()}
        return cls(**tuples)


def _to_tuple(value: object) -> object:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else value


@dataclass
class CanonicalCase:
    """A case on the canonical grid: image in [0, 1] and boolean masks, all shaped (slices, rows, cols)."""

    case_id: str
    image: np.ndarray
    myocardium: np.ndarray
    fibrosis: np.ndarray
    mapping: GridMapping
    warnings: list[Problem] = field(default_factory=list)

    @property
    def affine(self) -> np.ndarray:
        return self.mapping.canonical_affine


# --- orientation -------------------------------------------------------------------------------------------


def _display_orientation(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """nibabel ornt taking the file's axes to (slice, row, col), slice direction still as stored."""
    through_plane = slice_axis(voxel_spacing(affine))
    world = io_orientation(affine)  # per file axis: (closest world axis 0=x/R 1=y/A 2=z/S, sign)
    inplane = [a for a in range(3) if a != through_plane]
    # Rows follow the world axis drawn vertically (S/I over A/P over R/L); both in-plane axes point the way a
    # reader expects on screen: towards inferior/posterior (down) and towards the patient's left (right).
    row_axis, col_axis = sorted(inplane, key=lambda a: world[a, 0], reverse=True)
    ornt = np.zeros((3, 2))
    ornt[through_plane] = (0, 1)
    ornt[row_axis] = (1, -world[row_axis, 1])
    ornt[col_axis] = (2, -world[col_axis, 1])
    return ornt


def _lv_area_per_slice(myocardium: np.ndarray) -> np.ndarray:
    return np.array([convex_hull_image(s).sum() if s.any() else 0 for s in myocardium], dtype=float)


def base_is_first(myocardium: np.ndarray) -> bool:
    """Whether slice 0 is basal: the LV's cross-section (convex hull of the myocardium) shrinks towards the apex."""
    area = _lv_area_per_slice(myocardium)
    levels = np.nonzero(area)[0]
    if levels.size < 2:
        return True
    slope = np.polyfit(levels, area[levels], 1)[0]
    return bool(slope <= 0)


def orient_case(
    case: ScanCase, slice_order: SliceOrder = "auto"
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, str]:
    """Oriented (slice, row, col) image and masks, the ornt used, and the slice order found in the file."""
    ornt = _display_orientation(case.affine, case.image.shape)
    myocardium = apply_orientation(case.myocardium, ornt)
    if slice_order == "auto":
        order = "base_first" if base_is_first(myocardium) else "apex_first"
    else:
        order = slice_order
    if order == "apex_first":
        ornt[int(np.nonzero(ornt[:, 0] == 0)[0][0]), 1] = -1
    arrays = [apply_orientation(a, ornt) for a in (case.image, case.myocardium, case.fibrosis)]
    return arrays[0], arrays[1:], ornt, order


# --- sampling ----------------------------------------------------------------------------------------------


def signed_distance_per_slice(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Signed distance (mm) to the mask's border within each slice: negative inside, positive outside."""
    out = np.empty(mask.shape, dtype=np.float32)
    for index, plane in enumerate(mask):
        if not plane.any():
            out[index] = _OUTSIDE_MM
        elif plane.all():
            out[index] = -_OUTSIDE_MM
        else:
            outside = ndimage.distance_transform_edt(~plane, sampling=spacing)
            inside = ndimage.distance_transform_edt(plane, sampling=spacing)
            out[index] = outside - inside
    return out


def _sample(
    volume: np.ndarray, offset: np.ndarray, scale: np.ndarray, shape: tuple[int, ...], cval: float
) -> np.ndarray:
    """Linear interpolation of ``volume`` at indices ``offset + scale * grid_index`` (axis-aligned)."""
    axes = [offset[a] + scale[a] * np.arange(shape[a]) for a in range(3)]
    coordinates = np.stack(np.meshgrid(*axes, indexing="ij"))
    return ndimage.map_coordinates(volume, coordinates, order=1, mode="constant", cval=cval)


def _resample_mask(
    mask: np.ndarray, spacing: tuple[float, float], offset: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    distance = signed_distance_per_slice(mask, spacing)
    return _sample(distance, offset, scale, shape, cval=_OUTSIDE_MM) < 0


def _sampling(
    grid: GridSettings, myocardium: np.ndarray, spacing: np.ndarray, case_id: str
) -> tuple[np.ndarray, np.ndarray]:
    levels = np.nonzero(myocardium.any(axis=(1, 2)))[0]
    if levels.size < 2:
        raise DataError(
            Problem(
                "error", f"myocardium is present in {levels.size} slice(s); a volume needs at least 2", case_id=case_id
            )
        )
    slices, rows, cols = grid.shape
    centre = np.argwhere(myocardium).mean(axis=0)
    scale = np.array([0.0, grid.inplane_spacing_mm / spacing[1], grid.inplane_spacing_mm / spacing[2]])
    offset = np.array([0.0, centre[1] - scale[1] * (rows - 1) / 2, centre[2] - scale[2] * (cols - 1) / 2])
    if grid.z_mode == "lv_extent":
        scale[0] = (levels[-1] - levels[0]) / (slices - 1)
        offset[0] = levels[0]
    else:
        scale[0] = 1.0
        offset[0] = np.floor((levels[0] + levels[-1]) / 2 - (slices - 1) / 2)
    return offset, scale


def to_canonical(case: ScanCase, grid: GridSettings, slice_order: SliceOrder = "auto") -> CanonicalCase:
    """Orient, normalise and resample a case onto ``grid``; record the mapping back."""
    image, (myocardium, fibrosis), ornt, order = orient_case(case, slice_order)
    spacing = np.asarray(case.spacing)[np.argsort(ornt[:, 0])]
    offset, scale = _sampling(grid, myocardium, spacing, case.case_id)
    normalised = normalize_intensity(image, grid.intensity_percentiles)
    canonical_image = _sample(normalised, offset, scale, grid.shape, cval=0.0).astype(np.float32)
    inplane = (float(spacing[1]), float(spacing[2]))
    canonical_myo = _resample_mask(myocardium, inplane, offset, scale, grid.shape)
    canonical_fib = _resample_mask(fibrosis, inplane, offset, scale, grid.shape)
    warnings = list(case.warnings)
    notes = []
    outside = int((canonical_fib & ~canonical_myo).sum())
    if outside:
        notes.append(f"{outside} resampled fibrosis voxels fell outside the resampled myocardium and were dropped")
        canonical_fib &= canonical_myo
    notes.append(f"slices stored {order.replace('_', ' ')} in the file")
    mapping = GridMapping(
        case_id=case.case_id,
        original_shape=tuple(int(s) for s in case.image.shape),  # type: ignore[arg-type]
        original_affine=tuple(tuple(float(v) for v in row) for row in case.affine),
        ornt=tuple((int(a), int(f)) for a, f in ornt),
        oriented_shape=tuple(int(s) for s in image.shape),  # type: ignore[arg-type]
        oriented_spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        offset=tuple(float(v) for v in offset),  # type: ignore[arg-type]
        scale=tuple(float(v) for v in scale),  # type: ignore[arg-type]
        canonical_shape=grid.shape,
        slice_order=order,  # type: ignore[arg-type]
        notes=tuple(notes),
    )
    return CanonicalCase(case.case_id, canonical_image, canonical_myo, canonical_fib, mapping, warnings)


def inverse_ornt(ornt: np.ndarray) -> np.ndarray:
    """The nibabel ornt that undoes ``ornt``."""
    inverse = np.zeros_like(ornt)
    for axis, (target, flip) in enumerate(ornt):
        inverse[int(target)] = (axis, flip)
    return inverse


def to_original_grid(volume: np.ndarray, mapping: GridMapping, is_mask: bool) -> np.ndarray:
    """Map a canonical volume (image, mask or prediction) back onto the scan's own voxel grid.

    Outside the canonical field of view (e.g. slices beyond the LV in ``lv_extent`` mode) the result is 0 or
    False. Masks are interpolated as signed distance maps, images linearly.
    """
    volume = np.asarray(volume)
    if volume.shape != tuple(mapping.canonical_shape):
        raise ValueError(
            f"{mapping.case_id}: volume shape {volume.shape} is not the canonical {mapping.canonical_shape}"
        )
    scale = np.asarray(mapping.scale, dtype=float)
    offset = np.asarray(mapping.offset, dtype=float)
    # Oriented index -> canonical index; a zero scale (one level) cannot be inverted and does not occur.
    inverse_scale = 1.0 / scale
    inverse_offset = -offset / scale
    if is_mask:
        spacing = float(mapping.scale[1] * mapping.oriented_spacing[1])
        source = signed_distance_per_slice(volume.astype(bool), (spacing, spacing))
        oriented = _sample(source, inverse_offset, inverse_scale, mapping.oriented_shape, cval=_OUTSIDE_MM) < 0
    else:
        oriented = _sample(volume.astype(np.float32), inverse_offset, inverse_scale, mapping.oriented_shape, cval=0.0)
    return apply_orientation(oriented, inverse_ornt(np.asarray(mapping.ornt, dtype=float)))
