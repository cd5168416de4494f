"""What the trained stages (inr2vec, EDM) share: input fingerprints, learning-rate schedules, resumable checkpoints.

A stage's folder holds its final model (safetensors) and, while training, ``checkpoint.pt``: model, optimizer,
random-generator state and loss history every few hundred steps, with the fingerprint of everything that
determines the result. A rerun with the same fingerprint returns the finished model or resumes from the
checkpoint, and the resumed run gives the same numbers as an uninterrupted one; a changed input or setting
starts afresh. Checkpoints are read with ``torch.load(weights_only=True)``, so nothing arbitrary is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CHECKPOINT = "checkpoint.pt"


def fingerprint(settings: Any, *tensors: Tensor) -> str:
    """A hash of JSON-able settings and the bytes of some tensors: what a trained model depends on."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def cosine_lr(step: int, steps: int, lr: float, lr_final: float, warmup_steps: int = 0) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay from ``lr`` to ``lr_final`` at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(steps - warmup_steps - 1, 1)
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * min(progress, 1.0)))


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write ``folder/checkpoint.pt`` atomically (tensors, numbers, strings, lists and dicts only)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{CHECKPOINT}.", suffix=".partial", dir=folder)
    os.close(handle)
    try:
        torch.save(state, temporary)
        os.replace(temporary, folder / CHECKPOINT)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(folder: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` if it exists, is readable and was made from the same inputs, else None."""
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torn or foreign: start afresh
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == expected_fingerprint else None


def remove_checkpoint(folder: Path) -> None:
    (folder / CHECKPOINT).unlink(missing_ok=True)
