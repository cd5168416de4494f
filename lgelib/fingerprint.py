"""One way to name the exact inputs of a result: a SHA-256 over JSON-able settings and the bytes of arrays, tensors
and files. Every "reuse what is finished" check in the library compares one of these."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


def fingerprint(settings: Any, *parts: Tensor | np.ndarray | Path | str | bytes, length: int | None = None) -> str:
    """Hex SHA-256 of ``settings`` (as sorted JSON; other values by ``str``) and each part in order: a tensor or an
    array by shape, dtype and bytes, a `Path` by file name and content, a string or bytes as they are. ``length``
    keeps the first hex digits."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for part in parts:
        if isinstance(part, Tensor):
            tensor = part.detach().cpu().contiguous()
            digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        elif isinstance(part, np.ndarray):
            digest.update(f"{part.shape}{part.dtype}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, Path):
            digest.update(part.name.encode())
            digest.update(hashlib.sha256(part.read_bytes()).digest())
        elif isinstance(part, str):
            digest.update(part.encode())
        elif isinstance(part, bytes):
            digest.update(part)
        else:
            raise TypeError(f"cannot fingerprint a {type(part).__name__}")
    return digest.hexdigest()[:length]


def record_matches(path: Path, **expected: Any) -> bool:
    """Whether the JSON record at ``path`` exists, reads, and holds every ``expected`` field with that value
    (compared as JSON): the one "is this stage finished?" check of every stage that writes a JSON record beside
    its output (a prepared dataset, a synthetic set, nnU-Net's exports, plans and predictions)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = json.loads(json.dumps(expected, default=str))
    return isinstance(record, dict) and all(record.get(name) == value for name, value in expected.items())


def tensors_match(path: Path, key: str) -> bool:
    """Whether the safetensors file at ``path`` exists, reads, and was written for inputs with fingerprint
    ``key`` (its ``fingerprint`` metadata): the same check for the stages that keep their key inside the model file
    (inr2vec, EDM). Only the header is read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("fingerprint") == key
    except Exception:  # noqa: BLE001 - missing, torn or foreign: not finished
        return False


def machine_key() -> bytes:
    """A random key kept outside every run directory (``$LGELIB_CACHE/machine.key``, created on first use, readable
    by its owner only): records signed with it (`signed_fingerprint`) vouch that this machine wrote the files they
    name, so files copied in from elsewhere are not trusted."""
    import os
    import secrets

    from lgelib.data.cohort import default_cache_dir

    path = default_cache_dir() / "machine.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb") as key_file:
            key_file.write(secrets.token_bytes(32))
    return path.read_bytes()


def signed_fingerprint(settings: Any, *parts: Tensor | np.ndarray | Path | str | bytes) -> str:
    """`fingerprint` signed with this machine's key (HMAC-SHA-256): equal only for the same inputs on the same
    machine (or cache folder)."""
    import hmac

    return hmac.new(machine_key(), fingerprint(settings, *parts).encode(), hashlib.sha256).hexdigest()


def file_digest(path: Path, length: int = 16) -> str:
    """The first ``length`` hex digits of a file's SHA-256: names a file's exact content in records and pages."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:length]
