"""Settings of the scar-enhancement chapter (`lgelib.scar_enhancement`), edited by dotted key like every other
setting (``enhancement.diffusion.epochs=50``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SliceSettings:
    """How slices are cut: a square ``fov_mm`` wide around the heart, resampled to ``size`` pixels, intensities
    scaled to [0, 1] between the crop's ``percentiles`` (the paper scales each image to [0, 255]); ``blood_label``
    is the label value of the blood pool (EMIDEC and the embedded cohort: 1, the LV cavity)."""

    size: int = 64
    fov_mm: float = 128.0
    percentiles: tuple[float, float] = (1.0, 99.0)
    blood_label: int = 1

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 8 or self.fov_mm <= 0:
            raise ValueError(f"slice size must be a multiple of 8 (>= 16) and fov_mm positive, got {self}")


@dataclass(frozen=True)
class GammaSettings:
    """Tissue-specific gamma correction, I_e = I^(1/gamma) on [0, 1] intensities (paper Sec. 2.1). The paper chose
    its gammas by eye; the rule here is explicit: a blood pool brighter than the training slices' mean blood pool is
    darkened to that mean (gamma < 1, at least ``blood_gamma_min``), then the scar is brightened until its mean lies
    ``scar_blood_gap`` above the blood pool's (gamma > 1, between ``scar_gamma``), so that the enhanced scar stands
    apart from the blood. Healthy myocardium and everything else are left as they are."""

    scar_blood_gap: float = 0.15
    scar_gamma: tuple[float, float] = (1.25, 5.0)
    blood_gamma_min: float = 0.5
    ceiling: float = 0.98

    def __post_init__(self) -> None:
        if not (1 < self.scar_gamma[0] <= self.scar_gamma[1]) or not 0 < self.blood_gamma_min <= 1:
            raise ValueError(f"scar gammas must be > 1 and the blood gamma floor in (0, 1], got {self}")


@dataclass(frozen=True)
class UNetSettings:
    """The conditional denoiser: a U-Net with residual blocks, a timestep embedding and (``attention``)
    self-attention at the lowest resolution, after SR3 (Saharia et al.); input the noisy target and the original
    slice, output the predicted noise."""

    channels: int = 32
    multipliers: tuple[int, ...] = (1, 2, 2)
    res_blocks: int = 1
    attention: bool = False
    dropout: float = 0.0


@dataclass(frozen=True)
class DiffusionSettings:
    """Training of the denoiser (paper Sec. 3.2: T = 1000, linear schedule, Adam 1e-4, batch 16, 200 epochs).
    ``local``: noise and loss restricted to the ROI (the paper's method; False is the ablation's global DDPM).
    An epoch is as many random batches as the training slices fill."""

    timesteps: int = 1000
    beta: tuple[float, float] = (1e-4, 0.02)
    epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-4
    local: bool = True
    roi_dilation: int = 0
    seed: int = 0
    checkpoint_every: int = 500


@dataclass(frozen=True)
class SamplingSettings:
    """Inference: partial diffusion from step ``lam`` (1 <= lam <= T) and the mean of ``k`` samples (paper: 250, 5);
    ``roi_dilation`` grows the ROI by that many pixels (the paper's remedy for missed subendocardial scar)."""

    lam: int = 250
    k: int = 5
    roi_dilation: int = 0
    seed: int = 0
    batch_size: int = 64


@dataclass(frozen=True)
class EnhancementSettings:
    """Everything chapter 08 trains and samples with."""

    slices: SliceSettings = field(default_factory=SliceSettings)
    gamma: GammaSettings = field(default_factory=GammaSettings)
    unet: UNetSettings = field(default_factory=UNetSettings)
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)

    def __post_init__(self) -> None:
        if not 1 <= self.sampling.lam <= self.diffusion.timesteps:
            raise ValueError(
                f"sampling.lam must lie in [1, diffusion.timesteps = {self.diffusion.timesteps}], got "
                f"{self.sampling.lam}"
            )
        if self.slices.size % 2 ** (len(self.unet.multipliers) - 1):
            raise ValueError(f"slice size {self.slices.size} must be divisible by 2^(levels - 1) of the U-Net")

    def to_dict(self) -> dict:
        return asdict(self)


SMOKE_ENHANCEMENT = EnhancementSettings(
    slices=SliceSettings(size=64, fov_mm=128.0),
    unet=UNetSettings(channels=16, multipliers=(1, 2, 2), res_blocks=1, attention=False),
    diffusion=DiffusionSettings(
        timesteps=100, beta=(1e-3, 0.2), epochs=40, batch_size=16, lr=5e-4, checkpoint_every=200
    ),
    sampling=SamplingSettings(lam=25, k=3),
)
"""For 2 CPU cores in minutes: 64 x 64 crops, a U-Net 16 channels wide (263,169 parameters, about 0.2 s a step of
16 slices here), T = 100 with lambda = 25, k = 3, 40 epochs at a higher learning rate. The betas are the paper's
scaled by 1000 / T (as DDPM's schedule is when T is cut), so that lambda = 25 of 100 noises as much as the paper's
250 of 1000 (abar about 0.53 against 0.52); with the paper's betas unscaled it would noise almost nothing
(abar 0.94) and the model learns to copy its input."""

PAPER_ENHANCEMENT = EnhancementSettings(
    slices=SliceSettings(size=128, fov_mm=192.0),
    unet=UNetSettings(channels=64, multipliers=(1, 2, 4, 8), res_blocks=2, attention=True, dropout=0.1),
    diffusion=DiffusionSettings(timesteps=1000, epochs=200, batch_size=16, lr=1e-4, checkpoint_every=1000),
    sampling=SamplingSettings(lam=250, k=5),
)
"""The paper's training and inference (T = 1000, lambda = 250, k = 5, 200 epochs, batch 16, Adam 1e-4) with an
SR3-style U-Net on 128 x 128 crops (the paper pads whole images to 256 x 256): a GPU job."""
