"""nnU-Net's raw datasets for the segmentation experiment: the real training cases (on their own voxel grid,
percentile-normalised, slice axis third) plus an arm's added cases (synthetic volumes or duplicates), the test
images, and the mapping of predictions back to each scan's own layout. Each export is keyed on its content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff

from lgelib.data.cases import ScanCase, read_case
from lgelib.data.dataset import Dataset, resolve_cases
from lgelib.data.grid import inverse_ornt
from lgelib.data.intensity import normalize_intensity
from lgelib.data.manifest import CaseFiles, LabelMapping, load_manifest
from lgelib.data.nifti import slice_axis, voxel_spacing, write_volume
from lgelib.data.prepare import load_prepared
from lgelib.fingerprint import fingerprint, record_matches
from lgelib.fsutil import atomic_directory
from lgelib.log import logger
from lgelib.segmentation_setup import (
    Arm,
    NnunetFolders,
    SegmentationSettings,
)

LABELS = {"background": 0, "myocardium": 1, "fibrosis": 2}


FILE_ENDING = ".nii.gz"


CHANNEL = "noNorm"
"""nnU-Net's channel name for "no normalisation": inputs are already percentile-normalised per scan."""


def slice_axis_last(affine: np.ndarray) -> np.ndarray:
    """nibabel ornt that moves the axis with the largest voxel spacing (the slice axis) to the third position,
    keeping the in-plane axes in their order and no axis flipped."""
    through_plane = slice_axis(voxel_spacing(affine))
    order = [a for a in range(3) if a != through_plane] + [through_plane]
    ornt = np.zeros((3, 2))
    for target, source in enumerate(order):
        ornt[source] = (target, 1)
    return ornt


def to_scan_layout(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Undo `slice_axis_last` for a scan with this ``affine``: a volume as exported back to the file's axes."""
    return apply_orientation(volume, inverse_ornt(slice_axis_last(affine)))


def label_map(myocardium: np.ndarray, fibrosis: np.ndarray) -> np.ndarray:
    """0 background, 1 myocardium without scar, 2 fibrosis."""
    labels = np.asarray(myocardium, bool).astype(np.uint8)
    labels[np.asarray(fibrosis, bool)] = LABELS["fibrosis"]
    return labels


def _write(path: Path, data: np.ndarray, affine: np.ndarray, ornt: np.ndarray) -> None:
    """Write ``data`` (on the grid of ``affine``) reoriented by ``ornt``, with the matching affine."""
    write_volume(path, apply_orientation(data, ornt), affine @ inv_ornt_aff(ornt, data.shape))


def export_real_case(case: ScanCase, images_dir: Path, labels_dir: Path | None, case_id: str | None = None) -> None:
    """A scan-like case on its own grid: normalised image (and label map), slice axis last, named ``case_id``
    (default: the case's own id)."""
    case_id = case_id or case.case_id
    ornt = slice_axis_last(case.affine)
    _write(images_dir / f"{case_id}_0000{FILE_ENDING}", normalize_intensity(case.image), case.affine, ornt)
    if labels_dir is not None:
        _write(labels_dir / f"{case_id}{FILE_ENDING}", label_map(case.myocardium, case.fibrosis), case.affine, ornt)


def phantom_subjects(
    real: Dataset, n: int, seed: int, calibration: str = "training"
) -> tuple[dict[str, CaseFiles], LabelMapping | None]:
    """``n`` new subjects of the phantom (`lgelib.data.phantom`, ``seed``), calibrated to the real training cases
    (``calibration="training"``, `lgelib.data.phantom.calibrate`) or with the default settings, generated into the
    cohort cache on first use: exported id (``P<seed>_Phantom_001``, ...) -> files, and their label mapping.
    Refuses the seed of a phantom cohort that is itself the real data (its test subjects would be added)."""
    from lgelib.data.cohort import cached_phantom_cohort, default_cache_dir, phantom_config_from_source
    from lgelib.data.phantom import PhantomSettings
    from lgelib.data.phantom.calibrate import calibrated_settings, case_statistics

    if real.manifest.kind == "phantom":
        real_seed = phantom_config_from_source(real.manifest.source, real.manifest.path).seed
        if real_seed == seed:
            raise ValueError(
                f"phantom arms draw new subjects with phantom_seed {seed}, the seed of the phantom cohort "
                f"{real.manifest.name} that is the real data here: choose another segmentation.phantom_seed"
            )
    if calibration == "training":
        train_ids = set(real.split.train)
        training = case_statistics(read_case(c, real.label_mapping) for c in real.cases if c.case_id in train_ids)
        settings, report = calibrated_settings(training, n, seed, cache_dir=default_cache_dir())
        logger.info(
            "phantom calibrated on %d training cases: scar-free share %.2f; healthy myocardium %.3f (training) "
            "against %.3f (phantom) with the inversion-time offset shifted by %+.0f ms",
            len(training),
            report["scar_free_fraction"],
            report["target_intensity_healthy"],
            report["phantom_intensity_healthy"],
            report["ti_offset_shift_ms"],
        )
    else:
        settings = PhantomSettings(n_cases=n, seed=seed)
    cohort = cached_phantom_cohort(settings, progress=False)
    cases, mapping, problems = resolve_cases(load_manifest(cohort), progress=False)
    if problems:
        raise ValueError(f"the phantom cohort {cohort} cannot be read: {problems}")
    return {f"P{seed}_{c.case_id}": c for c in cases}, mapping


def dataset_name(folders: NnunetFolders, training_set: str) -> str:
    """``DatasetXXX_LGE_<set>``: the id already used for this training set in the run, else the next free one."""
    folders.raw.mkdir(parents=True, exist_ok=True)
    existing = {int(p.name[7:10]): p.name for p in folders.raw.glob("Dataset[0-9][0-9][0-9]_*")}
    for name in existing.values():
        if name.endswith(f"_LGE_{training_set}"):
            return name
    return f"Dataset{max(existing, default=0) + 1:03d}_LGE_{training_set}"


def duplicate_ids(train_ids: list[str], n: int) -> dict[str, str]:
    """``n`` duplicate case ids, cycling through the real training cases in order: duplicate id -> real id."""
    return {f"dup{k:03d}_{train_ids[k % len(train_ids)]}": train_ids[k % len(train_ids)] for k in range(n)}


def cross_validation_splits(
    real_ids: list[str], added: dict[str, str | None], n_folds: int = 5, seed: int = 12345
) -> list[dict[str, list[str]]]:
    """nnU-Net ``splits_final.json`` folds in which only real cases are validated: the real cases are split into
    ``n_folds`` seeded folds; every added case trains in every fold, except a duplicate (``added`` maps it to its
    real case) whose real case is validated in that fold, which would leak it."""
    if len(real_ids) < n_folds:
        raise ValueError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} real training cases, got "
            f"{len(real_ids)}: train on every case instead (folds=('all',))"
        )
    order = list(np.random.default_rng(seed).permutation(sorted(real_ids)))
    folds = [order[k::n_folds] for k in range(n_folds)]
    splits = []
    for validation in folds:
        held = set(validation)
        train = [c for c in sorted(real_ids) if c not in held]
        train += [c for c, origin in added.items() if origin not in held]
        splits.append({"train": train, "val": sorted(validation)})
    return splits


def export_training_set(
    folders: NnunetFolders, real: Dataset, synthetic_dir: Path | None, arm: Arm, settings: SegmentationSettings
) -> tuple[str, bool]:
    """nnU-Net's raw dataset of the real training cases plus the arm's added cases (the first ``n_added``
    volumes of ``synthetic_dir`` for synthetic, targeted and proportional arms, as many duplicates of the real
    training cases, or as many new phantom subjects).

    Returns the dataset name and whether it changed. When it did, that dataset's preprocessed data and models
    are removed, so nothing trained on other data is reused.
    """
    train_ids = set(real.split.train)
    train_files = [c for c in real.cases if c.case_id in train_ids]
    synthetic_ids: list[str] = []
    synthetic = None
    duplicates: dict[str, str] = {}
    phantom: dict[str, CaseFiles] = {}
    phantom_mapping = None
    if arm.n_added and arm.source == "phantom":
        phantom, phantom_mapping = phantom_subjects(
            real, arm.n_added, settings.phantom_seed, settings.phantom_calibration
        )
    elif arm.n_added and arm.source in ("synthetic", "targeted", "proportional"):
        if synthetic_dir is None:
            raise ValueError(f"arm {arm}: {arm.n_added} synthetic volumes asked for but no synthesis folder given")
        synthetic = load_prepared(synthetic_dir)
        if len(synthetic.case_ids) < arm.n_added:
            raise ValueError(
                f"{synthetic_dir} holds {len(synthetic.case_ids)} synthetic volumes, fewer than the "
                f"{arm.n_added} of arm {arm}: synthesise more (n_synthetic)"
            )
        synthetic_ids = synthetic.case_ids[: arm.n_added]
    elif arm.n_added:
        duplicates = duplicate_ids([c.case_id for c in train_files], arm.n_added)
    sources = [p for c in train_files for p in c.paths] + [p for c in phantom.values() for p in c.paths]
    if synthetic_ids:
        sources += [
            synthetic_dir / "cases" / c / f"{role}.nii.gz"
            for c in synthetic_ids
            for role in ("image", "myocardium", "fibrosis")
        ]
    budget = settings.to_dict()
    seed = budget.pop("phantom_seed")  # only phantom arms depend on these (and older exports' keys stay valid)
    calibration = budget.pop("phantom_calibration")
    recipe = {"labels": LABELS, "format": 3, "channel": CHANNEL, "duplicates": duplicates, "budget": budget}
    if phantom:
        recipe |= {"phantom": sorted(phantom), "phantom_seed": seed, "phantom_calibration": calibration}
    key = fingerprint(recipe, *map(Path, sources), length=16)
    name = dataset_name(folders, arm.training_set)
    target = folders.raw / name
    record = target / "export.json"
    if record_matches(record, key=key):
        return name, False
    for stale in (folders.preprocessed / name, folders.results / name):
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_directory(target, replace=True) as staging:
        images, labels = staging / "imagesTr", staging / "labelsTr"
        images.mkdir()
        labels.mkdir()
        for files in train_files:
            export_real_case(read_case(files, real.label_mapping), images, labels)
        for case_id, files in phantom.items():
            export_real_case(read_case(files, phantom_mapping), images, labels, case_id)
        for duplicate, origin in duplicates.items():
            for folder, suffix in ((images, "_0000"), (labels, "")):
                shutil.copyfile(folder / f"{origin}{suffix}{FILE_ENDING}", folder / f"{duplicate}{suffix}{FILE_ENDING}")
        if synthetic is not None:
            for i, case_id in enumerate(synthetic_ids):
                affine = nib.load(str(synthetic_dir / "cases" / case_id / "image.nii.gz")).affine
                ornt = slice_axis_last(affine)
                _write(images / f"{case_id}_0000{FILE_ENDING}", synthetic.images[i], affine, ornt)
                _write(
                    labels / f"{case_id}{FILE_ENDING}",
                    label_map(synthetic.myocardium[i], synthetic.fibrosis[i]),
                    affine,
                    ornt,
                )
        added = synthetic_ids + list(duplicates) + list(phantom)
        dataset_json = {
            "channel_names": {"0": CHANNEL},
            "labels": LABELS,
            "numTraining": len(train_files) + len(added),
            "file_ending": FILE_ENDING,
            "description": f"{len(train_files)} real training cases of {real.manifest.name} + "
            f"{len(synthetic_ids)} synthetic volumes + {len(duplicates)} duplicates of "
            f"real training cases + {len(phantom)} phantom subjects",
        }
        (staging / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
        (staging / "export.json").write_text(
            json.dumps(
                {
                    "key": key,
                    "real": [c.case_id for c in train_files],
                    "synthetic": synthetic_ids,
                    "duplicates": duplicates,
                    "phantom": list(phantom),
                    **({"phantom_calibration": calibration} if phantom else {}),
                },
                indent=1,
            )
        )
    return name, True


def export_test_images(real: Dataset, out: Path) -> dict[str, Path]:
    """The real test scans as nnU-Net reads them (normalised, slice axis last) in ``out``; case id -> file."""
    out.mkdir(parents=True, exist_ok=True)
    files, test_ids = {}, set(real.split.test)
    for case in real.cases:
        if case.case_id in test_ids:
            export_real_case(read_case(case, real.label_mapping), out, None)
            files[case.case_id] = out / f"{case.case_id}_0000{FILE_ENDING}"
    return files
