"""Stage 1 (paper section 3.1): one joint image-mask SIREN per volume, fitted many at a time."""

from lgelib.inr.siren import HEADS, JointSiren, ParameterLayout, SirenSettings, siren_init
from lgelib.inr.fit import FitSettings
from lgelib.inr.query import Decoded, decode
from lgelib.inr.stage import FittedInrs, fit_inrs, load_fitted

__all__ = [
    "HEADS",
    "Decoded",
    "FitSettings",
    "FittedInrs",
    "JointSiren",
    "ParameterLayout",
    "SirenSettings",
    "decode",
    "fit_inrs",
    "load_fitted",
    "siren_init",
]
