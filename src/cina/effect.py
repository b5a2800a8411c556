"""The effect of balancing weights: the weighted estimate, its standard error, the augmented
(doubly robust) estimate, and the outcome models behind them, in one place.

For tau_hat = sum_i alpha_i (2 t_i - 1) y_i with weights that do not depend on the outcomes,
conditionally on the covariates and treatments

    Var(tau_hat | X, t) = sum_i alpha_i^2 sigma^2_{t_i}(x_i),

sigma^2 the outcome's conditional variance around its regression in the unit's own arm
(docs/method_notes.md section 6). Two estimates of sigma^2(x_i):

* ``"kernel"`` (CInA's default): the squared leave-one-out residual of the per-arm kernel ridge
  fit with the balancing kernel and the GP ridge (:func:`cina.balancing.outcome.gp_loo_residuals`);
* ``"matching"``: Abadie and Imbens's (2006) estimate from the J nearest units of the same arm
  (standardised covariates, the unit itself excluded), sigma_hat^2_i = J/(J+1) (y_i - mean of the
  J neighbours' outcomes)^2; conservative beyond a few dimensions.

Both target the conditional (sample) effect. Neither accounts for the bias left by imperfect
balance; ``benchmarks/coverage.py`` measures how much that matters.

The augmented estimate (docs/method_notes.md section 8), with per-arm outcome models m_a and the
estimand's population T:

    tau_aug = mean_{i in T} [m1(x_i) - m0(x_i)] + sum_i alpha_i (2t_i - 1) (y_i - m_{t_i}(x_i)),

with se = sqrt(sum_i alpha_i^2 r_i^2), r the outcome model's out-of-sample residuals. The outcome
models are registered by name in :data:`OUTCOME_MODELS` (a new learner is one function).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import CInAValidationError

__all__ = ["EffectEstimate", "weighted_estimate", "se_from_residual_variance",
           "matching_residual_variance", "weighting_se", "kernel_loo_residuals",
           "augmented_estimate", "OUTCOME_MODELS", "VARIANCE_ESTIMATES", "outcome_model",
           "balancing_effect", "se_sample", "SE_SAMPLE_FROM", "arm_imbalances", "bias_sd",
           "STACK_LEARNERS", "STACK_FIT_UNITS", "OutcomeFit",
           "fit_outcome_model"]

VARIANCE_ESTIMATES = ("kernel", "matching")


@dataclass
class EffectEstimate:
    """An estimate, its standard error and what produced them (merged into the fit's info)."""

    estimate: float
    se: float
    info: dict = field(default_factory=dict)


def weighted_estimate(alpha: np.ndarray, t: np.ndarray, y: np.ndarray) -> float:
    """sum_i alpha_i (2 t_i - 1) y_i: the weighting estimate of the effect."""
    w = 2.0 * t - 1.0
    return float(np.sum(alpha * w * y))


def se_from_residual_variance(alpha: np.ndarray, resid: np.ndarray) -> float:
    """sqrt(sum_i alpha_i^2 r_i^2), computed so that outcomes near the float range do not
    overflow (the plain sum is used whenever it is finite, so ordinary data are unaffected)."""
    se = float(np.sqrt(np.sum(alpha**2 * resid**2)))
    if np.isfinite(se) or not np.all(np.isfinite(resid)):
        return se
    scale = float(np.max(np.abs(resid)))  # squares of ~1e200 overflow: rescale first
    return scale * float(np.sqrt(np.sum(alpha**2 * (resid / scale) ** 2)))


def matching_residual_variance(Z: np.ndarray, t: np.ndarray, y: np.ndarray,
                               n_neighbors: int = 3) -> np.ndarray:
    """Per-unit conditional outcome variance sigma_hat^2_i from J same-arm nearest neighbours."""
    return _matching_residuals(Z, t, y, n_neighbors)[1]


def _matching_residuals(Z, t, y, n_neighbors):
    """(residual e_i with sigma_hat^2_i = e_i^2, sigma_hat^2) of the matching estimate."""
    from sklearn.neighbors import NearestNeighbors

    sigma2 = np.zeros(len(y))
    resid_all = np.zeros(len(y))
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        j = min(n_neighbors, len(idx) - 1)
        if j < 1:
            sigma2[idx] = np.var(y[idx]) if len(idx) > 1 else 0.0
            resid_all[idx] = np.sqrt(sigma2[idx])
            continue
        nn = NearestNeighbors(n_neighbors=j + 1).fit(Z[idx])
        _, nb = nn.kneighbors(Z[idx])
        # drop the unit itself (first neighbour unless exact ties put another unit first)
        own = nb == np.arange(len(idx))[:, None]
        keep = np.where(own.any(axis=1, keepdims=True), ~own, np.arange(j + 1) < j)
        neigh = nb[keep].reshape(len(idx), j)
        resid = y[idx] - y[idx][neigh].mean(axis=1)
        sigma2[idx] = j / (j + 1.0) * resid**2
        resid_all[idx] = np.sqrt(j / (j + 1.0)) * resid
    return resid_all, sigma2


def weighting_se(Z: np.ndarray, t: np.ndarray, y: np.ndarray, alpha: np.ndarray,
                 n_neighbors: int = 3) -> float:
    """Standard error of sum_i alpha_i (2 t_i - 1) y_i given X and t, with the matching
    estimate of sigma^2(x_i) (see the module doc)."""
    resid, sigma2 = _matching_residuals(Z, t, y, n_neighbors)
    se = float(np.sqrt(np.sum(alpha**2 * sigma2)))
    return se if np.isfinite(se) else se_from_residual_variance(alpha, resid)


def kernel_loo_residuals(Z: np.ndarray, t: np.ndarray, y: np.ndarray, *, bandwidth: float,
                         ridge: float, seed: int = 0, rows: np.ndarray | None = None
                         ) -> np.ndarray:
    """Leave-one-out residuals of the per-arm kernel ridge fit (the "kernel" variance);
    ``rows``: only those units' (and the fit's own units'; NaN elsewhere)."""
    from .balancing.outcome import gp_loo_residuals

    return gp_loo_residuals(Z, t, y, bandwidth=bandwidth, ridge=ridge, seed=seed, rows=rows)


#: from this many units on, the "kernel" standard error sums over a weighted sample of them
SE_SAMPLE_FROM = 50_000
#: the sample's expected size
SE_SAMPLE_SIZE = 20_000


def se_sample(alpha: np.ndarray, size: int | None = None, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Poisson sample of units with inclusion probability pi_i = min(1, c alpha_i^2), c set
    so that about ``size`` are drawn (units of weight 0 never are); returns (rows,
    1 / pi_rows). sum_{i in sample} alpha_i^2 r_i^2 / pi_i is then unbiased for
    sum_i alpha_i^2 r_i^2, with variance small where the weight is (docs/method_notes.md
    section 12)."""
    size = SE_SAMPLE_SIZE if size is None else int(size)
    a2 = np.asarray(alpha, dtype=float) ** 2
    if np.count_nonzero(a2) <= size:
        rows = np.flatnonzero(a2 > 0)
        return rows, np.ones(len(rows))
    lo, hi = 0.0, size / a2[a2 > 0].min()
    for _ in range(100):  # sum_i min(1, c a2_i) = size, by bisection on c
        c = 0.5 * (lo + hi)
        if np.minimum(1.0, c * a2).sum() > size:
            hi = c
        else:
            lo = c
    pi = np.minimum(1.0, lo * a2)
    rows = np.flatnonzero(np.random.default_rng([seed, 11]).random(len(a2)) < pi)
    return rows, 1.0 / pi[rows]


# --- outcome models of the augmented estimate ---------------------------------------------------
def _kernel_outcome_model(X, Z, t, y, *, bandwidth, ridge, seed):
    """The GP posterior mean per arm with the balancing kernel and the GP ridge."""
    from .balancing.outcome import gp_outcome_fit

    return gp_outcome_fit(Z, t, y, bandwidth=bandwidth, ridge=ridge, seed=seed)


def _gbm_outcome_model(X, Z, t, y, *, bandwidth, ridge, seed):
    """Histogram gradient boosting per arm, 5-fold cross-fitted (fewer folds for tiny arms),
    on the raw covariates."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from .crossfit import cross_fit_folds, cross_fit_outcomes

    n_treated = int(t.sum())
    folds = cross_fit_folds(t, min(5, n_treated, len(t) - n_treated), seed)
    m0, m1 = cross_fit_outcomes(X, t, y, folds, HistGradientBoostingRegressor(), seed)
    return m0, m1, y - np.where(t == 1, m1, m0)


#: the stacked outcome model's learners are fitted on at most this many units of an arm per fold
#: (a random subset; predictions cover every unit): it bounds the cost at large N
STACK_FIT_UNITS = 10_000
#: the Gaussian-kernel learner solves a dense system on at most this many units
KERNEL_FIT_UNITS = 1_500
STACK_LEARNERS = ("forest", "boosting", "ridge", "kernel")


def _stack_learner(name: str, seed: int, ridge: float):
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    if name == "forest":  # leaves of 5 and half the covariates per split: smoother than the
        # default forest, which extrapolated worst into the poorly overlapped LaLonde-like tails
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=5, max_features=0.5,
                                     random_state=seed, n_jobs=1)
    if name == "boosting":
        return HistGradientBoostingRegressor(random_state=seed)
    if name == "ridge":
        return _RangeClippedRidge()
    return _GaussianKernelRidge(ridge, seed)


class _RangeClippedRidge:
    """Ridge regression (penalty by leave-one-out CV) that clips each covariate to the range of
    its training units before predicting. Why: an arm's outcome model is evaluated on the other
    arm's units, which under poor overlap lie outside the arm's covariate range; a linear fit
    extrapolated there is unbounded, while trees are flat beyond their data. Clipping makes the
    linear learner flat there too."""

    def fit(self, X, y):
        from sklearn.linear_model import RidgeCV

        self.low_, self.high_ = X.min(axis=0), X.max(axis=0)
        self.model_ = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(np.clip(X, self.low_, self.high_))


class _GaussianKernelRidge:
    """The GP posterior mean with the Gaussian kernel exp(-|q - q'|^2 / 2) of the balancing
    kernel's keys (scaled to bandwidth 1: with the relevance key map, the ARD kernel of the
    relevance fit) and noise ratio ``ridge``, on at most :data:`KERNEL_FIT_UNITS` units.

    Why not the attention kernel itself: the attention kernel is normalised per query, so far
    from the fitted units its predictions do not return to the mean; on ACIC 2016 setting 36 the
    other arm's predictions of the attention-kernel fit were off by 5 outcome units while its
    own-arm leave-one-out predictions looked best, and stacking chose it. The Gaussian kernel
    decays, so the posterior mean returns to the arm's mean away from its data."""

    def __init__(self, ridge: float, seed: int):
        self.ridge, self.seed = max(float(ridge), 1e-6), seed

    def fit(self, Q, y):
        if len(Q) > KERNEL_FIT_UNITS:
            rows = np.random.default_rng([self.seed, 15]).choice(len(Q), KERNEL_FIT_UNITS,
                                                                  replace=False)
            Q, y = Q[rows], y[rows]
        self.Q_, self.mean_ = Q, float(y.mean())
        K = self._kernel(Q)
        K[np.diag_indices_from(K)] += self.ridge
        self.coef_ = np.linalg.solve(K, y - self.mean_)
        return self

    def _kernel(self, A):
        sq = (A * A).sum(1)[:, None] + (self.Q_ * self.Q_).sum(1)[None, :] - 2.0 * A @ self.Q_.T
        return np.exp(-0.5 * np.maximum(sq, 0.0))

    def predict(self, Q):
        out = np.empty(len(Q))
        for lo in range(0, len(Q), 20_000):  # O(chunk x fitted units) memory
            out[lo:lo + 20_000] = self.mean_ + self._kernel(Q[lo:lo + 20_000]) @ self.coef_
        return out


def _stacked_outcome_model(X, Z, t, y, *, bandwidth, ridge, seed):
    """Per arm, a non-negative combination of four learners chosen on out-of-sample predictions
    (stacking, docs/method_notes.md section 14): a random forest, gradient boosting and ridge
    regression (on the standardised covariates; ridge clipped to the training range) and Gaussian-kernel ridge on the balancing kernel's keys (with the relevance key map:
    the ARD Gaussian process of the relevance fit).

    Each learner is 5-fold cross-fitted (each fitted on at most :data:`STACK_FIT_UNITS` units of
    the arm per fold), so every prediction is out-of-sample for the unit it is made for. The
    combination weights of arm a minimise the squared error on arm a's units (non-negative least
    squares, normalised to sum to 1).
    """
    from scipy.optimize import nnls

    from .balancing import standardize
    from .crossfit import cross_fit_folds

    n = len(y)
    rng = np.random.default_rng([seed, 14])
    n_treated = int(t.sum())
    folds = cross_fit_folds(t, min(5, n_treated, n - n_treated), seed)
    # the standardised covariates for every learner but the kernel's: trees do not depend on a
    # column's scale, and scikit-learn's trees cast to float32, which overflows beyond 3e38
    S = standardize(X)[0]
    features = {"forest": S, "boosting": S, "ridge": S, "kernel": Z / np.sqrt(bandwidth)}
    names = list(STACK_LEARNERS)
    preds = {a: np.full((n, len(names)), np.nan) for a in (0, 1)}
    for train, test in folds:
        for a in (0, 1):
            idx = train[t[train] == a]
            if len(idx) > STACK_FIT_UNITS:
                idx = np.sort(rng.choice(idx, STACK_FIT_UNITS, replace=False))
            for j, name in enumerate(names):
                F = features[name]
                model = _stack_learner(name, seed, ridge).fit(F[idx], y[idx])
                preds[a][test, j] = model.predict(F[test])
    m = {}
    combination = {}
    for a in (0, 1):
        P = preds[a]
        if not np.isfinite(P).all():
            raise CInAValidationError("an outcome learner returned non-finite predictions")
        arm = t == a
        coef, _ = nnls(P[arm], y[arm])
        coef = coef / coef.sum() if coef.sum() > 0 else np.full(len(names), 1.0 / len(names))
        m[a] = P @ coef
        combination[f"arm{a}"] = {name: round(float(c), 3)
                                  for name, c in zip(names, coef, strict=True)}
    resid = y - np.where(t == 1, m[1], m[0])
    return m[0], m[1], resid, {"stack_weights": combination}


#: name -> outcome model: f(X, Z, t, y, *, bandwidth, ridge, seed) -> (m0, m1, out-of-sample
#: residuals[, info]), each (n,)
OUTCOME_MODELS: dict[str, Callable] = {"stack": _stacked_outcome_model,
                                       "gbm": _gbm_outcome_model,
                                       "kernel": _kernel_outcome_model}


def outcome_model(name: str) -> Callable:
    return OUTCOME_MODELS[name]


def augmented_estimate(alpha: np.ndarray, t: np.ndarray, y: np.ndarray, m0: np.ndarray,
                       m1: np.ndarray, resid: np.ndarray, estimand: str) -> EffectEstimate:
    """The augmented balancing estimate and its se (module doc)."""
    target = np.ones(len(t), bool) if estimand == "ate" else t == 1
    w = 2.0 * t - 1.0
    fitted = np.where(t == 1, m1, m0)
    model_effect = float(np.mean(m1[target] - m0[target]))
    estimate = float(np.mean(m1[target] - m0[target]) + np.sum(alpha * w * (y - fitted)))
    return EffectEstimate(estimate, se_from_residual_variance(alpha, resid),
                          {"outcome_model_effect": model_effect})


@dataclass
class OutcomeFit:
    """An outcome model's per-arm predictions m0, m1 (n,) and out-of-sample residuals
    y - m_t (n,), with what the model reports (merged into the fit's info)."""

    m0: np.ndarray
    m1: np.ndarray
    resid: np.ndarray
    info: dict = field(default_factory=dict)


def fit_outcome_model(name: str, X: np.ndarray, Z: np.ndarray, t: np.ndarray, y: np.ndarray,
                      *, bandwidth: float, ridge: float, seed: int = 0) -> OutcomeFit:
    """The registered outcome model ``name`` (:data:`OUTCOME_MODELS`) fitted to the data."""
    fitted = OUTCOME_MODELS[name](X, Z, t, y, bandwidth=bandwidth, ridge=ridge, seed=seed)
    info = {"augment": name, **(fitted[3] if len(fitted) > 3 else {})}
    return OutcomeFit(*fitted[:3], info=info)


def balancing_effect(alpha: np.ndarray, *, Z: np.ndarray, t: np.ndarray,
                     y: np.ndarray, estimand: str, bandwidth: float, ridge: float,
                     outcome: OutcomeFit | None = None, variance: str = "kernel",
                     n_neighbors: int = 3, seed: int = 0) -> EffectEstimate:
    """The effect of balancing weights alpha and its se: the weighting estimate with the
    ``variance`` estimate, or with a fitted ``outcome`` model the augmented estimate.
    ``ridge``: the GP noise-to-signal ratio of the lam rule (the kernel fits' ridge)."""
    if outcome is None:
        estimate = weighted_estimate(alpha, t, y)
        info: dict = {}
        if variance == "kernel" and len(t) >= SE_SAMPLE_FROM:
            # O(N) units of residuals cost O(N x 1,000) kernel entries: a weighted sample
            rows, inv_pi = se_sample(alpha, seed=seed)
            resid = kernel_loo_residuals(Z, t, y, bandwidth=bandwidth, ridge=ridge, seed=seed,
                                         rows=rows)
            se = se_from_residual_variance(alpha[rows] * np.sqrt(inv_pi), resid[rows])
            info["se_units"] = int(len(rows))
        elif variance == "kernel":
            resid = kernel_loo_residuals(Z, t, y, bandwidth=bandwidth, ridge=ridge, seed=seed)
            se = se_from_residual_variance(alpha, resid)
        else:
            se = weighting_se(Z, t, y, alpha, n_neighbors)
        return EffectEstimate(estimate, se, info)
    out = augmented_estimate(alpha, t, y, outcome.m0, outcome.m1, outcome.resid, estimand)
    out.info = {**outcome.info, **out.info}
    return out


# --- the bias that imbalance leaves: the bias-aware interval --------------------------------------
def arm_imbalances(matvec: Callable[[np.ndarray], np.ndarray], alpha: np.ndarray,
                   t: np.ndarray, estimand: str) -> dict[int, float]:
    """Per arm a, the squared kernel imbalance MMD_a^2 = (alpha_a - m)' K (alpha_a - m) between
    arm a's weights alpha_a (zero off the arm) and the estimand's population m (uniform over
    all units for the ATE, over the treated for the ATT), from two kernel mat-vecs."""
    target = np.ones(len(t), bool) if estimand == "ate" else t == 1
    m = target / target.sum()
    diffs = np.column_stack([np.where(t == a, alpha, 0.0) - m for a in (0, 1)])
    K_diffs = matvec(diffs)
    return {a: max(float(diffs[:, a] @ K_diffs[:, a]), 0.0) for a in (0, 1)}


def bias_sd(signal_vars: dict, imbalances: dict) -> float:
    """The prior standard deviation of the weighting bias, sqrt(sum_a s_f,a^2 MMD_a^2): under
    the Gaussian-process model of each arm's outcome surface (f_a ~ GP(0, s_f,a^2 K)), the bias
    sum_i alpha_a,i f_a(x_i) - mean_T f_a is normal with variance s_f,a^2 MMD_a^2, independent
    across arms (docs/method_notes.md section 14). Arms whose signal variance is unknown count
    as zero."""
    total = 0.0
    for a, mmd2 in imbalances.items():
        s2 = signal_vars.get(a, float("nan"))
        if np.isfinite(s2) and np.isfinite(mmd2):
            total += s2 * mmd2
    return float(np.sqrt(total))
