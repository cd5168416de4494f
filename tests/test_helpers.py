"""The helpers every stage shares, each written once: device rule, fingerprint, atomic write, case lookup, tissue
volumes, logging; and the per-case and training-curve figures that replace long tables and nnU-Net's log."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lgelib.anatomy import mask_qc, tissue_volumes  # noqa: E402
from lgelib.data.stats import label_map_statistics  # noqa: E402
from lgelib.device import resolve_device  # noqa: E402
from lgelib.fingerprint import fingerprint  # noqa: E402
from lgelib.fsutil import atomic_file, write_text_atomic  # noqa: E402
from lgelib.log import logger, show_progress  # noqa: E402
from toys import toy_prepared  # noqa: E402

LIBRARY = Path(__file__).resolve().parents[1] / "lgelib"


def test_one_device_rule() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_fingerprint_names_exact_inputs(tmp_path: Path) -> None:
    source = tmp_path / "a.nii"
    source.write_bytes(b"one")
    base = fingerprint({"steps": 3}, torch.zeros(2), np.ones(3, np.float32), source, "case-1")
    assert base == fingerprint({"steps": 3}, torch.zeros(2), np.ones(3, np.float32), source, "case-1")
    assert base != fingerprint({"steps": 4}, torch.zeros(2), np.ones(3, np.float32), source, "case-1")
    assert base != fingerprint(
        {"steps": 3}, torch.zeros(2, dtype=torch.float64), np.ones(3, np.float32), source, "case-1"
    )  # same values, other dtype
    source.write_bytes(b"two")  # an edited source file
    assert base != fingerprint({"steps": 3}, torch.zeros(2), np.ones(3, np.float32), source, "case-1")
    assert len(fingerprint({}, length=12)) == 12
    with pytest.raises(TypeError, match="cannot fingerprint a float"):
        fingerprint({}, 1.5)


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_file(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_one_case_lookup_names_a_missing_case() -> None:
    prepared = toy_prepared(3)
    image, myocardium, fibrosis = prepared.case(prepared.case_ids[1])
    assert np.array_equal(image, prepared.images[1]) and np.array_equal(fibrosis, prepared.fibrosis[1])
    assert myocardium.dtype == bool
    with pytest.raises(KeyError, match="no case 'P999' in this dataset"):
        prepared.case("P999")


def test_one_definition_of_tissue_volumes_everywhere() -> None:
    myocardium = np.zeros((2, 10, 10), bool)
    myocardium[:, 2:8, 2:8] = True  # 72 voxels
    fibrosis = np.zeros_like(myocardium)
    fibrosis[0, 2:5, 2:8] = True  # 18 voxels
    volumes = tissue_volumes(myocardium, fibrosis, voxel_ml=0.5)
    assert volumes == {"myocardium_ml": 36.0, "fibrosis_ml": 9.0, "scar_burden_pct": 25.0}
    assert {k: mask_qc(myocardium, fibrosis, 0.5)[k] for k in volumes} == volumes
    labels = np.where(fibrosis, 3, np.where(myocardium, 2, 0))  # EMIDEC: 2 healthy, 3 scar
    stats = label_map_statistics(np.random.default_rng(0).random(labels.shape), labels, (5.0, 10.0, 10.0))
    assert (stats["myocardium_ml"], stats["scar_ml"], stats["scar_burden"]) == (36.0, 9.0, 0.25)
    assert np.isnan(tissue_volumes(np.zeros(3, bool), np.zeros(3, bool), 1.0)["scar_burden_pct"])


def test_the_library_logs_and_shows_its_lines_where_stdout_is_now(capsys: pytest.CaptureFixture[str]) -> None:
    show_progress()
    show_progress()  # idempotent: one line per message
    logger.info("fitted %d cases", 3)
    assert capsys.readouterr().out == "[lgelib] fitted 3 cases\n"
    # Only the command line (its own output) and the nnU-Net worker's line protocol print; the library logs.
    printing = [
        path.relative_to(LIBRARY).as_posix()
        for path in LIBRARY.rglob("*.py")
        if re.search(r"^\s*print\(", path.read_text(), flags=re.M)
    ]
    assert sorted(printing) == ["cli.py", "nnunet_stages.py"]


def test_per_case_numbers_as_strip_plots_without_case_ids() -> None:
    from lgelib.figures import plot_per_case

    table = pd.DataFrame(
        {"psnr_db": [20.0, 25.0, 30.0, np.nan], "split": ["train", "train", "test", "test"]},
        index=["P001", "P002", "P003", "P004"],
    )
    figure = plot_per_case(table, {"psnr_db": "PSNR (dB)"}, group="split")
    axis = figure.axes[0]
    assert [t.get_text() for t in axis.get_xticklabels()] == ["train", "test"]
    assert sum(len(c.get_offsets()) for c in axis.collections if hasattr(c, "get_offsets")) >= 3
    drawn = " ".join(t.get_text() for a in figure.axes for t in a.texts + a.get_xticklabels())
    assert "P00" not in drawn
    assert figure.get_size_inches()[0] <= 7.5  # drawn at the book's column width


def test_training_curves_read_what_nnunet_logged(tmp_path: Path) -> None:
    from lgelib.config import SMOKE_SEGMENTATION
    from lgelib.figures import plot_training_curves
    from lgelib.nnunet_export import dataset_name
    from lgelib.segmentation import model_folder, training_curves
    from lgelib.segmentation_setup import NnunetFolders, parse_arms

    folders = NnunetFolders(tmp_path)
    arm = parse_arms("N0")[0]
    fold = model_folder(folders, dataset_name(folders, arm.training_set), SMOKE_SEGMENTATION, arm) / "fold_all"
    fold.mkdir(parents=True)
    logging = {
        "train_losses": [0.9, 0.5],
        "val_losses": [0.8, 0.6],
        "ema_fg_dice": [0.1, 0.4],
        "epoch_start_timestamps": [0.0, 10.0],
        "epoch_end_timestamps": [4.0, 13.0],
    }
    torch.save({"logging": logging}, fold / "checkpoint_latest.pth")
    curves = training_curves(tmp_path, SMOKE_SEGMENTATION, "N0")
    assert curves.epoch.tolist() == [1, 2] and curves.ema_pseudo_dice.tolist() == [0.1, 0.4]
    assert curves.epoch_s.tolist() == [4.0, 3.0] and set(curves.model) == {"N0"}
    assert len(plot_training_curves(curves).axes) == 2


def test_preprocessed_nnunet_files_are_reused_only_as_this_machine_wrote_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nnU-Net unpickles its preprocessed files: a planted file, or a run directory from another machine, is
    preprocessed again rather than trusted."""
    import json

    from lgelib.segmentation import preprocessed_content_key, preprocessed_is_current
    from lgelib.segmentation_setup import NnunetFolders

    monkeypatch.setenv("LGELIB_CACHE", str(tmp_path / "cache-here"))
    folders = NnunetFolders(tmp_path / "seg")
    folder = folders.preprocessed / "Dataset001_LGE_N0"
    (folder / "nnUNetPlans_2d").mkdir(parents=True)
    (folder / "nnUNetPlans_2d" / "case.pkl").write_bytes(b"written here")
    expected = {"plan": {"configuration": "2d"}}
    (folder / "planned.json").write_text(
        json.dumps({"settings": expected, "content": preprocessed_content_key(folders, folder.name)})
    )
    assert preprocessed_is_current(folders, folder.name, expected)
    assert not preprocessed_is_current(folders, folder.name, {"plan": {"configuration": "3d_fullres"}})
    (folder / "nnUNetPlans_2d" / "planted.pkl").write_bytes(b"code")
    assert not preprocessed_is_current(folders, folder.name, expected)
    (folder / "nnUNetPlans_2d" / "planted.pkl").unlink()
    assert preprocessed_is_current(folders, folder.name, expected)
    monkeypatch.setenv("LGELIB_CACHE", str(tmp_path / "cache-elsewhere"))  # the same files, another machine
    assert not preprocessed_is_current(folders, folder.name, expected)
    assert oct((tmp_path / "cache-here" / "machine.key").stat().st_mode & 0o777) == "0o600"


def test_one_check_of_a_finished_stage_for_json_records_and_model_files(tmp_path: Path) -> None:
    from lgelib.fingerprint import record_matches, tensors_match
    from lgelib.fsutil import save_tensors

    record = tmp_path / "synthesis.json"
    assert not record_matches(record, fingerprint="k")  # nothing written: not finished
    record.write_text('{"fingerprint": "k", "grid": [8, 64, 64]}')
    assert record_matches(record, fingerprint="k", grid=(8, 64, 64))  # compared as JSON: a tuple is a list
    assert not record_matches(record, fingerprint="other")
    record.write_text('{"fingerprint": "k"')  # torn
    assert not record_matches(record, fingerprint="k")
    model = tmp_path / "edm.safetensors"
    save_tensors(model, {"w": torch.zeros(2)}, {"fingerprint": "k"})
    assert tensors_match(model, "k") and not tensors_match(model, "other")
    model.write_bytes(b"torn")
    assert not tensors_match(model, "k") and not tensors_match(tmp_path / "missing.safetensors", "k")
