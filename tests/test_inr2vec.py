"""inr2vec: the weight rows, an encoder blind to row order, training that reproduces the INRs, resume, loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lgelib.inr import ParameterLayout, SirenSpec, siren_init
from lgelib.inr2vec import (Inr2Vec, Inr2VecSettings, WeightRows, encode, load_inr2vec, reconstruction_fidelity,
                            train_inr2vec)
from toys import toy_fitted

SMALL = Inr2VecSettings(latent_dim=32, encoder_hidden=(32, 32, 64), decoder_hidden=64, frequencies=4,
                        max_frequency_log2=3, steps=500, batch_size=4, points_per_inr=512, lr=2e-3, lr_final=2e-4,
                        checkpoint_every=5)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    return toy_fitted(tmp_path_factory.mktemp("inrs"), n=6)


@pytest.fixture(scope="module")
def trained(fitted, tmp_path_factory: pytest.TempPathFactory):
    return train_inr2vec(fitted[1], tmp_path_factory.mktemp("inr2vec"), SMALL, device="cpu", progress=False)


def test_every_parameter_is_in_exactly_one_row_place() -> None:
    spec = SirenSpec()  # the paper's INR
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
    spec = SirenSpec(hidden=32, backbone_layers=3, head_hidden=8)
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
        model.encode(torch.zeros(2, SirenSpec().n_params))


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
    again = train_inr2vec(inrs, tmp_path / "b", SMALL, device="cpu", progress=False,
                          on_step=lambda step, loss: pytest.fail("a finished model must not be retrained"))
    assert torch.equal(again.latents, trained.latents)


def test_a_held_out_inr_is_encoded_with_the_training_statistics(fitted, trained) -> None:
    inrs = fitted[1]
    z_all = encode(trained.model, inrs.params, "cpu")
    z_one = encode(trained.model, inrs.params[2:3], "cpu")
    assert torch.allclose(z_all[2:3], z_one, atol=1e-5)  # evaluation mode: batch norm uses stored statistics
    assert np.isfinite(z_all.numpy()).all()
