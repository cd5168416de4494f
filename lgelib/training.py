"""What the trained stages (inr2vec, EDM) share: input fingerprints, seeding, learning-rate schedules, and a
resumable training loop.

A stage's folder holds its final model (safetensors) and, while training, ``checkpoint.pt``: model, optimizer,
random-generator state and loss history every few hundred steps, with the fingerprint of everything that
determines the result. A rerun with the same fingerprint returns the finished model or resumes from the
checkpoint, and the resumed run gives the same numbers as an uninterrupted one; a changed input or setting
starts afresh. Checkpoints are read with ``torch.load(weights_only=True)``, so nothing arbitrary is unpickled.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lgelib.fsutil import atomic_file
from lgelib.log import logger

CHECKPOINT = "checkpoint.pt"


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Draw from torch's global generator (module initialisation, dropout) as seeded by ``seed``, leaving the
    caller's global random state as it was."""
    with torch.random.fork_rng(devices=[device] if device is not None and device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        yield


def cosine_lr(step: int, steps: int, lr: float, lr_final: float, warmup_steps: int = 0) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay from ``lr`` to ``lr_final`` at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(steps - warmup_steps - 1, 1)
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * min(progress, 1.0)))


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write ``folder/checkpoint.pt`` atomically (tensors, numbers, strings, lists and dicts only)."""
    with atomic_file(folder / CHECKPOINT) as temporary:
        torch.save(state, temporary)


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


class TrainingLoop:
    """Steps 0 .. steps-1 of a training in ``folder``, resumed from its checkpoint when one with the same fingerprint
    is there, and checkpointed every ``checkpoint_every`` steps.

    ``stateful`` names what a checkpoint holds (models, optimisers: anything with ``state_dict``); ``generator``
    is the training's random stream, saved with it, so a resumed run draws what an uninterrupted one would::

        loop = TrainingLoop(out, key, steps, every, {"model": model, "optimizer": optimizer}, generator, "inr2vec")
        for step in loop:
            ...
            loop.record(step, loss.item())
        history, seconds = loop.finish()
    """

    def __init__(
        self,
        folder: Path,
        key: str,
        steps: int,
        checkpoint_every: int,
        stateful: dict[str, Any],
        generator: torch.Generator,
        name: str,
        progress: bool = True,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        self.folder, self.key, self.steps, self.every = Path(folder), key, steps, checkpoint_every
        self.stateful, self.generator, self.name, self.progress, self.on_step = (
            stateful,
            generator,
            name,
            progress,
            on_step,
        )
        self.history: list[float] = []
        self.start, self.seconds = 0, 0.0
        state = load_checkpoint(self.folder, key)
        if state is not None:
            for label, item in stateful.items():
                item.load_state_dict(state[label])
            generator.set_state(state["generator"])
            self.history, self.start, self.seconds = list(state["history"]), int(state["step"]), float(state["seconds"])
            if progress:
                logger.info("resuming %s training at step %d of %d from %s", name, self.start, steps, self.folder)
        self._bar = tqdm(
            range(self.start, steps),
            desc=name,
            unit="step",
            disable=not progress,
            leave=False,
            initial=self.start,
            total=steps,
        )
        self._started = time.perf_counter()

    def __iter__(self) -> Iterator[int]:
        return iter(self._bar)

    def record(self, step: int, loss: float) -> None:
        """Log one step's loss; checkpoint when due; call ``on_step``."""
        self.history.append(loss)
        if self.progress and (step % 100 == 0 or step == self.steps - 1):
            self._bar.set_postfix(loss=f"{np.mean(self.history[-100:]):.4f}")
        if (step + 1) % self.every == 0 and step + 1 < self.steps:
            save_checkpoint(
                self.folder,
                {
                    "fingerprint": self.key,
                    "step": step + 1,
                    "history": self.history,
                    "generator": self.generator.get_state(),
                    "seconds": self.seconds + time.perf_counter() - self._started,
                    **{label: item.state_dict() for label, item in self.stateful.items()},
                },
            )
        if self.on_step is not None:
            self.on_step(step, loss)

    def finish(self) -> tuple[pd.DataFrame, float]:
        """The loss per step, written to ``history.csv``, and the training seconds; the checkpoint is removed."""
        self._bar.close()
        seconds = self.seconds + time.perf_counter() - self._started
        history = pd.DataFrame({"step": np.arange(len(self.history)), "loss": self.history})
        history.to_csv(self.folder / "history.csv", index=False)
        remove_checkpoint(self.folder)
        return history, seconds
