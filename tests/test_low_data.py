"""The low-data curve's arithmetic (lgelib.low_data) and the experiment runner's tables after every split."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lgelib import experiment
from lgelib.comparisons import read_per_case
from lgelib.layout import REPO_ROOT
from lgelib.low_data import (
    curve,
    differences,
    equivalent_real_cases,
    real_cases_reaching,
    recorded_point,
    stack_points,
)
from lgelib.run import parse_options


def per_case_table(dice: dict[str, float], splits: int = 2, cases: int = 4, spread: float = 0.0) -> pd.DataFrame:
    """A per-case table: every arm of ``dice`` scores its value (myocardium) and half of it (fibrosis) on every test
    case of every split, plus ``spread`` times a case-specific offset shared by the arms (a harder or easier case)."""
    rows = []
    for split in range(splits):
        for case in range(cases):
            offset = spread * (case - (cases - 1) / 2)
            for arm, value in dice.items():
                for structure, scale in (("myocardium", 1.0), ("fibrosis", 0.5)):
                    rows.append(
                        {
                            "arm": arm,
                            "case_id": f"Case_{case}",
                            "region": "Volume",
                            "structure": structure,
                            "dice": scale * value + offset,
                            "scored": True,
                            "split_seed": split,
                        }
                    )
    return pd.DataFrame(rows)


def test_the_curve_holds_each_arms_mean_at_each_size_and_the_differences_are_paired() -> None:
    points = {
        10: per_case_table({"N0": 0.50, "N100-balanced": 0.60}, spread=0.05),
        40: per_case_table({"N0": 0.70, "N100-balanced": 0.72}, spread=0.05),
    }
    stacked = stack_points(points)
    table = curve(stacked, n_resamples=200)
    means = table.set_index(["structure", "arm", "n_train"])["mean"]
    assert means["myocardium", "N0", 10] == pytest.approx(0.50)
    assert means["myocardium", "N100-balanced", 40] == pytest.approx(0.72)
    assert means["fibrosis", "N100-balanced", 10] == pytest.approx(0.30)
    low, high = table.set_index(["structure", "arm", "n_train"]).loc[("myocardium", "N0", 10), ["ci_low", "ci_high"]]
    assert low < 0.50 < high  # the cases differ, so the interval has width
    paired = differences(stacked, n_resamples=200).set_index(["structure", "arm", "n_train"])
    # The case offsets are shared by both arms: the paired difference is exact, its interval has no width.
    assert paired.loc[("myocardium", "N100-balanced", 10), "difference"] == pytest.approx(0.10)
    assert paired.loc[("myocardium", "N100-balanced", 10), "ci_high"] - paired.loc[
        ("myocardium", "N100-balanced", 10), "ci_low"
    ] == pytest.approx(0.0, abs=1e-12)
    assert paired.loc[("myocardium", "N100-balanced", 40), "difference"] == pytest.approx(0.02)


def test_the_equivalent_real_cases_are_read_off_the_real_only_curve_between_measured_sizes() -> None:
    sizes, means = np.array([10, 20, 40]), np.array([0.4, 0.6, 0.7])
    assert real_cases_reaching(sizes, means, 0.5) == (pytest.approx(15.0), "within")
    assert real_cases_reaching(sizes, means, 0.65) == (pytest.approx(30.0), "within")
    assert real_cases_reaching(sizes, means, 0.7) == (pytest.approx(40.0), "within")
    value, where = real_cases_reaching(sizes, means, 0.3)
    assert math.isnan(value) and where == "below"
    value, where = real_cases_reaching(sizes, means, 0.8)
    assert math.isnan(value) and where == "above"
    # A curve that dips: the first size that reaches the target counts.
    assert real_cases_reaching(np.array([10, 20, 40]), np.array([0.4, 0.7, 0.5]), 0.55)[0] == pytest.approx(15.0)

    table = curve(
        stack_points(
            {
                10: per_case_table({"N0": 0.4, "N100-balanced": 0.5}),
                20: per_case_table({"N0": 0.6, "N100-balanced": 0.62}),
                40: per_case_table({"N0": 0.7, "N100-balanced": 0.65}),
            }
        ),
        n_resamples=100,
    )
    equivalent = equivalent_real_cases(table, "N100-balanced", "myocardium").set_index("n_train")
    assert equivalent.loc[10, "equivalent_real_cases"] == pytest.approx(15.0)  # 10 cases + synthetic = 15 real
    assert equivalent.loc[10, "cases_gained"] == pytest.approx(5.0)
    assert equivalent.loc[20, "equivalent_real_cases"] == pytest.approx(24.0)
    assert equivalent.loc[40, "cases_gained"] == pytest.approx(30.0 - 40.0)  # worse than its own real cases
    with pytest.raises(ValueError, match="N0"):
        equivalent_real_cases(table[table["arm"] != "N0"], "N100-balanced", "myocardium")


def test_a_curve_needs_its_sizes() -> None:
    with pytest.raises(ValueError, match="at least one"):
        stack_points({})
    with pytest.raises(ValueError, match="n_train"):
        curve(per_case_table({"N0": 0.5}))


def test_the_experiment_writes_its_tables_after_every_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped in its second split leaves the first split's tables whole on disk."""
    calls = []

    def fake_split(run):
        seed = run.options.split_seed
        calls.append(seed)
        if seed == 1:
            raise KeyboardInterrupt
        per_case = per_case_table({"N0": 0.5, "N100": 0.6}, splits=1).assign(split_seed=seed)
        return per_case, pd.DataFrame({"arm": ["N0", "N100"], "train_s": [1.0, 2.0], "split_seed": seed})

    monkeypatch.setattr(experiment, "run_split", fake_split)
    options = parse_options(
        {"manifest": str(REPO_ROOT / "data_manifest" / "phantom.yaml"), "device": "cpu", "seg_arms": ["N0", "N100"]}
    )
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(options, tmp_path / "exp", [0, 1], inr_cache=tmp_path / "shared-inrs")
    assert calls == [0, 1]
    written = read_per_case(tmp_path / "exp" / "per_case_dice.csv")
    assert set(written["split_seed"]) == {0} and set(written["arm"]) == {"N0", "N100"}
    comparisons = pd.read_csv(tmp_path / "exp" / "comparisons.csv")
    assert comparisons.loc[comparisons["structure"] == "myocardium", "difference"].iloc[0] == pytest.approx(0.1)
    assert not list((tmp_path / "exp").glob("*.partial*"))
    with pytest.raises(ValueError, match="split seed"):
        experiment.run_experiment(options, tmp_path / "none", [])


def test_the_equivalent_says_where_it_cannot_be_read() -> None:
    sizes = np.array([10, 20, 40])
    reached = real_cases_reaching(sizes, np.array([0.4, 0.6, 0.7]), 0.4)
    assert reached == (pytest.approx(10.0), "within")  # a tie with the smallest size
    value, where = real_cases_reaching(sizes, np.array([0.4, np.nan, 0.7]), 0.5)
    assert math.isnan(value) and where == "unknown"  # a missing mean: no reading, not "above"
    value, where = real_cases_reaching(sizes, np.array([0.4, 0.6, 0.7]), float("nan"))
    assert math.isnan(value) and where == "unknown"
    value, where = real_cases_reaching(sizes, np.array([0.0, 0.0, 0.3]), 0.0)
    assert math.isnan(value) and where == "flat"  # no size learned scar: no one size is the equivalent
    assert real_cases_reaching(sizes, np.array([0.0, 0.0, 0.3]), 0.15) == (pytest.approx(30.0), "within")


def test_a_recorded_point_keeps_its_budget_arms_and_splits_and_must_hold_each_splits_test_cases() -> None:
    long = per_case_table({"N0": 0.70, "N100-balanced": 0.65, "N200": 0.5}, splits=3).assign(budget="real-cpu-long")
    short = per_case_table({"N0": 0.10, "N100-balanced": 0.10}, splits=3).assign(budget="real-cpu")
    rows = pd.concat([long, short], ignore_index=True)
    cases = tuple(f"Case_{case}" for case in range(4))
    point = recorded_point(rows, "real-cpu-long", ["N0", "N100-balanced"], {0: cases, 2: cases})
    assert "budget" not in point.columns
    assert set(point["arm"]) == {"N0", "N100-balanced"} and set(point["split_seed"]) == {0, 2}
    assert len(point) == 2 * 2 * 4 * 2  # arms x splits x cases x structures, the other budget's rows left out
    means = curve(stack_points({68: point}), n_resamples=50).set_index(["structure", "arm"])["mean"]
    assert means["myocardium", "N0"] == pytest.approx(0.70)  # the long budget's values, not the short one's
    with pytest.raises(ValueError, match="N0 on split 1 at budget real-cpu-long hold 4 test cases, the split has 5"):
        recorded_point(rows, "real-cpu-long", ["N0", "N100-balanced"], {1: (*cases, "Case_9")})
    with pytest.raises(ValueError, match="T100-balanced on split 0 .* hold 0 test cases"):
        recorded_point(rows, "real-cpu-long", ["N0", "T100-balanced"], {0: cases})
    with pytest.raises(ValueError, match="no budget column"):
        recorded_point(rows.drop(columns="budget"), "real-cpu-long", ["N0"], {0: cases})


def test_the_recorded_curves_are_read_per_budget_and_a_budget_with_a_missing_table_is_left_out(tmp_path: Path) -> None:
    from lgelib.low_data import RECORDED, recorded_low_data

    table = curve(stack_points({10: per_case_table({"N0": 0.5}), 20: per_case_table({"N0": 0.6})}), n_resamples=20)
    for name in RECORDED["real-cpu"]:
        table.to_csv(tmp_path / name, index=False)
    long_files = list(RECORDED["real-cpu-long"])
    for name in long_files[:-1]:  # one of the long budget's tables missing
        table.to_csv(tmp_path / name, index=False)
    found = recorded_low_data(tmp_path)
    assert list(found) == ["real-cpu"] and set(found["real-cpu"]) == {"curve", "differences", "equivalent"}
    table.to_csv(tmp_path / long_files[-1], index=False)
    assert list(recorded_low_data(tmp_path)) == ["real-cpu", "real-cpu-long"]
    assert recorded_low_data(tmp_path / "absent") == {}
