"""Standard errors for weighting estimators.

For tau_hat = sum_i alpha_i (2 t_i - 1) y_i with weights that do not depend on the outcomes,
conditionally on the covariates and treatments

    Var(tau_hat | X, t) = sum_i alpha_i^2 sigma^2_{t_i}(x_i),

the conditional variance of the outcome around its regression in the unit's own arm. We
estimate sigma^2(x_i) nonparametrically by Abadie and Imbens's (2006) matching estimator: with
the J nearest units of the same arm (standardised covariates, the unit itself excluded),
sigma_hat^2_i = J/(J+1) (y_i - mean of the J neighbours' outcomes)^2. This targets the
conditional (sample) effect, the quantity the benchmarks score against (mean of mu1 - mu0 on the
sample). It does not account for the bias left by imperfect balance; the coverage benchmark
(benchmarks/coverage.py) measures how much that matters.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

__all__ = ["matching_residual_variance", "weighting_se"]


def matching_residual_variance(Z: np.ndarray, t: np.ndarray, y: np.ndarray,
                               n_neighbors: int = 3) -> np.ndarray:
    """Per-unit conditional outcome variance sigma_hat^2_i from J same-arm nearest neighbours."""
    sigma2 = np.zeros(len(y))
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        j = min(n_neighbors, len(idx) - 1)
        if j < 1:
            sigma2[idx] = np.var(y[idx]) if len(idx) > 1 else 0.0
            continue
        nn = NearestNeighbors(n_neighbors=j + 1).fit(Z[idx])
        _, nb = nn.kneighbors(Z[idx])
        # drop the unit itself (first neighbour unless exact ties put another unit first)
        own = nb == np.arange(len(idx))[:, None]
        keep = np.where(own.any(axis=1, keepdims=True), ~own, np.arange(j + 1) < j)
        neigh = nb[keep].reshape(len(idx), j)
        resid = y[idx] - y[idx][neigh].mean(axis=1)
        sigma2[idx] = j / (j + 1.0) * resid**2
    return sigma2


def weighting_se(Z: np.ndarray, t: np.ndarray, y: np.ndarray, alpha: np.ndarray,
                 n_neighbors: int = 3) -> float:
    """Standard error of sum_i alpha_i (2 t_i - 1) y_i given X and t (see module docstring)."""
    sigma2 = matching_residual_variance(Z, t, y, n_neighbors)
    return float(np.sqrt(np.sum(alpha**2 * sigma2)))
