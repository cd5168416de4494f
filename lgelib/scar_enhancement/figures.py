"""Chapter 08's figures: before / after panels and CNR against lambda."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lgelib.scar_enhancement.slices import ScarSlices


def plot_enhancement_panels(slices: ScarSlices, enhanced: np.ndarray, targets: np.ndarray, rows: list[int]) -> Figure:
    """Per chosen slice: the original, the enhanced slice, the gamma target, and enhanced minus original (the
    scar outlined in every panel)."""
    figure, axes = plt.subplots(len(rows), 4, figsize=(8, 2.2 * len(rows)), squeeze=False)  # <= 860 px: legible
    titles = ("original", "enhanced (mean of k)", "gamma target", "enhanced - original")
    for r, i in enumerate(rows):
        difference = enhanced[i] - slices.image[i]
        limit = max(float(np.abs(difference).max()), 1e-3)
        panels = (slices.image[i], enhanced[i], targets[i], difference)
        for c, (axis, panel) in enumerate(zip(axes[r], panels)):
            if c < 3:
                axis.imshow(panel, cmap="gray", vmin=0, vmax=1)
            else:
                axis.imshow(panel, cmap="coolwarm", vmin=-limit, vmax=limit)
            axis.contour(slices.scar[i], levels=[0.5], colors="gold", linewidths=0.7)
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(titles[c], fontsize=9)
        axes[r][0].set_ylabel(f"{slices.case_id[i]}\nslice {int(slices.slice_index[i]) + 1}", fontsize=8)
    figure.tight_layout()
    return figure


def plot_cnr_against_lambda(curve: pd.DataFrame, baseline: dict[str, float], chosen: int) -> Figure:
    """CNR of one enhanced sample against the partial-diffusion start lambda, with the original slices' CNR."""
    figure, axes = plt.subplots(1, 2, figsize=(8, 3))
    for axis, column in zip(axes, ("CNR(scar, myo)", "CNR(scar, blood)")):
        axis.plot(curve["lambda"], curve[column], marker="o", label="enhanced (1 sample)")
        axis.axhline(baseline[column], color="grey", linestyle="--", label="original slices")
        axis.axvline(chosen, color="tab:red", linewidth=0.8, label=f"lambda = {chosen} (the profile's)")
        axis.set_xlabel("lambda (partial-diffusion start)")
        axis.set_title(column, fontsize=10)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    return figure
