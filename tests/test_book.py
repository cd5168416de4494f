"""The README's main command end to end on a tiny cohort: notebooks executed by papermill, book built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lgelib.pipeline import NOTEBOOKS, REPO_ROOT, run_book


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
    index = run_book(tmp_path / "run", {"profile": "smoke", "manifest": str(tiny_phantom), "split_seed": 7,
                                        "steps": 150})
    assert index.is_file()
    page = (index.parent / "notebooks" / "01_data.html").read_text()
    assert "5 cases" in page and "seed 7" in page  # the parameters reached the notebook
    assert "<img" in page and (index.parent / "_images").is_dir() and any((index.parent / "_images").iterdir())
    assert (tmp_path / "run" / "data" / "manifest.yaml").is_file()
    inr_page = (index.parent / "notebooks" / "02_inr.html").read_text()
    assert "3 INRs (3 x 15,907 parameters)" in inr_page and "150 steps" in inr_page and "<img" in inr_page
    assert (tmp_path / "run" / "inr" / "inrs.safetensors").is_file()


def test_private_dataset_images_stay_out_of_the_book(tiny_phantom: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(tiny_phantom.read_text())
    data["publishable"] = False
    tiny_phantom.write_text(yaml.safe_dump(data))
    index = run_book(tmp_path / "run", {"profile": "smoke", "manifest": str(tiny_phantom), "split_seed": None,
                                        "steps": 20})
    for name in NOTEBOOKS:
        page = (index.parent / "notebooks" / name.replace(".ipynb", ".html")).read_text()
        assert "not marked publishable" in page and "<img" not in page, name
