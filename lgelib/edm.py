"""Stage 3 (paper section 3.3): an EDM diffusion model (Karras et al. 2022) on the inr2vec latents.

As published (NVlabs/edm, ``training/loss.py``, ``training/networks.py``, ``generate.py``):

- Preconditioning (`EdmPrecond`), kept apart from the network: D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)
  with c_skip = s^2 / (sigma^2 + s^2), c_out = sigma s / sqrt(sigma^2 + s^2), c_in = 1 / sqrt(sigma^2 + s^2),
  c_noise = ln(sigma) / 4, s = sigma_data.
- Training (`EDMLoss`): ln(sigma) ~ N(P_mean = -1.2, P_std = 1.2), loss lambda(sigma) |D(y + n; sigma) - y|^2 with
  n ~ N(0, sigma^2 I) and lambda = (sigma^2 + s^2) / (sigma s)^2, which makes the network's own target unit-variance.
  An exponential moving average of the weights (`EMA`, EDM's half-life in samples with ramp-up) is what samples.
- Sampling (`edm_sampler`): Heun's 2nd-order method on the probability-flow ODE, noise levels
  sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho with rho = 7, optional
  stochastic churn (S_churn, S_min, S_max, S_noise).

**Held-out selection** (beyond the paper; ``holdout_fraction`` > 0): the optimal denoiser of a finite training set
reproduces that set, so a long training memorises a few dozen latents. A share of the training latents is kept out
of training, and every ``select_every`` steps the EMA denoiser's samples are compared with them
(`HeldOutSelection`): the snapshot whose samples lie as near the training latents as the held-out latents do is
the one kept.

**Conditioning** (beyond the paper; `train_edm` with ``conditions``): each training latent comes with a condition
vector (e.g. its heart's scar descriptors, `lgelib.scar_descriptors`), embedded and added to the noise embedding.
A share ``condition_dropout`` of the training rows has its condition replaced by the null condition, so the one
network is both the conditional and the unconditional denoiser, and sampling uses classifier-free guidance (Ho &
Salimans 2022): D = D(x; sigma) + w (D(x; sigma | c) - D(x; sigma)) (`guided_denoiser`; w = 1 is the conditional
denoiser alone, w > 1 pushes samples further towards the condition).

The network is `VectorDenoiser`, a residual MLP for vectors with a sinusoidal embedding of c_noise. Latents are
standardised per dimension first (`LatentStandardizer`, saved with the model), so sigma_data = 1, not EDM's 0.5
for images in [-1, 1].

**The paper's DDPM notation.** The paper writes the forward process as T = 1000 steps of
z_t = sqrt(1 - beta_t) z_{t-1} + sqrt(beta_t) eps (Eq. 2), i.e. z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps with
abar_t = prod_s (1 - beta_s). Dividing by sqrt(abar_t) gives EDM's variance-exploding form x = z_0 + sigma_t eps with
sigma_t = sqrt((1 - abar_t) / abar_t) (`ddpm_sigmas`); an epsilon-predictor and EDM's denoiser are related by
D(x; sigma) = x - sigma eps_theta, and Eq. 3's ancestral step is one discretisation of the same reverse process.
EDM replaces the 1000 discrete t by a continuous sigma (log-normal in training) and the ancestral chain by 18
Heun steps (35 network evaluations) from sigma_max = 80 down to sigma_min = 0.002; a linear beta schedule from 1e-4
to 0.02 spans sigma of about 0.01 to 157, so both cover the same range of noise levels.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgelib.fsutil import load_tensors, save_tensors
from lgelib.device import resolve_device
from lgelib.inr.sampling import case_seed
from lgelib.fingerprint import fingerprint, tensors_match
from lgelib.training import TrainingLoop, cosine_lr, seeded

MODEL_FILE = "edm.safetensors"
SELECTION_FILE = "selection.csv"


@dataclass(frozen=True)
class EdmSettings:
    """The denoiser network and its training; everything here changes the result.

    Attributes:
        width, blocks, embedding_dim, dropout: `VectorDenoiser`'s size.
        sigma_data, p_mean, p_std: EDM's data standard deviation and log-normal training noise levels.
        steps, batch_size: optimisation steps and latents per step (drawn with replacement, fresh noise each).
        lr, warmup_steps: Adam, linear warm-up then constant (EDM's schedule).
        ema_halflife_samples, ema_rampup_ratio: EDM's EMA: half-life in training samples, capped at
            ``ema_rampup_ratio`` times the samples seen so far.
        seed: network initialisation, batches, noise.
        checkpoint_every: steps between resumable checkpoints.
        holdout_fraction: share of the latents kept out of training to select the EMA snapshot
            (`HeldOutSelection`); 0 trains on every latent and keeps the last EMA.
        select_every, select_samples, select_sampler_steps: how often the snapshot is judged, on how many samples,
            drawn with how many Heun steps.
    """

    width: int = 1024
    blocks: int = 4
    embedding_dim: int = 256
    dropout: float = 0.1
    sigma_data: float = 1.0
    p_mean: float = -1.2
    p_std: float = 1.2
    steps: int = 30000
    batch_size: int = 256
    lr: float = 1e-4
    warmup_steps: int = 1000
    ema_halflife_samples: int = 500_000
    ema_rampup_ratio: float = 0.05
    seed: int = 0
    checkpoint_every: int = 1000
    holdout_fraction: float = 0.0
    select_every: int = 500
    select_samples: int = 64
    select_sampler_steps: int = 32

    def __post_init__(self) -> None:
        if self.width < 1 or self.blocks < 0 or self.steps < 1 or self.batch_size < 1 or not self.sigma_data > 0:
            raise ValueError(f"invalid EDM settings {self}")
        if not 0 <= self.holdout_fraction < 1 or self.select_every < 1 or self.select_samples < 1:
            raise ValueError(
                f"invalid EDM selection settings: holdout_fraction {self.holdout_fraction} must be in "
                f"[0, 1), select_every {self.select_every} and select_samples {self.select_samples} >= 1"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SamplerSettings:
    """EDM's deterministic Heun sampler (S_churn = 0) or its stochastic variant; defaults as published."""

    num_steps: int = 18
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    s_churn: float = 0.0
    s_min: float = 0.0
    s_max: float = float("inf")
    s_noise: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class NoiseEmbedding(nn.Module):
    """c_noise -> (N, out): EDM's sinusoidal positional embedding followed by a 2-layer SiLU MLP."""

    def __init__(self, channels: int, out: int, max_positions: int = 10000) -> None:
        super().__init__()
        half = channels // 2
        self.register_buffer("freqs", (1 / max_positions) ** (torch.arange(half) / max(half - 1, 1)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, out), nn.SiLU(), nn.Linear(out, out))

    def forward(self, c_noise: Tensor) -> Tensor:
        x = c_noise.float()[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([x.cos(), x.sin()], dim=1))


class ResidualBlock(nn.Module):
    """h + Linear(Dropout(SiLU(LN(Linear(SiLU(LN(h))) + emb)))); the last layer starts at zero."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.emb = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        x = self.fc1(F.silu(self.norm1(h))) + self.emb(emb)
        return h + self.fc2(self.dropout(F.silu(self.norm2(x))))


def condition_input(cond: Tensor, dim: int) -> Tensor:
    """Condition vectors (N, dim) -> (N, dim + 1): [c, 1] per row, and [0, ..., 0, 0] (the null condition) for a
    row of NaN (a dropped or absent condition)."""
    if cond.dim() != 2 or cond.shape[1] != dim:
        raise ValueError(f"conditions must be (N, {dim}), got {tuple(cond.shape)}")
    given = ~torch.isnan(cond).any(dim=1, keepdim=True)
    return torch.cat([torch.nan_to_num(cond, nan=0.0) * given, given.to(cond.dtype)], dim=1)


class VectorDenoiser(nn.Module):
    """F(c_in x, c_noise[, c]) for vectors (N, dim): input layer, residual blocks conditioned on the noise level
    (and, with ``cond_dim`` > 0, on a condition vector), output."""

    def __init__(
        self, dim: int, width: int, blocks: int, embedding_dim: int, dropout: float = 0.0, cond_dim: int = 0
    ) -> None:
        super().__init__()
        self.embedding = NoiseEmbedding(embedding_dim, width)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, dropout) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)
        self.cond_dim = int(cond_dim)
        if self.cond_dim:  # made last, so an unconditional network's initialisation does not change
            self.condition = nn.Sequential(nn.Linear(cond_dim + 1, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.embedding(c_noise)
        if self.cond_dim:
            if cond is None:
                cond = torch.full((len(x), self.cond_dim), float("nan"), device=x.device)
            emb = emb + self.condition(condition_input(cond.to(x.device, torch.float32), self.cond_dim))
        elif cond is not None:
            raise ValueError("this denoiser was trained without conditions")
        emb = F.silu(emb)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.out_norm(h)))


class EdmPrecond(nn.Module):  # NVlabs/edm calls it EDMPrecond
    """D(x; sigma) = c_skip x + c_out F(c_in x, c_noise): EDM's preconditioning around any network F."""

    def __init__(self, model: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.model = model
        self.sigma_data = float(sigma_data)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in, c_noise) for noise levels ``sigma``."""
        s = self.sigma_data
        c_skip = s**2 / (sigma**2 + s**2)
        c_out = sigma * s / (sigma**2 + s**2).sqrt()
        c_in = 1 / (s**2 + sigma**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Tensor | None = None) -> Tensor:
        x = x.to(torch.float32)
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1, 1).expand(len(x), 1)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        extra = () if cond is None else (cond,)
        return c_skip * x + c_out * self.model(c_in * x, c_noise.flatten(), *extra)


class EDMLoss:
    """lambda(sigma) |D(y + n; sigma) - y|^2 per element, ln(sigma) ~ N(p_mean, p_std^2), n ~ N(0, sigma^2 I)."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5) -> None:
        self.p_mean, self.p_std, self.sigma_data = p_mean, p_std, sigma_data

    def weight(self, sigma: Tensor) -> Tensor:
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def __call__(
        self, net: nn.Module, y: Tensor, generator: torch.Generator | None = None, cond: Tensor | None = None
    ) -> Tensor:
        rnd_normal = torch.randn((len(y), 1), generator=generator).to(y.device)
        sigma = (rnd_normal * self.p_std + self.p_mean).exp()
        n = torch.randn(y.shape, generator=generator).to(y.device) * sigma
        extra = () if cond is None else (cond,)
        return self.weight(sigma) * (net(y + n, sigma, *extra) - y) ** 2


class EMA:
    """EDM's exponential moving average of the weights: beta = 0.5^(batch / min(halflife, rampup * seen))."""

    def __init__(self, model: nn.Module, halflife_samples: float, rampup_ratio: float | None = 0.05) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.halflife, self.rampup = float(halflife_samples), rampup_ratio

    @torch.no_grad()
    def update(self, model: nn.Module, batch_size: int, samples_seen: int) -> float:
        """Blend ``model`` into the average after a step; ``samples_seen`` counts that step. Returns beta."""
        halflife = self.halflife
        if self.rampup is not None:
            halflife = min(halflife, samples_seen * self.rampup)
        beta = 0.5 ** (batch_size / max(halflife, 1e-8))
        for average, current in zip(self.model.parameters(), model.parameters()):
            average.copy_(current.detach().lerp(average, beta))
        for average, current in zip(self.model.buffers(), model.buffers()):
            average.copy_(current)
        return beta


class PerSampleNoise:
    """Gaussian noise where row i always comes from its own seeded stream (as EDM's StackedRandomGenerator).

    Sample i therefore does not depend on how many samples are drawn with it: the first 100 of 200 are the 100.
    Drawn on the CPU in float64, so the same seeds give the same noise on every device.
    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, like: Tensor) -> Tensor:
        rows = [torch.randn(like.shape[1:], generator=g, dtype=torch.float64) for g in self.generators]
        return torch.stack(rows).to(device=like.device, dtype=like.dtype)


def sigma_steps(settings: SamplerSettings, device: torch.device | str | None = None) -> Tensor:
    """The sampler's noise levels sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min, then sigma_N = 0 (float64)."""
    s = settings
    step_indices = torch.arange(s.num_steps, dtype=torch.float64, device=device)
    t_steps = (
        s.sigma_max ** (1 / s.rho)
        + step_indices / max(s.num_steps - 1, 1) * (s.sigma_min ** (1 / s.rho) - s.sigma_max ** (1 / s.rho))
    ) ** s.rho
    return torch.cat([t_steps, torch.zeros_like(t_steps[:1])])


def edm_sampler(
    net: Callable[[Tensor, Tensor], Tensor],
    latents: Tensor,
    settings: SamplerSettings = SamplerSettings(),
    randn_like: Callable[[Tensor], Tensor] = torch.randn_like,
) -> Tensor:
    """EDM Algorithm 2: Heun steps from sigma_max to 0; ``latents`` ~ N(0, I) (N, dim), returns samples (float64)."""
    s = settings
    t_steps = sigma_steps(s, latents.device)

    x_next = latents.to(torch.float64) * t_steps[0]
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        # Increase noise temporarily (churn).
        gamma = min(s.s_churn / s.num_steps, math.sqrt(2) - 1) if s.s_min <= t_cur <= s.s_max else 0.0
        t_hat = t_cur + gamma * t_cur
        x_hat = x_cur + (t_hat**2 - t_cur**2).sqrt() * s.s_noise * randn_like(x_cur) if gamma > 0 else x_cur
        # Euler step.
        denoised = net(x_hat, t_hat).to(torch.float64)
        d_cur = (x_hat - denoised) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        # Second-order correction.
        if i < s.num_steps - 1:
            denoised = net(x_next, t_next).to(torch.float64)
            d_prime = (x_next - denoised) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def guided_denoiser(
    conditional: Callable[[Tensor, Tensor], Tensor],
    unconditional: Callable[[Tensor, Tensor], Tensor],
    guidance: float,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Classifier-free guidance: D(x; sigma) + w (D(x; sigma | c) - D(x; sigma)), w = ``guidance`` (1: the
    conditional denoiser alone, not evaluating the unconditional one; 0: the unconditional one)."""
    if guidance < 0:
        raise ValueError(f"guidance must be >= 0, got {guidance}")
    if guidance == 1:
        return conditional
    if guidance == 0:
        return unconditional

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        uncond = unconditional(x, sigma)
        return uncond + guidance * (conditional(x, sigma) - uncond)

    return denoise


def ddpm_sigmas(timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """EDM noise level sigma_t = sqrt((1 - abar_t) / abar_t) of steps t = 1..T of a linear-beta DDPM (paper Eq. 2)."""
    betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def nearest_distances(queries: Tensor, references: Tensor) -> Tensor:
    """Euclidean distance (Q,) from each query row to its nearest reference row."""
    return torch.cdist(queries.double(), references.double()).min(dim=1).values


def split_holdout(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded (train rows, held-out rows) of n latents; at least 2 on each side, none held out for fraction 0."""
    if fraction <= 0:
        return torch.arange(n), torch.arange(0)
    held = max(2, round(n * fraction))
    if n - held < 2:
        raise ValueError(f"holdout_fraction {fraction} of {n} latents leaves fewer than 2 to train on")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return order[held:].sort().values, order[:held].sort().values


class HeldOutSelection:
    """Keeps the EMA snapshot whose samples are as new as unseen latents are (all in standardised latent space).

    For each judged snapshot, ``select_samples`` latents are drawn (fixed seeds, so snapshots are compared on the
    same noise); ``share_nearer`` is the share of them nearer to their nearest training latent than the median
    held-out latent is to its nearest training latent. Samples from the true distribution give about 0.5; a model
    that reproduces its training set gives 1; one whose samples are still noise gives 0. The snapshot with
    ``share_nearer`` closest to 0.5 is kept (the later one on ties). ``rows`` is the audit: step, share_nearer,
    the samples' median nearest distance and the held-out threshold.
    """

    def __init__(self, train: Tensor, heldout: Tensor, ema_model: nn.Module, settings: EdmSettings) -> None:
        self.train, self.settings = train, settings
        self.threshold = float(nearest_distances(heldout, train).median())
        self.best = copy.deepcopy(ema_model).eval().requires_grad_(False)
        self.best_score, self.best_step = math.inf, 0
        self.rows: list[dict[str, float]] = []
        self.seeds = sample_seeds(settings.seed + 1, settings.select_samples)

    def due(self, step: int) -> bool:
        return (step + 1) % self.settings.select_every == 0 or step + 1 == self.settings.steps

    @torch.no_grad()
    def judge(self, step: int, ema_model: nn.Module) -> float:
        """Sample from the snapshot after ``step``, record the audit row, keep the snapshot if it is the best."""
        noise = PerSampleNoise(self.seeds)
        start = noise(torch.empty(len(self.seeds), self.train.shape[1], dtype=torch.float64, device=self.train.device))
        samples = edm_sampler(
            ema_model, start, SamplerSettings(num_steps=self.settings.select_sampler_steps), randn_like=noise
        )
        distances = nearest_distances(samples, self.train)
        share = float((distances < self.threshold).double().mean())
        self.rows.append(
            {
                "step": step + 1,
                "share_nearer": share,
                "median_distance": float(distances.median()),
                "heldout_median_distance": self.threshold,
            }
        )
        if abs(share - 0.5) <= self.best_score:
            self.best_score, self.best_step = abs(share - 0.5), step + 1
            self.best.load_state_dict(ema_model.state_dict())
        return share

    def state_dict(self) -> dict:
        return {
            "rows": [list(r.values()) for r in self.rows],
            "best_score": self.best_score,
            "best_step": self.best_step,
            "best": self.best.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        keys = ("step", "share_nearer", "median_distance", "heldout_median_distance")
        self.rows = [dict(zip(keys, row)) for row in state["rows"]]
        self.best_score, self.best_step = float(state["best_score"]), int(state["best_step"])
        self.best.load_state_dict(state["best"])

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", "share_nearer", "median_distance", "heldout_median_distance"])


@dataclass
class LatentStandardizer:
    """Per-dimension mean and standard deviation of the training latents (saved with the model)."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, latents: Tensor) -> LatentStandardizer:
        return cls(latents.mean(0), latents.std(0).clamp_min(1e-6))

    def standardize(self, latents: Tensor) -> Tensor:
        return (latents - self.mean.to(latents)) / self.std.to(latents)

    def unstandardize(self, latents: Tensor) -> Tensor:
        return latents * self.std.to(latents) + self.mean.to(latents)


@dataclass
class TrainedEdm:
    """The output of the diffusion stage: the EMA denoiser, the latent statistics, the loss per step."""

    net: EdmPrecond
    standardizer: LatentStandardizer
    settings: EdmSettings
    history: pd.DataFrame
    seconds: float
    selection: pd.DataFrame | None = None
    """The held-out audit per judged snapshot (`HeldOutSelection.rows`); None without a held-out share."""
    extra_columns: tuple[str, ...] = ()
    """Names of the trailing input columns that are not latent dimensions (e.g. `lgelib.geometry.GEOMETRY_COLUMNS`)."""
    condition_columns: tuple[str, ...] = ()
    """Names of the condition vector's entries (e.g. `lgelib.scar_descriptors.CONDITION_COLUMNS`); () if the model
    was trained without conditions."""

    def sample(
        self,
        seeds: Sequence[int],
        sampler: SamplerSettings = SamplerSettings(),
        device: torch.device | str | None = None,
        conditions: Tensor | None = None,
        guidance: float = 1.0,
    ) -> Tensor:
        """One latent per seed (N, dim) in the original (unstandardised) latent space, on the CPU, float32.

        ``conditions`` (N, len(condition_columns)), one row per seed, samples with classifier-free ``guidance``
        (`guided_denoiser`); without them a conditioned model samples unconditionally (the null condition)."""
        device = resolve_device(device)
        net = self.net.to(device).eval()
        noise = PerSampleNoise(seeds)
        dim = len(self.standardizer.mean)
        denoiser: Callable[[Tensor, Tensor], Tensor] = net
        if conditions is not None:
            if not self.condition_columns:
                raise ValueError("this diffusion model was trained without conditions; sample it without them")
            cond = torch.as_tensor(conditions, dtype=torch.float32, device=device)
            if cond.shape != (len(seeds), len(self.condition_columns)):
                raise ValueError(
                    f"conditions must be ({len(seeds)}, {len(self.condition_columns)}): one row of "
                    f"{self.condition_columns} per seed, got {tuple(cond.shape)}"
                )
            denoiser = guided_denoiser(lambda x, sigma: net(x, sigma, cond), net, guidance)
        with torch.no_grad():
            start = noise(torch.empty(len(seeds), dim, dtype=torch.float64, device=device))
            samples = edm_sampler(denoiser, start, sampler, randn_like=noise)
        return self.standardizer.unstandardize(samples.float().cpu())


def sample_seeds(seed: int, count: int, first: int = 0) -> list[int]:
    """Seeds of samples first .. first + count - 1 of a run seeded ``seed`` (each sample its own stream)."""
    return [case_seed(seed, f"sample-{index}") for index in range(first, first + count)]


def _seeded_net(dim: int, settings: EdmSettings, cond_dim: int = 0) -> EdmPrecond:
    with seeded(settings.seed):
        model = VectorDenoiser(dim, settings.width, settings.blocks, settings.embedding_dim, settings.dropout, cond_dim)
    return EdmPrecond(model, settings.sigma_data)


def train_edm(
    latents: Tensor,
    out_dir: Path | str,
    settings: EdmSettings,
    device: torch.device | str | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    extra_columns: tuple[str, ...] = (),
    conditions: Tensor | None = None,
    condition_columns: tuple[str, ...] = (),
    condition_dropout: float = 0.15,
) -> TrainedEdm:
    """Train EDM on latents (N, dim) and write ``edm.safetensors`` (EMA weights, standardisation, settings) and
    ``history.csv``; a finished run with the same inputs is loaded, an interrupted one resumed from its checkpoint.
    ``on_step(step, loss)`` is called after every step (for logging, or to stop by raising).

    With ``settings.holdout_fraction`` > 0 a seeded share of the latents is held out, the rest trains, and the
    saved weights are the EMA snapshot `HeldOutSelection` keeps (its audit in ``selection.csv``).
    ``extra_columns`` names trailing columns of ``latents`` that are not latent dimensions (saved with the model).

    ``conditions`` (N, C), named by ``condition_columns``, conditions the model on one vector per latent; a share
    ``condition_dropout`` of each batch's rows is trained with the null condition (classifier-free guidance)."""
    if conditions is not None:
        conditions = torch.as_tensor(conditions, dtype=torch.float32)
        if conditions.shape != (len(latents), len(condition_columns)) or not torch.isfinite(conditions).all():
            raise ValueError(
                f"conditions must be finite, one row of {len(condition_columns)} ({condition_columns}) per "
                f"latent: ({len(latents)}, {len(condition_columns)}), got {tuple(conditions.shape)}"
            )
        if not 0 < condition_dropout < 1:
            raise ValueError(f"condition_dropout must lie in (0, 1) for guidance to work, got {condition_dropout}")
    if latents.dim() != 2 or len(latents) < 2 or not torch.isfinite(latents).all():
        raise ValueError(
            f"EDM needs at least 2 finite latent vectors as an (N, dim) tensor, got shape "
            f"{tuple(latents.shape)}{'' if torch.isfinite(latents).all() else ' with NaN or Inf values'}"
        )
    out = Path(out_dir)
    device = resolve_device(device)
    extra_columns = tuple(extra_columns)
    recipe = {**settings.to_dict(), **({"extra_columns": list(extra_columns)} if extra_columns else {})}
    inputs = [latents]
    if conditions is not None:
        recipe |= {"condition_columns": list(condition_columns), "condition_dropout": condition_dropout}
        inputs.append(conditions)
    key = fingerprint(recipe, *inputs)
    if tensors_match(out / MODEL_FILE, key):
        return load_edm(out)
    out.mkdir(parents=True, exist_ok=True)
    train_rows, held_rows = split_holdout(len(latents), settings.holdout_fraction, settings.seed)
    standardizer = LatentStandardizer.fit(latents[train_rows].float())
    data = standardizer.standardize(latents[train_rows].float()).to(device)
    cond_data = None if conditions is None else conditions[train_rows].to(device)
    net = _seeded_net(latents.shape[1], settings, 0 if conditions is None else len(condition_columns)).to(device)
    ema = EMA(net, settings.ema_halflife_samples, settings.ema_rampup_ratio)
    loss_fn = EDMLoss(settings.p_mean, settings.p_std, settings.sigma_data)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    stateful = {"net": net, "ema": ema.model, "optimizer": optimizer}
    selection = None
    if len(held_rows):
        selection = HeldOutSelection(
            data, standardizer.standardize(latents[held_rows].float()).to(device), ema.model, settings
        )
        stateful["selection"] = selection
    loop = TrainingLoop(
        out, key, settings.steps, settings.checkpoint_every, stateful, generator, "EDM", progress, on_step
    )
    net.train()
    for step in loop:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, settings.steps, settings.lr, settings.lr, settings.warmup_steps)
        rows = torch.randint(len(data), (settings.batch_size,), generator=generator).to(device)
        batch, batch_cond = data[rows], None
        if cond_data is not None:
            dropped = (torch.rand(settings.batch_size, generator=generator) < condition_dropout).to(device)
            batch_cond = cond_data[rows].masked_fill(dropped[:, None], float("nan"))
        with seeded(int(torch.randint(2**62, (1,), generator=generator)), device):  # dropout, reproducibly
            loss = loss_fn(net, batch, generator, batch_cond).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update(net, settings.batch_size, (step + 1) * settings.batch_size)
        if selection is not None and selection.due(step):
            selection.judge(step, ema.model)
        loop.record(step, loss.item())
    history, seconds = loop.finish()
    kept = ema.model if selection is None else selection.best
    tensors = {f"ema.{k}": v.cpu() for k, v in kept.state_dict().items()}
    tensors |= {"latent_mean": standardizer.mean, "latent_std": standardizer.std}
    metadata = {
        "fingerprint": key,
        "settings": json.dumps(settings.to_dict()),
        "dim": str(latents.shape[1]),
        "seconds": str(seconds),
        "extra_columns": json.dumps(list(extra_columns)),
    }
    if conditions is not None:
        metadata |= {"condition_columns": json.dumps(list(condition_columns))}
    table = None
    (out / SELECTION_FILE).unlink(missing_ok=True)
    if selection is not None:
        table = selection.table()
        table.to_csv(out / SELECTION_FILE, index=False)
        metadata |= {"selected_step": str(selection.best_step), "heldout_rows": json.dumps(held_rows.tolist())}
    save_tensors(out / MODEL_FILE, tensors, metadata)
    return TrainedEdm(
        kept.cpu(),
        standardizer,
        settings,
        history,
        seconds,
        table,
        extra_columns,
        tuple(condition_columns) if conditions is not None else (),
    )


def load_edm(folder: Path | str) -> TrainedEdm:
    """Read a stage folder written by `train_edm` (safetensors: nothing is unpickled)."""
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{folder / MODEL_FILE} does not exist: train the diffusion model first (train_edm)")
    tensors, metadata = load_tensors(folder / MODEL_FILE)
    settings = EdmSettings(**json.loads(metadata["settings"]))
    condition_columns = tuple(json.loads(metadata.get("condition_columns", "[]")))
    net = _seeded_net(int(metadata["dim"]), settings, len(condition_columns))
    net.load_state_dict({k[len("ema.") :]: v for k, v in tensors.items() if k.startswith("ema.")})
    history = pd.read_csv(folder / "history.csv") if (folder / "history.csv").is_file() else pd.DataFrame()
    selection = pd.read_csv(folder / SELECTION_FILE) if (folder / SELECTION_FILE).is_file() else None
    return TrainedEdm(
        net.eval(),
        LatentStandardizer(tensors["latent_mean"], tensors["latent_std"]),
        settings,
        history,
        float(metadata.get("seconds", "nan")),
        selection,
        tuple(json.loads(metadata.get("extra_columns", "[]"))),
        condition_columns,
    )
