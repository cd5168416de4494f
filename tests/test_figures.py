"""The paper's figures and Table 1: layout, meshes, display bundle and the bold-best rule."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import pytest  # noqa: E402

from lgelib import figures  # noqa: E402
from lgelib import quality, table1  # noqa: E402
from lgelib.metrics import SIMILARITY_REGIONS  # noqa: E402
from lgelib.table1 import REGIONS  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def ring_volume(slices: int = 12, size: int = 32, fibrosis: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image in [0, 1] with a myocardial ring on every slice and a patch of fibrosis in it."""
    y, x = np.mgrid[:size, :size] - size / 2
    radius = np.hypot(x, y)
    myo = np.repeat(((radius > 6) & (radius < 10))[None], slices, 0)
    fib = myo & (x > 4)[None] if fibrosis else np.zeros_like(myo)
    image = np.clip(0.2 + 0.3 * myo + 0.5 * fib, 0, 1)
    return image, myo, fib


def test_figure2_rows_and_contours():
    real, synthetic = ring_volume(12), ring_volume(10)
    figure = figures.figure2(synthetic, real)
    axes = [axis for axis in figure.axes if axis.images]
    assert len(axes) == 12
    grid = np.array(figure.axes).reshape(4, 3)
    for row in range(4):
        for axis in grid[row]:
            assert bool(axis.collections) == (row < 2)  # contours only in the first two rows
    assert "real" in grid[0, 0].get_ylabel() and "synthetic" in grid[1, 0].get_ylabel()
    assert grid[0, 1].get_title() == f"mid (slice {figures.slice_levels(12)['mid'] + 1} of 12)"  # 1-based, base first
    assert grid[1, 2].get_title() == f"apical (slice {figures.slice_levels(10)['apical'] + 1} of 10)"

    alone = figures.figure2(synthetic, synthetic_title="generated")
    grid = np.array(alone.axes).reshape(2, 3)
    assert len([axis for axis in alone.axes if axis.images]) == 6
    assert all(axis.collections for axis in grid[0]) and not any(axis.collections for axis in grid[1])
    assert "generated" in grid[0, 0].get_ylabel()


def _pairs(rng: np.random.Generator, n: int = 20) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": np.repeat(list(SIMILARITY_REGIONS), n),
            "psnr_db": rng.normal(20, 3, 3 * n),
            "ssim": rng.uniform(0.2, 0.9, 3 * n),
        }
    )


def test_figure3_one_and_three_sets_with_nan_and_inf():
    rng = np.random.default_rng(1)
    one = figures.figure3({"synthetic vs nearest real": _pairs(rng)})
    assert len(one.axes) == 2
    assert [t.get_text() for t in one.axes[0].get_xticklabels()] == list(SIMILARITY_REGIONS)

    messy = _pairs(rng)
    messy.loc[0, "psnr_db"] = np.inf
    messy.loc[1, "ssim"] = np.nan
    messy.loc[messy["region"] == "fibrosis", ["psnr_db", "ssim"]] = np.nan  # a whole region missing
    sets = {
        "synthetic vs nearest real": _pairs(rng),
        "all synthetic-real pairs": messy,
        "real test vs nearest real training": _pairs(rng),
    }
    three = figures.figure3(sets)
    legend = three.axes[0].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == list(sets)
    # 3 regions x 3 sets minus the missing fibrosis box
    assert len(three.axes[1].patches) == 8 and len(one.axes[1].patches) == 3
    ylow, yhigh = three.axes[0].get_ylim()
    assert np.isfinite(ylow) and np.isfinite(yhigh)


def box_mask(shape=(10, 20, 30), box=(slice(2, 8), slice(5, 15), slice(10, 25))) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[box] = True
    return mask


def test_mask_mesh_extent_spacing_and_empty():
    mask = box_mask()
    spacing = (10.0, 1.5, 1.25)  # slice, row, col
    vertices, faces = figures.mask_mesh(mask, spacing)
    assert vertices.shape[1] == 3 and faces.shape[1] == 3 and len(faces) > 0
    assert faces.max() < len(vertices)
    # x, y, z = cols, rows, slices in mm; the mask spans voxels [10, 24] x [5, 14] x [2, 7]
    for axis, (low, high), step in ((0, (10, 24), 1.25), (1, (5, 14), 1.5), (2, (2, 7), 10.0)):
        assert vertices[:, axis].min() >= (low - 1) * step - 1e-6
        assert vertices[:, axis].max() <= (high + 1) * step + 1e-6
        assert vertices[:, axis].min() <= low * step and vertices[:, axis].max() >= high * step
    doubled, _ = figures.mask_mesh(mask, tuple(2 * s for s in spacing))
    np.testing.assert_allclose(np.ptp(doubled, 0), 2 * np.ptp(vertices, 0), rtol=1e-6)

    empty_v, empty_f = figures.mask_mesh(np.zeros((4, 5, 6), bool), spacing)
    assert empty_v.shape == (0, 3) and empty_f.shape == (0, 3)
    single_v, _ = figures.mask_mesh(box_mask(box=(1, 2, 3)), (1.0, 1.0, 1.0))  # survives the smoothing
    assert len(single_v) > 0


def test_mask_mesh_sphere_is_centred():
    z, y, x = np.mgrid[:21, :21, :21] - 10
    vertices, _ = figures.mask_mesh(np.hypot(np.hypot(x, y), z) <= 6, (1.0, 1.0, 1.0))
    radii = np.linalg.norm(vertices - 10, axis=1)
    assert abs(radii.mean() - 6.3) < 1.0 and radii.max() < 7.5


def _cases():
    _, myo, fib = ring_volume(6, 24)
    return [("real", myo, fib, (8.0, 1.5, 1.5)), ("synthetic", myo, np.zeros_like(fib), (8.0, 1.5, 1.5))]


def test_mesh_figure_traces_and_bundle():
    figure = figures.mesh_figure(_cases())
    names = [trace.name for trace in figure.data]
    assert names == ["real: myocardium", "real: fibrosis", "synthetic: myocardium"]
    assert all(isinstance(trace, go.Mesh3d) for trace in figure.data)
    assert figure.data[0].opacity < 1 and figure.data[1].opacity == 1
    assert figure.data[0].scene != figure.data[2].scene
    assert figure.layout.scene.aspectmode == "data" and figure.layout.scene2.aspectmode == "data"
    assert [a.text for a in figure.layout.annotations] == ["real", "synthetic"]

    bundle = figures.plotly_bundle(figure)
    assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html"}
    json.dumps(bundle["application/vnd.plotly.v1+json"])  # JSON-compatible
    assert len(bundle["application/vnd.plotly.v1+json"]["data"]) == 3
    html = bundle["text/html"]
    assert not re.search(r"<script[^>]*src=[\"']?https?:", html)
    assert 'class="plotly-graph-div"' in html and "<html" not in html


def test_mesh_figure_static_axes():
    figure = figures.mesh_figure_static(_cases())
    assert len(figure.axes) == 2 and all(axis.name == "3d" for axis in figure.axes)
    assert len(figure.axes[0].collections) == 2 and len(figure.axes[1].collections) == 1


def test_paper_table1_and_its_bold_cells():
    table = table1.PAPER_TABLE1
    assert table.loc["Volume", ("fibrosis", "N200")] == 0.524
    assert list(table.index) == ["Volume", "Bottom 25%", "Middle 50%", "Top 25%"]
    text = table1.table1_markdown(table)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines()[2:]}
    bold = {region: [i for i, cell in enumerate(cells) if cell.startswith("**")] for region, cells in rows.items()}
    # columns: fibrosis N=0, 100, 200, myocardium N=0, 100, 200
    assert bold["Volume"] == [2, 3, 4]  # fibrosis N=200; myocardium ties 0.815 at N=0 and N=100
    assert bold["Bottom 25%"] == [1, 3]
    assert bold["Middle 50%"] == [2, 4]
    assert bold["Top 25%"] == [2, 3]
    assert "Fibrosis N0" in text.splitlines()[0] and "Myocardium N200" in text.splitlines()[0]
    assert "±" not in text


def test_table1_markdown_std_nan_and_bold():
    columns = pd.MultiIndex.from_product(
        [("fibrosis", "myocardium"), (0, 100), ("mean", "std")], names=["structure", "n_synthetic", "stat"]
    )
    table = pd.DataFrame(
        [[0.5, 0.08, 0.6, 0.07, 0.9, 0.01, 0.8, 0.02], [np.nan, np.nan, 0.3, np.nan, 0.7, 0.05, 0.7, 0.05]],
        index=["Volume", "Top 25%"],
        columns=columns,
    )
    lines = table1.table1_markdown(table).splitlines()
    assert lines[0] == "| Region | Fibrosis N=0 | Fibrosis N=100 | Myocardium N=0 | Myocardium N=100 |"
    assert lines[2] == "| Volume | 0.500 ± 0.080 | **0.600 ± 0.070** | **0.900 ± 0.010** | 0.800 ± 0.020 |"
    assert lines[3] == "| Top 25% | – | **0.300** | **0.700 ± 0.050** | **0.700 ± 0.050** |"
    assert table1.table1_markdown(table, decimals=1).splitlines()[2].startswith("| Volume | 0.5 ± 0.1 |")


def test_plot_distributions_and_memorisation():
    rng = np.random.default_rng(2)
    real = pd.DataFrame({"wall_thickness_mm": rng.normal(9, 1, 40), "scar_burden_pct": rng.uniform(0, 30, 40)})
    synthetic = pd.DataFrame({"wall_thickness_mm": rng.normal(9.5, 1, 30), "scar_burden_pct": rng.uniform(0, 25, 30)})
    synthetic.loc[3, "scar_burden_pct"] = np.nan
    measures = {"wall_thickness_mm": "wall thickness (mm)", "scar_burden_pct": "scar burden (% of myocardium)"}
    figure = quality.plot_distributions({"real (training)": real, "synthetic": synthetic}, measures)
    assert len(figure.axes) == 2
    assert [axis.get_xlabel() for axis in figure.axes] == list(measures.values())
    assert len(figure.axes[1].lines) == 2  # one median line per table
    assert "n=29" in figure.axes[1].get_legend().get_texts()[1].get_text()

    audit = pd.DataFrame(
        {
            "kind": ["synthetic"] * 25 + ["real test"] * 10,
            "distance": np.r_[rng.uniform(1, 2, 25), rng.uniform(0.5, 2, 10)],
        }
    )
    memo = quality.plot_memorisation(audit, label="latent distance")
    assert len(memo.axes) == 1 and memo.axes[0].get_xlabel() == "latent distance"
    assert len(memo.axes[0].lines) == 2
    np.testing.assert_allclose(memo.axes[0].lines[0].get_xdata()[0], np.median(audit["distance"][:25]))


def test_plot_dice():
    rng = np.random.default_rng(3)
    rows = [
        {"n_synthetic": n, "region": region, "structure": structure, "dice": rng.uniform(0.2, 0.9)}
        for n in (0, 100, 200)
        for region in REGIONS
        for structure in ("fibrosis", "myocardium")
        for _ in range(5)
    ]
    per_case = pd.DataFrame(rows)
    per_case.loc[0, "dice"] = np.nan
    figure = table1.plot_dice(per_case)
    assert len(figure.axes) == 2
    assert [axis.get_title() for axis in figure.axes] == ["fibrosis", "myocardium"]
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == list(REGIONS)
    assert [t.get_text() for t in figure.axes[1].get_legend().get_texts()] == ["N0", "N100", "N200"]
    assert sum(len(c.get_offsets()) for c in figure.axes[0].collections) == 3 * 4 * 5 - 1


def test_figure1_draws_six_panels_with_the_given_slices_and_boxes_for_the_rest() -> None:
    image = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    ring = np.zeros((16, 16), bool)
    ring[4:12, 4:12] = True
    ring[6:10, 6:10] = False
    labels = [f"stage {i}" for i in range(6)]
    figure = figures.figure1(
        labels, real=None, synthetic=(image, ring, ring & (np.arange(16) < 8)), latent=np.arange(512.0)
    )
    axes = figure.axes
    assert len(axes) == 6 and [a.get_xlabel() for a in axes] == labels
    assert [len(a.images) for a in axes] == [0, 0, 1, 0, 1, 0]  # private real slice left out: a labelled box instead
    assert axes[0].texts and axes[0].texts[0].get_text() == "volume"
    with pytest.raises(ValueError, match="6 stage labels"):
        figures.figure1(labels[:5])


def test_plot_time_to_fidelity_draws_one_curve_per_network_and_the_target() -> None:
    curves = pd.DataFrame(
        {
            "network": ["paper"] * 3 + ["authors"] * 2,
            "seconds/volume": [10.0, 50.0, 100.0, 30.0, 300.0],
            "psnr_db min": [20.0, 28.0, 30.5, 6.0, 15.5],
        }
    )
    figure = figures.plot_time_to_fidelity(curves, psnr_target=30.0)
    axis = figure.axes[0]
    lines = {line.get_label(): line for line in axis.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"paper", "authors"}
    assert list(lines["authors"].get_ydata()) == [6.0, 15.5] and list(lines["paper"].get_xdata()) == [10, 50, 100]
    assert any(list(line.get_ydata()) == [30.0, 30.0] for line in axis.get_lines())  # the target
    assert axis.get_xscale() == "log"
    plt.close(figure)
