"""The paper's Figures 1-4 and the stages' plots (cases, reconstructions, losses, per-case strips, training curves).
Each function returns a matplotlib Figure (a plotly Figure for the interactive 3D meshes) drawn at about the book's
column width, and leaves showing or saving to the caller. Table 1 is `lgelib.table1`; the audits' plots are in
`lgelib.quality`."""

from __future__ import annotations

import json
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from lgelib.metrics import SIMILARITY_REGIONS

MYOCARDIUM_COLOUR = "red"  # the paper's Figure 2 convention
FIBROSIS_COLOUR = "blue"


def slice_levels(n_slices: int) -> dict[str, int]:
    """Basal, mid-ventricular and apical slice indices (0-based) of a base-first stack (the paper shows 3, 6, 9 of
    12). Figures print them 1-based, "slice k of n", counted from the base."""
    return {
        "basal": round((n_slices - 1) * 0.2),
        "mid": round((n_slices - 1) * 0.5),
        "apical": round((n_slices - 1) * 0.8),
    }


def _contoured(axis, image: np.ndarray, myo: np.ndarray | None, fib: np.ndarray | None, title: str) -> None:
    """A slice in grey (intensities 0 to 1) with myocardium (red) and fibrosis (blue) contours."""
    axis.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for mask, colour in ((myo, MYOCARDIUM_COLOUR), (fib, FIBROSIS_COLOUR)):
        if mask is not None and mask.any():
            axis.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=8)


SliceMasks = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One slice: image (intensities 0 to 1), myocardium and fibrosis masks."""


def figure1(
    stages: Sequence[str],
    real: SliceMasks | None = None,
    synthetic: SliceMasks | None = None,
    latent: np.ndarray | None = None,
) -> Figure:
    """The paper's Figure 1 drawn from a run: real volume -> joint SIREN -> inr2vec latent -> EDM -> synthetic volume
    -> nnU-Net, six panels labelled by ``stages`` (one text per panel). Panels whose data are not given (a private
    dataset's real slice) are drawn as labelled boxes."""
    if len(stages) != 6:
        raise ValueError(f"figure1 needs 6 stage labels, got {len(stages)}")
    figure, grid = plt.subplots(2, 3, figsize=(7.2, 5.6), gridspec_kw={"wspace": 0.6, "hspace": 0.55})
    axes = grid.ravel()  # read left to right, then the second row
    for axis, text in zip(axes, stages):
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_box_aspect(1)  # six equal squares, images and boxes alike
        axis.set_xlabel(text, fontsize=9)
    for axis, data in ((axes[0], real), (axes[4], synthetic)):
        if data is not None:
            _contoured(axis, *data, title="")
    if latent is not None:
        axes[2].imshow(np.asarray(latent, dtype=float).reshape(16, -1), cmap="coolwarm", aspect="auto")
    for index, (axis, label) in enumerate(
        zip(axes, ("volume", "joint SIREN", "latent", "EDM", "synthetic", "nnU-Net"))
    ):
        if not axis.images:
            axis.text(
                0.5,
                0.5,
                label,
                ha="center",
                va="center",
                fontsize=12,
                transform=axis.transAxes,
                bbox={"boxstyle": "round", "facecolor": "#eef3fb" if index % 5 else "#f2f2f2"},
            )
            axis.set_frame_on(False)
        if index:
            axis.annotate(
                "",
                xy=(-0.05, 0.5),
                xytext=(-0.45, 0.5),
                xycoords="axes fraction",
                arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1.5},
                annotation_clip=False,
            )
    return figure


def plot_cases(
    images: Sequence[np.ndarray],
    myocardium: Sequence[np.ndarray],
    fibrosis: Sequence[np.ndarray],
    titles: Sequence[str],
    contours: bool = True,
) -> Figure:
    """One row per case: basal, mid and apical slices with myocardium (red) and fibrosis (blue) contours."""
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(7.5, 2.6 * rows), squeeze=False)
    for row, (image, myo, fib, title) in enumerate(zip(images, myocardium, fibrosis, titles)):
        for column, (level, index) in enumerate(slice_levels(image.shape[0]).items()):
            _contoured(
                axes[row, column],
                image[index],
                myo[index] if contours else None,
                fib[index] if contours else None,
                f"{title}: {level} (slice {index + 1} of {image.shape[0]})",
            )
    figure.tight_layout()
    return figure


def plot_reconstructions(
    images: np.ndarray,
    myocardium: np.ndarray,
    fibrosis: np.ndarray,
    decoded_images: np.ndarray,
    decoded_myocardium: np.ndarray,
    decoded_fibrosis: np.ndarray,
    titles: Sequence[str],
    fine_images: np.ndarray | None = None,
) -> Figure:
    """One column per case, one row per view: the mid slice as fitted, the INR's decoding with its own masks, their
    difference, the myocardium voxels it gets wrong, and (with ``fine_images``, decoded on a finer through-plane
    grid) a long-axis cut through the data and through the INR. Drawn at the book's column width."""
    cases = len(images)
    rows = 4 if fine_images is None else 6
    figure, axes = plt.subplots(rows, cases, figsize=(2.3 * max(cases, 2), 2.2 * rows), squeeze=False)
    for column in range(cases):
        mid = slice_levels(images[column].shape[0])["mid"]
        _contoured(
            axes[0, column],
            images[column][mid],
            myocardium[column][mid],
            fibrosis[column][mid],
            f"{titles[column]}\ndata, slice {mid + 1} of {images[column].shape[0]}",
        )
        _contoured(
            axes[1, column],
            decoded_images[column][mid],
            decoded_myocardium[column][mid],
            decoded_fibrosis[column][mid],
            "INR, its own masks",
        )
        axes[2, column].imshow(
            np.abs(decoded_images[column][mid] - images[column][mid]),
            cmap="magma",
            vmin=0,
            vmax=0.25,
            interpolation="nearest",
        )
        axes[2, column].set_title("|INR - data| (0 to 0.25)", fontsize=8)
        error = np.abs(decoded_myocardium[column].astype(int) - myocardium[column].astype(int)).sum(0)
        axes[3, column].imshow(error, cmap="viridis", interpolation="nearest")
        axes[3, column].set_title("myocardium voxels wrong,\nsummed over slices", fontsize=8)
        if fine_images is not None:
            cut = images[column].shape[2] // 2
            axes[4, column].imshow(
                images[column][:, :, cut], cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest"
            )
            axes[4, column].set_title(f"long-axis cut, {images[column].shape[0]} slices", fontsize=8)
            axes[5, column].imshow(
                fine_images[column][:, :, fine_images[column].shape[2] // 2],
                cmap="gray",
                vmin=0,
                vmax=1,
                aspect="auto",
                interpolation="nearest",
            )
            axes[5, column].set_title(f"INR queried at {fine_images[column].shape[0]} slices", fontsize=8)
    for axis in axes.ravel():
        axis.set_axis_off()
    figure.tight_layout()
    return figure


def plot_loss(history: Sequence[float], title: str, smooth: int = 50) -> Figure:
    """A training loss per step (thin) and its running mean over ``smooth`` steps, on a log scale."""
    values = np.asarray(history, dtype=float)
    figure, axis = plt.subplots(figsize=(6, 2.6))
    axis.plot(values, lw=0.4, alpha=0.5, color="grey", label="per step")
    if len(values) >= smooth:
        axis.plot(
            np.arange(smooth - 1, len(values)),
            np.convolve(values, np.ones(smooth) / smooth, "valid"),
            color="black",
            label=f"mean of {smooth}",
        )
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_comparison(
    volumes: Sequence[Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    row_titles: Sequence[str],
    column_titles: Sequence[str],
) -> Figure:
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


# --- Paper figures 2 to 4, Table 1 and the checks behind them -------------------------------------------------------

ImageMasks = tuple[np.ndarray, np.ndarray, np.ndarray]  # (image, myocardium, fibrosis)
MeshCase = tuple[str, np.ndarray, np.ndarray, tuple[float, float, float]]

MESH_MYOCARDIUM_COLOUR = MYOCARDIUM_COLOUR  # one meaning in every figure (the paper's Figure 4 uses the reverse)
MESH_FIBROSIS_COLOUR = FIBROSIS_COLOUR


def figure2(
    synthetic: ImageMasks, real: ImageMasks | None = None, synthetic_title: str = "synthetic", real_title: str = "real"
) -> Figure:
    """The paper's Figure 2: basal, mid and apical slices of (image, myocardium, fibrosis) volumes, first with
    contours (red myocardium, blue fibrosis), then without, so the image itself can be judged.

    Rows: real and synthetic with contours, then real and synthetic without. With ``real=None`` (a dataset whose
    images may not be shown) only the two synthetic rows are drawn. Each volume uses its own slice count."""
    with_contours = ([(real_title, real)] if real is not None else []) + [(synthetic_title, synthetic)]
    rows = [(name, volume, True) for name, volume in with_contours] + [
        (name, volume, False) for name, volume in with_contours
    ]
    figure, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows)), squeeze=False)
    for row, (name, (image, myo, fib), contours) in enumerate(rows):
        for column, (level, index) in enumerate(slice_levels(image.shape[0]).items()):
            _contoured(
                axes[row, column],
                image[index],
                myo[index] if contours else None,
                fib[index] if contours else None,
                f"{level} (slice {index + 1} of {image.shape[0]})",
            )
        axes[row, 0].set_ylabel(f"{name}\n{'with' if contours else 'without'} contours", fontsize=8)
    figure.tight_layout()
    return figure


def grouped_boxes(axis, groups: Sequence[str], sets: dict[str, dict[str, np.ndarray]], points: bool = False) -> None:
    """Per group on the x axis, one box per named set side by side (median marked), with a legend of the sets.
    With ``points`` every value is also drawn, jittered, over its box (the spread behind a mean)."""
    count = max(len(sets), 1)
    width = 0.8 / count
    rng = np.random.default_rng(0)
    handles = []
    for j, (name, values_by_group) in enumerate(sets.items()):
        colour = f"C{j}"
        for i, group in enumerate(groups):
            values = np.asarray(values_by_group.get(group, []), dtype=float)
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            position = i + (j - (count - 1) / 2) * width
            box = axis.boxplot(
                values,
                positions=[position],
                widths=width * 0.85,
                patch_artist=True,
                showfliers=not points,
                flierprops={"markersize": 2},
                medianprops={"color": "black"},
            )
            for patch in box["boxes"]:
                patch.set_facecolor(colour)
                patch.set_alpha(0.5 if points else 0.7)
            if points:
                axis.scatter(
                    position + rng.uniform(-0.25, 0.25, values.size) * width,
                    values,
                    s=6,
                    color=colour,
                    edgecolors="none",
                    alpha=0.8,
                    zorder=3,
                )
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor=colour, alpha=0.7, label=name))
    axis.set_xticks(range(len(groups)))
    axis.set_xticklabels(groups, fontsize=8)
    axis.set_xlim(-0.5, len(groups) - 0.5)
    axis.legend(handles=handles, fontsize=7)


def figure3(pairs: dict[str, pd.DataFrame]) -> Figure:
    """The paper's Figure 3: PSNR (dB) and SSIM per region, one box per named set of image pairs.

    Each DataFrame is long format with columns ``region``, ``psnr_db`` and ``ssim``; non-finite values (NaN, and
    the infinite PSNR of identical slices) are left out."""
    regions = list(SIMILARITY_REGIONS)
    for frame in pairs.values():
        regions += [region for region in pd.unique(frame["region"]) if region not in regions]
    figure, axes = plt.subplots(1, 2, figsize=(4.2 + 1.3 * len(pairs), 3.4))
    for axis, (column, label) in zip(axes, (("psnr_db", "PSNR (dB)"), ("ssim", "SSIM"))):
        sets = {
            name: {region: frame.loc[frame["region"] == region, column].to_numpy(dtype=float) for region in regions}
            for name, frame in pairs.items()
        }
        grouped_boxes(axis, regions, sets)
        axis.set_ylabel(label)
        axis.set_title(label, fontsize=9)
    figure.tight_layout()
    return figure


def mask_mesh(
    mask: np.ndarray, spacing: tuple[float, float, float], smooth_sigma: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """Triangle surface of a boolean (slices, rows, cols) mask: vertices in mm as x, y, z = cols, rows, slices
    (``spacing`` is given in (slice, row, col) order) and faces indexing them.

    The mask is padded by one voxel of zeros so the surface closes, and Gaussian-smoothed (``smooth_sigma`` in
    voxels) before marching cubes at 0.5; the smoothing only shapes the drawing, no measure is taken from it.
    A structure too small to survive the smoothing is meshed unsmoothed. An empty mask gives empty arrays."""
    empty = np.zeros((0, 3), dtype=float), np.zeros((0, 3), dtype=np.int64)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return empty
    from scipy import ndimage
    from skimage import measure

    volume = np.pad(mask.astype(float), 1)
    smoothed = ndimage.gaussian_filter(volume, smooth_sigma) if smooth_sigma > 0 else volume
    if smoothed.max() <= 0.5:
        smoothed = volume
    vertices, faces, _, _ = measure.marching_cubes(smoothed, level=0.5, spacing=tuple(float(s) for s in spacing))
    vertices = (vertices - np.asarray(spacing, dtype=float))[:, ::-1]  # undo the padding; (z, y, x) -> (x, y, z)
    return vertices, faces[:, ::-1].astype(np.int64)  # reversing the axes mirrors, so flip the winding back


def _case_meshes(myocardium: np.ndarray, fibrosis: np.ndarray, spacing: tuple[float, float, float]):
    """(structure, colour, opacity, vertices, faces) for the non-empty structures of a case."""
    for structure, mask, colour, opacity in (
        ("myocardium", myocardium, MESH_MYOCARDIUM_COLOUR, 0.35),
        ("fibrosis", fibrosis, MESH_FIBROSIS_COLOUR, 1.0),
    ):
        vertices, faces = mask_mesh(mask, spacing)
        if len(faces):
            yield structure, colour, opacity, vertices, faces


def mesh_figure(cases: Sequence[MeshCase]) -> go.Figure:
    """The paper's Figure 4, interactive: one 3D scene per (title, myocardium, fibrosis, spacing) case, the
    myocardium as a semi-transparent red surface and the fibrosis inside it opaque blue, at true proportions."""
    figure = make_subplots(
        rows=1,
        cols=len(cases),
        specs=[[{"type": "scene"}] * len(cases)],
        subplot_titles=[case[0] for case in cases],
        horizontal_spacing=0.02,
    )
    for column, (title, myocardium, fibrosis, spacing) in enumerate(cases, start=1):
        for structure, colour, opacity, vertices, faces in _case_meshes(myocardium, fibrosis, spacing):
            figure.add_trace(
                go.Mesh3d(
                    x=vertices[:, 0],
                    y=vertices[:, 1],
                    z=vertices[:, 2],
                    i=faces[:, 0],
                    j=faces[:, 1],
                    k=faces[:, 2],
                    color=colour,
                    opacity=opacity,
                    name=f"{title}: {structure}",
                    showlegend=True,
                    hoverinfo="name",
                ),
                row=1,
                col=column,
            )
    figure.update_scenes(aspectmode="data", xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)")
    # No fixed width: the figure fills the book's column (and a notebook's cell) whatever its width.
    figure.update_layout(
        height=420, autosize=True, margin={"l": 0, "r": 0, "t": 40, "b": 0}, legend={"orientation": "h", "y": -0.02}
    )
    return figure


def mesh_figure_static(cases: Sequence[MeshCase]) -> Figure:
    """:func:`mesh_figure` drawn with matplotlib, one 3D axis per case, for print."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    figure = plt.figure(figsize=(3.6 * len(cases), 3.8))
    for column, (title, myocardium, fibrosis, spacing) in enumerate(cases, start=1):
        axis = figure.add_subplot(1, len(cases), column, projection="3d")
        lows, highs = [], []
        for _, colour, opacity, vertices, faces in _case_meshes(myocardium, fibrosis, spacing):
            axis.add_collection3d(Poly3DCollection(vertices[faces], facecolor=colour, alpha=opacity, edgecolor="none"))
            lows.append(vertices.min(0))
            highs.append(vertices.max(0))
        if lows:
            low, high = np.min(lows, axis=0), np.max(highs, axis=0)
            axis.set_xlim(low[0], high[0])
            axis.set_ylim(low[1], high[1])
            axis.set_zlim(low[2], high[2])
            axis.set_box_aspect(np.maximum(high - low, 1e-6))
        axis.set_xlabel("x (mm)", fontsize=7)
        axis.set_ylabel("y (mm)", fontsize=7)
        axis.set_zlabel("z (mm)", fontsize=7)
        axis.tick_params(labelsize=6)
        axis.set_title(title, fontsize=9)
    figure.subplots_adjust(left=0.02, right=0.95, bottom=0.08, top=0.9, wspace=0.1)  # tight_layout ignores 3D labels
    return figure


def plotly_bundle(figure: go.Figure) -> dict[str, object]:
    """A Jupyter display bundle for a plotly figure that renders offline in Jupyter Book 1: the plotly JSON and an
    HTML div that does not load plotly.js (shipped once in the book's ``_static`` folder) nor MathJax.

    Show it with ``IPython.display.display(bundle, raw=True)``."""
    return {
        "application/vnd.plotly.v1+json": json.loads(pio.to_json(figure)),
        "text/html": figure.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False),
    }


def plot_time_to_fidelity(curves: pd.DataFrame, psnr_target: float = 30.0) -> Figure:
    """Image PSNR (worst case of the batch) against fitting seconds per volume, one line per network: the curves
    that ``benchmarks/inr_time_to_fidelity.py`` writes (columns ``network``, ``seconds/volume``, ``psnr_db min``)."""
    figure, axis = plt.subplots(figsize=(6.5, 3.4))
    for network, curve in curves.groupby("network", sort=False):
        axis.plot(curve["seconds/volume"], curve["psnr_db min"], marker="o", markersize=3, label=network)
    axis.axhline(psnr_target, color="grey", linestyle="--", linewidth=0.8)
    axis.text(
        axis.get_xlim()[1],
        psnr_target,
        f" {psnr_target:g} dB target",
        va="bottom",
        ha="right",
        fontsize=8,
        color="grey",
    )
    axis.set_xscale("log")
    axis.set_xlabel("fitting time per volume (s, log scale)")
    axis.set_ylabel("image PSNR, worst case (dB)")
    axis.legend(frameon=False, fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_per_case(table: pd.DataFrame, measures: dict[str, str], group: str | None = None) -> Figure:
    """Per-case numbers as strip plots, one panel per measure (column -> label), one strip per value of ``group``
    (e.g. train / test), every case a point and the median a bar. Reads faster than a long per-case table, and
    shows no case id (a hospital's ids may identify patients)."""
    groups = list(pd.unique(table[group])) if group else [None]
    rows = (len(measures) + 2) // 3
    figure, axes = plt.subplots(rows, min(3, len(measures)), figsize=(7.2, 2.6 * rows), squeeze=False)
    jitter = np.random.default_rng(0)  # fixed: the same table gives the same picture
    for axis, (column, label) in zip(axes.ravel(), measures.items()):
        for position, value in enumerate(groups):
            rows_of = table if value is None else table[table[group] == value]
            values = rows_of[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            axis.scatter(
                position + jitter.uniform(-0.15, 0.15, values.size),
                values,
                s=12,
                alpha=0.7,
                color=f"C{position}",
                edgecolor="none",
            )
            if values.size:
                axis.hlines(np.median(values), position - 0.3, position + 0.3, color="black", lw=1.5)
        axis.set_xticks(range(len(groups)), ["all" if g is None else str(g) for g in groups], fontsize=8)
        axis.set_xlim(-0.6, len(groups) - 0.4)
        axis.set_title(label, fontsize=9)
        axis.tick_params(axis="y", labelsize=8)
    for axis in axes.ravel()[len(measures) :]:
        axis.set_visible(False)
    figure.tight_layout()
    return figure


def plot_training_curves(curves: pd.DataFrame) -> Figure:
    """nnU-Net's training per model (`lgelib.segmentation.training_curves`): training and validation loss, and its
    exponential moving average of the validation pseudo-Dice, against the epoch: the budget at a glance."""
    figure, (losses, dice_axis) = plt.subplots(1, 2, figsize=(7.2, 3.0))
    for j, (name, rows) in enumerate(curves.groupby("model", sort=False)):
        losses.plot(rows.epoch, rows.train_loss, color=f"C{j}", lw=1.2, label=f"{name}")
        losses.plot(rows.epoch, rows.val_loss, color=f"C{j}", lw=1.0, ls="--")
        dice_axis.plot(rows.epoch, rows.ema_pseudo_dice, color=f"C{j}", lw=1.2, label=name)
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss (solid: training, dashed: validation)", fontsize=8)
    dice_axis.set_xlabel("epoch")
    dice_axis.set_ylabel("pseudo-Dice (EMA)", fontsize=8)
    dice_axis.set_ylim(0, 1)
    dice_axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def not_drawn(reason: str) -> Figure:
    """A figure's place kept when this run may not draw it (a private dataset with no synthetic volume cleared):
    the reason as text, so the figure keeps its number and the landing page's reference to it still resolves."""
    figure, axis = plt.subplots(figsize=(7.2, 1.0))
    axis.set_axis_off()
    axis.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=9, transform=axis.transAxes)
    return figure


def plot_request_accuracy(table: pd.DataFrame) -> Figure:
    """Per scar request (`lgelib.conditioning.accuracy_table`): the share of volumes meeting it when drawn for it,
    when drawn unconditionally from the same model (the base rate) and among the real training cases. A conditioning
    that works lifts the first bar well above the second."""
    columns = {
        "meets request (conditioned)": ("drawn for the request", "C0"),
        "meets request (unconditional)": ("drawn unconditionally", "C7"),
        "meets request (training cases)": ("real training cases", "C1"),
    }
    figure, axis = plt.subplots(figsize=(7.2, 3.0))
    positions = np.arange(len(table))
    width = 0.8 / len(columns)
    for k, (column, (label, colour)) in enumerate(columns.items()):
        axis.bar(positions + (k - 1) * width, 100 * table[column], width, label=label, color=colour)
    axis.set_xticks(positions, list(table.index), fontsize=8)
    axis.set_ylabel("volumes meeting the request (%)", fontsize=8)
    axis.set_ylim(0, 100)
    axis.tick_params(axis="y", labelsize=8)
    axis.legend(fontsize=8, frameon=False, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.18))
    figure.tight_layout()
    return figure


def plot_low_data_curve(table: pd.DataFrame, title: str | None = None) -> Figure:
    """Dice against the number of real training cases (`lgelib.low_data.curve`), one panel per structure, one line
    per arm with its 95% cluster-bootstrap interval; arms are nudged apart along x so that the intervals stay
    readable. Where a synthetic arm's point lies above the real-only line, reading across to that line gives the real
    cases it is worth (`lgelib.low_data.equivalent_real_cases`)."""
    structures = [s for s in ("myocardium", "fibrosis") if s in set(table["structure"])]
    figure, axes = plt.subplots(1, len(structures), figsize=(7.2, 3.0), squeeze=False)
    arms = list(dict.fromkeys(table["arm"]))
    sizes = np.sort(table["n_train"].unique())
    step = 0.015 * (np.log(sizes.max()) - np.log(sizes.min()) if sizes.size > 1 else 1.0)
    for axis, structure in zip(axes[0], structures):
        for k, arm in enumerate(arms):
            rows = table[(table["structure"] == structure) & (table["arm"] == arm)].sort_values("n_train")
            x = rows["n_train"].to_numpy(np.float64) * np.exp((k - (len(arms) - 1) / 2) * step)
            error = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]
            axis.errorbar(x, rows["mean"], yerr=error, color=f"C{k}", marker="o", ms=4, lw=1.2, capsize=2, label=arm)
        axis.set_xscale("log")
        axis.set_xticks(sizes, [str(int(n)) for n in sizes])
        axis.minorticks_off()
        axis.set_xlabel("real training cases", fontsize=8)
        axis.set_ylabel(f"{structure} Dice", fontsize=8)
        axis.set_title(structure, fontsize=9)
        axis.tick_params(labelsize=8)
    axes[0][0].legend(fontsize=7, frameon=False)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
