"""Reading NIfTI volumes with nibabel, turning every failure into a :class:`Problem` that names the file."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from lgelib.errors import DataError, Problem


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along each array axis: the lengths of the affine's columns."""
    return tuple(float(s) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]


def slice_axis(spacing: tuple[float, ...] | np.ndarray) -> int:
    """The slice axis of a short-axis stack: the axis with the largest voxel spacing (to 1 um; ties: the last)."""
    return int(max(range(len(spacing)), key=lambda a: (round(float(spacing[a]), 3), a)))


@dataclass(frozen=True)
class Volume:
    """A 3D array with its voxel-to-world affine (mm) as stored in the file."""

    data: np.ndarray
    affine: np.ndarray
    path: Path

    @property
    def spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.affine)


def read_volume(path: Path, case_id: str, role: str, dtype: type = np.float32) -> Volume:
    """Load a 3D NIfTI (a trailing axis of length 1 is dropped); raise DataError naming case, file and role."""

    def fail(message: str) -> DataError:
        return DataError(Problem("error", f"{role}: {message}", case_id=case_id, file=path))

    if not path.exists():
        raise fail("file not found")
    if not path.is_file():
        raise fail("not a file")
    try:
        image = nib.load(str(path))
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as error:
        raise fail(f"not a readable NIfTI file ({error})") from None
    try:
        data = np.asarray(image.dataobj, dtype=dtype)
    except (EOFError, zlib.error, OSError, ValueError) as error:
        raise fail(f"corrupt or truncated NIfTI: its data cannot be read ({type(error).__name__}: {error})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise fail(f"expected a 3D volume, got {data.ndim}D data of shape {tuple(data.shape)}")
    if min(data.shape) < 1:
        raise fail(f"empty volume of shape {tuple(data.shape)}")
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise fail("the header's affine is not a valid voxel-to-world transform (zero spacing or NaN)")
    return Volume(data=data, affine=affine, path=path)


def write_volume(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a volume as NIfTI (float32 images, uint8 masks and label maps)."""
    if data.dtype == bool:
        data = data.astype(np.uint8)
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    if data.dtype == np.uint8:
        image.header.set_intent("label")
    nib.save(image, str(path))
