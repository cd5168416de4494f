"""The one rule for where the training stages run."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a `torch.device`; None picks CUDA when it is available, else the CPU (every stage's default)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where autocast to it pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def cpu_bf16_autocast(requested: bool | None, device: str | torch.device) -> bool:
    """Whether a stage autocasts to bfloat16 on ``device``: only on a CPU, as ``requested`` says (None: where the CPU
    computes bfloat16 natively, `cpu_has_bf16`)."""
    if torch.device(device).type != "cpu":
        return False
    return cpu_has_bf16() if requested is None else bool(requested)
