"""cina: Causal Inference with Attention."""

from ._version import __version__
from .base import EffectEstimator
from .errors import (
    CInAError,
    CInAValidationError,
    CInAWarning,
    DataFileError,
    MissingDependencyError,
    NotFittedError,
)
from .estimator import CInA
from .results import EffectResult

__all__ = ["CInA", "EffectEstimator", "EffectResult", "CInAError", "CInAValidationError",
           "CInAWarning", "DataFileError", "MissingDependencyError", "NotFittedError", "__version__"]
