"""From a manifest to the list of case files and the train/test split."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lgelib.data.manifest import (
    EMIDEC_LABELS,
    CaseFiles,
    LabelMapping,
    Manifest,
    SplitSettings,
    load_manifest,
    manifest_schema,
)
from lgelib.errors import DataError, Problem


@dataclass(frozen=True)
class Split:
    """Case ids for training (INRs, inr2vec, EDM, nnU-Net) and for held-out testing."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    seed: int | None = None


@dataclass(frozen=True)
class Dataset:
    """A manifest resolved to files: every case, how label maps translate to masks, and the split."""

    manifest: Manifest
    cases: tuple[CaseFiles, ...]
    label_mapping: LabelMapping | None
    split: Split

    @property
    def case_ids(self) -> tuple[str, ...]:
        return tuple(case.case_id for case in self.cases)


CASE_ID = re.compile(manifest_schema()["$defs"]["case_id"]["pattern"])
"""A legal case id (the manifest schema's ``case_id`` pattern): it names files and folders in every later stage."""


def emidec_cases(
    root: Path, only: tuple[str, ...] | None, manifest_path: Path
) -> tuple[list[CaseFiles], list[Problem]]:
    """Cases of a folder in the EMIDEC layout: ``Case_X/Images/Case_X.nii.gz`` + ``Case_X/Contours/Case_X.nii.gz``."""
    if not root.is_dir():
        return [], [Problem("error", f"source.root: EMIDEC folder {root} does not exist", file=manifest_path)]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("Case_"))
    names = [p.name for p in folders]
    problems = []
    if only is not None:
        problems = [
            Problem("error", "listed in source.cases but there is no such folder", case_id=c, file=root / c)
            for c in only
            if c not in names
        ]
        folders = [p for p in folders if p.name in only]
    if not folders and not problems:
        problems.append(Problem("error", f"no Case_* folders in {root} (is this the EMIDEC root?)", file=root))
    illegal = [p for p in folders if not CASE_ID.match(p.name)]
    problems += [
        Problem(
            "error",
            "folder name is not a usable case id (letters, digits, '.', '_' and '-' only, "
            "starting with a letter or digit): rename the folder",
            case_id=p.name,
            file=p,
        )
        for p in illegal
    ]
    cases = [
        CaseFiles(case_id=p.name, image=p / "Images" / f"{p.name}.nii.gz", labels=p / "Contours" / f"{p.name}.nii.gz")
        for p in folders
        if p not in illegal
    ]
    return cases, problems


def nifti_cases(manifest: Manifest) -> list[CaseFiles]:
    """Cases listed in a ``nifti`` manifest, paths resolved against ``source.root`` (itself relative to the
    manifest)."""
    root = manifest.resolve_path(manifest.source.get("root", "."))

    def resolve(value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else root / path

    return [
        CaseFiles(
            case_id=c["id"],
            image=resolve(c["image"]),
            labels=resolve(c.get("labels")),  # type: ignore[arg-type]
            myocardium=resolve(c.get("myocardium")),
            fibrosis=resolve(c.get("fibrosis")),
        )
        for c in manifest.source["cases"]
    ]


def duplicate_id_problems(case_ids: list[str], manifest_path: Path) -> list[Problem]:
    """One error per case id that occurs more than once."""
    return [
        Problem("error", "duplicate case id", case_id=c, file=manifest_path)
        for c in sorted({i for i in case_ids if case_ids.count(i) > 1})
    ]


def make_split(
    case_ids: tuple[str, ...], spec: SplitSettings, manifest_path: Path
) -> tuple[Split | None, list[Problem]]:
    """A seeded random split (the same seed gives the same split) or the manifest's explicit lists, checked."""
    known = set(case_ids)
    if spec.test is not None:
        problems = [
            Problem("error", "in the split but not in the dataset", case_id=c, file=manifest_path)
            for c in (*spec.test, *(spec.train or ()))
            if c not in known
        ]
        train = spec.train if spec.train is not None else tuple(c for c in case_ids if c not in spec.test)
        if not train:
            problems.append(Problem("error", "split: no training cases left", file=manifest_path))
        return (None if problems else Split(tuple(train), tuple(spec.test))), problems
    assert spec.seed is not None and (spec.n_test is not None or spec.test_fraction is not None)
    if spec.n_test is not None:
        n_test, asked = spec.n_test, f"split.n_test = {spec.n_test}"
    else:
        n_test = max(1, int(np.floor(spec.test_fraction * len(case_ids) + 0.5)))
        asked = f"split.test_fraction = {spec.test_fraction} ({n_test} of {len(case_ids)} cases)"
    if n_test >= len(case_ids):
        return None, [
            Problem(
                "error", f"{asked} leaves no training case (the dataset has {len(case_ids)} cases)", file=manifest_path
            )
        ]
    order = np.random.default_rng(spec.seed).permutation(sorted(case_ids))
    test = set(order[:n_test].tolist())
    return Split(tuple(c for c in case_ids if c not in test), tuple(sorted(test)), seed=spec.seed), []


def resolve_cases(
    manifest: Manifest, progress: bool = True
) -> tuple[list[CaseFiles], LabelMapping | None, list[Problem]]:
    """The case files a manifest names (generating the phantom cohort on first use), with listing problems."""
    if manifest.kind == "emidec":
        only = tuple(manifest.source["cases"]) if "cases" in manifest.source else None
        cases, problems = emidec_cases(manifest.resolve_path(manifest.source["root"]), only, manifest.path)
        return cases, EMIDEC_LABELS, problems
    if manifest.kind == "phantom":
        from lgelib.data.cohort import phantom_config_from_source, cached_phantom_cohort

        cohort_manifest = cached_phantom_cohort(
            phantom_config_from_source(manifest.source, manifest.path),
            manifest.source.get("cache_dir"),
            progress=progress,
        )
        cases, mapping, problems = resolve_cases(load_manifest(cohort_manifest))
        return cases, mapping, problems
    mapping = manifest.source.get("label_mapping")
    label_mapping = (
        None
        if mapping is None
        else LabelMapping(tuple(mapping["myocardium"]), tuple(mapping["fibrosis"]), tuple(mapping.get("other", ())))
    )
    return nifti_cases(manifest), label_mapping, []


def open_dataset(manifest: Manifest | str | Path, progress: bool = True) -> Dataset:
    """Resolve a manifest to its cases and split; raise :class:`DataError` if the listing or split is wrong.

    This does not read the volumes: :func:`lgelib.data.validate.validate_dataset` checks those.
    """
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    cases, mapping, problems = resolve_cases(manifest, progress=progress)
    ids = [c.case_id for c in cases]
    problems += duplicate_id_problems(ids, manifest.path)
    split, split_problems = make_split(tuple(ids), manifest.split, manifest.path)
    problems += split_problems
    if problems or split is None:
        raise DataError(problems, context=f"Dataset {manifest.name} ({manifest.path}) cannot be opened:")
    return Dataset(manifest=manifest, cases=tuple(cases), label_mapping=mapping, split=split)


def open_split(
    manifest: str | Path, split_seed: int | None = None, progress: bool = False, n_train: int | None = None
) -> Dataset:
    """A manifest's dataset with its own split (``split_seed`` None) or a seeded one, keeping only the first
    ``n_train`` training cases when given: the notebooks' and experiments' way in, with their ``split_seed`` and
    ``n_train`` parameters. The test cases never change with ``n_train``."""
    overrides = {} if split_seed is None else {"split.seed": int(split_seed)}
    dataset = open_dataset(load_manifest(manifest, overrides), progress=progress)
    if n_train is None:
        return dataset
    available = len(dataset.split.train)
    if not 1 <= int(n_train) <= available:
        raise DataError(
            Problem(
                "error",
                f"n_train = {n_train}: the split has {available} training cases (choose 1 to {available})",
                file=dataset.manifest.path,
            )
        )
    return replace(dataset, split=replace(dataset.split, train=dataset.split.train[: int(n_train)]))
