"""A table of a dataset's cases as read from their files: geometry, myocardium and fibrosis volumes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lgelib.data.cases import read_case
from lgelib.data.dataset import Dataset


def dataset_summary(dataset: Dataset, progress: bool = True) -> pd.DataFrame:
    """One row per case: split, voxel spacing, slice count, myocardium and fibrosis volume (mL), scar burden."""
    test = set(dataset.split.test)
    rows = []
    for files in tqdm(dataset.cases, desc="summary", unit="case", disable=not progress):
        case = read_case(files, dataset.label_mapping, dataset.manifest.fibrosis_outside_myocardium)
        spacing = case.spacing
        voxel_ml = float(np.prod(spacing)) / 1000.0
        slice_axis = int(np.argmax(spacing))
        in_plane = tuple(a for a in range(3) if a != slice_axis)
        myocardium_ml = case.myocardium.sum() * voxel_ml
        fibrosis_ml = case.fibrosis.sum() * voxel_ml
        rows.append({
            "case": case.case_id,
            "split": "test" if case.case_id in test else "train",
            "in-plane mm": round(float(np.mean([spacing[a] for a in in_plane])), 2),
            "slice mm": round(float(spacing[slice_axis]), 1),
            "slices": case.image.shape[slice_axis],
            "slices with myocardium": int(case.myocardium.any(axis=in_plane).sum()),
            "myocardium mL": round(float(myocardium_ml), 1),
            "fibrosis mL": round(float(fibrosis_ml), 1),
            "scar burden %": round(100 * float(fibrosis_ml / myocardium_ml), 1),
        })
    return pd.DataFrame(rows).set_index("case")
