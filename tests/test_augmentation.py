"""Augmented copies for inr2vec: named deterministic transforms of training cases only, masks kept consistent."""

from __future__ import annotations

import numpy as np
import pytest

from lgelib.augmentation import augment_case, augmented_id, with_augmented_copies
from toys import toy_prepared


def test_copies_are_appended_transforms_of_training_cases_and_never_of_test_cases() -> None:
    prepared = toy_prepared(4)
    train = list(prepared.split.train)
    augmented, ids = with_augmented_copies(prepared, train, ["flip", "rot30", "gamma0.7"])
    assert ids == [augmented_id(c, n) for c in train for n in ("flip", "rot30", "gamma0.7")]
    assert augmented.case_ids == prepared.case_ids + ids and augmented.split.test == prepared.split.test
    assert set(ids) <= set(augmented.split.train)
    for case_id in prepared.case_ids:  # the originals are untouched
        for kept, original in zip(augmented.case(case_id), prepared.case(case_id)):
            np.testing.assert_array_equal(kept, original)
    image, myocardium, fibrosis = prepared.case(train[0])
    flipped = augmented.case(augmented_id(train[0], "flip"))
    np.testing.assert_array_equal(flipped[0], image[:, :, ::-1])
    np.testing.assert_array_equal(flipped[1], myocardium[:, :, ::-1])
    rotated = augmented.case(augmented_id(train[0], "rot30"))
    assert not np.array_equal(rotated[1], myocardium)  # turned, about the centre: about the same ring area
    assert abs(int(rotated[1].sum()) - int(myocardium.sum())) < 0.15 * myocardium.sum()
    assert not (rotated[2] & ~rotated[1]).any()  # scar stays inside the myocardium
    brighter = augmented.case(augmented_id(train[0], "gamma0.7"))
    assert (brighter[0] >= image - 1e-6).all() and (brighter[0] > image + 1e-3).any()
    np.testing.assert_array_equal(brighter[2], fibrosis)
    back = augment_case(*augment_case(image, myocardium, fibrosis, "rot30"), "rotm30")[1]
    assert 2 * (back & myocardium).sum() / (back.sum() + myocardium.sum()) > 0.8
    test_case = prepared.split.test[0]
    with pytest.raises(ValueError, match=f"{test_case} are test cases"):
        with_augmented_copies(prepared, [test_case], ["flip"])
    with pytest.raises(ValueError, match="unknown augmentation 'mirror'"):
        with_augmented_copies(prepared, train, ["mirror"])
