"""Checking a whole dataset before any stage runs: every problem of every case, in one report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lgelib.data.cases import read_case
from lgelib.data.dataset import duplicate_id_problems, make_split, resolve_cases
from lgelib.data.grid import GridSettings, to_canonical
from lgelib.data.manifest import Manifest, load_manifest
from lgelib.errors import DataError, Problem


@dataclass
class ValidationReport:
    """What ``lgelib validate`` found: problems (errors and warnings) and how many cases were read."""

    manifest_path: Path
    n_cases: int = 0
    n_ok: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        """Human-readable report: a summary line, then problems grouped by case."""
        verdict = "OK" if self.ok else "FAILED"
        lines = [
            f"{verdict}: {self.manifest_path}: {self.n_cases} cases, {self.n_ok} readable, "
            f"{len(self.errors)} errors, {len(self.warnings)} warnings"
        ]
        by_case: dict[str, list[Problem]] = {}
        for problem in self.problems:
            by_case.setdefault(problem.case_id or "(dataset)", []).append(problem)
        for case_id in sorted(by_case, key=lambda c: (c != "(dataset)", c)):
            lines.append(f"  {case_id}:")
            for problem in by_case[case_id]:
                where = f"{problem.file}: " if problem.file else ""
                lines.append(f"    {problem.severity.upper()} {where}{problem.message}")
        return "\n".join(lines)


def validate_dataset(
    manifest: Manifest | str | Path,
    overrides: dict[str, Any] | None = None,
    grid: GridSettings | None = None,
    progress: bool = True,
) -> ValidationReport:
    """Read every case of a manifest and report every problem; never raises for bad data.

    Checks the manifest (schema, keys, types, split), the listing (missing files, duplicate ids), each case
    (readable 3D NIfTI, matching shapes and affines, binary masks or known labels, finite intensities, a
    non-empty myocardium, fibrosis inside the myocardium) and that the case can be put on the canonical grid.
    """
    path = Path(manifest.path if isinstance(manifest, Manifest) else manifest)
    report = ValidationReport(manifest_path=path)
    try:
        if not isinstance(manifest, Manifest):
            manifest = load_manifest(manifest, overrides)
        cases, mapping, listing = resolve_cases(manifest, progress=progress)
    except DataError as error:
        report.problems += error.problems
        return report
    report.problems += listing
    ids = [c.case_id for c in cases]
    report.problems += duplicate_id_problems(ids, manifest.path)
    report.problems += make_split(tuple(ids), manifest.split, manifest.path)[1]
    report.n_cases = len(cases)
    grid = grid or GridSettings()
    iterable: Iterable = tqdm(cases, desc=f"validate {manifest.name}", unit="case", disable=not progress)
    for files in iterable:
        try:
            case = read_case(files, mapping, manifest.fibrosis_outside_myocardium)
            to_canonical(case, grid, manifest.slice_order)
        except DataError as error:
            report.problems += [
                p if p.case_id else Problem(p.severity, p.message, files.case_id, p.file or files.image)
                for p in error.problems
            ]
            continue
        report.problems += case.warnings
        report.n_ok += 1
    return report
