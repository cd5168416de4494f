"""New image + mask volumes: EDM latents decoded by inr2vec on the canonical grid, written like a prepared dataset.

Layout of a synthesis folder (``<run_dir>/synth``), the same as a prepared folder so later stages read synthetic
cases like real ones (`lgelib.data.prepare.load_prepared`, ``lgelib validate``)::

    manifest.yaml              kind nifti, masks per case, every case in the training split
    cases/<id>/image.nii.gz    float32 in [0, 1]; myocardium.nii.gz, fibrosis.nii.gz uint8 {0, 1}
    qc.csv                     one row per drawn sample (`QC_COLUMNS`), accepted or not
    latents.safetensors        the sampled latents of the written cases (their slice spacing, if sampled, is in qc.csv)
    synthesis.json             settings, counts, voxel size, the fingerprint of the models it came from

Sample i is drawn from its own seeded noise stream (`lgelib.edm.sample_seeds`), so the same seed gives the same
volumes and the first 100 of a 200-volume run are the 100-volume run. A sample whose myocardium covers fewer
than 2 slices (it could not be validated or segmented) is not written; further samples are drawn until
``n_volumes`` are accepted, and the QC table lists the rejected ones.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lgelib.anatomy import mask_qc
from lgelib.data.dataset import Split
from lgelib.data.nifti import voxel_spacing
from lgelib.data.prepare import PreparedDataset, write_case_volumes, write_nifti_manifest
from lgelib.edm import SamplerSettings, TrainedEdm, sample_seeds
from lgelib.fsutil import atomic_directory, load_tensors, save_tensors
from lgelib.geometry import split_geometry
from lgelib.inr2vec import TrainedInr2Vec, decode_latents
from lgelib.fingerprint import fingerprint, record_matches

RECORD = "synthesis.json"
MIN_MYOCARDIUM_SLICES = 2
QC_COLUMNS = (
    "case_id",
    "sample",
    "accepted",
    "slice_spacing_mm",
    "myocardium_ml",
    "fibrosis_ml",
    "scar_burden_pct",
    "fibrosis_outside_pct",
    "myocardium_slices",
    "closed_ring_slices",
    "rings",
)
"""Per drawn sample: its case id and index, whether it was written, its slice spacing, and `lgelib.anatomy.mask_qc`'s
numbers."""


@dataclass(frozen=True)
class SynthesisSettings:
    """How many volumes, from which seed, with which sampler; ``max_draws`` bounds rejected samples (None: 2n + 16).

    ``geometry``: ``"nominal"`` gives every volume the training cases' median voxel size (`nominal_spacing`);
    ``"sampled"`` has the diffusion model draw each volume's slice spacing (its LV length) with its latent
    (`lgelib.geometry`; it changes what the diffusion stage trains on).
    """

    n_volumes: int = 200
    seed: int = 0
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    threshold: float = 0.5
    max_draws: int | None = None
    geometry: str = "nominal"

    def __post_init__(self) -> None:
        if self.n_volumes < 1:
            raise ValueError(f"n_volumes must be at least 1, got {self.n_volumes}")
        if self.geometry not in ("nominal", "sampled"):
            raise ValueError(f"geometry must be 'nominal' or 'sampled', got {self.geometry!r}")

    @property
    def draw_limit(self) -> int:
        """The most samples drawn to keep ``n_volumes`` (``max_draws``, or 2n + 16)."""
        return self.max_draws or 2 * self.n_volumes + 16

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SyntheticSet:
    """A written synthesis folder: its manifest, the QC table of every draw, the written cases' latents."""

    folder: Path
    case_ids: list[str]
    qc: pd.DataFrame
    latents: Tensor
    record: dict

    @property
    def manifest(self) -> Path:
        return self.folder / "manifest.yaml"


def canonical_spacing(prepared: PreparedDataset, case_id: str) -> tuple[float, float, float]:
    """Voxel size (slice, row, col) in mm of a prepared case on the canonical grid, from its grid mapping."""
    if case_id not in prepared.mappings:
        raise ValueError(
            f"{case_id}: no grid mapping (cases/{case_id}/mapping.json), so its voxel size is unknown; "
            "is this a folder written by lgelib prepare?"
        )
    return voxel_spacing(prepared.mappings[case_id].canonical_affine)


def nominal_spacing(prepared: PreparedDataset, case_ids: list[str] | None = None) -> tuple[float, float, float]:
    """Median canonical voxel size (slice, row, col) in mm of real cases: the voxel size given to synthetic ones.

    The canonical slices span each heart's own base-to-apex extent, so their spacing differs between cases.
    """
    spacings = np.array([canonical_spacing(prepared, c) for c in case_ids or prepared.case_ids])
    return tuple(float(s) for s in np.median(spacings, axis=0))  # type: ignore[return-value]


def synthesize(
    edm: TrainedEdm,
    inr2vec: TrainedInr2Vec,
    out_dir: Path | str,
    settings: SynthesisSettings,
    grid_shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    publishable: bool,
    name: str = "synthetic",
    device: torch.device | str | None = None,
    progress: bool = True,
    batch: int = 50,
    conditions: np.ndarray | None = None,
    guidance: float = 1.0,
) -> SyntheticSet:
    """Sample, decode, check and write ``settings.n_volumes`` synthetic cases into ``out_dir``.

    Args:
        edm, inr2vec: the trained stages (the EDM samples latents, inr2vec's decoder turns them into volumes).
        grid_shape: the canonical grid (slices, rows, cols) the INRs were fitted on.
        spacing_mm: voxel size written into the NIfTI headers (`nominal_spacing` of the real training cases). If the
            diffusion model samples geometry (`lgelib.geometry`), each sample's own slice spacing replaces
            ``spacing_mm[0]``.
        publishable: whether the manifest lets a rendered book show these images. Synthetic volumes learned
            from a private dataset may reproduce its cases, so pass the source dataset's flag.
        batch: samples decoded together.
        conditions, guidance: for a conditioned diffusion model (`lgelib.edm`), the condition vector of each
            volume asked for (volume k uses row k modulo their number) and the classifier-free guidance scale. A
            draw rejected by quality control is drawn again, with a new noise seed, for the same row, so that the
            kept set follows the conditions asked for even where some conditions fail more often.

    A folder already holding this exact synthesis (same models, settings, grid and voxel size) is returned as is;
    otherwise it is written anew, atomically (an interrupted run leaves the old folder or none).
    """
    out = Path(out_dir)
    recipe = {
        "settings": settings.to_dict(),
        "grid": list(grid_shape),
        "spacing": list(spacing_mm),
        "publishable": publishable,
        "name": name,
    }
    if conditions is not None:
        conditions = np.asarray(conditions, dtype=np.float32)
        recipe |= {"conditions": conditions.tolist(), "guidance": float(guidance), "rejected": "drawn again"}
    key = fingerprint(
        recipe,
        *[t for t in edm.net.state_dict().values()],
        edm.standardizer.mean,
        edm.standardizer.std,
        *[t for t in inr2vec.model.state_dict().values()],
    )
    if record_matches(out / RECORD, fingerprint=key):
        return load_synthetic(out)
    max_draws = settings.draw_limit
    started = time.perf_counter()
    rows, entries, latents_kept = [], [], []
    drawn = 0
    pending = list(range(settings.n_volumes))  # the volumes still wanted; a rejected one stays in front
    with (
        atomic_directory(out, replace=True) as staging,
        tqdm(
            total=settings.n_volumes, desc="synthetic volumes", unit="volume", disable=not progress, leave=False
        ) as bar,
    ):
        while len(entries) < settings.n_volumes:
            if drawn >= max_draws:
                raise RuntimeError(
                    f"only {len(entries)} of {drawn} samples had myocardium in at least "
                    f"{MIN_MYOCARDIUM_SLICES} slices; stopped at max_draws = {max_draws}. The diffusion "
                    "or inr2vec model is probably undertrained: check their loss curves."
                )
            count = min(batch, settings.n_volumes - len(entries), max_draws - drawn)
            wanted = pending[:count]
            draw_conditions = None
            if conditions is not None:
                draw_conditions = torch.from_numpy(conditions[np.array(wanted) % len(conditions)])
            vectors = edm.sample(
                sample_seeds(settings.seed, count, first=drawn), settings.sampler, device, draw_conditions, guidance
            )
            latents, slice_spacing = split_geometry(vectors, edm.extra_columns)
            decoded = decode_latents(inr2vec.model, latents, grid_shape, device)
            myocardium = decoded.myocardium > settings.threshold
            raw_fibrosis = decoded.fibrosis > settings.threshold
            fibrosis = raw_fibrosis & myocardium
            for j in range(count):
                index = drawn + j
                case_id = f"synth-{index:04d}"
                spacing = (
                    spacing_mm
                    if slice_spacing is None
                    else (float(slice_spacing[j]), float(spacing_mm[1]), float(spacing_mm[2]))
                )
                affine = np.diag([*spacing, 1.0])
                qc = mask_qc(myocardium[j], fibrosis[j], float(np.prod(spacing)) / 1000.0, raw_fibrosis[j])
                accepted = qc["myocardium_slices"] >= MIN_MYOCARDIUM_SLICES
                rows.append(
                    {"case_id": case_id, "sample": index, "accepted": accepted, "slice_spacing_mm": spacing[0], **qc}
                )
                if accepted:
                    image = np.clip(decoded.intensity[j], 0.0, 1.0)
                    entries.append(
                        write_case_volumes(
                            staging / "cases" / case_id, case_id, image, myocardium[j], fibrosis[j], affine
                        )
                    )
                    latents_kept.append(latents[j])  # the latent alone: its slice spacing is in qc.csv
                    pending.remove(wanted[j])
                    bar.update(1)
            drawn += count
        case_ids = [e["id"] for e in entries]
        write_nifti_manifest(
            staging / "manifest.yaml",
            re.sub(r"[^A-Za-z0-9._-]+", "-", f"{name}-synthetic"),
            f"{len(case_ids)} synthetic volumes sampled by EDM and decoded by inr2vec "
            f"(seed {settings.seed}); QC in qc.csv.",
            publishable,
            entries,
            Split(tuple(case_ids), ()),
        )
        qc_frame = pd.DataFrame(rows, columns=list(QC_COLUMNS))
        qc_frame.to_csv(staging / "qc.csv", index=False)
        stacked = torch.stack(latents_kept)
        save_tensors(staging / "latents.safetensors", {"latents": stacked}, {"case_ids": json.dumps(case_ids)})
        record = {
            "fingerprint": key,
            "settings": settings.to_dict(),
            "grid_shape": list(grid_shape),
            "spacing_mm": list(spacing_mm),
            "n_written": len(case_ids),
            "n_drawn": drawn,
            "seconds": time.perf_counter() - started,
        }
        (staging / RECORD).write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    return SyntheticSet(out, case_ids, qc_frame, stacked, record)


def load_synthetic(folder: Path | str) -> SyntheticSet:
    """Read a synthesis folder's QC table, latents and record (the volumes: `lgelib.data.prepare.load_prepared`)."""
    folder = Path(folder)
    if not (folder / RECORD).is_file():
        raise FileNotFoundError(f"{folder / RECORD} does not exist: run the synthesis first (synthesize)")
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    tensors, metadata = load_tensors(folder / "latents.safetensors")
    qc = pd.read_csv(folder / "qc.csv", dtype={"case_id": str, "rings": str})
    return SyntheticSet(folder, json.loads(metadata["case_ids"]), qc, tensors["latents"], record)


def real_qc(prepared: PreparedDataset, case_ids: list[str] | None = None) -> pd.DataFrame:
    """The same QC table for real cases on the canonical grid (each with its own voxel size), for comparison."""
    rows = []
    for case_id in case_ids or prepared.case_ids:
        _, myocardium, fibrosis = prepared.case(case_id)
        voxel_ml = float(np.prod(canonical_spacing(prepared, case_id))) / 1000.0
        rows.append({"case_id": case_id, **mask_qc(myocardium, fibrosis, voxel_ml)})
    return pd.DataFrame(rows)


QC_SUMMARY = {
    "myocardium_ml": "myocardium (mL)",
    "fibrosis_ml": "fibrosis (mL)",
    "scar_burden_pct": "scar burden (%)",
    "fibrosis_outside_pct": "fibrosis outside myocardium (%)",
    "ring_pct": "closed-ring slices (%)",
}


def compare_qc(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Median [quartiles] of each QC number per named table (e.g. real training cases vs synthetic ones), with
    the share of cases without fibrosis and the number of cases."""
    columns = {}
    for name, table in tables.items():
        table = table.assign(ring_pct=100 * table.closed_ring_slices / table.myocardium_slices.clip(lower=1))
        cells = {}
        for key, label in QC_SUMMARY.items():
            q1, median, q3 = table[key].quantile([0.25, 0.5, 0.75])
            cells[label] = f"{median:.1f} [{q1:.1f}, {q3:.1f}]"
        cells["cases without fibrosis (%)"] = f"{100 * (table.fibrosis_ml == 0).mean():.0f}"
        cells["cases"] = str(len(table))
        columns[name] = cells
    return pd.DataFrame(columns)
