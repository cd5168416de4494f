"""Synthetic LGE short-axis cohort: the embedded phantom that stands in for the paper's private scans.

Each case is a stack of thick short-axis slices (apex at slice index 0, base at the last index) with an
EMIDEC-style label map (0 background, 1 LV cavity, 2 healthy myocardium, 3 scar, 4 microvascular obstruction).

How a case is made, and why:

* **Anatomy in millimetres.** The left ventricle is a truncated ellipsoidal shell whose radius follows
  ``r(h) = R * (1 - (h / L)**q) ** 0.5`` from the base plane (``h = 0``) to the apex (``h = L``), with
  separate endocardial and epicardial surfaces, so the wall thins towards the apex. Cavity size, wall
  thickness, length, ``q``, in-plane ellipticity, a slight long-axis tilt, the position in the field of view
  and an in-plane roll of the whole chest vary per subject. The right ventricle is a crescent of blood with a
  thin free wall wrapped around the septum, ending before the apex. Papillary muscles are dark blobs in the
  cavity, labelled cavity as annotators do. Around the heart: fat in the atrioventricular and
  interventricular grooves, lungs with small vessels, chest wall (subcutaneous fat, muscle, ribs), spine,
  descending aorta, and below a diaphragm dome that rises towards the apex the liver and other abdominal
  organs; a smooth random field breaks the soft tissue into fatty and muscular patches.
* **Scar.** Ischaemic scars lie in one coronary territory of the AHA 17-segment model (angle measured from
  the anterior RV insertion, basal/mid/apical thirds and the apical cap), grow from the endocardium with
  25-100 % transmurality that varies smoothly, have irregular borders and, in some, a dark
  microvascular-obstruction core in their sub-endocardial middle. Non-ischaemic scars are a septal mid-wall
  stripe and/or epicardial patches of the lateral wall. Scar size is nudged so every scar is 3.5 mL or more
  and 4-45 % of the myocardium, as in real cohorts.
* **Contrast.** An inversion-recovery signal model with post-contrast T1 values, proton densities and a
  per-subject inversion time set longer than the myocardial null point (healthy myocardium dark grey, not
  black). The signed signal is averaged over thin sub-slices across the slice thickness (partial volume;
  labels come from the central plane), blurred by a small in-plane point-spread function, multiplied by a
  smooth coil bias field and made Rician by taking the magnitude of signal plus complex Gaussian noise.
  The heart and abdomen move by a few millimetres between breath holds (slices); most subjects get a band of
  exact-zero padding (reduced phase field of view).

Calibration: the size distributions, T1 ranges and inversion-time offsets were tuned so that the statistics
of :func:`lgelib.data.stats.label_map_statistics` match 85 real EMIDEC-derived cases; see
``benchmarks/calibrate_phantom.py`` and ``benchmarks/calibration.md``.

Everything a case needs comes from ``np.random.default_rng([config.seed, index])``, so a case depends only on
(seed, index) and the config, never on how many other cases are made or in which order.

Modules, in the order a case is made:

* :mod:`~lgelib.data.phantom.config`: :class:`PhantomSettings`, :class:`PhantomCase` and case names.
* :mod:`~lgelib.data.phantom.subject`: the per-subject parameters (heart, torso, acquisition), drawn in a
  fixed order; :mod:`~lgelib.data.phantom.scar` draws the scar, :mod:`~lgelib.data.phantom.contrast` the
  T1 values and inversion time, :mod:`~lgelib.data.phantom.harmonics` the wavy borders.
* :mod:`~lgelib.data.phantom.heart`: the heart, its labels and the scar masks in one plane.
* :mod:`~lgelib.data.phantom.background`: the anatomy around the heart in one plane.
* :mod:`~lgelib.data.phantom.render`: label map and image of the whole stack.
* :mod:`~lgelib.data.phantom.generate`: :func:`generate_case`, which runs the steps above.
"""

from lgelib.data.phantom.config import PhantomCase, PhantomSettings, phantom_case_id
from lgelib.data.phantom.generate import generate_case

__all__ = ["PhantomCase", "PhantomSettings", "generate_case", "phantom_case_id"]
