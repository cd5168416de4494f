"""lgelib's nnU-Net trainers, defined at module level so that nnU-Net can find them by name.

- :class:`LgeTrainer`: nnU-Net's default trainer with a settable budget, resumable from a checkpoint loaded with
  ``weights_only=True``, and one progress line per epoch. Cases are drawn uniformly, as nnU-Net does (the
  paper's setting): with N added cases beside R real ones, a share R / (R + N) of the patches is real.
- :class:`LgeBalancedTrainer`: the same, but every batch holds a fixed share of real cases (``real_share``,
  default 1:1) and the rest from the added cases, each side drawn uniformly; the batch order is shuffled so that
  nnU-Net's foreground oversampling (the last third of a batch) falls on both kinds alike.

This module imports nnunetv2; the rest of lgelib imports it only in nnU-Net's stage processes. To predict with a
trained model from nnU-Net's own command line, make this folder known to nnU-Net:
``nnUNet_extTrainer=$(python -c "import lgelib, os; print(os.path.dirname(lgelib.__file__))")``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from lgelib.nnunet_stages import safe_load, say


def plots_progress_after(epoch: int, num_epochs: int, save_every: int) -> bool:
    """Whether nnU-Net's progress.png is redrawn after ``epoch`` (0-based): at every checkpoint and the last epoch."""
    return epoch == num_epochs - 1 or (epoch + 1) % save_every == 0


@contextlib.contextmanager
def progress_plot_skipped(logger: Any, skip: bool) -> Iterator[None]:
    """Within the block, ``logger.plot_progress_png`` draws nothing when ``skip`` (an instance attribute shadows the
    method); afterwards, even after an error, the logger's own method is back."""
    if skip:
        logger.plot_progress_png = lambda output_folder: None
    try:
        yield
    finally:
        if skip:
            vars(logger).pop("plot_progress_png", None)


class LgeTrainer(nnUNetTrainer):
    """nnU-Net's default trainer with a settable budget, seeded, resumable from a safely loaded checkpoint, and one
    progress line per epoch.

    ``cpu_bf16``: on a CPU, run the forward pass and the loss under bfloat16 autocast (nnU-Net itself autocasts
    only on CUDA, to float16). On a CPU with native bfloat16 this made a U-Net block 2.5x faster
    (benchmarks/README.md); the backward pass and the optimiser stay in float32.
    """

    cpu_bf16: bool = False

    def _autocast(self) -> bool:
        return self.cpu_bf16 and self.device.type == "cpu"

    def train_step(self, batch: dict) -> dict:
        if not self._autocast():
            return super().train_step(batch)
        data = batch["data"].to(self.device)
        target = batch["target"]
        target = [t.to(self.device) for t in target] if isinstance(target, list) else target.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = self.network(data)
            loss = self.loss(output, target)
        loss.float().backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
        self.optimizer.step()
        return {"loss": loss.detach().float().cpu().numpy()}

    def validation_step(self, batch: dict) -> dict:
        if not self._autocast():
            return super().validation_step(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return super().validation_step(batch)

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        checkpoint = (
            filename_or_checkpoint
            if isinstance(filename_or_checkpoint, dict)
            else safe_load(filename_or_checkpoint, self.device)
        )
        if not self.was_initialized:
            self.initialize()
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        self.inference_allowed_mirroring_axes = checkpoint.get(
            "inference_allowed_mirroring_axes", self.inference_allowed_mirroring_axes
        )
        self.network.load_state_dict(checkpoint["network_weights"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.grad_scaler is not None and checkpoint.get("grad_scaler_state") is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])

    def on_epoch_end(self) -> None:
        # nnU-Net redraws progress.png (a 3000 x 5400 pixel figure, about 0.4 s on 2 cores) after every epoch; draw it
        # only where a checkpoint is written and after the last epoch (the same curves, a few percent of a CPU run).
        with progress_plot_skipped(
            self.logger, not plots_progress_after(self.current_epoch, self.num_epochs, self.save_every)
        ):
            super().on_epoch_end()
        losses = self.logger.get_checkpoint()["train_losses"]
        say(
            f"{self.plans_manager.dataset_name} fold {self.fold}: epoch {self.current_epoch}/{self.num_epochs}, "
            f"train loss {float(losses[-1]):.3f}"
        )


class BalancedDataLoader(nnUNetDataLoader):
    """nnU-Net's data loader drawing ``round(real_share * batch)`` cases from ``real_keys`` and the rest from the
    other cases of the dataset, uniformly within each kind, in shuffled order. Falls back to nnU-Net's uniform
    draw when the dataset holds only one kind (e.g. N = 0)."""

    def __init__(self, *args: Any, real_keys: tuple[str, ...] = (), real_share: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        real = set(real_keys)
        self.real_indices = [k for k in self.indices if k in real]
        self.added_indices = [k for k in self.indices if k not in real]
        self.real_share = float(real_share)

    def get_indices(self) -> list:
        if not self.real_indices or not self.added_indices:
            return super().get_indices()
        n_real = int(round(self.batch_size * self.real_share))
        chosen = np.concatenate(
            [
                np.random.choice(self.real_indices, n_real, replace=True),
                np.random.choice(self.added_indices, self.batch_size - n_real, replace=True),
            ]
        )
        return list(np.random.permutation(chosen))


class LgeBalancedTrainer(LgeTrainer):
    """:class:`LgeTrainer` whose batches hold a fixed share of real cases (``real_keys``, ``real_share``)."""

    real_keys: tuple[str, ...] = ()
    real_share: float = 0.5

    def get_dataloaders(self):
        # nnU-Net builds its loaders inside this method from the module-level name nnUNetDataLoader: swap it for
        # the balanced loader for the duration of the call (this runs in nnU-Net's own stage process).
        module = sys.modules[nnUNetTrainer.__module__]
        original = module.nnUNetDataLoader
        real_keys, real_share = tuple(self.real_keys), self.real_share

        def balanced(*args: Any, **kwargs: Any) -> BalancedDataLoader:
            return BalancedDataLoader(*args, real_keys=real_keys, real_share=real_share, **kwargs)

        module.nnUNetDataLoader = balanced
        try:
            return super().get_dataloaders()
        finally:
            module.nnUNetDataLoader = original
