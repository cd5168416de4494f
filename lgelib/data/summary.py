"""Per-case numbers of a dataset as read from its files: geometry, myocardium and fibrosis volumes.

They are computed once, while a dataset is prepared (the files are read then anyway), stored in the prepared
folder's record, and tabulated from there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lgelib.anatomy import tissue_volumes
from lgelib.data.cases import ScanCase
from lgelib.data.nifti import slice_axis


def case_summary(case: ScanCase) -> dict[str, float | int]:
    """Voxel spacing, slice counts, myocardium and fibrosis volume (mL) and scar burden of one case."""
    spacing = case.spacing
    voxel_ml = float(np.prod(spacing)) / 1000.0
    slices = slice_axis(spacing)
    in_plane = tuple(a for a in range(3) if a != slices)
    volumes = tissue_volumes(case.myocardium, case.fibrosis, voxel_ml)
    return {
        "in-plane mm": round(float(np.mean([spacing[a] for a in in_plane])), 2),
        "slice mm": round(float(spacing[slices]), 1),
        "slices": int(case.image.shape[slices]),
        "slices with myocardium": int(case.myocardium.any(axis=in_plane).sum()),
        **{name: round(value, 1) for name, value in volumes.items()},
    }


def prepared_summary(folder: Path) -> pd.DataFrame:
    """One row per case of a prepared folder: its split and :func:`case_summary` (no file is re-read)."""
    from lgelib.data.prepare import PREPARED_RECORD

    record = json.loads((Path(folder) / PREPARED_RECORD).read_text(encoding="utf-8"))
    test = set(record["split"]["test"])
    rows = [
        {"case": case_id, "split": "test" if case_id in test else "train", **entry["summary"]}
        for case_id, entry in record["cases"].items()
    ]
    return pd.DataFrame(rows).set_index("case")
