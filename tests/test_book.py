"""The README's main command end to end on a tiny cohort: notebooks executed by papermill, the book built offline,
then read back as a reader meets it, in a real headless browser with the network cut off."""

from __future__ import annotations

import json
import os
import re
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

from browser import find_chromium, offline_browser, open_page
from lgelib.data.prepare import load_run_data
from lgelib.config import get_profile
from lgelib.layout import RunLayout
from lgelib.low_data import recorded_low_data
from lgelib.pipeline import NOTEBOOKS, REPO_ROOT, NotebookFailed, execute_notebooks, run_book
from lgelib.run import Run, load_run, parse_options
from lgelib.privacy import PRIVATE_MARK

QUICK = {
    "steps": 150,
    "inr2vec_steps": 200,
    "edm_steps": 100,
    "n_synthetic": 3,
    "seg_arms": ["N0", "N3", "D3"],
    "seg_epochs": 1,
    "conditioning.n_per_request": 3,
    "enhancement.diffusion.epochs": 2,
    "enhancement.sampling.k": 2,
}
"""Few steps and volumes: the pages must run and say what they did, not reach the profile's quality."""

STAGE_CALLS = (
    "configure(",
    "load_run_data(",
    "fit_inrs(",
    "train_inr2vec(",
    "train_edm(",
    "synthesize(",
    "run_segmentation(",
    "repeat_split(",
)
"""Stage functions a chapter must not call itself: it calls the run's methods, so every chapter runs one chain."""


ARTIFACTS = Path(os.environ.get("LGELIB_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))


def tiny_manifest(path: Path, publishable: bool) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "tiny",
                "publishable": publishable,
                "source": {"kind": "phantom", "n_cases": 5, "seed": 3},
                "split": {"seed": 0, "n_test": 2},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cohort's book, split seed 7; returns the run directory."""
    folder = tmp_path_factory.mktemp("book")
    manifest = tiny_manifest(folder / "tiny.yaml", publishable=True)
    run_book(folder / "run", {"profile": "smoke", "manifest": str(manifest), "split_seed": 7, **QUICK})
    return folder / "run"


def code_cells(name: str) -> list[dict]:
    notebook = json.loads((REPO_ROOT / "notebooks" / name).read_text())
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_notebooks_are_committed_without_outputs_and_open_with_install_then_parameters() -> None:
    install = "".join(code_cells(NOTEBOOKS[0])[0]["source"])
    for name in NOTEBOOKS:
        code = code_cells(name)
        assert not any(c["outputs"] or c["execution_count"] for c in code), name
        assert "".join(code[0]["source"]) == install and "hide-cell" in code[0]["metadata"]["tags"], name
        assert "parameters" in code[1]["metadata"].get("tags", []), f"{name}: the parameters follow the install cell"
        assigned = re.findall(r"^(\w+) = ", "".join(code[1]["source"]), flags=re.M)
        assert assigned[:2] == ["run_dir", "run_options"], name  # the run; then the chapter's own, if any
        assert len(assigned) <= 4, f"{name}: a chapter takes a few display parameters, the run owns the rest"


def test_every_chapter_opens_the_run_with_one_call_and_calls_its_stages_through_it() -> None:
    for name in NOTEBOOKS:
        code = code_cells(name)
        setup = "".join(code[2]["source"])
        assert setup.count("open_run(") == 1 and "run = open_run(run_dir, run_options)" in setup, name
        body = "\n".join("".join(cell["source"]) for cell in code[1:])
        direct = [call for call in STAGE_CALLS if re.search(rf"(?<![.\w]){re.escape(call)}", body)]
        assert not direct, f"{name} calls {direct} itself instead of the run's stage methods"


def run_install_cell(cwd: Path, lgelib_installed: bool, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Execute the notebooks' install cell in ``cwd`` with lgelib present or not; return the commands it ran
    (recorded, not run: the clone and the pip install are what Colab would do)."""
    import importlib.util
    import subprocess as real_subprocess

    commands: list[list[str]] = []

    def record(command, check=False):
        commands.append(list(command))
        if command[:2] == ["git", "clone"]:
            Path(command[-1]).mkdir()
        return real_subprocess.CompletedProcess(command, 0)

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "lgelib" and not lgelib_installed else find_spec(name, *a),
    )
    monkeypatch.setattr(real_subprocess, "run", record)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(cwd)
    exec("".join(code_cells(NOTEBOOKS[0])[0]["source"]), {})
    return commands


def test_install_cell_does_nothing_where_lgelib_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_install_cell(REPO_ROOT, True, monkeypatch) == [] and Path.cwd() == REPO_ROOT
    assert run_install_cell(REPO_ROOT / "notebooks", True, monkeypatch) == []
    assert Path.cwd() == REPO_ROOT  # opened from notebooks/: paths are the repository root's, as under lgelib book


def test_install_cell_clones_and_installs_where_lgelib_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LGELIB_SOURCE", "https://example.org/fork.git")
    commands = run_install_cell(tmp_path, False, monkeypatch)
    assert commands[0] == ["git", "clone", "--depth", "1", "https://example.org/fork.git", "lgelib-companion"]
    assert commands[1][1:] == ["-m", "pip", "install", "--quiet", "-e", "lgelib-companion[book,segmentation]"]
    assert Path.cwd() == tmp_path / "lgelib-companion" and str(tmp_path / "lgelib-companion") in sys.path


def test_book_runs_and_builds(built_book: Path) -> None:
    html = built_book / "book" / "_build" / "html"
    page = (html / "notebooks" / "01_data.html").read_text()
    assert "5 cases" in page and "seed 7" in page  # the parameters reached the notebook
    assert "<img" in page and any((html / "_images").iterdir())
    assert (built_book / "data" / "manifest.yaml").is_file()
    inr_page = (html / "notebooks" / "02_inr.html").read_text()
    assert "3 INRs (3 x 15,907 parameters)" in inr_page and "150 steps" in inr_page and "<img" in inr_page
    assert (built_book / "inr" / "inrs.safetensors").is_file()
    latent_page = (html / "notebooks" / "03_inr2vec.html").read_text()
    assert "2 held-out INRs ready" in latent_page and "inr2vec: 200 steps of 3 INRs" in latent_page
    assert "<img" in latent_page and (built_book / "inr2vec" / "latents.safetensors").is_file()
    synthesis_page = (html / "notebooks" / "04_synthesis.html").read_text()
    assert "3 synthetic volumes written" in synthesis_page and "100 steps of 128 latents" in synthesis_page
    assert "OK: synth/manifest.yaml: 3 cases, 3 readable, 0 errors" in synthesis_page and "<img" in synthesis_page
    assert len(list((built_book / "synth" / "cases").iterdir())) == 3
    quality_page = (html / "notebooks" / "05_quality.html").read_text()
    assert quality_page.count("<img") >= 6 and "plotly-graph-div" in quality_page  # Figures 2-4 and the extras
    assert "synthetic vs nearest real" in quality_page and "1 - myocardium Dice" in quality_page
    assert (html / "_static" / "plotly.min.js").is_file() and (html / "mathjax" / "tex-chtml.js").is_file()
    segmentation_page = (html / "notebooks" / "06_segmentation.html").read_text()
    assert all(f"Fibrosis {arm}" in segmentation_page for arm in ("N0", "N3", "D3"))
    assert "0.524" in segmentation_page  # the paper's Table 1 beside ours
    assert "NoNormalization" in segmentation_page and "from N0" in segmentation_page  # one plan, shown
    assert "What this run shows" in segmentation_page and "smallest p" in segmentation_page
    enhancement_page = (html / "notebooks" / "08_scar_enhancement.html").read_text()
    assert "CNR(scar, myo)" in enhancement_page and "4.97 ± 2.42" in enhancement_page  # ours beside the paper's
    assert enhancement_page.count("<img") == 3  # loss curves, CNR against lambda, before / after slices
    assert (built_book / "enhance" / "local" / "denoiser.safetensors").is_file()
    assert (built_book / "enhance" / "global" / "denoiser.safetensors").is_file()
    per_case = (built_book / "seg" / "per_case_dice.csv").read_text().splitlines()
    assert len(per_case) == 1 + 3 * 2 * 4 * 2  # header + arms x test cases x regions x structures


def test_every_page_says_what_produced_it_and_the_landing_page_gives_table1(built_book: Path) -> None:
    html = built_book / "book" / "_build" / "html"
    for name in ["intro.html"] + [f"notebooks/{n.replace('.ipynb', '.html')}" for n in NOTEBOOKS]:
        page = (html / name).read_text()
        assert "Provenance." in page and "Profile <code" in page and "split seed 7: 3 training / 2 test" in page, name
        assert re.search(r"lgelib 0\.1\.0", page) and "training seed 0, synthesis seed 0" in page, name
    landing = (html / "intro.html").read_text()
    assert "<strong>split seed 7</strong>" in landing
    assert "N0 ours" in landing and "N0 paper" in landing and "0.509" in landing  # Table 1 side by side
    assert "What this run shows." in landing  # one sentence computed from the run, not a generic caveat
    assert "Stage 1: 3 INRs" in landing and "Stage 3: 3 synthetic volumes" in landing


def test_figures_and_table_are_numbered_as_in_the_paper(built_book: Path) -> None:
    html = built_book / "book" / "_build" / "html"
    captions = []
    for name in ["intro.html"] + [f"notebooks/{n.replace('.ipynb', '.html')}" for n in NOTEBOOKS]:
        captions += [
            (name, number) for number in re.findall(r'caption-number">([^<]+?)\s*<', (html / name).read_text())
        ]
    assert captions == [
        ("intro.html", "Figure 1"),
        ("notebooks/05_quality.html", "Figure 2"),
        ("notebooks/05_quality.html", "Figure 3"),
        ("notebooks/05_quality.html", "Figure 4"),
        ("notebooks/06_segmentation.html", "Table 1"),
    ]


LAYOUT_PROBE = """() => {
  const article = document.querySelector('article.bd-article');
  const style = getComputedStyle(article);
  const box = article.getBoundingClientRect();
  const left = box.left + parseFloat(style.paddingLeft), right = box.right - parseFloat(style.paddingRight);
  const shown = el => el.getClientRects().length > 0 && !el.closest('details:not([open])');
  const describe = el => `${el.tagName.toLowerCase()}.${String(el.className).split(' ')[0]} `
    + `${Math.round(el.getBoundingClientRect().width)} px`;
  const wide = [], shrunk = [], code = [];
  for (const el of article.querySelectorAll('img, table, pre, .plotly-graph-div, .cell_output, .output')) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.left < left - 1 || r.right > right + 1 || el.scrollWidth > el.clientWidth + 1) wide.push(describe(el));
  }
  for (const img of article.querySelectorAll('img')) {
    if (shown(img) && img.naturalWidth && img.getBoundingClientRect().width / img.naturalWidth < 0.8)
      shrunk.push(`${img.naturalWidth} px drawn at ${Math.round(img.getBoundingClientRect().width)} px`);
  }
  for (const el of article.querySelectorAll('.cell_input')) {
    if (shown(el) && el.getBoundingClientRect().top < window.innerHeight) code.push(describe(el));
  }
  return {column: Math.round(right - left), wide, shrunk, code_on_first_screen: code};
}"""
"""What a reader sees of a page's layout: elements wider than the text column (or scrolling sideways inside it),
figures scaled below 80% of their drawn size (their text would be too small), and code on the first screen."""


def test_book_renders_offline_in_a_real_browser(built_book: Path) -> None:
    executable = find_chromium() if find_spec("playwright") else None
    if executable is None:
        message = "Chromium and playwright are needed (apt install chromium; pip install playwright)"
        if os.environ.get("LGELIB_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    html = built_book / "book" / "_build" / "html"
    pages = ["intro.html"] + [f"notebooks/{n.replace('.ipynb', '.html')}" for n in NOTEBOOKS]
    with offline_browser(executable) as browser:
        for name in pages:
            page, report = open_page(browser, html / name)
            assert page.title() and not report.failed_requests and not report.blocked_requests, (name, report)
            assert not report.script_errors, (name, report.script_errors)
            images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            assert images and all(images), f"{name}: {images.count(False)} of {len(images)} images did not load"
            if name.endswith(("02_inr.html", "04_synthesis.html")):  # equations typeset by the bundled MathJax
                page.wait_for_selector("mjx-container", timeout=20_000)
            if name.endswith("05_quality.html"):  # the interactive 3D figure is drawn
                page.wait_for_selector(".plotly-graph-div .main-svg", state="attached", timeout=20_000)
            layout = page.evaluate(LAYOUT_PROBE)
            assert not layout["wide"], f"{name}: wider than the text column ({layout['column']} px): {layout['wide']}"
            assert not layout["shrunk"], f"{name}: figures too wide to read at the column width: {layout['shrunk']}"
            assert not layout["code_on_first_screen"], f"{name}: code on the first screen: {layout}"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            stem = name.replace("notebooks/", "").replace(".html", "")
            page.screenshot(path=str(ARTIFACTS / f"book-{stem}-first-screen.png"))
            page.screenshot(path=str(ARTIFACTS / f"book-{stem}.png"), full_page=True)
            page.close()
    assert (ARTIFACTS / "book-intro.png").stat().st_size > 10_000


def test_a_failing_notebook_stops_the_run_naming_the_cell_and_the_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: broken\n")
    Run(parse_options({"manifest": str(broken)}), RunLayout(tmp_path / "run")).write()
    with pytest.raises(NotebookFailed) as failure:
        execute_notebooks(RunLayout(tmp_path / "run"), {"run_dir": str(tmp_path / "run")}, notebooks=NOTEBOOKS[:2])
    message = str(failure.value)
    assert re.search(r"notebook 01_data\.ipynb failed in cell \d+: DataError: .*broken\.yaml", message), message
    assert not (tmp_path / "run" / "notebooks" / NOTEBOOKS[1]).exists()  # the run stopped at the first failure


def test_private_dataset_images_stay_out_of_the_book(tmp_path: Path) -> None:
    manifest = tiny_manifest(tmp_path / "tiny.yaml", publishable=False)
    index = run_book(tmp_path / "run", {"profile": "smoke", "manifest": str(manifest), "split_seed": None, **QUICK})
    real = load_run_data(manifest, get_profile("smoke").grid, tmp_path / "run")
    shareable = load_run(tmp_path / "run").shareable_synthetic_ids()  # as the chapters ask
    shown = 1 if shareable else 0
    # No real case anywhere: strip plots of per-case numbers without ids (01-03), training curves (03, 06) and
    # aggregate plots (02: the benchmark's time-to-fidelity curves), plus
    # synthetic examples only when the memorisation check clears some (04: the examples; 05: Figure 2 and Figure 4's
    # static view, or in their place a note that keeps their numbers).
    images = {
        "01_data.ipynb": 1,
        "02_inr.ipynb": 2,
        "03_inr2vec.ipynb": 2,
        "04_synthesis.ipynb": 1 + shown,
        "05_quality.ipynb": 7,  # Figures 2-4 (or their notes), plausibility, three memorisation audits
        "06_segmentation.ipynb": 2,
        # aggregates: the conditioning check, and the recorded low-data curve of each budget on file
        "07_beyond_the_paper.ipynb": 1 + len(recorded_low_data()),
        "08_scar_enhancement.ipynb": 2,  # loss curves and CNR against lambda; no before / after slices
    }
    for name in NOTEBOOKS:
        page = (index.parent / "notebooks" / name.replace(".ipynb", ".html")).read_text()
        assert PRIVATE_MARK in page and page.count("<img") == images[name], name
        # No local folder and no real case id (often a patient number in hospital data) on any page.
        assert str(tmp_path) not in page and str(REPO_ROOT) not in page, name
        leaked = [case_id for case_id in real.case_ids if case_id in page]
        assert not leaked, (name, leaked)
    for name in ("04_synthesis.html", "05_quality.html"):
        page = (index.parent / "notebooks" / name).read_text()
        assert (
            f"{len(shareable)} of which pass the memorisation check" if shareable else "no synthetic volume passed"
        ) in page, name
    assert ("plotly-graph-div" in (index.parent / "notebooks" / "05_quality.html").read_text()) == bool(shareable)
    landing = (index.parent / "intro.html").read_text()
    assert "the real slice is not shown" in landing


def test_reader_page_removes_machinery_and_local_paths(tmp_path: Path) -> None:
    from lgelib.pipeline import reader_page

    run_dir = tmp_path / "private-hospital-run"
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "profile = 'smoke'\n", "outputs": []},
            {
                "cell_type": "code",
                "metadata": {"tags": ["injected-parameters"]},
                "source": f"run_dir = '{run_dir}'\n",
                "outputs": [],
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "fit()",
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": [f"3 cases fitted in {run_dir}/inr/cases\n"]},
                    {
                        "output_type": "display_data",
                        "data": {"text/plain": f"{REPO_ROOT}/runs/x", "image/png": "iVBOR" + str(run_dir)},
                    },
                ],
            },
        ]
    }
    page = reader_page(notebook, run_dir)
    tags = [cell["metadata"]["tags"] for cell in page["cells"]]
    assert "hide-cell" in tags[0] and "remove-cell" in tags[1] and tags[2] == []
    text = json.dumps([cell["source"] for cell in page["cells"]] + [page["cells"][2]["outputs"][0]])
    assert str(run_dir) not in text and "RUN_DIR/inr/cases" in text and "private-hospital-run" not in text
    assert page["cells"][2]["outputs"][1]["data"]["text/plain"] == "runs/x"
    assert page["cells"][2]["outputs"][1]["data"]["image/png"].startswith("iVBOR")  # images are left as they are
    hospital = tmp_path / "hospital" / "MRN-123456"
    named = reader_page(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "metadata": {},
                    "source": "",
                    "outputs": [
                        {
                            "output_type": "stream",
                            "name": "stdout",
                            "text": f"OK: {hospital}/cases.yaml; {hospital}/P1/img.nii.gz",
                        }
                    ],
                }
            ]
        },
        run_dir,
        {hospital: "MANIFEST_DIR"},
    )
    assert named["cells"][0]["outputs"][0]["text"] == "OK: MANIFEST_DIR/cases.yaml; MANIFEST_DIR/P1/img.nii.gz"
    inside = reader_page(notebook, REPO_ROOT / "runs" / "smoke")
    assert inside["cells"][0]["source"] == "profile = 'smoke'\n"


def test_book_command_takes_a_data_root_and_streams_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lgelib import cli, pipeline

    calls = {}

    def fake_run_book(run_dir: Path, parameters: dict, build: bool = True, progress: bool = True) -> Path:
        calls.update(run_dir=run_dir, parameters=parameters, progress=progress, root=os.environ.get("EMIDEC_ROOT"))
        return run_dir

    monkeypatch.setattr(pipeline, "run_book", fake_run_book)
    monkeypatch.delenv("EMIDEC_ROOT", raising=False)
    assert cli.main(["book", "--root", str(tmp_path / "emidec"), "--run-dir", str(tmp_path / "run"), "--no-build"]) == 0
    assert calls["root"] == str((tmp_path / "emidec").resolve()) and calls["progress"] is True
    assert (
        cli.main(
            [
                "-q",
                "book",
                "--run-dir",
                str(tmp_path / "run"),
                "--no-build",
                "--set",
                "edm.steps=5",
                "-p",
                "steps=7",
                "--set",
                "n_examples=2",
            ]
        )
        == 0
    )
    assert calls["progress"] is False
    assert {"edm.steps": 5, "steps": 7, "n_examples": 2}.items() <= calls["parameters"].items()


def test_book_parameters_go_to_the_run_or_to_the_chapter_and_unknown_ones_fail_early() -> None:
    from lgelib.pipeline import split_parameters

    run, chapter = split_parameters(
        {"profile": "smoke", "steps": 7, "edm.steps": 5, "seg_arms": "N0,D3", "n_examples": 2, "real_case": "P001"}
    )
    assert run == {"profile": "smoke", "steps": 7, "edm.steps": 5, "seg_arms": "N0,D3"}
    assert chapter == {"n_examples": 2, "real_case": "P001"}
    with pytest.raises(ValueError, match=r"unknown parameter 'stpes': not a run option"):
        split_parameters({"stpes": 7})


def test_book_outside_a_clone_or_without_its_extra_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from lgelib import pipeline

    monkeypatch.setattr(pipeline, "REPO_ROOT", tmp_path)  # an installed wheel: no notebooks/ beside the package
    with pytest.raises(RuntimeError, match=r"clone of the repository; notebooks, book/ is not next to"):
        pipeline.require_book()
    monkeypatch.setattr(pipeline, "REPO_ROOT", REPO_ROOT)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "papermill" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError, match=r"needs the book extra \(papermill not installed\)"):
        pipeline.require_book()


def test_colab_driver_installs_beside_colabs_packages_and_runs_the_whole_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """colab/companion.ipynb: the repository URL is its one setting; it keeps the runtime's torch and ipykernel
    (pinned by a constraints file, so nothing forces a restart) and runs lgelib book in the same runtime. Its
    commands are recorded, not run (no Colab here)."""
    import importlib.metadata
    import subprocess as real_subprocess

    driver = json.loads((REPO_ROOT / "colab" / "companion.ipynb").read_text())
    cells = [cell for cell in driver["cells"] if cell["cell_type"] == "code"]
    assert not any(cell["outputs"] for cell in cells) and "parameters" in cells[0]["metadata"]["tags"]
    settings = re.findall(r"^(\w+) = ", "".join(cells[0]["source"]), flags=re.M)
    assert settings[0] == "REPOSITORY"
    commands: list[list[str]] = []

    def record(command, check=False, **kwargs):
        commands.append(list(command))
        if command[:2] == ["git", "clone"]:
            Path(command[-1]).mkdir()
        return real_subprocess.CompletedProcess(command, 0)

    class Book:
        def __init__(self, command, **kwargs):
            commands.append(list(command))
            self.stdout = iter(["[lgelib] book: executing 01_data.ipynb ...\n"])

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(real_subprocess, "run", record)
    monkeypatch.setattr(real_subprocess, "Popen", Book)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec("".join(cells[0]["source"]), namespace)
    with pytest.raises(ValueError, match="set REPOSITORY"):
        exec("".join(cells[1]["source"]), dict(namespace))
    namespace["REPOSITORY"] = "https://example.org/lgelib.git"
    exec("".join(cells[1]["source"]), namespace)
    exec("".join(cells[2]["source"]), namespace)
    assert commands[0] == ["git", "clone", "--depth", "1", "https://example.org/lgelib.git", str(tmp_path / "lgelib")]
    assert commands[1][1:] == [
        "-m",
        "pip",
        "install",
        "--quiet",
        "-c",
        "colab-constraints.txt",
        "-e",
        f"{tmp_path / 'lgelib'}[book,segmentation]",
    ]
    kept = (tmp_path / "colab-constraints.txt").read_text().split()
    assert f"torch=={importlib.metadata.version('torch')}" in kept
    assert f"ipykernel=={importlib.metadata.version('ipykernel')}" in kept
    assert commands[2][1:] == [
        "-m",
        "lgelib.cli",
        "book",
        "--profile",
        "smoke",
        "--manifest",
        "data_manifest/phantom.yaml",
    ]


def test_a_chapter_outside_an_install_says_how_to_get_lgelib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LGELIB_SOURCE", raising=False)
    with pytest.raises(RuntimeError, match="set the LGELIB_SOURCE environment variable"):
        run_install_cell(tmp_path, False, monkeypatch)
