"""Outcome-informed kernel metric: covariate relevance from a Gaussian process with one length
scale per covariate (automatic relevance determination, ARD).

Why (docs/method_notes.md section 14): balancing weights remove the bias of every outcome
function in the kernel's function class, so the kernel should be the one the outcomes live in.
The attention kernel of standardised covariates z treats every covariate alike; when a few of
82 covariates drive the outcome, balancing the other 80 costs effective sample size and buys no
bias reduction. A Gaussian process y = mean + f(z, t) + noise with the RBF kernel
exp(-sum_j (z_j - z'_j)^2 / (2 l_j^2)) fitted by maximum marginal likelihood learns one length
scale l_j per covariate: small where the outcome varies along covariate j, large (up to
:data:`LENGTH_MAX`, i.e. ignored) where it does not. The balancing kernel then uses the keys
q = z / l with bandwidth 1: its Gaussian part is exactly that ARD kernel (the attention kernel
exp(q_i . q_j) is the RBF of the q's times per-unit factors, docs/method_notes.md section 1).

The treatment enters the Gaussian process as one more input (its own length scale), so that an
effect of the treatment is not mistaken for noise; it never enters the keys (the balancing
kernel must not see the treatment: docs/method_notes.md section 9). The outcomes enter only
through the length scales.

Cost: at most ``max_units`` units (stratified by arm, fixed seed); each likelihood evaluation is
one Cholesky factorisation and one inverse of a ``max_units``-square matrix plus O(n^2 d) for
the gradient; L-BFGS-B with at most ``max_iter`` evaluations. About 0.2-1 s at the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.optimize import minimize

from .._threads import single_threaded_blas
from .tuning import _stratified_subsample

__all__ = ["RelevanceFit", "fit_relevance", "LENGTH_MIN", "LENGTH_MAX", "RELEVANCE_UNITS"]

LENGTH_MIN, LENGTH_MAX = 0.05, 1e3  # length scales in standard deviations of the covariate
RELEVANCE_UNITS = 400  # units entering the Gaussian-process fit
_NOISE_BOUNDS = (1e-4, 10.0)  # noise variance relative to the outcome's variance
_SIGNAL_BOUNDS = (1e-3, 1e2)


@dataclass(frozen=True)
class RelevanceFit:
    """What :func:`fit_relevance` learned.

    ``lengthscales`` (d,) of the covariates (standard deviations); ``signal_var`` and
    ``noise_var`` relative to the outcome's variance; ``treatment_lengthscale`` of the
    treatment input; ``n_units`` the units used; ``converged`` the optimiser's verdict.
    """

    lengthscales: np.ndarray
    treatment_lengthscale: float
    signal_var: float
    noise_var: float
    n_units: int
    iterations: int
    converged: bool

    def keys(self, Z: np.ndarray) -> np.ndarray:
        """The balancing kernel's keys q = z / l (use with bandwidth 1)."""
        return np.asarray(Z, dtype=float) / self.lengthscales

    def relevance(self) -> np.ndarray:
        """1 / l^2 per covariate: the weight of covariate j in the kernel's squared distance."""
        return 1.0 / self.lengthscales**2

    def info(self, names=None) -> dict:
        order = np.argsort(self.lengthscales)
        top = [(names[j] if names is not None else int(j), float(self.lengthscales[j]))
               for j in order[:5]]
        return {"key_map": "relevance", "relevance_units": self.n_units,
                "relevance_iterations": self.iterations,
                "relevance_converged": self.converged,
                "relevance_noise_ratio": float(self.noise_var / self.signal_var),
                "most_relevant": top}


def _neg_log_lik(params: np.ndarray, X: np.ndarray, y: np.ndarray
                 ) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood of y ~ N(0, s_f^2 K_l + s_n^2 I) and its gradient in
    (log l_1..l_p, log s_f^2, log s_n^2), K_l the ARD RBF kernel of X (n, p)."""
    n, p = X.shape
    inv_l = np.exp(-params[:p])
    sf2, sn2 = np.exp(params[p]), np.exp(params[p + 1])
    Xs = X * inv_l
    sq = np.einsum("ij,ij->i", Xs, Xs)
    D2 = Xs @ Xs.T
    D2 *= -2.0
    D2 += sq[:, None]
    D2 += sq[None, :]
    np.maximum(D2, 0.0, out=D2)
    Kf = np.exp(-0.5 * D2)
    Kf *= sf2
    K = Kf.copy()
    K[np.diag_indices(n)] += sn2 + 1e-8
    try:
        c = cho_factor(K, lower=True, check_finite=False)
    except LinAlgError:
        return 1e25, np.zeros_like(params)
    a = cho_solve(c, y, check_finite=False)
    nll = 0.5 * float(y @ a) + float(np.sum(np.log(np.diag(c[0])))) + 0.5 * n * np.log(2 * np.pi)
    W = cho_solve(c, np.eye(n), check_finite=False)
    W *= -1.0
    W += np.outer(a, a)  # a a' - K^-1: twice dL/dK
    trace_w = float(np.trace(W))
    W *= Kf  # elementwise: the kernel-weighted part
    # d log lik / d log l_j = 1/2 sum_ik W_ik (xs_ij - xs_kj)^2
    #                       = sum_i xs_ij^2 (W 1)_i - xs_j' W xs_j
    w1 = W.sum(axis=1)
    g_l = (Xs * Xs).T @ w1 - np.einsum("ij,ij->j", Xs, W @ Xs)
    g_sf = 0.5 * float(W.sum())
    g_sn = 0.5 * sn2 * trace_w
    return nll, -np.concatenate([g_l, [g_sf, g_sn]])


def fit_relevance(Z: np.ndarray, t: np.ndarray, y: np.ndarray, *,
                  max_units: int = RELEVANCE_UNITS, seed: int = 0, max_iter: int = 100
                  ) -> RelevanceFit | None:
    """ARD length scales of the standardised covariates ``Z`` (n, d) for the outcome ``y``
    (the treatment ``t`` an extra input). None when the outcome is constant on the subsample
    (nothing to learn: the caller keeps the standard key map)."""
    Z = np.asarray(Z, dtype=float)
    t = np.asarray(t)
    y = np.asarray(y, dtype=float)
    rows = _stratified_subsample(t, max_units, seed)
    ys = y[rows]
    scale = float(ys.std())
    if not np.isfinite(scale) or scale <= 0:
        return None
    yz = (ys - ys.mean()) / scale
    X = np.column_stack([Z[rows], t[rows].astype(float)])
    d = Z.shape[1]
    p0 = np.concatenate([np.full(d, 0.5 * np.log(max(d, 1))), [0.0],  # l = sqrt(d), l_t = 1
                         [0.0, np.log(0.1)]])
    bounds = ([(np.log(LENGTH_MIN), np.log(LENGTH_MAX))] * (d + 1)
              + [tuple(np.log(_SIGNAL_BOUNDS)), tuple(np.log(_NOISE_BOUNDS))])
    with single_threaded_blas():  # <= max_units units: threads cost more than they give
        res = minimize(_neg_log_lik, p0, args=(X, yz), jac=True, method="L-BFGS-B",
                       bounds=bounds, options={"maxiter": int(max_iter)})
    lengths = np.exp(res.x[: d + 1])
    return RelevanceFit(lengthscales=lengths[:d], treatment_lengthscale=float(lengths[d]),
                        signal_var=float(np.exp(res.x[d + 1])),
                        noise_var=float(np.exp(res.x[d + 2])), n_units=int(len(rows)),
                        iterations=int(res.nit), converged=bool(res.success))
