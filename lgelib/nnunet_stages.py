"""The nnU-Net stages as they run inside their own worker process: plan and preprocess, train, predict.

:mod:`lgelib.segmentation` starts each stage as ``python -m lgelib.nnunet_stages STAGE ARGS.json`` with the
``nnUNet_*`` folders of the run directory in the environment. A fresh process per stage is what nnU-Net expects:
its folders are read at import, its fingerprinting, preprocessing and prediction start ``spawn`` workers (which
need a ``__main__`` guard), and a crash in one stage leaves the caller's process clean.

Everything goes through nnunetv2's Python API, never its command line: the command-line trainer lookup imports
every trainer variant, and some of those import torchvision, whose registry build fails on CPU-only machines. The
trainers are lgelib's own (:mod:`lgelib.nnunet_trainers`), handed to nnU-Net directly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lgelib.device import cpu_bf16_autocast

PLANS = "nnUNetPlans"
TRAINER_FOLDER = "{trainer}__nnUNetPlans__{configuration}"
SAMPLING_TRAINERS = {"uniform": "LgeTrainer", "balanced": "LgeBalancedTrainer"}
"""The trainer class (lgelib.nnunet_trainers) of each sampling policy."""


def safe_load(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load an nnU-Net checkpoint with ``weights_only=True``: tensors, containers and plain numbers only."""
    numpy_core = getattr(np, "_core", None) or np.core  # numpy 2 renamed it
    dtypes = [getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType") if hasattr(np, "dtypes")]
    torch.serialization.add_safe_globals(
        [np.dtype, np.float64, np.float32, np.int64, numpy_core.multiarray.scalar, *dtypes]
    )
    return torch.load(str(path), map_location=device, weights_only=True)


def say(message: str) -> None:
    """A progress line the parent process shows (the rest of the output goes to the stage's log file)."""
    print(f"[lgelib] {message}", flush=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _use_cores(device: torch.device) -> None:
    if device.type == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    else:
        torch.set_num_threads(1)


def plan_and_preprocess(
    dataset_id: int,
    configuration: str,
    target_spacing: list[float] | None,
    batch_size: int | None,
    patch_size: list[int] | None,
    max_features: int | None,
    processes: int,
    plans_from: int | None = None,
    splits: list[dict] | None = None,
) -> None:
    """Check the raw dataset (nnU-Net's integrity check) and preprocess the one configuration to be trained.

    With ``plans_from`` None the dataset is planned from its own fingerprint and the budget's overrides (target
    spacing, batch size, patch size, channel cap) are applied; otherwise the plans of dataset ``plans_from`` are
    copied over unchanged (nnU-Net's ``move_plans_between_datasets``), so both train the same network on data
    preprocessed the same way. ``splits`` (nnU-Net's ``splits_final.json`` layout) replaces nnU-Net's own
    cross-validation folds.
    """
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )
    from nnunetv2.experiment_planning.plans_for_pretraining.move_plans_between_datasets import (
        move_plans_between_datasets,
    )
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    started = time.perf_counter()
    name = convert_id_to_dataset_name(dataset_id)
    folder = Path(nnUNet_preprocessed) / name
    plans_file = folder / f"{PLANS}.json"
    # Every dataset's own fingerprint is recorded (nnU-Net's trainer copies it next to the model); only N0's plans.
    extract_fingerprint_dataset(
        dataset_id,
        num_processes=processes,
        check_dataset_integrity=True,
        clean=True,
        verbose=False,
        show_progress_bar=False,
    )
    if plans_from is None:
        plan_experiment_dataset(dataset_id, overwrite_target_spacing=target_spacing)
        plans = json.loads(plans_file.read_text())
        if configuration not in plans["configurations"]:
            raise SystemExit(
                f"nnU-Net planned no {configuration!r} configuration for dataset {dataset_id} "
                f"(planned: {', '.join(plans['configurations'])})"
            )
        if batch_size is not None:
            plans["configurations"][configuration]["batch_size"] = int(batch_size)
        if patch_size is not None:
            plans["configurations"][configuration]["patch_size"] = [int(p) for p in patch_size]
        if max_features is not None:
            architecture = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
            architecture["features_per_stage"] = [min(int(f), max_features) for f in architecture["features_per_stage"]]
        plans_file.write_text(json.dumps(plans, indent=2))
        source = "planned"
    else:
        shutil.copy(Path(nnUNet_raw) / name / "dataset.json", folder / "dataset.json")
        move_plans_between_datasets(plans_from, dataset_id, PLANS, PLANS)
        plans = json.loads(plans_file.read_text())
        source = f"plans of {convert_id_to_dataset_name(plans_from)}"
    preprocess_dataset(
        dataset_id, PLANS, configurations=(configuration,), num_processes=(processes,), show_progress_bar=False
    )
    if splits is not None:
        (folder / "splits_final.json").write_text(json.dumps(splits, indent=1))
    chosen = plans["configurations"][configuration]
    say(
        f"dataset {dataset_id}: preprocessed in {time.perf_counter() - started:.0f} s with {source}; "
        f"{configuration} patch {chosen['patch_size']}, spacing {[round(s, 2) for s in chosen['spacing']]}, "
        f"batch {chosen['batch_size']}, normalisation {chosen['normalization_schemes']}"
    )


def train(
    dataset_id: int,
    configuration: str,
    fold: int | str,
    device: str,
    epochs: int,
    iterations_per_epoch: int,
    val_iterations_per_epoch: int,
    save_every: int,
    seed: int,
    foreground_oversampling: float | None,
    sampling: str = "uniform",
    real_cases: list[str] | None = None,
    real_share: float = 0.5,
    cpu_bf16: bool | None = None,
) -> None:
    """Train one fold, resuming from ``checkpoint_latest.pth`` when an earlier run was interrupted. ``sampling``
    "balanced" draws ``real_share`` of every batch from ``real_cases`` (:class:`LgeBalancedTrainer`); ``cpu_bf16``
    autocasts to bfloat16 on a CPU (None: where the CPU computes it natively)."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    from lgelib import nnunet_trainers

    torch_device = torch.device(device)
    _use_cores(torch_device)
    _seed_everything(seed)
    folder = Path(nnUNet_preprocessed) / convert_id_to_dataset_name(dataset_id)
    plans = json.loads((folder / f"{PLANS}.json").read_text())
    dataset_json = json.loads((folder / "dataset.json").read_text())
    trainer_name = SAMPLING_TRAINERS[sampling]
    latest = (
        Path(os.environ["nnUNet_results"])
        / folder.name
        / TRAINER_FOLDER.format(trainer=trainer_name, configuration=configuration)
        / f"fold_{fold}"
        / "checkpoint_latest.pth"
    )
    resume = latest.is_file()
    plans["continue_training"] = resume
    trainer = getattr(nnunet_trainers, trainer_name)(
        plans=plans, configuration=configuration, fold=fold, dataset_json=dataset_json, device=torch_device
    )
    trainer.num_epochs = epochs
    trainer.num_iterations_per_epoch = iterations_per_epoch
    trainer.num_val_iterations_per_epoch = val_iterations_per_epoch
    trainer.save_every = save_every
    trainer.cpu_bf16 = cpu_bf16_autocast(cpu_bf16, torch_device)
    if sampling == "balanced":
        trainer.real_keys, trainer.real_share = tuple(real_cases or ()), float(real_share)
    if foreground_oversampling is not None:
        trainer.oversample_foreground_percent = foreground_oversampling
    if resume:
        trainer.load_checkpoint(str(latest))
        say(f"{folder.name} fold {fold}: resuming after epoch {trainer.current_epoch} of {epochs}")
    started = time.perf_counter()
    trainer.run_training()
    say(
        f"{folder.name} {trainer_name} fold {fold}: trained in {time.perf_counter() - started:.0f} s"
        + (" (bfloat16 autocast)" if trainer._autocast() else "")
    )


def check_checkpoint(path: str) -> None:
    """Exit non-zero unless ``path`` loads as an nnU-Net checkpoint with network weights."""

    checkpoint = safe_load(path)
    if "network_weights" not in checkpoint:
        raise SystemExit(f"{path}: not an nnU-Net checkpoint (no network_weights)")


def predict(
    model_folder: str, folds: list[int | str], inputs: list[str], outputs: list[str], device: str, mirroring: bool
) -> None:
    """Predict label maps for ``inputs`` (one image file each) into ``outputs`` with the folds' ensemble."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from lgelib.nnunet_trainers import LgeTrainer

    torch_device = torch.device(device)
    _use_cores(torch_device)
    folder = Path(model_folder)
    plans_manager = PlansManager(json.loads((folder / "plans.json").read_text()))
    dataset_json = json.loads((folder / "dataset.json").read_text())
    checkpoints = [safe_load(folder / f"fold_{f}" / "checkpoint_final.pth") for f in folds]
    configuration = plans_manager.get_configuration(checkpoints[0]["init_args"]["configuration"])
    network = LgeTrainer.build_network_architecture(
        plans_manager,
        configuration,
        determine_num_input_channels(plans_manager, configuration, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
        enable_deep_supervision=False,
    )
    network.load_state_dict(checkpoints[0]["network_weights"])
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=mirroring,
        perform_everything_on_device=torch_device.type == "cuda",
        device=torch_device,
        verbose=False,
        verbose_preprocessing=False,
        allow_tqdm=False,
    )
    predictor.manual_initialization(
        network,
        plans_manager,
        configuration,
        [c["network_weights"] for c in checkpoints],
        dataset_json,
        "LgeTrainer",
        checkpoints[0].get("inference_allowed_mirroring_axes"),
    )
    Path(outputs[0]).parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    truncated = [o[: -len(dataset_json["file_ending"])] for o in outputs]
    predictor.predict_from_files_sequential([[i] for i in inputs], truncated, save_probabilities=False, overwrite=True)
    say(
        f"{folder.parent.name}/{folder.name}: {len(inputs)} test volumes predicted in "
        f"{time.perf_counter() - started:.0f} s"
    )


STAGES = {"plan": plan_and_preprocess, "train": train, "predict": predict, "check": check_checkpoint}

if __name__ == "__main__":
    stage, arguments_file = sys.argv[1], sys.argv[2]
    STAGES[stage](**json.loads(Path(arguments_file).read_text()))
