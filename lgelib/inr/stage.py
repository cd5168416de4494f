"""The INR stage: fit every case of a prepared dataset, resumably, and write the stage's outputs.

Layout of the stage folder (``<run_dir>/inr`` in the notebooks):

- ``init.safetensors``: the shared initialisation (P,) every INR starts from.
- ``cases/<case_id>.safetensors``: one finished case: its flat parameters (P,), with its fingerprint and
  fidelity in the metadata. Written atomically, so a file that exists is complete.
- ``inrs.safetensors``: all cases, ``params`` (N, P) and ``init`` (P,), with case ids, architecture and fit
  settings in the metadata. ``load_fitted`` reads it back with no unpickling.
- ``fidelity.csv``: per case image PSNR, myocardium Dice and fibrosis Dice on the full canonical grid.
- ``settings.json``: the architecture, fit settings and parameter layout, for people.

A case is finished when its file exists and its fingerprint (architecture, fit settings, initialisation and
the case's own arrays) matches; anything else is fitted again. An interrupted run therefore resumes with the
unfinished cases, and each case's result does not depend on which cases share its batch.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lgelib.data.prepare import PreparedDataset
from lgelib.fingerprint import fingerprint
from lgelib.fsutil import load_tensors, save_tensors
from lgelib.device import resolve_device
from lgelib.inr.fit import FitSettings, fit_batch
from lgelib.inr.query import Decoded, decode
from lgelib.inr.siren import ParameterLayout, SirenSettings, siren_init
from lgelib.metrics import dice, psnr
from lgelib.log import logger

FIDELITY_COLUMNS = ("case_id", "psnr_db", "myocardium_dice", "fibrosis_dice", "fibrosis_voxels", "seconds")
"""Per case: image PSNR (dB, data range 1), Dice of each 0.5-thresholded mask head on the full canonical grid
(fibrosis Dice NaN where neither reference nor INR has fibrosis), reference fibrosis voxels, and fitting
seconds (its batch's time divided by the batch size)."""


@dataclass
class FittedInrs:
    """The output of the INR stage.

    Attributes:
        case_ids: one per row of ``params``.
        params: (N, P) flat parameters, layout `ParameterLayout(spec)`.
        init: (P,) the shared initialisation.
        spec, settings: how they were made.
        grid_shape: the canonical grid they were fitted on (slices, rows, cols).
        fidelity: one row per case (`FIDELITY_COLUMNS`).
    """

    case_ids: list[str]
    params: Tensor
    init: Tensor
    spec: SirenSettings
    settings: FitSettings
    grid_shape: tuple[int, int, int]
    fidelity: pd.DataFrame

    def decode(
        self,
        cases: str | list[str] | None = None,
        shape: tuple[int, int, int] | None = None,
        device: torch.device | str | None = None,
    ) -> Decoded:
        """Decode the named cases (default all) on a grid of ``shape`` (default: the fitted grid)."""
        names = [cases] if isinstance(cases, str) else (self.case_ids if cases is None else list(cases))
        missing = [c for c in names if c not in self.case_ids]
        if missing:
            raise KeyError(f"no fitted INR for {', '.join(missing)}")
        rows = [self.case_ids.index(c) for c in names]
        return decode(self.params[rows], self.spec, shape or self.grid_shape, device)


def case_fingerprint(
    spec: SirenSettings,
    settings: FitSettings,
    init: Tensor,
    image: np.ndarray,
    myocardium: np.ndarray,
    fibrosis: np.ndarray,
) -> str:
    """A hash of everything that determines one case's fitted INR."""
    return fingerprint(
        [spec.to_dict(), settings.to_dict()],
        init,
        image.astype(np.float32),
        myocardium.astype(bool),
        fibrosis.astype(bool),
    )


def case_fidelity(
    decoded: Decoded, image: np.ndarray, myocardium: np.ndarray, fibrosis: np.ndarray, index: int
) -> dict[str, float]:
    """PSNR (data range 1) and Dice of the 0.5-thresholded heads for decoded case ``index``, full grid."""
    myo_pred, fib_pred = decoded.masks()
    return {
        "psnr_db": psnr(np.clip(decoded.intensity[index], 0, 1), image),
        "myocardium_dice": dice(myo_pred[index], myocardium),
        "fibrosis_dice": dice(fib_pred[index], fibrosis),
        "fibrosis_voxels": int(fibrosis.sum()),
    }


def _finished_case(path: Path, fingerprint: str) -> tuple[Tensor, dict] | None:
    """The case's parameters and fidelity if ``path`` holds a finished fit with this fingerprint."""
    if not path.exists():
        return None
    try:
        tensors, metadata = load_tensors(path)
    except Exception:  # unreadable: fit it again
        return None
    if metadata.get("fingerprint") != fingerprint or "params" not in tensors:
        return None
    return tensors["params"], json.loads(metadata["fidelity"])


def _write_init(folder: Path, spec: SirenSettings, settings: FitSettings) -> Tensor:
    """The shared initialisation, saved in the stage folder unless an identical one is already there."""
    init = siren_init(spec, settings.init_seed)
    path = folder / "init.safetensors"
    if not (path.exists() and torch.equal(load_tensors(path)[0].get("init", torch.empty(0)), init)):
        save_tensors(path, {"init": init}, {"spec": json.dumps(spec.to_dict()), "init_seed": str(settings.init_seed)})
    return init


def fit_inrs(
    prepared: PreparedDataset,
    out_dir: Path | str,
    spec: SirenSettings,
    settings: FitSettings,
    case_ids: list[str] | None = None,
    cases_per_batch: int = 16,
    device: torch.device | str | None = None,
    precision: str | None = None,
    progress: bool = True,
    on_batch: Callable[[list[str]], None] | None = None,
    case_cache: Path | str | None = None,
) -> FittedInrs:
    """Fit (or resume fitting) one joint SIREN per case and write the stage folder.

    Args:
        prepared: the dataset on its canonical grid.
        out_dir: the stage folder (created).
        case_ids: which cases (default: all, in dataset order). The generative stages use the training split.
        cases_per_batch: volumes fitted together; larger is faster until the hardware is busy (from about 4
            volumes on 2 CPU cores, far more on a GPU; benchmarks/README.md) or memory runs out. Results change
            only by floating-point rounding (a smoke case fitted alone vs among 18: 23.99 vs 24.02 dB after 800
            steps).
        device, precision: where and how (`fit_batch`); by default CUDA with TF32 if present, else CPU fp32.
        on_batch: called with the case ids of each batch once its files are written.
        case_cache: a folder of finished case files shared between runs (e.g. the splits of one experiment: a
            case's INR depends on its data and the settings, not on the split). A finished case found there with
            the same fingerprint is copied instead of fitted; new fits are added to it.
    """
    out = Path(out_dir)
    cases_dir = out / "cases"
    names = list(prepared.case_ids if case_ids is None else case_ids)
    unknown = [c for c in names if c not in prepared.case_ids]
    if unknown:
        raise KeyError(f"cases not in the prepared dataset: {', '.join(unknown)}")
    if not names:
        raise ValueError("no cases to fit")
    device = resolve_device(device)
    out.mkdir(parents=True, exist_ok=True)
    init = _write_init(out, spec, settings)
    (out / "settings.json").write_text(
        json.dumps(
            {
                "spec": spec.to_dict(),
                "settings": settings.to_dict(),
                "n_params": spec.n_params,
                "layout": [[name, list(shape), count] for name, shape, count in ParameterLayout(spec).table()],
            },
            indent=1,
        )
    )
    rows = prepared.index(names)
    fingerprints = {
        c: case_fingerprint(spec, settings, init, prepared.images[i], prepared.myocardium[i], prepared.fibrosis[i])
        for c, i in zip(names, rows)
    }
    results: dict[str, tuple[Tensor, dict]] = {}
    cache = None if case_cache is None else Path(case_cache)
    for c in names:
        finished = _finished_case(cases_dir / f"{c}.safetensors", fingerprints[c])
        if finished is None and cache is not None:
            finished = _finished_case(cache / f"{c}.safetensors", fingerprints[c])
            if finished is not None:
                cases_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cache / f"{c}.safetensors", cases_dir / f"{c}.safetensors")
        if finished is not None:
            results[c] = finished
    todo = [c for c in names if c not in results]
    if progress and results:
        logger.info("%d of %d cases already fitted in %s; fitting %d", len(results), len(names), cases_dir, len(todo))
    batches = [todo[i : i + cases_per_batch] for i in range(0, len(todo), cases_per_batch)]
    for batch in tqdm(batches, desc="INR batches", disable=not progress or len(batches) < 2, unit="batch"):
        index = prepared.index(batch)
        started = time.perf_counter()
        params = fit_batch(
            init,
            spec,
            settings,
            batch,
            prepared.images[index],
            prepared.myocardium[index],
            prepared.fibrosis[index],
            device=device,
            precision=precision,
            progress=progress,
        )
        seconds = (time.perf_counter() - started) / len(batch)
        decoded = decode(params, spec, tuple(prepared.images.shape[1:]), device)
        for j, (case_id, i) in enumerate(zip(batch, index)):
            fidelity = case_fidelity(decoded, prepared.images[i], prepared.myocardium[i], prepared.fibrosis[i], j)
            fidelity["seconds"] = seconds
            save_tensors(
                cases_dir / f"{case_id}.safetensors",
                {"params": params[j]},
                {"case_id": case_id, "fingerprint": fingerprints[case_id], "fidelity": json.dumps(fidelity)},
            )
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cases_dir / f"{case_id}.safetensors", cache / f"{case_id}.safetensors")
            results[case_id] = (params[j], fidelity)
        if on_batch is not None:
            on_batch(batch)
    fitted = FittedInrs(
        case_ids=names,
        params=torch.stack([results[c][0] for c in names]),
        init=init,
        spec=spec,
        settings=settings,
        grid_shape=tuple(int(n) for n in prepared.images.shape[1:]),
        fidelity=pd.DataFrame([{"case_id": c, **results[c][1]} for c in names]),
    )
    save_tensors(
        out / "inrs.safetensors",
        {"params": fitted.params, "init": init},
        {
            "case_ids": json.dumps(names),
            "spec": json.dumps(spec.to_dict()),
            "settings": json.dumps(settings.to_dict()),
            "grid_shape": json.dumps(fitted.grid_shape),
        },
    )
    fitted.fidelity.to_csv(out / "fidelity.csv", index=False)
    return fitted


def load_fitted(folder: Path | str) -> FittedInrs:
    """Read a stage folder written by `fit_inrs` (safetensors: no code is unpickled)."""
    path = Path(folder) / "inrs.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the INR stage (fit_inrs) first")
    tensors, metadata = load_tensors(path)
    settings = json.loads(metadata["settings"])
    settings["loss_weights"] = tuple(settings["loss_weights"])
    case_ids = json.loads(metadata["case_ids"])
    fidelity = pd.read_csv(Path(folder) / "fidelity.csv", dtype={"case_id": str})
    return FittedInrs(
        case_ids=case_ids,
        params=tensors["params"],
        init=tensors["init"],
        spec=SirenSettings(**json.loads(metadata["spec"])),
        settings=FitSettings(**settings),
        grid_shape=tuple(json.loads(metadata["grid_shape"])),
        fidelity=fidelity,
    )
