"""Scar descriptors from masks (burden, presence, long-axis level) on hand-built hearts, and scar requests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lgelib.scar_descriptors import (
    CONDITION_COLUMNS,
    LEVEL_REQUESTS,
    ScarRequest,
    descriptor_table,
    fill_allocation,
    proportional_allocation,
    request_accuracy,
    request_conditions,
    scar_descriptors,
    targeted_conditions,
)


def ring_heart(n_slices: int = 8, empty_slices: tuple[int, ...] = ()) -> np.ndarray:
    """A (slices, 32, 32) myocardium: the same ring of 4 x 4 pixels' wall in every slice but ``empty_slices``."""
    yy, xx = np.mgrid[:32, :32]
    radius = np.hypot(yy - 15.5, xx - 15.5)
    ring = (radius > 8) & (radius < 12)
    myocardium = np.repeat(ring[None], n_slices, axis=0)
    myocardium[list(empty_slices)] = False
    return myocardium


def test_apical_scar_is_apical_with_its_burden() -> None:
    myocardium = ring_heart(8)  # 8 myocardial slices: basal 0-1, mid 2-5, apical 6-7 (Table 1's regions)
    fibrosis = np.zeros_like(myocardium)
    fibrosis[6:8, :16] = myocardium[6:8, :16]  # half the ring in the two apical slices
    d = scar_descriptors(myocardium, fibrosis)
    assert d.present and d.level == "apical" and d.shares == (0.0, 0.0, 1.0)
    assert d.burden == pytest.approx(fibrosis.sum() / myocardium.sum())
    assert d.burden == pytest.approx(2 * 0.5 / 8, abs=0.01)
    assert d.vector().tolist() == pytest.approx([1.0, d.burden, 0.0, 0.0, 1.0])


def test_levels_count_only_myocardial_slices_and_split_the_scar_by_region() -> None:
    # 10 slices of which the first two hold no myocardium: 8 myocardial slices 2-9 -> basal 2-3, mid 4-7, apical 8-9
    myocardium = ring_heart(10, empty_slices=(0, 1))
    fibrosis = np.zeros_like(myocardium)
    fibrosis[2] = myocardium[2]  # one basal slice, whole ring
    fibrosis[4:7] = myocardium[4:7]  # three mid slices
    d = scar_descriptors(myocardium, fibrosis)
    assert d.shares == pytest.approx((0.25, 0.75, 0.0)) and d.level == "mid"
    fibrosis_outside = fibrosis.copy()
    fibrosis_outside[0, 0, 0] = True  # outside the myocardium: not counted
    assert scar_descriptors(myocardium, fibrosis_outside) == d


def test_a_scar_free_heart_is_all_zeros() -> None:
    myocardium = ring_heart(6)
    d = scar_descriptors(myocardium, np.zeros_like(myocardium))
    assert not d.present and d.level is None and d.burden == 0 and not d.vector().any()
    with pytest.raises(ValueError, match="one shape"):
        scar_descriptors(myocardium, np.zeros((6, 32, 31), bool))


def _table() -> pd.DataFrame:
    myocardium = ring_heart(8)
    cases = {}
    for name, slices, width in (("apical-small", (7,), 8), ("apical-big", (6, 7), 32), ("basal", (0,), 32)):
        fibrosis = np.zeros_like(myocardium)
        fibrosis[list(slices), :, :width] = myocardium[list(slices), :, :width]
        cases[name] = fibrosis
    cases["free"] = np.zeros_like(myocardium)
    ids = list(cases)
    return descriptor_table(ids, np.stack([myocardium] * len(ids)), np.stack(list(cases.values())))


def test_requests_select_matching_training_cases_and_score_decoded_ones() -> None:
    table = _table()
    apical = ScarRequest(present=True, level="apical")
    assert list(table.index[apical.satisfied(table)]) == ["apical-small", "apical-big"]
    small = ScarRequest(present=True, level="apical", burden_pct=(0, 5))
    assert list(table.index[small.satisfied(table)]) == ["apical-small"]
    conditions = request_conditions(apical, table, 50, seed=0)
    assert conditions.shape == (50, len(CONDITION_COLUMNS))
    allowed = table.loc[["apical-small", "apical-big"], list(CONDITION_COLUMNS)].to_numpy(np.float32)
    assert all(any(np.array_equal(row, a) for a in allowed) for row in conditions)
    assert np.array_equal(conditions, request_conditions(apical, table, 50, seed=0))  # seeded
    with pytest.raises(ValueError, match="no training case satisfies the request 'scar mid'"):
        request_conditions(ScarRequest(present=True, level="mid"), table, 5, seed=0)
    score = request_accuracy(apical, table)
    assert score["meets_request"] == 0.5 and score["level_as_requested"] == 0.5
    assert score["presence_as_requested"] == 0.75
    with pytest.raises(ValueError, match="scar-free request"):
        ScarRequest(present=False, level="apical")


@pytest.mark.parametrize("text", ["scar-free", "scar", "scar apical", "scar 5-20%", "scar basal 0-5%", "any 15-100%"])
def test_requests_parse_their_own_names(text: str) -> None:
    assert ScarRequest.parse(text).name == text
    with pytest.raises(ValueError, match="neither a level"):
        ScarRequest.parse("scar septal")


def test_a_targeted_set_fills_the_rarest_levels_first_and_never_asks_for_an_unseen_one() -> None:
    table = _table()  # scar-free 1, basal 1, mid 0, apical 2
    requests = [ScarRequest.parse(text) for text in LEVEL_REQUESTS]
    assert fill_allocation(table, requests, 0) == {"scar-free": 0, "scar basal": 0, "scar mid": 0, "scar apical": 0}
    # water-filling: free and basal rise to the apical count first; no training heart has mid scar
    assert fill_allocation(table, requests, 2) == {"scar-free": 1, "scar basal": 1, "scar mid": 0, "scar apical": 0}
    assert fill_allocation(table, requests, 5) == {"scar-free": 2, "scar basal": 2, "scar mid": 0, "scar apical": 1}
    with pytest.raises(ValueError, match="no training case meets any"):
        fill_allocation(table, [ScarRequest.parse("scar mid")], 3)

    conditions, drawn_for = targeted_conditions(table, requests, 5, seed=3)
    assert conditions.shape == (5, len(CONDITION_COLUMNS)) and len(drawn_for) == 5
    assert sorted(drawn_for) == sorted(["scar-free"] * 2 + ["scar basal"] * 2 + ["scar apical"])
    by_name = {r.name: r for r in requests}
    for row, name in zip(conditions, drawn_for):
        meeting = table[by_name[name].satisfied(table)][list(CONDITION_COLUMNS)].to_numpy(np.float32)
        assert any(np.array_equal(row, m) for m in meeting), name
    again = targeted_conditions(table, requests, 5, seed=3)
    assert np.array_equal(conditions, again[0]) and drawn_for == again[1]


def test_the_proportional_control_follows_the_training_sets_own_levels() -> None:
    """C<n>'s allocation: the training set's proportions (scar-free 1, basal 1, mid 0, apical 2 of 4), the largest
    remainders rounded up, never a level no training heart has; the conditions follow it."""
    table = _table()
    requests = [ScarRequest.parse(text) for text in LEVEL_REQUESTS]
    assert proportional_allocation(table, requests, 8) == {
        "scar-free": 2,
        "scar basal": 2,
        "scar mid": 0,
        "scar apical": 4,
    }
    # 5 x (1/4, 1/4, 0, 2/4) = 1.25, 1.25, 0, 2.5: the largest remainder (apical) gets the fifth volume
    assert proportional_allocation(table, requests, 5) == {
        "scar-free": 1,
        "scar basal": 1,
        "scar mid": 0,
        "scar apical": 3,
    }
    assert sum(proportional_allocation(table, requests, 7).values()) == 7
    assert proportional_allocation(table, requests, 0) == dict.fromkeys(LEVEL_REQUESTS, 0)
    with pytest.raises(ValueError, match="no training case meets any"):
        proportional_allocation(table, [ScarRequest.parse("scar mid")], 3)
    _, drawn_for = targeted_conditions(table, requests, 8, seed=1, allocation="proportional")
    assert sorted(drawn_for) == sorted(["scar-free"] * 2 + ["scar basal"] * 2 + ["scar apical"] * 4)
    with pytest.raises(ValueError, match="allocation must be one of"):
        targeted_conditions(table, requests, 8, seed=1, allocation="even")


def test_recorded_tables_keep_their_region_and_skip_missing_files(tmp_path) -> None:
    from lgelib.conditioning import RECORDED, recorded_results

    pd.DataFrame(
        {
            "arm": ["T100-balanced", "T100-balanced"],
            "structure": ["fibrosis", "fibrosis"],
            "region": ["Volume", "Top 25%"],
            "difference": [0.01234, -0.05],
            "ci_low": [-0.1, -0.2],
            "ci_high": [0.1, 0.1],
            "p": [0.5, 0.25],
            "n_pairs": [31, 20],
        }
    ).to_csv(tmp_path / "targeted_arm_emidec.csv", index=False)
    tables = recorded_results(tmp_path)
    assert list(tables) == [RECORDED["targeted_arm_emidec.csv"]]  # the other recorded files are absent here
    table = tables[RECORDED["targeted_arm_emidec.csv"]]
    assert list(table.columns) == ["structure", "region", "difference", "ci_low", "ci_high", "p"]
    assert table["difference"].iloc[0] == 0.012 and list(table["region"]) == ["Volume", "Top 25%"]
