"""Augmented copies of training volumes on the canonical grid, for inr2vec to see more INRs than there are hearts.

inr2vec's encoder learns from one INR per training case (68 on an EMIDEC-derived split) and does not generalise to
the INRs of unseen hearts (benchmarks/README.md, "The generator, variant by variant"). The issue's first remedy is
more training INRs: INRs of flipped, rotated and intensity-changed copies of each training volume, fitted from the
same shared initialisation. The copies are for inr2vec only: the diffusion model still learns the latents of the
real training hearts, so a mirrored heart is never a sample. Test cases are never copied.

Each copy is a named, deterministic transform of one case (``<case id>-aug-<name>``): in-plane (rows, columns) on
every slice, the image resampled linearly and each mask linearly then thresholded at one half, fibrosis kept inside
the myocardium.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from lgelib.data.dataset import Split
from lgelib.data.prepare import PreparedDataset

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rotate(degrees: float) -> Callable[[Arrays], Arrays]:
    def transform(volumes: Arrays) -> Arrays:
        image, myocardium, fibrosis = volumes
        turn = dict(angle=degrees, axes=(2, 1), reshape=False, order=1, mode="nearest")
        rotated = np.clip(ndimage.rotate(image.astype(np.float32), **turn), 0.0, 1.0)
        myo = ndimage.rotate(myocardium.astype(np.float32), **turn) > 0.5
        fib = (ndimage.rotate(fibrosis.astype(np.float32), **turn) > 0.5) & myo
        return rotated.astype(image.dtype), myo.astype(myocardium.dtype), fib.astype(fibrosis.dtype)

    return transform


def _flip(volumes: Arrays) -> Arrays:
    return tuple(np.ascontiguousarray(v[:, :, ::-1]) for v in volumes)  # type: ignore[return-value]


def _gamma(power: float) -> Callable[[Arrays], Arrays]:
    def transform(volumes: Arrays) -> Arrays:
        image, myocardium, fibrosis = volumes
        return (np.clip(image, 0.0, 1.0) ** power).astype(image.dtype), myocardium, fibrosis

    return transform


AUGMENTATIONS: dict[str, Callable[[Arrays], Arrays]] = {
    "flip": _flip,
    "rot15": _rotate(15.0),
    "rotm15": _rotate(-15.0),
    "rot30": _rotate(30.0),
    "rotm30": _rotate(-30.0),
    "gamma0.7": _gamma(0.7),
    "gamma1.4": _gamma(1.4),
    "flip+rot15": lambda volumes: _rotate(15.0)(_flip(volumes)),
}
"""Each transform by name: a left-right flip, in-plane rotations by +-15 and +-30 degrees about the grid's centre
(the LV's), and gamma changes of the [0, 1] intensities (0.7 brightens, 1.4 darkens)."""


def augmented_id(case_id: str, name: str) -> str:
    """The id of ``case_id``'s copy made by transform ``name``."""
    return f"{case_id}-aug-{name}"


def augment_case(image: np.ndarray, myocardium: np.ndarray, fibrosis: np.ndarray, name: str) -> Arrays:
    """One case's (image, myocardium, fibrosis) after transform ``name`` (`AUGMENTATIONS`), same shapes and types."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]((image, myocardium, fibrosis))


def with_augmented_copies(
    prepared: PreparedDataset, case_ids: Sequence[str], names: Sequence[str]
) -> tuple[PreparedDataset, list[str]]:
    """``prepared`` with a copy of each of ``case_ids`` per transform in ``names`` appended (the originals
    unchanged, the split's training list extended by the copies), and the copies' ids in order. Refuses to copy a
    test case: inr2vec must not see a test heart in any form."""
    leaked = sorted(set(case_ids) & set(prepared.split.test))
    if leaked:
        raise ValueError(f"augmented copies are for training cases only; {', '.join(leaked)} are test cases")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(map(repr, unknown))}; known: {', '.join(AUGMENTATIONS)}")
    ids, images, myocardium, fibrosis = [], [], [], []
    mappings = dict(prepared.mappings)
    for case_id in case_ids:
        volumes = prepared.case(case_id)
        for name in names:
            image, myo, fib = augment_case(*volumes, name)
            ids.append(augmented_id(case_id, name))
            images.append(image)
            myocardium.append(myo)
            fibrosis.append(fib)
            if case_id in prepared.mappings:  # a copy lies on its case's grid
                mappings[ids[-1]] = prepared.mappings[case_id]
    if not ids:
        return prepared, []
    split = Split(tuple(prepared.split.train) + tuple(ids), tuple(prepared.split.test), prepared.split.seed)
    augmented = dataclasses.replace(
        prepared,
        case_ids=list(prepared.case_ids) + ids,
        images=np.concatenate([prepared.images, np.stack(images)]),
        myocardium=np.concatenate([prepared.myocardium, np.stack(myocardium)]),
        fibrosis=np.concatenate([prepared.fibrosis, np.stack(fibrosis)]),
        mappings=mappings,
        split=split,
    )
    return augmented, ids
