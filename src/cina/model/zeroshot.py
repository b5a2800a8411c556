"""Deprecated alias of :mod:`cina.model.balancer` (the zero-shot model), kept for old imports."""

import warnings

from .balancer import (  # noqa: F401
    N_UNIT_FEATURES,
    PROBLEMS,
    KernelOps,
    ZeroShotBalancer,
    ZeroShotConfig,
    problem_index,
)

__all__ = ["ZeroShotConfig", "ZeroShotBalancer", "KernelOps", "PROBLEMS", "problem_index"]

warnings.warn("cina.model.zeroshot is renamed cina.model.balancer; import from there",
              DeprecationWarning, stacklevel=2)
