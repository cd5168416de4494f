"""Running the book: every notebook executed with papermill into the run directory, then one Jupyter Book build.

The notebooks in ``notebooks/`` are committed without outputs; executed copies are build products under
``<run_dir>/notebooks``. The book's source is assembled in ``<run_dir>/book``: the pages of ``book/``, the executed
notebooks, the landing page's account of the run (``lgelib.landing``), plotly.js and MathJax for offline reading.
It is built with Jupyter Book 1 without re-executing anything, warnings as errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lgelib.layout import REPO_ROOT, RunLayout
from lgelib.log import logger
from lgelib.run import ALIASES, OPTION_NAMES, Run, load_run, parse_options

NOTEBOOKS: tuple[str, ...] = (
    "01_data.ipynb",
    "02_inr.ipynb",
    "03_inr2vec.ipynb",
    "04_synthesis.ipynb",
    "05_quality.ipynb",
    "06_segmentation.ipynb",
    "07_beyond_the_paper.ipynb",
    "08_scar_enhancement.ipynb",
)
"""The book's notebooks in reading (and execution) order."""


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the executed copy (with the traceback in it) and the error."""


def require_book() -> None:
    """Fail early, and say how to fix it, where ``lgelib book`` cannot run: outside a clone of the repository (the
    notebooks and the book's pages are not part of the installed package) or without the ``book`` extra."""
    import importlib.util

    missing = [name for name in ("notebooks", "book") if not (REPO_ROOT / name).is_dir()]
    if missing:
        raise RuntimeError(
            f"lgelib book runs the notebooks of a clone of the repository; {', '.join(missing)}/ "
            f"is not next to this lgelib ({REPO_ROOT}). Clone the repository and install it with "
            "pip install -e '.[book,segmentation]'."
        )
    absent = [name for name in ("papermill", "jupyter_book", "ipykernel") if importlib.util.find_spec(name) is None]
    if absent:
        raise RuntimeError(
            f"lgelib book needs the book extra ({', '.join(absent)} not installed): "
            "pip install -e '.[book,segmentation]'"
        )


def notebook_parameters(notebooks: tuple[str, ...] = NOTEBOOKS) -> dict[str, list[str]]:
    """The names each notebook's parameters cell sets (``run_dir``, ``run_options`` and the chapter's own, such as
    ``n_examples``), with the notebooks that take them."""
    import re

    names: dict[str, list[str]] = {}
    for name in notebooks:
        notebook = json.loads((REPO_ROOT / "notebooks" / name).read_text(encoding="utf-8"))
        cell = next(c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        for assigned in re.findall(r"^(\w+) = ", "".join(cell["source"]), flags=re.M):
            names.setdefault(assigned, []).append(name)
    return names


def split_parameters(parameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``lgelib book``'s parameters as (run options, chapter parameters): run options (`lgelib.run.RunOptions`, the
    short names, dotted settings) go to ``run.json``; a chapter's own (``n_examples``) to papermill. An unknown name
    fails before anything runs."""
    chapters = {name for name in notebook_parameters() if name not in ("run_dir", "run_options")}
    run, chapter = {}, {}
    for name, value in parameters.items():
        if name in OPTION_NAMES or name in ALIASES or name == "overrides" or "." in name:
            run[name] = value
        elif name in chapters:
            chapter[name] = value
        elif name != "run_dir":
            raise ValueError(
                f"unknown parameter {name!r}: not a run option ({', '.join(OPTION_NAMES)}; short "
                f"names {', '.join(ALIASES)}; any setting by dotted key) nor a chapter's parameter "
                f"({', '.join(sorted(chapters))})"
            )
    return run, chapter


def execute_notebooks(
    run: RunLayout,
    parameters: dict[str, Any],
    notebooks: tuple[str, ...] = NOTEBOOKS,
    kernel: str = "python3",
    progress: bool = True,
) -> list[Path]:
    """Execute each notebook with papermill (from the repository root) and stop at the first failure; the
    notebooks read the run's settings from ``run.json`` and get ``parameters`` (``run_dir`` and chapter
    parameters). With ``progress`` each chapter's printed lines stream to this terminal as they happen, under a
    bar of its cells."""
    require_book()
    import papermill
    from papermill.exceptions import PapermillExecutionError

    run.notebooks.mkdir(parents=True, exist_ok=True)
    done = []
    for name in notebooks:
        output = run.notebooks / name
        started = time.perf_counter()
        logger.info("book: executing %s ...", name)
        try:
            papermill.execute_notebook(
                str(REPO_ROOT / "notebooks" / name),
                str(output),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(REPO_ROOT),
                progress_bar=progress,
                stdout_file=sys.stdout if progress else None,
                stderr_file=sys.stderr if progress else None,
            )
        except PapermillExecutionError as error:
            raise NotebookFailed(
                f"notebook {name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
                f"the executed copy with the full traceback is {output}"
            ) from None
        logger.info("book: %s done in %.0f s", name, time.perf_counter() - started)
        done.append(output)
    return done


MATHJAX_PARTS = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui")
"""What the book needs of MathJax 3 (from the sphinx-mathjax-offline package): the TeX-to-HTML bundle, its fonts,
the TeX extensions it loads on demand and its menu."""


def copy_mathjax(extra: Path) -> None:
    """MathJax 3 into ``extra/mathjax``: an ``html_extra_path`` folder (under ``_static`` every .js would be loaded
    by every page); ``book/_config.yml`` points ``mathjax_path`` there."""
    from importlib import metadata

    source = Path(metadata.distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static/mathjax"))
    for part in MATHJAX_PARTS:
        target = extra / "mathjax" / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if (source / part).is_dir():
            shutil.copytree(source / part, target)
        else:
            shutil.copy(source / part, target)


def write_landing(run: Run) -> None:
    """Put the run's account (provenance, Figure 1, Table 1 beside the paper's) into the landing page."""
    from lgelib.landing import MARKER, reproduction_markdown

    intro = run.layout.book / "intro.md"
    text = intro.read_text()
    if MARKER not in text:
        raise RuntimeError(f"{intro}: the line {MARKER!r} that receives the run's account is missing")
    account = reproduction_markdown(
        run.layout, run.settings, run.provenance(), "figures/figure1.png", run.shareable_synthetic_ids()
    )
    intro.write_text(text.replace(MARKER, account))


def _without_local_paths(value: Any, replacements: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_without_local_paths(item, replacements) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key.startswith("image/") else _without_local_paths(item, replacements)
            for key, item in value.items()
        }
    return value


def local_folders(run: Run) -> dict[Path, str]:
    """Folders of this machine a run's pages may mention, with what a page shows instead: the manifest's (its
    file name stays) and the data root it names (``DATA_ROOT``). Folder names of hospital data can identify
    patients or sites."""
    from lgelib.data.manifest import load_manifest

    manifest = run.manifest.resolve()
    folders = {manifest.parent: "MANIFEST_DIR"}
    try:
        root = load_manifest(manifest).source.get("root")
    except Exception:  # noqa: BLE001 - an invalid manifest has already failed the run; nothing more to hide
        root = None
    if root:
        folders[Path(root).expanduser().resolve()] = "DATA_ROOT"
    return folders


def reader_page(notebook: dict[str, Any], run_dir: Path, folders: dict[Path, str] | None = None) -> dict[str, Any]:
    """An executed notebook as a reader meets it: papermill's injected cell removed (the provenance line says what
    ran), the parameters cell collapsed (one click away), and no absolute local path in any cell or output: the run
    directory appears relative to the repository, or as ``RUN_DIR`` when it lies elsewhere; other ``folders``
    (`local_folders`) as the names given."""
    run_dir = Path(run_dir).resolve()
    try:
        shown = str(run_dir.relative_to(REPO_ROOT))
    except ValueError:
        shown = "RUN_DIR"
    named = {
        run_dir: shown,
        **{
            folder: name
            for folder, name in (folders or {}).items()
            if len(folder.parts) > 2 and not str(folder).startswith(str(REPO_ROOT))
        },
    }
    # Longest first, so a folder inside another is replaced before its parent.
    replacements = [(str(folder), name) for folder, name in sorted(named.items(), key=lambda item: -len(str(item[0])))]
    replacements += [(str(REPO_ROOT) + "/", ""), (str(REPO_ROOT), ".")]
    cells = []
    for cell in notebook["cells"]:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
        cell = {
            **cell,
            "metadata": {**cell.get("metadata", {}), "tags": tags},
            "source": _without_local_paths(cell.get("source", ""), replacements),
        }
        if "outputs" in cell:
            cell["outputs"] = _without_local_paths(cell["outputs"], replacements)
        cells.append(cell)
    return {**notebook, "cells": cells}


def assemble_source(run: Run) -> None:
    """The run's book source: the pages of ``book/``, the executed notebooks, the landing page's account of the
    run, and plotly.js and MathJax so that the built book needs no network."""
    layout = run.layout
    if layout.book.exists():
        shutil.rmtree(layout.book)
    shutil.copytree(REPO_ROOT / "book", layout.book, ignore=shutil.ignore_patterns("_build"))
    (layout.book / "notebooks").mkdir(parents=True)
    folders = local_folders(run)
    for executed in sorted(layout.notebooks.glob("*.ipynb")):
        page = reader_page(json.loads(executed.read_text(encoding="utf-8")), layout.root, folders)
        (layout.book / "notebooks" / executed.name).write_text(json.dumps(page, indent=1), encoding="utf-8")
    # plotly.js once, offline: Jupyter Book adds a script tag for every .js under _static; the notebooks' plotly
    # figures carry only their HTML (lgelib.figures.plotly_bundle).
    import plotly

    static = layout.book / "_static"
    static.mkdir(exist_ok=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")
    copy_mathjax(layout.book / "_extra")
    write_landing(run)


def build_html(run: RunLayout) -> Path:
    """Jupyter Book 1 build of the assembled source: no execution, warnings are errors, offline."""
    executable = Path(sys.executable).parent / "jupyter-book"
    command = [str(executable), "build", str(run.book), "--builder", "html", "-W", "-n", "--keep-going"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return run.html / "index.html"


def run_book(run_dir: Path, parameters: dict[str, Any], build: bool = True, progress: bool = True) -> Path:
    """Write the run's settings (``run_dir/run.json``) from ``parameters`` (run options and chapter parameters,
    `split_parameters`), execute every notebook and build the book; return the built index page (or the folder of
    executed notebooks). ``progress``: stream each chapter's printed lines and a bar of its cells while it runs."""
    options, chapter = split_parameters(parameters)
    run = Run(parse_options(options), RunLayout(Path(run_dir).resolve()))
    run.write()
    execute_notebooks(run.layout, {**chapter, "run_dir": str(run.layout.root)}, progress=progress)
    if not build:
        return run.layout.notebooks
    run = load_run(run.layout.root)  # what the chapters ran (a chapter run by hand may have changed it)
    assemble_source(run)
    return build_html(run.layout)
