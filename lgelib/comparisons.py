"""Statistics for Table 1 over repeated splits: effects of an arm against the baseline, with uncertainty that
respects how the data was drawn.

One nnU-Net is trained per (split, arm), and the same real case recurs in the test sets of several splits. Rows
of the per-case table are therefore not independent: cases of one split share one model's noise, and one case's
scores in different splits share that case's difficulty. Pooling (split, case) rows as if independent (the
previous version of this module) gives intervals that are too narrow and p-values that are too small.

- **Cluster bootstrap** (:func:`cluster_bootstrap`): resample splits with replacement, then cases with
  replacement within each drawn split, and recompute the mean. Its percentile interval is the uncertainty of a
  mean or of a paired difference.
- **Split-level sign-flip test** (:func:`sign_flip_test`): the exact randomisation test on the per-split mean
  paired differences. Under "the arm changes nothing", each split's mean difference is as likely negative as
  positive. With S splits there are 2^S sign patterns, so the smallest attainable two-sided p is 2 / 2^S (0.25
  for 3 splits, 0.0625 for 5, below 0.05 only from 6): the test cannot claim more than the number of independently
  trained models supports, and :func:`compare_arms` prints that floor beside every p.
- **Holm** (:func:`holm`): step-down correction over every comparison in one table.
- **Minimum detectable effect** (:func:`minimum_detectable_effect`): the difference a two-sided test at 5% would
  detect with 80% power given the bootstrap standard error, (1.96 + 0.84) x SE.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

Z_ALPHA_TWO_SIDED_5 = 1.959963984540054
Z_POWER_80 = 0.8416212335729143


def read_per_case(path) -> pd.DataFrame:
    """A ``per_case_dice.csv`` written by the segmentation stage, with its types (case ids and arms as strings)."""
    return pd.read_csv(path, dtype={"case_id": str, "arm": str})


def _groups(values: np.ndarray, clusters: np.ndarray) -> list[np.ndarray]:
    """The finite values of each cluster, in sorted cluster order; clusters left with no value are dropped."""
    out = []
    for cluster in np.unique(clusters):
        group = values[(clusters == cluster) & np.isfinite(values)]
        if group.size:
            out.append(group)
    return out


def cluster_bootstrap(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence | np.ndarray,
    n_resamples: int = 4000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Two-stage bootstrap of the mean of ``values`` grouped by ``clusters`` (e.g. split seeds).

    Each resample draws as many clusters as there are, with replacement, and within each drawn cluster as many
    values as it holds, with replacement; the statistic is the mean of all values drawn. NaNs are dropped first.
    Returns mean (of the data), se (standard deviation of the resampled means), ci_low, ci_high (percentile
    interval), n (values) and n_clusters. With one cluster it is the ordinary bootstrap; with no value all NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    values = np.asarray(values, np.float64).ravel()
    clusters = np.asarray(clusters).ravel()
    if values.shape != clusters.shape:
        raise ValueError(f"values and clusters differ in length ({values.size} vs {clusters.size})")
    groups = _groups(values, clusters)
    n = int(sum(g.size for g in groups))
    if n == 0:
        return {"mean": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0, "n_clusters": 0}
    mean = float(np.mean(np.concatenate(groups)))
    rng = np.random.default_rng(seed)
    sums = np.zeros(n_resamples)
    counts = np.zeros(n_resamples)
    chosen = rng.integers(0, len(groups), size=(n_resamples, len(groups)))
    for index, group in enumerate(groups):
        # How often each resample drew this cluster, and one within-cluster resample per draw.
        times = (chosen == index).sum(axis=1)
        for k in np.unique(times[times > 0]):
            rows = np.flatnonzero(times == k)
            draws = group[rng.integers(0, group.size, size=(rows.size, int(k) * group.size))]
            sums[rows] += draws.sum(axis=1)
            counts[rows] += int(k) * group.size
    means = sums / counts
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {
        "mean": mean,
        "se": float(means.std(ddof=1)),
        "ci_low": float(low),
        "ci_high": float(high),
        "n": n,
        "n_clusters": len(groups),
    }


def sign_flip_test(cluster_means: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Exact two-sided sign-flip randomisation test that the cluster means are symmetric about 0.

    Returns (p, p_min): the share of the 2^S sign patterns whose mean is at least as far from 0 as the observed
    one, and the smallest p this number of clusters can give (2 / 2^S; 1 for a single cluster). NaNs are dropped;
    (nan, nan) with no cluster. All-zero differences give p = 1.
    """
    x = np.asarray(cluster_means, np.float64).ravel()
    x = x[np.isfinite(x)]
    s = x.size
    if s == 0:
        return float("nan"), float("nan")
    p_min = min(1.0, 2.0 / 2**s)
    observed = abs(x.mean())
    if observed == 0.0:
        return 1.0, p_min
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=s)))
    flipped = np.abs((signs * x).mean(axis=1))
    p = float(np.mean(flipped >= observed - 1e-12 * max(1.0, observed)))
    return p, p_min


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), NaNs kept as NaN and left out of the family."""
    p = np.asarray(p_values, np.float64).ravel()
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def minimum_detectable_effect(se: float) -> float:
    """Smallest true difference a two-sided 5% test detects with 80% power, for a standard error ``se``."""
    return float((Z_ALPHA_TWO_SIDED_5 + Z_POWER_80) * se)


def _scored(per_case: pd.DataFrame) -> pd.DataFrame:
    """Rows that enter Table 1: every myocardium row, and fibrosis rows whose region has reference scar."""
    if "scored" in per_case.columns:
        return per_case[per_case["scored"].astype(bool)]
    return per_case[np.isfinite(per_case["dice"].to_numpy(np.float64))]


def summarise_arms(per_case: pd.DataFrame, n_resamples: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Per arm, structure and region: mean Dice over the scored (split, case) rows with its cluster-bootstrap
    interval (clusters are split seeds). Columns: arm, structure, region, mean, se, ci_low, ci_high, n, n_clusters."""
    table = _scored(per_case)
    split = table["split_seed"] if "split_seed" in table.columns else pd.Series(0, index=table.index)
    rows = []
    for (arm, structure, region), group in table.groupby(["arm", "structure", "region"], sort=False):
        stats = cluster_bootstrap(group["dice"], split.loc[group.index], n_resamples=n_resamples, seed=seed)
        rows.append({"arm": arm, "structure": structure, "region": region, **stats})
    return pd.DataFrame(rows)


def paired_differences(per_case: pd.DataFrame, baseline: str, value: str = "dice") -> pd.DataFrame:
    """Per (structure, region, split_seed, case_id), each arm's ``value`` minus the baseline arm's, over the rows
    scored in both (the reference decides which rows are scored, so the set is the same for every arm)."""
    table = _scored(per_case)
    keys = ["structure", "region", "split_seed", "case_id"]
    if "split_seed" not in table.columns:
        table = table.assign(split_seed=0)
    wide = table.pivot_table(index=keys, columns="arm", values=value, aggfunc="first")
    if baseline not in wide.columns:
        raise ValueError(f"no results for the baseline arm {baseline!r} (arms: {sorted(wide.columns)})")
    differences = wide.drop(columns=baseline).sub(wide[baseline], axis=0)
    return (
        differences.reset_index()
        .melt(id_vars=keys, var_name="arm", value_name="difference")
        .dropna(subset=["difference"])
    )


def compare_arms(
    per_case: pd.DataFrame, baseline: str, n_resamples: int = 4000, seed: int = 0, value: str = "dice"
) -> pd.DataFrame:
    """Each arm against ``baseline`` on the same (split, case, region) rows: mean paired difference, its
    cluster-bootstrap interval and standard error, the minimum detectable effect, the split-level sign-flip p,
    its Holm-adjusted value over the whole table, and the smallest p the number of splits allows.

    Columns: structure, region, arm, difference, ci_low, ci_high, se, mde, n_pairs, n_splits, p, p_holm, p_min.
    """
    differences = paired_differences(per_case, baseline, value)
    rows = []
    for (structure, region, arm), group in differences.groupby(["structure", "region", "arm"], sort=False):
        stats = cluster_bootstrap(group["difference"], group["split_seed"], n_resamples=n_resamples, seed=seed)
        p, p_min = sign_flip_test(group.groupby("split_seed")["difference"].mean())
        rows.append(
            {
                "structure": structure,
                "region": region,
                "arm": arm,
                "difference": stats["mean"],
                "ci_low": stats["ci_low"],
                "ci_high": stats["ci_high"],
                "se": stats["se"],
                "mde": minimum_detectable_effect(stats["se"]),
                "n_pairs": stats["n"],
                "n_splits": stats["n_clusters"],
                "p": p,
                "p_min": p_min,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "structure",
            "region",
            "arm",
            "difference",
            "ci_low",
            "ci_high",
            "se",
            "mde",
            "n_pairs",
            "n_splits",
            "p",
            "p_min",
        ],
    )
    table.insert(table.columns.get_loc("p_min"), "p_holm", holm(table["p"].to_numpy()))
    return table


def false_scar(per_case: pd.DataFrame) -> pd.DataFrame:
    """Predicted scar volume (mL) on each test case without reference scar, per arm (and split): the false
    positives that a Dice over scar-positive cases does not see. Columns: arm, [split_seed,] case_id,
    false_scar_ml."""
    rows = per_case[
        (per_case["region"] == "Volume") & (per_case["structure"] == "fibrosis") & ~per_case["has_scar"].astype(bool)
    ]
    keys = [k for k in ("arm", "split_seed", "case_id") if k in rows.columns]
    return rows[keys + ["predicted_ml"]].rename(columns={"predicted_ml": "false_scar_ml"}).reset_index(drop=True)


def headline(per_case: pd.DataFrame) -> pd.DataFrame:
    """Per arm: Volume Dice of the myocardium (every test case) and of fibrosis (cases with reference scar), the
    mean false scar volume on scar-free cases, and the case counts behind each (over all splits)."""
    volume = _scored(per_case)
    volume = volume[volume["region"] == "Volume"]
    dice = volume.pivot_table(index="arm", columns="structure", values="dice", aggfunc="mean", sort=False)
    counts = volume.pivot_table(index="arm", columns="structure", values="dice", aggfunc="count", sort=False)
    table = pd.DataFrame(
        {
            "myocardium_dice": dice.get("myocardium"),
            "fibrosis_dice": dice.get("fibrosis"),
            "n_cases": counts.get("myocardium"),
            "n_scar_cases": counts.get("fibrosis"),
        }
    )
    false = false_scar(per_case).groupby("arm", sort=False)["false_scar_ml"]
    table["false_scar_ml"] = false.mean()
    table["n_scar_free"] = false.count()
    return table.reset_index()


LEARNED_FIBROSIS_DICE = 0.2
"""Below this Volume fibrosis Dice the real-only baseline has not learned scar, and no arm can be compared to it."""


def headline_per_split(per_case: pd.DataFrame) -> pd.DataFrame:
    """`headline` for each split on its own: one row per (split_seed, arm), so a reader sees how much one model per
    split moves between splits (the noise a single-split comparison hides)."""
    if "split_seed" not in per_case.columns:
        raise ValueError("per_case has no split_seed column: it is one split; use headline")
    frames = [headline(group).assign(split_seed=seed) for seed, group in per_case.groupby("split_seed", sort=True)]
    table = pd.concat(frames, ignore_index=True)
    return table[["split_seed", *[c for c in table.columns if c != "split_seed"]]]


def split_level_differences(per_split: pd.DataFrame, baseline: str = "N0") -> pd.DataFrame:
    """Each arm minus ``baseline``, split by split, from per-split Volume Dice (`headline_per_split`'s columns
    split_seed, arm, myocardium_dice, fibrosis_dice; grouped by ``budget`` too where that column exists).

    Each (split, arm) is one trained model, so the split is the unit of replication: this is the comparison that
    claims no more than the models trained. It needs no per-case rows, so it also reads a recorded per-split table.
    Per (budget,) arm and structure, over the splits that have both arms: the differences in split order, their
    mean, how many splits fall below and above 0, and the exact sign-flip p with its floor (`sign_flip_test`).
    """
    keys = ["budget"] if "budget" in per_split.columns else []
    columns = [
        *keys,
        "arm",
        "structure",
        "per_split",
        "mean_difference",
        "n_splits",
        "n_below",
        "n_above",
        "p",
        "p_min",
    ]
    rows = []
    for key, table in per_split.groupby(keys, sort=False) if keys else [((), per_split)]:
        base = table[table["arm"] == baseline].set_index("split_seed")
        for arm in [a for a in table["arm"].unique() if a != baseline]:
            other = table[table["arm"] == arm].set_index("split_seed")
            splits = sorted(set(base.index) & set(other.index))
            for structure in ("fibrosis", "myocardium"):
                column = f"{structure}_dice"
                differences = (other.loc[splits, column] - base.loc[splits, column]).dropna()
                p, p_min = sign_flip_test(differences.to_numpy())
                rows.append(
                    {
                        **dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                        "arm": arm,
                        "structure": structure,
                        "per_split": ", ".join(f"{int(s)}: {d:+.3f}" for s, d in differences.items()),
                        "mean_difference": float(differences.mean()) if len(differences) else float("nan"),
                        "n_splits": int(len(differences)),
                        "n_below": int((differences < 0).sum()),
                        "n_above": int((differences > 0).sum()),
                        "p": p,
                        "p_min": p_min,
                    }
                )
    return pd.DataFrame(rows, columns=columns)


def verdict(per_case: pd.DataFrame, baseline: str = "N0", n_resamples: int = 2000) -> str:
    """One sentence on what a run's Table 1 shows about synthetic volumes and why: the largest uniform synthetic
    arm's paired change of Volume fibrosis Dice (cases with scar) against the baseline, its interval, the
    real-duplicate control beside it, and whether the design could detect anything (an unlearned baseline, the
    smallest p the number of splits allows, the minimum detectable effect)."""
    numbers = headline(per_case).set_index("arm")
    n_splits = int(per_case["split_seed"].nunique()) if "split_seed" in per_case.columns else 1
    n_scar = (
        int(numbers.loc[baseline, "n_scar_cases"])
        if baseline in numbers.index and pd.notna(numbers.loc[baseline, "n_scar_cases"])
        else 0
    )
    design = (
        f"1 split ({n_scar} test cases with scar)"
        if n_splits == 1
        else f"{n_splits} splits ({n_scar} test case-split pairs with scar)"
    )
    base = float(numbers.loc[baseline, "fibrosis_dice"]) if baseline in numbers.index else float("nan")
    if n_scar == 0:
        return f"No test case has scar ({design}), so this run cannot measure fibrosis segmentation."
    if not base >= LEARNED_FIBROSIS_DICE:
        return (
            f"The real-only baseline has not learned scar (Volume fibrosis Dice {base:.2f} on {design}), so this "
            "run cannot say whether synthetic volumes help: a larger nnU-Net budget is needed first."
        )
    synthetic = [a for a in numbers.index if re.fullmatch(r"N\d+", a) and a != baseline]
    if not synthetic:
        return f"Only the baseline ran (Volume fibrosis Dice {base:.3f} on {design}): nothing to compare."
    arm = max(synthetic, key=lambda a: int(a[1:]))
    table = compare_arms(per_case, baseline, n_resamples=n_resamples).set_index(["structure", "region", "arm"])
    row = table.loc[("fibrosis", "Volume", arm)]
    control_arm = "D" + arm[1:]
    control = (
        f" (the control, {control_arm}: as many duplicates of real cases, "
        f"{table.loc[('fibrosis', 'Volume', control_arm), 'difference']:+.3f})"
        if ("fibrosis", "Volume", control_arm) in table.index
        else ""
    )
    seeds = [a for a in numbers.index if re.fullmatch(rf"{re.escape(baseline)}-seed\d+", a)]
    control += "".join(
        f" (the seed control, {seed}: {baseline} retrained with another seed, "
        f"{table.loc[('fibrosis', 'Volume', seed), 'difference']:+.3f})"
        for seed in seeds
        if ("fibrosis", "Volume", seed) in table.index
    )
    change = (
        f"{arm} changed Volume fibrosis Dice by {row.difference:+.3f} (95% CI {row.ci_low:+.3f} to "
        f"{row.ci_high:+.3f}) against {baseline}'s {base:.3f}{control}"
    )
    if row.p_holm < 0.05 and (row.ci_low > 0 or row.ci_high < 0):
        direction = "helped" if row.difference > 0 else "hurt"
        return f"On {design}, {change}: synthetic volumes {direction} (Holm-adjusted p = {row.p_holm:.3f})."
    if n_splits == 1:
        return (
            f"On {design}, {change}; one split trains one model per arm, so the interval covers the choice of "
            "test cases but not retraining, and no effect can be claimed (repeat the experiment over splits)."
        )
    reason = (
        f"with {n_splits} splits no p-value can fall below {row.p_min:.2f}"
        if row.p_min >= 0.05
        else f"Holm-adjusted p = {row.p_holm:.2f}"
    )
    return (
        f"On {design}, {change}; this is not a claimable effect ({reason}; the smallest effect this design "
        f"detects is about {row.mde:.2f} Dice)."
    )
