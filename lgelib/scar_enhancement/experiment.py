"""The paper's evaluation of chapter 08, on the run's test slices: Table 1 (original slices against enhanced ones),
the ablation (localized noise yes / no, mean of k yes / no) and CNR against lambda (paper Fig. 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lgelib.scar_enhancement.diffusion import TrainedDenoiser, enhance
from lgelib.scar_enhancement.evaluation import enhancement_metrics, summary_row
from lgelib.scar_enhancement.settings import SamplingSettings
from lgelib.scar_enhancement.slices import ScarSlices


@dataclass
class EnhancementResult:
    """Enhanced test slices (mean of k, local model), every variant's per-slice metrics, and the summary tables."""

    enhanced: np.ndarray
    per_slice: pd.DataFrame
    table: pd.DataFrame
    ablation: pd.DataFrame


def evaluate_enhancement(
    local: TrainedDenoiser,
    global_: TrainedDenoiser | None,
    test: ScarSlices,
    targets: np.ndarray,
    roi: np.ndarray,
    sampling: SamplingSettings,
    device: str | None = None,
) -> EnhancementResult:
    """Enhance the test slices with the localized model (mean of k, and its first sample alone) and, where given,
    the global ablation model, and score them all as the paper does: SSIM and PSNR against the gamma targets on
    the ROI crop, CNR(scar, myo) and CNR(scar, blood) on slices with scar."""
    variants: dict[tuple[str, str], np.ndarray] = {}
    mean, samples = enhance(
        local, test.image, roi, sampling.lam, sampling.k, sampling.seed, sampling.batch_size, device
    )
    variants[("yes", "yes")], variants[("yes", "no")] = mean, samples[0]
    if global_ is not None:
        g_mean, g_samples = enhance(
            global_, test.image, roi, sampling.lam, sampling.k, sampling.seed, sampling.batch_size, device
        )
        variants[("no", "yes")], variants[("no", "no")] = g_mean, g_samples[0]
    frames = [enhancement_metrics(test, test.image, targets, roi).assign(variant="baseline (original slices)")]
    frames.append(enhancement_metrics(test, targets, targets, roi).assign(variant="gamma targets"))
    for (is_local, is_mean), images in variants.items():
        frames.append(
            enhancement_metrics(test, images, targets, roi).assign(variant=f"local {is_local}, mean {is_mean}")
        )
    per_slice = pd.concat(frames, ignore_index=True)
    summary = {v: summary_row(g) for v, g in per_slice.groupby("variant", sort=False)}
    table = pd.DataFrame(
        {
            "Original slices": summary["baseline (original slices)"],
            "Enhanced (local, mean)": summary["local yes, mean yes"],
            "Gamma targets (goal)": summary["gamma targets"],
        }
    ).T
    table.loc["Original slices", ["SSIM %", "PSNR dB"]] = "-"  # the paper scores outputs only
    table.loc["Gamma targets (goal)", ["SSIM %", "PSNR dB"]] = "-"
    ablation = pd.DataFrame(
        [
            {"local": v.split(",")[0].split()[1], "mean": v.split(",")[1].split()[1], **summary[v]}
            for v in summary
            if v.startswith("local")
        ]
    )
    return EnhancementResult(mean, per_slice, table, ablation)


def predicted_roi_table(
    local: TrainedDenoiser,
    test: ScarSlices,
    targets: np.ndarray,
    predicted_myocardium: np.ndarray,
    dilations: list[int],
    sampling: SamplingSettings,
    device: str | None = None,
) -> pd.DataFrame:
    """Table 1's enhanced row with the ROI the paper uses at inference: a segmentation model's myocardium with its
    cavity filled (`lgelib.scar_enhancement.roi.roi_from_segmentation`), grown by each of ``dilations`` pixels,
    beside the reference ROI. ``scar outside ROI %`` is the share of reference scar pixels the ROI leaves out (left
    as they were, so not enhanced): the paper's reason to dilate. CNR is measured on the reference masks."""
    from lgelib.scar_enhancement.roi import reference_roi, roi_from_segmentation

    if predicted_myocardium.shape != test.myocardium.shape:
        raise ValueError(
            f"predicted myocardium has shape {predicted_myocardium.shape}, the test slices {test.myocardium.shape}"
        )
    rois = {"reference labels": reference_roi(test, sampling.roi_dilation)}  # Table 1's own ROI
    rois.update({f"predicted, +{d} px": roi_from_segmentation(predicted_myocardium, d) for d in dilations})
    rows = []
    for name, roi in rois.items():
        result = evaluate_enhancement(local, None, test, targets, roi, sampling, device)
        outside = 100.0 * (test.scar & ~roi).sum() / max(int(test.scar.sum()), 1)
        row = result.table.loc["Enhanced (local, mean)"].to_dict()
        rows.append({"ROI": name, "scar outside ROI %": round(float(outside), 1), **row})
    return pd.DataFrame(rows).set_index("ROI")


LAMBDA_FRACTIONS = (0.02, 0.05, 0.1, 0.25, 0.5, 0.8)
"""Where the CNR-against-lambda curve is measured, as fractions of T (besides step 1 and the profile's lambda)."""


def lambda_grid(timesteps: int, lam: int) -> list[int]:
    """The lambdas of the CNR curve: step 1, :data:`LAMBDA_FRACTIONS` of ``timesteps`` and the profile's own
    ``lam``, sorted, each once, within 1..T."""
    grid = {1, int(lam), *(int(round(f * timesteps)) for f in LAMBDA_FRACTIONS)}
    return sorted(value for value in grid if 1 <= value <= timesteps)


def curve_slices(test: ScarSlices, max_slices: int = 16) -> np.ndarray:
    """Indices of the test slices the CNR curve is measured on: the first ``max_slices`` with scar."""
    return np.flatnonzero(test.with_scar)[:max_slices]


def original_cnr(test: ScarSlices, roi: np.ndarray, max_slices: int = 16) -> dict[str, float]:
    """Mean CNR(scar, myo) and CNR(scar, blood) of the original slices the CNR curve is measured on
    (`curve_slices`): the level the curve starts from."""
    chosen = curve_slices(test, max_slices)
    metrics = enhancement_metrics(test.subset(chosen), test.image[chosen], None, roi[chosen])
    return {
        "CNR(scar, myo)": float(metrics.cnr_scar_myo.mean()),
        "CNR(scar, blood)": float(metrics.cnr_scar_blood.mean()),
    }


def cnr_against_lambda(
    denoiser: TrainedDenoiser,
    test: ScarSlices,
    roi: np.ndarray,
    lambdas: list[int],
    seed: int = 0,
    max_slices: int = 16,
    device: str | None = None,
) -> pd.DataFrame:
    """Mean CNR(scar, myo) and CNR(scar, blood) of one sample per slice against lambda (paper Fig. 2), on up to
    ``max_slices`` test slices with scar (`curve_slices`, the same ones for every lambda; `original_cnr` gives
    their level before enhancement)."""
    chosen = curve_slices(test, max_slices)
    subset = test.subset(chosen)
    rows = []
    for lam in lambdas:
        images, _ = enhance(denoiser, subset.image, roi[chosen], lam, 1, seed, device=device)
        metrics = enhancement_metrics(subset, images, None, roi[chosen])
        rows.append(
            {
                "lambda": lam,
                "CNR(scar, myo)": float(metrics.cnr_scar_myo.mean()),
                "CNR(scar, blood)": float(metrics.cnr_scar_blood.mean()),
                "slices": len(chosen),
            }
        )
    return pd.DataFrame(rows)


PAPER_TABLE1 = pd.DataFrame(
    {
        "SSIM %": ["-", "96.06 ± 6.24"],
        "PSNR dB": ["-", "43.75 ± 18.04"],
        "CNR(scar, myo)": ["3.62 ± 1.40", "4.97 ± 2.42"],
        "CNR(scar, blood)": ["0.85 ± 0.96", "1.65 ± 1.70"],
    },
    index=["Original slices", "Enhanced (local, mean)"],
)
"""Hasny et al., Table 1 (188 test patients with hypertrophic cardiomyopathy; their "Ours" and "Baseline" rows)."""

PAPER_ABLATION = pd.DataFrame(
    [
        {
            "local": "no",
            "mean": "no",
            "SSIM %": "94.87 ± 6.89",
            "PSNR dB": "36.06 ± 8.23",
            "CNR(scar, myo)": "4.67 ± 2.24",
            "CNR(scar, blood)": "1.48 ± 1.57",
        },
        {
            "local": "yes",
            "mean": "no",
            "SSIM %": "95.66 ± 6.54",
            "PSNR dB": "42.51 ± 16.89",
            "CNR(scar, myo)": "4.86 ± 2.43",
            "CNR(scar, blood)": "1.66 ± 1.75",
        },
        {
            "local": "yes",
            "mean": "yes",
            "SSIM %": "96.06 ± 6.24",
            "PSNR dB": "43.75 ± 18.04",
            "CNR(scar, myo)": "4.97 ± 2.42",
            "CNR(scar, blood)": "1.65 ± 1.70",
        },
    ]
)
"""Hasny et al., Table 2 (the ablation; the paper has no global-with-mean row)."""


RECORDED = {
    "scar_enhancement_emidec.csv": "Table 1 and ablation, EMIDEC-derived (smoke profile, split 0)",
    "scar_enhancement_emidec_lambda.csv": "CNR against lambda, EMIDEC-derived (one sample per slice)",
    "scar_enhancement_emidec_predicted_roi.csv": "The ROI from nnU-Net's myocardium (N0, real-cpu), EMIDEC-derived",
}
"""Chapter 08's tables measured on EMIDEC-derived, kept in ``benchmarks/results/`` (file -> title)."""


def recorded_enhancement(folder=None) -> dict[str, pd.DataFrame]:
    """The recorded EMIDEC-derived tables (`RECORDED`) found in ``folder`` (default: the repository's
    ``benchmarks/results``), by title, indexed by their row label (variant or ROI) where they have one."""
    from lgelib.conditioning import read_recorded

    tables = {}
    for title, table in read_recorded(RECORDED, folder).items():
        labels = [column for column in ("variant", "ROI") if column in table.columns]
        tables[title] = table.set_index(labels[0]) if labels else table
    return tables
