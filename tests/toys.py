"""Small hand-built volumes and fitted INRs shared by the stage tests (imported as ``toys``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lgelib.data.dataset import Split
from lgelib.data.prepare import PreparedDataset
from lgelib.edm import EdmSettings
from lgelib.inr import FitSettings, FittedInrs, SirenSettings, fit_inrs
from lgelib.inr2vec import Inr2VecSettings

TINY_INR2VEC = Inr2VecSettings(
    latent_dim=32,
    encoder_hidden=(32, 32, 64),
    decoder_hidden=64,
    frequencies=4,
    max_frequency_log2=3,
    steps=500,
    batch_size=4,
    points_per_inr=512,
    lr=2e-3,
    lr_final=2e-4,
)
"""An inr2vec small enough to train on the toy INRs in seconds."""

TINY_EDM = EdmSettings(
    width=64,
    blocks=2,
    embedding_dim=32,
    dropout=0.0,
    steps=400,
    batch_size=64,
    lr=1e-3,
    warmup_steps=20,
    ema_halflife_samples=2000,
)
"""An EDM small enough to train on a few toy latents in seconds."""


def toy_volumes(n: int, shape: tuple[int, int, int] = (4, 20, 20), seed: int = 0):
    """Rings of myocardium with a scar sector, bright blood, smooth background; a little noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    images, myo, fib = [], [], []
    for i in range(n):
        cy, cx = rng.uniform(-0.15, 0.15, 2)
        r = np.hypot(y - cy, x - cx) * (1 + 0.3 * (z + 1) / 2)
        ring = (r > 0.35) & (r < 0.6)
        angle = np.arctan2(y - cy, x - cx)
        scar = ring & (np.abs(angle - rng.uniform(-2, 2)) < 0.6) & (z < 0.5)
        image = 0.3 + 0.2 * np.sin(2 * x + i) * np.cos(3 * y) + 0.5 * (r <= 0.35) - 0.15 * ring + 0.6 * scar
        images.append(np.clip(image + rng.normal(0, 0.01, shape), 0, 1).astype(np.float32))
        myo.append(ring)
        fib.append(scar)
    return np.stack(images), np.stack(myo), np.stack(fib)


def toy_prepared(n: int = 4, seed: int = 0) -> PreparedDataset:
    images, myo, fib = toy_volumes(n, seed=seed)
    ids = [f"toy_{i:02d}" for i in range(n)]
    return PreparedDataset(ids, images, myo, fib, {}, Split(tuple(ids[:-1]), tuple(ids[-1:])), True)


def toy_fitted(folder: Path, n: int = 6, steps: int = 150, seed: int = 0) -> tuple[PreparedDataset, FittedInrs]:
    """``n`` toy volumes and one small joint SIREN fitted to each (written under ``folder``)."""
    prepared = toy_prepared(n, seed=seed)
    spec = SirenSettings(hidden=32, backbone_layers=3, head_hidden=8)
    settings = FitSettings(steps=steps, points_per_step=512, lr=2e-3, lr_final=2e-4)
    return prepared, fit_inrs(prepared, folder, spec, settings, device="cpu", progress=False)


def phantom_manifest(
    path: Path, n_cases: int = 6, seed: int = 5, n_test: int = 2, matrix: tuple[int, int] = (64, 64), name: str = "tiny"
) -> Path:
    """A manifest of ``n_cases`` subjects of the embedded phantom (``n_test`` of them for testing) written to
    ``path``; the cohort itself is generated (and cached) on first use."""
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": name,
                "publishable": True,
                "source": {"kind": "phantom", "n_cases": n_cases, "seed": seed, "matrix": list(matrix)},
                "split": {"seed": 0, "n_test": n_test},
            }
        )
    )
    return path
