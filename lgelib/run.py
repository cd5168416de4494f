"""One owner of a run: its options, the settings they resolve to, where its files go, and the stage chain.

A run is opened from options (`RunOptions`): a profile, the data manifest, the split, the device, named choices
(generator, INR, nnU-Net budget), the nnU-Net arms, and any setting of the profile by dotted key
(``edm.steps=10000``; `lgelib.config.override`). The resolved settings are written once to ``run_dir/run.json``
(as EDM writes one options file per training run), and every chapter, ``lgelib experiment``, the landing page and
the CLI open the same object, so each stage sees the settings the stages before it used::

    run = open_run("runs/smoke", {"profile": "smoke", "edm.steps": 500})
    fitted = run.fit_inrs()             # chapter 02
    inr2vec = run.train_inr2vec()       # chapter 03
    edm = run.train_edm()               # chapter 04
    synthetic = run.synthesize()
    result = run.segment()              # chapter 06

Each stage method keeps the stage function's own signature underneath (`lgelib.inr.fit_inrs`, ...), reuses
finished work in its folder (`lgelib.layout.RunLayout`) and, given nothing, loads what the stage before it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from lgelib.config import (
    REAL_DATA_SEG_BUDGETS,
    Profile,
    get_profile,
    override,
    setting_keys,
    with_generator,
    with_inr,
    with_seg_budget,
)
from lgelib.fsutil import write_text_atomic
from lgelib.layout import REPO_ROOT, RunLayout
from lgelib.log import logger, show_progress

DEFAULT_MANIFEST = "data_manifest/phantom.yaml"
DEFAULT_ARMS: tuple[str, ...] = ("N0", "N200", "N200-balanced", "D200")

TRAINING_SEEDS: tuple[str, ...] = (
    "inr.fit.seed",
    "inr.fit.init_seed",
    "inr2vec.seed",
    "edm.seed",
    "segmentation.seed",
    "enhancement.diffusion.seed",
)
"""The settings ``training_seed`` sets: each INR's initialisation and voxel draws, inr2vec, EDM, nnU-Net and the
scar-enhancement denoiser."""

ALIASES: dict[str, tuple[str, ...]] = {
    "training_seed": TRAINING_SEEDS,
    "synthesis_seed": ("synthesis.seed",),
    "n_synthetic": ("synthesis.n_volumes",),
    "steps": ("inr.fit.steps",),
    "inr2vec_steps": ("inr2vec.steps",),
    "edm_steps": ("edm.steps",),
    "seg_epochs": ("segmentation.epochs",),
}
"""Short names kept for the settings changed most often (``-p steps=500`` is ``--set inr.fit.steps=500``)."""


CONDITIONED_SOURCES = {"targeted": "fill", "proportional": "proportional"}
"""Arm sources drawn from the scar-conditioned model, and how each spreads its volumes over the scar levels
(`lgelib.scar_descriptors.ALLOCATIONS`): ``T<n>`` evens out the training set, ``C<n>`` follows it."""


@dataclass(frozen=True)
class RunOptions:
    """What a run is asked to do; `resolve_settings` turns it into the stages' settings.

    ``profile``: ``smoke`` (2 CPU cores, minutes) or ``paper`` (the paper's settings; a GPU). ``manifest``: the
    dataset (relative paths are the repository's). ``device``: None picks CUDA where available. ``precision``:
    INR fitting's (None: fp32 on CPU, tf32 on CUDA; ``bf16``). ``split_seed``: None keeps the manifest's split.
    ``n_train``: only the first training cases. ``generator``, ``inr``, ``seg_budget``: named choices
    (`lgelib.config.GENERATORS`, `INRS`, `SEGMENTATION_BUDGETS`). ``seg_arms``: the nnU-Net arms of chapter 06.
    ``repeat_split_seeds``: further splits chapter 06 reruns every stage on. ``overrides``: settings by dotted key,
    applied last, in order.
    """

    profile: str = "smoke"
    manifest: str = DEFAULT_MANIFEST
    device: str | None = None
    precision: str | None = None
    split_seed: int | None = None
    n_train: int | None = None
    generator: str | None = None
    inr: str | None = None
    seg_budget: str | None = None
    seg_arms: tuple[str, ...] = DEFAULT_ARMS
    repeat_split_seeds: tuple[int, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; `parse_options` reads it back."""
        values = dataclasses.asdict(self)
        values["seg_arms"], values["repeat_split_seeds"] = list(self.seg_arms), list(self.repeat_split_seeds)
        values["overrides"] = {key: value for key, value in self.overrides}
        return values


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunOptions) if f.name != "overrides")


def _integer(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise ValueError(f"run option {name} = {value!r}: expected an integer")
    return int(value)


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"run option {name} = {value!r}: expected a string")
    return str(value)


def _names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def parse_split_seeds(value: Any) -> list[int]:
    """Split seeds from ``"0,1,2"`` or a list (a bad item fails naming it)."""
    return [_integer("split seed", s) for s in _names(value)]


def parse_options(items: Mapping[str, Any] | None = None) -> RunOptions:
    """`RunOptions` from a mapping of option names (`OPTION_NAMES`), short names (`ALIASES`) and dotted setting
    keys (``edm.steps``); ``overrides`` may also be given as a mapping. None values keep the default, so the
    notebooks' and the CLI's "not set" passes through. An unknown name fails with the names it may be."""
    options: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for name, value in (items or {}).items():
        if name == "overrides":
            overrides.update(dict(value or {}))
        elif name in ALIASES:
            if value is not None:
                overrides.update({key: value for key in ALIASES[name]})
        elif "." in name:
            overrides[name] = value
        elif name in OPTION_NAMES:
            if value is not None:
                options[name] = value
        else:
            raise ValueError(
                f"unknown run option {name!r}; options: {', '.join(OPTION_NAMES)}; short names: "
                f"{', '.join(ALIASES)}; or any setting by dotted key (e.g. edm.steps)"
            )
    for name in ("split_seed", "n_train"):
        if name in options:
            options[name] = _integer(name, options[name])
    for name in ("profile", "manifest", "device", "precision", "generator", "inr", "seg_budget"):
        if name in options:
            options[name] = _text(name, options[name])
    if "seg_arms" in options:
        options["seg_arms"] = _names(options["seg_arms"])
    if "repeat_split_seeds" in options:
        options["repeat_split_seeds"] = tuple(
            _integer("repeat_split_seeds", s) for s in _names(options["repeat_split_seeds"])
        )
    return RunOptions(**options, overrides=tuple(overrides.items()))


def manifest_path(manifest: str | os.PathLike) -> Path:
    """A run's data manifest as a path (a relative path is the repository root's, where the notebooks run)."""
    path = Path(manifest).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def default_seg_budget(options: RunOptions) -> str | None:
    """The nnU-Net budget of a run that names none: the profile's own on the phantom, and on real scans the one
    `lgelib.config.REAL_DATA_SEG_BUDGETS` gives the profile (``real-cpu-long`` for ``smoke``); None keeps the
    profile's."""
    from lgelib.data.manifest import manifest_kind

    kind = manifest_kind(manifest_path(options.manifest))
    return None if kind in (None, "phantom") else REAL_DATA_SEG_BUDGETS.get(options.profile)


def resolve_settings(options: RunOptions) -> Profile:
    """The stages' settings: the profile, then the named choices (the nnU-Net budget by default the data's:
    `default_seg_budget`), then each dotted override in order."""
    settings = get_profile(options.profile)
    if options.generator is not None:
        settings = with_generator(settings, options.generator)
    if options.inr is not None:
        settings = with_inr(settings, options.inr)
    seg_budget = options.seg_budget if options.seg_budget is not None else default_seg_budget(options)
    if seg_budget is not None:
        settings = with_seg_budget(settings, seg_budget)
    for key, value in options.overrides:
        if key == "name":
            raise ValueError("the profile's name is chosen with the profile option, not overridden")
        settings = override(settings, key, value)
    return settings


def settings_for(**items: Any) -> Profile:
    """The settings of a run with these options (`parse_options`): ``settings_for(profile="paper", edm_steps=10)``."""
    return resolve_settings(parse_options(items))


def _settings_tree(settings: Any) -> Any:
    """A settings dataclass as nested plain values, for run.json."""
    if dataclasses.is_dataclass(settings):
        return {f.name: _settings_tree(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    if isinstance(settings, tuple):
        return [_settings_tree(item) for item in settings]
    return settings


@dataclass
class Run:
    """A run: its options, resolved settings and folders, and one method per stage.

    ``inr_cache``: a folder of finished INRs shared with other runs of the same cases (repeated splits).
    """

    options: RunOptions
    layout: RunLayout
    inr_cache: Path | None = None
    settings: Profile = field(init=False)

    def __post_init__(self) -> None:
        self.settings = resolve_settings(self.options)
        self.layout = RunLayout(Path(self.layout.root))

    # ---- options and records ----------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def device(self) -> str | None:
        return self.options.device

    @property
    def manifest(self) -> Path:
        """The data manifest (`manifest_path`)."""
        return manifest_path(self.options.manifest)

    def record(self) -> dict[str, Any]:
        """What run.json holds: the options as given and every setting they resolved to."""
        from lgelib import __version__

        return {
            "lgelib": __version__,
            "options": self.options.to_dict(),
            "settings": _settings_tree(self.settings),
            "setting_keys": setting_keys(self.settings),
        }

    def write(self) -> Path:
        """Write ``run.json`` (atomically); returns its path."""
        path = self.layout.settings_file
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.record(), indent=1, default=str) + "\n")
        return path

    def for_split(self, split_seed: int) -> "Run":
        """The same run on another split seed, in ``repeats/split-<seed>`` (its own run.json), sharing this run's
        fitted INRs."""
        options = dataclasses.replace(self.options, split_seed=int(split_seed), repeat_split_seeds=())
        repeat = Run(options, self.layout.repeat(split_seed), inr_cache=self.inr_cache or self.layout.inr_cases)
        repeat.write()
        return repeat

    # ---- data ---------------------------------------------------------------------------------------------------
    @cached_property
    def dataset(self):
        """The real dataset with the run's split (`lgelib.data.dataset.open_split`)."""
        from lgelib.data.dataset import open_split

        return open_split(self.manifest, self.options.split_seed, n_train=self.options.n_train)

    @property
    def split(self):
        return self.dataset.split

    @cached_property
    def prepared(self):
        """The dataset on the canonical grid (``data/``), prepared first where it is not there yet."""
        from lgelib.data.prepare import prepared_for

        return prepared_for(self.dataset, self.settings.grid, self.layout.data)

    def provenance(self):
        """What a page says produced it (`lgelib.provenance.Provenance`)."""
        from lgelib.provenance import collect

        return collect(self.settings, self.manifest, self.split, self.device)

    # ---- the stage chain ----------------------------------------------------------------------------------------
    def fit_inrs(self, case_ids: list[str] | None = None, out_dir: Path | None = None, progress: bool = False):
        """Stage 1: one INR per training case in ``inr/`` (or ``case_ids`` into ``out_dir``)."""
        from lgelib.inr import fit_inrs

        inr = self.settings.inr
        return fit_inrs(
            self.prepared,
            out_dir or self.layout.inr,
            inr.spec,
            inr.fit,
            case_ids=list(self.split.train) if case_ids is None else list(case_ids),
            cases_per_batch=inr.cases_per_batch,
            device=self.device,
            precision=self.options.precision,
            progress=progress,
            case_cache=self.inr_cache,
        )

    def fit_heldout_inrs(self, progress: bool = False):
        """INRs of the test cases in ``inr-heldout/``: what a new patient's INR looks like to inr2vec."""
        return self.fit_inrs(list(self.split.test), self.layout.inr_heldout, progress)

    def fitted_inrs(self):
        """The training INRs stage 1 wrote."""
        from lgelib.inr import load_fitted

        return load_fitted(self.layout.inr)

    def train_inr2vec(self, fitted=None, progress: bool = False):
        """Stage 2: inr2vec on the training INRs, in ``inr2vec/``."""
        from lgelib.inr2vec import train_inr2vec

        return train_inr2vec(
            self.fitted_inrs() if fitted is None else fitted,
            self.layout.inr2vec,
            self.settings.inr2vec,
            device=self.device,
            progress=progress,
            prepared=self.prepared,
        )

    def trained_inr2vec(self):
        from lgelib.inr2vec import load_inr2vec

        return load_inr2vec(self.layout.inr2vec)

    def train_edm(self, inr2vec=None, progress: bool = False):
        """Stage 3a: EDM on the training latents (and, with sampled geometry, each case's slice spacing)."""
        from lgelib.edm import train_edm
        from lgelib.geometry import diffusion_inputs

        inr2vec = self.trained_inr2vec() if inr2vec is None else inr2vec
        vectors, columns = diffusion_inputs(
            inr2vec.latents, self.prepared, inr2vec.case_ids, self.settings.synthesis.geometry
        )
        return train_edm(
            vectors, self.layout.edm, self.settings.edm, device=self.device, progress=progress, extra_columns=columns
        )

    def trained_edm(self):
        from lgelib.edm import load_edm

        return load_edm(self.layout.edm)

    def synthesize(
        self,
        edm=None,
        inr2vec=None,
        n_volumes: int | None = None,
        progress: bool = False,
        folder: Path | None = None,
        conditions=None,
        guidance: float = 1.0,
        settings=None,
    ):
        """Stage 3b: synthetic volumes and masks in ``synth/`` (``n_volumes``: the settings' unless given). The
        conditioned sets of chapter 07 pass their own ``folder``, the conditioned model as ``edm``, one condition
        vector per draw (`lgelib.synthesis.synthesize`) and the guidance scale."""
        from lgelib.synthesis import nominal_spacing, synthesize

        inr2vec = self.trained_inr2vec() if inr2vec is None else inr2vec
        settings = self.settings.synthesis if settings is None else settings
        if n_volumes is not None:
            settings = dataclasses.replace(settings, n_volumes=int(n_volumes))
        folder = self.layout.synth if folder is None else Path(folder)
        return synthesize(
            self.trained_edm() if edm is None else edm,
            inr2vec,
            folder,
            settings,
            tuple(self.settings.grid.shape),
            nominal_spacing(self.prepared, inr2vec.case_ids),
            publishable=self.prepared.publishable,
            name=self.root.name if folder == self.layout.synth else f"{self.root.name}-{folder.name}",
            device=self.device,
            progress=progress,
            conditions=conditions,
            guidance=guidance,
        )

    def train_conditioned_edm(self, inr2vec=None, progress: bool = False):
        """Beyond the paper: stage 3a again, each latent conditioned on its heart's scar descriptors
        (`lgelib.conditioning`), with the profile's EDM settings and condition dropout."""
        from lgelib.conditioning import condition_tensor, training_descriptors
        from lgelib.edm import train_edm
        from lgelib.geometry import diffusion_inputs
        from lgelib.scar_descriptors import CONDITION_COLUMNS

        inr2vec = self.trained_inr2vec() if inr2vec is None else inr2vec
        vectors, columns = diffusion_inputs(
            inr2vec.latents, self.prepared, inr2vec.case_ids, self.settings.synthesis.geometry
        )
        return train_edm(
            vectors,
            self.layout.edm_conditioned,
            self.settings.edm,
            device=self.device,
            progress=progress,
            extra_columns=columns,
            conditions=condition_tensor(training_descriptors(self.prepared, inr2vec.case_ids)),
            condition_columns=CONDITION_COLUMNS,
            condition_dropout=self.settings.conditioning.condition_dropout,
        )

    def conditioned_synthesis(self, edm=None, inr2vec=None, progress: bool = False):
        """Volumes drawn for each of the settings' scar requests, and as many unconditionally, from the conditioned
        model, all with the same noise seeds (so a request changes only the condition). Returns the accuracy
        table (`lgelib.conditioning.accuracy_table`, with each set's memorisation check against the real test
        hearts) and each set's measured descriptors by request name."""
        from lgelib.conditioning import (
            UNCONDITIONAL,
            accuracy_table,
            closed_ring_pct,
            synthetic_descriptors,
            training_descriptors,
        )
        from lgelib.data.prepare import load_prepared
        from lgelib.quality import mask_audit, nearer_than_median_test
        from lgelib.scar_descriptors import request_conditions

        inr2vec = self.trained_inr2vec() if inr2vec is None else inr2vec
        edm = self.train_conditioned_edm(inr2vec) if edm is None else edm
        settings = self.settings.conditioning
        synthesis = dataclasses.replace(self.settings.synthesis, n_volumes=settings.n_per_request)
        training = training_descriptors(self.prepared, inr2vec.case_ids)
        requests = settings.parsed_requests()
        decoded, nearer, rings = {}, {}, {}
        for name, request in [(UNCONDITIONAL, None), *((r.name, r) for r in requests)]:
            conditions = None
            if request is not None:
                if not request.satisfied(training).any():
                    logger.info("conditioned synthesis: no training heart meets %r; not drawn", name)
                    continue
                conditions = request_conditions(request, training, synthesis.n_volumes, synthesis.seed)
            folder = self.layout.synth_conditioned(name)
            drawn = self.synthesize(
                edm,
                inr2vec,
                progress=progress,
                folder=folder,
                conditions=conditions,
                guidance=settings.guidance,
                settings=synthesis,
            )
            volumes = load_prepared(folder)  # read once: measured, then audited
            decoded[name] = synthetic_descriptors(volumes)
            nearer[name] = nearer_than_median_test(mask_audit(volumes, self.prepared))
            rings[name] = closed_ring_pct(drawn.qc)
        return accuracy_table(requests, decoded, training, nearer, rings), decoded

    def targeted_synthesis(
        self, n_volumes: int, edm=None, inr2vec=None, progress: bool = False, allocation: str = "fill"
    ):
        """The ``T<n>`` arms' volumes in ``synth-targeted/``: ``n_volumes`` drawn from the conditioned model
        (guidance as in chapter 07), spread over ``conditioning.fill``'s requests so that the real training set
        plus these volumes is as even as possible over them (`lgelib.scar_descriptors.fill_allocation`). Same
        noise seeds as ``synth/``, but another model (the conditioned one, with guidance): a T<n> - N<n>
        difference mixes the targeting with the change of model. With ``allocation="proportional"``, the ``C<n>``
        arms' control set in ``synth-proportional/``: the same model, guidance and seeds, spread in the training
        set's own proportions (`proportional_allocation`), so that T<n> - C<n> changes the targeting alone.
        Returns the synthetic set and the allocation (request -> volumes asked for; what was kept may differ, see
        `targeted_conditions`)."""
        from lgelib.conditioning import training_descriptors
        from lgelib.scar_descriptors import ALLOCATIONS, targeted_conditions

        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {sorted(ALLOCATIONS)}, got {allocation!r}")
        inr2vec = self.trained_inr2vec() if inr2vec is None else inr2vec
        edm = self.train_conditioned_edm(inr2vec, progress=progress) if edm is None else edm
        settings = self.settings.conditioning
        synthesis = dataclasses.replace(self.settings.synthesis, n_volumes=int(n_volumes))
        training = training_descriptors(self.prepared, inr2vec.case_ids)
        requests = settings.parsed_fill()
        counts = ALLOCATIONS[allocation](training, requests, synthesis.n_volumes)
        logger.info("%s synthesis: %s", allocation, ", ".join(f"{k} +{v}" for k, v in counts.items()))
        conditions, _ = targeted_conditions(training, requests, synthesis.n_volumes, synthesis.seed, allocation)
        source = next(s for s, a in CONDITIONED_SOURCES.items() if a == allocation)
        folder = self.layout.generated_set(source)
        drawn = self.synthesize(
            edm,
            inr2vec,
            progress=progress,
            folder=folder,
            conditions=conditions,
            guidance=settings.guidance,
            settings=synthesis,
        )
        return drawn, counts

    # ---- chapter 08: scar enhancement (Hasny et al.) ---------------------------------------------------------------
    @cached_property
    def enhancement_data(self):
        """Training and test slices of the run's split (`lgelib.scar_enhancement.slices`), their gamma targets
        (the dataset mean blood pool from the training slices) and reference ROIs, as a dict."""
        import pandas as pd

        from lgelib.scar_enhancement.roi import reference_roi
        from lgelib.scar_enhancement.slices import scar_slices
        from lgelib.scar_enhancement.targets import gamma_targets, mean_blood_pool

        settings = self.settings.enhancement
        train = scar_slices(self.dataset, self.split.train, settings.slices)
        test = scar_slices(self.dataset, self.split.test, settings.slices)
        reference = mean_blood_pool(train)
        train_targets, train_gammas = gamma_targets(train, settings.gamma, reference)
        test_targets, test_gammas = gamma_targets(test, settings.gamma, reference)
        return {
            "train": train,
            "test": test,
            "train_targets": train_targets,
            "test_targets": test_targets,
            "gammas": pd.concat([train_gammas.assign(split="train"), test_gammas.assign(split="test")]),
            "blood_reference": reference,
            "train_roi": reference_roi(train, settings.diffusion.roi_dilation),
            "test_roi": reference_roi(test, settings.sampling.roi_dilation),
        }

    def train_enhancer(self, local: bool = True, progress: bool = False):
        """The scar-enhancement denoiser on the training slices, in ``enhance/local`` (noise and loss on the ROI,
        the method) or ``enhance/global`` (the ablation)."""
        from lgelib.scar_enhancement.diffusion import train_denoiser

        data, settings = self.enhancement_data, self.settings.enhancement
        return train_denoiser(
            data["train"].image,
            data["train_targets"],
            data["train_roi"],
            self.layout.enhance(local),
            settings.unet,
            dataclasses.replace(settings.diffusion, local=local),
            device=self.device,
            progress=progress,
        )

    def generate(self, n_volumes: int | None = None):
        """Stages 1-3 in order (each reused where finished): the synthetic set."""
        fitted = self.fit_inrs()
        inr2vec = self.train_inr2vec(fitted)
        return self.synthesize(self.train_edm(inr2vec), inr2vec, n_volumes)

    def conditioned_sets(self) -> dict[str, Path]:
        """The folders of the conditioned sets the run's arms add (source -> folder; see `CONDITIONED_SOURCES`)."""
        return {s: self.layout.generated_set(s) for s in CONDITIONED_SOURCES if self.synthetic_needed(s)}

    def generate_added_sets(self) -> None:
        """Every generated set the run's arms add, as large as the largest arm needs (each stage reused where
        finished): the unconditional set, and each conditioned set with its allocation."""
        if self.synthetic_needed():
            self.generate(self.synthetic_needed())
        for source, allocation in CONDITIONED_SOURCES.items():
            if self.synthetic_needed(source):
                self.generate_targeted(self.synthetic_needed(source), allocation=allocation)

    def generate_targeted(self, n_volumes: int, allocation: str = "fill"):
        """Stages 1-2, the conditioned diffusion model and the targeted set (`targeted_synthesis`; its
        proportional control with ``allocation="proportional"``), each reused where finished."""
        inr2vec = self.train_inr2vec(self.fit_inrs())
        return self.targeted_synthesis(n_volumes, self.train_conditioned_edm(inr2vec), inr2vec, allocation=allocation)

    def latent_audit(self):
        """Nearest training latent of each synthetic volume and each held-out real case (`lgelib.quality.latent_audit`);
        None until chapter 03 has fitted the held-out INRs and chapter 04 the synthetic set."""
        if not (self.layout.inr_heldout.is_dir() and self.layout.synth.is_dir()):
            return None
        from lgelib.inr import load_fitted
        from lgelib.inr2vec import encode
        from lgelib.quality import latent_audit
        from lgelib.synthesis import load_synthetic

        inr2vec, heldout = self.trained_inr2vec(), load_fitted(self.layout.inr_heldout)
        synthesis = load_synthetic(self.layout.synth)
        test_latents = encode(inr2vec.model, heldout.params, self.device).numpy()
        return latent_audit(
            synthesis.latents.numpy(),
            test_latents,
            inr2vec.latents.numpy(),
            synthesis.case_ids,
            heldout.case_ids,
            inr2vec.case_ids,
        )

    def shareable_synthetic_ids(self) -> list[str]:
        """The synthetic volumes a page may show (`lgelib.privacy.shareable_synthetic_ids`, with the latent audit
        where it exists): every chapter and the landing page ask here, so they show the same ones."""
        from lgelib.data.prepare import load_prepared
        from lgelib.privacy import shareable_synthetic_ids

        latent = None if self.prepared.publishable else self.latent_audit()
        return shareable_synthetic_ids(load_prepared(self.layout.synth), self.prepared, latent)

    @property
    def arms(self):
        from lgelib.segmentation_setup import parse_arms

        return parse_arms(self.options.seg_arms)

    def synthetic_needed(self, source: str = "synthetic") -> int:
        """How many volumes of ``source`` (``synthetic``: ``synth/``; ``targeted``: ``synth-targeted/``;
        ``proportional``: ``synth-proportional/``) the run's arms add at most (0: that stage is not needed)."""
        return max([arm.n_added for arm in self.arms if arm.source == source] + [0])

    def segment(self, generate: bool = False):
        """Table 1's experiment: one nnU-Net per arm in ``seg/``, Dice per test case (with a ``split_seed``
        column). With ``generate`` the generative stages run first (a repeat); otherwise chapter 04's synthetic
        set (and chapter 07's targeted set for ``T<n>`` arms, its proportional control for ``C<n>``) is used."""
        from lgelib.segmentation import SegmentationResult, run_segmentation

        needed = self.synthetic_needed()
        if generate:
            self.generate_added_sets()
        result = run_segmentation(
            self.dataset,
            self.layout.synth if needed else None,
            self.layout.seg,
            self.settings.segmentation,
            self.arms,
            self.device,
            added_dirs=self.conditioned_sets(),
        )
        return SegmentationResult(
            result.per_case.assign(split_seed=self.split.seed), result.seconds.assign(split_seed=self.split.seed)
        )


def load_run(run_dir: Path | str) -> Run:
    """The run whose ``run.json`` is in ``run_dir``."""
    layout = RunLayout(Path(run_dir))
    try:
        record = json.loads(layout.settings_file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{layout.settings_file}: no run here yet (open_run or lgelib book writes it)"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{layout.settings_file}: not a run file ({error})") from None
    return Run(parse_options(record.get("options")), layout)


def open_run(run_dir: Path | str, options: Mapping[str, Any] | None = None) -> Run:
    """Every chapter's one setup call. With ``options`` (a notebook run by hand), the run they describe, written
    to ``run_dir/run.json``; without, the run ``lgelib book`` wrote there, or the defaults where there is none."""
    show_progress()  # each stage's lines in the chapter's output
    layout = RunLayout(Path(run_dir))
    if not options and layout.settings_file.is_file():
        return load_run(layout.root)
    run = Run(parse_options(options), layout)
    run.write()
    return run
