"""Scar descriptors of a heart, computed from its masks on the canonical grid: what the conditioned generator is
conditioned on (paper, Conclusion: "conditioning on clinical parameters for more targeted fibrosis segmentation").

Per case: the **scar burden** (fibrosis voxels over myocardium voxels), whether **scar is present**, and **where it
sits** along the long axis: the share of the scar in the basal, mid and apical myocardial slices, with the regions
of the paper's Table 1 (`lgelib.table1.slice_regions`: basal 25%, middle 50%, apical 25% of the myocardial slices,
canonical slice 0 basal). The **level** of a scar is the region holding its largest share.

The condition vector (`CONDITION_COLUMNS`) is [present, burden, basal share, mid share, apical share]; a scar-free
heart is all zeros. A request (`ScarRequest`, e.g. "scar present, apical, burden 5-20%") is turned into condition
vectors by resampling the descriptors of the training cases that satisfy it (`request_conditions`), so the
generator is only asked for combinations it has seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from lgelib.table1 import slice_regions

LEVELS: tuple[str, ...] = ("basal", "mid", "apical")
"""Long-axis levels, base to apex: Table 1's "Bottom 25%", "Middle 50%" and "Top 25%"."""

_REGION_OF_LEVEL = {"basal": "Bottom 25%", "mid": "Middle 50%", "apical": "Top 25%"}

CONDITION_COLUMNS: tuple[str, ...] = ("present", "burden", "share_basal", "share_mid", "share_apical")
"""The condition vector's entries, in order."""


@dataclass(frozen=True)
class ScarDescriptors:
    """What a heart's masks say about its scar.

    Attributes:
        burden: fibrosis voxels over myocardium voxels (0-1; 0 without myocardium).
        present: whether the heart has any scar voxel.
        shares: share of the scar in the basal, mid and apical myocardial slices (sums to 1; zeros without scar).
        level: the level with the largest share (the more apical one on ties), None without scar.
    """

    burden: float
    present: bool
    shares: tuple[float, float, float]
    level: str | None

    def vector(self) -> np.ndarray:
        """The condition vector (`CONDITION_COLUMNS`)."""
        return np.array([float(self.present), self.burden, *self.shares], dtype=np.float32)

    def row(self) -> dict:
        """The descriptors and the condition vector's entries as one flat row (``present`` stays a bool)."""
        return {**dict(zip(CONDITION_COLUMNS, self.vector().tolist())), **asdict(self)}


def scar_descriptors(myocardium: np.ndarray, fibrosis: np.ndarray) -> ScarDescriptors:
    """Descriptors of one heart from its (slices, rows, cols) masks, slice 0 basal (the canonical grid)."""
    myocardium, fibrosis = np.asarray(myocardium, bool), np.asarray(fibrosis, bool)
    if myocardium.shape != fibrosis.shape or myocardium.ndim != 3:
        raise ValueError(
            f"masks must be two (slices, rows, cols) arrays of one shape, got {myocardium.shape} and {fibrosis.shape}"
        )
    fibrosis = fibrosis & myocardium
    myo_voxels, scar_voxels = int(myocardium.sum()), int(fibrosis.sum())
    if scar_voxels == 0:
        return ScarDescriptors(0.0, False, (0.0, 0.0, 0.0), None)
    slices = np.flatnonzero(myocardium.any(axis=(1, 2)))
    per_slice = fibrosis[slices].sum(axis=(1, 2))
    regions = slice_regions(len(slices))
    shares = tuple(float(per_slice[regions[_REGION_OF_LEVEL[level]]].sum()) / scar_voxels for level in LEVELS)
    level = LEVELS[max(range(len(LEVELS)), key=lambda i: (round(shares[i], 12), i))]
    return ScarDescriptors(scar_voxels / myo_voxels, True, shares, level)  # type: ignore[arg-type]


def descriptor_table(case_ids: list[str], myocardium: np.ndarray, fibrosis: np.ndarray) -> pd.DataFrame:
    """One row of descriptors per case (masks stacked (N, slices, rows, cols)), indexed by case id."""
    rows = [scar_descriptors(m, f).row() for m, f in zip(myocardium, fibrosis)]
    return pd.DataFrame(rows, index=pd.Index(case_ids, name="case_id"))


@dataclass(frozen=True)
class ScarRequest:
    """A target distribution of scar: ``present`` (True, False or None for either), ``level`` (one of `LEVELS` or
    None for any) and a burden range in % of the myocardium (``burden_pct``, inclusive; None for any)."""

    present: bool | None = True
    level: str | None = None
    burden_pct: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS} or None, got {self.level!r}")
        if self.present is False and (self.level is not None or self.burden_pct not in (None, (0, 0))):
            raise ValueError("a scar-free request cannot ask for a scar level or burden")
        if self.burden_pct is not None and not 0 <= self.burden_pct[0] <= self.burden_pct[1] <= 100:
            raise ValueError(f"burden_pct must be (low, high) with 0 <= low <= high <= 100, got {self.burden_pct}")

    @classmethod
    def parse(cls, text: str) -> ScarRequest:
        """``scar-free``, ``scar``, ``scar apical``, ``scar 5-20%``, ``scar apical 5-20%``, ``any 0-5%`` (`name`'s
        own format)."""
        words = str(text).strip().lower().split()
        if words == ["scar-free"]:
            return cls(present=False)
        if not words or words[0] not in ("scar", "any"):
            raise ValueError(f"scar request {text!r} must be 'scar-free' or start with 'scar' or 'any'")
        present, level, burden = (True if words[0] == "scar" else None), None, None
        for word in words[1:]:
            if word in LEVELS:
                level = word
            elif word.endswith("%") and "-" in word:
                low, high = word[:-1].split("-", 1)
                burden = (float(low), float(high))
            else:
                raise ValueError(f"scar request {text!r}: {word!r} is neither a level {LEVELS} nor a range 'a-b%'")
        return cls(present=present, level=level, burden_pct=burden)

    @property
    def name(self) -> str:
        if self.present is False:
            return "scar-free"
        parts = ["scar" if self.present else "any"]
        if self.level:
            parts.append(self.level)
        if self.burden_pct:
            parts.append(f"{self.burden_pct[0]:g}-{self.burden_pct[1]:g}%")
        return " ".join(parts)

    def satisfied(self, table: pd.DataFrame) -> pd.Series:
        """Which rows of a `descriptor_table` meet the request (the check applied to decoded volumes too)."""
        keep = pd.Series(True, index=table.index)
        if self.present is not None:
            keep &= table["present"].astype(bool) == self.present
        if self.level is not None:
            keep &= table["level"] == self.level
        if self.burden_pct is not None:
            pct = 100 * table["burden"]
            keep &= (pct >= self.burden_pct[0]) & (pct <= self.burden_pct[1])
        return keep


def request_conditions(request: ScarRequest, training: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """``n`` condition vectors (n, len(CONDITION_COLUMNS)) for ``request``: the descriptors of training cases that
    satisfy it, drawn with replacement (seeded). Raises naming the request when no training case satisfies it."""
    matching = training[request.satisfied(training)]
    if matching.empty:
        raise ValueError(
            f"no training case satisfies the request {request.name!r} ({len(training)} training cases): "
            "the generator cannot be conditioned on a scar it has never seen"
        )
    rows = np.random.default_rng(seed).integers(len(matching), size=n)
    return matching[list(CONDITION_COLUMNS)].to_numpy(np.float32)[rows]


def request_accuracy(request: ScarRequest, decoded: pd.DataFrame) -> dict[str, float]:
    """How well decoded volumes (a `descriptor_table`) meet a request: the share meeting all of it, the share with
    scar as requested, at the requested level, within the burden range, and their median burden (%)."""
    out = {"n": float(len(decoded)), "meets_request": float(request.satisfied(decoded).mean())}
    if request.present is not None:
        out["presence_as_requested"] = float((decoded["present"].astype(bool) == request.present).mean())
    if request.level is not None:
        out["level_as_requested"] = float((decoded["level"] == request.level).mean())
    if request.burden_pct is not None:
        pct = 100 * decoded["burden"]
        out["burden_in_range"] = float(((pct >= request.burden_pct[0]) & (pct <= request.burden_pct[1])).mean())
    out["median_burden_pct"] = float(100 * decoded["burden"].median())
    return out


LEVEL_REQUESTS: tuple[str, ...] = ("scar-free", "scar basal", "scar mid", "scar apical")
"""The four classes every heart falls in exactly once: what a targeted set evens out by default."""


def fill_allocation(training: pd.DataFrame, requests: list[ScarRequest], n: int) -> dict[str, int]:
    """How many of ``n`` targeted volumes each request gets so that the training cases plus the targeted volumes
    are as even as possible over the requests (water-filling: each volume goes to the request with the fewest
    cases so far, the earlier request on ties). A request no training case meets gets none (the generator cannot
    be asked for a scar it has never seen). The requests should not overlap (as `LEVEL_REQUESTS`)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    counts = {r.name: int(r.satisfied(training).sum()) for r in requests}
    fillable = [name for name, count in counts.items() if count > 0]
    if n and not fillable:
        raise ValueError(f"no training case meets any of the requests {[r.name for r in requests]}")
    allocation = dict.fromkeys(counts, 0)
    for _ in range(n):
        name = min(fillable, key=lambda k: (counts[k] + allocation[k], fillable.index(k)))
        allocation[name] += 1
    return allocation


def proportional_allocation(training: pd.DataFrame, requests: list[ScarRequest], n: int) -> dict[str, int]:
    """How many of ``n`` volumes each request gets in the training cases' own proportions (largest remainder, the
    earlier request on ties): the untargeted control of `fill_allocation`, drawn from the same conditioned model.
    The requests should not overlap (as `LEVEL_REQUESTS`)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    counts = np.array([int(r.satisfied(training).sum()) for r in requests], np.float64)
    if n and counts.sum() == 0:
        raise ValueError(f"no training case meets any of the requests {[r.name for r in requests]}")
    shares = n * counts / counts.sum() if counts.sum() else counts
    allocation = np.floor(shares).astype(int)
    remainders = shares - allocation
    for index in sorted(range(len(requests)), key=lambda i: (-remainders[i], i))[: n - int(allocation.sum())]:
        allocation[index] += 1
    return {r.name: int(k) for r, k in zip(requests, allocation)}


ALLOCATIONS = {"fill": fill_allocation, "proportional": proportional_allocation}
"""How a set drawn from the conditioned model is spread over the requests: ``fill`` evens out the training set
(the targeted ``T<n>`` arms), ``proportional`` follows it (their control, ``C<n>``)."""


def targeted_conditions(
    training: pd.DataFrame,
    requests: list[ScarRequest],
    n: int,
    seed: int,
    allocation: str = "fill",
) -> tuple[np.ndarray, list[str]]:
    """Condition vectors (n, len(CONDITION_COLUMNS)) for a set of ``n`` volumes spread over the requests by
    ``allocation`` (:data:`ALLOCATIONS`: `fill_allocation` or `proportional_allocation`), in a seeded random order
    (so that any prefix, a smaller arm, keeps about the same mix), and the request each one is drawn for.
    `lgelib.synthesis.synthesize` draws a volume rejected by quality control again for the same row, so the kept
    set follows the allocation."""
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {sorted(ALLOCATIONS)}, got {allocation!r}")
    counts = ALLOCATIONS[allocation](training, requests, n)
    by_name = {r.name: r for r in requests}
    order = [name for name, k in counts.items() for _ in range(k)]
    order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    conditions = np.zeros((len(order), len(CONDITION_COLUMNS)), np.float32)
    for k, name in enumerate(by_name):
        rows = [i for i, d in enumerate(order) if d == name]
        if rows:
            conditions[rows] = request_conditions(by_name[name], training, len(rows), seed + 1 + k)
    return conditions, order
