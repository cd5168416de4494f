"""Profiles: named settings for the whole pipeline. ``smoke`` runs on 2 CPU cores in minutes; ``paper``
matches the paper's settings and wants a GPU. Each stage adds its own section as it is built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any

from lgelib.conditioning import ConditioningSettings
from lgelib.scar_enhancement.settings import PAPER_ENHANCEMENT, SMOKE_ENHANCEMENT, EnhancementSettings
from lgelib.data.grid import GridSettings
from lgelib.edm import EdmSettings, SamplerSettings
from lgelib.inr.fit import FitSettings
from lgelib.inr.siren import SirenSettings
from lgelib.inr2vec import Inr2VecSettings
from lgelib.segmentation_setup import SegmentationSettings
from lgelib.synthesis import SynthesisSettings


@dataclass(frozen=True)
class InrSettings:
    """Stage 1: the joint SIREN's architecture, how each is fitted, and how many volumes share a batch."""

    spec: SirenSettings
    fit: FitSettings
    cases_per_batch: int


@dataclass(frozen=True)
class Profile:
    """Settings of one profile."""

    name: str
    grid: GridSettings
    inr: InrSettings
    inr2vec: Inr2VecSettings
    edm: EdmSettings
    synthesis: SynthesisSettings
    segmentation: SegmentationSettings
    conditioning: ConditioningSettings = dataclasses.field(default_factory=ConditioningSettings)
    enhancement: EnhancementSettings = SMOKE_ENHANCEMENT


HEUN_64 = SamplerSettings(num_steps=64)
"""EDM's Heun sampler with 64 instead of the published 18 steps: with the exact denoiser of a Gaussian, 18 steps
inflate the sampled variance by about 8% and 64 by about 1% (tests/test_edm.py); a latent MLP costs little."""

SMOKE_SEGMENTATION = SegmentationSettings(
    configuration="2d",
    epochs=40,
    iterations_per_epoch=15,
    val_iterations_per_epoch=2,
    folds=("all",),
    target_spacing_mm=(8.0, 3.0, 3.0),
    batch_size=12,
    patch_size=(64, 64),
    max_features=64,
    foreground_oversampling=0.66,
    save_every=20,
    cpu_bf16=None,
)
"""A small 2d nnU-Net for 2 CPU cores: one model on every training case (no cross-validation), 600 iterations of
12 patches of 64 x 64 pixels at 3 mm (192 mm, the whole heart), channels capped at 64, two thirds of the patches
centred on a label, bfloat16 autocast where the CPU computes it natively. Measured choices in benchmarks/README.md:
480 iterations of 8 patches never learned the fibrosis label; on the embedded cohort bfloat16 trained 1.5x faster
and gave each of three training seeds the Dice float32 gave it to within 0.005 (the seeds themselves differ by up to
0.24 in fibrosis). The real-data budgets stay float32: there bfloat16 has not had that seed-controlled check."""

REAL_CPU_SEGMENTATION = SegmentationSettings(
    configuration="2d",
    epochs=30,
    iterations_per_epoch=50,
    val_iterations_per_epoch=2,
    folds=("all",),
    target_spacing_mm=(8.0, 3.0, 3.0),
    batch_size=4,
    patch_size=(128, 128),
    max_features=64,
    foreground_oversampling=0.33,
    save_every=10,
)
"""A first nnU-Net budget for real scans on a CPU (the one the first EMIDEC-derived tables used): whole slices at
3 mm (128 x 128 patches cover a 384 mm field of view, so the network sees what lies far from the heart), batches of
4, 1,500 iterations (about 8 minutes on 2 cores), nnU-Net's share of foreground patches, float32 (bfloat16 autocast
was 1.4x faster but then did not learn the fibrosis label). Chosen from the Dice-against-budget curve on
EMIDEC-derived (benchmarks/README.md): 64 x 64 patches mostly centred on the heart over-segmented the far field. It
does **not** reach the goal set for a meaningful baseline (myocardium 0.75, fibrosis 0.35 Volume Dice; measured
0.69 and 0.18 on split 0): REAL_CPU_LONG_SEGMENTATION, twice as long, does, and is what real scans get by default."""

REAL_CPU_LONG_SEGMENTATION = dataclasses.replace(REAL_CPU_SEGMENTATION, epochs=60, save_every=20)
"""REAL_CPU_SEGMENTATION trained twice as long (3,000 iterations, 8.5-11 minutes of training per model on the
2-core machines measured, 17-19 on the first and slowest): the first point of the Dice-against-budget curve on
EMIDEC-derived that meets the goal set for a meaningful baseline (split seed 0, 8 test cases with scar: myocardium
0.78 and fibrosis 0.36 Volume Dice with training seed 0, 0.78 and 0.37 with seed 1, which learned no scar at all in
REAL_CPU_SEGMENTATION's 1,500 iterations); over three splits N0 reaches 0.76 and 0.40. Every arm of a multi-split
experiment costs that much: 3 splits x 7 arms is about 3.5 hours on 2 cores (benchmarks/README.md)."""

SEGMENTATION_BUDGETS: dict[str, SegmentationSettings] = {
    "smoke": SMOKE_SEGMENTATION,
    "real-cpu": REAL_CPU_SEGMENTATION,
    "real-cpu-long": REAL_CPU_LONG_SEGMENTATION,
    "paper": SegmentationSettings(),
}
"""Named nnU-Net budgets (``seg_budget``): ``smoke`` for the embedded cohort, ``real-cpu`` for real scans on a CPU
(partly learned: see REAL_CPU_SEGMENTATION; the budget of the first recorded EMIDEC-derived tables),
``real-cpu-long`` (the baseline meets the goal: see REAL_CPU_LONG_SEGMENTATION; every arm of the recorded
EMIDEC-derived Table 1 was measured at it), ``paper`` nnU-Net's default (a GPU job)."""

REAL_DATA_SEG_BUDGETS: dict[str, str] = {"smoke": "real-cpu-long"}
"""The budget a profile uses on real scans (a manifest whose source is not the phantom) when the run names none:
the ``smoke`` budget is sized for the embedded cohort and learns nothing on EMIDEC-derived (myocardium 0.33,
fibrosis 0.00 Volume Dice on split 0; benchmarks/README.md), so real scans get the smallest budget at which the
real-only baseline is meaningful. The ``paper`` profile keeps nnU-Net's default on any data."""

PROFILES: dict[str, Profile] = {
    # Same 160 mm field of view in both; the smoke grid is coarser so every later stage runs on a CPU.
    "smoke": Profile(
        name="smoke",
        grid=GridSettings(shape=(8, 64, 64), inplane_spacing_mm=2.5),
        # 15,907 parameters; about 4 s per volume on 2 CPU cores (5.2 ms per volume and step; benchmarks/README.md).
        inr=InrSettings(
            spec=SirenSettings(hidden=64, backbone_layers=4, head_hidden=16),
            fit=FitSettings(steps=800, points_per_step=4096, lr=1e-3, lr_final=1e-4),
            cases_per_batch=32,
        ),
        # Narrower encoder and decoder, fewer steps and points than the paper's (measured in benchmarks/README.md).
        inr2vec=Inr2VecSettings(
            encoder_hidden=(128, 128, 128),
            decoder_hidden=256,
            frequencies=8,
            max_frequency_log2=7,
            steps=600,
            batch_size=32,
            points_per_inr=512,
            lr=1e-3,
            lr_final=1e-4,
        ),
        edm=EdmSettings(
            width=256,
            blocks=3,
            embedding_dim=128,
            dropout=0.1,
            steps=3000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=200,
            ema_halflife_samples=20_000,
        ),
        synthesis=SynthesisSettings(n_volumes=200, sampler=HEUN_64),
        segmentation=SMOKE_SEGMENTATION,
    ),
    "paper": Profile(
        name="paper",
        grid=GridSettings(shape=(12, 128, 128), inplane_spacing_mm=1.25),
        # The paper's 4 x 256 backbone; 260,323 parameters (layout in lgelib/inr/siren.py).
        inr=InrSettings(
            spec=SirenSettings(hidden=256, backbone_layers=4, head_hidden=80),
            fit=FitSettings(steps=2000, points_per_step=16384, lr=3e-4, lr_final=3e-5),
            cases_per_batch=32,
        ),
        # inr2vec's published sizes (encoder 512-512-1024 -> 512, decoder 512 wide, 2 + 2 layers, PE 10 x 2^0..2^9).
        inr2vec=Inr2VecSettings(),
        edm=EdmSettings(),
        synthesis=SynthesisSettings(n_volumes=200, sampler=HEUN_64),
        # nnU-Net's default: 3d_fullres, 1000 epochs x 250 iterations, 5 folds ensembled (a GPU job).
        segmentation=SegmentationSettings(),
        enhancement=PAPER_ENHANCEMENT,
    ),
}


GENERATOR_CHOICES: dict[str, tuple[dict, dict, dict]] = {
    # name: (Inr2VecSettings fields, EdmSettings fields, SynthesisSettings fields)
    "paper": (
        dict(targets="inr", decoder="relu-pe", latent="inr2vec"),
        dict(holdout_fraction=0.0),
        dict(geometry="nominal"),
    ),
    "data": (
        dict(targets="data", decoder="relu-pe", latent="inr2vec"),
        dict(holdout_fraction=0.0),
        dict(geometry="nominal"),
    ),
    "data+film+select+geometry": (
        dict(targets="data", decoder="film-siren", latent="inr2vec"),
        dict(holdout_fraction=0.15),
        dict(geometry="sampled"),
    ),
    "weights+select+geometry": (
        dict(targets="inr", decoder="relu-pe", latent="weights"),
        dict(holdout_fraction=0.15),
        dict(geometry="sampled"),
    ),
}
"""Named generator choices (`with_generator`): the settings each name fixes. ``paper`` is every profile's default.
Measured side by side in benchmarks/README.md ("The generator, variant by variant")."""

GENERATORS: tuple[str, ...] = tuple(GENERATOR_CHOICES)


def with_generator(profile: Profile, name: str) -> Profile:
    """``profile`` with the generator choices called ``name``; only stages 2-3 and the synthetic geometry change.

    - ``paper``: inr2vec distilled from the INRs' outputs, the ReLU + positional-encoding decoder, EDM's last EMA,
      every synthetic volume at the median voxel size.
    - ``data``: the decoder trained against the data the INRs were fitted to (the reference inr2vec's choice).
    - ``data+film+select+geometry``: ``data`` with the shift-modulated SIREN decoder, the EDM snapshot chosen on
      15% held-out training latents, and each sample's slice spacing drawn with its latent.
    - ``weights+select+geometry``: diffusion on the INR weights themselves (HyperDiffusion; decoded losslessly),
      with the same selection and geometry.
    """
    if name not in GENERATOR_CHOICES:
        raise ValueError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}")
    inr2vec, edm, synthesis = GENERATOR_CHOICES[name]
    return replace(
        profile,
        inr2vec=replace(profile.inr2vec, **inr2vec),
        edm=replace(profile.edm, **edm),
        synthesis=replace(profile.synthesis, **synthesis),
    )


def generator_name(profile: Profile) -> str:
    """The name in `GENERATORS` whose choices ``profile`` uses, or ``"custom"`` (a page says which generator made
    it)."""
    return next((name for name in GENERATORS if with_generator(profile, name) == profile), "custom")


AUTHORS_INR = InrSettings(
    spec=SirenSettings(
        hidden=512,
        backbone_layers=5,
        head_hidden=0,
        first_omega=1.0,
        hidden_omega=1.0,
        encoding_frequencies=10,
        init="authors",
    ),
    fit=FitSettings(
        steps=3000,
        points_per_step=65536,
        lr=1e-4,
        lr_final=1e-4,
        loss_weights=(1.0, 0.5, 0.5),
        myocardium_fraction=0.0,
        fibrosis_fraction=0.0,
    ),
    cases_per_batch=32,
)
"""The authors' public ``fit_inr.py`` and ``model.py`` at their defaults, re-implemented: 10 Fourier-feature
frequencies of the coordinates (63 inputs), five 512-wide sine layers with omega 1 (``torch.sin(x)``), one linear
output layer for the three channels, their initialisation (drawn for omega 30, biases 0), MSE + BCE averaged over
both mask channels (so each mask weighs 1/2), Adam at a constant 1e-4, 3,000 steps of 65,536 uniformly drawn voxels;
1,084,931 parameters. Their DataLoader draws voxels without replacement within an epoch, lgelib with replacement."""

INR_CHOICES: dict[str, InrSettings | None] = {"lgelib": None, "authors": AUTHORS_INR}
"""Named INR choices (`with_inr`): ``lgelib``, the profile's own joint SIREN (the default); ``authors``, the authors'
network and settings (`AUTHORS_INR`), for comparing them on equal terms (benchmarks/README.md)."""

INRS: tuple[str, ...] = tuple(INR_CHOICES)


def with_inr(profile: Profile, name: str) -> Profile:
    """``profile`` with the INR network and fit settings called ``name``; the seeds stay the profile's."""
    if name not in INR_CHOICES:
        raise ValueError(f"unknown INR choice {name!r}; known: {', '.join(INRS)}")
    stage = INR_CHOICES[name] or (PROFILES[profile.name].inr if profile.name in PROFILES else profile.inr)
    fit = replace(stage.fit, seed=profile.inr.fit.seed, init_seed=profile.inr.fit.init_seed)
    return replace(profile, inr=replace(stage, fit=fit))


def inr_name(profile: Profile) -> str:
    """The name in `INRS` whose network ``profile`` fits, or ``"custom"`` (a page says which INR made it)."""
    return next((name for name in INRS if with_inr(profile, name).inr.spec == profile.inr.spec), "custom")


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None


def with_seg_budget(profile: Profile, name: str) -> Profile:
    """``profile`` with the nnU-Net budget called ``name`` (`SEGMENTATION_BUDGETS`); the seed stays the profile's."""
    if name not in SEGMENTATION_BUDGETS:
        raise ValueError(f"unknown seg_budget {name!r}; known: {', '.join(SEGMENTATION_BUDGETS)}")
    return replace(profile, segmentation=replace(SEGMENTATION_BUDGETS[name], seed=profile.segmentation.seed))


def setting_keys(settings: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a settings tree (``inr.fit.steps``, ``edm.steps``, ...), in declaration order."""
    keys = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        key = f"{prefix}{field.name}"
        keys += setting_keys(value, f"{key}.") if dataclasses.is_dataclass(value) else [key]
    return keys


def _coerced(current: Any, value: Any, key: str) -> Any:
    """``value`` as the type of the setting it replaces; a wrong type names the key."""

    def wrong(expected: str) -> ValueError:
        return ValueError(f"setting {key} = {value!r}: expected {expected} (its value now is {current!r})")

    if current is None or value is None:
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise wrong("an integer")
        return int(value)
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        if current and len(value) == len(current):
            return tuple(_coerced(old, new, f"{key}[{i}]") for i, (old, new) in enumerate(zip(current, value)))
        return tuple(value)
    raise wrong(type(current).__name__)


def override(settings: Any, key: str, value: Any) -> Any:
    """``settings`` (a tree of frozen dataclasses, such as a `Profile`) with the value at dotted ``key`` replaced,
    e.g. ``override(profile, "edm.steps", 10000)``: one generic edit by path, as functa's config tree. An unknown
    key or a value of the wrong type fails with the key and what it may be."""
    node, parts = settings, key.split(".")
    path = []
    for part in parts:
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            where = ".".join(path) or "the settings"
            known = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
            raise ValueError(
                f"unknown setting {key!r}: {where} has no {part!r}" + (f" (it has {', '.join(known)})" if known else "")
            )
        path.append(part)
        node = getattr(node, part)
    if dataclasses.is_dataclass(node):
        raise ValueError(
            f"setting {key!r} is a group; set one of its keys: " + ", ".join(setting_keys(node, f"{key}."))
        )

    def replaced(tree: Any, rest: list[str]) -> Any:
        head = rest[0]
        child = getattr(tree, head)
        new = _coerced(child, value, key) if len(rest) == 1 else replaced(child, rest[1:])
        return replace(tree, **{head: new})

    return replaced(settings, parts)
