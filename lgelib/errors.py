"""Problems found in input data, reported together and naming the case, the file and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: where (case, file) and what."""

    severity: Severity
    message: str
    case_id: str | None = None
    file: Path | None = None

    def __str__(self) -> str:
        where = [part for part in (self.case_id, str(self.file) if self.file else None) if part]
        prefix = f"{': '.join(where)}: " if where else ""
        return f"{self.severity.upper()} {prefix}{self.message}"


class DataError(Exception):
    """Raised when input data cannot be used; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem] | Problem, context: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.context = context
        lines = [context] if context else []
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]
