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
