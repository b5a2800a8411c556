"""Data-driven choice of lam per dataset: the Gaussian-process (empirical Bayes) rule.

Why: under a Gaussian-process prior on each arm's outcome surface, m_a ~ GP(0, s_f^2 k), with
noise variance s^2, the expected squared error of a weighting estimator splits into
s_f^2 * (the kernel imbalance MMD^2) + s^2 * |alpha|^2. Minimising it is exactly the balancing
problem with lam = s^2 / s_f^2 (in the units of the kernel). So lam is a noise-to-signal ratio,
and the data can tell it: we maximise the marginal likelihood of the outcomes, within each arm,
over r = s^2 / s_f^2 (s_f^2 profiled out), with the same normalised attention kernel that the
weights will use. This is the hyper-parameter choice of Kallus's generalised optimal matching
(Kallus 2016/2020), applied to the attention-induced kernel.

Outcomes enter only through this one scalar (the weights themselves never see y). The cost does
not grow with N: at most ``max_units`` units (stratified by arm, fixed seed) enter, through one
eigendecomposition per arm. The answer is clipped to [``LAM_MIN``, ``LAM_MAX``], the range in
which the method was measured (benchmarks/tuning.py) and the zero-shot model was trained. Without
an outcome (y is None) the rule falls back to ``LAM_DEFAULT`` = 0.1, the best fixed value found on
IHDP and on simulations.
"""

from __future__ import annotations

import numpy as np

from .kernel import attention_kernel

__all__ = ["select_lam_rel", "LAM_MIN", "LAM_MAX", "LAM_DEFAULT"]

LAM_MIN, LAM_MAX, LAM_DEFAULT = 0.01, 3.0, 0.1


def _stratified_subsample(t: np.ndarray, max_units: int, seed: int) -> np.ndarray:
    n = len(t)
    if n <= max_units:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    rows = []
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        k = max(2, int(round(max_units * len(idx) / n)))
        rows.append(rng.choice(idx, min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(rows))


def gp_noise_ratio(K: np.ndarray, t: np.ndarray, y: np.ndarray,
                   grid: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Maximum-marginal-likelihood r = s^2 / s_f^2 for y_a = mean_a + f_a(x) + noise, f_a ~
    GP(0, s_f^2 K), pooled over arms (shared s_f^2 and r). Returns (r, grid, negative log lik)."""
    grid = np.logspace(-3, 1.5, 46) if grid is None else grid
    parts = []
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        if len(idx) < 3:
            continue
        lam, V = np.linalg.eigh(K[np.ix_(idx, idx)])
        lam = np.maximum(lam, 0.0)
        proj = V.T @ (y[idx] - y[idx].mean())
        parts.append((lam, proj**2))
    n = sum(len(p[0]) for p in parts)
    nll = np.empty(len(grid))
    for g, r in enumerate(grid):
        quad = sum(np.sum(p2 / (lam + r)) for lam, p2 in parts)
        logdet = sum(np.sum(np.log(lam + r)) for lam, _ in parts)
        nll[g] = n * np.log(max(quad, 1e-300) / n) + logdet
    return float(grid[int(np.argmin(nll))]), grid, nll


def select_lam_rel(Z: np.ndarray, t: np.ndarray, y: np.ndarray | None, *, bandwidth: float,
                   balance: str = "target", estimand: str = "ate", max_units: int = 1000,
                   seed: int = 0) -> tuple[float, dict]:
    """lam_rel for standardised covariates Z by the GP marginal-likelihood rule (module doc).

    ``balance`` and ``estimand`` do not change the rule (lam is a property of the outcome
    surfaces) and are accepted so that callers can pass their settings through.
    """
    if y is None:
        return LAM_DEFAULT, {"lam_rule": "default (no outcome)"}
    t = np.asarray(t)
    rows = _stratified_subsample(t, max_units, seed)
    K = attention_kernel(Z[rows], bandwidth)
    ys = np.asarray(y, dtype=float)[rows]
    scale = ys.std()
    if not np.isfinite(scale) or scale == 0:
        return LAM_DEFAULT, {"lam_rule": "default (constant outcome)"}
    r, _, _ = gp_noise_ratio(K, t[rows], ys / scale)
    lam_rel = float(np.clip(r, LAM_MIN, LAM_MAX))
    return lam_rel, {"lam_rule": "gp-marginal-likelihood", "gp_noise_ratio": r,
                     "lam_units": int(len(rows))}
