"""Names, constants and small helpers shared by the synthetic families."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...errors import CInAValidationError
from .._base import CausalDataset

#: Every mechanism the generator knows. ``sine`` (periodic) and ``interaction`` (products of
#: random projections of the parents) are kept out of the default prior for the OOD test.
SCM_MECHANISMS = (
    "linear", "mlp_tanh", "mlp_relu", "polynomial", "threshold", "sine", "interaction",
)
#: Mechanisms of the default (training) prior.
SCM_TRAIN_MECHANISMS = ("linear", "mlp_tanh", "mlp_relu", "polynomial", "threshold")
#: Marginal families of the covariates (all of them are in the default prior).
SCM_MARGINALS = (
    "gaussian", "student_t", "lognormal", "exponential", "uniform", "binary", "categorical",
    "poisson",
)
#: Kinds accepted by :func:`ood_prior`.
OOD_KINDS = ("dense", "mechanism", "overlap", "wide", "large")

_ESTIMANDS = ("ate", "att")
_DISCRETE = ("binary", "categorical")
_FEATURE_CLIP = 5.0  # standardised covariates enter the mechanisms clipped to +-5 sd
_SQUASH = 3.0  # standardised covariate/propensity signals are soft-clipped to +-3 sd


def _fail(msg: str) -> None:
    raise CInAValidationError(msg)


def _as_rng(rng_or_seed: Any) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, np.random.SeedSequence):
        return np.random.default_rng(rng_or_seed)
    if isinstance(rng_or_seed, (int, np.integer)) and not isinstance(rng_or_seed, bool):
        if rng_or_seed < 0:
            _fail(f"seed must be a non-negative integer; got {rng_or_seed}")
        return np.random.default_rng(int(rng_or_seed))
    _fail("expected a non-negative integer seed, a numpy SeedSequence or a numpy Generator; "
          f"got {type(rng_or_seed).__name__}")
    raise AssertionError  # pragma: no cover


def _to_dataset(XT: np.ndarray, names: list[str], t: np.ndarray, y: np.ndarray,
                mu0: np.ndarray, mu1: np.ndarray, meta: dict, name: str) -> CausalDataset:
    X = pd.DataFrame(XT.T, columns=names)
    return CausalDataset(X=X, t=t, y=y, true_effect=meta["true_effect"],
                         estimand=meta["estimand"], name=name, mu0=mu0, mu1=mu1, meta=meta)
