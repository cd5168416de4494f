"""One fitting step of N joint SIRENs by hand: forward, loss (paper Eq. 1) and backward into preallocated buffers.

Autograd spends most of a SIREN step outside the matrix products: it materialises ``omega * (xW + b)`` and its
gradient as separate tensors, allocates every activation afresh (on Linux, tensors over 32 MB come straight from
the kernel, so each step pays page faults: the fitter's 'kernel time') and runs one element-wise pass per
operation. Here each sine layer costs one ``baddbmm`` with ``omega`` folded into its ``alpha``/``beta``, one
``sin`` into a reused buffer, and in the backward pass one in-place ``cos`` and one in-place multiply; the voxels
of a step are processed in chunks so the buffers stay small (cache-sized on a CPU) and are reused every step.

The gradients are those of `batched_forward` + `joint_loss` under autograd (``tests/test_inr.py`` compares them
to float rounding), so the optimiser follows the same trajectory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lgelib.inr.siren import HEADS, ParameterLayout, SirenSettings, encode_inputs

N_OUT = len(HEADS)


class SirenStep:
    """Loss and gradient of N SIRENs (flat parameters (N, P)) on one batch of voxels per SIREN.

    Args:
        spec: the architecture.
        n: SIRENs fitted together.
        points: voxels per SIREN per step.
        loss_weights: weights of the intensity L2, myocardium BCE and fibrosis BCE terms.
        chunk: voxels per SIREN processed at once (None: `default_chunk`). Changes only the order in which the
            gradient is summed.
        device: where the buffers live.
    """

    def __init__(
        self,
        spec: SirenSettings,
        n: int,
        points: int,
        loss_weights: tuple[float, float, float],
        chunk: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.spec, self.n, self.points = spec, int(n), int(points)
        self.layout = ParameterLayout(spec)
        self.weights = tuple(float(w) for w in loss_weights)
        device = torch.device(device)
        self.chunk = int(min(chunk or self.default_chunk(spec, n, points, device), self.points))
        width, heads = spec.hidden, N_OUT * spec.head_hidden

        def buffer(channels: int) -> Tensor:
            return torch.empty(self.n, self.chunk, channels, device=device)

        layers = spec.backbone_layers
        self.pre = [buffer(width) for _ in range(layers)]  # omega * (h W^T + b); its cosine in the backward pass
        self.act = [buffer(width) for _ in range(layers)]  # sin(pre): each layer's output
        self.grad_act = [buffer(width), buffer(width)]  # gradient with respect to an activation (ping-pong)
        if heads:
            self.head_pre, self.head_act, self.grad_head = buffer(heads), buffer(heads), buffer(heads)
        self.grad = torch.zeros(self.n, self.layout.size, device=device)
        self.grad_named = self.layout.unflatten(self.grad)
        # Contiguous accumulators: batched matmuls into the strided views of ``grad`` would run case by case. The
        # first layer's is kept transposed, (inputs, width): a matmul with 3 output columns is several times slower
        # than one with 3 rows. The same holds for the output layer, computed below as (3, voxels).
        self.grad_weight = [
            torch.empty(self.n, spec.input_width, width, device=device)
            if i == 0
            else torch.empty(self.n, width, width, device=device)
            for i in range(layers)
        ]

    @staticmethod
    def default_chunk(spec: SirenSettings, n: int, points: int, device: torch.device | str = "cpu") -> int:
        """Voxels per SIREN per chunk. CPU: about 2^20 floats (4 MB) per activation buffer, at least 256 voxels
        (fastest on the 2-core CPU measured in benchmarks/README.md; smaller chunks make the matmuls inefficient).
        GPU: up to 2^28 floats (1 GB) per buffer, so a step is a few large kernels."""
        budget = 1 << (28 if torch.device(device).type == "cuda" else 20)
        return int(min(points, max(256, budget // (n * max(spec.hidden, N_OUT * spec.head_hidden)))))

    def omega(self, layer: int) -> float:
        return self.spec.first_omega if layer == 0 else self.spec.hidden_omega

    @torch.no_grad()
    def __call__(self, flat: Tensor, coords: Tensor, targets: Tensor) -> Tensor:
        """Per-SIREN loss (N,) at ``flat`` for coordinates (N, B, 3) and targets (N, B, 3); the gradient of the
        summed loss is left in ``self.grad`` (N, P)."""
        expected = (self.n, self.points, 3)
        if tuple(coords.shape) != expected or tuple(targets.shape) != expected or flat.shape[0] != self.n:
            raise ValueError(
                f"this step fits {self.n} SIRENs on {self.points} voxels each: expected coordinates and "
                f"targets shaped {expected}, got {tuple(coords.shape)} and {tuple(targets.shape)} "
                f"with {flat.shape[0]} parameter rows"
            )
        spec, hh = self.spec, self.spec.head_hidden
        p = self.layout.unflatten(flat)
        weights = [p[f"backbone.{i}.weight"].contiguous() for i in range(spec.backbone_layers)]
        g = self.grad_named
        self.grad.zero_()
        for buffer in self.grad_weight:
            buffer.zero_()
        head_weight = torch.cat([p[f"heads.{h}.0.weight"] for h in HEADS], dim=1)  # (N, 3 hh or 3, width)
        head_bias = torch.cat([p[f"heads.{h}.0.bias"] for h in HEADS], dim=1).unsqueeze(1)
        grad_head_weight, grad_head_bias = torch.zeros_like(head_weight), torch.zeros_like(head_bias[:, 0])
        if hh:
            # The three heads' output layers as one block-diagonal (N, 3, 3 hh) matrix.
            out_weight = torch.zeros(self.n, N_OUT, N_OUT * hh, device=flat.device)
            for k, h in enumerate(HEADS):
                out_weight[:, k, k * hh : (k + 1) * hh] = p[f"heads.{h}.1.weight"][:, 0]
            out_bias = torch.cat([p[f"heads.{h}.1.bias"] for h in HEADS], dim=1).unsqueeze(2)
            grad_out_weight = torch.zeros_like(out_weight)
            grad_out_bias = torch.zeros(self.n, N_OUT, device=flat.device)
        loss_sums = torch.zeros(self.n, N_OUT, device=flat.device)
        scale = torch.tensor([2 * self.weights[0], self.weights[1], self.weights[2]], device=flat.device) / self.points
        for start in range(0, self.points, self.chunk):
            stop = min(start + self.chunk, self.points)
            m = stop - start
            x0 = encode_inputs(coords[:, start:stop], spec)
            target = targets[:, start:stop]
            # Forward.
            h = x0
            for i in range(spec.backbone_layers):
                w = self.omega(i)
                pre, act = self.pre[i][:, :m], self.act[i][:, :m]
                torch.baddbmm(
                    p[f"backbone.{i}.bias"].unsqueeze(1), h, weights[i].transpose(1, 2), beta=w, alpha=w, out=pre
                )
                torch.sin(pre, out=act)
                h = act
            if hh:
                head_pre, head_act = self.head_pre[:, :m], self.head_act[:, :m]
                w = spec.hidden_omega
                torch.baddbmm(head_bias, h, head_weight.transpose(1, 2), beta=w, alpha=w, out=head_pre)
                torch.sin(head_pre, out=head_act)
                out = torch.baddbmm(out_bias, out_weight, head_act.transpose(1, 2)).transpose(1, 2)
            else:
                out = torch.baddbmm(head_bias.transpose(1, 2), head_weight, h.transpose(1, 2)).transpose(1, 2)
            # Loss (sums here, means at the end) and its gradient with respect to the outputs.
            error = out[..., 0] - target[..., 0]
            loss_sums[:, 0] += (error * error).sum(1)
            loss_sums[:, 1:] += F.binary_cross_entropy_with_logits(out[..., 1:], target[..., 1:], reduction="none").sum(
                1
            )
            grad_out = torch.cat([error.unsqueeze(-1), torch.sigmoid(out[..., 1:]) - target[..., 1:]], dim=-1)
            grad_out.mul_(scale)
            # Backward.
            if hh:
                grad_out_weight.baddbmm_(grad_out.transpose(1, 2), head_act)
                grad_out_bias.add_(grad_out.sum(1))
                grad_head = self.grad_head[:, :m]
                torch.bmm(grad_out, out_weight, out=grad_head)
                grad_head.mul_(head_pre.cos_())
                w = spec.hidden_omega
                grad_head_weight.baddbmm_(grad_head.transpose(1, 2), h, alpha=w)
                grad_head_bias.add_(grad_head.sum(1), alpha=w)
                upstream, weight = grad_head, head_weight
            else:
                grad_head_weight.baddbmm_(grad_out.transpose(1, 2), h)
                grad_head_bias.add_(grad_out.sum(1))
                upstream, weight, w = grad_out, head_weight, 1.0
            for i in reversed(range(spec.backbone_layers)):
                grad = self.grad_act[i % 2][:, :m]
                grad.baddbmm_(upstream, weight, beta=0, alpha=w)  # d loss / d act[i]
                pre = self.pre[i][:, :m]
                grad.mul_(pre.cos_())  # d loss / d (xW^T + b), up to the factor omega
                w = self.omega(i)
                below = self.act[i - 1][:, :m] if i else x0
                if i:
                    self.grad_weight[i].baddbmm_(grad.transpose(1, 2), below, alpha=w)
                else:
                    self.grad_weight[0].baddbmm_(below.transpose(1, 2), grad, alpha=w)
                g[f"backbone.{i}.bias"].add_(grad.sum(1), alpha=w)
                upstream, weight = grad, weights[i]
        # Scatter the accumulated gradients back to their named parameters.
        for i, buffer in enumerate(self.grad_weight):
            g[f"backbone.{i}.weight"].copy_(buffer.transpose(1, 2) if i == 0 else buffer)
        width = hh or 1
        for k, h in enumerate(HEADS):
            g[f"heads.{h}.0.weight"].copy_(grad_head_weight[:, k * width : (k + 1) * width])
            g[f"heads.{h}.0.bias"].copy_(grad_head_bias[:, k * width : (k + 1) * width])
            if hh:
                g[f"heads.{h}.1.weight"][:, 0].copy_(grad_out_weight[:, k, k * hh : (k + 1) * hh])
                g[f"heads.{h}.1.bias"].copy_(grad_out_bias[:, k : k + 1])
        means = loss_sums / self.points
        return self.weights[0] * means[:, 0] + self.weights[1] * means[:, 1] + self.weights[2] * means[:, 2]
