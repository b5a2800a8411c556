"""Outcome model for augmented balancing: the Gaussian-process posterior mean per arm.

The augmented (doubly robust) balancing estimator (docs/method_notes.md section 8) is

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

from .._threads import single_threaded_blas
from .kernel import _row_logsumexp, normalised_kernel_in_place

__all__ = ["gp_outcome_fit", "gp_outcome_predictions", "gp_loo_residuals"]


class _BasisKernel:
    """The attention kernel normalised on a set of basis units, and its extension to others.

    On the basis: k_ij = exp(s_ij - log h_i - log h_j - c), h the basis units' attention
    normalisers and c the log mean diagonal (mean diagonal 1, as :func:`attention_kernel`). A
    query unit q gets k_qj = exp(s_qj - log h_q - log h_j - c), log h_q its attention over the
    basis units.
    """

    def __init__(self, Zb: np.ndarray, bandwidth: float):
        self.Zb = Zb
        self.bandwidth = bandwidth
        s_bb = (Zb @ Zb.T) / bandwidth
        K, self.log_h, self.c = normalised_kernel_in_place(s_bb)
        if K is None:  # extreme scores: the log-space form
            s_bb = (Zb @ Zb.T) / bandwidth
            s_bb -= self.log_h[:, None]
            s_bb -= self.log_h[None, :] + self.c
            K = np.exp(s_bb, out=s_bb)
        self.K = 0.5 * (K + K.T)  # exactly symmetric for the Cholesky factorisation

    def cross(self, Zq: np.ndarray) -> np.ndarray:
        s_qb = (Zq @ self.Zb.T) / self.bandwidth
        log_h_q = _row_logsumexp(s_qb)
        s_qb -= log_h_q[:, None]
        s_qb -= self.log_h[None, :] + self.c
        return np.exp(s_qb, out=s_qb)


def gp_outcome_fit(Z: np.ndarray, t: np.ndarray, y: np.ndarray, *, bandwidth: float,
                   ridge: float, max_units: int = 1000, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-arm kernel ridge with the attention kernel, from one Cholesky factorisation per arm.

    Returns (m0_hat, m1_hat) for every unit and the out-of-sample residuals y_i - m_{t_i}(x_i):
    leave-one-out residuals e_i / (1 - H_ii) for the units the fit used, plain residuals for
    the others (which the fit never saw). With A = K + ridge I and c = A^{-1} (y - mean), the
    hat matrix is H = K A^{-1} = I - ridge A^{-1}, so the fit's residuals are ridge c and its
    leverages 1 - ridge [A^{-1}]_ii.
    """
    return _per_arm_kernel_ridge(Z, t, y, bandwidth, ridge, max_units, seed, predict=True)


def _per_arm_kernel_ridge(Z, t, y, bandwidth: float, ridge: float, max_units: int, seed: int,
                          *, predict: bool, rows: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`gp_outcome_fit`; without ``predict`` only the residuals are filled in (the
    predictions are computed only where a residual needs them: arm units outside the basis).
    ``rows``: without ``predict``, the residuals wanted outside the basis (None: all; the
    others are NaN), so that a standard error summed over a sample of a large N costs
    O(len(rows) max_units) instead of O(N max_units).

    [A^{-1}]_ii is the squared norm of column i of L^{-1} (A = L L'): one triangular inverse
    (dtrtri) instead of the full inverse (dpotri = dtrtri + dlauum).
    """
    from scipy.linalg import lapack

    rng = np.random.default_rng(seed)
    preds = [np.full(len(Z), np.nan), np.full(len(Z), np.nan)]
    wanted = rows  # (the name ``rows`` is reused for prediction chunks below)
    resid = np.empty(len(y)) if wanted is None else np.full(len(y), np.nan)
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        basis = np.sort(rng.choice(idx, max_units, replace=False)) if len(idx) > max_units \
            else idx
        with single_threaded_blas():  # <= max_units units: threads cost more than they give
            kern = _BasisKernel(Z[basis], bandwidth)
            yb = y[basis]
            mean = yb.mean()
            A = kern.K  # not needed afterwards: the ridge goes onto its diagonal in place
            A[np.diag_indices_from(A)] += ridge
            L, info = lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
            if info != 0:  # pragma: no cover - A is positive definite (ridge > 0)
                raise np.linalg.LinAlgError(f"dpotrf failed (info={info})")
            coef, info = lapack.dpotrs(L, yb - mean, lower=1)  # A^{-1} (y - mean)
            if info != 0:  # pragma: no cover - LAPACK argument errors only
                raise np.linalg.LinAlgError(f"dpotrs failed (info={info})")
            L_inv, info = lapack.dtrtri(L, lower=1, overwrite_c=1)  # upper triangle stays 0
            if info != 0:  # pragma: no cover - L has a positive diagonal
                raise np.linalg.LinAlgError(f"dtrtri failed (info={info})")
            inv_diag = np.einsum("ij,ij->j", L_inv, L_inv)  # [A^{-1}]_ii
        fit_resid = ridge * coef  # y - fitted on the basis units
        preds[arm][basis] = yb - fit_resid
        rest = np.setdiff1d(idx, basis)
        if wanted is not None and not predict:
            rest = np.intersect1d(rest, wanted)
        others = np.setdiff1d(np.arange(len(Z)), basis) if predict else rest
        for start in range(0, len(others), 4096):
            rows = others[start:start + 4096]
            preds[arm][rows] = mean + kern.cross(Z[rows]) @ coef
        h_diag = 1.0 - ridge * inv_diag
        # the arm mean is estimated too: add its leverage 1 / n_b
        h_diag = np.minimum(h_diag + 1.0 / len(basis), 0.99)
        resid[basis] = fit_resid / (1.0 - h_diag)
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
                     ridge: float, max_units: int = 1000, seed: int = 0,
                     rows: np.ndarray | None = None) -> np.ndarray:
    """Out-of-sample residuals of the per-arm kernel ridge fit (see :func:`gp_outcome_fit`);
    ``rows``: only these units' residuals besides the fit's own units (NaN elsewhere)."""
    return _per_arm_kernel_ridge(Z, t, y, bandwidth, ridge, max_units, seed, predict=False,
                                 rows=rows)[2]
