"""Short-axis slices for scar enhancement: each myocardial slice of a case, cropped around the heart to a square of
``fov_mm``, resampled to ``size`` pixels and scaled to [0, 1], with its blood pool, myocardium (scar included, as
everywhere in lgelib) and scar masks. The blood pool comes from the label map (EMIDEC's LV cavity, label 1), so
the manifest must name label maps, not two binary masks."""

from __future__ import annotations

from dataclasses import dataclass

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


def case_slices(dataset: Dataset, case_id: str, settings: SliceSettings) -> ScarSlices:
    """Every slice of one case that holds myocardium, cut and scaled as `SliceSettings` says."""
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
    blood_all = labels == settings.blood_label
    spacing = np.asarray(case.spacing, float)
    axis = slice_axis(spacing)
    plane_axes = [a for a in range(3) if a != axis]
    step = np.asarray(settings.fov_mm / settings.size / spacing[plane_axes])
    out: dict[str, list] = {k: [] for k in ("image", "blood", "myocardium", "scar", "slice_index")}
    for index in range(case.image.shape[axis]):
        take = [slice(None)] * 3
        take[axis] = index
        myocardium = case.myocardium[tuple(take)]
        if not myocardium.any():
            continue
        blood, scar = blood_all[tuple(take)] & ~myocardium, case.fibrosis[tuple(take)]
        centre = np.array(ndimage.center_of_mass(myocardium | blood))
        image = _crop(case.image[tuple(take)].astype(np.float64), centre, step, settings.size, order=1)
        inside = _crop(np.ones(myocardium.shape), centre, step, settings.size, order=0) > 0.5  # not padding
        low, high = np.percentile(image[inside], settings.percentiles)
        out["image"].append(np.clip((image - low) / max(high - low, 1e-6), 0, 1).astype(np.float32))
        for name, mask in (("blood", blood), ("myocardium", myocardium), ("scar", scar)):
            out[name].append(_crop(mask.astype(np.float64), centre, step, settings.size, order=0) > 0.5)
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


def scar_slices(
    dataset: Dataset, case_ids: list[str] | tuple[str, ...], settings: SliceSettings, progress: bool = False
) -> ScarSlices:
    """The slices of every named case, in order (`case_slices`)."""
    parts = [case_slices(dataset, c, settings) for c in tqdm(case_ids, desc="slices", disable=not progress)]
    return ScarSlices(*(np.concatenate([getattr(p, f) for p in parts]) for f in ScarSlices.__dataclass_fields__))
