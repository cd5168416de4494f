"""Do lgelib's nnU-Net models work with nnU-Net's own ``nnUNetv2_predict``, and does it give the same label maps?

Takes one arm's trained model in a run (or one split of an experiment), exports that run's real test scans as
nnU-Net reads them (`lgelib.nnunet_export.export_test_images`), runs the ``nnUNetv2_predict`` command of the
Python it runs under (trainer found through ``nnUNet_extTrainer``, as the README documents), puts each label map
back on its scan's grid, and compares it voxel by voxel with the prediction lgelib's own path wrote
(``seg/predictions/<arm>/``). Prints one row per test case and exits non-zero if the command fails or any case
differs in more than ``--max-differing`` voxels.

    python benchmarks/nnunet_predict_check.py runs/emidec-experiment-long/split-0 --arm N0

nnU-Net's trainer search imports torchvision: run it under a Python whose torchvision matches its torch
(README, "The trained models with nnU-Net's own tools").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

import lgelib
from lgelib.nnunet_export import FILE_ENDING, export_test_images, to_scan_layout
from lgelib.run import load_run
from lgelib.segmentation import model_folder
from lgelib.segmentation_setup import Arm, NnunetFolders

LABELS = {"myocardium": (1, 2), "fibrosis": (2,)}
"""Label values of each structure in nnU-Net's maps (scar inside myocardium)."""


def agreement(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Voxels that differ, and the Dice between the two maps for each structure (1.0 where both are empty)."""
    row: dict[str, float] = {"differing_voxels": int(np.count_nonzero(ours != theirs))}
    for structure, values in LABELS.items():
        a, b = np.isin(ours, values), np.isin(theirs, values)
        total = int(a.sum() + b.sum())
        row[f"{structure}_dice"] = 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (run.json, seg/) or one split of an experiment")
    parser.add_argument("--arm", default="N0", help="the arm whose model to use (default N0)")
    parser.add_argument("--max-differing", type=int, default=0, help="voxels a case may differ by (default 0)")
    args = parser.parse_args()

    run = load_run(args.run_dir)
    arm = Arm.parse(args.arm)
    settings = run.settings.segmentation
    folders = NnunetFolders(run.layout.seg.resolve())
    names = sorted(p.name for p in folders.raw.glob(f"Dataset[0-9][0-9][0-9]_LGE_{arm.training_set}"))
    if len(names) != 1:
        sys.exit(f"{folders.raw}: expected one dataset for arm {arm.name}, found {names or 'none'}")
    model = model_folder(folders, names[0], settings, arm)
    ours_dir = folders.root / "predictions" / arm.name
    if not (model / "plans.json").is_file() or not ours_dir.is_dir():
        sys.exit(f"{model}: arm {arm.name} is not trained and predicted in this run (run lgelib segment first)")
    command = Path(sys.executable).with_name("nnUNetv2_predict")
    if not command.is_file():
        sys.exit(f"{command}: not found (install lgelib[segmentation] into this Python)")

    real = run.dataset
    trainer, configuration = model.name.split("__")[0], model.name.split("__")[-1]
    mirroring = bool(settings.test_time_mirroring)  # lgelib mirrors only on CUDA unless told; this check runs on CPU
    with tempfile.TemporaryDirectory(prefix="nnunet-predict-check-") as tmp:
        inputs = export_test_images(real, Path(tmp) / "inputs")
        out = Path(tmp) / "predicted"
        argv = [str(command), "-i", str(Path(tmp) / "inputs"), "-o", str(out), "-d", names[0][7:10]]
        argv += ["-c", configuration, "-tr", trainer, "-p", "nnUNetPlans", "-f", *map(str, settings.folds)]
        argv += ["-device", "cpu", "-npp", "1", "-nps", "1"] + ([] if mirroring else ["--disable_tta"])
        environment = os.environ | {
            "nnUNet_results": str(folders.results),
            "nnUNet_raw": str(folders.raw),
            "nnUNet_preprocessed": str(folders.preprocessed),
            "nnUNet_extTrainer": os.path.dirname(lgelib.__file__),
        }
        print(" ".join(Path(a).name if a.startswith(tmp) else a for a in argv[1:]), flush=True)
        started = time.perf_counter()
        done = subprocess.run(argv, env=environment, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"nnUNetv2_predict failed ({done.returncode}):\n{done.stderr[-4000:]}")
        rows = []
        by_id = {case.case_id: case for case in real.cases}
        for case_id in inputs:
            original = nib.load(str(by_id[case_id].image))
            theirs = np.asarray(nib.load(str(out / f"{case_id}{FILE_ENDING}")).dataobj).astype(np.uint8)
            theirs = to_scan_layout(theirs, original.affine)
            ours = np.asarray(nib.load(str(ours_dir / f"{case_id}{FILE_ENDING}")).dataobj).astype(np.uint8)
            rows.append({"case_id": case_id, **agreement(ours, theirs)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    worst = int(table["differing_voxels"].max())
    print(
        f"{len(table)} test cases of {args.run_dir.name}, arm {arm.name}: nnUNetv2_predict took {seconds:.0f} s; "
        f"largest difference from lgelib's own prediction {worst} voxels"
    )
    if worst > args.max_differing:
        sys.exit(1)


if __name__ == "__main__":
    main()
