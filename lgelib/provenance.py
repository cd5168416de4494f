"""What produced a page of the book: profile, data, split, seeds, software and device, in one line.

Every chapter shows this under its parameters and the landing page repeats it, so a reader of a built book can
tell which run made it and rerun it.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lgelib import __version__
from lgelib.config import Profile, generator_name, inr_name
from lgelib.data.dataset import Split
from lgelib.fingerprint import file_digest
from lgelib.layout import REPO_ROOT

SOFTWARE = ("torch", "nnunetv2", "numpy")
"""Packages whose versions a page names beside lgelib's (the ones that change results)."""


@dataclass(frozen=True)
class Provenance:
    """The facts a page states about the run that produced it."""

    profile: str
    inr: str
    generator: str
    dataset: str
    manifest: str
    manifest_sha256: str
    publishable: bool
    split_seed: int | None
    n_train: int
    n_test: int
    training_seed: int
    synthesis_seed: int
    lgelib: str
    git: str | None
    software: dict[str, str]
    device: str
    executed: str

    def markdown(self) -> str:
        """One paragraph for the top of a page (plain markdown, so it renders in Jupyter and in the book)."""
        split = f"split seed {self.split_seed}" if self.split_seed is not None else "the manifest's listed split"
        code = f"lgelib {self.lgelib}" + (f" (git `{self.git}`)" if self.git else "")
        software = ", ".join(f"{name} {version}" for name, version in self.software.items())
        return (
            f"**Provenance.** Profile `{self.profile}`, INR `{self.inr}`, generator `{self.generator}`; "
            f"data `{self.dataset}` (manifest `{self.manifest}`, sha256 `{self.manifest_sha256}`, "
            f"{'publishable' if self.publishable else 'not publishable'}); "
            f"{split}: {self.n_train} training / {self.n_test} test cases; training seed {self.training_seed}, "
            f"synthesis seed {self.synthesis_seed}; {code}, {software}; device `{self.device}`; "
            f"executed {self.executed}."
        )


def git_revision(root: Path = REPO_ROOT) -> str | None:
    """The repository's short commit, with "+changes" when tracked files differ from it; None outside a clone."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def software_versions(packages: tuple[str, ...] = SOFTWARE) -> dict[str, str]:
    """Python's and each installed package's version ("absent" when not installed)."""
    versions = {"Python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def collect(settings: Profile, manifest: str | Path, split: Split, device: str | None = None) -> Provenance:
    """Provenance of a page made with ``settings`` (see `lgelib.run.resolve_settings`) on ``split`` of the dataset
    named by ``manifest``; ``device`` None names the one the training stages pick."""
    from lgelib.data.manifest import load_manifest
    from lgelib.device import resolve_device

    path = Path(manifest)
    data = load_manifest(path)
    try:
        shown = str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        shown = path.name  # outside the repository: the file name only, no private folder names on a page
    return Provenance(
        profile=settings.name,
        inr=inr_name(settings),
        generator=generator_name(settings),
        dataset=data.name,
        manifest=shown,
        manifest_sha256=file_digest(path, 12),
        publishable=data.publishable,
        split_seed=split.seed,
        n_train=len(split.train),
        n_test=len(split.test),
        training_seed=settings.inr.fit.seed,
        synthesis_seed=settings.synthesis.seed,
        lgelib=__version__,
        git=git_revision(),
        software=software_versions(),
        device=str(resolve_device(device)),
        executed=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
