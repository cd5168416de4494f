"""The EMIDEC manifest on the real emidec-derived folder (skipped where that folder is absent)."""

from __future__ import annotations

from pathlib import Path

from lgelib.data.dataset import open_dataset
from lgelib.data.manifest import load_manifest
from lgelib.data.validate import validate_dataset

from conftest import REPO


def test_every_real_case_validates(emidec_root: Path) -> None:
    overrides = {"source.root": str(emidec_root)}
    report = validate_dataset(REPO / "data_manifest" / "emidec.yaml", overrides, progress=False)
    assert report.ok and report.n_ok == report.n_cases, report.format()
    dataset = open_dataset(load_manifest(REPO / "data_manifest" / "emidec.yaml", overrides), progress=False)
    expected = sorted(p.name for p in emidec_root.iterdir() if p.name.startswith("Case_"))
    assert list(dataset.case_ids) == expected and len(expected) >= 80
    assert len(dataset.split.test) == 17 and not set(dataset.split.test) & set(dataset.split.train)


def test_the_recorded_table1_rows_are_the_low_data_curves_whole_split_point(emidec_root: Path) -> None:
    """The low-data benchmark's ``--all-from`` reads the recorded Table 1 rows as its whole-split point: they hold
    both of its arms at the long budget, on every recorded split, with exactly that split's test cases."""
    from lgelib.comparisons import read_per_case
    from lgelib.low_data import recorded_point

    rows = read_per_case(REPO / "benchmarks" / "results" / "table1_emidec_per_case.csv")
    test_cases = {}
    for seed in (0, 1, 2):
        manifest = load_manifest(
            REPO / "data_manifest" / "emidec.yaml", {"source.root": str(emidec_root), "split.seed": seed}
        )
        test_cases[seed] = open_dataset(manifest, progress=False).split.test
    point = recorded_point(rows, "real-cpu-long", ["N0", "N100-balanced"], test_cases)
    assert set(point["split_seed"]) == {0, 1, 2} and point["case_id"].nunique() > 17
