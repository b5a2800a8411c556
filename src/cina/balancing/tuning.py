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

import warnings
from collections.abc import Callable

import numpy as np

from .._threads import single_threaded_blas
from ..errors import CInAWarning
from ..rules import BALANCE_THRESHOLD
from .kernel import attention_kernel

__all__ = ["select_lam_rel", "balance_guard", "arm_signal_variances", "LAM_MIN", "LAM_MAX", "LAM_DEFAULT",
           "GUARD_FACTOR"]

LAM_MIN, LAM_MAX, LAM_DEFAULT = 0.01, 3.0, 0.1
GUARD_FACTOR = 3.0  # the balance guard divides lam by this much per step


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


def _tridiagonal_gp_terms(K: np.ndarray, v: np.ndarray, grid: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """v' (K + r I)^{-1} v and log det(K + r I) for every r of ``grid``, for symmetric PSD K.

    Householder tridiagonalisation (LAPACK dsytrd, a third of the cost of a full
    eigendecomposition) of the bordered matrix [[0, v'], [v, K]]: its first reflector maps v to
    beta e_1, so the result is [[0, beta e_1'], [beta e_1, T]] with T = P' K P tridiagonal and
    P e_1 = v / |v| (T is the Lanczos matrix of K started at v). Hence
    v' (K + r I)^{-1} v = beta^2 [(T + r I)^{-1}]_11 and log det(K + r I) = log det(T + r I),
    both from one O(n) LAPACK solve (dptsv) of T + r I per grid point.
    """
    from scipy.linalg import lapack

    n = K.shape[0]
    A = np.empty((n + 1, n + 1))
    A[0, 0] = 0.0
    A[1:, 0] = v
    A[0, 1:] = v
    A[1:, 1:] = K
    lwork = int(lapack.dsytrd_lwork(n + 1, lower=1)[0])
    _, diag, off, _, info = lapack.dsytrd(A, lower=1, lwork=max(lwork, 1), overwrite_a=1)
    if info != 0:  # pragma: no cover - LAPACK argument errors only
        raise np.linalg.LinAlgError(f"dsytrd failed (info={info})")
    beta2 = off[0] ** 2
    d, e = diag[1:], off[1:]
    e1 = np.zeros(n)
    e1[0] = 1.0
    quad = np.full(len(grid), np.inf)
    logdet = np.full(len(grid), np.inf)
    for g, r in enumerate(grid):
        pivots, _, x, info = lapack.dptsv(d + r, e, e1)
        if info == 0:  # not positive definite only for r below the rounding of K's spectrum
            quad[g] = beta2 * x[0]
            logdet[g] = np.sum(np.log(pivots))
    return quad, logdet


def gp_noise_ratio(K: np.ndarray, t: np.ndarray, y: np.ndarray,
                   grid: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Maximum-marginal-likelihood r = s^2 / s_f^2 for y_a = mean_a + f_a(x) + noise, f_a ~
    GP(0, s_f^2 K), pooled over arms (shared s_f^2 and r). Returns (r, grid, negative log lik).

    The likelihood on the grid needs, per arm, y_a' (K_a + r I)^{-1} y_a and log det(K_a + r I);
    both come from one tridiagonal reduction of K_a (:func:`_tridiagonal_gp_terms`).
    """
    grid = np.logspace(-3, 1.5, 46) if grid is None else np.asarray(grid, dtype=float)
    quad = np.zeros(len(grid))
    logdet = np.zeros(len(grid))
    n = 0
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        if len(idx) < 3:
            continue
        q, ld = _tridiagonal_gp_terms(K[np.ix_(idx, idx)], y[idx] - y[idx].mean(), grid)
        quad += q
        logdet += ld
        n += len(idx)
    with np.errstate(invalid="ignore"):  # inf - inf cannot occur: both are inf together
        nll = n * np.log(np.maximum(quad, 1e-300) / max(n, 1)) + logdet
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
    ys = np.asarray(y, dtype=float)[rows]
    scale = ys.std()
    if not np.isfinite(scale) or scale == 0:
        return LAM_DEFAULT, {"lam_rule": "default (constant outcome)"}
    with single_threaded_blas():  # <= 1,000 units: threads cost more than they give
        K = attention_kernel(Z[rows], bandwidth)
        r, _, _ = gp_noise_ratio(K, t[rows], ys / scale)
        signal = arm_signal_variances(K, t[rows], ys, r)
    lam_rel = float(np.clip(r, LAM_MIN, LAM_MAX))
    return lam_rel, {"lam_rule": "gp-marginal-likelihood", "gp_noise_ratio": r,
                     "lam_units": int(len(rows)),
                     **{f"signal_var_arm{a}": v for a, v in signal.items()}}


def arm_signal_variances(K: np.ndarray, t: np.ndarray, y: np.ndarray, ratio: float
                         ) -> dict[int, float]:
    """Per arm a, the profiled signal variance s_f,a^2 = v_a' (K_a + r I)^{-1} v_a / n_a of the
    outcome model y_a = mean_a + f_a + noise, f_a ~ GP(0, s_f,a^2 K), at the noise ratio r
    (v_a the arm's centred outcomes, in the outcome's units). s_f,a^2 MMD_a^2 is the prior
    variance of the bias that arm a's imbalance leaves (docs/method_notes.md section 14)."""
    out = {}
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        if len(idx) < 3:
            out[arm] = float("nan")
            continue
        v = y[idx] - y[idx].mean()
        A = K[np.ix_(idx, idx)] + ratio * np.eye(len(idx))
        try:
            quad = float(v @ np.linalg.solve(A, v))
        except np.linalg.LinAlgError:
            quad = float("nan")
        out[arm] = quad / len(idx)
    return out


def balance_guard(solve: Callable[[float], tuple[np.ndarray, dict]], lam_rel: float,
                  imbalance: Callable[[np.ndarray], float], *,
                  threshold: float = BALANCE_THRESHOLD, floor: float = LAM_MIN,
                  factor: float = GUARD_FACTOR) -> tuple[np.ndarray, float, dict, int]:
    """The balance guard of the GP rule (docs/method_notes.md section 2).

    The GP ratio absorbs outcome-model misfit as noise; where its lam leaves a covariate visibly
    imbalanced (``imbalance(alpha)``, the largest |SMD| after weighting, above ``threshold``),
    lam is divided by ``factor`` until balance is reached or lam reaches ``floor``.
    ``solve(lam_rel)`` -> (alpha, info) is the prepared weight solver. Returns (alpha, lam_rel
    used, the solver's info at it, number of guard steps). The solver's warnings are shown for
    the first lam only (they concern the input, not the lam).
    """
    alpha, info = solve(lam_rel)
    steps = 0
    while lam_rel > floor and imbalance(alpha) > threshold:
        lam_rel = max(lam_rel / factor, floor)
        with warnings.catch_warnings():  # the first call already warned about the input
            warnings.simplefilter("ignore", CInAWarning)
            alpha, info = solve(lam_rel)
        steps += 1
    return alpha, lam_rel, info, steps
