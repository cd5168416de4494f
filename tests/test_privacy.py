"""The privacy guard: what a book may show of a dataset not marked publishable, and what it says instead."""

from __future__ import annotations

import dataclasses

import numpy as np

from lgelib.data.dataset import Split
from lgelib.data.prepare import PreparedDataset
from lgelib.privacy import PRIVATE_MARK, private_note, shareable_synthetic_ids
from toys import toy_prepared


def synthetic_set(real: PreparedDataset, myocardium: np.ndarray) -> PreparedDataset:
    ids = [f"synth-{i:04d}" for i in range(len(myocardium))]
    n = len(myocardium)
    return PreparedDataset(ids, real.images[:n], myocardium, np.zeros_like(myocardium), {}, Split(tuple(ids), ()),
                           real.publishable)


def test_private_data_show_only_synthetic_volumes_no_nearer_to_training_than_real_test_cases() -> None:
    real = dataclasses.replace(toy_prepared(6, seed=2), publishable=False)  # 5 training, 1 test
    train = real.myocardium[real.index(list(real.split.train))]
    copy = train[0]
    blank = np.zeros_like(copy)
    blank[1:3, 2:6, 2:6] = True  # overlaps no training ring: as far as can be
    synthetic = synthetic_set(real, np.stack([copy, blank, train[1]]))
    assert shareable_synthetic_ids(synthetic, real) == ["synth-0001"]  # the two copies are held back
    publishable = dataclasses.replace(real, publishable=True)
    assert shareable_synthetic_ids(synthetic, publishable) == synthetic.case_ids  # nothing to protect
    no_test = dataclasses.replace(real, split=Split(real.split.train, ()))
    assert shareable_synthetic_ids(synthetic, no_test) == []  # no yardstick: show nothing


def test_private_note_says_what_is_left_out_and_what_stands_in() -> None:
    assert PRIVATE_MARK in private_note("clinic") and "aggregate numbers only" in private_note("clinic")
    assert "`clinic`" in private_note("clinic")
    assert "3 of which pass the memorisation check" in private_note("clinic", 3)
    assert "no synthetic volume passed" in private_note("clinic", 0)
