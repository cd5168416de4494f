"""One case as read from its files: image, myocardium and fibrosis masks on the scan's own voxel grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from lgelib.data.manifest import CaseFiles, LabelMapping
from lgelib.data.nifti import Volume, read_volume, voxel_spacing
from lgelib.errors import DataError, Problem

AFFINE_TOLERANCE_MM = 1e-3


@dataclass
class ScanCase:
    """A case on its original voxel grid; masks are boolean and fibrosis lies inside the myocardium."""

    case_id: str
    image: np.ndarray
    myocardium: np.ndarray
    fibrosis: np.ndarray
    affine: np.ndarray
    files: CaseFiles
    warnings: list[Problem] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.affine)


def _same_grid(reference: Volume, other: Volume, case_id: str, role: str) -> list[Problem]:
    if other.data.shape != reference.data.shape:
        return [
            Problem(
                "error",
                f"{role}: shape {other.data.shape} differs from the image's {reference.data.shape}",
                case_id=case_id,
                file=other.path,
            )
        ]
    difference = float(np.abs(other.affine - reference.affine).max())
    if difference > AFFINE_TOLERANCE_MM * max(1.0, float(np.abs(reference.affine).max())):
        return [
            Problem(
                "error",
                f"{role}: affine differs from the image's (largest difference {difference:.4g}); "
                "the mask does not lie on the image's voxel grid",
                case_id=case_id,
                file=other.path,
            )
        ]
    return []


def _check_integer_values(volume: Volume, allowed: frozenset[int], case_id: str, role: str, what: str) -> list[Problem]:
    values = np.unique(volume.data)
    non_integer = values[values != np.round(values)]
    if non_integer.size:
        return [
            Problem(
                "error",
                f"{role}: non-integer values {non_integer[:5].tolist()} in a {what}",
                case_id=case_id,
                file=volume.path,
            )
        ]
    unknown = sorted(int(v) for v in values if int(v) not in allowed)
    if unknown:
        return [
            Problem(
                "error",
                f"{role}: values {unknown} are not in the {what} (allowed: {sorted(allowed)})",
                case_id=case_id,
                file=volume.path,
            )
        ]
    return []


def read_case(
    files: CaseFiles,
    label_mapping: LabelMapping | None,
    fibrosis_outside_myocardium: Literal["warn", "fail"] = "warn",
) -> ScanCase:
    """Read and check one case; raise :class:`DataError` with every error found for it.

    Fibrosis outside the myocardium is counted; it is an error under ``"fail"``, otherwise a warning (recorded
    in ``ScanCase.warnings``) and those voxels are dropped from the fibrosis mask.
    """
    case_id = files.case_id
    problems: list[Problem] = []
    volumes: dict[str, Volume] = {}
    roles = {"image": files.image, "labels": files.labels, "myocardium": files.myocardium, "fibrosis": files.fibrosis}
    for role, path in roles.items():
        if path is None:
            continue
        try:
            volumes[role] = read_volume(path, case_id, role)
        except DataError as error:
            problems += error.problems
    if "image" in volumes:
        image = volumes["image"]
        bad = int((~np.isfinite(image.data)).sum())
        if bad:
            problems.append(Problem("error", f"image: {bad} NaN/Inf voxels", case_id=case_id, file=image.path))
        elif float(np.ptp(image.data)) == 0.0:
            problems.append(
                Problem(
                    "error",
                    f"image: every voxel is {float(image.data.flat[0]):g} (a blank or constant "
                    "image: nothing to learn or segment)",
                    case_id=case_id,
                    file=image.path,
                )
            )
        for role in ("labels", "myocardium", "fibrosis"):
            if role in volumes:
                problems += _same_grid(image, volumes[role], case_id, role)
    if "labels" in volumes:
        if label_mapping is None:
            raise ValueError("a label map needs a label mapping")
        problems += _check_integer_values(volumes["labels"], label_mapping.allowed, case_id, "labels", "label mapping")
    for role in ("myocardium", "fibrosis"):
        if role in volumes:
            problems += _check_integer_values(
                volumes[role], frozenset((0, 1)), case_id, role, "binary mask values {0, 1}"
            )
    if problems:
        raise DataError(problems, context=f"Case {case_id} cannot be used:")

    image = volumes["image"]
    if "labels" in volumes:
        labels = volumes["labels"].data.astype(np.int64)
        assert label_mapping is not None
        myocardium = np.isin(labels, label_mapping.myocardium)
        fibrosis = np.isin(labels, label_mapping.fibrosis)
        mask_file = volumes["labels"].path
        fibrosis_file = mask_file
    else:
        myocardium = volumes["myocardium"].data > 0.5
        fibrosis = volumes["fibrosis"].data > 0.5
        mask_file = volumes["myocardium"].path
        fibrosis_file = volumes["fibrosis"].path
    if not myocardium.any():
        raise DataError(
            Problem("error", "empty myocardium mask (no myocardium voxel)", case_id=case_id, file=mask_file)
        )
    warnings: list[Problem] = []
    outside = int((fibrosis & ~myocardium).sum())
    if outside:
        message = f"{outside} fibrosis voxels ({outside / fibrosis.sum():.1%} of fibrosis) lie outside the myocardium"
        if fibrosis_outside_myocardium == "fail":
            raise DataError(Problem("error", message, case_id=case_id, file=fibrosis_file))
        warnings.append(Problem("warning", message + "; they are dropped", case_id=case_id, file=fibrosis_file))
        fibrosis = fibrosis & myocardium
    return ScanCase(case_id, image.data.astype(np.float32), myocardium, fibrosis, image.affine, files, warnings)
