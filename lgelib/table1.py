"""Table 1 of the paper, end to end: the slice regions, regional Dice per test case, the table of means and
standard deviations per arm, its markdown beside the paper's numbers, the per-case plot and the arm comparisons."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lgelib.figures import grouped_boxes
from lgelib.metrics import check_same_shape, dice, require_columns


REGIONS = ("Volume", "Bottom 25%", "Middle 50%", "Top 25%")


STRUCTURES = ("myocardium", "fibrosis")


def slice_regions(n_slices: int) -> dict[str, np.ndarray]:
    """Split the n myocardial slices (ordered base to apex) into the paper's basal, middle and apical regions.

    The basal k and apical k slices form "Bottom 25%" and "Top 25%", the rest "Middle 50%", with
    k = floor(n/4 + 1/2) (25% rounded half up). Returns positions 0..n-1 into the list of myocardial slices.

    ====  ======  ======  ===
    n     Bottom  Middle  Top
    ====  ======  ======  ===
    0     0       0       0
    1     0       1       0
    2     1       0       1
    6     2       2       2
    7     2       3       2
    8     2       4       2
    9     2       5       2
    10    3       4       3
    11    3       5       3
    12    3       6       3
    13    3       7       3
    ====  ======  ======  ===
    """
    if isinstance(n_slices, bool) or int(n_slices) != n_slices or n_slices < 0:
        raise ValueError(f"n_slices must be a non-negative integer, got {n_slices!r}")
    n = int(n_slices)
    k = (n + 2) // 4  # == floor(n / 4 + 1 / 2) in exact integer arithmetic
    positions = np.arange(n)
    return {
        "Bottom 25%": positions[:k],
        "Middle 50%": positions[k : n - k],
        "Top 25%": positions[n - k :],
    }


def regional_dice(
    reference_myocardium: np.ndarray,
    reference_fibrosis: np.ndarray,
    predicted_myocardium: np.ndarray,
    predicted_fibrosis: np.ndarray,
    empty_score: float = float("nan"),
) -> pd.DataFrame:
    """Dice of myocardium and fibrosis for one case, over the volume and the basal/middle/apical regions.

    Volumes are (slices, rows, cols) with slice 0 the most basal. "Myocardium" is the whole myocardium including
    scar (myocardium | fibrosis). The regions split the slices that contain reference myocardium (see
    ``slice_regions``); slices outside that range only count in "Volume". Each region's Dice pools all voxels of its
    slices (one Dice per region, not a mean of per-slice Dice). Where reference and prediction are both empty the
    row is flagged ``empty`` and scored ``empty_score`` (NaN by default, i.e. left out of means); a region with no
    slices is NaN and empty with ``n_slices`` 0.
    Columns: region, structure, dice, empty, n_slices, reference_voxels, predicted_voxels (the structure's voxels
    in the region).
    """
    arrays = {
        "reference_myocardium": np.asarray(reference_myocardium),
        "reference_fibrosis": np.asarray(reference_fibrosis),
        "predicted_myocardium": np.asarray(predicted_myocardium),
        "predicted_fibrosis": np.asarray(predicted_fibrosis),
    }
    check_same_shape(arrays, ndim=3)
    ref_fib = arrays["reference_fibrosis"].astype(bool)
    pred_fib = arrays["predicted_fibrosis"].astype(bool)
    reference = {"myocardium": arrays["reference_myocardium"].astype(bool) | ref_fib, "fibrosis": ref_fib}
    predicted = {"myocardium": arrays["predicted_myocardium"].astype(bool) | pred_fib, "fibrosis": pred_fib}

    myocardial_slices = np.flatnonzero(reference["myocardium"].any(axis=(1, 2)))
    slices = {"Volume": np.arange(reference["myocardium"].shape[0])}
    slices.update({name: myocardial_slices[pos] for name, pos in slice_regions(len(myocardial_slices)).items()})

    rows = []
    for region in REGIONS:
        index = slices[region]
        for structure in STRUCTURES:
            if len(index) == 0:
                rows.append((region, structure, float("nan"), True, 0, 0, 0))
                continue
            ref, pred = reference[structure][index], predicted[structure][index]
            empty = not ref.any() and not pred.any()
            score = float(empty_score) if empty else dice(pred, ref)
            rows.append((region, structure, score, empty, len(index), int(ref.sum()), int(pred.sum())))
    return pd.DataFrame(
        rows, columns=["region", "structure", "dice", "empty", "n_slices", "reference_voxels", "predicted_voxels"]
    )


def arm_labels(per_case: pd.DataFrame) -> pd.Series:
    """Each row's arm name: the ``arm`` column, or ``N<n_synthetic>`` for tables written before arms existed."""
    if "arm" in per_case.columns:
        return per_case["arm"].astype(str)
    return "N" + per_case["n_synthetic"].astype(int).astype(str)


def arm_order(arms) -> list[str]:
    """Arm names in the book's order: synthetic, then targeted, its proportional control, duplicates, phantom;
    uniform before balanced, then by N, each arm's seed controls right after it (N0, N0-seed1, N100, N200,
    N100-balanced, N200-balanced, T100, C100, D200, P200); unknown names last, as given."""

    def key(name: str) -> tuple:
        match = re.match(r"^([NTCDP])(\d+)(-balanced)?(?:-seed(\d+))?$", name)
        if match is None:
            return (5, 0, 0, 0)
        return ("NTCDP".index(match[1]), int(bool(match[3])), int(match[2]), int(match[4] or 0))

    return sorted(dict.fromkeys(str(a) for a in arms), key=key)


def table1(per_case: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of Dice in the paper's Table 1 layout: rows REGIONS, columns (structure: fibrosis then
    myocardium, arms in `arm_order`, stat: mean then std). All scored rows of a group (cases and split
    seeds) are pooled: with a ``scored`` column only those (fibrosis where the region has reference scar), else the
    non-NaN scores."""
    require_columns(per_case, ["region", "structure", "dice"])
    arms = arm_labels(per_case)
    rows = per_case.assign(arm=arms)
    if "scored" in rows.columns:
        rows = rows[rows["scored"].astype(bool)]
    stats = rows.groupby(["region", "structure", "arm"])["dice"].agg(["mean", "std"])
    columns = pd.MultiIndex.from_product(
        [("fibrosis", "myocardium"), arm_order(arms), ("mean", "std")], names=["structure", "arm", "stat"]
    )
    table = pd.DataFrame(np.nan, index=pd.Index(REGIONS, name="region"), columns=columns)
    for (region, structure, arm), row in stats.iterrows():
        if region in REGIONS and structure in ("fibrosis", "myocardium"):
            table.loc[region, (structure, arm, "mean")] = row["mean"]
            table.loc[region, (structure, arm, "std")] = row["std"]
    return table


# Table 1 of the paper: mean Dice of nnU-Net on unseen real volumes, trained with N synthetic volumes added.
# The paper gives a std only for fibrosis Volume: 0.08 at N=0 and 0.07 at N=200.
PAPER_TABLE1 = pd.DataFrame(
    [
        [0.509, 0.515, 0.524, 0.815, 0.815, 0.811],
        [0.195, 0.202, 0.198, 0.560, 0.543, 0.523],
        [0.549, 0.549, 0.554, 0.833, 0.834, 0.832],
        [0.370, 0.390, 0.405, 0.784, 0.781, 0.779],
    ],
    index=pd.Index(REGIONS, name="region"),
    columns=pd.MultiIndex.from_product(
        [("fibrosis", "myocardium"), ("N0", "N100", "N200")], names=["structure", "arm"]
    ),
)


def _arm_label(arm: object) -> str:
    return f"N={arm}" if isinstance(arm, (int, np.integer)) else str(arm)


def table1_markdown(table: pd.DataFrame, decimals: int = 3) -> str:
    """A Table-1 layout (index regions; columns (structure, arm[, stat]) with stat "mean"/"std") as a markdown
    table in the paper's layout, "mean ± std" cells, the best mean per structure and region in bold. Arms keep
    their order; a numeric arm n is shown as N=n.

    Means are compared as shown (rounded to ``decimals``), so displayed ties are all bold; NaN shows as "–"."""
    has_stat = table.columns.nlevels == 3
    structures = list(dict.fromkeys(table.columns.get_level_values(0)))
    columns = [
        (structure, n) for structure in structures for n in dict.fromkeys(table[structure].columns.get_level_values(0))
    ]

    def value(region, structure, n, stat):
        key = (structure, n, stat) if has_stat else (structure, n)
        if not has_stat and stat == "std":
            return np.nan
        return float(table.loc[region, key]) if key in table.columns else np.nan

    lines = [
        "| Region | " + " | ".join(f"{s.capitalize()} {_arm_label(n)}" for s, n in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
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


def plot_dice(per_case: pd.DataFrame) -> Figure:
    """The per-case spread behind Table 1: Dice per region for fibrosis and myocardium, one box (with every case
    as a point) per arm, over the scored rows (fibrosis: regions with reference scar)."""
    regions = list(REGIONS) + [r for r in pd.unique(per_case["region"]) if r not in REGIONS]
    figure, axes = plt.subplots(2, 1, figsize=(7.2, 6.0), sharey=True)
    for axis, structure in zip(axes, ("fibrosis", "myocardium")):
        rows = per_case.assign(arm=arm_labels(per_case))
        if "scored" in rows.columns:
            rows = rows[rows["scored"].astype(bool)]
        rows = rows[rows["structure"] == structure]
        sets = {
            arm: {region: group.loc[group["region"] == region, "dice"].to_numpy(dtype=float) for region in regions}
            for arm, group in sorted(rows.groupby("arm"), key=lambda item: arm_order(rows["arm"]).index(item[0]))
        }
        grouped_boxes(axis, regions, sets, points=True)
        axis.set_title(structure, fontsize=9)
        axis.set_ylim(0, 1)
    for axis in axes:
        axis.set_ylabel("Dice")
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
    lines = [
        "| Structure | Region | Arm | Arm − N0 | 95% CI | MDE | p | p (Holm) | smallest p | pairs / splits |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    f = f".{decimals}f"
    for _, row in rows.iterrows():
        lines.append(
            f"| {row.structure} | {row.region} | {row.arm} | {row.difference:+{f}} | [{row.ci_low:+{f}}, "
            f"{row.ci_high:+{f}}] | {row.mde:{f}} | {row.p:.2f} | {row.p_holm:.2f} | {row.p_min:.2f} | "
            f"{int(row.n_pairs)} / {int(row.n_splits)} |"
        )
    return "\n".join(lines)


RECORDED = {
    "table1_emidec_arms.csv": "Volume Dice per split on EMIDEC-derived (myocardium / fibrosis), by nnU-Net budget",
    "table1_emidec_differences.csv": "Each arm minus N0 on EMIDEC-derived, Volume Dice, paired over the test cases "
    "of the splits named (cluster bootstrap)",
}
"""Table 1 measured on EMIDEC-derived with ``lgelib experiment`` and kept in ``benchmarks/results/`` (file ->
title in chapter 06): per (budget, split, arm) Volume Dice, and each arm's paired difference from N0 over the splits
whose per-case rows are on file (``splits``)."""

RECORDED_PER_CASE = "table1_emidec_per_case.csv"
"""The per-case rows behind the recorded tables (`benchmarks/record_table1.py`), so that they can be analysed again."""

SPLIT_LEVEL_TITLE = "Each arm minus N0 on EMIDEC-derived, split by split (Volume Dice; one model per split)"


def recorded_real_table1(folder=None) -> dict[str, pd.DataFrame]:
    """The recorded EMIDEC-derived Table 1 (:data:`RECORDED`) that exists in ``folder`` (default: the repository's
    ``benchmarks/results``), shaped for reading, by title; empty where the benchmarks are not at hand.

    Per split: one row per (budget, arm), one column per split seed holding "myocardium / fibrosis" Volume Dice,
    and the mean of those per-split values. Split by split (:data:`SPLIT_LEVEL_TITLE`, from the per-split table):
    each arm's difference from N0 in every split, their mean, how many splits fall below / above 0 and the
    sign-flip p (`lgelib.comparisons.split_level_differences`). Differences: Volume rows only, by (budget, splits,
    arm, structure)."""
    from lgelib.conditioning import read_recorded

    tables = {}
    for title, table in read_recorded(RECORDED, folder).items():
        if "split_seed" in table.columns:
            tables[title] = _arms_in_order(_per_split_cells(table), table["arm"])
            tables[SPLIT_LEVEL_TITLE] = _arms_in_order(_split_level_cells(table), table["arm"])
        else:
            volume = table[table["region"] == "Volume"]
            if "splits" in volume.columns:  # "0,1" reads back as text, a single split "2" as a number
                volume = volume.assign(splits=[cell_text(v) or "not named" for v in volume["splits"]])
            index = ["budget", *(["splits"] if "splits" in volume.columns else []), "arm", "structure"]
            shaped = volume[[*index, "difference", "ci_low", "ci_high", "p"]].round(3).set_index(index)
            tables[title] = _arms_in_order(shaped, table["arm"])
    return tables


def cell_text(value) -> str:
    """A recorded table's key cell as text, however CSV typed it: a split read back as 2 or 2.0 is "2", "0,1" stays
    "0,1", an empty cell is "". Recorded rows are matched and shown by these keys."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if pd.isna(value) else str(value)


def _per_split_cells(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (budget, arm), one "myocardium / fibrosis" column per split, and the mean of the splits."""
    cells = table.assign(
        value=[f"{m:.3f} / {f:.3f}" for m, f in zip(table.myocardium_dice, table.fibrosis_dice)],
        split=[f"split {int(s)}" for s in table.split_seed],
    )
    shaped = cells.pivot(index=["budget", "arm"], columns="split", values="value").fillna("not run")
    means = table.groupby(["budget", "arm"])[["myocardium_dice", "fibrosis_dice"]].mean()
    shaped["mean of the splits"] = pd.Series(  # aligned on (budget, arm)
        [f"{m:.3f} / {f:.3f}" for m, f in zip(means.myocardium_dice, means.fibrosis_dice)], index=means.index
    )
    return shaped


def _split_level_cells(table: pd.DataFrame) -> pd.DataFrame:
    """`lgelib.comparisons.split_level_differences` of a per-split table, as short text cells."""
    from lgelib.comparisons import split_level_differences

    levels = split_level_differences(table)
    shaped = pd.DataFrame(
        {
            "per split": levels["per_split"],
            "mean": levels["mean_difference"].round(3),
            "below / above 0": [f"{b} / {a}" for b, a in zip(levels.n_below, levels.n_above)],
            "p (floor)": [f"{p:.2f} ({f:.2f})" for p, f in zip(levels.p, levels.p_min)],
        }
    )
    return shaped.set_index(pd.MultiIndex.from_frame(levels[["budget", "arm", "structure"]]))


def _arms_in_order(shaped: pd.DataFrame, arms) -> pd.DataFrame:
    """``shaped`` sorted by its index, the arm level in `arm_order` (N0 first, synthetic arms, then controls)."""
    order = {arm: i for i, arm in enumerate(arm_order(arms))}
    return shaped.sort_index(key=lambda index: index.map(order) if index.name == "arm" else index)
