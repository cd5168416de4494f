"""inr2vec: the weight rows, an encoder blind to row order, training that reproduces the INRs (or the data they were
fitted to), resume, loading, latents refined through the frozen decoder, the film-siren decoder and the lossless
weights latent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lgelib.inr import ParameterLayout, SirenSettings, siren_init
from lgelib.inr.coords import grid_coordinates
from lgelib.inr2vec import (
    Inr2Vec,
    ModulatedSirenDecoder,
    WeightLatent,
    WeightRows,
    decode_latents,
    encode,
    distillation_loss,
    inr_targets,
    load_inr2vec,
    reconstruction_fidelity,
    refine_latents,
    train_inr2vec,
)
from toys import TINY_INR2VEC, toy_fitted

SMALL = dataclasses.replace(TINY_INR2VEC, checkpoint_every=5)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    return toy_fitted(tmp_path_factory.mktemp("inrs"), n=6)


@pytest.fixture(scope="module")
def trained(fitted, tmp_path_factory: pytest.TempPathFactory):
    return train_inr2vec(fitted[1], tmp_path_factory.mktemp("inr2vec"), SMALL, device="cpu", progress=False)


def test_every_parameter_is_in_exactly_one_row_place() -> None:
    spec = SirenSettings()  # the paper's INR
    rows = WeightRows(spec)
    assert rows.n_rows == 4 * 256 + 3 * (80 + 1) and rows.width == 257 and rows.n_layers == 10
    assert rows.table()[:2] == [("backbone.0", 256, 4), ("backbone.1", 256, 257)]
    assert rows.table()[-1] == ("heads.fibrosis.1", 1, 81)
    used = rows.index[rows.index < spec.n_params]
    assert torch.equal(used.sort().values, torch.arange(spec.n_params))  # all layers kept, none twice
    flat = siren_init(spec, 0)
    named = ParameterLayout(spec).unflatten(flat)
    table = rows(flat[None])[0]
    first_head = 4 * 256  # the intensity head's sine layer starts after the backbone's neurons
    assert torch.equal(table[first_head, :256], named["heads.intensity.0.weight"][0])
    assert table[first_head, 256] == named["heads.intensity.0.bias"][0]
    assert torch.equal(table[0, :4], torch.cat([named["backbone.0.weight"][0], named["backbone.0.bias"][:1]]))
    assert not table[0, 4:].any()  # padding


def test_encoder_ignores_row_order_but_not_the_weights() -> None:
    spec = SirenSettings(hidden=32, backbone_layers=3, head_hidden=8)
    model = Inr2Vec(spec, SMALL)
    params = siren_init(spec, 0) + 0.01 * torch.randn(3, spec.n_params, generator=torch.Generator().manual_seed(1))
    model.calibrate(params, siren_init(spec, 0))
    features = model.row_features(params)
    shuffled = features[:, torch.randperm(features.shape[1], generator=torch.Generator().manual_seed(2))]
    for mode in (model.eval, model.train):
        mode()
        assert torch.allclose(model.encoder(features), model.encoder(shuffled), atol=1e-5)
    model.eval()
    z = model.encoder(features)
    assert z.shape == (3, SMALL.latent_dim)
    assert (z[0] - z[1]).abs().max() > 1e-3  # different INRs, different latents
    with pytest.raises(ValueError, match="another profile"):
        model.encode(torch.zeros(2, SirenSettings().n_params))


def test_training_reproduces_the_inrs_and_resumes_exactly(fitted, trained, tmp_path: Path) -> None:
    prepared, inrs = fitted
    losses = trained.history.loss.to_numpy()
    assert losses[-20:].mean() < 0.2 * losses[:20].mean()
    fidelity = reconstruction_fidelity(trained.model, inrs, prepared, "cpu")
    assert fidelity.myocardium_dice.min() > 0.9 and fidelity.fibrosis_dice.min() > 0.5, fidelity
    assert (fidelity.psnr_db > fidelity.inr_psnr_db - 2).all(), fidelity  # close to the INRs themselves

    class Stop(Exception):
        pass

    def interrupt(step: int, loss: float) -> None:
        if step == 12:
            raise Stop

    with pytest.raises(Stop):
        train_inr2vec(inrs, tmp_path / "b", SMALL, device="cpu", progress=False, on_step=interrupt)
    assert (tmp_path / "b" / "checkpoint.pt").is_file() and not (tmp_path / "b" / "inr2vec.safetensors").exists()
    resumed = train_inr2vec(inrs, tmp_path / "b", SMALL, device="cpu", progress=False)
    assert torch.equal(resumed.latents, trained.latents)
    assert not (tmp_path / "b" / "checkpoint.pt").exists()

    assert list(pd.read_csv(tmp_path / "b" / "history.csv").loss) == pytest.approx(list(losses))

    loaded = load_inr2vec(tmp_path / "b")
    assert loaded.case_ids == inrs.case_ids
    assert torch.allclose(encode(loaded.model, inrs.params, "cpu"), trained.latents, atol=1e-6)
    again = train_inr2vec(
        inrs,
        tmp_path / "b",
        SMALL,
        device="cpu",
        progress=False,
        on_step=lambda step, loss: pytest.fail("a finished model must not be retrained"),
    )
    assert torch.equal(again.latents, trained.latents)


def test_a_held_out_inr_is_encoded_with_the_training_statistics(fitted, trained) -> None:
    inrs = fitted[1]
    z_all = encode(trained.model, inrs.params, "cpu")
    z_one = encode(trained.model, inrs.params[2:3], "cpu")
    assert torch.allclose(z_all[2:3], z_one, atol=1e-5)  # evaluation mode: batch norm uses stored statistics
    assert np.isfinite(z_all.numpy()).all()


def test_refined_latents_fit_unseen_inrs_better_and_leave_the_model_alone(trained, tmp_path: Path) -> None:
    """On INRs of hearts inr2vec never saw, gradient descent on z through the frozen decoder lowers Eq. 1 against
    the INRs' own outputs on the whole grid; the model's weights and their trainability are as before; 0 steps is
    the encoder."""
    prepared, inrs = toy_fitted(tmp_path, n=2, steps=60, seed=7)
    model = trained.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for parameter in model.parameters():
        parameter.grad = None
    frozen = next(model.encoder.parameters())
    frozen.requires_grad_(False)  # a caller's own frozen parameter stays frozen
    try:
        z0 = encode(model, inrs.params, "cpu")
        assert torch.equal(refine_latents(model, inrs, steps=0, device="cpu"), z0)
        with torch.no_grad():  # refining works inside a caller's no_grad block too
            z = refine_latents(model, inrs, steps=60, lr=1e-2, points=256, seed=3, device="cpu")
        assert z.shape == z0.shape and not torch.equal(z, z0)
        assert torch.equal(z, refine_latents(model, inrs, steps=60, lr=1e-2, points=256, seed=3, device="cpu"))
        assert all(p.grad is None for p in model.parameters())  # no gradient reached the model
        assert not frozen.requires_grad
    finally:
        frozen.requires_grad_(True)  # the module's fixture is shared
    targets, _, _ = inr_targets(inrs, torch.device("cpu"))

    coords = grid_coordinates(inrs.grid_shape, torch.device("cpu"))

    def grid_loss(latents: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return distillation_loss(model.decode(latents, coords), targets, model.settings.loss_weights)

    assert grid_loss(z).mean() < 0.9 * grid_loss(z0).mean()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())
    refined = reconstruction_fidelity(model, inrs, prepared, "cpu", latents=z)
    assert len(refined) == len(inrs.case_ids)
    with pytest.raises(ValueError, match="one latent per INR"):
        reconstruction_fidelity(model, inrs, prepared, "cpu", latents=z[:1])
    with pytest.raises(TypeError, match="weights latent"):
        refine_latents(WeightLatent(inrs.spec, SMALL), inrs, device="cpu")


def test_the_decoder_learns_the_data_not_the_inrs(fitted, tmp_path: Path) -> None:
    """INRs fitted to the toy volumes, data targets mirrored left-right: the data-supervised decoder reproduces the
    mirrored volumes (and a film-siren decoder does too), the distilling one the INRs' unmirrored outputs."""
    prepared, inrs = fitted
    mirrored = dataclasses.replace(
        prepared,
        images=prepared.images[..., ::-1].copy(),
        myocardium=prepared.myocardium[..., ::-1].copy(),
        fibrosis=prepared.fibrosis[..., ::-1].copy(),
    )
    scores = {}
    for name, settings in {
        "data": dataclasses.replace(SMALL, targets="data"),
        "data, film-siren": dataclasses.replace(SMALL, targets="data", decoder="film-siren"),
        "inr": SMALL,
    }.items():
        model = train_inr2vec(inrs, tmp_path / name, settings, device="cpu", progress=False, prepared=mirrored).model
        scores[name] = (
            reconstruction_fidelity(model, inrs, mirrored, "cpu").myocardium_dice.mean(),
            reconstruction_fidelity(model, inrs, prepared, "cpu").myocardium_dice.mean(),
        )
    # A toy ring overlaps its own mirror image with Dice ~0.65: each decoder must be clearly nearer its targets.
    assert scores["data"][0] > 0.9 and scores["data"][0] - scores["data"][1] > 0.25, scores
    assert scores["data, film-siren"][0] > 0.9 and scores["data, film-siren"][0] - scores["data, film-siren"][1] > 0.25
    assert scores["inr"][1] > 0.9 and scores["inr"][1] - scores["inr"][0] > 0.25, scores
    with pytest.raises(ValueError, match="prepared="):
        train_inr2vec(inrs, tmp_path / "none", dataclasses.replace(SMALL, targets="data"), device="cpu", progress=False)


def test_the_film_siren_decoder_is_modulated_by_z() -> None:
    settings = dataclasses.replace(SMALL, decoder="film-siren")
    decoder = Inr2Vec(SirenSettings(hidden=32, backbone_layers=3, head_hidden=8), settings).decoder
    assert isinstance(decoder, ModulatedSirenDecoder) and decoder.layers == sum(SMALL.decoder_layers)
    coords = torch.rand(50, 3) * 2 - 1
    z = torch.randn(2, SMALL.latent_dim)
    assert torch.equal(decoder(z, coords)[0], decoder(z, coords)[1])  # shifts start at zero
    torch.nn.init.normal_(decoder.shifts.weight)
    out = decoder(z, coords)
    assert out.shape == (2, 50, 3) and (out[0] - out[1]).abs().max() > 1e-3
    assert torch.allclose(decoder(z, coords[None].expand(2, -1, -1)), out, atol=1e-6)
    with pytest.raises(ValueError, match="decoder must be one of"):
        dataclasses.replace(SMALL, decoder="relu")


def test_the_weights_latent_decodes_a_training_inr_exactly(fitted, tmp_path: Path) -> None:
    prepared, inrs = fitted
    settings = dataclasses.replace(SMALL, latent="weights")
    trained = train_inr2vec(
        inrs,
        tmp_path / "w",
        settings,
        device="cpu",
        progress=False,
        on_step=lambda step, loss: pytest.fail("the weights latent trains nothing"),
    )
    assert isinstance(trained.model, WeightLatent) and trained.latents.shape == (len(inrs.case_ids), inrs.spec.n_params)
    assert torch.allclose(trained.latents + inrs.init, inrs.params, atol=1e-6)
    decoded = decode_latents(trained.model, trained.latents, inrs.grid_shape, "cpu")
    own = inrs.decode(device="cpu")
    for field in ("intensity", "myocardium", "fibrosis"):
        assert np.allclose(getattr(decoded, field), getattr(own, field), atol=1e-5), field
    fidelity = reconstruction_fidelity(trained.model, inrs, prepared, "cpu")
    assert np.allclose(fidelity.psnr_db, fidelity.inr_psnr_db, atol=1e-3)
    loaded = load_inr2vec(tmp_path / "w")
    assert isinstance(loaded.model, WeightLatent) and torch.equal(loaded.latents, trained.latents)
    assert torch.equal(loaded.model.init, inrs.init)
