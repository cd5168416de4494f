"""Fitting N joint SIRENs at once: stacked weights, batched matmuls, one Adam over all of them.

Adam acts element-wise and the loss is the sum of the per-case losses, so every case follows exactly the
trajectory it would follow alone (`tests/test_inr.py` checks this against a plain `JointSiren` loop). The step's
gradient comes from `lgelib.inr.step.SirenStep` (forward and backward by hand, ``engine="fused"``, the default)
or from autograd through `batched_forward` (``engine="autograd"``: the reference, and the bf16 path); both give
the same gradient to float rounding (tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from lgelib.inr.coords import index_to_coordinates
from lgelib.inr.sampling import VoxelSampler
from lgelib.device import resolve_device
from lgelib.inr.siren import ParameterLayout, SirenSettings, batched_forward
from lgelib.inr.step import SirenStep
from lgelib.training import cosine_lr

PRECISIONS = ("fp32", "tf32", "bf16")
ENGINES = ("fused", "autograd")


@dataclass(frozen=True)
class FitSettings:
    """How each INR is fitted; everything here changes the result (and is part of a case's fingerprint).

    Attributes:
        steps: optimisation steps per volume.
        points_per_step: voxels drawn per volume per step.
        lr: Adam learning rate at the start.
        lr_final: learning rate reached at the last step by cosine decay (equal to ``lr`` for a constant rate).
        loss_weights: weights of the intensity L2, myocardium BCE and fibrosis BCE terms (paper Eq. 1: all 1).
        myocardium_fraction: share of each step's voxels drawn from the band around the myocardium.
        fibrosis_fraction: share drawn from the band around the fibrosis.
        band_voxels: in-plane width of those bands around the masks.
        seed: seed of the voxel draws (combined with each case id).
        init_seed: seed of the shared initialisation every INR starts from.
    """

    steps: int = 3000
    points_per_step: int = 16384
    lr: float = 1e-4
    lr_final: float = 1e-5
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    myocardium_fraction: float = 0.25
    fibrosis_fraction: float = 0.125
    band_voxels: int = 2
    seed: int = 0
    init_seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.points_per_step < 1 or not self.lr > 0 or not 0 < self.lr_final <= self.lr:
            raise ValueError(f"invalid fit settings {self}: need steps >= 1, points_per_step >= 1, 0 < lr_final <= lr")
        object.__setattr__(self, "loss_weights", tuple(float(w) for w in self.loss_weights))

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(settings: FitSettings, step: int) -> float:
    """Cosine decay from ``lr`` at step 0 to ``lr_final`` at the last step."""
    return cosine_lr(step, settings.steps, settings.lr, settings.lr_final)


def joint_loss(outputs: Tensor, targets: Tensor, weights: tuple[float, float, float]) -> Tensor:
    """Per-case loss of paper Eq. 1, shape (N,): squared intensity error + BCE(myocardium) + BCE(fibrosis)."""
    image = ((outputs[..., 0] - targets[..., 0]) ** 2).mean(-1)
    masks = F.binary_cross_entropy_with_logits(outputs[..., 1:], targets[..., 1:], reduction="none").mean(-2)
    return weights[0] * image + weights[1] * masks[..., 0] + weights[2] * masks[..., 1]


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``None`` picks fp32 on the CPU and tf32 on CUDA (float32 storage, TF32 tensor-core matmuls)."""
    if precision is None:
        return "tf32" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(f"precision {precision!r} needs a CUDA device; on {device} use fp32")
    return precision


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[torch.dtype | None]:
    """Set TF32 for the duration of a fit; yield the matmul dtype for the batched forward."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield torch.bfloat16 if precision == "bf16" else None
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def stack_targets(images: np.ndarray, myocardium: np.ndarray, fibrosis: np.ndarray) -> Tensor:
    """(N, Z, R, C) arrays -> (N, Z*R*C, 3) float32 targets (intensity, myocardium, fibrosis)."""
    return torch.from_numpy(
        np.stack(
            [images.reshape(len(images), -1), myocardium.reshape(len(images), -1), fibrosis.reshape(len(images), -1)],
            axis=-1,
        ).astype(np.float32)
    )


def fit_batch(
    init: Tensor,
    spec: SirenSettings,
    settings: FitSettings,
    case_ids: list[str],
    images: np.ndarray,
    myocardium: np.ndarray,
    fibrosis: np.ndarray,
    device: torch.device | str | None = None,
    precision: str | None = None,
    progress: bool = True,
    on_step: Callable[[int, Tensor, Tensor], None] | None = None,
    engine: str = "fused",
    chunk: int | None = None,
) -> Tensor:
    """Fit one SIREN per volume, all N together, each starting from the shared flat ``init`` (P,).

    Args:
        images, myocardium, fibrosis: (N, Z, R, C) volumes on the canonical grid (intensity in [0, 1]).
        on_step: called as ``on_step(step, per_case_loss, params)`` after every step, ``params`` the live (N, P)
            parameters (read, do not modify): for logging, measuring fidelity on the way, or stopping by raising.
        engine: ``"fused"`` (hand-written forward and backward, `SirenStep`) or ``"autograd"``; bf16 always uses
            autograd. Both follow the same trajectory to float rounding.
        chunk: voxels per volume the fused engine processes at once (None: `SirenStep.default_chunk`).

    Returns:
        (N, P) float32 flat parameters on the CPU, rows in ``case_ids`` order.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    layout = ParameterLayout(spec)
    n, shape = len(case_ids), tuple(images.shape[1:])
    targets = stack_targets(images, myocardium, fibrosis).to(device)
    sampler = VoxelSampler(
        case_ids,
        myocardium.astype(bool),
        fibrosis.astype(bool),
        settings.points_per_step,
        settings.seed,
        settings.myocardium_fraction,
        settings.fibrosis_fraction,
        settings.band_voxels,
        device=device,
    )
    flat = init.to(device=device, dtype=torch.float32).expand(n, -1).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([flat], lr=settings.lr)
    bar = tqdm(
        range(settings.steps),
        desc=f"fitting {n} INR{'s' if n > 1 else ''}",
        disable=not progress,
        unit="step",
        leave=False,
    )
    with matmul_precision(precision) as matmul_dtype:
        fused = (
            SirenStep(spec, n, settings.points_per_step, settings.loss_weights, chunk, device)
            if engine == "fused" and matmul_dtype is None
            else None
        )
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, step)
            index = sampler.next()
            coords = index_to_coordinates(index, shape)
            target = torch.gather(targets, 1, index.unsqueeze(-1).expand(-1, -1, 3))
            if fused is not None:
                losses = fused(flat, coords, target)
                flat.grad = fused.grad
            else:
                flat.grad = None
                losses = joint_loss(
                    batched_forward(layout.unflatten(flat), coords, spec, matmul_dtype), target, settings.loss_weights
                )
                losses.sum().backward()
                losses = losses.detach()
            optimizer.step()
            if on_step is not None:
                on_step(step, losses, flat.detach())
            if progress and (step % 50 == 0 or step == settings.steps - 1):
                bar.set_postfix(loss=f"{losses.mean().item():.4f}")
    return flat.detach().cpu()
