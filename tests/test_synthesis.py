"""Synthesis: deterministic sampling and decoding, NIfTI + manifest that pass validation, the QC table, per-sample
geometry."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from lgelib.anatomy import closed_rings, mask_qc, ring_string
from lgelib.cli import main as cli_main
from lgelib.data.prepare import load_prepared
from lgelib.data.validate import validate_dataset
from lgelib.edm import SamplerSettings, load_edm, train_edm
from lgelib.geometry import GEOMETRY_COLUMNS, split_geometry, with_geometry
from lgelib.inr2vec import train_inr2vec
from lgelib.synthesis import QC_COLUMNS, SynthesisSettings, compare_qc, load_synthetic, real_qc, synthesize
from toys import TINY_EDM, TINY_INR2VEC, toy_fitted, toy_prepared

SPACING = (8.0, 2.5, 2.5)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stages")
    prepared, inrs = toy_fitted(root / "inr", n=6)
    inr2vec = train_inr2vec(
        inrs,
        root / "inr2vec",
        TINY_INR2VEC,
        device="cpu",
        progress=False,
    )
    edm = train_edm(
        inr2vec.latents,
        root / "edm",
        TINY_EDM,
        device="cpu",
        progress=False,
    )
    return edm, inr2vec, inrs.grid_shape


def run(models, folder: Path, n: int, seed: int = 0):
    edm, inr2vec, shape = models
    settings = SynthesisSettings(n_volumes=n, seed=seed, sampler=SamplerSettings(num_steps=18))
    return synthesize(edm, inr2vec, folder, settings, shape, SPACING, publishable=True, device="cpu", progress=False)


def test_synthesis_is_deterministic_nested_and_valid(models, tmp_path: Path) -> None:
    first = run(models, tmp_path / "a", 5)
    assert len(first.case_ids) == 5 and first.manifest.is_file()
    assert list(first.qc.columns) == list(QC_COLUMNS) and first.qc.accepted.sum() == 5

    report = validate_dataset(first.manifest, grid=None, progress=False)
    assert report.ok and report.n_ok == 5, report.format()
    assert cli_main(["validate", str(first.manifest), "--quiet", "--strict"]) == 0  # `lgelib validate` itself
    data = load_prepared(first.folder)
    assert data.case_ids == first.case_ids and list(data.split.train) == first.case_ids and not data.split.test
    assert data.images.shape == (5, *models[2]) and data.images.min() >= 0 and data.images.max() <= 1
    assert data.myocardium.any(axis=(1, 2, 3)).all()
    assert not (data.fibrosis & ~data.myocardium).any()

    again = load_prepared(run(models, tmp_path / "b", 5).folder)
    assert np.array_equal(again.images, data.images) and np.array_equal(again.myocardium, data.myocardium)
    assert np.array_equal(again.fibrosis, data.fibrosis)

    fewer = run(models, tmp_path / "c", 3)  # the first 3 of 5: each sample has its own seed
    assert fewer.case_ids == first.case_ids[:3]
    assert np.allclose(load_prepared(fewer.folder).images, data.images[:3], atol=1e-5)

    other = load_prepared(run(models, tmp_path / "d", 5, seed=1).folder)
    assert not np.allclose(other.images, data.images)


def test_a_finished_synthesis_is_reused_and_reloaded(models, tmp_path: Path) -> None:
    written = run(models, tmp_path, 2)
    stamp = (tmp_path / "synthesis.json").stat().st_mtime_ns
    again = run(models, tmp_path, 2)
    assert (tmp_path / "synthesis.json").stat().st_mtime_ns == stamp and again.case_ids == written.case_ids
    loaded = load_synthetic(tmp_path)
    assert torch.equal(loaded.latents, written.latents) and loaded.qc.equals(written.qc)
    changed = run(models, tmp_path, 3)
    assert len(changed.case_ids) == 3 and len(load_prepared(tmp_path).case_ids) == 3


def test_too_many_rejected_samples_stop_with_a_clear_error_and_write_nothing(models, tmp_path: Path) -> None:
    edm, inr2vec, shape = models
    impossible = SynthesisSettings(n_volumes=3, threshold=1.0, max_draws=4)  # no voxel passes a threshold of 1
    with pytest.raises(RuntimeError, match="max_draws"):
        synthesize(edm, inr2vec, tmp_path / "s", impossible, shape, SPACING, True, device="cpu", progress=False)
    assert not (tmp_path / "s").exists() and not list(tmp_path.iterdir())


def ring_slice(kind: str) -> np.ndarray:
    y, x = np.mgrid[-10:11, -10:11]
    r = np.hypot(y, x)
    ring = (r >= 4) & (r <= 7)
    if kind == "ring":
        return ring
    if kind == "open":
        return ring & ~((x > 0) & (np.abs(y) <= 1))
    if kind == "disc":
        return r <= 6
    if kind == "two":
        return (np.hypot(y, x - 5) <= 2) | (np.hypot(y, x + 5) <= 2)
    return np.zeros_like(ring)


def test_closed_rings_and_mask_numbers() -> None:
    kinds = ["ring", "open", "disc", "two", "empty"]
    myocardium = np.stack([ring_slice(k) for k in kinds])
    assert closed_rings(myocardium).tolist() == [1, 0, 0, 0, -1]
    assert ring_string(closed_rings(myocardium)) == "Oxxx."
    fibrosis = np.zeros_like(myocardium)
    fibrosis[0, :, 15:] = myocardium[0, :, 15:]  # scar in the first slice's ring
    outside = fibrosis.copy()
    outside[4, 0, :3] = True  # 3 raw fibrosis voxels outside the myocardium
    qc = mask_qc(myocardium, fibrosis, voxel_ml=0.01, fibrosis_raw=outside)
    n_myo, n_fib = int(myocardium.sum()), int(fibrosis.sum())
    assert qc["myocardium_ml"] == pytest.approx(n_myo * 0.01) and qc["fibrosis_ml"] == pytest.approx(n_fib * 0.01)
    assert qc["scar_burden_pct"] == pytest.approx(100 * n_fib / n_myo)
    assert qc["fibrosis_outside_pct"] == pytest.approx(100 * 3 / (n_fib + 3))
    assert (qc["myocardium_slices"], qc["closed_ring_slices"]) == (4, 1)


def test_qc_comparison_and_missing_voxel_sizes(models, tmp_path: Path) -> None:
    written = run(models, tmp_path, 4)
    table = compare_qc({"a": written.qc, "b": written.qc.iloc[:2]})
    assert list(table.columns) == ["a", "b"] and table.loc["cases"].tolist() == ["4", "2"]
    median = written.qc.myocardium_ml.median()
    assert table.loc["myocardium (mL)", "a"].startswith(f"{median:.1f} [")
    with pytest.raises(ValueError, match="toy_00: no grid mapping"):
        real_qc(toy_prepared(2), ["toy_00"])


def test_per_sample_geometry_is_sampled_and_written_into_each_nifti(models, tmp_path: Path) -> None:
    _, inr2vec, shape = models
    cases = inr2vec.case_ids
    spacings = np.linspace(6.0, 10.0, len(cases))
    prepared = dataclasses.replace(
        toy_prepared(6),
        mappings={c: SimpleNamespace(canonical_affine=np.diag([s, 2.5, 2.5, 1.0])) for c, s in zip(cases, spacings)},
    )
    vectors = with_geometry(inr2vec.latents, prepared, cases)
    assert vectors.shape == (len(cases), inr2vec.latents.shape[1] + 1)
    assert np.allclose(np.exp(vectors[:, -1].numpy()), spacings, rtol=1e-5)
    edm = train_edm(
        vectors,
        tmp_path / "edm",
        TINY_EDM,
        device="cpu",
        progress=False,
        extra_columns=GEOMETRY_COLUMNS,
    )
    assert load_edm(tmp_path / "edm").extra_columns == GEOMETRY_COLUMNS
    settings = SynthesisSettings(n_volumes=6, sampler=SamplerSettings(num_steps=18))
    synthetic = synthesize(
        edm, inr2vec, tmp_path / "s", settings, shape, SPACING, publishable=True, device="cpu", progress=False
    )
    written = synthetic.qc[synthetic.qc.accepted]
    for case_id, spacing in zip(written.case_id, written.slice_spacing_mm):
        zooms = nib.load(tmp_path / "s" / "cases" / case_id / "image.nii.gz").header.get_zooms()
        assert np.allclose(zooms, (spacing, SPACING[1], SPACING[2]), atol=1e-4), (case_id, zooms)
    assert written.slice_spacing_mm.nunique() == len(written)  # each sample its own length
    assert 5.0 < written.slice_spacing_mm.min() and written.slice_spacing_mm.max() < 12.0, written.slice_spacing_mm
    assert synthetic.latents.shape[1] == vectors.shape[1] - 1  # the latents alone, comparable with inr2vec's
    with pytest.raises(ValueError, match="unknown extra columns"):
        split_geometry(vectors, ("heart_rate",))


def test_a_rejected_conditioned_draw_is_drawn_again_for_its_own_condition(models, tmp_path: Path, monkeypatch) -> None:
    """Volume k is drawn with condition row k; when quality control rejects one, the next draw asks for the same
    row (with a new noise seed), so conditions that fail more often are not under-filled in the kept set."""
    import lgelib.synthesis

    edm, inr2vec, shape = models
    asked = []

    def sample(seeds, sampler, device, conditions=None, guidance=1.0):
        asked.append((list(seeds), conditions[:, 0].tolist()))
        return edm.sample(seeds, sampler, device)

    proxy = SimpleNamespace(net=edm.net, standardizer=edm.standardizer, extra_columns=edm.extra_columns, sample=sample)
    calls = []

    def reject_the_second(myocardium, *rest):
        qc = mask_qc(myocardium, *rest)
        calls.append(len(calls))
        return {**qc, "myocardium_slices": 0} if len(calls) == 2 else qc

    monkeypatch.setattr(lgelib.synthesis, "mask_qc", reject_the_second)
    conditions = np.arange(3, dtype=np.float32)[:, None] * np.ones((1, 5), np.float32)  # row k: all k
    settings = SynthesisSettings(n_volumes=3, sampler=SamplerSettings(num_steps=18))
    drawn = synthesize(
        proxy,
        inr2vec,
        tmp_path / "s",
        settings,
        shape,
        SPACING,
        True,
        device="cpu",
        progress=False,
        conditions=conditions,
        guidance=2.0,
    )
    assert [rows for _, rows in asked] == [[0.0, 1.0, 2.0], [1.0]]  # the rejected volume 1, asked for again
    assert [len(seeds) for seeds, _ in asked] == [3, 1] and asked[1][0][0] not in asked[0][0]  # a new seed
    assert len(drawn.case_ids) == 3 and drawn.qc.accepted.tolist() == [True, False, True, True]


def test_a_conditioned_synthesis_passes_each_draws_condition_and_is_keyed_on_it(models, tmp_path: Path) -> None:
    """The conditioned EDM samples with each draw's condition (same seeds, other conditions: other volumes; same
    conditions: the same volumes), the folder is keyed on the conditions, and the decoded volumes are measured."""
    from lgelib.conditioning import accuracy_table, condition_tensor, synthetic_descriptors, training_descriptors
    from lgelib.scar_descriptors import CONDITION_COLUMNS, ScarRequest, request_conditions

    edm, inr2vec, shape = models
    prepared = toy_prepared(6)  # the cases behind the toy INRs (toy_fitted), in the same order
    training = training_descriptors(prepared, inr2vec.case_ids)
    assert list(training.index) == list(inr2vec.case_ids) and training["present"].dtype == bool
    conditioned = train_edm(
        inr2vec.latents,
        tmp_path / "edm",
        TINY_EDM,
        device="cpu",
        progress=False,
        conditions=condition_tensor(training),
        condition_columns=CONDITION_COLUMNS,
    )
    settings = SynthesisSettings(n_volumes=3, sampler=SamplerSettings(num_steps=18))

    def draw(folder: str, conditions):
        return synthesize(
            conditioned,
            inr2vec,
            tmp_path / folder,
            settings,
            shape,
            SPACING,
            publishable=True,
            device="cpu",
            progress=False,
            conditions=conditions,
            guidance=2.0,
        )

    request = ScarRequest(present=True)
    with_scar = request_conditions(request, training, 8, seed=0)
    free = np.zeros_like(with_scar)
    a, b, c = draw("a", with_scar), draw("b", with_scar), draw("c", free)
    assert torch.equal(a.latents, b.latents) and not torch.allclose(a.latents, c.latents)
    stamp = (tmp_path / "a" / "synthesis.json").stat().st_mtime_ns
    draw("a", with_scar)
    assert (tmp_path / "a" / "synthesis.json").stat().st_mtime_ns == stamp  # reused: the same conditions
    draw("a", free)
    assert (tmp_path / "a" / "synthesis.json").stat().st_mtime_ns != stamp  # redrawn: other conditions
    decoded = {
        "unconditional": synthetic_descriptors(load_prepared(tmp_path / "c")),
        request.name: synthetic_descriptors(load_prepared(tmp_path / "b")),
    }
    table = accuracy_table([request], decoded, training, {"scar": 0.25, "unconditional": 0.5})
    assert table.loc["scar", "n drawn"] == 3 and table.loc["scar", "training cases meeting it"] == 6
    assert table.loc["scar", "nearer than median test (conditioned)"] == 0.25
    assert 0 <= table.loc["scar", "meets request (conditioned)"] <= 1
