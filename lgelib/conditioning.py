"""Beyond the paper: the diffusion stage conditioned on scar descriptors, and whether it does what it is asked.

The paper's conclusion proposes conditioning the generator "for more targeted fibrosis segmentation". Here the EDM
of stage 3 is trained again on the same latents, each with its training heart's scar descriptors
(`lgelib.scar_descriptors`: presence, burden, basal / mid / apical share) and condition dropout, and sampled with
classifier-free guidance (`lgelib.edm.guided_denoiser`). For each request (e.g. "scar apical") the decoded volumes'
own masks are measured again and compared with the request, beside volumes drawn unconditionally from the same
model: a conditioning that works meets the request far more often than the unconditional base rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lgelib.data.prepare import PreparedDataset
from lgelib.scar_descriptors import (
    CONDITION_COLUMNS,
    LEVEL_REQUESTS,
    ScarRequest,
    descriptor_table,
    request_accuracy,
)

UNCONDITIONAL = "unconditional"


@dataclass(frozen=True)
class ConditioningSettings:
    """The conditioned generator and what it is asked for.

    Attributes:
        condition_dropout: share of training rows given the null condition (what guidance needs).
        guidance: classifier-free guidance scale w at sampling (1: the conditional denoiser alone).
        n_per_request: volumes drawn per request (and unconditionally, for the base rate).
        requests: scar requests in `ScarRequest.parse`'s format.
        fill: the non-overlapping requests a targeted arm (``T<n>``) evens out: its volumes go to the ones the
            real training set has fewest cases of (`lgelib.scar_descriptors.fill_allocation`).
    """

    condition_dropout: float = 0.15
    guidance: float = 2.0
    n_per_request: int = 48
    requests: tuple[str, ...] = ("scar-free", "scar basal", "scar mid", "scar apical", "scar 0-5%", "scar 20-100%")
    fill: tuple[str, ...] = LEVEL_REQUESTS

    def __post_init__(self) -> None:
        if not 0 < self.condition_dropout < 1 or self.guidance < 0 or self.n_per_request < 1:
            raise ValueError(f"invalid conditioning settings {self}")
        for text in (*self.requests, *self.fill):
            ScarRequest.parse(text)  # fails early, naming the request
        if not self.fill:
            raise ValueError("conditioning.fill names no request")

    def parsed_requests(self) -> list[ScarRequest]:
        return [ScarRequest.parse(text) for text in self.requests]

    def parsed_fill(self) -> list[ScarRequest]:
        return [ScarRequest.parse(text) for text in self.fill]

    def to_dict(self) -> dict:
        return asdict(self)


def closed_ring_pct(qc: pd.DataFrame) -> float:
    """Share (%) of the myocardial slices of a synthesis QC table's accepted volumes that are one closed ring."""
    accepted = qc[qc.accepted]
    return float(100 * accepted.closed_ring_slices.sum() / max(int(accepted.myocardium_slices.sum()), 1))


def training_descriptors(prepared: PreparedDataset, case_ids: list[str]) -> pd.DataFrame:
    """Scar descriptors of the named prepared cases (canonical grid), one row per case in that order."""
    masks = [prepared.case(c)[1:] for c in case_ids]
    return descriptor_table(case_ids, np.stack([m for m, _ in masks]), np.stack([f for _, f in masks]))


def synthetic_descriptors(synthetic: PreparedDataset) -> pd.DataFrame:
    """Scar descriptors of synthetic volumes (a synthesis folder read with `load_prepared`), measured on their own
    decoded masks."""
    return descriptor_table(list(synthetic.case_ids), synthetic.myocardium, synthetic.fibrosis)


def condition_tensor(descriptors: pd.DataFrame) -> torch.Tensor:
    """The condition vectors (N, len(CONDITION_COLUMNS)) of a descriptor table, in its row order."""
    return torch.from_numpy(descriptors[list(CONDITION_COLUMNS)].to_numpy(np.float32, copy=True))


def accuracy_table(
    requests: list[ScarRequest],
    decoded: dict[str, pd.DataFrame],
    training: pd.DataFrame,
    nearer: dict[str, float] | None = None,
    rings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Per request: how often the conditioned volumes meet it, against the unconditional volumes (the base rate,
    ``decoded[UNCONDITIONAL]``) and the training cases, and the median scar burden (%) of each; NaN for a request
    that was not drawn (absent from ``decoded``: no training heart meets it). ``nearer`` (set name -> share of its
    volumes nearer a training heart than the median real test heart is, `lgelib.quality.nearer_than_median_test`)
    adds the memorisation check: a request met by copying the few training hearts that meet it is no success;
    ``rings`` (set name -> closed-ring share of its myocardial slices, %) the anatomy check: nor is one met by
    hearts that are no longer rings (strong guidance leaves the data's manifold)."""
    nearer, rings = nearer or {}, rings or {}
    rows = []
    for request in requests:
        unconditional = request_accuracy(request, decoded[UNCONDITIONAL])
        drawn = request.name in decoded  # not drawn where no training heart meets the request
        conditioned = request_accuracy(request, decoded[request.name]) if drawn else {}
        rows.append(
            {
                "request": request.name,
                "training cases meeting it": int(request.satisfied(training).sum()),
                "n drawn": int(conditioned.get("n", 0)),
                "meets request (conditioned)": conditioned.get("meets_request", float("nan")),
                "meets request (unconditional)": unconditional["meets_request"],
                "meets request (training cases)": float(request.satisfied(training).mean()),
                "median burden % (conditioned)": conditioned.get("median_burden_pct", float("nan")),
                "median burden % (unconditional)": unconditional["median_burden_pct"],
                "nearer than median test (conditioned)": nearer.get(request.name, float("nan")),
                "nearer than median test (unconditional)": nearer.get(UNCONDITIONAL, float("nan")),
                "closed rings % (conditioned)": rings.get(request.name, float("nan")),
                "closed rings % (unconditional)": rings.get(UNCONDITIONAL, float("nan")),
            }
        )
    return pd.DataFrame(rows).set_index("request")


COMPACT_COLUMNS = {
    "meets request (conditioned)": "asked",
    "meets request (unconditional)": "unasked",
    "meets request (training cases)": "real",
    "median burden % (conditioned)": "burden %",
    "nearer than median test (conditioned)": "nearer",
    "closed rings % (conditioned)": "rings %",
}
"""`compact`'s columns: share meeting the request when asked for it, when not (unconditional), among the real
training hearts; the median scar burden, memorisation share and closed-ring share of the volumes asked for it."""


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """An `accuracy_table` (or its recorded copy) narrow enough for a book page: `COMPACT_COLUMNS`, rounded."""
    present = [c for c in COMPACT_COLUMNS if c in table.columns]
    compacted = table[present].rename(columns=COMPACT_COLUMNS)
    return compacted.round({"asked": 2, "unasked": 2, "real": 2, "nearer": 2, "burden %": 1, "rings %": 0})


def conditioning_summary(table: pd.DataFrame) -> str:
    """What an `accuracy_table` says, in words: per request, the share meeting it when asked against the base rate,
    and whether conditioning lifted it on the whole (a lift of at least 10 points counts)."""
    lines = []
    lifted = 0
    for request, row in table.iterrows():
        asked, base = row["meets request (conditioned)"], row["meets request (unconditional)"]
        if row["n drawn"] == 0:
            lines.append(f"- **{request}**: not drawn: no training heart meets it.")
            continue
        lifted += asked - base >= 0.10
        lines.append(
            f"- **{request}**: {100 * asked:.0f}% of the volumes drawn for it meet it, against {100 * base:.0f}% of "
            f"those drawn unconditionally ({100 * row['meets request (training cases)']:.0f}% of the training hearts)"
            + (
                f"; {100 * row['nearer than median test (conditioned)']:.0f}% of them are nearer a training heart "
                "than the median real test heart is"
                if pd.notna(row.get("nearer than median test (conditioned)"))
                else ""
            )
            + (
                f", and {row['closed rings % (conditioned)']:.0f}% of their myocardial slices are closed rings"
                if pd.notna(row.get("closed rings % (conditioned)"))
                else ""
            )
            + "."
        )
    verdict = (
        f"Conditioning lifted the share meeting the request by at least 10 points for {lifted} of "
        f"{int((table['n drawn'] > 0).sum())} requests drawn."
    )
    return verdict + "\n\n" + "\n".join(lines)


RECORDED = {
    "conditioned_generation_emidec.csv": "Scar on request (EDM conditioned, w = 2): mean over three splits",
    "phantom_arm_emidec.csv": "Phantom (hand-tuned) and learned-generator arms, `real-cpu` budget: Volume Dice "
    "differences, three splits",
    "phantom_arm_emidec_long.csv": "Phantom (calibrated per split) and learned-generator arms, `real-cpu-long` budget: "
    "Volume Dice differences, three splits",
    "targeted_arm_emidec.csv": "Targeted against unconditional volumes (T100 - N100, balanced), `real-cpu` budget: "
    "Dice by region, three splits",
    "targeted_arm_emidec_long.csv": "Targeted against unconditional volumes (T100 - N100, balanced), `real-cpu-long` "
    "budget: Dice by region, three splits",
}
"""Result tables measured on EMIDEC-derived and kept in ``benchmarks/results/`` (file -> title in the chapter)."""


def read_recorded(files: dict[str, str], folder: Path | None = None) -> dict[str, pd.DataFrame]:
    """The CSV files named in ``files`` (file -> title) that exist in ``folder`` (default: the repository's
    ``benchmarks/results``), read as they are, by title; empty where the benchmarks are not at hand (an installed
    package). Each chapter shapes its own tables."""
    from lgelib.layout import REPO_ROOT

    folder = REPO_ROOT / "benchmarks" / "results" if folder is None else Path(folder)
    return {title: pd.read_csv(folder / name) for name, title in files.items() if (folder / name).is_file()}


def recorded_results(folder: Path | None = None) -> dict[str, pd.DataFrame]:
    """The recorded EMIDEC-derived tables (`RECORDED`) that exist in ``folder`` (default: the repository's
    ``benchmarks/results``), by title; empty where the benchmarks are not at hand (an installed package)."""
    tables = {}
    for title, table in read_recorded(RECORDED, folder).items():
        if "request" in table.columns:
            table = compact(table.set_index("request"))
        else:  # paired differences: the comparison, its interval and its p
            kept = ["baseline", "arm", "structure", "region", "difference", "ci_low", "ci_high", "p"]
            index = [c for c in ("baseline", "arm") if c in table.columns]
            table = table[[c for c in kept if c in table.columns]].round(3).set_index(index)
        tables[title] = table
    return tables
