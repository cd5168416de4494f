"""Manifest format: the schema, the shipped manifests, overrides, splits and the errors for bad manifests."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from lgelib.cli import main
from lgelib.data.dataset import open_dataset
from lgelib.data.manifest import load_manifest, manifest_schema, parse_override
from lgelib.errors import DataError

from conftest import REPO, write_manifest


def problems_of(path: Path, overrides: dict | None = None) -> str:
    with pytest.raises(DataError) as caught:
        load_manifest(path, overrides)
    return str(caught.value)


def test_schema_file_is_valid_and_shipped_in_data_manifest() -> None:
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads((REPO / "data_manifest" / "manifest.schema.json").read_text()) == schema


@pytest.mark.parametrize("name", ["phantom.yaml", "emidec.yaml", "own_data_template.yaml"])
def test_shipped_manifests_follow_the_schema(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMIDEC_ROOT", "/somewhere")
    manifest = load_manifest(REPO / "data_manifest" / name)
    assert manifest.kind in ("phantom", "emidec", "nifti")
    assert isinstance(manifest.publishable, bool)


def test_emidec_root_comes_from_the_environment_or_an_override(monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / "data_manifest" / "emidec.yaml"
    monkeypatch.delenv("EMIDEC_ROOT", raising=False)
    message = problems_of(path)
    assert "EMIDEC_ROOT is not set" in message and "source.root" in message and str(path) in message
    assert load_manifest(path, {"source.root": "/data/emidec"}).source["root"] == "/data/emidec"
    monkeypatch.setenv("EMIDEC_ROOT", "/env/emidec")
    assert load_manifest(path).source["root"] == "/env/emidec"


def test_unknown_keys_and_wrong_types_name_the_key_and_file(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path / "m.yaml", [{"id": "a", "image": "a.nii.gz", "labels": "l.nii.gz"}], colour="blue", publishable="yes"
    )
    message = problems_of(path)
    assert str(path) in message
    assert "unknown key" in message and "colour" in message
    assert "publishable" in message and "boolean" in message


def test_wrong_type_inside_source_and_split(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path / "m.yaml", [{"id": "a", "image": 3, "labels": "l.nii.gz"}], split={"seed": "zero", "n_test": 1}
    )
    message = problems_of(path)
    assert "source.cases.0.image" in message and "split.seed" in message


def test_case_needs_labels_or_both_masks(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.yaml", [{"id": "p1", "image": "a.nii.gz", "myocardium": "m.nii.gz"}])
    message = problems_of(path)
    assert "p1" in message and "either labels, or both myocardium and fibrosis" in message


def test_unknown_phantom_parameter(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "p",
                "publishable": True,
                "source": {"kind": "phantom", "n_cases": 4, "wall_colour": "red"},
                "split": {"seed": 0, "n_test": 1},
            }
        )
    )
    assert "wall_colour" in problems_of(path)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n")
    assert "not valid YAML" in problems_of(bad)
    assert "not found" in problems_of(tmp_path / "absent.yaml")


def test_split_lists_overlap_and_duplicates(tmp_path: Path) -> None:
    cases = [{"id": c, "image": "i.nii.gz", "labels": "l.nii.gz"} for c in ("a", "b", "c")]
    path = write_manifest(tmp_path / "m.yaml", cases, split={"train": ["a", "b"], "test": ["b", "c", "c"]})
    message = problems_of(path)
    assert "b: " in message and "both the train and the test split" in message
    assert "case c is listed twice" in message


def test_split_forms_cannot_be_mixed(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path / "m.yaml", [{"id": "a", "image": "i", "labels": "l"}], split={"seed": 1, "n_test": 1, "test": ["a"]}
    )
    assert "not both" in problems_of(path)


def test_seeded_split_is_deterministic_and_seed_dependent(toy_dataset: Path) -> None:
    first = open_dataset(toy_dataset, progress=False).split
    again = open_dataset(toy_dataset, progress=False).split
    assert first == again and len(first.test) == 1 and set(first.train) | set(first.test) == {"c0", "c1", "c2", "m3"}
    tests = {open_dataset(load_manifest(toy_dataset, {"split.seed": s}), progress=False).split.test for s in range(8)}
    assert len(tests) > 1


def test_explicit_split_with_unknown_case_and_too_large_test(toy_dataset: Path) -> None:
    with pytest.raises(DataError, match="nope: .*in the split but not in the dataset"):
        open_dataset(load_manifest(toy_dataset, {"split": {"test": ["nope"]}}), progress=False)
    with pytest.raises(DataError, match="n_test = 4 leaves no training case"):
        open_dataset(load_manifest(toy_dataset, {"split.n_test": 4}), progress=False)


def test_override_parsing() -> None:
    assert parse_override("split.seed=3") == ("split.seed", 3)
    assert parse_override("source.cases=[a, b]") == ("source.cases", ["a", "b"])
    with pytest.raises(ValueError, match="key=value"):
        parse_override("split.seed")


def test_any_phantom_config_field_can_be_set(tmp_path: Path) -> None:
    from lgelib.data.cohort import phantom_config_from_source

    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "p",
                "publishable": True,
                "source": {"kind": "phantom", "n_cases": 4, "noise_fraction": [0.02, 0.04]},
                "split": {"seed": 0, "n_test": 1},
            }
        )
    )
    config = phantom_config_from_source(load_manifest(path).source)
    assert config.noise_fraction == (0.02, 0.04) and config.n_cases == 4


def test_a_test_fraction_fits_a_folder_of_any_size(toy_dataset: Path) -> None:
    dataset = open_dataset(load_manifest(toy_dataset, {"split": {"seed": 0, "test_fraction": 0.5}}), progress=False)
    assert len(dataset.split.test) == 2 and len(dataset.split.train) == 2  # 4 cases x 0.5
    tiny = open_dataset(load_manifest(toy_dataset, {"split": {"seed": 0, "test_fraction": 0.01}}), progress=False)
    assert len(tiny.split.test) == 1  # at least one test case
    with pytest.raises(DataError, match="test_fraction = 0.9 .4 of 4 cases. leaves no training case"):
        open_dataset(load_manifest(toy_dataset, {"split": {"seed": 0, "test_fraction": 0.9}}), progress=False)
    with pytest.raises(DataError, match="n_test or test_fraction, not both"):
        load_manifest(toy_dataset, {"split": {"seed": 0, "test_fraction": 0.5, "n_test": 1}})
    with pytest.raises(DataError, match="test_fraction"):
        load_manifest(toy_dataset, {"split": {"seed": 0, "test_fraction": 1.5}})


def test_wrong_typed_phantom_settings_are_named_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "p",
                "publishable": True,
                "source": {"kind": "phantom", "n_cases": 4, "noise_fraction": 0.03, "scar_free_fraction": 0},
                "split": {"seed": 0, "n_test": 1},
            }
        )
    )
    assert main(["-q", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "source.noise_fraction: expected a list of 2 numbers, got 0.03" in out
    assert "scar_free_fraction" not in out  # 0 is a number: fine
