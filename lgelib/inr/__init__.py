"""Stage 1 (paper section 3.1): one joint image-mask SIREN per volume, fitted many at a time."""

from lgelib.inr.siren import HEADS, JointSiren, ParameterLayout, SirenSpec, siren_init
from lgelib.inr.fit import FitSettings
from lgelib.inr.query import Decoded, decode
from lgelib.inr.stage import FittedINRs, fit_inrs, load_fitted

__all__ = [
    "HEADS",
    "Decoded",
    "FitSettings",
    "FittedINRs",
    "JointSiren",
    "ParameterLayout",
    "SirenSpec",
    "decode",
    "fit_inrs",
    "load_fitted",
    "siren_init",
]
