"""Preparing a dataset on the canonical grid: layout, round trip through load_prepared, nothing partial on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lgelib.cli import main
from lgelib.data.grid import GridSettings
from lgelib.data.prepare import load_prepared, prepare_dataset
from lgelib.data.summary import prepared_summary
from lgelib.data.validate import validate_dataset
from lgelib.errors import DataError

from conftest import REPO, lv_label_map

GRID = GridSettings(shape=(6, 32, 32), inplane_spacing_mm=2.0)


def test_prepare_writes_a_valid_dataset_that_loads_back(toy_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    manifest = prepare_dataset(toy_dataset, GRID, out, progress=False)
    assert validate_dataset(manifest, progress=False, grid=GRID).ok
    prepared = load_prepared(out)
    assert prepared.case_ids == ["c0", "c1", "c2", "m3"]
    assert prepared.images.shape == (4, *GRID.shape) and prepared.myocardium.dtype == bool
    assert set(prepared.split.train) | set(prepared.split.test) == set(prepared.case_ids)
    assert prepared.myocardium[:, 0].sum() > prepared.myocardium[:, -1].sum()  # base first
    assert not prepared.fibrosis[1].any() and prepared.fibrosis[0].any()
    record = json.loads((out / "prepared.json").read_text())
    assert record["grid"]["shape"] == list(GRID.shape) and record["publishable"] is True
    assert set(prepared.mappings) == set(prepared.case_ids)
    np.testing.assert_array_equal(prepared.index(["m3", "c0"]), [3, 0])
    summary = prepared_summary(out)
    assert list(summary.index) == prepared.case_ids and set(summary["split"]) == {"train", "test"}
    assert summary.loc["c1", "fibrosis_ml"] == 0 and summary.loc["c0", "fibrosis_ml"] > 0
    assert (summary["slices with myocardium"] == 7).all() and (summary["slice mm"] == 9.0).all()
    voxel_ml = 1.6 * 1.6 * 9.0 / 1000
    myocardium = np.isin(lv_label_map(scar=False), [2, 3, 4]).sum() * voxel_ml
    assert summary.loc["c1", "myocardium_ml"] == pytest.approx(myocardium, abs=0.1)


def test_failed_prepare_leaves_nothing_behind(toy_dataset: Path, tmp_path: Path) -> None:
    (toy_dataset.parent / "c2" / "labels.nii.gz").write_bytes(b"garbage")
    out = tmp_path / "prepared"
    with pytest.raises(DataError, match="c2"):
        prepare_dataset(toy_dataset, GRID, out, progress=False)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_prepare_does_not_overwrite_without_force(
    toy_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prepared"
    args = ["-q", "prepare", str(toy_dataset), "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_command_line_entry_point_helps_a_newcomer() -> None:
    result = subprocess.run([sys.executable, "-m", "lgelib.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    for command in ("validate", "prepare", "phantom", "split", "examples:"):
        assert command in result.stdout


def test_finished_preparation_is_reused_and_redone_when_the_split_changes(toy_dataset: Path, tmp_path: Path) -> None:
    from lgelib.data.manifest import load_manifest
    from lgelib.data.prepare import ensure_prepared

    out = tmp_path / "prepared"
    ensure_prepared(toy_dataset, GRID, out, progress=False)
    first = (out / "prepared.json").stat().st_mtime_ns
    ensure_prepared(toy_dataset, GRID, out, progress=False)
    assert (out / "prepared.json").stat().st_mtime_ns == first
    ensure_prepared(load_manifest(toy_dataset, {"split.seed": 5}), GRID, out, progress=False)
    assert json.loads((out / "prepared.json").read_text())["split"]["seed"] == 5


def test_a_run_follows_its_source_manifest_and_files_not_a_stale_copy(toy_dataset: Path, tmp_path: Path) -> None:
    """Privacy and stale results: a prepared folder is reused only for the exact content that produced it."""
    import nibabel as nib
    import yaml

    from lgelib.config import get_profile
    from lgelib.data.prepare import load_run_data

    run, grid = tmp_path / "run", get_profile("smoke").grid
    data = yaml.safe_load(toy_dataset.read_text())
    data["publishable"] = False
    toy_dataset.write_text(yaml.safe_dump(data))
    # A copy prepared with the flag overridden to publishable sits in the run directory ...
    assert (
        main(
            [
                "-q",
                "prepare",
                str(toy_dataset),
                "--profile",
                "smoke",
                "--set",
                "publishable=true",
                "--out",
                str(run / "data"),
            ]
        )
        == 0
    )
    assert json.loads((run / "data" / "prepared.json").read_text())["publishable"] is True
    # ... a run of the private manifest rebuilds it and takes the flag from the source.
    prepared = load_run_data(toy_dataset, grid, run)
    assert prepared.publishable is False
    assert json.loads((run / "data" / "prepared.json").read_text())["publishable"] is False
    # A label map edited in place (scar removed from c0) is not served from the old copy.
    c0 = prepared.index(["c0"])[0]
    assert prepared.fibrosis[c0].sum() > 0
    labels_file = toy_dataset.parent / "c0" / "labels.nii.gz"
    labels = nib.load(labels_file)
    array = np.asarray(labels.dataobj).copy()
    array[np.isin(array, [3, 4])] = 2
    nib.save(nib.Nifti1Image(array, labels.affine), str(labels_file))
    assert load_run_data(toy_dataset, grid, run).fibrosis[c0].sum() == 0
    # Unchanged content is reused as before.
    stamp = (run / "data" / "prepared.json").stat().st_mtime_ns
    load_run_data(toy_dataset, grid, run)
    assert (run / "data" / "prepared.json").stat().st_mtime_ns == stamp


def test_a_killed_runs_hidden_partial_folders_are_cleaned_on_the_next_run(toy_dataset: Path, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited: its leftovers are stale
    out = tmp_path / "prepared"
    stale = [tmp_path / f".prepared.partial-{dead_pid}-x1y2", tmp_path / f".prepared.old-{dead_pid}"]
    live = tmp_path / f".prepared.partial-{os.getppid()}-z3"  # a running process's: left alone
    other = tmp_path / f".other.partial-{dead_pid}-q"  # another target's: left alone
    for folder in [*stale, live, other]:
        (folder / "cases").mkdir(parents=True)
        (folder / "cases" / "big.bin").write_bytes(b"\0" * 1000)
    prepare_dataset(toy_dataset, GRID, out, progress=False)
    assert not any(folder.exists() for folder in stale)
    assert live.exists() and other.exists() and (out / "manifest.yaml").exists()
