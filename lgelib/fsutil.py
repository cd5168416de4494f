"""Writing outputs so that a failed or interrupted run leaves nothing half-written behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from torch import Tensor


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(final: Path) -> list[Path]:
    """Remove the hidden ``.<name>.partial-<pid>-*`` and ``.<name>.old-<pid>`` folders that a killed run (kill -9,
    power loss) left beside ``final``: those whose writing process no longer exists. Returns what was removed."""
    final = Path(final)
    removed = []
    for pattern in (f".{final.name}.partial-*", f".{final.name}.old-*"):
        for leftover in final.parent.glob(pattern):
            pid = leftover.name.rsplit(".", 1)[-1].split("-")[1] if "-" in leftover.name else ""
            if leftover.is_dir() and (not pid.isdigit() or not _alive(int(pid))):
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_directory(final: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it becomes ``final``, on any exception it is removed.

    With ``replace`` an existing ``final`` is swapped out only after the new content is complete.
    """
    final = Path(final)
    if final.exists() and not replace:
        raise FileExistsError(f"{final} already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{os.getpid()}-", dir=final.parent))
    try:
        yield temporary
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            temporary.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            temporary.rename(final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it replaces ``path`` in one rename, on any exception it
    is removed: the file at ``path`` is always either the old one or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (`atomic_file`)."""
    with atomic_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (`atomic_file`)."""
    from safetensors.torch import save_file

    with atomic_file(path) as temporary:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(temporary), metadata=metadata or {})


def load_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file (nothing is unpickled)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})
