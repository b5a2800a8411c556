"""Outcome model for augmented balancing: the Gaussian-process posterior mean per arm.

The augmented (doubly robust) balancing estimator of METHOD section 7 is

    tau_hat = mean_{i in T} [m1(x_i) - m0(x_i)]
              + sum_{t_i=1} alpha_i (y_i - m1(x_i)) - sum_{t_i=0} alpha_i (y_i - m0(x_i)),

T the estimand's population. The balancing weights remove the part of the outcome model's error
that the kernel can see. m_a is the posterior mean of the same GP model that chooses lam
(:mod:`cina.balancing.tuning`): kernel ridge regression with the normalised attention kernel and
ridge r = s^2 / s_f^2, fitted within arm a on at most ``max_units`` units. Predictions for all N
units use the kernel between each unit and the fitted units, normalised as on the fitted units
(the attention of unit i over the fitted units), so memory is O(N * max_units) and no N x N
matrix is built.
"""

from __future__ import annotations

import numpy as np

from .kernel import _row_logsumexp

__all__ = ["gp_outcome_fit", "gp_outcome_predictions", "gp_loo_residuals"]


def _cross_log_kernel(Zq: np.ndarray, Zb: np.ndarray, bandwidth: float) -> np.ndarray:
    """log k between query units and basis units, normalised by the basis units' attention."""
    s_bb = (Zb @ Zb.T) / bandwidth
    log_h_b = _row_logsumexp(s_bb)
    s_qb = (Zq @ Zb.T) / bandwidth
    log_h_q = _row_logsumexp(s_qb)
    logk = s_qb - log_h_q[:, None] - log_h_b[None, :]
    # normalise to mean diagonal 1 on the basis (as attention_kernel does)
    diag = np.diag(s_bb) - 2 * log_h_b
    c = np.log(np.mean(np.exp(diag - diag.max()))) + diag.max()
    return logk - c


def gp_outcome_fit(Z: np.ndarray, t: np.ndarray, y: np.ndarray, *, bandwidth: float,
                   ridge: float, max_units: int = 1000, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-arm kernel ridge with the attention kernel, from one eigendecomposition per arm.

    Returns (m0_hat, m1_hat) for every unit and the out-of-sample residuals y_i - m_{t_i}(x_i):
    leave-one-out residuals e_i / (1 - H_ii) for the units the fit used, plain residuals for
    the others (which the fit never saw).
    """
    rng = np.random.default_rng(seed)
    preds = [np.empty(len(Z)), np.empty(len(Z))]
    resid = np.empty(len(y))
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        basis = np.sort(rng.choice(idx, max_units, replace=False)) if len(idx) > max_units \
            else idx
        Zb, yb = Z[basis], y[basis]
        Kbb = np.exp(_cross_log_kernel(Zb, Zb, bandwidth))
        lam, V = np.linalg.eigh(0.5 * (Kbb + Kbb.T))
        lam = np.maximum(lam, 0.0)
        mean = yb.mean()
        proj = V.T @ (yb - mean)
        coef = V @ (proj / (lam + ridge))  # (K + ridge I)^{-1} (y - mean)
        for start in range(0, len(Z), 4096):
            block = np.exp(_cross_log_kernel(Z[start:start + 4096], Zb, bandwidth))
            preds[arm][start:start + 4096] = mean + block @ coef
        fitted = mean + V @ (lam / (lam + ridge) * proj)
        h_diag = np.einsum("ij,j,ij->i", V, lam / (lam + ridge), V)
        # the arm mean is estimated too: add its leverage 1 / n_b
        h_diag = np.minimum(h_diag + 1.0 / len(basis), 0.99)
        resid[basis] = (yb - fitted) / (1.0 - h_diag)
        rest = np.setdiff1d(idx, basis)
        resid[rest] = y[rest] - preds[arm][rest]
    return preds[0], preds[1], resid


def gp_outcome_predictions(Z: np.ndarray, t: np.ndarray, y: np.ndarray, *, bandwidth: float,
                           ridge: float, max_units: int = 1000, seed: int = 0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(m0_hat, m1_hat) for every unit (see :func:`gp_outcome_fit`)."""
    m0, m1, _ = gp_outcome_fit(Z, t, y, bandwidth=bandwidth, ridge=ridge,
                               max_units=max_units, seed=seed)
    return m0, m1


def gp_loo_residuals(Z: np.ndarray, t: np.ndarray, y: np.ndarray, *, bandwidth: float,
                     ridge: float, max_units: int = 1000, seed: int = 0) -> np.ndarray:
    """Out-of-sample residuals of the per-arm kernel ridge fit (see :func:`gp_outcome_fit`)."""
    return gp_outcome_fit(Z, t, y, bandwidth=bandwidth, ridge=ridge, max_units=max_units,
                          seed=seed)[2]
