"""Deprecated alias of :mod:`cina.solvers.zero_shot` (zero-shot inference), kept for old
imports."""

import warnings

from .solvers.zero_shot import (  # noqa: F401
    MIN_ARM,
    OVERLAP_MAX_FRACTION,
    OVERLAP_RATIO,
    ZeroShotBalancing,
    ZeroShotSolver,
    overlap_fractions,
    zero_shot_weights,
)

__all__ = ["zero_shot_weights", "ZeroShotBalancing", "MIN_ARM", "OVERLAP_RATIO",
           "OVERLAP_MAX_FRACTION", "overlap_fractions"]

warnings.warn("cina.zeroshot is renamed cina.solvers.zero_shot; import from there",
              DeprecationWarning, stacklevel=2)
