"""Running the book: every notebook executed with papermill into the run directory, then one Jupyter Book build.

The notebooks in ``notebooks/`` are committed without outputs; executed copies are build products under
``<run_dir>/notebooks``. The book's source is assembled in ``<run_dir>/book`` (the pages of ``book/`` plus the
executed notebooks) and built with Jupyter Book 1 without re-executing anything, warnings as errors.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS: tuple[str, ...] = ("01_data.ipynb", "02_inr.ipynb", "03_inr2vec.ipynb", "04_synthesis.ipynb",
                               "05_quality.ipynb", "06_segmentation.ipynb")
"""The book's notebooks in reading (and execution) order."""


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the executed copy (with the traceback in it) and the error."""


@dataclass(frozen=True)
class BookRun:
    """Where one run of the book puts its results."""

    run_dir: Path

    @property
    def executed(self) -> Path:
        return self.run_dir / "notebooks"

    @property
    def source(self) -> Path:
        return self.run_dir / "book"

    @property
    def html(self) -> Path:
        return self.source / "_build" / "html"


def execute_notebooks(run: BookRun, parameters: dict[str, Any], notebooks: tuple[str, ...] = NOTEBOOKS,
                      kernel: str = "python3") -> list[Path]:
    """Execute each notebook with papermill (from the repository root) and stop at the first failure."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    run.executed.mkdir(parents=True, exist_ok=True)
    done = []
    for name in notebooks:
        output = run.executed / name
        started = time.perf_counter()
        print(f"[lgelib book] executing {name} ...", flush=True)
        try:
            papermill.execute_notebook(str(REPO_ROOT / "notebooks" / name), str(output), parameters=parameters,
                                       kernel_name=kernel, cwd=str(REPO_ROOT), progress_bar=False)
        except PapermillExecutionError as error:
            raise NotebookFailed(f"notebook {name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
                                 f"the executed copy with the full traceback is {output}") from None
        print(f"[lgelib book] {name} done in {time.perf_counter() - started:.0f} s", flush=True)
        done.append(output)
    return done


def assemble_source(run: BookRun) -> None:
    """Copy the book's pages from ``book/`` and the executed notebooks into the run's book source folder."""
    if run.source.exists():
        shutil.rmtree(run.source)
    shutil.copytree(REPO_ROOT / "book", run.source, ignore=shutil.ignore_patterns("_build"))
    shutil.copytree(run.executed, run.source / "notebooks")
    # plotly.js once, offline: Jupyter Book adds a script tag for every .js under _static; the notebooks' plotly
    # figures carry only their HTML (lgelib.figures.plotly_bundle).
    import plotly

    static = run.source / "_static"
    static.mkdir(exist_ok=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")


def build_html(run: BookRun) -> Path:
    """Jupyter Book 1 build of the assembled source: no execution, warnings are errors, offline."""
    executable = Path(sys.executable).parent / "jupyter-book"
    command = [str(executable), "build", str(run.source), "--builder", "html", "-W", "-n", "--keep-going"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return run.html / "index.html"


def run_book(run_dir: Path, parameters: dict[str, Any], build: bool = True) -> Path:
    """Execute every notebook into ``run_dir`` and build the book; return the built index page (or the run dir)."""
    run = BookRun(Path(run_dir).resolve())
    execute_notebooks(run, {**parameters, "run_dir": str(run.run_dir)})
    if not build:
        return run.executed
    assemble_source(run)
    return build_html(run)
