"""The run object: options resolved into settings once (run.json), settings edited by dotted key, one folder layout,
and one stage chain that carries every option (the split repeats included)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lgelib.config import PROFILES, get_profile, override, setting_keys
from lgelib.layout import RunLayout
from lgelib.run import (
    ALIASES,
    TRAINING_SEEDS,
    Run,
    load_run,
    open_run,
    parse_options,
    parse_split_seeds,
    resolve_settings,
    settings_for,
)


def test_override_edits_one_setting_by_its_dotted_key_and_nothing_else() -> None:
    smoke = get_profile("smoke")
    edited = override(smoke, "edm.steps", 10)
    assert edited.edm.steps == 10 and dataclasses.replace(edited, edm=smoke.edm) == smoke
    assert override(smoke, "inr.fit.lr", 1).inr.fit.lr == 1.0  # an integer where a float is due
    assert override(smoke, "segmentation.patch_size", [32, 32]).segmentation.patch_size == (32, 32)
    assert override(smoke, "synthesis.sampler.num_steps", 18).synthesis.sampler.num_steps == 18


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("edm.stpes", 1, r"unknown setting 'edm.stpes': edm has no 'stpes' \(it has .*steps"),
        ("edm.steps.x", 1, r"unknown setting 'edm.steps.x': edm.steps has no 'x'"),
        ("edm", 1, r"setting 'edm' is a group; set one of its keys: edm.width"),
        ("edm.steps", "many", r"setting edm.steps = 'many': expected an integer"),
        ("edm.steps", 2.5, r"setting edm.steps = 2.5: expected an integer"),
        ("inr.fit.lr", True, r"setting inr.fit.lr = True: expected a number"),
    ],
)
def test_a_wrong_setting_names_its_key_and_what_it_may_be(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        override(get_profile("smoke"), key, value)


def test_short_names_stand_for_settings_that_exist_and_training_seed_seeds_every_training_stage() -> None:
    for profile in PROFILES.values():
        keys = set(setting_keys(profile))
        assert {key for targets in ALIASES.values() for key in targets} <= keys
    seeded = settings_for(training_seed=4)
    assert [
        seeded.inr.fit.seed,
        seeded.inr.fit.init_seed,
        seeded.inr2vec.seed,
        seeded.edm.seed,
        seeded.segmentation.seed,
        seeded.enhancement.diffusion.seed,
    ] == [4] * len(TRAINING_SEEDS)
    assert seeded.synthesis.seed == get_profile("smoke").synthesis.seed  # the sampled volumes have their own seed
    assert settings_for(steps=12, **{"inr.fit.steps": 13}).inr.fit.steps == 13  # later wins, as written


def test_options_parse_names_short_names_and_dotted_keys_and_refuse_unknown_ones() -> None:
    options = parse_options(
        {
            "profile": "paper",
            "split_seed": "3",
            "seg_arms": "N0, D3",
            "edm_steps": 9,
            "inr2vec.steps": 8,
            "device": None,
            "repeat_split_seeds": [1, "2"],
        }
    )
    assert options.profile == "paper" and options.split_seed == 3 and options.device is None
    assert options.seg_arms == ("N0", "D3") and options.repeat_split_seeds == (1, 2)
    assert dict(options.overrides) == {"edm.steps": 9, "inr2vec.steps": 8}
    assert parse_options(options.to_dict()) == options  # what run.json holds reads back the same
    with pytest.raises(ValueError, match=r"unknown run option 'stpes'; options: profile, manifest"):
        parse_options({"stpes": 3})
    with pytest.raises(ValueError, match=r"run option split_seed = 'x': expected an integer"):
        parse_options({"split_seed": "x"})
    with pytest.raises(ValueError, match=r"unknown generator 'gan'"):
        resolve_settings(parse_options({"generator": "gan"}))
    with pytest.raises(ValueError, match=r"profile's name is chosen with the profile option"):
        resolve_settings(parse_options({"overrides": {"name": "paper"}}))
    assert parse_split_seeds(" 0, 2,") == [0, 2] == parse_split_seeds([0, "2"])  # the CLI's and benchmarks' seeds
    with pytest.raises(ValueError, match=r"run option split seed = '1x': expected an integer"):
        parse_split_seeds("0,1x")


def test_named_choices_come_first_and_dotted_overrides_last() -> None:
    settings = settings_for(
        profile="smoke",
        seg_budget="real-cpu",
        generator="data",
        inr="authors",
        seg_epochs=3,
        **{"inr2vec.targets": "inr", "inr.fit.steps": 5},
    )
    assert settings.segmentation.batch_size == 4 and settings.segmentation.epochs == 3  # real-cpu, then edited
    assert settings.inr.spec.hidden == 512 and settings.inr.fit.steps == 5  # the authors' network, then edited
    assert settings.inr2vec.targets == "inr"  # the generator's choice, overridden
    short, long = (
        settings_for(seg_budget="real-cpu").segmentation,
        settings_for(seg_budget="real-cpu-long").segmentation,
    )
    assert long.epochs == 2 * short.epochs and long.plan_dict() == short.plan_dict()  # only the length differs


def test_real_scans_get_the_budget_that_learns_them_unless_a_budget_is_named(tmp_path: Path) -> None:
    from lgelib.config import REAL_CPU_LONG_SEGMENTATION, SMOKE_SEGMENTATION

    real = tmp_path / "real.yaml"
    real.write_text("version: 1\nname: real\nsource:\n  kind: nifti\n  cases: []\n")
    seed = get_profile("smoke").segmentation.seed
    on_real = settings_for(manifest=str(real)).segmentation
    assert on_real == dataclasses.replace(REAL_CPU_LONG_SEGMENTATION, seed=seed)
    assert settings_for().segmentation == SMOKE_SEGMENTATION  # the embedded phantom keeps the smoke budget
    assert settings_for(manifest=str(real), seg_budget="smoke").segmentation == SMOKE_SEGMENTATION  # named wins
    assert settings_for(manifest=str(real), seg_epochs=2).segmentation.epochs == 2  # dotted keys still come last
    assert settings_for(profile="paper", manifest=str(real)).segmentation == get_profile("paper").segmentation
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: broken\n")  # loading the data says what is wrong, not the settings
    assert settings_for(manifest=str(broken)).segmentation == SMOKE_SEGMENTATION
    assert settings_for(manifest=str(tmp_path / "missing.yaml")).segmentation == SMOKE_SEGMENTATION
    bomb = tmp_path / "bomb.yaml"  # an alias is refused before it is expanded, as when the data is opened
    bomb.write_text("a: &a [x, x]\nb: [*a, *a]\nsource:\n  kind: nifti\n")
    assert settings_for(manifest=str(bomb)).segmentation == SMOKE_SEGMENTATION


def test_a_run_writes_its_settings_once_and_every_chapter_reads_the_same(tmp_path: Path) -> None:
    run = open_run(tmp_path / "run", {"profile": "smoke", "edm.steps": 11, "precision": "bf16"})
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["options"]["overrides"] == {"edm.steps": 11} and record["settings"]["edm"]["steps"] == 11
    assert "inr.fit.steps" in record["setting_keys"]
    again = open_run(tmp_path / "run", {})  # a later chapter, as lgelib book runs it: no options of its own
    assert again.settings == run.settings and again.options == run.options
    changed = open_run(tmp_path / "run", {"edm.steps": 12})  # by hand: new options replace the run's
    assert load_run(tmp_path / "run").settings.edm.steps == 12 == changed.settings.edm.steps
    fresh = open_run(tmp_path / "elsewhere")
    assert fresh.settings == get_profile("smoke") and (tmp_path / "elsewhere" / "run.json").is_file()
    with pytest.raises(FileNotFoundError, match="no run here yet"):
        load_run(tmp_path / "nowhere")


def test_a_repeat_on_another_split_keeps_every_option_and_shares_the_fitted_inrs(tmp_path: Path) -> None:
    run = Run(
        parse_options({"precision": "bf16", "n_train": 4, "edm.steps": 7, "repeat_split_seeds": [1, 2]}),
        RunLayout(tmp_path),
    )
    repeat = run.for_split(2)
    assert repeat.options == dataclasses.replace(run.options, split_seed=2, repeat_split_seeds=())
    assert repeat.settings == run.settings
    assert repeat.root == tmp_path / "repeats" / "split-2" and repeat.inr_cache == tmp_path / "repeats" / "inr-cases"
    assert load_run(repeat.root).options == repeat.options  # the repeat says what it ran, in its own run.json


def _recorder(calls: dict):
    """``recorder(name, result)`` makes a stand-in for a stage function that records its arguments in
    ``calls[name]`` and returns ``result``."""

    def recorder(name, result=None):
        def record(*args, **kwargs):
            calls[name] = (args, kwargs)
            return result

        return record

    return recorder


def test_the_stage_chain_passes_the_runs_options_to_every_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stage method calls its stage function with the run's settings, device and precision, in the run's
    folders: the chain exists once, so the repeats of chapter 06 and lgelib experiment cannot drift from it."""
    import lgelib.edm
    import lgelib.geometry
    import lgelib.inr
    import lgelib.inr2vec
    import lgelib.synthesis

    calls = {}
    recorder = _recorder(calls)

    class Latents:
        latents, case_ids = "z", ["a"]

    run = Run(
        parse_options({"device": "cpu", "precision": "bf16", "edm.steps": 3}),
        RunLayout(tmp_path),
        inr_cache=tmp_path / "cache",
    )
    prepared = type("Prepared", (), {"publishable": True})()
    monkeypatch.setattr(Run, "prepared", prepared)
    monkeypatch.setattr(Run, "dataset", type("D", (), {"split": type("S", (), {"train": ("a",), "test": ("b",)})}))
    monkeypatch.setattr(lgelib.inr, "fit_inrs", recorder("fit", "fitted"))
    monkeypatch.setattr(lgelib.inr2vec, "train_inr2vec", recorder("inr2vec", Latents()))
    monkeypatch.setattr(lgelib.geometry, "diffusion_inputs", recorder("inputs", ("vectors", None)))
    monkeypatch.setattr(lgelib.edm, "train_edm", recorder("edm", "edm"))
    monkeypatch.setattr(lgelib.synthesis, "nominal_spacing", recorder("spacing", (1.0, 1.0, 1.0)))
    monkeypatch.setattr(lgelib.synthesis, "synthesize", recorder("synth", "synthetic"))
    assert run.generate(5) == "synthetic"
    args, kwargs = calls["fit"]
    assert args[1] == tmp_path / "inr" and kwargs["precision"] == "bf16" and kwargs["device"] == "cpu"
    assert kwargs["case_ids"] == ["a"] and kwargs["case_cache"] == tmp_path / "cache"
    assert calls["inr2vec"][0][1] == tmp_path / "inr2vec" and calls["inr2vec"][1]["prepared"] is prepared
    assert calls["edm"][0][1] == tmp_path / "edm" and calls["edm"][0][2].steps == 3
    args, kwargs = calls["synth"]
    assert args[2] == tmp_path / "synth" and args[3].n_volumes == 5 and kwargs["device"] == "cpu"
    run.fit_heldout_inrs()
    assert calls["fit"][0][1] == tmp_path / "inr-heldout" and calls["fit"][1]["case_ids"] == ["b"]


def test_a_targeted_set_is_drawn_from_the_conditioned_model_with_one_condition_per_draw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``T<n>`` arms: the conditioned EDM (``edm-conditioned/``), then ``n`` volumes in ``synth-targeted/`` with the
    chapter's guidance and one condition per possible draw, allocated to the scar levels the training set lacks;
    ``segment`` hands that folder to the T arms."""
    import lgelib.conditioning
    import lgelib.edm
    import lgelib.geometry
    import lgelib.inr
    import lgelib.inr2vec
    import lgelib.segmentation
    import lgelib.synthesis
    import pandas as pd

    calls = {}
    recorder = _recorder(calls)

    class Latents:
        latents, case_ids = "z", ["a", "b", "c"]

    training = pd.DataFrame(  # two mid scars, one scar-free heart: the rest of a targeted set goes elsewhere
        {
            "present": [True, True, False],
            "burden": [0.1, 0.2, 0.0],
            "share_basal": [0.0, 0.0, 0.0],
            "share_mid": [1.0, 1.0, 0.0],
            "share_apical": [0.0, 0.0, 0.0],
            "level": ["mid", "mid", None],
        },
        index=["a", "b", "c"],
    )
    run = Run(
        parse_options({"device": "cpu", "seg_arms": ["N0", "T4-balanced"], "conditioning.guidance": 3.0}),
        RunLayout(tmp_path),
    )
    monkeypatch.setattr(Run, "prepared", type("Prepared", (), {"publishable": True})())
    monkeypatch.setattr(Run, "dataset", "real")
    monkeypatch.setattr(Run, "split", type("S", (), {"seed": 0, "train": ("a", "b", "c")}))
    monkeypatch.setattr(lgelib.inr, "fit_inrs", recorder("fit", "fitted"))
    monkeypatch.setattr(lgelib.inr2vec, "train_inr2vec", recorder("inr2vec", Latents()))
    monkeypatch.setattr(lgelib.geometry, "diffusion_inputs", recorder("inputs", ("vectors", None)))
    monkeypatch.setattr(lgelib.conditioning, "training_descriptors", lambda prepared, ids: training.loc[ids])
    monkeypatch.setattr(lgelib.edm, "train_edm", recorder("edm", "conditioned edm"))
    monkeypatch.setattr(lgelib.synthesis, "nominal_spacing", recorder("spacing", (1.0, 1.0, 1.0)))
    monkeypatch.setattr(lgelib.synthesis, "synthesize", recorder("synth", "synthetic"))
    assert run.synthetic_needed() == 0 and run.synthetic_needed("targeted") == 4
    drawn, allocation = run.generate_targeted(4)
    assert drawn == "synthetic"
    # no basal or apical heart to ask for: the volumes even out scar-free (1 real) and mid (2 real)
    assert allocation == {"scar-free": 3, "scar basal": 0, "scar mid": 1, "scar apical": 0}
    assert calls["edm"][0][1] == tmp_path / "edm-conditioned" and calls["edm"][1]["condition_dropout"] == 0.15
    args, kwargs = calls["synth"]
    assert args[0] == "conditioned edm" and args[2] == tmp_path / "synth-targeted" and args[3].n_volumes == 4
    assert kwargs["guidance"] == 3.0 and kwargs["conditions"].shape == (4, 5)  # one row per volume
    assert sorted(kwargs["conditions"][:4, 0]) == [0, 0, 0, 1]  # three scar-free draws, one with (mid) scar

    monkeypatch.setattr(lgelib.segmentation, "run_segmentation", recorder("segment", None))
    with pytest.raises(AttributeError):
        run.segment()  # the recorder returns no result; what matters is what it was given
    args, kwargs = calls["segment"]
    assert args[1] is None and kwargs["added_dirs"] == {"targeted": tmp_path / "synth-targeted"}

    # The control set (C<n>): the same model and guidance, the training set's own proportions, its own folder.
    drawn, allocation = run.generate_targeted(3, allocation="proportional")
    assert allocation == {"scar-free": 1, "scar basal": 0, "scar mid": 2, "scar apical": 0}
    args, kwargs = calls["synth"]
    assert args[0] == "conditioned edm" and args[2] == tmp_path / "synth-proportional" and kwargs["guidance"] == 3.0
    assert sorted(kwargs["conditions"][:3, 0]) == [0, 1, 1]
    with pytest.raises(ValueError, match="allocation must be one of"):
        run.generate_targeted(3, allocation="uniform")


def test_every_stage_has_its_own_folder() -> None:
    layout = RunLayout(Path("run"))
    folders = [
        layout.data,
        layout.inr,
        layout.inr_heldout,
        layout.inr2vec,
        layout.edm,
        layout.synth,
        layout.edm_conditioned,
        layout.synth_conditioned("x").parent,
        layout.synth_targeted,
        layout.synth_proportional,
        layout.enhance(True).parent,
        layout.seg,
        layout.repeats,
        layout.notebooks,
        layout.book,
    ]
    assert len({folder.name for folder in folders}) == len(folders)
    assert all(folder.parent == layout.root for folder in folders)
    assert layout.enhance(True) != layout.enhance(False)  # the method and its ablation
    assert [layout.generated_set(s) for s in ("synthetic", "targeted", "proportional")] == [
        layout.synth,
        layout.synth_targeted,
        layout.synth_proportional,
    ]
    with pytest.raises(ValueError, match="no generated set"):
        layout.generated_set("phantom")


def test_a_low_data_run_trains_its_generator_on_its_own_training_cases_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The low-data curve's arms (``n_train``): every generative stage sees only the first n training cases, the
    test cases do not change, and nnU-Net's real training set is the same n cases."""

    import lgelib.inr
    from lgelib.nnunet_export import export_training_set
    from lgelib.segmentation_setup import Arm, NnunetFolders
    from lgelib.config import SMOKE_SEGMENTATION

    from toys import phantom_manifest

    manifest = phantom_manifest(tmp_path / "tiny.yaml", n_cases=8, seed=2, n_test=2)
    full = Run(parse_options({"manifest": str(manifest), "device": "cpu"}), RunLayout(tmp_path / "full"))
    low = Run(parse_options({"manifest": str(manifest), "device": "cpu", "n_train": 3}), RunLayout(tmp_path / "low"))
    allowed = list(full.dataset.split.train)[:3]
    assert list(low.dataset.split.train) == allowed and low.dataset.split.test == full.dataset.split.test
    seen = {}

    def fit(prepared, folder, *args, case_ids=None, **kwargs):
        seen[Path(folder).name] = list(case_ids)
        raise StopIteration  # the stage chain's first step is enough: what it was given

    monkeypatch.setattr(lgelib.inr, "fit_inrs", fit)
    with pytest.raises(StopIteration):
        low.generate()
    assert seen == {"inr": allowed}  # the generator's INRs (and so inr2vec, EDM) are of the allowed cases only
    name, _ = export_training_set(NnunetFolders(tmp_path / "seg"), low.dataset, None, Arm(0), SMOKE_SEGMENTATION)
    exported = json.loads((tmp_path / "seg" / "nnUNet_raw" / name / "export.json").read_text())
    assert exported["real"] == allowed
