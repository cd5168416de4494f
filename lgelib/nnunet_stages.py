"""The nnU-Net stages as they run inside their own worker process: plan and preprocess, train, predict.

:mod:`lgelib.segmentation` starts each stage as ``python -m lgelib.nnunet_stages STAGE ARGS.json`` with the
``nnUNet_*`` folders of the run directory in the environment. A fresh process per stage is what nnU-Net expects:
its folders are read at import, its fingerprinting, preprocessing and prediction start ``spawn`` workers (which
need a ``__main__`` guard), and a crash in one stage leaves the caller's process clean.

Everything goes through nnunetv2's Python API, never its command line: the command-line trainer lookup imports
every trainer variant, and some of those import torchvision, whose registry build fails on CPU-only machines
(``../shared/docs/toolchain-facts.md``). The trainer is :class:`LgeTrainer`, handed to nnU-Net directly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

PLANS = "nnUNetPlans"
TRAINER_FOLDER = "LgeTrainer__nnUNetPlans__{configuration}"


def _say(message: str) -> None:
    """A progress line the parent process shows (the rest of the output goes to the stage's log file)."""
    print(f"[lgelib] {message}", flush=True)


def _safe_load(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load an nnU-Net checkpoint with ``weights_only=True``: tensors, containers and plain numbers only."""
    numpy_core = getattr(np, "_core", None) or np.core  # numpy 2 renamed it
    torch.serialization.add_safe_globals([np.dtype, np.float64, np.float32, np.int64, numpy_core.multiarray.scalar,
                                          *(getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType")
                                            if hasattr(np, "dtypes"))])
    return torch.load(str(path), map_location=device, weights_only=True)


def _trainer_class():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class LgeTrainer(nnUNetTrainer):
        """nnU-Net's default trainer with a settable budget, seeded, resumable from a safely loaded checkpoint,
        and one progress line per epoch."""

        def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
            checkpoint = (filename_or_checkpoint if isinstance(filename_or_checkpoint, dict)
                          else _safe_load(filename_or_checkpoint, self.device))
            if not self.was_initialized:
                self.initialize()
            self.my_init_kwargs = checkpoint["init_args"]
            self.current_epoch = checkpoint["current_epoch"]
            self.logger.load_checkpoint(checkpoint["logging"])
            self._best_ema = checkpoint["_best_ema"]
            self.inference_allowed_mirroring_axes = checkpoint.get("inference_allowed_mirroring_axes",
                                                                   self.inference_allowed_mirroring_axes)
            self.network.load_state_dict(checkpoint["network_weights"])
            self.optimizer.load_state_dict(checkpoint["optimizer_state"])
            if self.grad_scaler is not None and checkpoint.get("grad_scaler_state") is not None:
                self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])

        def on_epoch_end(self) -> None:
            super().on_epoch_end()
            losses = self.logger.get_checkpoint()["train_losses"]
            _say(f"{self.plans_manager.dataset_name} fold {self.fold}: epoch {self.current_epoch}/{self.num_epochs}, "
                 f"train loss {float(losses[-1]):.3f}")

    LgeTrainer.__module__ = __name__
    LgeTrainer.__qualname__ = "LgeTrainer"
    return LgeTrainer


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _use_cores(device: torch.device) -> None:
    if device.type == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    else:
        torch.set_num_threads(1)


def plan_and_preprocess(dataset_id: int, configuration: str, target_spacing: list[float] | None,
                        batch_size: int | None, patch_size: list[int] | None, max_features: int | None,
                        processes: int) -> None:
    """Check the raw dataset (nnU-Net's integrity check), extract its fingerprint, plan, apply the budget's
    overrides (target spacing, batch size, patch size, channel cap) and preprocess the one configuration to be trained."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprint_dataset,
                                                                      plan_experiment_dataset, preprocess_dataset)
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    started = time.perf_counter()
    extract_fingerprint_dataset(dataset_id, num_processes=processes, check_dataset_integrity=True, clean=True,
                                verbose=False, show_progress_bar=False)
    plan_experiment_dataset(dataset_id, overwrite_target_spacing=target_spacing)
    plans_file = Path(nnUNet_preprocessed) / convert_id_to_dataset_name(dataset_id) / f"{PLANS}.json"
    plans = json.loads(plans_file.read_text())
    if configuration not in plans["configurations"]:
        raise SystemExit(f"nnU-Net planned no {configuration!r} configuration for dataset {dataset_id} "
                         f"(planned: {', '.join(plans['configurations'])})")
    if batch_size is not None:
        plans["configurations"][configuration]["batch_size"] = int(batch_size)
    if patch_size is not None:
        plans["configurations"][configuration]["patch_size"] = [int(p) for p in patch_size]
    if max_features is not None:
        architecture = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
        architecture["features_per_stage"] = [min(int(f), max_features) for f in architecture["features_per_stage"]]
    plans_file.write_text(json.dumps(plans, indent=2))
    preprocess_dataset(dataset_id, PLANS, configurations=(configuration,), num_processes=(processes,),
                       show_progress_bar=False)
    chosen = plans["configurations"][configuration]
    _say(f"dataset {dataset_id}: planned and preprocessed in {time.perf_counter() - started:.0f} s; {configuration} "
         f"patch {chosen['patch_size']}, spacing {[round(s, 2) for s in chosen['spacing']]}, "
         f"batch {chosen['batch_size']}")


def train(dataset_id: int, configuration: str, fold: int | str, device: str, epochs: int, iterations_per_epoch: int,
          val_iterations_per_epoch: int, save_every: int, seed: int, foreground_oversampling: float | None) -> None:
    """Train one fold, resuming from ``checkpoint_latest.pth`` when an earlier run was interrupted."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    torch_device = torch.device(device)
    _use_cores(torch_device)
    _seed_everything(seed)
    folder = Path(nnUNet_preprocessed) / convert_id_to_dataset_name(dataset_id)
    plans = json.loads((folder / f"{PLANS}.json").read_text())
    dataset_json = json.loads((folder / "dataset.json").read_text())
    latest = (Path(os.environ["nnUNet_results"]) / folder.name / TRAINER_FOLDER.format(configuration=configuration)
              / f"fold_{fold}" / "checkpoint_latest.pth")
    resume = latest.is_file()
    plans["continue_training"] = resume
    trainer = _trainer_class()(plans=plans, configuration=configuration, fold=fold, dataset_json=dataset_json,
                               device=torch_device)
    trainer.num_epochs = epochs
    trainer.num_iterations_per_epoch = iterations_per_epoch
    trainer.num_val_iterations_per_epoch = val_iterations_per_epoch
    trainer.save_every = save_every
    if foreground_oversampling is not None:
        trainer.oversample_foreground_percent = foreground_oversampling
    if resume:
        trainer.load_checkpoint(str(latest))
        _say(f"{folder.name} fold {fold}: resuming after epoch {trainer.current_epoch} of {epochs}")
    started = time.perf_counter()
    trainer.run_training()
    _say(f"{folder.name} fold {fold}: trained in {time.perf_counter() - started:.0f} s")


def predict(model_folder: str, folds: list[int | str], inputs: list[str], outputs: list[str], device: str,
            mirroring: bool) -> None:
    """Predict label maps for ``inputs`` (one image file each) into ``outputs`` with the folds' ensemble."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch_device = torch.device(device)
    _use_cores(torch_device)
    folder = Path(model_folder)
    plans_manager = PlansManager(json.loads((folder / "plans.json").read_text()))
    dataset_json = json.loads((folder / "dataset.json").read_text())
    checkpoints = [_safe_load(folder / f"fold_{f}" / "checkpoint_final.pth") for f in folds]
    configuration = plans_manager.get_configuration(checkpoints[0]["init_args"]["configuration"])
    trainer_class = _trainer_class()
    network = trainer_class.build_network_architecture(
        plans_manager, configuration, determine_num_input_channels(plans_manager, configuration, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)
    network.load_state_dict(checkpoints[0]["network_weights"])
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                                perform_everything_on_device=torch_device.type == "cuda", device=torch_device,
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration,
                                    [c["network_weights"] for c in checkpoints], dataset_json, "LgeTrainer",
                                    checkpoints[0].get("inference_allowed_mirroring_axes"))
    Path(outputs[0]).parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    truncated = [o[: -len(dataset_json["file_ending"])] for o in outputs]
    predictor.predict_from_files_sequential([[i] for i in inputs], truncated, save_probabilities=False,
                                            overwrite=True)
    _say(f"{folder.parent.name}: {len(inputs)} test volumes predicted in {time.perf_counter() - started:.0f} s")


STAGES = {"plan": plan_and_preprocess, "train": train, "predict": predict}

if __name__ == "__main__":
    stage, arguments_file = sys.argv[1], sys.argv[2]
    STAGES[stage](**json.loads(Path(arguments_file).read_text()))
