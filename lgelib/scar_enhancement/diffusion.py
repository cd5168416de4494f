"""Localized conditional DDPM (paper Sec. 2.2-2.3): the forward process noises only the ROI m,

    y_t = sqrt(abar_t) y_0 + sqrt(1 - abar_t) m eps                                   (Eq. 3)

the loss is the noise prediction error on the ROI alone, |(eps_theta(y_t, x_0, t) - eps) m|^2 (Eq. 5), and
inference starts from the input slice noised to step lambda (partial diffusion) and takes the mean of k samples
(Eq. 6). In the reverse steps the predicted noise and the fresh noise are masked by m too, so a pixel outside the
ROI only has its scaling by sqrt(abar_t) undone: the output equals the input there. ``local=False`` is the
ablation's global DDPM (m = 1 everywhere). Timesteps are 0-based in code: index t is the paper's step t + 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lgelib.device import resolve_device
from lgelib.fingerprint import fingerprint, tensors_match
from lgelib.fsutil import load_tensors, save_tensors
from lgelib.scar_enhancement.settings import DiffusionSettings, UNetSettings
from lgelib.scar_enhancement.unet import ConditionalUNet
from lgelib.training import TrainingLoop, seeded

MODEL_FILE = "denoiser.safetensors"


@dataclass(frozen=True)
class Schedule:
    """DDPM's linear variance schedule beta_1..beta_T and its products abar_t."""

    betas: Tensor

    @classmethod
    def linear(cls, timesteps: int, beta: tuple[float, float]) -> Schedule:
        return cls(torch.linspace(beta[0], beta[1], timesteps, dtype=torch.float64))

    @property
    def alphas(self) -> Tensor:
        return 1 - self.betas

    @property
    def alphas_bar(self) -> Tensor:
        return torch.cumprod(self.alphas, 0)

    def __len__(self) -> int:
        return len(self.betas)


def _at(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def forward_noise(y_0: Tensor, t: Tensor, eps: Tensor, roi: Tensor, schedule: Schedule) -> Tensor:
    """y_t of Eq. 3: noise only where ``roi`` (N,1,H,W, bool or {0,1}) is set."""
    abar = _at(schedule.alphas_bar, t, y_0)
    return abar.sqrt() * y_0 + (1 - abar).sqrt() * roi.to(y_0.dtype) * eps


def localized_loss(
    model: Callable, y_0: Tensor, x_0: Tensor, roi: Tensor, schedule: Schedule, t: Tensor, eps: Tensor
) -> Tensor:
    """Eq. 5: the mean squared noise-prediction error over the ROI's pixels (pixels outside do not count)."""
    m = roi.to(y_0.dtype)
    error = (model(forward_noise(y_0, t, eps, roi, schedule), x_0, t) - eps) * m
    return error.pow(2).sum() / m.sum().clamp_min(1)


@dataclass
class TrainedDenoiser:
    model: ConditionalUNet
    unet: UNetSettings
    diffusion: DiffusionSettings
    history: pd.DataFrame
    seconds: float

    @property
    def schedule(self) -> Schedule:
        return Schedule.linear(self.diffusion.timesteps, self.diffusion.beta)


def _seeded_model(unet: UNetSettings, seed: int) -> ConditionalUNet:
    with seeded(seed):
        return ConditionalUNet(unet)


def train_denoiser(
    images: np.ndarray,
    targets: np.ndarray,
    roi: np.ndarray,
    out_dir: Path | str,
    unet: UNetSettings,
    settings: DiffusionSettings,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TrainedDenoiser:
    """Train eps_theta on (original slice x_0, gamma target y_0, ROI) triples (N, H, W) and write
    ``denoiser.safetensors`` and ``history.csv`` in ``out_dir``; a finished training with the same inputs is
    loaded, an interrupted one resumed from its checkpoint. With ``settings.local`` False the ROI is the whole
    slice (the global ablation)."""
    if not (images.shape == targets.shape == roi.shape) or images.ndim != 3 or len(images) < 2:
        raise ValueError(
            f"images, targets and roi must be (N, H, W) arrays of one shape with N >= 2, got {images.shape}, "
            f"{targets.shape} and {roi.shape}"
        )
    out = Path(out_dir)
    device = resolve_device(device)
    recipe = {"unet": vars(unet), "diffusion": vars(settings)}
    key = fingerprint(recipe, images.astype(np.float32), targets.astype(np.float32), roi.astype(bool))
    if tensors_match(out / MODEL_FILE, key):
        return load_denoiser(out)
    out.mkdir(parents=True, exist_ok=True)
    x = torch.from_numpy(images.astype(np.float32))[:, None].to(device)
    y = torch.from_numpy(targets.astype(np.float32))[:, None].to(device)
    m = torch.from_numpy(roi.astype(bool) if settings.local else np.ones_like(roi, bool))[:, None].to(device)
    schedule = Schedule.linear(settings.timesteps, settings.beta)
    model = _seeded_model(unet, settings.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    steps = settings.epochs * math.ceil(len(x) / settings.batch_size)
    loop = TrainingLoop(
        out,
        key,
        steps,
        settings.checkpoint_every,
        {"model": model, "optimizer": optimizer},
        generator,
        "scar-enhancement DDPM",
        progress,
    )
    model.train()
    for step in loop:
        rows = torch.randint(len(x), (settings.batch_size,), generator=generator)
        t = torch.randint(settings.timesteps, (settings.batch_size,), generator=generator)
        eps = torch.randn(y[rows].shape, generator=generator).to(device)
        with seeded(int(torch.randint(2**62, (1,), generator=generator)), device):
            loss = localized_loss(model, y[rows], x[rows], m[rows], schedule, t.to(device), eps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loop.record(step, loss.item())
    history, seconds = loop.finish()
    metadata = {
        "fingerprint": key,
        "unet": json.dumps(vars(unet)),
        "diffusion": json.dumps(vars(settings)),
        "seconds": str(seconds),
    }
    save_tensors(out / MODEL_FILE, {k: v.detach().cpu() for k, v in model.state_dict().items()}, metadata)
    return TrainedDenoiser(model.eval().cpu(), unet, settings, history, seconds)


def load_denoiser(folder: Path | str) -> TrainedDenoiser:
    """Read a folder written by `train_denoiser` (safetensors: nothing is unpickled)."""
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{folder / MODEL_FILE} does not exist: train the denoiser first (train_denoiser)")
    tensors, metadata = load_tensors(folder / MODEL_FILE)
    unet_dict, diffusion_dict = json.loads(metadata["unet"]), json.loads(metadata["diffusion"])
    unet = UNetSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in unet_dict.items()})
    diffusion = DiffusionSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in diffusion_dict.items()})
    model = ConditionalUNet(unet)
    model.load_state_dict(tensors)
    history = pd.read_csv(folder / "history.csv") if (folder / "history.csv").is_file() else pd.DataFrame()
    return TrainedDenoiser(model.eval(), unet, diffusion, history, float(metadata.get("seconds", "nan")))


@torch.no_grad()
def partial_diffusion(
    model: Callable,
    x_0: Tensor,
    roi: Tensor,
    schedule: Schedule,
    lam: int,
    generator: torch.Generator,
) -> Tensor:
    """One enhanced sample of each slice x_0 (N,1,H,W): x_0 noised to step ``lam`` (index lam - 1) on the ROI, then
    DDPM's reverse steps lam - 1 .. 0, each conditioned on x_0 (partial diffusion; ``lam`` = T is a full run)."""
    if not 1 <= lam <= len(schedule):
        raise ValueError(f"lambda must lie in [1, T = {len(schedule)}], got {lam}")
    m = roi.to(x_0.dtype)
    start = torch.full((len(x_0),), lam - 1, dtype=torch.long, device=x_0.device)
    y = forward_noise(x_0, start, torch.randn(x_0.shape, generator=generator).to(x_0.device), roi, schedule)
    betas, alphas, alphas_bar = (s.to(x_0.device) for s in (schedule.betas, schedule.alphas, schedule.alphas_bar))
    for index in range(lam - 1, -1, -1):
        t = torch.full((len(x_0),), index, dtype=torch.long, device=x_0.device)
        eps = model(y, x_0, t) * m
        beta, alpha, abar = (float(s[index]) for s in (betas, alphas, alphas_bar))
        y = (y - beta / math.sqrt(1 - abar) * eps) / math.sqrt(alpha)
        if index > 0:
            variance = beta * (1 - float(alphas_bar[index - 1])) / (1 - abar)  # the posterior's
            y = y + math.sqrt(variance) * m * torch.randn(x_0.shape, generator=generator).to(x_0.device)
    return torch.where(roi.bool(), y, x_0)  # outside the ROI the steps above return x_0 up to rounding: exactly


def enhance(
    denoiser: TrainedDenoiser,
    images: np.ndarray,
    roi: np.ndarray,
    lam: int,
    k: int,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Enhanced slices (N, H, W): the mean of ``k`` partial-diffusion samples from step ``lam`` (Eq. 6), clipped
    to [0, 1], and the k samples (k, N, H, W). The ROI is the whole slice for a denoiser trained globally."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    device = resolve_device(device)
    model = denoiser.model.to(device).eval()
    if not denoiser.diffusion.local:
        roi = np.ones_like(roi, bool)
    generator = torch.Generator().manual_seed(seed)
    samples = np.zeros((k, *images.shape), np.float32)
    for start in range(0, len(images), batch_size):
        part = slice(start, start + batch_size)
        x = torch.from_numpy(images[part].astype(np.float32))[:, None].to(device)
        m = torch.from_numpy(roi[part].astype(bool))[:, None].to(device)
        for i in range(k):
            y = partial_diffusion(model, x, m, denoiser.schedule, lam, generator)
            samples[i, part] = y[:, 0].clamp(0, 1).cpu().numpy()
    model.cpu()
    return samples.mean(axis=0), samples
