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


def _contoured(axis, image: np.ndarray, myo: np.ndarray | None, fib: np.ndarray | None, title: str) -> None:
    """A slice in grey (intensities 0 to 1) with myocardium (red) and fibrosis (blue) contours."""
    axis.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for mask, colour in ((myo, MYOCARDIUM_COLOUR), (fib, FIBROSIS_COLOUR)):
        if mask is not None and mask.any():
            axis.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=8)


def plot_cases(images: Sequence[np.ndarray], myocardium: Sequence[np.ndarray], fibrosis: Sequence[np.ndarray],
               titles: Sequence[str], contours: bool = True) -> Figure:
    """One row per case: basal, mid and apical slices with myocardium (red) and fibrosis (blue) contours."""
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(7.5, 2.6 * rows), squeeze=False)
    for row, (image, myo, fib, title) in enumerate(zip(images, myocardium, fibrosis, titles)):
        for column, (level, index) in enumerate(slice_levels(image.shape[0]).items()):
            _contoured(axes[row, column], image[index], myo[index] if contours else None,
                       fib[index] if contours else None, f"{title}: {level} (slice {index})")
    figure.tight_layout()
    return figure


def plot_reconstructions(images: np.ndarray, myocardium: np.ndarray, fibrosis: np.ndarray,
                         decoded_images: np.ndarray, decoded_myocardium: np.ndarray, decoded_fibrosis: np.ndarray,
                         titles: Sequence[str], fine_images: np.ndarray | None = None) -> Figure:
    """One row per case: the mid slice as fitted, the INR's decoding with its own masks, their difference,
    and (with ``fine_images``, decoded on a finer through-plane grid) a long-axis cut through both."""
    rows = len(images)
    columns = 4 if fine_images is None else 6
    figure, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.3 * rows), squeeze=False)
    for row in range(rows):
        mid = slice_levels(images[row].shape[0])["mid"]
        _contoured(axes[row, 0], images[row][mid], myocardium[row][mid], fibrosis[row][mid],
                   f"{titles[row]}: data, slice {mid}")
        _contoured(axes[row, 1], decoded_images[row][mid], decoded_myocardium[row][mid], decoded_fibrosis[row][mid],
                   "INR, its own masks")
        axes[row, 2].imshow(np.abs(decoded_images[row][mid] - images[row][mid]), cmap="magma", vmin=0, vmax=0.25,
                            interpolation="nearest")
        axes[row, 2].set_title("|INR - data| (0 to 0.25)", fontsize=8)
        axes[row, 2].set_axis_off()
        error = np.abs(decoded_myocardium[row].astype(int) - myocardium[row].astype(int)).sum(0)
        axes[row, 3].imshow(error, cmap="viridis", interpolation="nearest")
        axes[row, 3].set_title("myocardium voxels wrong, summed\nover slices", fontsize=8)
        axes[row, 3].set_axis_off()
        if fine_images is not None:
            column = images[row].shape[2] // 2
            axes[row, 4].imshow(images[row][:, :, column], cmap="gray", vmin=0, vmax=1, aspect="auto",
                                interpolation="nearest")
            axes[row, 4].set_title(f"long-axis cut, {images[row].shape[0]} slices", fontsize=8)
            axes[row, 5].imshow(fine_images[row][:, :, fine_images[row].shape[2] // 2], cmap="gray", vmin=0, vmax=1,
                                aspect="auto", interpolation="nearest")
            axes[row, 5].set_title(f"INR queried at {fine_images[row].shape[0]} slices", fontsize=8)
            for axis in axes[row, 4:]:
                axis.set_axis_off()
    figure.tight_layout()
    return figure


def plot_loss(history: Sequence[float], title: str, smooth: int = 50) -> Figure:
    """A training loss per step (thin) and its running mean over ``smooth`` steps, on a log scale."""
    values = np.asarray(history, dtype=float)
    figure, axis = plt.subplots(figsize=(6, 2.6))
    axis.plot(values, lw=0.4, alpha=0.5, color="grey", label="per step")
    if len(values) >= smooth:
        axis.plot(np.arange(smooth - 1, len(values)), np.convolve(values, np.ones(smooth) / smooth, "valid"),
                  color="black", label=f"mean of {smooth}")
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_comparison(volumes: Sequence[Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]], row_titles: Sequence[str],
                    column_titles: Sequence[str]) -> Figure:
    """A grid of mid-ventricular slices: rows are cases, columns are versions of each (e.g. data, INR, inr2vec),
    each an (image, myocardium, fibrosis) triple drawn with red and blue contours."""
    rows, columns = len(volumes), len(column_titles)
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.4 * rows), squeeze=False)
    for row, versions in enumerate(volumes):
        for column, (image, myo, fib) in enumerate(versions):
            mid = slice_levels(image.shape[0])["mid"]
            _contoured(axes[row, column], image[mid], myo[mid], fib[mid], f"{row_titles[row]}: {column_titles[column]}")
    figure.tight_layout()
    return figure
