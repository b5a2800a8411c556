"""Deprecated alias of :mod:`cina.solvers.attention_fit` (Algorithm 1), kept for old imports."""

import warnings

from .solvers.attention_fit import (  # noqa: F401
    READOFFS,
    AttentionFitSolver,
    FitResult,
    fit_balancing_attention,
)

__all__ = ["FitResult", "fit_balancing_attention", "READOFFS"]

warnings.warn("cina.fit is renamed cina.solvers.attention_fit; import from there",
              DeprecationWarning, stacklevel=2)
