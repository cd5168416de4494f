"""`lgelib validate`: every bad input is reported with the case, the file and the problem."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from lgelib.cli import main
from lgelib.data.validate import validate_dataset

from conftest import REPO, lv_image, lv_label_map, save, write_manifest


def report_for(manifest: Path, **kwargs):
    return validate_dataset(manifest, progress=False, **kwargs)


def only_problem(manifest: Path, case_id: str, severity: str = "error"):
    report = report_for(manifest)
    found = [p for p in report.problems if p.case_id == case_id and p.severity == severity]
    assert len(found) >= 1, report.format()
    return report, found


def test_clean_dataset_passes(toy_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = report_for(toy_dataset)
    assert report.ok and report.n_cases == report.n_ok == 4 and not report.problems, report.format()
    assert main(["-q", "validate", str(toy_dataset)]) == 0
    assert capsys.readouterr().out.startswith("OK:")


def test_missing_file(toy_dataset: Path) -> None:
    (toy_dataset.parent / "c0" / "labels.nii.gz").unlink()
    _, found = only_problem(toy_dataset, "c0")
    assert found[0].file == toy_dataset.parent / "c0" / "labels.nii.gz" and "file not found" in found[0].message


def test_unreadable_file(toy_dataset: Path) -> None:
    (toy_dataset.parent / "c0" / "image.nii.gz").write_bytes(b"this is not a nifti file at all")
    _, found = only_problem(toy_dataset, "c0")
    assert found[0].file.name == "image.nii.gz" and "image:" in found[0].message
    assert "not a readable NIfTI" in found[0].message or "corrupt" in found[0].message


def test_truncated_file(toy_dataset: Path) -> None:
    path = toy_dataset.parent / "c2" / "image.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    _, found = only_problem(toy_dataset, "c2")
    assert found[0].file == path and "truncated" in found[0].message


def test_shape_mismatch(toy_dataset: Path) -> None:
    save(toy_dataset.parent / "m3" / "fib.nii.gz", np.zeros((48, 44, 6), np.uint8))
    _, found = only_problem(toy_dataset, "m3")
    assert (
        found[0].file.name == "fib.nii.gz"
        and "shape (48, 44, 6) differs from the image's (48, 44, 7)" in found[0].message
    )


def test_affine_mismatch(toy_dataset: Path) -> None:
    labels = lv_label_map()
    save(toy_dataset.parent / "c1" / "labels.nii.gz", labels, np.diag([1.6, 1.6, 10.0, 1.0]))
    _, found = only_problem(toy_dataset, "c1")
    assert found[0].file.name == "labels.nii.gz" and "affine differs" in found[0].message


def test_non_binary_mask(toy_dataset: Path) -> None:
    labels = lv_label_map()
    save(toy_dataset.parent / "m3" / "myo.nii.gz", (np.isin(labels, [2, 3]) * 255).astype(np.uint8))
    _, found = only_problem(toy_dataset, "m3")
    assert found[0].file.name == "myo.nii.gz" and "values [255]" in found[0].message and "binary" in found[0].message


def test_label_value_not_in_mapping(toy_dataset: Path) -> None:
    labels = lv_label_map()
    labels[0, 0, 0] = 7
    save(toy_dataset.parent / "c0" / "labels.nii.gz", labels)
    _, found = only_problem(toy_dataset, "c0")
    assert "values [7] are not in the label mapping" in found[0].message


def test_fibrosis_outside_myocardium_warns_or_fails(toy_dataset: Path) -> None:
    labels = lv_label_map()
    fibrosis = np.isin(labels, [3]).astype(np.uint8)
    fibrosis[2:5, 2:5, 3] = 1  # 9 voxels in the background
    save(toy_dataset.parent / "m3" / "fib.nii.gz", fibrosis)
    report, found = only_problem(toy_dataset, "m3", severity="warning")
    assert report.ok and "9 fibrosis voxels" in found[0].message and found[0].file.name == "fib.nii.gz"
    data = yaml.safe_load(toy_dataset.read_text())
    data["checks"] = {"fibrosis_outside_myocardium": "fail"}
    toy_dataset.write_text(yaml.safe_dump(data))
    report, found = only_problem(toy_dataset, "m3")
    assert not report.ok and "9 fibrosis voxels" in found[0].message


def test_empty_myocardium(toy_dataset: Path) -> None:
    save(toy_dataset.parent / "m3" / "myo.nii.gz", np.zeros((48, 44, 7), np.uint8))
    save(toy_dataset.parent / "m3" / "fib.nii.gz", np.zeros((48, 44, 7), np.uint8))
    _, found = only_problem(toy_dataset, "m3")
    assert "empty myocardium" in found[0].message and found[0].file.name == "myo.nii.gz"


def test_nan_intensities(toy_dataset: Path) -> None:
    image = lv_image(lv_label_map())
    image[10, 10, :2] = [np.nan, np.inf]
    save(toy_dataset.parent / "c2" / "image.nii.gz", image)
    _, found = only_problem(toy_dataset, "c2")
    assert "2 NaN/Inf voxels" in found[0].message and found[0].file.name == "image.nii.gz"


@pytest.mark.parametrize("shape, words", [((48, 44), "2D"), ((48, 44, 7, 2), "4D")])
def test_2d_and_4d_input(toy_dataset: Path, shape: tuple, words: str) -> None:
    save(toy_dataset.parent / "c1" / "image.nii.gz", np.ones(shape, np.float32))
    _, found = only_problem(toy_dataset, "c1")
    assert f"expected a 3D volume, got {words}" in found[0].message


def test_trailing_singleton_axis_is_accepted(toy_dataset: Path) -> None:
    labels = lv_label_map()
    save(toy_dataset.parent / "c1" / "image.nii.gz", lv_image(labels)[..., None])
    assert report_for(toy_dataset).ok


def test_duplicate_case_ids_and_split_overlap(tmp_path: Path, toy_dataset: Path) -> None:
    data = yaml.safe_load(toy_dataset.read_text())
    data["source"]["cases"].append(dict(data["source"]["cases"][0]))
    data["split"] = {"train": ["c0", "c1"], "test": ["c1", "c2"]}
    toy_dataset.write_text(yaml.safe_dump(data))
    report = report_for(toy_dataset)
    text = report.format()
    assert "duplicate case id" in text and "c0" in text
    assert "both the train and the test split" in text and not report.ok


def test_myocardium_in_one_slice_only(toy_dataset: Path) -> None:
    labels = lv_label_map()
    labels[..., 1:] = 0
    save(toy_dataset.parent / "c0" / "labels.nii.gz", labels)
    _, found = only_problem(toy_dataset, "c0")
    assert "1 slice(s)" in found[0].message


def test_every_problem_is_reported_and_cli_fails(toy_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (toy_dataset.parent / "c0" / "image.nii.gz").unlink()
    save(toy_dataset.parent / "m3" / "myo.nii.gz", np.full((48, 44, 7), 3, np.uint8))
    report = report_for(toy_dataset)
    assert {p.case_id for p in report.errors} == {"c0", "m3"} and report.n_ok == 2
    assert main(["-q", "validate", str(toy_dataset)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED:") and "c0:" in out and "m3:" in out and "file not found" in out


def test_invalid_manifest_is_reported_by_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path / "m.yaml", [{"id": "a", "image": "i", "labels": "l"}], extra_key=1)
    assert main(["-q", "validate", str(path)]) == 1
    assert "unknown key" in capsys.readouterr().out


def test_emidec_layout_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["-q", "validate", str(REPO / "data_manifest" / "emidec.yaml"), "--root", str(tmp_path / "nowhere")]) == 1
    )
    assert "does not exist" in capsys.readouterr().out


def test_emidec_cli_with_copied_case(tmp_path: Path, emidec_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for case in ("Case_N006", "Case_P001"):
        shutil.copytree(emidec_root / case, tmp_path / case)
    # The shipped template splits by a fraction, so it works on a folder of any size as it is ...
    assert main(["-q", "validate", str(REPO / "data_manifest" / "emidec.yaml"), "--root", str(tmp_path)]) == 0
    # ... and a count given on the command line replaces the fraction.
    assert (
        main(
            [
                "-q",
                "validate",
                str(REPO / "data_manifest" / "emidec.yaml"),
                "--root",
                str(tmp_path),
                "--set",
                "split.n_test=1",
            ]
        )
        == 0
    )
    (tmp_path / "Case_P001" / "Contours" / "Case_P001.nii.gz").unlink()
    assert (
        main(
            [
                "-q",
                "validate",
                str(REPO / "data_manifest" / "emidec.yaml"),
                "--root",
                str(tmp_path),
                "--set",
                "split.n_test=1",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "Case_P001" in out and "Contours/Case_P001.nii.gz" in out and "file not found" in out


def test_shipped_embedded_cohort_validates(capsys: pytest.CaptureFixture[str]) -> None:
    """The default dataset: generated on first use into the cache, then every case checked."""
    assert main(["-q", "validate", str(REPO / "data_manifest" / "phantom.yaml")]) == 0
    assert "24 cases, 24 readable, 0 errors" in capsys.readouterr().out


def test_a_header_claiming_a_huge_or_missing_volume_is_refused_before_reading(toy_dataset: Path) -> None:
    import nibabel as nib

    huge = nib.Nifti1Header()
    huge.set_data_shape((1024, 1024, 1024))
    huge.set_data_dtype(np.float32)
    path = toy_dataset.parent / "c0" / "image.nii.gz"
    path.write_bytes(gzip.compress(huge.binaryblock + b"\0" * 4))  # a ~80-byte file claiming 4 GB of voxels
    short = nib.Nifti1Header()
    short.set_data_shape((48, 44, 7))
    short.set_data_dtype(np.float32)
    (toy_dataset.parent / "c1" / "image.nii").write_bytes(short.binaryblock + b"\0" * 4 + b"\0" * 100)
    toy_dataset.write_text(toy_dataset.read_text().replace("c1/image.nii.gz", "c1/image.nii"))
    report = report_for(toy_dataset)
    messages = {p.case_id: p.message for p in report.problems if p.severity == "error"}
    assert "1024 x 1024 x 1024 = 1,073,741,824 voxels" in messages["c0"] and "not read" in messages["c0"]
    assert "truncated" in messages["c1"] and "59,136 bytes" in messages["c1"]
    assert report.n_cases == 4 and "c2" not in messages and "m3" not in messages  # the others are still checked


def test_a_manifest_with_yaml_aliases_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["version: 1", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")  # 9^9 strings once expanded
    assert main(["-q", "validate", str(bomb)]) == 1
    assert "YAML aliases (*name) are not allowed" in capsys.readouterr().out


def test_a_blank_image_and_a_header_without_spacing_are_named(toy_dataset: Path) -> None:
    import nibabel as nib

    labels = lv_label_map()
    save(toy_dataset.parent / "c0" / "image.nii.gz", np.zeros(labels.shape, np.float32))
    image = nib.Nifti1Image(lv_image(labels, 1), None)  # no affine: sform and qform codes stay 0
    image.header["pixdim"][1:4] = [1.6, 1.6, 9.0]
    raw = bytearray(image.header.binaryblock + b"\0" * 4 + image.get_fdata(dtype=np.float32).tobytes("F"))
    raw[76 + 12 : 76 + 16] = np.float32(0.0).tobytes()  # pixdim[3] = 0 (nibabel would not write it)
    (toy_dataset.parent / "c1" / "image.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    report = report_for(toy_dataset)
    messages = {p.case_id: p.message for p in report.problems if p.severity == "error"}
    assert "every voxel is 0" in messages["c0"]
    assert "no orientation" in messages["c1"] and "0.0" in messages["c1"]


def test_an_emidec_folder_whose_name_is_not_a_case_id_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "emidec"
    for name in ("Case_N001", "Case_N002 (copy)"):
        labels = lv_label_map()
        save(root / name / "Images" / f"{name}.nii.gz", lv_image(labels, 0))
        save(root / name / "Contours" / f"{name}.nii.gz", labels)
    assert main(["-q", "validate", str(REPO / "data_manifest" / "emidec.yaml"), "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "Case_N002 (copy)" in out and "not a usable case id" in out and "rename the folder" in out
