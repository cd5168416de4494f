"""Reading NIfTI volumes with nibabel, turning every failure into a :class:`Problem` that names the file."""

from __future__ import annotations

import math
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


MAX_VOXELS = 1 << 28
"""The largest volume read (268 million voxels, 1 GB as float32; an LGE scan has a few million): a larger header is
refused before its data is touched, so a tiny file claiming 1024^3 voxels cannot exhaust memory."""


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
    shape = tuple(int(n) for n in image.shape)
    voxels = math.prod(shape)
    if voxels > MAX_VOXELS:
        raise fail(
            f"the header claims {' x '.join(map(str, shape))} = {voxels:,} voxels, more than {MAX_VOXELS:,} "
            "(a corrupt or hostile header); the data was not read"
        )
    if not path.name.endswith(".gz"):
        header = image.header
        needed = int(header.get_data_offset()) + voxels * np.dtype(header.get_data_dtype()).itemsize
        if path.stat().st_size < needed:
            raise fail(
                f"truncated: the header claims {' x '.join(map(str, shape))} voxels ({needed:,} bytes) but the "
                f"file holds {path.stat().st_size:,} bytes"
            )
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
    try:  # the header as stored: nibabel's loaded copy has already replaced a zero voxel size by 1 mm
        holder = image.file_map["header"] if "header" in image.file_map else image.file_map["image"]
        with holder.get_prepare_fileobj(mode="rb") as handle:
            header = image.header.__class__.from_fileobj(handle, check=False)
    except Exception:  # noqa: BLE001 - an unusual container: fall back to the loaded header
        header = image.header
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        pixdim = [float(v) for v in header["pixdim"][1:4]]
        if min(pixdim) <= 0:
            raise fail(
                f"the header has no orientation (sform and qform codes 0) and voxel sizes {pixdim} mm: the "
                "spacing is unknown (nibabel would assume 1 mm and the volume would be resliced wrongly)"
            )
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
