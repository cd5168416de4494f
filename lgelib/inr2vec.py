"""Stage 2 (paper section 3.2): inr2vec, from a fitted INR's weights to z in R^512 and from z back to volumes.

**Encoder** (De Luigi et al. 2023, "Deep learning on implicit neural representations of shapes"; the paper's
"4 linear layers with batch normalisation, ReLU activations, and max pooling"). Every neuron of every layer of
the joint SIREN is one row, [its incoming weights, its bias], zero-padded to the widest layer and tagged with a
one-hot layer index; one MLP maps each row to R^512 and a max over the rows gives z. The rows are a set: their
order does not change z. The reference inr2vec drops the first and the last layer (its hidden layers all share
one width); here every layer is kept, the three heads included, because the heads carry the masks.

Since every INR starts from the same initialisation (stage 1), the rows line up across INRs. By default the
encoder sees each weight's change from that initialisation (``subtract_init``), each layer scaled by its RMS over
the training INRs, so layers of very different magnitude (input layer ~0.3, hidden layers ~0.005) weigh alike.

**Decoder** (``decoder``): ``"relu-pe"`` is inr2vec's implicit decoder, (z, positional encoding of the
coordinate) -> ReLU MLP with one skip connection -> (intensity, myocardium logit, fibrosis logit). Its fixed,
axis-aligned encoding frequencies print as stripes on decoded images. ``"film-siren"`` is a SIREN whose every
hidden layer is shifted by a linear map of z (functa's shift modulations, Dupont et al. 2022): its frequencies
are learned and point in any direction, like the INRs' own.

**Targets** (``targets``): ``"data"`` trains encoder and decoder so that decode(encode(INR)) reproduces the
prepared volume and masks the INR was fitted to (as the reference inr2vec trains its decoder against the
ground-truth signal); ``"inr"`` reproduces the INR's own outputs instead (a distillation, which can never beat the
INRs). Both sample voxel centres with stage 1's importance sampling (myocardium and fibrosis bands) and use paper
Eq. 1's loss (squared error + BCE + BCE), reported less its floor, the entropy of the targets' mask
probabilities (0 for binary masks). Only voxel centres are used because an INR is unconstrained between the voxels
it was fitted on (`lgelib.inr.query.decode`).

**Latent** (``latent``): ``"inr2vec"`` (the paper) or ``"weights"``, the ablation beyond the paper: every INR
starts from one shared initialisation, so its weights live in one aligned space and can be diffused directly
(HyperDiffusion, Erkoc et al. 2023). There z is the INR's change from the initialisation (P numbers) and decoding
runs the SIREN itself: lossless, nothing to train (`WeightLatent`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit
from torch import Tensor, nn

from lgelib.data.prepare import PreparedDataset
from lgelib.fsutil import load_tensors, save_tensors
from lgelib.inr.coords import grid_coordinates, index_to_coordinates
from lgelib.device import resolve_device
from lgelib.inr.fit import joint_loss, stack_targets
from lgelib.inr.query import Decoded, decode
from lgelib.inr.sampling import VoxelSampler
from lgelib.inr.siren import ParameterLayout, SirenSettings, batched_forward
from lgelib.inr.stage import FittedInrs, case_fidelity
from lgelib.fingerprint import fingerprint, tensors_match
from lgelib.training import TrainingLoop, cosine_lr, seeded

MODEL_FILE = "inr2vec.safetensors"
LATENTS_FILE = "latents.safetensors"
DECODERS = ("relu-pe", "film-siren")
TARGETS = ("data", "inr")
LATENTS = ("inr2vec", "weights")


@dataclass(frozen=True)
class Inr2VecSettings:
    """Architecture and training of inr2vec; everything here changes the result.

    Attributes:
        latent_dim: size of z (the paper: 512).
        encoder_hidden: widths of the per-row MLP's hidden layers; with the output layer to ``latent_dim`` the
            encoder has ``len(encoder_hidden) + 1`` linear layers (the paper: 4).
        decoder_hidden: width of the implicit decoder.
        decoder_layers: hidden layers (before, after) the decoder's skip connection (inr2vec: 2, 2).
        frequencies, max_frequency_log2: positional encoding of the coordinates, sin and cos of 2^k x for
            ``frequencies`` values of k evenly spaced in [0, max_frequency_log2] (inr2vec: 10 up to 2^9).
        subtract_init: encode each weight's change from the shared initialisation (else the weight itself).
        steps, batch_size, points_per_inr: optimisation steps, INRs per step, voxels per INR per step.
        lr, lr_final, weight_decay: AdamW, cosine decay from ``lr`` to ``lr_final`` (inr2vec: lr 1e-4, wd 1e-2).
        loss_weights: intensity L2, myocardium BCE, fibrosis BCE.
        myocardium_fraction, fibrosis_fraction, band_voxels: share of each INR's voxels drawn near its
            myocardium and its fibrosis (as in stage 1; fibrosis is rare).
        seed: network initialisation, batches and voxel draws.
        checkpoint_every: steps between resumable checkpoints.
        decoder: ``"relu-pe"`` (inr2vec's) or ``"film-siren"`` (a shift-modulated SIREN: no encoding stripes).
        decoder_omega: the film-siren's SIREN frequency factor (every layer).
        targets: ``"data"`` (the prepared volumes the INRs were fitted to) or ``"inr"`` (the INRs' outputs).
        latent: ``"inr2vec"`` (encoder + decoder, the paper) or ``"weights"`` (z = the INR's weights minus the
            shared initialisation; decoded by the SIREN itself; the other settings are then unused).
    """

    latent_dim: int = 512
    encoder_hidden: tuple[int, ...] = (512, 512, 1024)
    decoder_hidden: int = 512
    decoder_layers: tuple[int, int] = (2, 2)
    frequencies: int = 10
    max_frequency_log2: float = 9.0
    subtract_init: bool = True
    steps: int = 20000
    batch_size: int = 16
    points_per_inr: int = 8192
    lr: float = 1e-4
    lr_final: float = 1e-5
    weight_decay: float = 1e-2
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    myocardium_fraction: float = 0.25
    fibrosis_fraction: float = 0.125
    band_voxels: int = 2
    seed: int = 0
    checkpoint_every: int = 500
    decoder: str = "relu-pe"
    decoder_omega: float = 30.0
    targets: str = "inr"
    latent: str = "inr2vec"

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or not self.encoder_hidden or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"invalid inr2vec settings {self}")
        for name, allowed in (("decoder", DECODERS), ("targets", TARGETS), ("latent", LATENTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"inr2vec {name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        for name in ("encoder_hidden", "decoder_layers", "loss_weights"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict:
        return asdict(self)


def check_params(params: Tensor, spec: SirenSettings, reader: str) -> None:
    """Fail early, naming the profile mismatch, unless ``params`` is (N, P) flat parameters of ``spec``."""
    if params.dim() != 2 or params.shape[1] != spec.n_params:
        raise ValueError(
            f"this {reader} reads INRs of {spec.n_params:,} parameters ({spec}); got parameters shaped "
            f"{tuple(params.shape)}: were they fitted with another profile?"
        )


class WeightRows:
    """The INR's neurons as rows: where each row's values sit in the flat parameter vector, and its layer.

    Layers, in `ParameterLayout` order: each backbone layer, then each head's sine and output layer. Row j of a
    layer is [weight[j, :], bias[j]], zero-padded to ``width`` = widest fan-in + 1.
    """

    def __init__(self, spec: SirenSettings) -> None:
        layout = ParameterLayout(spec)
        shapes = dict(layout.entries)
        self.layer_names = [name[: -len(".weight")] for name, _ in layout.entries if name.endswith(".weight")]
        self.width = max(shapes[f"{layer}.weight"][1] for layer in self.layer_names) + 1
        index, layer_of_row = [], []
        for number, layer in enumerate(self.layer_names):
            out_features, in_features = shapes[f"{layer}.weight"]
            w_start = layout.offsets[f"{layer}.weight"][0]
            b_start = layout.offsets[f"{layer}.bias"][0]
            rows = np.full((out_features, self.width), layout.size, dtype=np.int64)  # index P = padding
            rows[:, :in_features] = w_start + np.arange(out_features)[:, None] * in_features + np.arange(in_features)
            rows[:, in_features] = b_start + np.arange(out_features)
            index.append(rows)
            layer_of_row += [number] * out_features
        self.padding = layout.size
        self.index = torch.from_numpy(np.concatenate(index))  # (R, width)
        self.layer = torch.tensor(layer_of_row)  # (R,)

    @property
    def n_rows(self) -> int:
        return len(self.layer)

    def table(self) -> list[tuple[str, int, int]]:
        """(layer, rows, values per row before padding) per layer, for documentation."""
        counts = torch.bincount(self.layer.cpu(), minlength=self.n_layers).tolist()
        lengths = (self.index.cpu() < self.padding).sum(1)
        return [(name, counts[i], int(lengths[self.layer.cpu() == i][0])) for i, name in enumerate(self.layer_names)]

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    def __call__(self, params: Tensor) -> Tensor:
        """Flat parameters (N, P) -> rows (N, R, width), padding zero."""
        if self.index.device != params.device:
            self.index, self.layer = self.index.to(params.device), self.layer.to(params.device)
        return F.pad(params, (0, 1))[:, self.index]


class PositionalEncoding(nn.Module):
    """(..., 3) coordinates -> (..., 3 + 6 * frequencies): the coordinates, then sin and cos of 2^k x per k."""

    def __init__(self, frequencies: int, max_frequency_log2: float) -> None:
        super().__init__()
        self.register_buffer("bands", 2.0 ** torch.linspace(0.0, max_frequency_log2, frequencies), persistent=False)
        self.out_features = 3 * (1 + 2 * frequencies)

    def forward(self, coords: Tensor) -> Tensor:
        scaled = (coords[..., None, :] * self.bands[:, None]).flatten(-2)
        return torch.cat([coords, torch.sin(scaled), torch.cos(scaled)], dim=-1)


class RowEncoder(nn.Module):
    """A set of rows (N, R, F) -> z (N, latent): shared per-row MLP (linear, batch norm, ReLU), max over rows."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for out in hidden:
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU()]
            width = out
        layers.append(nn.Linear(width, latent_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, rows: Tensor) -> Tensor:
        n, r, f = rows.shape
        return self.mlp(rows.reshape(n * r, f)).reshape(n, r, -1).amax(dim=1)


class ImplicitDecoder(nn.Module):
    """(z (N, D), coords (N, M, 3) or (M, 3)) -> (N, M, 3): intensity, myocardium logit, fibrosis logit.

    inr2vec's decoder: the input [z, PE(x)] goes through ReLU layers, with a skip projection of the same input
    added after the first block. The input layers are split into a z part and a coordinate part, which is the
    same linear map as on the concatenation, with the z part computed once per latent instead of per point.
    """

    def __init__(self, latent_dim: int, hidden: int, layers: tuple[int, int], encoding: PositionalEncoding) -> None:
        super().__init__()
        self.encoding = encoding
        coords_features = encoding.out_features
        self.in_latent, self.in_coords = nn.Linear(latent_dim, hidden), nn.Linear(coords_features, hidden, bias=False)
        self.skip_latent = nn.Linear(latent_dim, hidden)
        self.skip_coords = nn.Linear(coords_features, hidden, bias=False)

        def block() -> nn.Module:
            return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())

        self.before_skip = nn.Sequential(*[block() for _ in range(layers[0])])
        self.after_skip = nn.Sequential(*[block() for _ in range(layers[1])], nn.Linear(hidden, 3))

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:
        encoded = self.encoding(coords)
        if encoded.dim() == 2:
            encoded = encoded.unsqueeze(0)
        x = F.relu(self.in_latent(z).unsqueeze(1) + self.in_coords(encoded))
        x = self.before_skip(x) + F.relu(self.skip_latent(z).unsqueeze(1) + self.skip_coords(encoded))
        return self.after_skip(x)


class ModulatedSirenDecoder(nn.Module):
    """(z (N, D), coords (N, M, 3) or (M, 3)) -> (N, M, 3): a SIREN of ``layers`` sine layers, each phase-shifted
    by a linear map of z (functa's shift modulations), then a linear output layer.

    sin(omega (W h + b) + s_l(z)): the shift is in radians, so its scale does not depend on omega. SIREN's
    initialisation (Sitzmann et al. 2020) with the shifts starting at zero, as functa does.
    """

    def __init__(self, latent_dim: int, hidden: int, layers: int, omega: float) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a modulated SIREN needs at least one sine layer, got {layers}")
        self.omega, self.hidden, self.layers = float(omega), hidden, layers
        self.sines = nn.ModuleList([nn.Linear(3, hidden)] + [nn.Linear(hidden, hidden) for _ in range(layers - 1)])
        self.shifts = nn.Linear(latent_dim, hidden * layers)
        self.out = nn.Linear(hidden, 3)
        with torch.no_grad():
            self.sines[0].weight.uniform_(-1 / 3, 1 / 3)
            for layer in [*self.sines[1:], self.out]:
                bound = math.sqrt(6 / layer.in_features) / self.omega
                layer.weight.uniform_(-bound, bound)
            self.shifts.weight.zero_()
            self.shifts.bias.zero_()

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:
        if coords.dim() == 2:
            coords = coords.unsqueeze(0)
        shifts = self.shifts(z).view(len(z), self.layers, 1, self.hidden)
        h = coords
        for number, layer in enumerate(self.sines):
            h = torch.sin(self.omega * layer(h) + shifts[:, number])
        return self.out(h)


def build_decoder(settings: Inr2VecSettings) -> nn.Module:
    """The implicit decoder ``settings.decoder`` names."""
    if settings.decoder == "film-siren":
        return ModulatedSirenDecoder(
            settings.latent_dim, settings.decoder_hidden, sum(settings.decoder_layers), settings.decoder_omega
        )
    return ImplicitDecoder(
        settings.latent_dim,
        settings.decoder_hidden,
        settings.decoder_layers,
        PositionalEncoding(settings.frequencies, settings.max_frequency_log2),
    )


class Inr2Vec(nn.Module):
    """Encoder and decoder together, with the row layout and input scaling of the INRs they were trained on."""

    def __init__(self, spec: SirenSettings, settings: Inr2VecSettings) -> None:
        super().__init__()
        self.spec, self.settings = spec, settings
        self.rows = WeightRows(spec)
        self.register_buffer("init", torch.zeros(spec.n_params))
        self.register_buffer("layer_scale", torch.ones(self.rows.n_layers))
        self.encoder = RowEncoder(self.rows.width + self.rows.n_layers, settings.encoder_hidden, settings.latent_dim)
        self.decoder = build_decoder(settings)

    @property
    def latent_dim(self) -> int:
        return self.settings.latent_dim

    @property
    def decode_width(self) -> int:
        """Activation width per decoded point (sets how many points are decoded at once)."""
        return self.settings.decoder_hidden

    def raw_rows(self, params: Tensor) -> Tensor:
        """(N, P) -> (N, R, width): each neuron's weights (minus the initialisation if ``subtract_init``)."""
        return self.rows(params - self.init if self.settings.subtract_init else params)

    def calibrate(self, params: Tensor, init: Tensor) -> None:
        """Set the shared initialisation and each layer's RMS from the training INRs (part of the model)."""
        self.init.copy_(init)
        rows = self.raw_rows(params.to(self.init.device))
        real = (self.rows.index < self.rows.padding).to(rows.device)  # (R, width): not padding
        layer = self.rows.layer.to(rows.device)
        for number in range(self.rows.n_layers):
            values = rows[:, layer == number][:, real[layer == number]]
            self.layer_scale[number] = values.pow(2).mean().sqrt().clamp_min(1e-8)

    def row_features(self, params: Tensor) -> Tensor:
        """(N, P) -> (N, R, width + layers): scaled rows with their one-hot layer tag."""
        check_params(params, self.spec, "inr2vec model")
        layer = self.rows.layer.to(params.device)
        rows = self.raw_rows(params) / self.layer_scale[layer][:, None]
        tags = F.one_hot(layer, self.rows.n_layers).to(rows.dtype).expand(len(params), -1, -1)
        return torch.cat([rows, tags], dim=-1)

    def encode(self, params: Tensor) -> Tensor:
        """Flat INR parameters (N, P) -> latents (N, latent_dim)."""
        return self.encoder(self.row_features(params))

    def decode(self, z: Tensor, coords: Tensor) -> Tensor:
        """Latents (N, latent_dim) and coords (N, M, 3) or (M, 3) -> raw outputs (N, M, 3)."""
        return self.decoder(z, coords)

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        return self.decode(self.encode(params), coords)


class WeightLatent(nn.Module):
    """The ``weights`` latent: z = an INR's flat weights (N, P) minus the shared initialisation; decoding runs the
    SIREN on init + z, so decode(encode(INR)) is the INR itself. Nothing to train (HyperDiffusion's space)."""

    def __init__(self, spec: SirenSettings, settings: Inr2VecSettings) -> None:
        super().__init__()
        self.spec, self.settings = spec, settings
        self.layout = ParameterLayout(spec)
        self.register_buffer("init", torch.zeros(spec.n_params))

    @property
    def latent_dim(self) -> int:
        return self.spec.n_params

    @property
    def decode_width(self) -> int:
        return self.spec.hidden

    def calibrate(self, params: Tensor, init: Tensor) -> None:
        """Set the shared initialisation (``params`` is unused: kept for the same call as `Inr2Vec`)."""
        self.init.copy_(init)

    def encode(self, params: Tensor) -> Tensor:
        check_params(params, self.spec, "weight latent")
        return params - self.init

    def decode(self, z: Tensor, coords: Tensor) -> Tensor:
        if coords.dim() == 2:
            coords = coords.expand(len(z), -1, -1)
        return batched_forward(self.layout.unflatten(z + self.init), coords, self.spec)


LatentModel = Inr2Vec | WeightLatent
"""What the later stages use: ``encode`` (N, P) -> (N, latent_dim) and ``decode`` (z, coords) -> outputs."""


def build_model(spec: SirenSettings, settings: Inr2VecSettings) -> LatentModel:
    """The latent model ``settings.latent`` names, untrained."""
    return WeightLatent(spec, settings) if settings.latent == "weights" else Inr2Vec(spec, settings)


@torch.no_grad()
def decode_latents(
    model: LatentModel,
    latents: Tensor,
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    points_per_chunk: int | None = None,
) -> Decoded:
    """Volumes (intensity, mask probabilities) on a (slices, rows, cols) grid from latents (N, latent_dim)."""
    device = resolve_device(device)
    model = model.to(device).eval()
    coords = grid_coordinates(tuple(shape), device)
    group = 8
    chunk = points_per_chunk or max(1024, (1 << 25) // (group * model.decode_width))
    volumes = []
    for part in latents.to(device, torch.float32).split(group):
        volumes.append(torch.cat([model.decode(part, c).cpu() for c in coords.split(chunk)], dim=1))
    out = torch.cat(volumes).reshape(len(latents), *shape, 3).numpy()
    return Decoded(
        intensity=out[..., 0].astype(np.float32),
        myocardium=expit(out[..., 1]).astype(np.float32),
        fibrosis=expit(out[..., 2]).astype(np.float32),
    )


@torch.no_grad()
def encode(model: LatentModel, params: Tensor, device: torch.device | str | None = None, group: int = 16) -> Tensor:
    """Latents (N, latent_dim) on the CPU for flat INR parameters (N, P), in evaluation mode."""
    device = resolve_device(device)
    model = model.to(device).eval()
    return torch.cat([model.encode(part.to(device, torch.float32)).cpu() for part in params.split(group)])


@dataclass
class TrainedInr2Vec:
    """The output of the inr2vec stage: the model, the training INRs' latents, and the loss per step."""

    model: LatentModel
    case_ids: list[str]
    latents: Tensor
    history: pd.DataFrame
    seconds: float


def distillation_loss(outputs: Tensor, targets: Tensor, weights: tuple[float, float, float]) -> Tensor:
    """Per-INR loss (N,): paper Eq. 1 against the targets (squared error + BCE + BCE), less the entropy of the
    targets' mask probabilities: the same gradients as Eq. 1, but 0 for a perfect copy (the entropy is 0 for the
    binary masks of ``targets="data"``, and positive for an INR's soft probabilities)."""
    p = targets[..., 1:].clamp(1e-7, 1 - 1e-7)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).mean(-2)
    return joint_loss(outputs, targets, weights) - weights[1] * entropy[..., 0] - weights[2] * entropy[..., 1]


def inr_targets(fitted: FittedInrs, device: torch.device) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """The INRs' own outputs at every voxel centre: targets (N, V, 3) and their masks (N, Z, R, C) for sampling."""
    decoded = decode(fitted.params, fitted.spec, fitted.grid_shape, device)
    n = len(fitted.case_ids)
    targets = np.stack(
        [decoded.intensity.reshape(n, -1), decoded.myocardium.reshape(n, -1), decoded.fibrosis.reshape(n, -1)], axis=-1
    )
    myocardium, fibrosis = decoded.masks()
    return torch.from_numpy(targets).to(device), myocardium, fibrosis


def data_targets(
    prepared: PreparedDataset, fitted: FittedInrs, device: torch.device
) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """The prepared volumes the INRs were fitted to, in the INRs' order: targets (N, V, 3) and masks (N, Z, R, C)."""
    missing = [c for c in fitted.case_ids if c not in prepared.case_ids]
    if missing:
        raise ValueError(
            f"inr2vec with targets='data' needs the prepared volume of every fitted INR; the prepared "
            f"dataset has no {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    if tuple(prepared.images.shape[1:]) != tuple(fitted.grid_shape):
        raise ValueError(
            f"the prepared volumes are on a {prepared.images.shape[1:]} grid but the INRs were fitted on "
            f"{tuple(fitted.grid_shape)}: prepare the data with the INRs' profile"
        )
    rows = prepared.index(fitted.case_ids)
    myocardium, fibrosis = prepared.myocardium[rows].astype(bool), prepared.fibrosis[rows].astype(bool)
    return stack_targets(prepared.images[rows], myocardium, fibrosis).to(device), myocardium, fibrosis


def train_inr2vec(
    fitted: FittedInrs,
    out_dir: Path | str,
    settings: Inr2VecSettings,
    device: torch.device | str | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    prepared: PreparedDataset | None = None,
) -> TrainedInr2Vec:
    """Train inr2vec on the fitted INRs and write the stage folder (a finished run is loaded, an interrupted one
    resumed).

    Writes ``inr2vec.safetensors`` (weights, settings, SIREN spec, grid), ``latents.safetensors`` (z of every
    training INR, with case ids), ``history.csv`` (loss per step) and ``settings.json``. ``on_step(step, loss)`` is
    called after every step (for logging, or to stop by raising). ``prepared``: the volumes the INRs were fitted
    to, needed for ``targets="data"``. The ``weights`` latent trains nothing and only writes the latents.
    """
    out = Path(out_dir)
    device = resolve_device(device)
    supervised_by_data = settings.targets == "data" and settings.latent == "inr2vec"
    if supervised_by_data and prepared is None:
        raise ValueError(
            "inr2vec with targets='data' trains against the prepared volumes: pass prepared=... "
            "(lgelib.data.prepare.load_run_data), or use targets='inr'"
        )
    targets, myocardium, fibrosis = data_targets(prepared, fitted, device) if supervised_by_data else (None, None, None)
    key = fingerprint(
        {
            "settings": settings.to_dict(),
            "spec": fitted.spec.to_dict(),
            "grid": fitted.grid_shape,
            "cases": fitted.case_ids,
        },
        fitted.params,
        fitted.init,
        *([] if targets is None else [targets]),
    )
    if tensors_match(out / MODEL_FILE, key):
        return load_inr2vec(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "settings": settings.to_dict(),
        "siren": fitted.spec.to_dict(),
        "grid_shape": fitted.grid_shape,
        "cases": fitted.case_ids,
    }
    (out / "settings.json").write_text(json.dumps(record, indent=1))
    with seeded(settings.seed):
        model = build_model(fitted.spec, settings).to(device)
    params = fitted.params.to(device)
    model.calibrate(params, fitted.init.to(device))
    if isinstance(model, WeightLatent):
        return _save_stage(out, key, model, fitted, settings, pd.DataFrame(columns=["step", "loss"]), 0.0, device)
    if targets is None:
        targets, myocardium, fibrosis = inr_targets(fitted, device)
    sampler = VoxelSampler(
        fitted.case_ids,
        myocardium,
        fibrosis,
        settings.points_per_inr,
        settings.seed,
        settings.myocardium_fraction,
        settings.fibrosis_fraction,
        settings.band_voxels,
        device,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    loop = TrainingLoop(
        out,
        key,
        settings.steps,
        settings.checkpoint_every,
        {"model": model, "optimizer": optimizer},
        generator,
        "inr2vec",
        progress,
        on_step,
    )
    n, batch_size = len(fitted.case_ids), min(settings.batch_size, len(fitted.case_ids))
    model.train()
    for step in loop:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, settings.steps, settings.lr, settings.lr_final)
        batch = torch.randperm(n, generator=generator)[:batch_size].to(device)
        uniforms = torch.rand((batch_size, settings.points_per_inr), generator=generator, dtype=torch.float64)
        index = sampler.draw(uniforms.to(device), batch)
        target = torch.gather(targets[batch], 1, index.unsqueeze(-1).expand(-1, -1, 3))
        outputs = model(params[batch], index_to_coordinates(index, fitted.grid_shape))
        loss = distillation_loss(outputs, target, settings.loss_weights).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loop.record(step, loss.item())
    history, seconds = loop.finish()
    return _save_stage(out, key, model, fitted, settings, history, seconds, device)


def _save_stage(
    out: Path,
    key: str,
    model: LatentModel,
    fitted: FittedInrs,
    settings: Inr2VecSettings,
    history: pd.DataFrame,
    seconds: float,
    device: torch.device,
) -> TrainedInr2Vec:
    """Encode the training INRs and write the model and the latents (safetensors)."""
    latents = encode(model, fitted.params, device)
    metadata = {
        "fingerprint": key,
        "settings": json.dumps(settings.to_dict()),
        "siren": json.dumps(fitted.spec.to_dict()),
        "grid_shape": json.dumps(fitted.grid_shape),
        "seconds": str(seconds),
    }
    save_tensors(out / MODEL_FILE, {k: v.cpu() for k, v in model.state_dict().items()}, metadata)
    save_tensors(out / LATENTS_FILE, {"latents": latents}, {"case_ids": json.dumps(fitted.case_ids)})
    return TrainedInr2Vec(model.cpu().eval(), list(fitted.case_ids), latents, history, seconds)


def load_inr2vec(folder: Path | str) -> TrainedInr2Vec:
    """Read a stage folder written by `train_inr2vec` (safetensors: nothing is unpickled)."""
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{folder / MODEL_FILE} does not exist: train inr2vec first (train_inr2vec)")
    weights, metadata = load_tensors(folder / MODEL_FILE)
    values = json.loads(metadata["settings"])
    model = build_model(SirenSettings(**json.loads(metadata["siren"])), Inr2VecSettings(**values))
    model.load_state_dict(weights)
    latents, latent_meta = load_tensors(folder / LATENTS_FILE)
    history = pd.read_csv(folder / "history.csv") if (folder / "history.csv").is_file() else pd.DataFrame()
    return TrainedInr2Vec(
        model.eval(),
        json.loads(latent_meta["case_ids"]),
        latents["latents"],
        history,
        float(metadata.get("seconds", "nan")),
    )


def refine_latents(
    model: Inr2Vec,
    fitted: FittedInrs,
    steps: int = 300,
    lr: float = 1e-2,
    points: int = 4096,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Tensor:
    """Latents (N, latent_dim) of ``fitted``'s INRs refined through the frozen decoder: ``steps`` Adam steps on z
    (learning rate ``lr``), from the encoder's latent, on Eq. 1 between decode(z) and the INR's own outputs at
    ``points`` voxel centres per INR and step (importance-sampled as in training, the draws seeded by ``seed`` and
    each case id). Only the INR is used, never the data, so this is an encoder too, slower but fair. z has no prior
    (DeepSDF's auto-decoding, Park et al. 2019, adds a Gaussian one), so it may leave the region of the training
    latents.

    Why: decode(encode(INR)) of an unseen INR mixes two failures, an encoder that does not generalise and a decoder
    that can only draw the training hearts. If the refined latents decode well, the decoder can draw those hearts
    and the encoder is the bottleneck. The model's weights and their ``requires_grad`` flags are as before; the
    model is left on ``device`` in evaluation mode.
    """
    if not isinstance(model, Inr2Vec):
        raise TypeError("refine_latents refines inr2vec latents; the weights latent is the INR itself (exact)")
    if steps < 0 or lr <= 0 or points < 1:
        raise ValueError(f"refine_latents needs steps >= 0, lr > 0 and points >= 1; got {steps}, {lr}, {points}")
    device = resolve_device(device)
    model = model.to(device).eval()
    settings = model.settings
    z = encode(model, fitted.params, device).to(device)
    if steps == 0:
        return z.cpu()
    targets, myocardium, fibrosis = inr_targets(fitted, device)
    sampler = VoxelSampler(
        fitted.case_ids,
        myocardium,
        fibrosis,
        points,
        seed,
        settings.myocardium_fraction,
        settings.fibrosis_fraction,
        settings.band_voxels,
        device,
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        with torch.enable_grad():  # also inside a caller's no_grad block
            z = z.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([z], lr=lr)
            for _ in range(steps):
                index = sampler.next()
                target = torch.gather(targets, 1, index.unsqueeze(-1).expand(-1, -1, 3))
                outputs = model.decode(z, index_to_coordinates(index, fitted.grid_shape))
                loss = distillation_loss(outputs, target, settings.loss_weights).sum()  # each z on its own INR
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
    return z.detach().cpu()


def reconstruction_fidelity(
    model: LatentModel,
    fitted: FittedInrs,
    prepared: PreparedDataset,
    device: torch.device | str | None = None,
    latents: Tensor | None = None,
) -> pd.DataFrame:
    """Per case: PSNR and Dice of decode(encode(INR)) against the original volumes, beside the INR's own.

    ``latents``: decode these instead of encode(INR) (e.g. `refine_latents`), one row per INR of ``fitted``.
    Columns: case_id, psnr_db, myocardium_dice, fibrosis_dice, fibrosis_voxels (of the original), inr_psnr_db
    (the INR itself against the original: the best inr2vec can do).
    """
    if latents is None:
        latents = encode(model, fitted.params, device)
    elif len(latents) != len(fitted.case_ids):
        raise ValueError(f"{len(latents)} latents for {len(fitted.case_ids)} INRs: pass one latent per INR")
    decoded = decode_latents(model, latents, fitted.grid_shape, device)
    rows = []
    for j, (case_id, i) in enumerate(zip(fitted.case_ids, prepared.index(fitted.case_ids))):
        row = {
            "case_id": case_id,
            **case_fidelity(decoded, prepared.images[i], prepared.myocardium[i], prepared.fibrosis[i], j),
        }
        own = fitted.fidelity.set_index("case_id").loc[case_id]
        rows.append({**row, "inr_psnr_db": float(own["psnr_db"])})
    return pd.DataFrame(rows)
