"""The joint image-mask SIREN: a shared sine backbone and one small head per output (paper Eq. 1).

One network maps a coordinate (z, y, x) in [-1, 1]^3 to (intensity, myocardium logit, fibrosis logit).
Its parameters have one documented flat layout (`ParameterLayout`), shared by the single-model
`JointSiren` module and by the batched functional forward that fits many volumes at once, so a row of the
stage's N x P output loads into a `JointSiren` with `load_flat`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

HEADS: tuple[str, ...] = ("intensity", "myocardium", "fibrosis")
"""Output order of every forward: image intensity, myocardium logit, fibrosis logit."""

INITS: tuple[str, ...] = ("siren", "authors")
"""Initialisations `siren_init` can draw (`SirenSettings.init`)."""

AUTHORS_INIT_OMEGA = 30.0
"""The w0 of the authors' ``model.siren_init``: their weights are drawn for omega 30 while their sines use omega 1."""


@dataclass(frozen=True)
class SirenSettings:
    """Architecture of the joint SIREN.

    Attributes:
        hidden: width of every backbone layer.
        backbone_layers: sine layers in the shared backbone, the input layer included.
        head_hidden: width of each head's one sine layer; 0 makes each head a single linear layer.
        first_omega: frequency factor of the input layer (SIREN's omega_0).
        hidden_omega: frequency factor of every later sine layer.
        encoding_frequencies: F > 0 feeds the input layer Fourier features of the coordinates instead of the
            coordinates: (x, sin(2^0 x), cos(2^0 x), ..., sin(2^(F-1) x), cos(2^(F-1) x)), 3 (1 + 2F) inputs, as
            the authors' public ``fit_inr.py`` does (F = 10); 0 feeds the coordinates (SIREN).
        init: ``"siren"``: Sitzmann et al.'s initialisation (`siren_init`); ``"authors"``: the authors' public
            ``model.siren_init`` (every weight ~ U(+-sqrt(6 / fan_in) / 30), U(+-1/3) where fan_in is 3; biases 0).
    """

    hidden: int = 256
    backbone_layers: int = 4
    head_hidden: int = 80
    first_omega: float = 30.0
    hidden_omega: float = 30.0
    encoding_frequencies: int = 0
    init: str = "siren"

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.backbone_layers < 1 or self.head_hidden < 0 or self.encoding_frequencies < 0:
            raise ValueError(
                f"invalid SIREN spec {self}: need hidden >= 1, backbone_layers >= 1, head_hidden >= 0, "
                "encoding_frequencies >= 0"
            )
        if self.init not in INITS:
            raise ValueError(f"unknown SIREN init {self.init!r}; choose one of {', '.join(INITS)}")

    @property
    def input_width(self) -> int:
        """Inputs of the first layer: 3 coordinates, or their 3 (1 + 2F) Fourier features."""
        return 3 * (1 + 2 * self.encoding_frequencies)

    def to_dict(self) -> dict[str, float | int | str]:
        """The fields, leaving out ``encoding_frequencies`` and ``init`` at their defaults, so that the fingerprints
        of INRs fitted before those fields existed stay valid."""
        values = asdict(self)
        for name, default in (("encoding_frequencies", 0), ("init", "siren")):
            if values[name] == default:
                del values[name]
        return values

    @property
    def n_params(self) -> int:
        return ParameterLayout(self).size


class ParameterLayout:
    """Names, shapes and offsets of every parameter in the flat vector, in `JointSiren.state_dict` order.

    Order: ``backbone.{i}.weight`` (out, in) and ``backbone.{i}.bias`` for each backbone layer, then for each
    head in `HEADS` order ``heads.{head}.0.weight/bias`` (the sine layer) and ``heads.{head}.1.weight/bias``
    (the linear output); with ``head_hidden == 0`` each head is only ``heads.{head}.0`` (linear).
    """

    def __init__(self, spec: SirenSettings) -> None:
        self.spec = spec
        entries: list[tuple[str, tuple[int, ...]]] = []
        width = spec.input_width
        for i in range(spec.backbone_layers):
            entries += [(f"backbone.{i}.weight", (spec.hidden, width)), (f"backbone.{i}.bias", (spec.hidden,))]
            width = spec.hidden
        for head in HEADS:
            if spec.head_hidden:
                entries += [
                    (f"heads.{head}.0.weight", (spec.head_hidden, spec.hidden)),
                    (f"heads.{head}.0.bias", (spec.head_hidden,)),
                    (f"heads.{head}.1.weight", (1, spec.head_hidden)),
                    (f"heads.{head}.1.bias", (1,)),
                ]
            else:
                entries += [(f"heads.{head}.0.weight", (1, spec.hidden)), (f"heads.{head}.0.bias", (1,))]
        self.entries = entries
        self.offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for name, shape in entries:
            self.offsets[name] = (start, start + math.prod(shape))
            start += math.prod(shape)
        self.size = start

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of a flat (..., P) tensor as named parameters shaped (..., *shape)."""
        if flat.shape[-1] != self.size:
            raise ValueError(f"expected {self.size} parameters for {self.spec}, got {flat.shape[-1]}")
        lead = flat.shape[:-1]
        return {
            name: flat[..., self.offsets[name][0] : self.offsets[name][1]].reshape(*lead, *shape)
            for name, shape in self.entries
        }

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        """Inverse of `unflatten`: named (..., *shape) tensors to one (..., P) tensor."""
        parts = []
        for name, shape in self.entries:
            tensor = params[name]
            parts.append(tensor.reshape(*tensor.shape[: tensor.dim() - len(shape)], -1))
        return torch.cat(parts, dim=-1)

    def table(self) -> list[tuple[str, tuple[int, ...], int]]:
        """(name, shape, count) per parameter, for documentation."""
        return [(name, shape, math.prod(shape)) for name, shape in self.entries]


def siren_init(spec: SirenSettings, seed: int) -> Tensor:
    """The flat (P,) initialisation for ``seed``, drawn on the CPU so a seed gives the same weights on every device.

    ``spec.init == "siren"`` (Sitzmann et al. 2020, section 3.2): input layer weights ~ U(-1/fan_in, 1/fan_in);
    every later weight ~ U(-sqrt(6/fan_in)/omega, sqrt(6/fan_in)/omega), which keeps omega * Wx of each sine layer
    ~ unit variance at any depth; biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in PyTorch's nn.Linear (and the
    reference SIREN code).

    ``spec.init == "authors"``: the authors' public ``model.siren_init`` with its w0 = 30: weights of a layer
    with fan_in 3 ~ U(-1/3, 1/3), every other weight (their first layer reads 63 Fourier features, so all of
    them) ~ U(-sqrt(6/fan_in)/30, sqrt(6/fan_in)/30), biases 0.
    """
    layout = ParameterLayout(spec)
    shapes = dict(layout.entries)
    generator = torch.Generator().manual_seed(int(seed))
    params = {}
    for name, shape in layout.entries:
        fan_in = shapes[name.rsplit(".", 1)[0] + ".weight"][-1]
        if spec.init == "authors":
            if name.endswith("bias"):
                params[name] = torch.zeros(shape)
                continue
            bound = 1.0 / fan_in if fan_in == 3 else math.sqrt(6.0 / fan_in) / AUTHORS_INIT_OMEGA
        elif name.endswith("bias"):
            bound = 1.0 / math.sqrt(fan_in)
        elif name == "backbone.0.weight":
            bound = 1.0 / fan_in
        else:
            bound = math.sqrt(6.0 / fan_in) / spec.hidden_omega
        params[name] = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).mul(bound).float()
    return layout.flatten(params)


def encode_inputs(coords: Tensor, spec: SirenSettings) -> Tensor:
    """What the first layer reads: the (..., 3) coordinates, or their Fourier features (``encoding_frequencies``)
    in the authors' order (x, then sin and cos of 2^k x for k = 0 .. F-1)."""
    if not spec.encoding_frequencies:
        return coords
    parts = [coords]
    for k in range(spec.encoding_frequencies):
        parts += [torch.sin(2.0**k * coords), torch.cos(2.0**k * coords)]
    return torch.cat(parts, dim=-1)


class JointSiren(nn.Module):
    """One joint SIREN as a plain module: the single-volume reference for the batched forward."""

    def __init__(self, spec: SirenSettings) -> None:
        super().__init__()
        self.spec = spec
        widths = [spec.input_width] + [spec.hidden] * spec.backbone_layers
        self.backbone = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        if spec.head_hidden:
            self.heads = nn.ModuleDict(
                {
                    head: nn.ModuleList([nn.Linear(spec.hidden, spec.head_hidden), nn.Linear(spec.head_hidden, 1)])
                    for head in HEADS
                }
            )
        else:
            self.heads = nn.ModuleDict({head: nn.ModuleList([nn.Linear(spec.hidden, 1)]) for head in HEADS})

    def load_flat(self, flat: Tensor) -> JointSiren:
        """Load a flat (P,) parameter vector (one row of the stage's output)."""
        self.load_state_dict(ParameterLayout(self.spec).unflatten(flat.detach().clone()))
        return self

    def flat(self) -> Tensor:
        return ParameterLayout(self.spec).flatten(dict(self.named_parameters()))

    def forward(self, coords: Tensor) -> Tensor:
        """(..., 3) coordinates -> (..., 3) outputs in `HEADS` order."""
        h = encode_inputs(coords, self.spec)
        for i, layer in enumerate(self.backbone):
            h = torch.sin((self.spec.first_omega if i == 0 else self.spec.hidden_omega) * layer(h))
        outputs = []
        for head in HEADS:
            layers = self.heads[head]
            z = h
            if self.spec.head_hidden:
                z = torch.sin(self.spec.hidden_omega * layers[0](z))
            outputs.append(layers[-1](z))
        return torch.cat(outputs, dim=-1)


def batched_forward(
    params: Mapping[str, Tensor], coords: Tensor, spec: SirenSettings, matmul_dtype: torch.dtype | None = None
) -> Tensor:
    """N SIRENs at once: params shaped (N, *shape) per name, coords (N, B, 3) -> outputs (N, B, 3).

    Every layer is one batched matmul over the N networks; the three heads' sine layers are fused into one.
    ``matmul_dtype`` (e.g. torch.bfloat16 on a GPU) runs the matmuls in that type; sines stay in float32,
    because omega * x needs the precision.
    """

    def linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        if matmul_dtype is not None:
            return torch.baddbmm(
                bias.unsqueeze(1).to(matmul_dtype), x.to(matmul_dtype), weight.to(matmul_dtype).transpose(1, 2)
            ).float()
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    h = encode_inputs(coords, spec)
    for i in range(spec.backbone_layers):
        omega = spec.first_omega if i == 0 else spec.hidden_omega
        h = torch.sin(omega * linear(h, params[f"backbone.{i}.weight"], params[f"backbone.{i}.bias"]))
    # The heads' first layers, stacked along the output axis, are one matmul.
    weight = torch.cat([params[f"heads.{head}.0.weight"] for head in HEADS], dim=1)
    bias = torch.cat([params[f"heads.{head}.0.bias"] for head in HEADS], dim=1)
    if not spec.head_hidden:
        return linear(h, weight, bias)
    n, b = h.shape[:2]
    z = torch.sin(spec.hidden_omega * linear(h, weight, bias)).view(n, b, len(HEADS), spec.head_hidden)
    out_weight = torch.stack([params[f"heads.{head}.1.weight"][:, 0] for head in HEADS], dim=1)  # (N, 3, hh)
    out_bias = torch.cat([params[f"heads.{head}.1.bias"] for head in HEADS], dim=1)  # (N, 3)
    return (z * out_weight.unsqueeze(1)).sum(-1) + out_bias.unsqueeze(1)


def flops_per_point(spec: SirenSettings) -> int:
    """Multiply-add FLOPs of one forward pass for one coordinate (2 per weight)."""
    return 2 * sum(math.prod(shape) for name, shape in ParameterLayout(spec).entries if name.endswith("weight"))
