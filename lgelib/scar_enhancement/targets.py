"""Training targets by tissue-specific gamma correction (paper Sec. 2.1): I_e = I^(1/gamma) on [0, 1] intensities,
gamma > 1 on the scar (brighter), gamma < 1 on a blood pool brighter than the dataset's mean blood pool (darker),
healthy myocardium and the rest unchanged. The gamma rule is `GammaSettings`'."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lgelib.scar_enhancement.settings import GammaSettings
from lgelib.scar_enhancement.slices import ScarSlices


def _gamma_to_reach(mean: float, target: float) -> float:
    """The gamma that takes a mean intensity ``mean`` to ``target`` under I^(1/gamma) (both in (0, 1)). Applied to
    a tissue's pixels it moves their mean only approximately there (the mean of I^(1/gamma) is not the mean of I
    raised to 1/gamma): a scar ends somewhat below its goal, a blood pool somewhat above; exact for uniform tissue."""
    mean, target = float(np.clip(mean, 1e-4, 1 - 1e-4)), float(np.clip(target, 1e-4, 1 - 1e-4))
    return float(np.log(mean) / np.log(target))


def mean_blood_pool(slices: ScarSlices) -> float:
    """The mean of the slices' blood-pool means (the paper's dataset average, from the training slices)."""
    means = [float(img[b].mean()) for img, b in zip(slices.image, slices.blood) if b.any()]
    if not means:
        raise ValueError("no slice has a blood pool: the dataset's mean blood pool is undefined")
    return float(np.mean(means))


def gamma_targets(
    slices: ScarSlices, settings: GammaSettings, blood_reference: float
) -> tuple[np.ndarray, pd.DataFrame]:
    """Scar-enhanced targets (N, H, W) and the gammas applied per slice (columns ``blood_gamma``, ``scar_gamma``;
    1 where a tissue is absent or left alone). ``blood_reference`` is the training slices' `mean_blood_pool`."""
    targets = slices.image.copy()
    rows = []
    for i, (image, blood, scar) in enumerate(zip(slices.image, slices.blood, slices.scar)):
        blood_gamma = scar_gamma = 1.0
        blood_mean = float(image[blood].mean()) if blood.any() else float("nan")
        if blood.any() and blood_mean > blood_reference:
            blood_gamma = max(settings.blood_gamma_min, _gamma_to_reach(blood_mean, blood_reference))
            targets[i][blood] = image[blood] ** (1 / blood_gamma)
            blood_mean = float(targets[i][blood].mean())
        if scar.any():
            scar_mean = float(image[scar].mean())
            goal = min((blood_mean if blood.any() else scar_mean) + settings.scar_blood_gap, settings.ceiling)
            scar_gamma = float(np.clip(_gamma_to_reach(scar_mean, goal), *settings.scar_gamma))
            targets[i][scar] = image[scar] ** (1 / scar_gamma)
        rows.append({"blood_gamma": blood_gamma, "scar_gamma": scar_gamma})
    return targets.astype(np.float32), pd.DataFrame(rows)
