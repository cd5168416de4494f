"""Scar enhancement by localized partial diffusion (Hasny et al.): noise stays in the ROI (forward process, loss and
sampling), partial diffusion starts at step lambda, gamma targets brighten scar and nothing else, CNR on a
hand-built image, slices with their blood pool, and a tiny training that reloads and enhances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lgelib.data.dataset import open_split
from lgelib.scar_enhancement.diffusion import (
    Schedule,
    enhance,
    forward_noise,
    load_denoiser,
    localized_loss,
    partial_diffusion,
    train_denoiser,
)
from lgelib.scar_enhancement.evaluation import cnr, crop_similarity, roi_box
from lgelib.scar_enhancement.roi import dilate, reference_roi, roi_from_segmentation
from lgelib.scar_enhancement.settings import DiffusionSettings, GammaSettings, SliceSettings, UNetSettings
from lgelib.scar_enhancement.slices import ScarSlices, scar_slices
from lgelib.scar_enhancement.targets import gamma_targets, mean_blood_pool
from toys import phantom_manifest

SCHEDULE = Schedule.linear(50, (1e-4, 0.02))


def _roi(n: int = 2, size: int = 16) -> torch.Tensor:
    roi = torch.zeros(n, 1, size, size, dtype=torch.bool)
    roi[:, :, 4:12, 5:11] = True
    return roi


def test_the_forward_process_noises_only_the_roi() -> None:
    y_0, roi = torch.rand(2, 1, 16, 16), _roi()
    t = torch.tensor([10, 49])
    a = forward_noise(y_0, t, torch.randn(2, 1, 16, 16), roi, SCHEDULE)
    b = forward_noise(y_0, t, torch.randn(2, 1, 16, 16), roi, SCHEDULE)
    abar = SCHEDULE.alphas_bar[t].float().view(-1, 1, 1, 1)
    assert torch.allclose(a[~roi], (abar.sqrt() * y_0).expand_as(a)[~roi])  # Eq. 3: outside, only scaled
    assert torch.equal(a[~roi], b[~roi]) and not torch.allclose(a[roi], b[roi])


def test_the_loss_ignores_pixels_outside_the_roi() -> None:
    y_0, x_0, roi = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), _roi()
    t, eps = torch.tensor([3, 30]), torch.randn(2, 1, 16, 16)
    garbage = torch.randn(2, 1, 16, 16) * 100

    def good(y_t, x, step):
        return eps.clone()

    def bad_outside(y_t, x, step):
        return torch.where(roi, eps, garbage)

    assert localized_loss(good, y_0, x_0, roi, SCHEDULE, t, eps) == 0
    assert localized_loss(bad_outside, y_0, x_0, roi, SCHEDULE, t, eps) == 0
    prediction = torch.zeros(2, 1, 16, 16, requires_grad=True)
    localized_loss(lambda *args: prediction, y_0, x_0, roi, SCHEDULE, t, eps).backward()
    assert (prediction.grad[~roi] == 0).all() and (prediction.grad[roi] != 0).any()
    whole = torch.ones_like(roi)  # the global ablation counts every pixel
    assert localized_loss(bad_outside, y_0, x_0, whole, SCHEDULE, t, eps) > 0


@pytest.mark.parametrize("lam", [1, 7, 50])
def test_partial_diffusion_starts_at_lambda_and_leaves_the_outside_as_it_was(lam: int) -> None:
    x_0, roi = torch.rand(2, 1, 16, 16), _roi()
    steps, first_input = [], []

    def model(y_t, x, t):
        steps.append(int(t[0]))
        if not first_input:
            first_input.append(y_t.clone())
        assert torch.equal(x, x_0)  # conditioned on the input slice at every step
        return torch.randn_like(y_t)  # whatever it predicts outside the ROI must not matter

    out = partial_diffusion(model, x_0, roi, SCHEDULE, lam, torch.Generator().manual_seed(0))
    assert steps == list(range(lam - 1, -1, -1))  # lambda steps, from index lambda - 1 down to 0
    start = forward_noise(
        x_0,
        torch.full((2,), lam - 1),
        torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)),
        roi,
        SCHEDULE,
    )
    assert torch.allclose(first_input[0], start)
    assert torch.allclose(out[~roi], x_0[~roi], atol=1e-5)
    with pytest.raises(ValueError, match="lambda"):
        partial_diffusion(model, x_0, roi, SCHEDULE, 51, torch.Generator())


def _hand_slices() -> ScarSlices:
    """Two 16 x 16 slices: background 0.1, blood pool 0.6 (slice 0) or 0.8 (slice 1), healthy myocardium 0.2, scar
    0.5 on a quarter of the ring."""
    yy, xx = np.mgrid[:16, :16]
    radius = np.hypot(yy - 7.5, xx - 7.5)
    blood, ring = radius < 3.5, (radius >= 3.5) & (radius < 6)
    scar = ring & (xx > 8) & (yy > 8)
    images = []
    for blood_value in (0.6, 0.8):
        image = np.full((16, 16), 0.1, np.float32)
        image[blood], image[ring], image[scar] = blood_value, 0.2, 0.5
        images.append(image)
    stack = lambda m: np.stack([m, m])  # noqa: E731
    return ScarSlices(np.stack(images), stack(blood), stack(ring), stack(scar), np.array(["a", "b"]), np.array([0, 1]))


def test_gamma_targets_brighten_scar_darken_bright_blood_and_leave_the_rest() -> None:
    slices = _hand_slices()
    reference = mean_blood_pool(slices)
    assert reference == pytest.approx(0.7)
    targets, gammas = gamma_targets(slices, GammaSettings(), reference)
    healthy = slices.healthy
    outside = ~(slices.blood | slices.myocardium)
    assert np.array_equal(targets[healthy], slices.image[healthy])  # healthy myocardium unchanged
    assert np.array_equal(targets[outside], slices.image[outside])
    assert (targets[slices.scar] > slices.image[slices.scar]).all() and (gammas.scar_gamma > 1).all()
    # slice 0 blood (0.6) is below the mean: left alone; slice 1 blood (0.8) is darkened to the mean, 0.7
    assert np.array_equal(targets[0][slices.blood[0]], slices.image[0][slices.blood[0]])
    assert gammas.blood_gamma[0] == 1 and gammas.blood_gamma[1] < 1
    assert targets[1][slices.blood[1]].mean() == pytest.approx(0.7, abs=1e-3)
    for i in (0, 1):  # the scar ends up the gap above the blood pool, apart from it
        gap = targets[i][slices.scar[i]].mean() - targets[i][slices.blood[i]].mean()
        assert gap == pytest.approx(GammaSettings().scar_blood_gap, abs=1e-3)


def test_cnr_on_a_hand_built_image() -> None:
    image = np.zeros((4, 4))
    first, second = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    first[0] = True
    image[0] = 0.9
    second[2:] = True
    image[2] = 0.2
    image[3] = 0.4  # tissue 2: mean 0.3, standard deviation 0.1
    assert cnr(image, first, second) == pytest.approx(6.0)
    assert np.isnan(cnr(image, np.zeros((4, 4), bool), second))
    ssim, psnr = crop_similarity(image, image, first)
    assert ssim == pytest.approx(1.0) and psnr == 100.0
    assert roi_box(first) == (slice(0, 4), slice(0, 4))  # grown to the 16-pixel minimum, kept in the image


def test_rois_from_labels_and_from_a_segmentation_and_their_dilation() -> None:
    slices = _hand_slices()
    roi = reference_roi(slices)
    assert np.array_equal(roi, slices.blood | slices.myocardium)
    assert np.array_equal(roi_from_segmentation(slices.myocardium), roi)  # the cavity is filled in
    grown = dilate(roi, 1)
    assert (grown >= roi).all() and grown.sum() > roi.sum()
    assert not grown[:, 0, 0].any()


def test_slices_of_a_phantom_case_hold_blood_myocardium_and_scar_in_unit_intensities(tmp_path: Path) -> None:
    dataset = open_split(phantom_manifest(tmp_path / "tiny.yaml", n_cases=3, n_test=1))
    slices = scar_slices(dataset, dataset.split.train, SliceSettings(size=32, fov_mm=128))
    assert slices.image.shape[1:] == (32, 32) and len(slices) >= 2 * 4
    assert slices.image.min() >= 0 and slices.image.max() <= 1
    assert slices.myocardium.any(axis=(1, 2)).all() and slices.blood.any() and slices.scar.any()
    assert not (slices.scar & ~slices.myocardium).any() and not (slices.blood & slices.myocardium).any()
    assert set(slices.case_id) == set(dataset.split.train)
    # LGE: the blood pool is brighter than healthy myocardium, scar brighter still than healthy myocardium
    assert slices.image[slices.blood].mean() > slices.image[slices.healthy].mean()
    assert slices.image[slices.scar].mean() > slices.image[slices.healthy].mean()


def test_a_predicted_myocardium_is_cut_exactly_like_the_slices(tmp_path: Path) -> None:
    """The inference ROI of the paper: a segmentation model's label map on the scan's grid, cropped with the same
    slices and crops as the image. A prediction equal to the reference gives back the reference myocardium; one
    that misses a slice's myocardium gives an empty ROI there; a missing file names the case."""
    import nibabel as nib

    from lgelib.data.cases import read_case
    from lgelib.scar_enhancement.slices import predicted_myocardium

    dataset = open_split(phantom_manifest(tmp_path / "tiny.yaml", n_cases=3, n_test=1))
    settings = SliceSettings(size=32, fov_mm=128)
    case_ids = list(dataset.split.train)
    slices = scar_slices(dataset, case_ids, settings)
    folder = tmp_path / "predictions"
    folder.mkdir()
    for files in (c for c in dataset.cases if c.case_id in case_ids):
        case = read_case(files, dataset.label_mapping)
        labels = case.myocardium.astype(np.uint8) + case.fibrosis.astype(np.uint8)  # nnU-Net's 1 / 2
        if files.case_id == case_ids[0]:
            labels[..., int(np.flatnonzero(case.myocardium.any(axis=(0, 1)))[0])] = 0  # misses its first slice
        affine = nib.load(str(files.image)).affine
        nib.save(nib.Nifti1Image(labels, affine), str(folder / f"{files.case_id}.nii.gz"))
    predicted = predicted_myocardium(dataset, case_ids, settings, folder)
    assert predicted.shape == slices.myocardium.shape
    first = np.flatnonzero(slices.case_id == case_ids[0])
    assert not predicted[first[0]].any()  # the missed slice
    assert np.array_equal(predicted[first[1:]], slices.myocardium[first[1:]])
    others = np.flatnonzero(slices.case_id != case_ids[0])
    assert np.array_equal(predicted[others], slices.myocardium[others])
    (folder / f"{case_ids[1]}.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=case_ids[1]):
        predicted_myocardium(dataset, case_ids, settings, folder)


def test_a_tiny_denoiser_trains_reloads_and_enhances_only_inside_the_roi(tmp_path: Path) -> None:
    slices = _hand_slices()
    targets, _ = gamma_targets(slices, GammaSettings(), mean_blood_pool(slices))
    roi = reference_roi(slices)
    unet = UNetSettings(channels=8, multipliers=(1, 2), res_blocks=1)
    settings = DiffusionSettings(timesteps=20, epochs=30, batch_size=2, lr=1e-3, checkpoint_every=10)
    trained = train_denoiser(slices.image, targets, roi, tmp_path / "d", unet, settings, "cpu", progress=False)
    assert len(trained.history) == 30 and np.isfinite(trained.history.loss).all()
    again = load_denoiser(tmp_path / "d")
    for a, b in zip(trained.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    stamp = (tmp_path / "d" / "denoiser.safetensors").stat().st_mtime_ns
    train_denoiser(slices.image, targets, roi, tmp_path / "d", unet, settings, "cpu", progress=False)
    assert (tmp_path / "d" / "denoiser.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained
    mean, samples = enhance(again, slices.image, roi, lam=5, k=3, seed=1, device="cpu")
    assert samples.shape == (3, *slices.image.shape) and np.allclose(mean, samples.mean(axis=0))
    assert np.allclose(mean[~roi], slices.image[~roi], atol=1e-5)
    assert not np.allclose(samples[0][roi], samples[1][roi])  # k different samples
    repeat, _ = enhance(again, slices.image, roi, lam=5, k=3, seed=1, device="cpu")
    assert np.array_equal(mean, repeat)  # seeded

    # Table 1 with a predicted ROI: a myocardium that lost the scar's quarter leaves that scar out of the ROI.
    from lgelib.scar_enhancement.experiment import predicted_roi_table
    from lgelib.scar_enhancement.settings import SamplingSettings

    missed = slices.myocardium & ~slices.scar
    table = predicted_roi_table(again, slices, targets, missed, [0, 3], SamplingSettings(lam=5, k=2), "cpu")
    assert list(table.index) == ["reference labels", "predicted, +0 px", "predicted, +3 px"]
    outside = table["scar outside ROI %"]
    assert outside["reference labels"] == 0 and outside["predicted, +0 px"] > 0
    assert outside["predicted, +3 px"] < outside["predicted, +0 px"]  # dilation takes scar back in


def test_a_perfect_noise_predictor_recovers_the_slice_in_one_reverse_step() -> None:
    """Oracle check of the reverse update (Ho et al., Eq. 11): from lambda = 1, a model that returns exactly the
    noise that was added gives back x_0 everywhere; from lambda = 2 its first step lands on the posterior mean."""
    x_0, roi = torch.rand(2, 1, 16, 16), _roi()
    noise = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(4))  # partial_diffusion's first draw

    def oracle(y_t, x, t):
        return noise

    out = partial_diffusion(oracle, x_0, roi, SCHEDULE, 1, torch.Generator().manual_seed(4))
    assert torch.allclose(out, x_0, atol=1e-5)  # float32 rounding
    seen = []

    def recording_oracle(y_t, x, t):
        seen.append(y_t.clone())
        return noise

    partial_diffusion(recording_oracle, x_0, roi, SCHEDULE, 2, torch.Generator().manual_seed(4))
    abar, alpha, beta = (float(s[1]) for s in (SCHEDULE.alphas_bar, SCHEDULE.alphas, SCHEDULE.betas))
    expected_mean = (seen[0] - beta / (1 - abar) ** 0.5 * noise * roi) / alpha**0.5
    posterior = (  # the closed-form posterior mean of x_{t-1} given x_t and x_0 (Ho et al., Eq. 7)
        (float(SCHEDULE.alphas_bar[0]) ** 0.5 * beta / (1 - abar)) * x_0
        + (alpha**0.5 * (1 - float(SCHEDULE.alphas_bar[0])) / (1 - abar)) * seen[0]
    )
    assert torch.allclose(expected_mean[roi], posterior[roi], atol=1e-5)


def test_the_lambda_grid_holds_step_one_the_fractions_of_t_and_the_profiles_lambda_once() -> None:
    from lgelib.scar_enhancement.experiment import curve_slices, lambda_grid

    assert lambda_grid(100, 25) == [1, 2, 5, 10, 25, 50, 80]  # the smoke profile: lambda 25 is also 0.25 T
    assert lambda_grid(1000, 250) == [1, 20, 50, 100, 250, 500, 800]
    assert lambda_grid(1000, 300) == [1, 20, 50, 100, 250, 300, 500, 800]
    assert lambda_grid(10, 3) == [1, 2, 3, 5, 8]  # rounded fractions that fall on 0 are dropped
    slices = _hand_slices()
    assert list(curve_slices(slices, 16)) == [0, 1] and list(curve_slices(slices, 1)) == [0]
