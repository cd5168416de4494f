"""Figures of the book. Each function returns a matplotlib Figure and leaves showing/saving to the caller."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

MYOCARDIUM_COLOUR = "red"  # the paper's Figure 2 convention
FIBROSIS_COLOUR = "blue"


def slice_levels(n_slices: int) -> dict[str, int]:
    """Basal, mid-ventricular and apical slice indices of a base-first stack (the paper shows 3, 6, 9 of 12)."""
    return {"basal": round((n_slices - 1) * 0.2), "mid": round((n_slices - 1) * 0.5), "apical": round((n_slices - 1) * 0.8)}


def plot_cases(images: Sequence[np.ndarray], myocardium: Sequence[np.ndarray], fibrosis: Sequence[np.ndarray],
               titles: Sequence[str], contours: bool = True) -> Figure:
    """One row per case: basal, mid and apical slices with myocardium (red) and fibrosis (blue) contours."""
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(7.5, 2.6 * rows), squeeze=False)
    for row, (image, myo, fib, title) in enumerate(zip(images, myocardium, fibrosis, titles)):
        for column, (level, index) in enumerate(slice_levels(image.shape[0]).items()):
            axis = axes[row, column]
            axis.imshow(image[index], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if contours:
                if myo[index].any():
                    axis.contour(myo[index], levels=[0.5], colors=MYOCARDIUM_COLOUR, linewidths=0.8)
                if fib[index].any():
                    axis.contour(fib[index], levels=[0.5], colors=FIBROSIS_COLOUR, linewidths=0.8)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{title}: {level} (slice {index})", fontsize=8)
    figure.tight_layout()
    return figure
