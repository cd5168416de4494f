"""The README's main command end to end on a tiny cohort: notebooks executed by papermill, book built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lgelib.pipeline import NOTEBOOKS, REPO_ROOT, run_book


QUICK = {"steps": 150, "inr2vec_steps": 200, "edm_steps": 100, "n_synthetic": 3, "n_synthetic_sets": [0, 3],
         "seg_epochs": 1}
"""Few steps and volumes: the pages must run and say what they did, not reach the profile's quality."""


@pytest.fixture
def tiny_phantom(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "tiny", "publishable": True,
                                    "source": {"kind": "phantom", "n_cases": 5, "seed": 3},
                                    "split": {"seed": 0, "n_test": 2}}))
    return path


def test_notebooks_are_committed_without_outputs() -> None:
    for name in NOTEBOOKS:
        notebook = json.loads((REPO_ROOT / "notebooks" / name).read_text())
        code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        assert code and not any(c["outputs"] or c["execution_count"] for c in code), name
        assert "parameters" in code[0]["metadata"].get("tags", []), f"{name}: first code cell must be the parameters"


def test_book_runs_and_builds(tiny_phantom: Path, tmp_path: Path) -> None:
    index = run_book(tmp_path / "run", {"profile": "smoke", "manifest": str(tiny_phantom), "split_seed": 7, **QUICK})
    assert index.is_file()
    page = (index.parent / "notebooks" / "01_data.html").read_text()
    assert "5 cases" in page and "seed 7" in page  # the parameters reached the notebook
    assert "<img" in page and (index.parent / "_images").is_dir() and any((index.parent / "_images").iterdir())
    assert (tmp_path / "run" / "data" / "manifest.yaml").is_file()
    inr_page = (index.parent / "notebooks" / "02_inr.html").read_text()
    assert "3 INRs (3 x 15,907 parameters)" in inr_page and "150 steps" in inr_page and "<img" in inr_page
    assert (tmp_path / "run" / "inr" / "inrs.safetensors").is_file()
    latent_page = (index.parent / "notebooks" / "03_inr2vec.html").read_text()
    assert "2 held-out INRs ready" in latent_page and "inr2vec: 200 steps of 3 INRs" in latent_page
    assert "<img" in latent_page and (tmp_path / "run" / "inr2vec" / "latents.safetensors").is_file()
    synthesis_page = (index.parent / "notebooks" / "04_synthesis.html").read_text()
    assert "3 synthetic volumes written" in synthesis_page and "100 steps of 128 latents" in synthesis_page
    assert "OK: synth/manifest.yaml: 3 cases, 3 readable, 0 errors" in synthesis_page and "<img" in synthesis_page
    assert len(list((tmp_path / "run" / "synth" / "cases").iterdir())) == 3
    quality_page = (index.parent / "notebooks" / "05_quality.html").read_text()
    assert quality_page.count("<img") >= 6 and "plotly-graph-div" in quality_page  # Figures 2-4 and the extras
    assert "synthetic vs nearest real" in quality_page and "1 - myocardium Dice" in quality_page
    assert (index.parent / "_static" / "plotly.min.js").is_file()
    segmentation_page = (index.parent / "notebooks" / "06_segmentation.html").read_text()
    assert "Fibrosis N=0" in segmentation_page and "Fibrosis N=3" in segmentation_page
    assert "0.524" in segmentation_page  # the paper's Table 1 beside ours
    per_case = (tmp_path / "run" / "seg" / "per_case_dice.csv").read_text().splitlines()
    assert len(per_case) == 1 + 2 * 2 * 4 * 2  # header + N x test cases x regions x structures


def test_private_dataset_images_stay_out_of_the_book(tiny_phantom: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(tiny_phantom.read_text())
    data["publishable"] = False
    tiny_phantom.write_text(yaml.safe_dump(data))
    index = run_book(tmp_path / "run", {"profile": "smoke", "manifest": str(tiny_phantom), "split_seed": None, **QUICK})
    # Training curves and aggregate plots only: Figure 3's box plots, the plausibility histograms, the two
    # memorisation histograms, the Dice per case.
    loss_curves = {"03_inr2vec.ipynb": 1, "04_synthesis.ipynb": 1, "05_quality.ipynb": 4, "06_segmentation.ipynb": 1}
    for name in NOTEBOOKS:
        page = (index.parent / "notebooks" / name.replace(".ipynb", ".html")).read_text()
        assert "not marked publishable" in page and page.count("<img") == loss_curves.get(name, 0), name
