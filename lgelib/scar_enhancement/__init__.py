"""Scar enhancement with localized partial diffusion (Hasny et al., MICCAI 2024): the related method of chapter 08.

Where the paper of this companion adds synthetic training data so that a segmentation network finds more scar, the
related method makes the scar itself easier to see: a conditional DDPM learns to turn an LGE slice into a version
whose scar is brighter, trained on targets made by tissue-specific gamma correction. Only a region of interest
around the heart is noised (localized diffusion), inference starts from the input noised to an intermediate step
lambda (partial diffusion), and the result is the mean of k such samples.

Modules, one job each:

* :mod:`~lgelib.scar_enhancement.settings`: every setting, with the smoke and paper profiles.
* :mod:`~lgelib.scar_enhancement.slices`: 2D short-axis slices with blood pool, myocardium and scar masks.
* :mod:`~lgelib.scar_enhancement.targets`: the gamma-corrected training targets (paper Sec. 2.1).
* :mod:`~lgelib.scar_enhancement.roi`: the region of interest, from labels or a segmentation, with dilation.
* :mod:`~lgelib.scar_enhancement.unet`: the conditional denoiser.
* :mod:`~lgelib.scar_enhancement.diffusion`: localized forward process, loss, training and partial diffusion
  (paper Eqs. 1-6).
* :mod:`~lgelib.scar_enhancement.evaluation`: CNR as the paper defines it, SSIM and PSNR on ROI crops.
"""
