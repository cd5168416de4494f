"""The conditional denoiser eps_theta(y_t, x_0, t) (paper Eq. 5): a U-Net with residual blocks, a sinusoidal
timestep embedding and optional self-attention at the lowest resolution, after SR3 (Saharia et al.). Its input is
the noisy target and the original slice stacked as two channels; its output the predicted noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lgelib.scar_enhancement.settings import UNetSettings


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding (N, dim) of integer timesteps (N,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, dropout: float) -> None:
        super().__init__()
        self.block1 = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.time = nn.Linear(t_dim, c_out)
        self.block2 = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        h = self.block1(x) + self.time(t_emb)[:, :, None, None]
        return self.block2(h) + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.attention = nn.MultiheadAttention(channels, num_heads=1, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class ConditionalUNet(nn.Module):
    """eps_theta: (y_t (N,1,H,W), x_0 (N,1,H,W), t (N,)) -> predicted noise (N,1,H,W)."""

    def __init__(self, settings: UNetSettings) -> None:
        super().__init__()
        c = settings.channels
        self.t_dim = 4 * c
        self.time = nn.Sequential(nn.Linear(c, self.t_dim), nn.SiLU(), nn.Linear(self.t_dim, self.t_dim))
        self.stem = nn.Conv2d(2, c, 3, padding=1)
        widths = [c * m for m in settings.multipliers]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, current = [c], c
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(settings.res_blocks):
                blocks.append(ResBlock(current, width, self.t_dim, settings.dropout))
                current = width
                skips.append(current)
            self.down.append(blocks)
            last = level == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(current, current, 3, stride=2, padding=1))
            if not last:
                skips.append(current)
        self.mid1 = ResBlock(current, current, self.t_dim, settings.dropout)
        self.attention = SelfAttention(current) if settings.attention else nn.Identity()
        self.mid2 = ResBlock(current, current, self.t_dim, settings.dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(settings.res_blocks + 1):
                blocks.append(ResBlock(current + skips.pop(), width, self.t_dim, settings.dropout))
                current = width
            self.up.append(blocks)
            self.upsample.append(
                nn.Identity()
                if level == 0
                else nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(current, current, 3, padding=1)
                )
            )
        self.head = nn.Sequential(_norm(current), nn.SiLU(), nn.Conv2d(current, 1, 3, padding=1))
        self.channels = c

    def forward(self, y_t: Tensor, x_0: Tensor, t: Tensor) -> Tensor:
        t_emb = self.time(timestep_embedding(t, self.channels))
        h = self.stem(torch.cat([y_t, x_0], dim=1))
        skips = [h]
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, t_emb)
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.mid2(self.attention(self.mid1(h, t_emb)), t_emb)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), t_emb)
            h = up(h)
        return self.head(h)
