"""The joint SIREN stage: layout, initialisation, batched fitting against a plain loop, resume, fidelity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from lgelib.inr import (
    FitSettings,
    JointSiren,
    ParameterLayout,
    SirenSettings,
    decode,
    fit_inrs,
    load_fitted,
    siren_init,
)
from lgelib.inr.coords import grid_coordinates, index_to_coordinates
from lgelib.config import AUTHORS_INR, inr_name, with_inr
from lgelib.run import settings_for
from lgelib.inr.fit import fit_batch, joint_loss, learning_rate, resolve_precision
from lgelib.inr.sampling import VoxelSampler, band
from lgelib.inr.siren import batched_forward, encode_inputs
from lgelib.inr.step import SirenStep
from toys import toy_prepared, toy_volumes

TINY = SirenSettings(hidden=32, backbone_layers=3, head_hidden=8)


def test_paper_architecture_and_layout() -> None:
    spec = SirenSettings()
    layout = ParameterLayout(spec)
    assert spec.n_params == layout.size == 260_323  # the paper's "about 260K"
    model = JointSiren(spec)
    assert sum(p.numel() for p in model.parameters()) == layout.size
    assert [name for name, _ in model.named_parameters()] == [name for name, _ in layout.entries]
    flat = siren_init(spec, seed=3)
    assert flat.shape == (layout.size,)
    assert torch.equal(JointSiren(spec).load_flat(flat).flat(), flat)
    named = layout.unflatten(torch.stack([flat, flat + 1]))
    assert named["backbone.1.weight"].shape == (2, 256, 256)
    assert torch.equal(layout.flatten(named)[1], flat + 1)
    with pytest.raises(ValueError, match="expected 260323 parameters"):
        layout.unflatten(flat[:-1])


@pytest.mark.parametrize("spec", [TINY, SirenSettings(hidden=16, backbone_layers=2, head_hidden=0)])
def test_batched_forward_matches_the_module(spec: SirenSettings) -> None:
    flats = torch.stack([siren_init(spec, seed) for seed in range(3)])
    coords = torch.rand(3, 50, 3) * 2 - 1
    batched = batched_forward(ParameterLayout(spec).unflatten(flats), coords, spec)
    assert batched.shape == (3, 50, 3)
    for i in range(3):
        single = JointSiren(spec).load_flat(flats[i])(coords[i])
        torch.testing.assert_close(batched[i], single, rtol=1e-5, atol=1e-5)


def test_siren_initialisation_statistics() -> None:
    spec = SirenSettings()
    first, second = siren_init(spec, 0), siren_init(spec, 0)
    assert torch.equal(first, second) and not torch.equal(first, siren_init(spec, 1))
    params = ParameterLayout(spec).unflatten(first)
    w0 = params["backbone.0.weight"]
    assert w0.abs().max() <= 1 / 3 and w0.var().item() == pytest.approx((1 / 3) ** 2 / 3, rel=0.15)
    bound = math.sqrt(6 / 256) / spec.hidden_omega
    w1 = params["backbone.1.weight"]
    assert w1.abs().max() <= bound and w1.var().item() == pytest.approx(bound**2 / 3, rel=0.05)
    # Sitzmann et al.: with this init the weighted input omega*Wx of every hidden layer is ~N(0, 1) and every
    # sine output has variance 1/2 (arcsine distribution), whatever the depth. (The bias, drawn as in nn.Linear
    # and the reference code, adds a random phase on top.)
    model = JointSiren(spec).load_flat(first)
    h = torch.rand(20_000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for i, layer in enumerate(model.backbone):
            omega = spec.first_omega if i == 0 else spec.hidden_omega
            if i > 0:
                weighted = omega * (h @ layer.weight.T)
                assert weighted.std().item() == pytest.approx(1.0, abs=0.1), f"layer {i}"
            h = torch.sin(omega * layer(h))
            assert h.var().item() == pytest.approx(0.5, abs=0.06), f"layer {i}"


def test_sampler_streams_are_per_case_and_respect_fractions() -> None:
    _, myo, fib = toy_volumes(3)
    ids = ["a", "b", "c"]
    together = VoxelSampler(
        ids, myo, fib, points=400, seed=5, myocardium_fraction=0.5, fibrosis_fraction=0.25, chunk_steps=3
    )
    alone = VoxelSampler(
        ["b"], myo[1:2], fib[1:2], points=400, seed=5, myocardium_fraction=0.5, fibrosis_fraction=0.25, chunk_steps=7
    )
    for _ in range(5):
        batch, single = together.next(), alone.next()
        assert batch.shape == (3, 400)
        assert torch.equal(batch[1], single[0])
    index = together.next()[0].numpy()
    assert band(myo[0], 2).ravel()[index[100:300]].all()
    assert band(fib[0], 2).ravel()[index[300:]].all()
    other_seed = VoxelSampler(ids, myo, fib, points=400, seed=6).next()
    assert not torch.equal(other_seed, VoxelSampler(ids, myo, fib, points=400, seed=5).next())
    with pytest.raises(ValueError, match="sum to at most 1"):
        VoxelSampler(ids, myo, fib, points=10, seed=0, myocardium_fraction=0.8, fibrosis_fraction=0.4)


def test_coordinates_span_the_cube() -> None:
    coords = grid_coordinates((3, 4, 5))
    assert coords.shape == (60, 3)
    assert coords.min().item() == -1 and coords.max().item() == 1
    index = torch.arange(60)
    assert torch.equal(index_to_coordinates(index, (3, 4, 5)), coords)


def test_batched_fit_equals_one_model_per_volume() -> None:
    """Stacked weights + one Adam give each case exactly what a plain per-volume loop gives."""
    images, myo, fib = toy_volumes(3)
    ids = ["a", "b", "c"]
    settings = FitSettings(
        steps=25,
        points_per_step=256,
        lr=1e-3,
        lr_final=1e-4,
        loss_weights=(1.0, 0.5, 2.0),
        myocardium_fraction=0.25,
        fibrosis_fraction=0.25,
        seed=7,
    )
    init = siren_init(TINY, 11)
    batched = fit_batch(init, TINY, settings, ids, images, myo, fib, device="cpu", progress=False)
    assert batched.shape == (3, TINY.n_params)
    for i, case in enumerate(ids):
        model = JointSiren(TINY).load_flat(init)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        sampler = VoxelSampler(
            [case], myo[i : i + 1], fib[i : i + 1], 256, seed=7, myocardium_fraction=0.25, fibrosis_fraction=0.25
        )
        target = torch.from_numpy(np.stack([images[i].ravel(), myo[i].ravel(), fib[i].ravel()], -1).astype(np.float32))
        for step in range(settings.steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, step)
            index = sampler.next()[0]
            out = model(index_to_coordinates(index, images.shape[1:]))
            t = target[index]
            loss = (
                F.mse_loss(out[:, 0], t[:, 0])
                + 0.5 * F.binary_cross_entropy_with_logits(out[:, 1], t[:, 1])
                + 2.0 * F.binary_cross_entropy_with_logits(out[:, 2], t[:, 2])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert not torch.allclose(model.flat(), init)
        torch.testing.assert_close(batched[i], model.flat().detach(), rtol=1e-4, atol=2e-5)


AUTHORS_SMALL = SirenSettings(
    hidden=24,
    backbone_layers=3,
    head_hidden=0,
    first_omega=1.0,
    hidden_omega=1.0,
    encoding_frequencies=4,
    init="authors",
)


@pytest.mark.parametrize("spec", [TINY, SirenSettings(hidden=16, backbone_layers=2, head_hidden=0), AUTHORS_SMALL])
@pytest.mark.parametrize("chunk", [None, 97])
def test_fused_step_gives_the_autograd_loss_and_gradient(spec: SirenSettings, chunk: int | None) -> None:
    generator = torch.Generator().manual_seed(0)
    flat = torch.stack([siren_init(spec, seed) for seed in range(3)])
    flat = flat + 0.05 * torch.randn(flat.shape, generator=generator)  # away from the init's zero biases
    coords = torch.rand(3, 300, 3, generator=generator) * 2 - 1
    targets = torch.rand(3, 300, 3, generator=generator)
    targets[..., 1:] = (targets[..., 1:] > 0.6).float()
    weights = (1.0, 0.7, 0.3)

    def autograd(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = flat.to(dtype).clone().requires_grad_(True)
        losses = joint_loss(
            batched_forward(ParameterLayout(spec).unflatten(leaf), coords.to(dtype), spec), targets.to(dtype), weights
        )
        losses.sum().backward()
        return losses.detach().double(), leaf.grad.double()

    exact_loss, exact_grad = autograd(torch.float64)
    _, float32_grad = autograd(torch.float32)
    step = SirenStep(spec, 3, 300, weights, chunk=chunk)
    fused = step(flat, coords, targets)
    torch.testing.assert_close(fused.double(), exact_loss, rtol=1e-5, atol=1e-6)
    # As exact as autograd in float32 (omega = 30 makes both lose digits in the first layers' gradients).
    rounding = (float32_grad - exact_grad).abs().max().item()
    assert (step.grad.double() - exact_grad).abs().max().item() <= 2 * rounding + 1e-6
    assert rounding < 1e-3 * exact_grad.abs().max().item()
    with pytest.raises(ValueError, match="expected coordinates and targets shaped"):
        step(flat, coords[:, :299], targets[:, :299])
    again = step(flat, coords, targets)  # buffers are reused: a second call gives the same
    assert torch.equal(again, fused) and (step.grad.double() - exact_grad).abs().max().item() <= 2 * rounding + 1e-6


@pytest.mark.parametrize("spec", [TINY, AUTHORS_SMALL])
def test_fused_fit_follows_the_autograd_fit(spec: SirenSettings) -> None:
    """The optimised fitter gives the same parameters, to float rounding, as autograd for the same seed and data."""
    images, myo, fib = toy_volumes(3)
    settings = FitSettings(
        steps=30,
        points_per_step=256,
        lr=1e-3,
        lr_final=1e-4,
        loss_weights=(1.0, 0.5, 2.0),
        myocardium_fraction=0.25,
        fibrosis_fraction=0.25,
        seed=7,
    )
    init = siren_init(spec, 11)
    common = dict(device="cpu", progress=False)
    fused = fit_batch(init, spec, settings, ["a", "b", "c"], images, myo, fib, engine="fused", chunk=100, **common)
    reference = fit_batch(init, spec, settings, ["a", "b", "c"], images, myo, fib, engine="autograd", **common)
    moved = (reference - init).abs().max().item()
    assert moved > 100 * settings.lr_final
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-3 * moved)
    with pytest.raises(ValueError, match="unknown engine"):
        fit_batch(init, spec, settings, ["a"], images[:1], myo[:1], fib[:1], engine="jit", **common)


def test_authors_network_matches_their_published_definition() -> None:
    """`AUTHORS_INR` against the authors' public fit_inr.py / model.py at their defaults, written out here."""
    spec, fit = AUTHORS_INR.spec, AUTHORS_INR.fit
    assert spec.input_width == 63  # PositionalEncoding(num_frequencies=10, include_input=True).get_output_dim(3)
    layout = ParameterLayout(spec)
    shapes = dict(layout.entries)
    assert shapes["backbone.0.weight"] == (512, 63)
    assert all(shapes[f"backbone.{i}.weight"] == (512, 512) for i in range(1, 5)) and "backbone.5.weight" not in shapes
    assert [shapes[f"heads.{h}.0.weight"] for h in ("intensity", "myocardium", "fibrosis")] == [(1, 512)] * 3
    assert spec.n_params == 1_084_931  # Linear(63, 512) + 4 x Linear(512, 512) + Linear(512, 3)
    assert (fit.steps, fit.points_per_step, fit.lr, fit.lr_final) == (3000, 65536, 1e-4, 1e-4)
    assert fit.loss_weights == (1.0, 0.5, 0.5)  # MSE + BCEWithLogits averaged over the two mask channels
    assert fit.myocardium_fraction == fit.fibrosis_fraction == 0.0  # a shuffled DataLoader: uniform voxels
    # Their encoding: [x, sin(2^0 x), cos(2^0 x), sin(2^1 x), ...] concatenated along the last axis.
    x = torch.rand(7, 3) * 2 - 1
    theirs = torch.cat([x] + [f(2.0**i * x) for i in range(10) for f in (torch.sin, torch.cos)], dim=-1)
    torch.testing.assert_close(encode_inputs(x, spec), theirs)
    # Their init (model.siren_init, w0 = 30): weights U(+-sqrt(6 / fan_in) / 30) (the first layer reads 63 inputs,
    # so it gets the same rule), biases zero.
    params = layout.unflatten(siren_init(spec, 0))
    for name, tensor in params.items():
        if name.endswith("bias"):
            assert not tensor.any(), name
        else:
            bound = math.sqrt(6 / tensor.shape[-1]) / 30
            assert tensor.abs().max() <= bound and tensor.abs().max() > 0.95 * bound, name
    # Their forward: Linear -> torch.sin (omega 1) five times, then one Linear to three channels.
    model = JointSiren(spec).load_flat(siren_init(spec, 1) + 0.01)
    assert len(model.backbone) == 5
    h = theirs
    for layer in model.backbone:
        h = torch.sin(layer(h))
    out_weight = torch.cat([model.heads[h_].__getitem__(0).weight for h_ in ("intensity", "myocardium", "fibrosis")])
    out_bias = torch.cat([model.heads[h_].__getitem__(0).bias for h_ in ("intensity", "myocardium", "fibrosis")])
    torch.testing.assert_close(model(x), h @ out_weight.T + out_bias)
    chosen = settings_for(profile="paper", inr="authors", training_seed=5)
    assert chosen.inr.spec == spec and chosen.inr.fit.seed == 5 and inr_name(chosen) == "authors"
    assert inr_name(settings_for(profile="paper")) == "lgelib" and settings_for(
        profile="smoke", inr="lgelib"
    ) == settings_for(profile="smoke")
    seeded = settings_for(profile="smoke", inr="authors", training_seed=2)
    assert with_inr(seeded, "lgelib") == settings_for(
        profile="smoke", training_seed=2
    )  # back to the profile's, seeds kept
    with pytest.raises(ValueError, match="unknown INR choice"):
        settings_for(profile="smoke", inr="nerf")


def test_fidelity_improves_with_steps(tmp_path) -> None:
    prepared = toy_prepared(1)
    short = fit_inrs(
        prepared,
        tmp_path / "short",
        TINY,
        FitSettings(steps=10, points_per_step=512, lr=1e-3, lr_final=1e-4),
        progress=False,
    )
    long = fit_inrs(
        prepared,
        tmp_path / "long",
        TINY,
        FitSettings(steps=300, points_per_step=512, lr=1e-3, lr_final=1e-4),
        progress=False,
    )
    s, l_ = short.fidelity.iloc[0], long.fidelity.iloc[0]
    assert l_.psnr_db > s.psnr_db + 3
    assert l_.myocardium_dice > 0.8 and l_.myocardium_dice >= s.myocardium_dice
    assert l_.fibrosis_dice > 0.5


class Interrupt(Exception):
    pass


def test_interrupted_fit_resumes_and_matches_an_uninterrupted_one(tmp_path) -> None:
    prepared = toy_prepared(4)
    settings = FitSettings(steps=15, points_per_step=256, lr=1e-3, lr_final=1e-4)
    batches: list[list[str]] = []

    def stop_after_first(batch: list[str]) -> None:
        batches.append(batch)
        raise Interrupt

    folder = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        fit_inrs(prepared, folder, TINY, settings, cases_per_batch=2, progress=False, on_batch=stop_after_first)
    assert sorted(p.name for p in (folder / "cases").iterdir()) == ["toy_00.safetensors", "toy_01.safetensors"]
    assert not (folder / "inrs.safetensors").exists()
    (folder / "cases" / "toy_02.safetensors").write_bytes(b"half-written")  # a torn file is not a finished case
    batches.clear()
    resumed = fit_inrs(prepared, folder, TINY, settings, cases_per_batch=2, progress=False, on_batch=batches.append)
    assert batches == [["toy_02", "toy_03"]]
    whole = fit_inrs(prepared, tmp_path / "whole", TINY, settings, cases_per_batch=4, progress=False)
    torch.testing.assert_close(resumed.params, whole.params, rtol=1e-5, atol=1e-6)
    assert resumed.case_ids == whole.case_ids == prepared.case_ids

    batches.clear()
    fit_inrs(prepared, folder, TINY, settings, cases_per_batch=2, progress=False, on_batch=batches.append)
    assert batches == []  # everything finished: nothing refitted
    changed = FitSettings(steps=16, points_per_step=256, lr=1e-3, lr_final=1e-4)
    fit_inrs(prepared, folder, TINY, changed, case_ids=["toy_01"], progress=False, on_batch=batches.append)
    assert batches == [["toy_01"]]  # a changed setting invalidates the case


def test_case_cache_shares_fits_between_runs_of_other_splits(tmp_path) -> None:
    prepared = toy_prepared(4)
    settings = FitSettings(steps=10, points_per_step=256, lr=1e-3, lr_final=1e-4)
    cache = tmp_path / "cache"
    batches: list[list[str]] = []
    first = fit_inrs(
        prepared,
        tmp_path / "split-0",
        TINY,
        settings,
        case_ids=["toy_00", "toy_01", "toy_02"],
        progress=False,
        case_cache=cache,
        on_batch=batches.append,
    )
    assert sorted(p.name for p in cache.iterdir()) == ["toy_00.safetensors", "toy_01.safetensors", "toy_02.safetensors"]
    batches.clear()
    second = fit_inrs(
        prepared,
        tmp_path / "split-1",
        TINY,
        settings,
        case_ids=["toy_01", "toy_03"],
        progress=False,
        case_cache=cache,
        on_batch=batches.append,
    )
    assert batches == [["toy_03"]]  # toy_01 comes from the cache, bit for bit
    torch.testing.assert_close(second.params[0], first.params[1], rtol=0, atol=0)
    assert (tmp_path / "split-1" / "cases" / "toy_01.safetensors").is_file()
    batches.clear()
    other = FitSettings(steps=11, points_per_step=256, lr=1e-3, lr_final=1e-4)
    fit_inrs(
        prepared,
        tmp_path / "split-2",
        TINY,
        other,
        case_ids=["toy_01"],
        progress=False,
        case_cache=cache,
        on_batch=batches.append,
    )
    assert batches == [["toy_01"]]  # other settings: the cached fit does not apply


def test_outputs_load_safely_and_decode_on_any_grid(tmp_path) -> None:
    prepared = toy_prepared(2)
    settings = FitSettings(steps=40, points_per_step=512, lr=1e-3, lr_final=1e-4)
    fitted = fit_inrs(prepared, tmp_path, TINY, settings, progress=False)
    loaded = load_fitted(tmp_path)
    assert torch.equal(loaded.params, fitted.params) and torch.equal(loaded.init, siren_init(TINY, 0))
    assert loaded.spec == TINY and loaded.settings == settings and loaded.case_ids == prepared.case_ids
    assert list(loaded.fidelity.columns[:4]) == ["case_id", "psnr_db", "myocardium_dice", "fibrosis_dice"]
    with safe_open(str(tmp_path / "inrs.safetensors"), framework="pt") as handle:
        assert handle.get_tensor("params").shape == (2, TINY.n_params)
    on_grid = loaded.decode("toy_01")
    assert on_grid.intensity.shape == (1, 4, 20, 20)
    fine = loaded.decode(["toy_00", "toy_01"], shape=(7, 33, 31))
    assert fine.intensity.shape == fine.myocardium.shape == (2, 7, 33, 31)
    assert 0 <= fine.fibrosis.min() and fine.fibrosis.max() <= 1
    direct = decode(fitted.params[1], TINY, (4, 20, 20))
    np.testing.assert_allclose(direct.intensity, on_grid.intensity, atol=1e-6)
    with pytest.raises(KeyError, match="no fitted INR for nope"):
        loaded.decode("nope")
    with pytest.raises(FileNotFoundError, match="run the INR stage"):
        load_fitted(tmp_path / "missing")


def test_precision_choices() -> None:
    assert resolve_precision(None, torch.device("cpu")) == "fp32"
    assert resolve_precision(None, torch.device("cuda")) == "tf32"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_precision("bf16", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))
