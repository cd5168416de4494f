"""Statistics of Table 1 on known inputs: the cluster bootstrap, the split-level sign-flip test, Holm, and the
paired comparison of arms on the same scored rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lgelib.comparisons import (
    cluster_bootstrap,
    compare_arms,
    false_scar,
    headline,
    headline_per_split,
    holm,
    minimum_detectable_effect,
    sign_flip_test,
)


def test_holm_on_a_hand_worked_family() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    adjusted = holm([0.02, np.nan, 0.04])  # NaN stays out of the family: m = 2
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.04, 0.04])


def test_sign_flip_test_is_exact_and_reports_its_floor() -> None:
    assert sign_flip_test([0.1, 0.2, 0.3]) == (pytest.approx(2 / 8), pytest.approx(2 / 8))
    # [0.1, -0.2, 0.3]: |mean| 0.0667; of the 8 sign patterns, |sum| >= 0.2 for sums 0.6, 0.2, -0.2, -0.6, 0.4, -0.4
    p, p_min = sign_flip_test([0.1, -0.2, 0.3])
    assert p == pytest.approx(6 / 8) and p_min == pytest.approx(0.25)
    assert sign_flip_test([0.0, 0.0]) == (1.0, 0.5)
    assert sign_flip_test([0.4])[1] == 1.0  # one split can never reject
    assert sign_flip_test([0.1] * 6)[0] == pytest.approx(2 / 64)  # six splits: the first count below 0.05
    assert np.isnan(sign_flip_test([])[0])


def test_cluster_bootstrap_widens_when_clusters_disagree() -> None:
    rng = np.random.default_rng(0)
    within = rng.normal(0, 0.05, size=(3, 20))
    shared = within + np.array([[0.0], [0.0], [0.0]])
    shifted = within + np.array([[-0.3], [0.0], [0.3]])  # one model per split: a split-wide offset
    clusters = np.repeat([0, 1, 2], 20)
    calm = cluster_bootstrap(shared.ravel(), clusters, seed=1)
    noisy = cluster_bootstrap(shifted.ravel(), clusters, seed=1)
    assert calm["n"] == noisy["n"] == 60 and noisy["n_clusters"] == 3
    assert noisy["mean"] == pytest.approx(shifted.mean())
    # the (split, case) rows pooled as independent would give the same SE in both; the cluster bootstrap does not
    naive_se = shifted.std(ddof=1) / np.sqrt(60)
    assert noisy["se"] > 3 * naive_se and noisy["se"] > 3 * calm["se"]
    assert noisy["ci_low"] < shifted.mean() < noisy["ci_high"]
    assert minimum_detectable_effect(noisy["se"]) == pytest.approx(2.8016 * noisy["se"], rel=1e-3)


def test_cluster_bootstrap_edge_cases() -> None:
    constant = cluster_bootstrap([0.5, 0.5, 0.5, 0.5], [0, 0, 1, 1])
    assert constant["ci_low"] == constant["ci_high"] == pytest.approx(0.5) and constant["se"] == 0
    empty = cluster_bootstrap([np.nan, np.nan], [0, 1])
    assert empty["n"] == 0 and np.isnan(empty["mean"])
    with pytest.raises(ValueError, match="differ in length"):
        cluster_bootstrap([0.1, 0.2], [0])


def _per_case() -> pd.DataFrame:
    """Two splits x three cases; arm N100 is +0.1 on every scored fibrosis row, D100 identical to N0."""
    rows = []
    for split in (0, 1):
        for case, scar in (("a", True), ("b", True), ("c", False)):
            base = 0.4 + 0.1 * split + (0.05 if case == "b" else 0.0)
            for arm, shift in (("N0", 0.0), ("N100", 0.1), ("D100", 0.0)):
                rows.append(
                    {
                        "split_seed": split,
                        "case_id": case,
                        "arm": arm,
                        "region": "Volume",
                        "structure": "fibrosis",
                        "dice": (base + shift) if scar else 0.0,
                        "scored": scar,
                        "has_scar": scar,
                        "predicted_ml": 0.0 if scar else {"N0": 1.0, "N100": 3.0, "D100": 1.0}[arm],
                    }
                )
                rows.append(
                    {
                        "split_seed": split,
                        "case_id": case,
                        "arm": arm,
                        "region": "Volume",
                        "structure": "myocardium",
                        "dice": 0.8,
                        "scored": True,
                        "has_scar": scar,
                        "predicted_ml": 100.0,
                    }
                )
    return pd.DataFrame(rows)


def test_compare_arms_pairs_the_same_rows_and_corrects_for_the_family() -> None:
    table = compare_arms(_per_case(), "N0", n_resamples=500).set_index(["structure", "arm"])
    gain = table.loc[("fibrosis", "N100")]
    assert gain["difference"] == pytest.approx(0.1) and gain["n_pairs"] == 4 and gain["n_splits"] == 2
    assert gain["ci_low"] == pytest.approx(0.1) and gain["ci_high"] == pytest.approx(0.1)
    assert gain["p"] == pytest.approx(0.5) and gain["p_min"] == pytest.approx(0.5)  # 2 splits: p >= 0.5
    control = table.loc[("fibrosis", "D100")]
    assert control["difference"] == 0 and control["p"] == 1.0
    assert (table["p_holm"] >= table["p"]).all()


def test_false_scar_and_headline_count_scar_free_cases_apart() -> None:
    per_case = _per_case()
    false = false_scar(per_case)
    assert set(false.case_id) == {"c"} and len(false) == 6
    numbers = headline(per_case).set_index("arm")
    assert numbers.loc["N100", "false_scar_ml"] == pytest.approx(3.0)
    assert numbers.loc["N0", "n_scar_cases"] == 4 and numbers.loc["N0", "n_scar_free"] == 2
    assert numbers.loc["N0", "fibrosis_dice"] == pytest.approx(np.mean([0.4, 0.45, 0.5, 0.55]))


def test_headline_per_split_scores_each_split_on_its_own() -> None:
    per_split = headline_per_split(_per_case()).set_index(["split_seed", "arm"])
    assert per_split.loc[(0, "N0"), "fibrosis_dice"] == pytest.approx(np.mean([0.4, 0.45]))
    assert per_split.loc[(1, "N100"), "fibrosis_dice"] == pytest.approx(np.mean([0.6, 0.65]))
    assert per_split.loc[(1, "N0"), "n_scar_cases"] == 2 and per_split.loc[(1, "N0"), "n_scar_free"] == 1
    assert len(per_split) == 6  # 2 splits x 3 arms
    with pytest.raises(ValueError, match="no split_seed"):
        headline_per_split(_per_case().drop(columns="split_seed"))


def test_verdict_says_what_the_design_can_show() -> None:
    from lgelib.comparisons import verdict

    per_case = _per_case()
    per_case.loc[per_case.arm == "D100", "arm"] = "D100"
    text = verdict(per_case)
    assert text.startswith(
        "On 2 splits (4 test case-split pairs with scar), N100 changed Volume fibrosis Dice by +0.100"
    )
    assert "(the control, D100: as many duplicates of real cases, +0.000)" in text
    assert "no p-value can fall below 0.50" in text  # two splits cannot reject at 5%
    unlearned = per_case.assign(dice=per_case.dice.where(per_case.structure != "fibrosis", 0.05))
    assert verdict(unlearned).startswith("The real-only baseline has not learned scar")

    one_split = per_case[per_case.split_seed == 0]
    assert "one split trains one model per arm" in verdict(one_split)

    seed_control = per_case[per_case.arm == "N0"].assign(arm="N0-seed1")
    seed_control.loc[seed_control.structure == "fibrosis", "dice"] = 0.0  # retrained: learned no scar
    with_seed = verdict(pd.concat([per_case, seed_control], ignore_index=True))
    assert "(the seed control, N0-seed1: N0 retrained with another seed, -0.475)" in with_seed  # all N0 scar lost


def test_comparisons_markdown_names_each_arm() -> None:
    from lgelib.table1 import comparisons_markdown

    lines = comparisons_markdown(compare_arms(_per_case(), "N0", n_resamples=200)).splitlines()
    assert "| Arm | Arm − N0 |" in lines[0]
    rows = [line.split(" | ") for line in lines[2:]]
    assert [r[2] for r in rows if r[0] == "| fibrosis"] == ["N100", "D100"]  # arm order: synthetic, then control
    assert all(r[-2] == "0.50" for r in rows)  # two splits: p >= 0.5


def test_recorded_real_table1_is_shaped_per_split_and_skips_missing_files(tmp_path) -> None:
    from lgelib.table1 import RECORDED, recorded_real_table1

    assert recorded_real_table1(tmp_path) == {}  # nothing recorded here: the chapter shows nothing
    arms = pd.DataFrame(
        {
            "budget": ["real-cpu-long"] * 4 + ["real-cpu"],
            "split_seed": [0, 0, 1, 1, 0],
            "arm": ["N100-balanced", "N0", "N0", "N100-balanced", "N0"],
            "myocardium_dice": [0.70, 0.80, 0.60, 0.50, 0.70],
            "fibrosis_dice": [0.30, 0.40, 0.20, 0.10, 0.20],
        }
    )
    arms.to_csv(tmp_path / "table1_emidec_arms.csv", index=False)
    per_split = recorded_real_table1(tmp_path)[RECORDED["table1_emidec_arms.csv"]]
    assert list(per_split.loc["real-cpu-long"].index) == ["N0", "N100-balanced"]  # N0 first
    assert per_split.loc[("real-cpu", "N0"), "split 1"] == "not run"  # a split one budget did not measure
    assert per_split.loc[("real-cpu-long", "N0"), "split 0"] == "0.800 / 0.400"
    assert per_split.loc[("real-cpu-long", "N100-balanced"), "mean of the splits"] == "0.600 / 0.200"
    differences = pd.DataFrame(
        {
            "budget": ["real-cpu-long"] * 2,
            "arm": ["N100-balanced"] * 2,
            "structure": ["fibrosis"] * 2,
            "region": ["Volume", "Top 25%"],
            "difference": [-0.1234, 0.5],
            "ci_low": [-0.2, 0.1],
            "ci_high": [0.0, 0.9],
            "mde": [0.1, 0.2],
            "p": [0.25, 0.25],
            "p_min": [0.25, 0.25],
            "n_pairs": [31, 20],
        }
    )
    differences.to_csv(tmp_path / "table1_emidec_differences.csv", index=False)
    volume = recorded_real_table1(tmp_path)[RECORDED["table1_emidec_differences.csv"]]
    assert len(volume) == 1 and volume["difference"].iloc[0] == -0.123  # Volume rows only, rounded


def test_split_level_differences_take_one_value_per_split_and_the_sign_flip_p() -> None:
    from lgelib.comparisons import split_level_differences

    per_split = pd.DataFrame(
        {
            "budget": ["long"] * 6,
            "split_seed": [0, 0, 1, 1, 2, 2],
            "arm": ["N0", "N100", "N0", "N100", "N100", "N0"],
            "myocardium_dice": [0.80, 0.70, 0.70, 0.72, 0.60, 0.66],
            "fibrosis_dice": [0.40, 0.30, 0.30, 0.20, 0.25, 0.35],
        }
    )
    table = split_level_differences(per_split).set_index("structure")
    fibrosis, myocardium = table.loc["fibrosis"], table.loc["myocardium"]
    assert fibrosis.per_split == "0: -0.100, 1: -0.100, 2: -0.100"
    assert fibrosis.mean_difference == pytest.approx(-0.1) and (fibrosis.n_below, fibrosis.n_above) == (3, 0)
    assert fibrosis.p == pytest.approx(0.25) and fibrosis.p_min == pytest.approx(0.25)  # 2 of 8 sign patterns
    assert (myocardium.n_below, myocardium.n_above) == (2, 1)
    assert myocardium.mean_difference == pytest.approx((-0.10 + 0.02 - 0.06) / 3)
    assert myocardium.p == pytest.approx(0.5)  # 4 of the 8 sign patterns reach |mean| >= 0.047
    # a split one arm lacks is left out, not filled
    partial = split_level_differences(per_split[~((per_split.arm == "N100") & (per_split.split_seed == 2))])
    assert set(partial.n_splits) == {2}


def _write_experiment(folder, splits, arms=("N0", "N100", "D100")) -> pd.DataFrame:
    """An experiment folder whose splits each hold `_per_case`'s split 0 (N100 +0.1 fibrosis Dice on 2 cases)."""
    folder.mkdir(parents=True, exist_ok=True)
    one_split = _per_case().query("split_seed == 0 and arm in @arms")
    table = pd.concat([one_split.assign(split_seed=split) for split in splits], ignore_index=True)
    table.assign(reference_ml=50.0).to_csv(folder / "per_case_dice.csv", index=False)
    return table


def test_record_table1_adds_splits_to_what_is_on_file_and_keeps_the_per_case_rows(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from lgelib.table1 import RECORDED, RECORDED_PER_CASE, SPLIT_LEVEL_TITLE, recorded_real_table1

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "record_table1.py"
    results = tmp_path / "results"

    def record(experiment) -> str:
        command = [sys.executable, str(script), str(experiment), "--budget", "real-cpu-long", "--results", str(results)]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    one_split = len(_write_experiment(tmp_path / "first", [0, 1])) // 2
    record(tmp_path / "first")
    _write_experiment(tmp_path / "second", [2])
    record(tmp_path / "second")
    arms = pd.read_csv(results / "table1_emidec_arms.csv")
    assert sorted(arms.split_seed.unique()) == [0, 1, 2] and set(arms.arm) == {"N0", "N100", "D100"}
    per_case = pd.read_csv(results / RECORDED_PER_CASE)
    assert sorted(per_case.split_seed.unique()) == [0, 1, 2] and len(per_case) == 3 * one_split
    assert "reference_ml" not in per_case.columns  # each patient's reference volumes are not published
    differences = pd.read_csv(results / "table1_emidec_differences.csv", dtype={"splits": str})
    assert set(differences.splits) == {"0,1,2"}  # the first recording's rows over "0,1" are superseded
    latest = differences[differences.region == "Volume"].set_index(["structure", "arm"])
    assert latest.loc[("fibrosis", "N100"), "n_splits"] == 3 and latest.loc[("fibrosis", "N100"), "n_pairs"] == 6
    assert latest.loc[("fibrosis", "N100"), "difference"] == pytest.approx(0.1)

    # recording a split again replaces its rows instead of adding them twice, even in a fresh folder where a single
    # split's "splits" cell reads back from CSV as a number
    for _ in range(2):
        record(tmp_path / "second")
    assert len(pd.read_csv(results / RECORDED_PER_CASE)) == 3 * one_split
    assert len(pd.read_csv(results / "table1_emidec_arms.csv")) == len(arms)
    assert len(pd.read_csv(results / "table1_emidec_differences.csv")) == len(differences)
    single = tmp_path / "single"
    for _ in range(2):
        subprocess.run(
            [sys.executable, str(script), str(tmp_path / "second"), "--budget", "real-cpu", "--results", str(single)],
            check=True,
            capture_output=True,
        )
    single_differences = pd.read_csv(single / "table1_emidec_differences.csv")
    assert len(single_differences) == len(single_differences.drop_duplicates(["structure", "region", "arm"]))
    # an experiment holding only some arms of a split replaces those and keeps the split's other arms
    _write_experiment(tmp_path / "third", [0], arms=("N0", "N100"))
    record(tmp_path / "third")
    arms_now = pd.read_csv(results / "table1_emidec_arms.csv")
    assert len(arms_now) == len(arms) and set(arms_now.query("split_seed == 0").arm) == {"N0", "N100", "D100"}

    # the chapter's split-by-split view of what is on file: N100 above N0 in all three splits
    shown = recorded_real_table1(results)[SPLIT_LEVEL_TITLE]
    assert shown.loc[("real-cpu-long", "N100", "fibrosis"), "below / above 0"] == "0 / 3"
    assert shown.loc[("real-cpu-long", "N100", "fibrosis"), "p (floor)"] == "0.25 (0.25)"
    paired = recorded_real_table1(results)[RECORDED["table1_emidec_differences.csv"]]
    assert list(paired.index.names) == ["budget", "splits", "arm", "structure"]  # which splits each row pairs over
