"""The landing page's account of one run: provenance, the paper's Figure 1 drawn from the run, Table 1 beside the
paper's, and each stage's headline numbers, read from the run directory after every notebook has run.

``lgelib book`` puts the returned markdown into ``book/intro.md`` where it says ``% lgelib:reproduction``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lgelib.comparisons import read_per_case, verdict
from lgelib.config import Profile
from lgelib.data.prepare import load_prepared
from lgelib.figures import figure1, slice_levels
from lgelib.fsutil import load_tensors
from lgelib.layout import RunLayout
from lgelib.table1 import PAPER_TABLE1, table1
from lgelib.privacy import PRIVATE_MARK
from lgelib.provenance import Provenance

MARKER = "% lgelib:reproduction"
"""The line of ``book/intro.md`` that the run's account replaces."""


def _mid_slice(data, case_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mid = slice_levels(data.images.shape[1])["mid"]
    return tuple(volume[mid] for volume in data.case(case_id))


def draw_figure1(run: RunLayout, settings: Profile, out: Path, shareable: list[str]) -> str:
    """Figure 1 for this run, saved to ``out``; returns its caption. A private dataset's real slice is left out."""
    real = load_prepared(run.data)
    synthetic = load_prepared(run.synth)
    latents, _ = load_tensors(run.inr2vec / "latents.safetensors")
    n_train, n_synthetic = len(real.split.train), len(synthetic.case_ids)
    segmentation = settings.segmentation
    stages = [
        f"{n_train} real training volumes\\nimage + myocardium + fibrosis",
        f"one joint SIREN per volume\\n{settings.inr.spec.n_params:,} parameters",
        f"inr2vec: {latents['latents'].shape[1]}-d latent\\nper INR",
        f"EDM on the latents\\n{settings.edm.steps:,} training steps",
        f"{n_synthetic} synthetic volumes\\nwith their own masks",
        f"nnU-Net ({segmentation.configuration})\\nreal + N synthetic",
    ]
    stages = [text.replace("\\n", "\n") for text in stages]
    figure = figure1(
        stages,
        _mid_slice(real, real.split.train[0]) if real.publishable else None,
        _mid_slice(synthetic, shareable[0]) if shareable else None,
        latents["latents"][0].numpy(),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(figure)
    shown = (
        "a real training case's mid-ventricular slice (left) and a synthetic one (right), with their "
        "myocardium (red) and fibrosis (blue) contours"
        if real.publishable
        else f"the real slice is not shown (the dataset is {PRIVATE_MARK})"
        + ("; right: a synthetic slice with its own contours" if shareable else "")
    )
    return (
        f"Overview of the framework, drawn from this run (the paper's Figure 1): {shown}; in the middle, the "
        "first training latent as a 16 x 32 heat map."
    )


def table1_side_by_side(per_case: pd.DataFrame, decimals: int = 3) -> str:
    """Mean Dice per region, this run's beside the paper's, one markdown table per structure."""
    ours = table1(per_case)
    blocks = []
    for structure in ("fibrosis", "myocardium"):
        counts = list(dict.fromkeys([*ours[structure].columns.get_level_values(0), "N0", "N100", "N200"]))
        header = "| Region | " + " | ".join(f"{n} ours | {n} paper" for n in counts) + " |"
        lines = [f"**{structure.capitalize()} Dice**", "", header, "|---|" + "---:|" * (2 * len(counts))]
        for region in ours.index:
            cells = []
            for n in counts:
                mine = ours.loc[region, (structure, n, "mean")] if (structure, n, "mean") in ours.columns else np.nan
                paper = PAPER_TABLE1.loc[region, (structure, n)] if (structure, n) in PAPER_TABLE1.columns else np.nan
                cells += ["–" if np.isnan(v) else f"{v:.{decimals}f}" for v in (mine, paper)]
            lines.append(f"| {region} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def stage_numbers(run: RunLayout) -> list[str]:
    """One line per stage with its headline measurement, from the files the stages wrote."""
    lines = []
    fidelity = run.inr / "fidelity.csv"
    if fidelity.is_file():
        table = pd.read_csv(fidelity)
        lines.append(
            f"Stage 1: {len(table)} INRs, median PSNR {table.psnr_db.median():.1f} dB, median myocardium "
            f"Dice {table.myocardium_dice.median():.3f} on the canonical grid."
        )
    record_path = run.synth / "synthesis.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        lines.append(
            f"Stage 3: {record['n_written']} synthetic volumes written ({record['n_drawn']} drawn), "
            f"seed {record['settings']['seed']}."
        )
    per_case = run.per_case_dice
    if per_case.is_file():
        table = read_per_case(per_case)
        volume = table1(table).loc["Volume", "fibrosis"]
        means = volume.xs("mean", level="stat")
        paper = PAPER_TABLE1.loc["Volume", "fibrosis"]
        lines.append(
            "Segmentation: volume fibrosis Dice (cases with scar) "
            + ", ".join(f"{m:.3f} for {n}" for n, m in means.items())
            + " (paper: "
            + ", ".join(f"{v:.3f} for {n}" for n, v in paper.items())
            + ")."
        )
    return lines


def reproduction_markdown(
    run: RunLayout, settings: Profile, provenance: Provenance, figure_file: str, shareable: list[str]
) -> str:
    """The landing page's section about this run; draws Figure 1 into the run's book source at ``figure_file``,
    with a synthetic slice only from ``shareable`` (`lgelib.run.Run.shareable_synthetic_ids`)."""
    caption = draw_figure1(run, settings, run.book / figure_file, shareable)
    per_case = run.per_case_dice
    table = (
        table1_side_by_side(read_per_case(per_case))
        if per_case.is_file()
        else "*The segmentation chapter has not run: no Table 1 yet.*"
    )
    split = (
        f"split seed {provenance.split_seed}" if provenance.split_seed is not None else "the manifest's listed split"
    )
    stages = "\n".join(f"- {line}" for line in stage_numbers(run))
    all_splits = run.per_case_dice_all_splits
    results = all_splits if all_splits.is_file() else per_case
    caveat = f"**What this run shows.** {verdict(read_per_case(results))}\n" if results.is_file() else ""
    return f"""## This build

This book was built from the run in `{run.root.name}/` with the `{provenance.profile}` profile on the
`{provenance.dataset}` data, **{split}** ({provenance.n_train} training / {provenance.n_test} test cases).
Another split is one option: `lgelib book --split-seed N` (or `make book SPLIT_SEED=N`).

{provenance.markdown()}

```{{figure}} {figure_file}
:name: fig-1
:width: 100%

{caption}
```

### Table 1, this run beside the paper's

Mean Dice over the test cases per region (the paper: 105 real training and 28 test volumes of private data,
nnU-Net's full budget). The full table with standard deviations and the paired statistics is in
{{numref}}`tab-1`.

{caveat}
{table}

### Stage by stage

{stages}
"""
