"""EDM: preconditioning and loss as in Karras et al. 2022, the Heun sampler on Gaussians, training, EMA, resume, and
the held-out snapshot selection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from lgelib.edm import (
    EMA,
    EDMLoss,
    EdmPrecond,
    EdmSettings,
    HeldOutSelection,
    PerSampleNoise,
    SamplerSettings,
    ddpm_sigmas,
    edm_sampler,
    load_edm,
    sample_seeds,
    split_holdout,
    train_edm,
)
from lgelib.fsutil import load_tensors
from toys import TINY_EDM


class Recorder(nn.Module):
    """A stand-in network F that remembers its inputs and returns a fixed function of them."""

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        self.seen = (x.clone(), c_noise.clone())
        return torch.sin(x) + c_noise[:, None]


def test_preconditioning_matches_the_paper() -> None:
    sigma_data = 0.5
    net = EdmPrecond(Recorder(), sigma_data)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.002, 0.5, 1.0, 80.0])
    out = net(x, sigma)
    s = sigma[:, None].double()
    c_skip = sigma_data**2 / (s**2 + sigma_data**2)  # Karras et al. 2022, Table 1
    c_out = s * sigma_data / torch.sqrt(sigma_data**2 + s**2)
    c_in = 1 / torch.sqrt(s**2 + sigma_data**2)
    c_noise = torch.log(s) / 4
    assert torch.allclose(net.model.seen[0].double(), c_in * x, atol=1e-6)
    assert torch.allclose(net.model.seen[1].double(), c_noise[:, 0], atol=1e-6)
    assert torch.allclose(out.double(), c_skip * x + c_out * (torch.sin(c_in * x) + c_noise), atol=1e-5)
    assert math.isclose(net.coefficients(torch.tensor(1.0))[0].item(), 0.25 / 1.25, rel_tol=1e-6)


def test_loss_draws_sigma_log_normally_and_weights_it_as_published() -> None:
    loss_fn = EDMLoss(p_mean=-1.2, p_std=1.2, sigma_data=0.5)
    net = EdmPrecond(Recorder(), 0.5)
    y = torch.randn(5000, 2, generator=torch.Generator().manual_seed(1))
    loss = loss_fn(net, y, torch.Generator().manual_seed(7))
    # Replay the draws: same generator, same order (sigma, then noise).
    replay = torch.Generator().manual_seed(7)
    sigma = (torch.randn((len(y), 1), generator=replay) * 1.2 - 1.2).exp()
    noise = torch.randn(y.shape, generator=replay) * sigma
    weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    expected = weight * (net(y + noise, sigma) - y) ** 2
    assert torch.allclose(loss, expected, rtol=1e-5)
    log_sigma = sigma.log()
    assert abs(log_sigma.mean().item() + 1.2) < 0.06 and abs(log_sigma.std().item() - 1.2) < 0.06
    # The weight makes the network's own regression target unit-weighted: lambda * c_out^2 = 1.
    c_out = net.coefficients(sigma)[1]
    assert torch.allclose(loss_fn.weight(sigma) * c_out**2, torch.ones_like(sigma), atol=1e-5)


def gaussian_denoiser(mean: Tensor, cov: Tensor):
    """The exact denoiser of N(mean, cov): E[y | y + n] = mean + cov (cov + sigma^2 I)^-1 (x - mean)."""

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        eye = torch.eye(len(mean), dtype=torch.float64)
        gain = cov @ torch.linalg.inv(cov + float(sigma) ** 2 * eye)
        return mean + (x - mean) @ gain.T

    return denoise


@pytest.mark.parametrize("churn", [0.0, 40.0])
def test_heun_sampler_recovers_a_known_gaussian(churn: float) -> None:
    """With the exact denoiser of N(mean, cov) the sampler must return N(mean, cov), closer with more steps."""
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor([0.3, -0.2, 0.1, 0.0], dtype=torch.float64)  # near 0, as standardised latents are
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    cov = a @ a.T / 4 + 0.1 * torch.eye(4, dtype=torch.float64)
    latents = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    errors = {}
    for steps in (18, 64):
        settings = SamplerSettings(num_steps=steps, s_churn=churn, s_min=0.05, s_max=50)
        samples = edm_sampler(
            gaussian_denoiser(mean, cov),
            latents,
            settings,
            randn_like=lambda x: torch.randn(x.shape, generator=g, dtype=x.dtype),
        )
        assert torch.allclose(samples.mean(0), mean, atol=0.05)
        errors[steps] = ((torch.cov(samples.T) - cov).abs().max() / cov.abs().max()).item()
    assert errors[64] < 0.06 and errors[64] < errors[18] < 0.25, errors


def test_ddpm_noise_levels_match_a_simulated_forward_chain() -> None:
    """Paper Eq. 2 run for T = 1000 steps: z_t / sqrt(abar_t) = z_0 + sigma_t eps with sigma_t from ddpm_sigmas."""
    g = torch.Generator().manual_seed(3)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    z0 = torch.full((20000,), 0.7, dtype=torch.float64)
    z, alpha_bar, sigmas = z0.clone(), 1.0, ddpm_sigmas()
    for t, beta in enumerate(betas, start=1):
        z = torch.sqrt(1 - beta) * z + torch.sqrt(beta) * torch.randn(z.shape, generator=g, dtype=z.dtype)
        alpha_bar *= float(1 - beta)
        if t in (10, 200, 1000):
            x = z / math.sqrt(alpha_bar)
            assert abs(x.mean().item() - 0.7) < 0.05 * max(1.0, sigmas[t - 1].item())
            assert abs(x.std().item() / sigmas[t - 1].item() - 1) < 0.03
    assert 0.005 < sigmas[0] < 0.02 and 100 < sigmas[-1] < 200  # the range EDM's 0.002 .. 80 covers


def test_ema_follows_the_published_half_life() -> None:
    model = nn.Linear(2, 2)
    ema = EMA(model, halflife_samples=100, rampup_ratio=None)
    with torch.no_grad():
        start = ema.model.weight.clone()
        model.weight.add_(1.0)
    beta = ema.update(model, batch_size=10, samples_seen=10_000)
    assert math.isclose(beta, 0.5 ** (10 / 100))
    assert torch.allclose(ema.model.weight, beta * start + (1 - beta) * model.weight)
    ramped = EMA(model, halflife_samples=1e6, rampup_ratio=0.05)
    assert math.isclose(ramped.update(model, 10, 1000), 0.5 ** (10 / 50))  # half-life capped at 5% of seen


def test_per_sample_noise_does_not_depend_on_the_batch() -> None:
    seeds = sample_seeds(5, 6)
    assert seeds == sample_seeds(5, 6) and sample_seeds(5, 3, first=3) == seeds[3:] and seeds != sample_seeds(6, 6)
    like = torch.empty(6, 4, dtype=torch.float64)
    assert torch.equal(PerSampleNoise(seeds)(like)[3:], PerSampleNoise(seeds[3:])(like[3:]))


SMALL = EdmSettings(
    width=64,
    blocks=2,
    embedding_dim=32,
    dropout=0.0,
    steps=1500,
    batch_size=256,
    lr=2e-3,
    warmup_steps=50,
    ema_halflife_samples=20_000,
    checkpoint_every=100,
)


def test_trained_model_samples_its_training_distribution_and_resumes_exactly(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor([3.0, -2.0, 1.0])
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.3, 0.5]])
    data = mean + torch.randn(2000, 3, generator=g) @ mix.T
    trained = train_edm(data, tmp_path / "a", SMALL, device="cpu", progress=False)
    samples = trained.sample(sample_seeds(0, 3000), SamplerSettings(), "cpu")
    assert torch.allclose(samples.mean(0), data.mean(0), atol=0.15)
    assert torch.allclose(torch.cov(samples.T), torch.cov(data.T), atol=0.2)
    assert torch.allclose(trained.sample(sample_seeds(0, 5), device="cpu"), samples[:5], atol=1e-5)  # per-sample seeds

    short = EdmSettings(**{**SMALL.to_dict(), "steps": 250, "dropout": 0.1})  # dropout too must replay exactly

    class Stop(Exception):
        pass

    def interrupt(step: int, loss: float) -> None:
        if step == 130:
            raise Stop

    reference = train_edm(data, tmp_path / "b", short, device="cpu", progress=False)
    with pytest.raises(Stop):
        train_edm(data, tmp_path / "c", short, device="cpu", progress=False, on_step=interrupt)
    resumed = train_edm(data, tmp_path / "c", short, device="cpu", progress=False)
    for a, b in zip(reference.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)
    loaded = load_edm(tmp_path / "c")
    assert torch.equal(
        loaded.sample(sample_seeds(1, 4), device="cpu"), resumed.sample(sample_seeds(1, 4), device="cpu")
    )
    assert torch.allclose(loaded.standardizer.mean, data.mean(0))


def test_too_few_or_broken_latents_fail_early(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 finite"):
        train_edm(torch.zeros(1, 4), tmp_path, SMALL, device="cpu", progress=False)
    with pytest.raises(ValueError, match="NaN"):
        train_edm(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), tmp_path, SMALL, device="cpu", progress=False)
    assert not any(tmp_path.iterdir())


class GaussianDenoiser(nn.Module):
    """The exact denoiser of N(0, I) data (D = x / (1 + sigma^2)): its samples are new draws of that Gaussian."""

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return x / (1 + torch.as_tensor(sigma, dtype=x.dtype) ** 2)


class CopyingDenoiser(nn.Module):
    """The exact denoiser of a finite set (posterior mean over its points): its samples reproduce the set."""

    def __init__(self, points: Tensor) -> None:
        super().__init__()
        self.register_buffer("points", points.double())

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        logits = -(torch.cdist(x.double(), self.points) ** 2) / (2 * sigma**2)
        return torch.softmax(logits, dim=1) @ self.points


def test_held_out_criterion_scores_new_samples_near_one_half_and_copies_at_one() -> None:
    g = torch.Generator().manual_seed(0)
    train, heldout = (
        torch.randn(60, 6, generator=g, dtype=torch.float64),
        torch.randn(40, 6, generator=g, dtype=torch.float64),
    )
    settings = EdmSettings(select_samples=400, select_sampler_steps=48, holdout_fraction=0.2)
    selection = HeldOutSelection(train, heldout, GaussianDenoiser(), settings)
    fresh = selection.judge(0, GaussianDenoiser())
    copies = selection.judge(1, CopyingDenoiser(train))
    assert 0.35 < fresh < 0.65 and copies > 0.95, (fresh, copies)
    assert selection.best_step == 1 and list(selection.table().step) == [1, 2]
    assert selection.table().heldout_median_distance.nunique() == 1


def test_held_out_selection_trains_without_the_held_out_latents_and_resumes(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    data = torch.randn(24, 5, generator=g) * torch.tensor([3.0, 1.0, 1.0, 0.5, 2.0]) + 1.0
    settings = EdmSettings(
        **{
            **SMALL.to_dict(),
            "steps": 300,
            "holdout_fraction": 0.25,
            "select_every": 60,
            "select_samples": 32,
            "select_sampler_steps": 12,
        }
    )
    train_rows, held_rows = split_holdout(len(data), 0.25, settings.seed)
    assert len(held_rows) == 6 and not set(train_rows.tolist()) & set(held_rows.tolist())
    trained = train_edm(data, tmp_path / "a", settings, device="cpu", progress=False)
    assert torch.allclose(trained.standardizer.mean, data[train_rows].mean(0))  # held-out rows never trained on
    table = trained.selection
    assert list(table.step) == [60, 120, 180, 240, 300] and table.share_nearer.between(0, 1).all()
    best = table.iloc[(table.share_nearer - 0.5).abs()[::-1].idxmin()]  # the later one on ties
    assert json.loads(load_tensors(tmp_path / "a" / "edm.safetensors")[1]["selected_step"]) == best.step

    class Stop(Exception):
        pass

    def interrupt(step: int, loss: float) -> None:
        if step == 130:
            raise Stop

    with pytest.raises(Stop):
        train_edm(data, tmp_path / "b", settings, device="cpu", progress=False, on_step=interrupt)
    resumed = train_edm(data, tmp_path / "b", settings, device="cpu", progress=False)
    assert resumed.selection.equals(table)
    for a, b in zip(trained.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)
    assert load_edm(tmp_path / "b").selection.equals(table)


def mixture_denoiser(means: Tensor, variance: float, weights: Tensor):
    """The exact denoiser of the mixture sum_k w_k N(mean_k, variance I): the posterior-weighted component
    denoisers (a component's denoiser alone is the exact conditional denoiser given that component)."""

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        total = variance + float(sigma) ** 2
        log_p = torch.log(weights)[None] - ((x[:, None, :] - means[None]) ** 2).sum(-1) / (2 * total)
        posterior = torch.softmax(log_p, dim=1)  # (N, K)
        per_component = means[None] + variance / total * (x[:, None, :] - means[None])
        return (posterior[..., None] * per_component).sum(1)

    return denoise


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_guided_sampler_with_exact_denoisers_lands_in_the_requested_component(guidance: float) -> None:
    """Classifier-free guidance with the exact conditional and unconditional denoisers of a 3-component mixture:
    every sample lands in the component asked for; unconditionally they spread over all three."""
    from lgelib.edm import guided_denoiser

    means = torch.tensor([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]], dtype=torch.float64)
    weights = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    variance = 0.05
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(600, 2, generator=g, dtype=torch.float64)
    unconditional = mixture_denoiser(means, variance, weights)
    for wanted in range(3):
        conditional = mixture_denoiser(means[wanted : wanted + 1], variance, torch.ones(1, dtype=torch.float64))
        samples = edm_sampler(guided_denoiser(conditional, unconditional, guidance), latents, SamplerSettings())
        nearest = torch.cdist(samples, means).argmin(dim=1)
        assert (nearest == wanted).all(), (wanted, torch.bincount(nearest, minlength=3))
    free = torch.cdist(edm_sampler(unconditional, latents, SamplerSettings()), means).argmin(dim=1)
    shares = torch.bincount(free, minlength=3).double() / len(free)
    assert torch.allclose(shares, weights, atol=0.07), shares  # the rare component too, at its own weight


def test_a_conditioned_model_learns_its_conditions_and_still_samples_unconditionally(tmp_path: Path) -> None:
    """Two clusters labelled by a 1-d condition: sampled with a label, the model returns that cluster; without one
    (the null condition it learned through condition dropout) it returns both; the labels survive saving."""
    g = torch.Generator().manual_seed(0)
    label = (torch.rand(400, generator=g) < 0.5).float()[:, None]
    data = torch.where(label > 0, torch.tensor([2.0, 2.0]), torch.tensor([-2.0, -2.0])) + 0.2 * torch.randn(
        400, 2, generator=g
    )
    trained = train_edm(
        data, tmp_path / "cond", TINY_EDM, device="cpu", progress=False, conditions=label, condition_columns=("a",)
    )
    assert trained.condition_columns == ("a",)
    seeds = sample_seeds(3, 200)
    for value, centre in ((1.0, 2.0), (0.0, -2.0)):
        samples = trained.sample(seeds, SamplerSettings(), "cpu", conditions=torch.full((200, 1), value), guidance=2)
        assert ((samples - centre).abs() < 1.0).all(dim=1).float().mean() > 0.95, value
    free = trained.sample(seeds, SamplerSettings(), "cpu")
    upper = (free.mean(dim=1) > 0).float().mean()
    assert 0.25 < upper < 0.75, upper
    loaded = load_edm(tmp_path / "cond")
    assert loaded.condition_columns == ("a",)
    assert torch.equal(
        loaded.sample(seeds[:4], conditions=torch.ones(4, 1), device="cpu"),
        trained.sample(seeds[:4], conditions=torch.ones(4, 1), device="cpu"),
    )
    with pytest.raises(ValueError, match=r"conditions must be \(4, 1\)"):
        trained.sample(seeds[:4], conditions=torch.ones(3, 1), device="cpu")
    plain = train_edm(data, tmp_path / "plain", TINY_EDM, device="cpu", progress=False)
    with pytest.raises(ValueError, match="trained without conditions"):
        plain.sample(seeds[:4], conditions=torch.ones(4, 1), device="cpu")
