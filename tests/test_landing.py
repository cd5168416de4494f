"""The landing page's account of a run: Table 1 beside the paper's and the stages' headline numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lgelib.landing import stage_numbers, table1_side_by_side
from lgelib.layout import RunLayout
from lgelib.table1 import REGIONS


def per_case_table(values: dict[int, float]) -> pd.DataFrame:
    rows = []
    for n, dice in values.items():
        for case, offset in (("a", -0.1), ("b", 0.1)):
            for region in REGIONS:
                rows.append(
                    {
                        "n_synthetic": n,
                        "case_id": case,
                        "region": region,
                        "structure": "fibrosis",
                        "dice": dice + offset,
                        "empty": False,
                    }
                )
                rows.append(
                    {
                        "n_synthetic": n,
                        "case_id": case,
                        "region": region,
                        "structure": "myocardium",
                        "dice": 0.8,
                        "empty": False,
                    }
                )
    return pd.DataFrame(rows)


def test_table1_side_by_side_puts_each_mean_next_to_the_papers() -> None:
    text = table1_side_by_side(per_case_table({0: 0.3, 100: 0.4}))
    fibrosis, myocardium = text.split("**Myocardium Dice**")
    header = "| Region | N0 ours | N0 paper | N100 ours | N100 paper | N200 ours | N200 paper |"
    assert header in fibrosis and header in myocardium
    assert "| Volume | 0.300 | 0.509 | 0.400 | 0.515 | – | 0.524 |" in fibrosis  # N=200 not run here
    assert "| Top 25% | 0.800 | 0.784 | 0.800 | 0.781 | – | 0.779 |" in myocardium


def test_stage_numbers_read_what_the_stages_wrote(tmp_path: Path) -> None:
    assert stage_numbers(RunLayout(tmp_path)) == []  # nothing run yet: nothing claimed
    (tmp_path / "inr").mkdir()
    pd.DataFrame(
        {"case_id": ["a", "b", "c"], "psnr_db": [20.0, 30.0, 25.0], "myocardium_dice": [0.9, 0.8, 1.0]}
    ).to_csv(tmp_path / "inr" / "fidelity.csv", index=False)
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "synthesis.json").write_text(
        json.dumps({"n_written": 4, "n_drawn": 5, "settings": {"seed": 7}})
    )
    (tmp_path / "seg").mkdir()
    per_case_table({0: 0.3, 200: 0.5}).to_csv(tmp_path / "seg" / "per_case_dice.csv", index=False)
    lines = stage_numbers(RunLayout(tmp_path))
    assert lines[0] == "Stage 1: 3 INRs, median PSNR 25.0 dB, median myocardium Dice 0.900 on the canonical grid."
    assert lines[1] == "Stage 3: 4 synthetic volumes written (5 drawn), seed 7."
    assert lines[2].startswith(
        "Segmentation: volume fibrosis Dice (cases with scar) 0.300 for N0, 0.500 for N200 (paper: 0.509 for N0"
    )
