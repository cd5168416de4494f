"""Synthesis-quality helpers on known inputs: Figure 3's pair sets, the relative latent audit and its summary, the
memorisation share and the texture measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from lgelib.data.dataset import Split
from lgelib.data.prepare import PreparedDataset
from lgelib.quality import (
    audit_summary,
    decoded_mask_audit,
    edge_strength,
    high_frequency_rms,
    latent_audit,
    mask_audit,
    nearer_than_median_test,
    similarity_sets,
)
from toys import toy_prepared, toy_volumes


def synthetic_copy_of(real: PreparedDataset, case_ids: list[str]) -> PreparedDataset:
    """A 'synthetic' set whose volumes are exact copies of real training cases."""
    index = real.index(case_ids)
    ids = [f"synth-{i:04d}" for i in range(len(case_ids))]
    return PreparedDataset(
        ids, real.images[index], real.myocardium[index], real.fibrosis[index], {}, Split(tuple(ids), ()), True
    )


def test_similarity_sets_find_a_copied_slice_and_keep_the_yardstick() -> None:
    real = toy_prepared(5)
    synthetic = synthetic_copy_of(real, [real.split.train[1]])
    sets = similarity_sets(synthetic, real)
    assert list(sets) == ["synthetic vs nearest real", "all synthetic-real pairs", "real test vs nearest real"]
    nearest = sets["synthetic vs nearest real"]
    assert set(nearest.real) == {1} and np.isinf(nearest.psnr_db[nearest.region == "whole slice"]).all()
    assert len(sets["all synthetic-real pairs"]) == 3 * len(real.split.train)  # 3 regions per pair
    assert len(sets["real test vs nearest real"]) == 3 * len(real.split.test)


def test_latent_audit_is_relative_to_the_training_spacing_and_counts_near_copies() -> None:
    training = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])  # nearest-other distances 2, 2, 4: median 2
    synthetic = np.array([[0.0, 0.0], [2.0, 1.0]])  # a copy of case a, and 1 away from case b
    test = np.array([[0.0, -3.0]])  # 3 away from case a
    audit = latent_audit(synthetic, test, training, ["s0", "s1"], ["t0"], ["a", "b", "c"])
    assert audit.distance.tolist() == [0.0, 0.5, 1.5]
    assert audit.nearest_training.tolist() == ["a", "b", "a"]
    summary = audit_summary(audit)
    assert summary.loc["synthetic", "nearer than every real test case"] == 2
    assert summary.loc["real test", "50%"] == 1.5


def test_mask_audit_scores_copies_zero_and_new_masks_above_zero() -> None:
    real = toy_prepared(5)
    copy = synthetic_copy_of(real, [real.split.train[0]])
    _, other_myo, _ = toy_volumes(1, seed=99)
    new = PreparedDataset(["synth-new"], copy.images, other_myo, copy.fibrosis, {}, Split(("synth-new",), ()), True)
    assert mask_audit(copy, real).query("kind == 'synthetic'").distance.iloc[0] == 0.0
    assert mask_audit(new, real).query("kind == 'synthetic'").distance.iloc[0] > 0.0


def test_nearer_than_median_test_counts_synthetic_cases_below_the_test_median() -> None:
    audit = pd.DataFrame(
        {"kind": ["synthetic"] * 4 + ["real test"] * 3, "distance": [0.0, 0.1, 0.5, 0.9, 0.2, 0.4, 0.6]}
    )
    assert nearer_than_median_test(audit) == 0.5  # 0.0 and 0.1 are below the test median 0.4
    assert np.isnan(nearer_than_median_test(audit[audit.kind == "synthetic"]))
    # judged against another audit's synthetic rows (e.g. decoded test cases), whose median here is 0.7
    decoded_test = pd.DataFrame({"kind": ["synthetic"] * 2 + ["real test"], "distance": [0.6, 0.8, 0.0]})
    assert nearer_than_median_test(audit, reference=decoded_test) == 0.75  # 0.0, 0.1 and 0.5 are below 0.7


def test_texture_measures_see_blur_and_weak_edges() -> None:
    images, myocardium, _ = toy_volumes(3, shape=(2, 40, 40))
    blurred = ndimage.gaussian_filter(images, sigma=(0, 0, 2, 2))
    sharp_hf, blurred_hf = high_frequency_rms(images), high_frequency_rms(blurred)
    assert (blurred_hf < 0.5 * sharp_hf).all(), (sharp_hf, blurred_hf)
    flat = np.full_like(images, 0.4)
    assert np.allclose(high_frequency_rms(flat), 0.0) and np.allclose(edge_strength(flat, myocardium), 0.0)
    assert (edge_strength(blurred, myocardium) < edge_strength(images, myocardium)).all()
    step = np.zeros((1, 1, 10, 10))
    step[..., 5:] = 1.0
    mask = np.zeros((1, 1, 10, 10), bool)
    mask[..., 3:7, 5:7] = True  # 2 x 4 pixels, all border: column 5 on the step (gradient 0.5), column 6 flat (0)
    assert np.isclose(edge_strength(step, mask)[0], (4 * 0.5 + 4 * 0.0) / 8)
    assert np.isnan(edge_strength(step, np.zeros_like(mask))[0])


class LookupDecoder(torch.nn.Module):
    """A stand-in inr2vec decoder: latent [k] draws myocardium mask k of ``masks`` (N, Z, R, C) exactly."""

    decode_width = 1

    def __init__(self, masks: np.ndarray) -> None:
        super().__init__()
        self.masks = torch.as_tensor(masks, dtype=torch.bool)

    def decode(self, latents: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        shape = torch.tensor(self.masks.shape[1:])
        voxel = ((coords + 1) / 2 * (shape - 1)).round().long()  # coordinates back to voxel indices
        inside = self.masks[latents[:, 0].long()][:, voxel[:, 0], voxel[:, 1], voxel[:, 2]]
        logits = torch.where(inside, 10.0, -10.0)
        return torch.stack([torch.zeros_like(logits), logits, torch.full_like(logits, -10.0)], dim=-1)


def test_decoded_mask_audit_scores_a_decoded_training_heart_zero_and_the_test_hearts_as_mask_audit() -> None:
    real = toy_prepared(5)
    decoder = LookupDecoder(real.myocardium)
    copied, test = real.split.train[2], real.split.test[0]
    latents = torch.tensor([[float(real.index([copied])[0])], [float(real.index([test])[0])]])
    audit = decoded_mask_audit(decoder, latents, ["decoded-copy", "decoded-test"], real)
    decoded = audit[audit.kind == "synthetic"].set_index("case_id")
    assert decoded.loc["decoded-copy", "distance"] == 0.0 and decoded.loc["decoded-copy", "nearest_training"] == copied
    # the decoded test heart is its own mask: exactly where the real test heart itself sits
    real_test = audit[audit.kind == "real test"].set_index("case_id")
    assert decoded.loc["decoded-test", "distance"] == pytest.approx(real_test.loc[test, "distance"])
    assert decoded.loc["decoded-test", "distance"] > 0
    with pytest.raises(ValueError, match="name each decoded heart"):
        decoded_mask_audit(decoder, latents, ["only one"], real)
