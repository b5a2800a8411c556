"""cina: Causal Inference with Attention."""

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

__version__ = "0.1.0"

__all__ = ["CInA", "EffectEstimator", "EffectResult", "CInAError", "CInAValidationError",
           "CInAWarning", "DataFileError", "MissingDependencyError", "NotFittedError", "__version__"]
