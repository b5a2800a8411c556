"""Deprecated alias: the standard errors of weighting estimators live in :mod:`cina.effect`."""

import warnings

from .effect import matching_residual_variance, weighting_se

__all__ = ["matching_residual_variance", "weighting_se"]

warnings.warn("cina.inference is merged into cina.effect; import from there",
              DeprecationWarning, stacklevel=2)
