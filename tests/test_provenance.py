"""The run's settings as every chapter sees them: configure(), n_train, and the provenance line a page shows."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from lgelib.config import GENERATORS, get_profile
from lgelib.run import settings_for
from lgelib.data.dataset import open_split
from lgelib.errors import DataError
from lgelib.provenance import collect, git_revision


def test_configure_keeps_the_profile_unless_told_and_seeds_every_training_stage() -> None:
    assert settings_for(profile="smoke") == get_profile("smoke")
    settings = settings_for(
        profile="smoke",
        training_seed=5,
        steps=12,
        inr2vec_steps=13,
        edm_steps=14,
        n_synthetic=7,
        synthesis_seed=2,
        seg_epochs=3,
    )
    assert (
        settings.inr.fit.seed,
        settings.inr.fit.init_seed,
        settings.inr2vec.seed,
        settings.edm.seed,
        settings.segmentation.seed,
    ) == (5, 5, 5, 5, 5)
    assert (settings.inr.fit.steps, settings.inr2vec.steps, settings.edm.steps) == (12, 13, 14)
    assert (settings.synthesis.n_volumes, settings.synthesis.seed, settings.segmentation.epochs) == (7, 2, 3)
    # nothing else moved
    assert dataclasses.replace(settings.inr.fit, seed=0, init_seed=0, steps=800) == get_profile("smoke").inr.fit
    with pytest.raises(ValueError, match="unknown profile 'big'"):
        settings_for(profile="big")


def test_generator_choices_change_only_the_generative_stages() -> None:
    base = get_profile("smoke")
    assert settings_for(profile="smoke", generator="paper") == base  # the profiles keep the paper's generator
    seeded = settings_for(profile="smoke", training_seed=4)
    seen = set()
    for name in GENERATORS:
        chosen = settings_for(profile="smoke", generator=name, training_seed=4)
        assert chosen.inr2vec.seed == chosen.edm.seed == 4  # the other overrides still apply
        assert (chosen.grid, chosen.inr, chosen.segmentation) == (seeded.grid, seeded.inr, seeded.segmentation)
        seen.add(
            (
                chosen.inr2vec.targets,
                chosen.inr2vec.decoder,
                chosen.inr2vec.latent,
                chosen.edm.holdout_fraction,
                chosen.synthesis.geometry,
            )
        )
    assert len(seen) == len(GENERATORS)  # every name is a different generator
    weights = settings_for(profile="smoke", generator="weights+select+geometry")
    assert (weights.inr2vec.latent, weights.synthesis.geometry) == ("weights", "sampled")
    assert weights.edm.holdout_fraction > 0
    with pytest.raises(ValueError, match="unknown generator 'gan'; known: paper, data"):
        settings_for(profile="smoke", generator="gan")


@pytest.fixture
def phantom_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "cohort.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "six",
                "publishable": False,
                "source": {"kind": "phantom", "n_cases": 6, "seed": 1},
                "split": {"seed": 0, "n_test": 2},
            }
        )
    )
    return path


def test_n_train_keeps_the_first_training_cases_and_every_test_case(phantom_manifest: Path) -> None:
    full = open_split(phantom_manifest, split_seed=4)
    fewer = open_split(phantom_manifest, split_seed=4, n_train=2)
    assert fewer.split.train == full.split.train[:2] and fewer.split.test == full.split.test
    assert fewer.split.seed == 4
    with pytest.raises(DataError, match=r"n_train = 5: the split has 4 training cases"):
        open_split(phantom_manifest, n_train=5)


def test_provenance_names_profile_data_split_seeds_software_and_device(phantom_manifest: Path) -> None:
    settings = settings_for(profile="smoke", training_seed=3, synthesis_seed=9)
    split = open_split(phantom_manifest, split_seed=11, n_train=3).split
    provenance = collect(settings, phantom_manifest, split, device="cpu")
    text = provenance.markdown()
    assert "Profile `smoke`, INR `lgelib`, generator `paper`" in text and "data `six`" in text
    assert "not publishable" in text
    assert (
        "INR `authors`"
        in collect(settings_for(profile="smoke", inr="authors"), phantom_manifest, split, "cpu").markdown()
    )
    assert "manifest `cohort.yaml`" in text  # outside the repository: the file name only, no folder
    assert "split seed 11: 3 training / 2 test cases" in text
    assert "training seed 3, synthesis seed 9" in text and "device `cpu`" in text
    assert re.search(r"torch \d+\.\d+", text) and re.search(r"nnunetv2 \d+\.\d+", text)
    assert re.search(r"sha256 `[0-9a-f]{12}`", text) and re.search(r"executed \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    listed = collect(settings, phantom_manifest, dataclasses.replace(split, seed=None), device="cpu")
    assert "the manifest's listed split" in listed.markdown()
    film = settings_for(profile="smoke", generator="data+film+select+geometry")
    assert "generator `data+film+select+geometry`" in collect(film, phantom_manifest, split, "cpu").markdown()
    custom = dataclasses.replace(film, edm=dataclasses.replace(film.edm, holdout_fraction=0.3))
    assert "generator `custom`" in collect(custom, phantom_manifest, split, "cpu").markdown()


def test_git_revision_names_the_commit_or_nothing(tmp_path: Path) -> None:
    revision = git_revision()
    if revision is not None:  # a clone: a short hash, "+changes" when tracked files differ
        assert re.fullmatch(r"[0-9a-f]{7,}(\+changes)?", revision)
    assert git_revision(tmp_path) is None  # not a repository


def test_experiment_command_takes_a_generator_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lgelib.cli import _run_options, build_parser, main
    from lgelib.run import resolve_settings

    args = build_parser().parse_args(
        [
            "experiment",
            "--out",
            str(tmp_path / "x"),
            "--seg-budget",
            "real-cpu",
            "--generator",
            "weights+select+geometry",
            "--set",
            "edm.steps=7",
        ]
    )
    settings = resolve_settings(_run_options(args))
    assert settings == settings_for(
        profile="smoke", seg_budget="real-cpu", generator="weights+select+geometry", edm_steps=7
    )
    assert settings.inr2vec.latent == "weights" and settings.edm.steps == 7
    assert main(["experiment", "--out", str(tmp_path / "y"), "--generator", "gan"]) == 2  # fails before any work
    assert "unknown generator 'gan'" in capsys.readouterr().err and not (tmp_path / "y").exists()
