"""The privacy guard: what a book may show of a dataset not marked publishable, and what it says instead."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lgelib.data.dataset import Split
from lgelib.data.prepare import PreparedDataset
from lgelib.privacy import PRIVATE_MARK, private_note, shareable_synthetic_ids
from toys import toy_prepared


def synthetic_set(real: PreparedDataset, images: np.ndarray, myocardium: np.ndarray) -> PreparedDataset:
    ids = [f"synth-{i:04d}" for i in range(len(myocardium))]
    return PreparedDataset(
        ids, images, myocardium, np.zeros_like(myocardium), {}, Split(tuple(ids), ()), real.publishable
    )


def test_private_data_show_only_synthetic_volumes_as_far_from_training_as_the_median_test_case() -> None:
    real = dataclasses.replace(toy_prepared(6, seed=2), publishable=False)  # 5 training, 1 test
    train = real.index(list(real.split.train))
    copied_mask, copied_image = real.myocardium[train[0]], real.images[train[0]]
    far_mask = np.zeros_like(copied_mask)
    far_mask[1:3, 2:6, 2:6] = True  # overlaps no training ring: as far as can be
    far_image = np.random.default_rng(0).random(copied_image.shape).astype(np.float32)  # like no training image
    synthetic = synthetic_set(
        real,
        np.stack([copied_image, far_image, far_image, copied_image]),
        np.stack([copied_mask, far_mask, real.myocardium[train[1]], far_mask]),
    )
    # 0 copies both, 2 copies a mask, 3 copies an image: only 1 is new by every yardstick.
    assert shareable_synthetic_ids(synthetic, real) == ["synth-0001"]
    latent = pd.DataFrame(
        {
            "case_id": ["synth-0001", "synth-0002", real.split.test[0]],
            "kind": ["synthetic", "synthetic", "real test"],
            "distance": [0.2, 0.9, 0.5],
        }
    )
    assert shareable_synthetic_ids(synthetic, real, latent) == []  # its latent is nearer than the test case's
    publishable = dataclasses.replace(real, publishable=True)
    assert shareable_synthetic_ids(synthetic, publishable) == synthetic.case_ids  # nothing to protect
    no_test = dataclasses.replace(real, split=Split(real.split.train, ()))
    assert shareable_synthetic_ids(synthetic, no_test) == []  # no yardstick: show nothing


def test_private_note_says_what_is_left_out_and_what_stands_in() -> None:
    assert PRIVATE_MARK in private_note("clinic") and "aggregate numbers only" in private_note("clinic")
    assert "`clinic`" in private_note("clinic")
    assert "3 of which pass the memorisation check" in private_note("clinic", 3)
    assert "no synthetic volume passed" in private_note("clinic", 0)
