"""What a rendered book may show of a dataset: the privacy guard.

A manifest says whether its images may be published (``publishable``). For a dataset that is not, no image of a
real case appears in the book: no slice, no reconstruction, no mesh, no case id. The book shows synthetic examples
instead, volumes the diffusion model generated, but only those the memorisation audit clears: no nearer to a
training patient than the median real test patient is, by myocardium overlap, by image and (where the held-out
latents exist) by latent. A synthetic volume nearer than that by any yardstick may be a near-copy of someone; new
draws from the patients' distribution would pass each test about half the time, so the guard errs towards showing
less. Every page that leaves images out says so with :func:`private_note`.
"""

from __future__ import annotations

import pandas as pd

from lgelib.data.prepare import PreparedDataset
from lgelib.quality import image_audit, mask_audit

PRIVATE_MARK = "not marked publishable"
"""The phrase every page of a private dataset carries (tests look for it)."""


def shareable_synthetic_ids(
    synthetic: PreparedDataset, real: PreparedDataset, latent: pd.DataFrame | None = None
) -> list[str]:
    """Synthetic cases a book may show: all of them for a publishable dataset; for a private one, those no nearer
    to a training case than the median real test case is, by every yardstick: 1 - myocardium Dice
    (`lgelib.quality.mask_audit`), RMS image difference (`lgelib.quality.image_audit`) and, when given, the latent
    audit (`lgelib.quality.latent_audit`). None without real test cases to compare with."""
    if real.publishable:
        return list(synthetic.case_ids)
    if not real.split.test or not synthetic.case_ids:
        return []
    audits = [mask_audit(synthetic, real), image_audit(synthetic, real)] + ([latent] if latent is not None else [])
    cleared = set(synthetic.case_ids)
    for audit in audits:
        yardstick = audit.loc[audit.kind == "real test", "distance"].median()
        cleared &= set(audit.loc[(audit.kind == "synthetic") & (audit.distance >= yardstick), "case_id"])
    return [case_id for case_id in synthetic.case_ids if case_id in cleared]


def private_note(dataset: str, synthetic_shown: int | None = None) -> str:
    """The sentence a page shows in place of real images; ``synthetic_shown`` (when the page can show synthetic
    examples) says how many generated volumes the audit cleared."""
    note = f"*The dataset `{dataset}` is {PRIVATE_MARK} in its manifest, so no image of its cases is shown here"
    if synthetic_shown is None:
        return note + ": aggregate numbers only; synthetic examples are in the synthesis and quality chapters.*"
    if synthetic_shown == 0:
        return note + (
            ", and no synthetic volume passed the memorisation check that would let it stand in "
            "(none is as far from every training case as the median real test case is, by myocardium "
            "overlap, image and latent).*"
        )
    return note + (
        f". The images are synthetic volumes generated from it, {synthetic_shown} of which pass the "
        "memorisation check: none is nearer to a training case than the median real test case is, by "
        "myocardium overlap, by image or by latent.*"
    )


def per_case_view(table: pd.DataFrame, publishable: bool) -> object:
    """A per-case table as a page may show it: the table for a publishable dataset; for a private one a note in its
    place, because a hospital's case ids and folder names are often patient or accession numbers (the numbers stay
    in the run directory's files, and the page's aggregates are shown)."""
    if publishable:
        return table
    from IPython.display import Markdown

    return Markdown(
        f"*{len(table)} per-case rows not shown: the dataset is {PRIVATE_MARK}, and its case ids may "
        "identify patients; the summary above aggregates them.*"
    )
