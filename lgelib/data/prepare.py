"""Writing a dataset on the canonical grid: the input of every later stage.

Layout of a prepared folder (``runs/<name>/data`` by default)::

    manifest.yaml              kind nifti, masks per case, the split as explicit lists
    prepared.json              grid, source manifest, per-case warnings and slice order
    cases/<id>/image.nii.gz    float32 in [0, 1], shape (slices, rows, cols)
    cases/<id>/myocardium.nii.gz, fibrosis.nii.gz   uint8 {0, 1}
    cases/<id>/mapping.json    GridMapping: how to map predictions back to the scan's own grid

Synthetic volumes from the diffusion stage are written in the same layout, so later stages treat both alike.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from lgelib import __version__
from lgelib.data.cases import read_case
from lgelib.data.dataset import Dataset, Split, open_dataset, open_split
from lgelib.data.grid import CanonicalCase, GridMapping, GridSettings, to_canonical
from lgelib.data.manifest import Manifest, load_manifest
from lgelib.data.nifti import read_volume, write_volume
from lgelib.data.summary import case_summary
from lgelib.errors import DataError
from lgelib.fingerprint import file_digest, fingerprint, record_matches
from lgelib.fsutil import atomic_directory
from lgelib.layout import RunLayout

PREPARED_RECORD = "prepared.json"


def write_case_volumes(
    folder: Path, case_id: str, image: np.ndarray, myocardium: np.ndarray, fibrosis: np.ndarray, affine: np.ndarray
) -> dict[str, str]:
    """Write a case's image and masks as NIfTI into ``folder`` (= ``<root>/cases/<case_id>``); return its
    manifest entry, with paths relative to ``<root>``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(folder / "image.nii.gz", np.asarray(image, np.float32), affine)
    write_volume(folder / "myocardium.nii.gz", np.asarray(myocardium, bool), affine)
    write_volume(folder / "fibrosis.nii.gz", np.asarray(fibrosis, bool), affine)
    relative = f"cases/{case_id}"
    return {
        "id": case_id,
        "image": f"{relative}/image.nii.gz",
        "myocardium": f"{relative}/myocardium.nii.gz",
        "fibrosis": f"{relative}/fibrosis.nii.gz",
    }


def write_canonical_case(folder: Path, case: CanonicalCase) -> dict[str, str]:
    """Write one canonical case's NIfTI files and mapping; return its manifest entry (paths relative)."""
    entry = write_case_volumes(folder, case.case_id, case.image, case.myocardium, case.fibrosis, case.affine)
    (folder / "mapping.json").write_text(case.mapping.to_json(), encoding="utf-8")
    return entry


def write_nifti_manifest(
    path: Path, name: str, description: str, publishable: bool, entries: list[dict[str, str]], split: Split
) -> None:
    """A manifest of kind ``nifti`` listing masks per case, with the split as explicit lists."""
    manifest = {
        "version": 1,
        "name": name,
        "description": description,
        "publishable": publishable,
        "source": {"kind": "nifti", "cases": entries},
        "split": {"train": list(split.train), "test": list(split.test)},
    }
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


def prepare_dataset(
    dataset: Dataset | Manifest | str | Path,
    grid: GridSettings,
    out_dir: Path,
    progress: bool = True,
    replace: bool = False,
) -> Path:
    """Put every case on ``grid`` and write the prepared folder; return its manifest path.

    All cases are read and checked before anything is written; on any error a :class:`DataError` lists every
    problem and no output folder is left behind.
    """
    if not isinstance(dataset, Dataset):
        dataset = open_dataset(dataset, progress=progress)
    manifest = dataset.manifest
    canonical: list[CanonicalCase] = []
    summaries: dict[str, dict[str, float | int]] = {}
    problems = []
    for files in tqdm(dataset.cases, desc=f"canonical grid {manifest.name}", unit="case", disable=not progress):
        try:
            case = read_case(files, dataset.label_mapping, manifest.fibrosis_outside_myocardium)
            canonical.append(to_canonical(case, grid, manifest.slice_order))
            summaries[case.case_id] = case_summary(case)
        except DataError as error:
            problems += error.problems
    if problems:
        raise DataError(problems, context=f"Dataset {manifest.name} cannot be prepared; nothing was written:")
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, replace=replace) as staging:
        entries = [write_canonical_case(staging / "cases" / c.case_id, c) for c in canonical]
        write_nifti_manifest(
            staging / "manifest.yaml",
            f"{manifest.name}-canonical",
            f"{manifest.name} on the canonical grid {grid.shape} ({grid.z_mode}, "
            f"{grid.inplane_spacing_mm} mm in-plane); prepared by lgelib {__version__}.",
            manifest.publishable,
            entries,
            dataset.split,
        )
        record = {
            "lgelib_version": __version__,
            "source_manifest": str(manifest.path),
            "source_manifest_sha256": file_digest(manifest.path),
            "source_sha256": source_fingerprint(dataset),
            "source_name": manifest.name,
            "publishable": manifest.publishable,
            "grid": dataclasses.asdict(grid),
            "split": dataclasses.asdict(dataset.split),
            "cases": {
                c.case_id: {
                    "warnings": [str(w) for w in c.warnings],
                    "notes": list(c.mapping.notes),
                    "slice_order_in_file": c.mapping.slice_order,
                    "summary": summaries[c.case_id],
                }
                for c in canonical
            },
        }
        (staging / PREPARED_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return out_dir / "manifest.yaml"


@dataclass
class PreparedDataset:
    """A prepared folder in memory: stacked arrays (N, slices, rows, cols) in manifest order, and the split."""

    case_ids: list[str]
    images: np.ndarray
    myocardium: np.ndarray
    fibrosis: np.ndarray
    mappings: dict[str, GridMapping]
    split: Split
    publishable: bool

    def index(self, case_ids: tuple[str, ...] | list[str]) -> np.ndarray:
        """Positions of the given case ids in the stacked arrays."""
        lookup = {c: i for i, c in enumerate(self.case_ids)}
        missing = [c for c in case_ids if c not in lookup]
        if missing:
            raise KeyError(f"no case {', '.join(map(repr, missing))} in this dataset ({len(self.case_ids)} cases)")
        return np.array([lookup[c] for c in case_ids], dtype=int)

    def case(self, case_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One case's (image, myocardium, fibrosis) on the canonical grid: the one way to pull a case out."""
        i = int(self.index([case_id])[0])
        return self.images[i], self.myocardium[i], self.fibrosis[i]


def load_prepared(folder: Path) -> PreparedDataset:
    """Read a prepared folder written by :func:`prepare_dataset` (or by the synthesis stage)."""
    folder = Path(folder)
    manifest = load_manifest(folder / "manifest.yaml")
    dataset = open_dataset(manifest, progress=False)
    images, myocardium, fibrosis, mappings = [], [], [], {}
    for files in dataset.cases:
        assert files.myocardium is not None and files.fibrosis is not None
        images.append(read_volume(files.image, files.case_id, "image").data)
        myocardium.append(read_volume(files.myocardium, files.case_id, "myocardium").data > 0.5)
        fibrosis.append(read_volume(files.fibrosis, files.case_id, "fibrosis").data > 0.5)
        mapping_file = files.image.parent / "mapping.json"
        if mapping_file.is_file():
            mappings[files.case_id] = GridMapping.from_json(mapping_file.read_text(encoding="utf-8"))
    return PreparedDataset(
        list(dataset.case_ids),
        np.stack(images),
        np.stack(myocardium),
        np.stack(fibrosis),
        mappings,
        dataset.split,
        manifest.publishable,
    )


def source_fingerprint(dataset: Dataset) -> str:
    """SHA-256 of everything a preparation reads: the manifest as resolved (after ``--set`` overrides and ``${VAR}``
    expansion, so another root, another ``publishable`` or another label mapping counts), each case's id and the
    bytes of every source file (so an edited mask counts)."""
    manifest = dataset.manifest
    resolved = {
        "name": manifest.name,
        "publishable": manifest.publishable,
        "kind": manifest.kind,
        "source": manifest.source,
        "slice_order": manifest.slice_order,
        "fibrosis_outside_myocardium": manifest.fibrosis_outside_myocardium,
        "label_mapping": repr(dataset.label_mapping),
    }
    parts = [part for case in dataset.cases for part in (case.case_id, *map(Path, case.paths))]
    return fingerprint(resolved, *parts)


def is_prepared(out_dir: Path, dataset: Dataset, grid: GridSettings) -> bool:
    """Whether ``out_dir`` already holds this exact preparation: same source content (`source_fingerprint`: the
    resolved manifest, publishable flag included, and every source file's bytes), split and grid."""
    record = Path(out_dir) / PREPARED_RECORD
    return record.is_file() and record_matches(
        record,
        source_sha256=source_fingerprint(dataset),
        grid=dataclasses.asdict(grid),
        split=dataclasses.asdict(dataset.split),
    )


def ensure_prepared(
    dataset: Dataset | Manifest | str | Path, grid: GridSettings, out_dir: Path, progress: bool = True
) -> Path:
    """Prepare ``dataset`` into ``out_dir`` unless that exact preparation is already there; return the manifest."""
    if not isinstance(dataset, Dataset):
        dataset = open_dataset(dataset, progress=progress)
    if is_prepared(out_dir, dataset, grid):
        return Path(out_dir) / "manifest.yaml"
    return prepare_dataset(dataset, grid, out_dir, progress=progress, replace=True)


def load_run_data(
    manifest: str | Path,
    grid: GridSettings,
    run_dir: Path | str,
    split_seed: int | None = None,
    progress: bool = False,
    n_train: int | None = None,
) -> PreparedDataset:
    """A run's dataset on its canonical grid (``run_dir/data``), prepared first if it is not there yet.

    The stages after the data chapter start here, with the notebook parameters ``manifest``, ``run_dir`` and
    ``split_seed`` (None: the manifest's own split) and ``n_train`` (None: every training case).
    """
    dataset = open_split(manifest, split_seed, progress=progress, n_train=n_train)
    return prepared_for(dataset, grid, RunLayout(Path(run_dir)).data, progress)


def prepared_for(dataset: Dataset, grid: GridSettings, data_dir: Path, progress: bool = False) -> PreparedDataset:
    """``dataset`` (already opened, with its split) on the canonical grid in ``data_dir``, prepared first if that
    exact preparation is not there yet."""
    prepared = load_prepared(ensure_prepared(dataset, grid, data_dir, progress=progress).parent)
    # The same lists, and the seed that drew them; whether images may be shown is the source manifest's decision,
    # on every run, never a derived copy's (a private flag anywhere wins).
    return dataclasses.replace(
        prepared, split=dataset.split, publishable=dataset.manifest.publishable and prepared.publishable
    )
