"""Data manifests: a small YAML file that names a dataset, checked against ``manifest.schema.json``.

A manifest says where the cases come from (``phantom``: the embedded generator; ``emidec``: a folder in the
EMIDEC layout; ``nifti``: listed files), whether its images may be published in a rendered book, and how it
is split into train and test. ``load_manifest`` checks it completely before anything is read or written.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from lgelib.errors import DataError, Problem

SCHEMA_RESOURCE = "manifest.schema.json"
SourceKind = Literal["phantom", "emidec", "nifti"]
SliceOrder = Literal["auto", "base_first", "apex_first"]
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of the manifest format (shipped inside the package)."""
    text = resources.files("lgelib.data").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class LabelMapping:
    """Which label values of a label map make the myocardium and the fibrosis masks."""

    myocardium: tuple[int, ...]
    fibrosis: tuple[int, ...]
    other: tuple[int, ...] = ()

    @property
    def allowed(self) -> frozenset[int]:
        """Every label value a file may hold."""
        return frozenset((0, *self.myocardium, *self.fibrosis, *self.other))


EMIDEC_LABELS = LabelMapping(myocardium=(2, 3, 4), fibrosis=(3, 4), other=(1,))
"""EMIDEC: 0 background, 1 LV cavity, 2 myocardium, 3 infarct, 4 persistent microvascular obstruction."""


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: an image plus a label map or two binary masks."""

    case_id: str
    image: Path
    labels: Path | None = None
    myocardium: Path | None = None
    fibrosis: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.image, self.labels, self.myocardium, self.fibrosis) if p is not None]


@dataclass(frozen=True)
class SplitSettings:
    """How to split: a seed and a test-set size (a count, or a fraction of the cases), or explicit lists (train None
    = every case not in test)."""

    seed: int | None = None
    n_test: int | None = None
    test_fraction: float | None = None
    train: tuple[str, ...] | None = None
    test: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Manifest:
    """A checked manifest. ``source`` holds the kind-specific keys with ``${VAR}`` expanded."""

    path: Path
    name: str
    description: str
    publishable: bool
    kind: SourceKind
    source: dict[str, Any]
    split: SplitSettings
    slice_order: SliceOrder = "auto"
    fibrosis_outside_myocardium: Literal["warn", "fail"] = "warn"

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the manifest, relative to the manifest's folder unless absolute."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.folder / path)


def parse_override(text: str) -> tuple[str, Any]:
    """``key.sub=value`` -> (``key.sub``, value parsed as YAML, so numbers and lists get their types)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value (e.g. split.seed=3)")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``split.seed``, ``source.root``) in a copy of the manifest's data."""
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {dotted}: {part} is not a mapping in the manifest")
        node[last] = value
    return data


def _expand_env(value: Any, path: Path, problems: list[Problem], key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, path, problems, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path, problems, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ or not os.environ[name]:
                problems.append(
                    Problem(
                        "error",
                        f"{key}: environment variable {name} is not set "
                        f"(set it, or override the key on the command line)",
                        file=path,
                    )
                )
                return match.group(0)
            return os.environ[name]

        return _ENV_PATTERN.sub(substitute, value)
    return value


def _schema_problems(data: Any, path: Path) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(manifest_schema())
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator in ("if", "allOf"):
            continue
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message
        if error.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown key")
        problems.append(Problem("error", f"{key}: {message}", file=path))
    return problems


def _semantic_problems(data: dict[str, Any], path: Path) -> list[Problem]:
    problems: list[Problem] = []
    split = data.get("split", {})
    sized = "n_test" in split or "test_fraction" in split
    seeded = "seed" in split or sized
    listed = "test" in split or "train" in split
    if seeded and listed:
        problems.append(
            Problem(
                "error",
                "split: give either seed + n_test (or test_fraction) or test (+ train) lists, not both",
                file=path,
            )
        )
    elif "n_test" in split and "test_fraction" in split:
        problems.append(Problem("error", "split: give n_test or test_fraction, not both", file=path))
    elif seeded and not ("seed" in split and sized):
        problems.append(Problem("error", "split: a seeded split needs a seed and n_test or test_fraction", file=path))
    elif listed and "test" not in split:
        problems.append(Problem("error", "split: an explicit split needs a test list", file=path))
    elif not seeded and not listed:
        problems.append(Problem("error", "split: give seed + n_test (or test_fraction), or a test list", file=path))
    for name in ("train", "test"):
        ids = split.get(name) or []
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            problems.append(Problem("error", f"split.{name}: case {dup} is listed twice", case_id=dup, file=path))
    for both in sorted(set(split.get("train") or []) & set(split.get("test") or [])):
        problems.append(Problem("error", "case is in both the train and the test split", case_id=both, file=path))

    source = data.get("source", {})
    if source.get("kind") == "nifti":
        uses_labels = False
        seen: set[str] = set()
        for index, case in enumerate(source.get("cases", [])):
            case_id = case.get("id", f"cases[{index}]")
            has_labels = "labels" in case
            has_masks = "myocardium" in case and "fibrosis" in case
            if has_labels == has_masks or (has_labels and ("myocardium" in case or "fibrosis" in case)):
                problems.append(
                    Problem(
                        "error", "give either labels, or both myocardium and fibrosis masks", case_id=case_id, file=path
                    )
                )
            uses_labels |= has_labels
            if case_id in seen:
                problems.append(Problem("error", "duplicate case id in source.cases", case_id=case_id, file=path))
            seen.add(case_id)
        if uses_labels and "label_mapping" not in source:
            problems.append(Problem("error", "source.label_mapping is required when cases give label maps", file=path))
        mapping = source.get("label_mapping")
        if mapping and not set(mapping.get("fibrosis", [])) <= set(mapping.get("myocardium", [])):
            problems.append(
                Problem(
                    "error",
                    "source.label_mapping: fibrosis labels must also be myocardium labels "
                    "(fibrosis is part of the myocardium)",
                    file=path,
                )
            )
    if source.get("kind") == "phantom":
        from lgelib.data.phantom import PhantomSettings  # local: the generator is heavy to import

        known = set(PhantomSettings.__dataclass_fields__) | {"kind", "cache_dir"}
        for key in sorted(set(source) - known):
            problems.append(Problem("error", f"source: unknown phantom parameter {key!r}", file=path))
    return problems


def read_manifest_yaml(path: Path) -> Any:
    """A manifest file's YAML as it is, unchecked; refuses aliases (nested ones can expand a small file into
    gigabytes) and raises :class:`DataError` naming the file for a missing file or invalid YAML."""
    if not path.is_file():
        raise DataError(Problem("error", "manifest file not found", file=path))
    try:
        text = path.read_text(encoding="utf-8")
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise DataError(
                Problem(
                    "error",
                    "YAML aliases (*name) are not allowed in a manifest: write each value "
                    "out (nested aliases can expand a small file into gigabytes)",
                    file=path,
                )
            )
        return yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DataError(Problem("error", f"not valid YAML: {error}", file=path)) from None


def manifest_kind(path: str | Path) -> str | None:
    """The ``source.kind`` a manifest names (``phantom``, ``emidec``, ``nifti``), read without checking the rest or
    expanding ``${VAR}`` (the run's settings need it before the data is opened); None where the file cannot be read
    as one (:func:`load_manifest` says what is wrong when the data is opened)."""
    try:
        data = read_manifest_yaml(Path(path))
    except DataError:
        return None
    source = data.get("source") if isinstance(data, dict) else None
    kind = source.get("kind") if isinstance(source, dict) else None
    return kind if isinstance(kind, str) else None


def load_manifest(path: str | Path, overrides: dict[str, Any] | None = None) -> Manifest:
    """Read and check a manifest; raise :class:`DataError` listing every problem found.

    ``overrides`` set dotted keys before checking, e.g. ``{"split.seed": 3, "source.root": "/data/emidec"}``.
    """
    path = Path(path)
    data = read_manifest_yaml(path)
    if not isinstance(data, dict):
        raise DataError(Problem("error", "a manifest must be a YAML mapping (key: value)", file=path))
    overrides = dict(overrides or {})
    split = data.get("split")
    if isinstance(split, dict):  # an overridden test-set size replaces the manifest's other way of giving one
        for given, other in (("split.n_test", "test_fraction"), ("split.test_fraction", "n_test")):
            if given in overrides and other in split:
                data = {**data, "split": {k: v for k, v in split.items() if k != other}}
    try:
        data = apply_overrides(data, overrides)
    except ValueError as error:
        raise DataError(Problem("error", str(error), file=path)) from None
    problems = _schema_problems(data, path)
    if not problems:
        problems = _semantic_problems(data, path)
    env_problems: list[Problem] = []
    source = _expand_env(data.get("source", {}), path, env_problems, "source")
    problems += env_problems
    if problems:
        raise DataError(problems, context=f"Manifest {path} is not valid:")
    split = data["split"]
    return Manifest(
        path=path.resolve(),
        name=data["name"],
        description=data.get("description", ""),
        publishable=data["publishable"],
        kind=source["kind"],
        source=source,
        split=SplitSettings(
            seed=split.get("seed"),
            n_test=split.get("n_test"),
            test_fraction=split.get("test_fraction"),
            train=tuple(split["train"]) if "train" in split else None,
            test=tuple(split["test"]) if "test" in split else None,
        ),
        slice_order=data.get("slice_order", "auto"),
        fibrosis_outside_myocardium=data.get("checks", {}).get("fibrosis_outside_myocardium", "warn"),
    )
