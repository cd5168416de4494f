"""Short-axis slices for scar enhancement: each myocardial slice of a case, cropped around the heart to a square of
``fov_mm``, resampled to ``size`` pixels and scaled to [0, 1], with its blood pool, myocardium (scar included, as
everywhere in lgelib) and scar masks. The blood pool comes from the label map (EMIDEC's LV cavity, label 1), so
the manifest must name label maps, not two binary masks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from lgelib.data.cases import read_case
from lgelib.data.dataset import Dataset
from lgelib.data.nifti import read_volume, slice_axis
from lgelib.scar_enhancement.settings import SliceSettings


@dataclass
class ScarSlices:
    """Slices (N, size, size): intensities in [0, 1], boolean masks; ``case_id`` and ``slice_index`` (in the
    file's slice order) name where each came from."""

    image: np.ndarray
    blood: np.ndarray
    myocardium: np.ndarray
    scar: np.ndarray
    case_id: np.ndarray
    slice_index: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    @property
    def healthy(self) -> np.ndarray:
        """Healthy myocardium: myocardium without scar (the paper's mask_myo)."""
        return self.myocardium & ~self.scar

    @property
    def with_scar(self) -> np.ndarray:
        """Which slices hold scar (where CNR(scar, .) is defined)."""
        return self.scar.any(axis=(1, 2))

    def subset(self, keep: np.ndarray) -> ScarSlices:
        return ScarSlices(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def _crop(plane: np.ndarray, centre: np.ndarray, step: np.ndarray, size: int, order: int) -> np.ndarray:
    """``plane`` sampled on a size x size grid centred on ``centre`` (pixels) with ``step`` pixels per output pixel."""
    offsets = (np.arange(size) - (size - 1) / 2)[None, :] * step[:, None]
    rows, cols = np.meshgrid(centre[0] + offsets[0], centre[1] + offsets[1], indexing="ij")
    return ndimage.map_coordinates(plane, [rows, cols], order=order, mode="constant", cval=0.0)


def _read_case(dataset: Dataset, case_id: str, settings: SliceSettings):
    """One case read and checked, with its blood pool (the label map's ``blood_label``)."""
    files = next((c for c in dataset.cases if c.case_id == case_id), None)
    if files is None:
        raise KeyError(f"case {case_id!r} is not in {dataset.manifest.name}")
    if files.labels is None:
        raise ValueError(
            f"case {case_id}: scar enhancement needs the blood pool, which only a label map holds "
            f"({dataset.manifest.name} names separate myocardium and fibrosis masks)"
        )
    case = read_case(files, dataset.label_mapping)
    labels = read_volume(files.labels, case_id, "labels").data.astype(np.int64)
    return case, labels == settings.blood_label


def _slice_crops(case, blood_all: np.ndarray, settings: SliceSettings) -> Iterator[tuple[int, tuple, Callable]]:
    """For every slice that holds myocardium: its index, the index tuple that takes it from a volume on the case's
    grid, and the function that crops such a plane around the heart (the reference myocardium and blood pool's
    centre) as `case_slices` does, so that anything on that grid (a prediction) is cut exactly like the image."""
    spacing = np.asarray(case.spacing, float)
    axis = slice_axis(spacing)
    plane_axes = [a for a in range(3) if a != axis]
    step = np.asarray(settings.fov_mm / settings.size / spacing[plane_axes])
    for index in range(case.image.shape[axis]):
        take = [slice(None)] * 3
        take[axis] = index
        take = tuple(take)
        myocardium = case.myocardium[take]
        if not myocardium.any():
            continue
        centre = np.array(ndimage.center_of_mass(myocardium | (blood_all[take] & ~myocardium)))
        yield index, take, lambda plane, order, c=centre: _crop(plane, c, step, settings.size, order)


def case_slices(dataset: Dataset, case_id: str, settings: SliceSettings) -> ScarSlices:
    """Every slice of one case that holds myocardium, cut and scaled as `SliceSettings` says."""
    case, blood_all = _read_case(dataset, case_id, settings)
    out: dict[str, list] = {k: [] for k in ("image", "blood", "myocardium", "scar", "slice_index")}
    for index, take, crop in _slice_crops(case, blood_all, settings):
        myocardium = case.myocardium[take]
        blood, scar = blood_all[take] & ~myocardium, case.fibrosis[take]
        image = crop(case.image[take].astype(np.float64), 1)
        inside = crop(np.ones(myocardium.shape), 0) > 0.5  # not padding
        low, high = np.percentile(image[inside], settings.percentiles)
        out["image"].append(np.clip((image - low) / max(high - low, 1e-6), 0, 1).astype(np.float32))
        for name, mask in (("blood", blood), ("myocardium", myocardium), ("scar", scar)):
            out[name].append(crop(mask.astype(np.float64), 0) > 0.5)
        out["slice_index"].append(index)
    if not out["image"]:
        raise ValueError(f"case {case_id}: no slice holds myocardium")
    n = len(out["image"])
    return ScarSlices(
        np.stack(out["image"]),
        np.stack(out["blood"]),
        np.stack(out["myocardium"]),
        np.stack(out["scar"]) & np.stack(out["myocardium"]),
        np.array([case_id] * n),
        np.array(out["slice_index"]),
    )


def predicted_myocardium(
    dataset: Dataset, case_ids: list[str] | tuple[str, ...], settings: SliceSettings, predictions: Path | str
) -> np.ndarray:
    """A segmentation model's myocardium (scar included: every label >= 1 of nnU-Net's label maps) for the slices
    of `scar_slices` (same cases, order and crops), read from ``predictions/<case_id>.nii.gz`` on each scan's own
    grid (``seg/predictions/<arm>`` of a segmentation run): the ROI the paper uses at inference
    (`lgelib.scar_enhancement.roi.roi_from_segmentation`). The crop is still centred on the reference heart."""
    folder, crops = Path(predictions), []
    for case_id in case_ids:
        path = folder / f"{case_id}.nii.gz"
        if not path.is_file():
            raise FileNotFoundError(f"case {case_id}: no prediction {path.name} in {folder}")
        case, blood_all = _read_case(dataset, case_id, settings)
        labels = np.asarray(nib.load(str(path)).dataobj)
        if labels.shape != case.image.shape:
            raise ValueError(
                f"case {case_id}: prediction {path.name} has shape {labels.shape}, the scan {case.image.shape}"
            )
        predicted = (labels >= 1).astype(np.float64)
        crops += [crop(predicted[take], 0) > 0.5 for _, take, crop in _slice_crops(case, blood_all, settings)]
    return np.stack(crops)


def scar_slices(
    dataset: Dataset, case_ids: list[str] | tuple[str, ...], settings: SliceSettings, progress: bool = False
) -> ScarSlices:
    """The slices of every named case, in order (`case_slices`)."""
    parts = [case_slices(dataset, c, settings) for c in tqdm(case_ids, desc="slices", disable=not progress)]
    return ScarSlices(*(np.concatenate([getattr(p, f) for p in parts]) for f in ScarSlices.__dataclass_fields__))
