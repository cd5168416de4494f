"""Figures and tables of the book. Each function returns a matplotlib Figure (a plotly Figure for the interactive
3D meshes, markdown text for Table 1) and leaves showing/saving to the caller."""

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

from lgelib.metrics import REGIONS, SIMILARITY_REGIONS, arm_labels, arm_order

MYOCARDIUM_COLOUR = "red"  # the paper's Figure 2 convention
FIBROSIS_COLOUR = "blue"


def slice_levels(n_slices: int) -> dict[str, int]:
    """Basal, mid-ventricular and apical slice indices (0-based) of a base-first stack (the paper shows 3, 6, 9 of
    12). Figures print them 1-based, "slice k of n", counted from the base."""
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


SliceMasks = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One slice: image (intensities 0 to 1), myocardium and fibrosis masks."""


def figure1(stages: Sequence[str], real: SliceMasks | None = None, synthetic: SliceMasks | None = None,
            latent: np.ndarray | None = None) -> Figure:
    """The paper's Figure 1 drawn from a run: real volume -> joint SIREN -> inr2vec latent -> EDM -> synthetic volume
    -> nnU-Net, six panels labelled by ``stages`` (one text per panel). Panels whose data are not given (a private
    dataset's real slice) are drawn as labelled boxes."""
    if len(stages) != 6:
        raise ValueError(f"figure1 needs 6 stage labels, got {len(stages)}")
    figure, axes = plt.subplots(1, 6, figsize=(13, 3.0), gridspec_kw={"wspace": 0.5})
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
    for index, (axis, label) in enumerate(zip(axes, ("volume", "joint SIREN", "latent", "EDM", "synthetic", "nnU-Net"))):
        if not axis.images:
            axis.text(0.5, 0.5, label, ha="center", va="center", fontsize=12, transform=axis.transAxes,
                      bbox={"boxstyle": "round", "facecolor": "#eef3fb" if index % 5 else "#f2f2f2"})
            axis.set_frame_on(False)
        if index:
            axis.annotate("", xy=(-0.05, 0.5), xytext=(-0.4, 0.5), xycoords="axes fraction",
                          arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1.5}, annotation_clip=False)
    return figure


def plot_cases(images: Sequence[np.ndarray], myocardium: Sequence[np.ndarray], fibrosis: Sequence[np.ndarray],
               titles: Sequence[str], contours: bool = True) -> Figure:
    """One row per case: basal, mid and apical slices with myocardium (red) and fibrosis (blue) contours."""
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(7.5, 2.6 * rows), squeeze=False)
    for row, (image, myo, fib, title) in enumerate(zip(images, myocardium, fibrosis, titles)):
        for column, (level, index) in enumerate(slice_levels(image.shape[0]).items()):
            _contoured(axes[row, column], image[index], myo[index] if contours else None,
                       fib[index] if contours else None, f"{title}: {level} (slice {index + 1} of {image.shape[0]})")
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
                   f"{titles[row]}: data, slice {mid + 1} of {images[row].shape[0]}")
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


# --- Paper figures 2 to 4, Table 1 and the checks behind them -------------------------------------------------------

ImageMasks = tuple[np.ndarray, np.ndarray, np.ndarray]  # (image, myocardium, fibrosis)
MeshCase = tuple[str, np.ndarray, np.ndarray, tuple[float, float, float]]

MESH_MYOCARDIUM_COLOUR = MYOCARDIUM_COLOUR  # one meaning in every figure (the paper's Figure 4 uses the reverse)
MESH_FIBROSIS_COLOUR = FIBROSIS_COLOUR


def figure2(synthetic: ImageMasks, real: ImageMasks | None = None, synthetic_title: str = "synthetic",
            real_title: str = "real") -> Figure:
    """The paper's Figure 2: basal, mid and apical slices of (image, myocardium, fibrosis) volumes, first with
    contours (red myocardium, blue fibrosis), then without, so the image itself can be judged.

    Rows: real and synthetic with contours, then real and synthetic without. With ``real=None`` (a dataset whose
    images may not be shown) only the two synthetic rows are drawn. Each volume uses its own slice count."""
    with_contours = ([(real_title, real)] if real is not None else []) + [(synthetic_title, synthetic)]
    rows = [(name, volume, True) for name, volume in with_contours] + [(name, volume, False)
                                                                        for name, volume in with_contours]
    figure, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows)), squeeze=False)
    for row, (name, (image, myo, fib), contours) in enumerate(rows):
        for column, (level, index) in enumerate(slice_levels(image.shape[0]).items()):
            _contoured(axes[row, column], image[index], myo[index] if contours else None,
                       fib[index] if contours else None, f"{level} (slice {index + 1} of {image.shape[0]})")
        axes[row, 0].set_ylabel(f"{name}\n{'with' if contours else 'without'} contours", fontsize=8)
    figure.tight_layout()
    return figure


def _grouped_boxes(axis, groups: Sequence[str], sets: dict[str, dict[str, np.ndarray]], points: bool = False) -> None:
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
            box = axis.boxplot(values, positions=[position], widths=width * 0.85, patch_artist=True,
                               showfliers=not points, flierprops={"markersize": 2},
                               medianprops={"color": "black"})
            for patch in box["boxes"]:
                patch.set_facecolor(colour)
                patch.set_alpha(0.5 if points else 0.7)
            if points:
                axis.scatter(position + rng.uniform(-0.25, 0.25, values.size) * width, values, s=6, color=colour,
                             edgecolors="none", alpha=0.8, zorder=3)
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
        sets = {name: {region: frame.loc[frame["region"] == region, column].to_numpy(dtype=float)
                       for region in regions} for name, frame in pairs.items()}
        _grouped_boxes(axis, regions, sets)
        axis.set_ylabel(label)
        axis.set_title(label, fontsize=9)
    figure.tight_layout()
    return figure


def mask_mesh(mask: np.ndarray, spacing: tuple[float, float, float],
              smooth_sigma: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
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
    for structure, mask, colour, opacity in (("myocardium", myocardium, MESH_MYOCARDIUM_COLOUR, 0.35),
                                             ("fibrosis", fibrosis, MESH_FIBROSIS_COLOUR, 1.0)):
        vertices, faces = mask_mesh(mask, spacing)
        if len(faces):
            yield structure, colour, opacity, vertices, faces


def mesh_figure(cases: Sequence[MeshCase]) -> go.Figure:
    """The paper's Figure 4, interactive: one 3D scene per (title, myocardium, fibrosis, spacing) case, the
    myocardium as a semi-transparent red surface and the fibrosis inside it opaque blue, at true proportions."""
    figure = make_subplots(rows=1, cols=len(cases), specs=[[{"type": "scene"}] * len(cases)],
                           subplot_titles=[case[0] for case in cases], horizontal_spacing=0.02)
    for column, (title, myocardium, fibrosis, spacing) in enumerate(cases, start=1):
        for structure, colour, opacity, vertices, faces in _case_meshes(myocardium, fibrosis, spacing):
            figure.add_trace(go.Mesh3d(x=vertices[:, 0], y=vertices[:, 1], z=vertices[:, 2], i=faces[:, 0],
                                       j=faces[:, 1], k=faces[:, 2], color=colour, opacity=opacity,
                                       name=f"{title}: {structure}", showlegend=True, hoverinfo="name"),
                             row=1, col=column)
    figure.update_scenes(aspectmode="data", xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)")
    figure.update_layout(height=450, width=max(450, 380 * len(cases)), margin={"l": 0, "r": 0, "t": 40, "b": 0})
    return figure


def mesh_figure_static(cases: Sequence[MeshCase]) -> Figure:
    """:func:`mesh_figure` drawn with matplotlib, one 3D axis per case, for print."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    figure = plt.figure(figsize=(3.6 * len(cases), 3.8))
    for column, (title, myocardium, fibrosis, spacing) in enumerate(cases, start=1):
        axis = figure.add_subplot(1, len(cases), column, projection="3d")
        lows, highs = [], []
        for _, colour, opacity, vertices, faces in _case_meshes(myocardium, fibrosis, spacing):
            axis.add_collection3d(Poly3DCollection(vertices[faces], facecolor=colour, alpha=opacity,
                                                   edgecolor="none"))
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
    return {"application/vnd.plotly.v1+json": json.loads(pio.to_json(figure)),
            "text/html": figure.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False)}


# Table 1 of the paper: mean Dice of nnU-Net on unseen real volumes, trained with N synthetic volumes added.
# The paper gives a std only for fibrosis Volume: 0.08 at N=0 and 0.07 at N=200.
PAPER_TABLE1 = pd.DataFrame(
    [[0.509, 0.515, 0.524, 0.815, 0.815, 0.811],
     [0.195, 0.202, 0.198, 0.560, 0.543, 0.523],
     [0.549, 0.549, 0.554, 0.833, 0.834, 0.832],
     [0.370, 0.390, 0.405, 0.784, 0.781, 0.779]],
    index=pd.Index(REGIONS, name="region"),
    columns=pd.MultiIndex.from_product([("fibrosis", "myocardium"), ("N0", "N100", "N200")],
                                       names=["structure", "arm"]))


def _arm_label(arm: object) -> str:
    return f"N={arm}" if isinstance(arm, (int, np.integer)) else str(arm)


def table1_markdown(table: pd.DataFrame, decimals: int = 3) -> str:
    """A Table-1 layout (index regions; columns (structure, arm[, stat]) with stat "mean"/"std") as a markdown
    table in the paper's layout, "mean ± std" cells, the best mean per structure and region in bold. Arms keep
    their order; a numeric arm n is shown as N=n.

    Means are compared as shown (rounded to ``decimals``), so displayed ties are all bold; NaN shows as "–"."""
    has_stat = table.columns.nlevels == 3
    structures = list(dict.fromkeys(table.columns.get_level_values(0)))
    columns = [(structure, n) for structure in structures
               for n in dict.fromkeys(table[structure].columns.get_level_values(0))]

    def value(region, structure, n, stat):
        key = (structure, n, stat) if has_stat else (structure, n)
        if not has_stat and stat == "std":
            return np.nan
        return float(table.loc[region, key]) if key in table.columns else np.nan

    lines = ["| Region | " + " | ".join(f"{s.capitalize()} {_arm_label(n)}" for s, n in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for region in table.index:
        means = {column: round(value(region, *column, "mean"), decimals) for column in columns}
        best = {s: np.nanmax([m for (t, _), m in means.items() if t == s] + [np.nan]) for s in structures}
        cells = []
        for structure, n in columns:
            mean, std = means[(structure, n)], value(region, structure, n, "std")
            if np.isnan(mean):
                cells.append("–")
                continue
            cell = f"{mean:.{decimals}f}" + ("" if np.isnan(std) else f" ± {std:.{decimals}f}")
            cells.append(f"**{cell}**" if mean == best[structure] else cell)
        lines.append(f"| {region} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _overlaid_histograms(axis, samples: dict[str, np.ndarray], bins: int = 30) -> None:
    """Step histograms (density) on shared bins, one per named sample, each median a dashed vertical line."""
    samples = {name: values[np.isfinite(values)] for name, values in samples.items()}
    everything = np.concatenate([values for values in samples.values()] + [np.zeros(0)])
    if everything.size == 0:
        return
    edges = np.histogram_bin_edges(everything, bins=bins)
    for j, (name, values) in enumerate(samples.items()):
        if values.size == 0:
            continue
        median = float(np.median(values))
        axis.hist(values, bins=edges, density=True, histtype="step", color=f"C{j}", lw=1.4,
                  label=f"{name} (n={values.size}, median {median:.3g})")
        axis.axvline(median, color=f"C{j}", ls="--", lw=1)
    axis.set_ylabel("density")
    axis.legend(fontsize=7)


def plot_distributions(tables: dict[str, pd.DataFrame], measures: dict[str, str]) -> Figure:
    """One panel per measure (column name -> axis label with units): the distribution of that column in each named
    table (e.g. real training cases vs synthetic ones) as overlaid density histograms, medians dashed."""
    figure, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.2), squeeze=False)
    for axis, (column, label) in zip(axes[0], measures.items()):
        _overlaid_histograms(axis, {name: table[column].to_numpy(dtype=float)
                                    for name, table in tables.items() if column in table})
        axis.set_xlabel(label)
    figure.tight_layout()
    return figure


def plot_memorisation(audit: pd.DataFrame, label: str = "distance to nearest training case") -> Figure:
    """Memorisation check: distance of each synthetic case, and of each held-out real case, to its nearest training
    case. Synthetic cases no closer than real test ones are not copies of the training set."""
    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    _overlaid_histograms(axis, {kind: audit.loc[audit["kind"] == kind, "distance"].to_numpy(dtype=float)
                                for kind in pd.unique(audit["kind"])})
    axis.set_xlabel(label)
    figure.tight_layout()
    return figure


def plot_dice(per_case: pd.DataFrame) -> Figure:
    """The per-case spread behind Table 1: Dice per region for fibrosis and myocardium, one box (with every case
    as a point) per arm, over the scored rows (fibrosis: regions with reference scar)."""
    regions = list(REGIONS) + [r for r in pd.unique(per_case["region"]) if r not in REGIONS]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, structure in zip(axes, ("fibrosis", "myocardium")):
        rows = per_case.assign(arm=arm_labels(per_case))
        if "scored" in rows.columns:
            rows = rows[rows["scored"].astype(bool)]
        rows = rows[rows["structure"] == structure]
        sets = {arm: {region: group.loc[group["region"] == region, "dice"].to_numpy(dtype=float)
                      for region in regions}
                for arm, group in sorted(rows.groupby("arm"), key=lambda item: arm_order(rows["arm"]).index(item[0]))}
        _grouped_boxes(axis, regions, sets, points=True)
        axis.set_title(structure, fontsize=9)
        axis.set_ylim(0, 1)
    axes[0].set_ylabel("Dice")
    figure.tight_layout()
    return figure


def comparisons_markdown(comparisons: pd.DataFrame, decimals: int = 3) -> str:
    """`lgelib.comparisons.compare_arms` as a markdown table: per structure, region and arm the mean paired
    difference from N0 with its 95% cluster-bootstrap interval, the minimum detectable effect, the split-level
    p-value, its Holm-adjusted value and the smallest p the number of splits allows."""
    order = {region: i for i, region in enumerate(REGIONS)}
    arms = arm_order(comparisons["arm"])
    rows = comparisons.assign(_r=comparisons["region"].map(order), _a=comparisons["arm"].map(arms.index))
    rows = rows.sort_values(["structure", "_r", "_a"], kind="stable")
    lines = ["| Structure | Region | Arm | Arm − N0 | 95% CI | MDE | p | p (Holm) | smallest p | pairs / splits |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    f = f".{decimals}f"
    for _, row in rows.iterrows():
        lines.append(f"| {row.structure} | {row.region} | {row.arm} | {row.difference:+{f}} | [{row.ci_low:+{f}}, "
                     f"{row.ci_high:+{f}}] | {row.mde:{f}} | {row.p:.2f} | {row.p_holm:.2f} | {row.p_min:.2f} | "
                     f"{int(row.n_pairs)} / {int(row.n_splits)} |")
    return "\n".join(lines)


def plot_time_to_fidelity(curves: pd.DataFrame, psnr_target: float = 30.0) -> Figure:
    """Image PSNR (worst case of the batch) against fitting seconds per volume, one line per network: the curves
    that ``benchmarks/inr_time_to_fidelity.py`` writes (columns ``network``, ``seconds/volume``, ``psnr_db min``)."""
    figure, axis = plt.subplots(figsize=(6.5, 3.4))
    for network, curve in curves.groupby("network", sort=False):
        axis.plot(curve["seconds/volume"], curve["psnr_db min"], marker="o", markersize=3, label=network)
    axis.axhline(psnr_target, color="grey", linestyle="--", linewidth=0.8)
    axis.text(axis.get_xlim()[1], psnr_target, f" {psnr_target:g} dB target", va="bottom", ha="right", fontsize=8,
              color="grey")
    axis.set_xscale("log")
    axis.set_xlabel("fitting time per volume (s, log scale)")
    axis.set_ylabel("image PSNR, worst case (dB)")
    axis.legend(frameon=False, fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure
