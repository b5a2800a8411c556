"""One definition of each rule that several rooms share: per-arm normalisation of weights, the
estimand's target population, the balance threshold, the balance/estimand check and the
effective sample size (count and fraction).

A bottom room: it imports only numpy and :mod:`cina.errors`, so every other module (the
estimators, the solvers, the CLI, the benchmarks) can use it.
"""

from __future__ import annotations

import numpy as np

from .errors import CInAValidationError

__all__ = ["BALANCE_THRESHOLD", "normalize_per_arm", "target_population",
           "check_balance_estimand", "effective_sample_size", "effective_sample_fraction",
           "rescale_huge_columns", "HUGE_VALUE"]

#: values above this magnitude are rescaled (by a power of two, exactly) before sums of
#: squares: squares overflow float64 from ~1.3e154 on
HUGE_VALUE = 1e100

#: |SMD| at or below which a covariate counts as balanced: the customary 0.1 (Austin 2009).
#: The estimator's balance guard, the balance summaries and the reports all use this one value.
BALANCE_THRESHOLD = 0.1


def normalize_per_arm(w: np.ndarray, t: np.ndarray, *, empty: str = "raise",
                      in_place: bool = False, totals: tuple[float, float] | None = None,
                      counts: tuple[int, int] | None = None) -> np.ndarray:
    """Weights rescaled to sum to 1 within each arm (t == 1 and t == 0).

    ``empty``: what an arm whose weights sum to zero (or a non-finite total) gets: "raise" a
    :class:`~cina.errors.CInAValidationError`, or "uniform" weights 1 / n_arm. ``in_place``
    rescales ``w`` itself (float64) instead of a copy.

    When ``w`` is one block of a larger set of units (a partition of the distributed path),
    ``totals`` = (treated total, control total) and ``counts`` = (n treated, n control) are the
    whole set's, so that every block is divided by the same totals (default: ``w``'s own).
    """
    if empty not in ("raise", "uniform"):
        raise ValueError(f"empty must be 'raise' or 'uniform'; received {empty!r}")
    w = w if in_place else np.asarray(w, dtype=float).copy()
    t = np.asarray(t)
    for arm in (0, 1):
        m = t == arm
        s = w[m].sum() if totals is None else totals[1 - arm]
        if empty == "uniform":
            n_arm = int(m.sum()) if counts is None else int(counts[1 - arm])
            w[m] = w[m] / s if s > 0 else 1.0 / max(n_arm, 1)
            continue
        if not np.isfinite(s) or s <= 0:
            raise CInAValidationError(
                f"the {'treated' if arm else 'control'} arm received zero total weight")
        w[m] /= s
    return w


def target_population(t: np.ndarray, estimand: str) -> np.ndarray:
    """The units whose covariate distribution the weights target: every unit for the ATE, the
    treated for the ATT (boolean mask)."""
    t = np.asarray(t)
    return np.ones(len(t), bool) if estimand == "ate" else t == 1


def check_balance_estimand(balance: str, estimand: str) -> None:
    """The paper's mutual problem has no ATT form: refuse the combination with a clear error."""
    if balance == "mutual" and estimand == "att":
        raise CInAValidationError(
            "balance='mutual' is the paper's problem (P), whose target population is implicit; "
            "for the ATT use balance='target' (controls balanced to the treated)")


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of nonnegative weights: a count of
    units (between 1 and the number of units)."""
    w = np.asarray(weights, dtype=float)
    s2 = float(np.sum(w * w))
    return float(np.sum(w) ** 2 / s2) if s2 > 0 else 0.0


def effective_sample_fraction(weights: np.ndarray) -> float:
    """Kish's effective sample size as a fraction of the units (in (0, 1]; 1 for uniform
    weights)."""
    w = np.asarray(weights, dtype=float)
    return effective_sample_size(w) / w.size if w.size else 0.0


def rescale_huge_columns(X: np.ndarray) -> np.ndarray:
    """X with every column whose largest magnitude exceeds :data:`HUGE_VALUE` divided by a
    power of two that brings it into [-1, 1] (exact: only the exponent changes), so that means,
    variances and z-scores do not overflow; X itself when no column is that large.

    Standardised covariates and standardised mean differences do not depend on a column's
    scale, so they are unchanged (up to rounding) by this rescaling.
    """
    X = np.asarray(X, dtype=float)
    if X.size == 0:
        return X
    top = np.max(np.abs(X), axis=0)
    huge = top > HUGE_VALUE
    if not huge.any():
        return X
    scale = np.ones(X.shape[1])
    scale[huge] = 2.0 ** np.ceil(np.log2(top[huge]))
    return X / scale
