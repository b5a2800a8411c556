"""Sensitivity of an effect estimate to an unobserved confounder: omitted-variable-bias bounds
built on the balancing weights (docs/sensitivity.md).

Balancing weights estimate the Riesz representer of the effect: for the ATE,
``N alpha_i (2 t_i - 1)`` estimates ``t/e(x) - (1 - t)/(1 - e(x))`` at unit i (for the ATT,
``t/p - (1 - t) e(x) / (p (1 - e(x)))``). The omitted-variable-bias bound of Chernozhukov, Cinelli,
Newey, Sharma & Syrgkanis (2022) then reads, for a confounder A left out of the adjustment,

    |theta_short - theta| <= |rho| * S * sqrt(r2_y * r2_d / (1 - r2_d)),
    S^2 = E[(y - g(x, t))^2] * E[RR^2],

with ``r2_y`` the share of the outcome's residual variation that A explains, ``r2_d`` the share of
the representer's second moment that A adds (both in [0, 1)), and ``rho`` the correlation between
the two errors (1 = worst case). ``E[RR^2]`` is the weights' own second moment
``N sum_i alpha_i^2``; ``E[(y - g)^2]`` comes from a cross-fitted outcome model.

Entry point: :func:`sensitivity` (also ``est.sensitivity()``), which returns a
:class:`SensitivityResult`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from ._progress import progress_iter, show_progress
from ._threads import fit_threads
from .errors import CInAError, CInAValidationError, NotFittedError

__all__ = [
    "SensitivityResult",
    "sensitivity",
    "riesz_representer",
    "bias_bound",
    "robustness_value",
    "r2_y_at_bias",
    "cross_fitted_residuals",
    "covariate_groups",
]

DEFAULT_MULTIPLES = (1.0, 2.0, 3.0)
AUTO_BENCHMARK_MAX = 12  # with more covariate groups than this, benchmark the most imbalanced
AUTO_BENCHMARK_TOP = 8
STRENGTH_GRID = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


# ---------------------------------------------------------------------------------------------
# the bound itself (pure functions of numbers)
# ---------------------------------------------------------------------------------------------

def _check_share(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr >= 1):
        raise CInAValidationError(
            f"{name} must be a share in [0, 1) (a partial R^2); received {value!r}")
    return arr


def _check_rho(rho) -> float:
    if isinstance(rho, bool) or not isinstance(rho, numbers.Real) or not -1 <= rho <= 1 \
            or not math.isfinite(rho):
        raise CInAValidationError(
            f"rho must be a number in [-1, 1] (1 = the worst case); received {rho!r}")
    return float(rho)


def bias_bound(scale: float, r2_y, r2_d, rho: float = 1.0):
    """|rho| * scale * sqrt(r2_y * r2_d / (1 - r2_d)), elementwise (``scale`` is S); a float for
    scalar strengths, an array otherwise."""
    ry = _check_share(r2_y, "r2_y")
    rd = _check_share(r2_d, "r2_d")
    out = abs(_check_rho(rho)) * scale * np.sqrt(ry * rd / (1.0 - rd))
    return float(out) if np.ndim(out) == 0 else out


def r2_y_at_bias(bias: float, scale: float, r2_d):
    """The outcome strength r2_y at which a confounder of strength ``r2_d`` reaches the bias
    bound ``bias``: :func:`bias_bound` (rho = 1) solved for r2_y,
    (bias / scale)^2 (1 - r2_d) / r2_d, elementwise (the contours of the report's figure)."""
    rd = np.asarray(r2_d, dtype=float)
    out = (bias / scale) ** 2 * (1.0 - rd) / rd
    return float(out) if np.ndim(out) == 0 else out


def robustness_value(distance: float, scale: float) -> float:
    """The strength r (r2_y = r2_d = r) at which the bias bound reaches ``distance``.

    Solves scale * r / sqrt(1 - r) = distance: with a = (distance / scale)^2,
    r = (sqrt(a^2 + 4a) - a) / 2. ``distance`` <= 0 gives 0 (nothing left to move); a zero
    ``scale`` gives 1 (no confounder of any strength can move the estimate).
    """
    if distance <= 0:
        return 0.0
    if scale <= 0:
        return 1.0
    a = (distance / scale) ** 2
    return float((math.sqrt(a * a + 4.0 * a) - a) / 2.0)


def _scale_strength(r2: float, k: float) -> float:
    """A share k times as strong as ``r2``, on the odds scale f^2 = r2 / (1 - r2) (so that the
    result stays in [0, 1)): k f^2 / (1 + k f^2)."""
    f2 = r2 / (1.0 - r2)
    return float(k * f2 / (1.0 + k * f2))


# ---------------------------------------------------------------------------------------------
# inputs from a fitted estimator
# ---------------------------------------------------------------------------------------------

def _check_fitted(est, need_se: bool = True) -> None:
    if not hasattr(est, "result_") or not hasattr(est, "data_"):
        raise NotFittedError(
            f"this {type(est).__name__} is not fitted yet; call fit(X, t, y) before "
            "sensitivity() or report()")
    res = est.result_
    if not np.isfinite(res.estimate):
        raise CInAError(
            f"the fit of this {type(est).__name__} failed: its estimate is {res.estimate!r}; "
            "refit it (the inputs or settings may be the cause) before sensitivity() or report()")
    if need_se and (res.se is None or not np.isfinite(res.se)):
        raise CInAError(
            f"the fit of this {type(est).__name__} gave no finite standard error ({res.se!r}); "
            "the interval and the bounds on its ends cannot be computed")


def _check_outcome(data) -> None:
    y = data.y
    if y is None:
        raise CInAValidationError("the estimator was fitted without an outcome y")
    if np.ptp(y) == 0:
        raise CInAValidationError(
            f"the outcome is constant (every one of the {len(y)} values is {y[0]!r}): there is no "
            "effect to bound and no residual variation to attribute to a confounder")


def riesz_representer(est) -> tuple[np.ndarray, str]:
    """The fitted estimator's Riesz representer at each unit, and where it came from.

    Weighting methods: ``N alpha_i (2 t_i - 1)`` (the weights sum to 1 per arm). Cross-fitted
    doubly robust methods (aipw, dml): the representer of their propensity model,
    ``t/m - (1 - t)/(1 - m)`` for the ATE and ``(t - (1 - t) m / (1 - m)) / mean(t)`` for the
    ATT. Other methods have neither and raise a :class:`~cina.errors.CInAValidationError` saying
    which methods do.
    """
    _check_fitted(est, need_se=False)
    res, data = est.result_, est.data_
    t = data.t.astype(float)
    name = getattr(est, "method_name", type(est).__name__)
    if name == "naive":
        raise CInAValidationError(
            "the naive difference in means adjusts for no covariate, so there is no adjusted "
            "estimate whose sensitivity to a further, unobserved confounder could be bounded; "
            "use a method that adjusts (exact, zero-shot, ipw, entropy, aipw, dml)")
    if res.weights is not None:
        w = np.asarray(res.weights, dtype=float)
        return len(w) * w * (2.0 * t - 1.0), "balancing weights"
    m = res.info.get("propensity") if isinstance(res.info, dict) else None
    if m is not None:
        m = np.asarray(m, dtype=float)
        if res.estimand == "ate":
            rr = t / m - (1.0 - t) / (1.0 - m)
        else:
            rr = (t - (1.0 - t) * m / (1.0 - m)) / t.mean()
        return rr, "propensity model (cross-fitted)"
    raise CInAValidationError(
        f"method {name!r} produces neither balancing weights nor a propensity model, so its "
        "Riesz representer (which the bound needs) is not available. Weighting methods (exact, "
        "fit, zero-shot, ipw, entropy) and the doubly robust aipw and dml support "
        "sensitivity(); for this method, summary_frame() and effect_interval() are available")


def _resolve_outcome_learner(outcome_model, seed):
    from sklearn.base import clone

    if outcome_model == "gbm":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(random_state=seed), "gbm (HistGradientBoosting)"
    if outcome_model == "linear":
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return (make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
                "linear (ridge, standardised)")
    if hasattr(outcome_model, "fit") and hasattr(outcome_model, "predict") and \
            hasattr(outcome_model, "get_params"):
        return clone(outcome_model), " ".join(repr(outcome_model).split())
    raise CInAValidationError(
        "outcome_model must be 'auto', 'gbm', 'linear' or a scikit-learn regressor; received "
        f"{outcome_model!r}")


def _cross_fit(X, t, y, learner, n_folds: int, random_state: int) -> np.ndarray:
    """Out-of-fold residuals y - g_t(x) of the learner fitted per arm (:mod:`cina.crossfit`, the
    folds stratified on t)."""
    from .crossfit import cross_fit_folds, cross_fit_outcomes

    folds = cross_fit_folds(t, n_folds, random_state)
    # the fits' thread policy (cina._threads): gradient boosting's OpenMP threads at these sizes
    # mostly wait on each other, and on a shared machine oversubscription made it 10x slower
    with fit_threads(None, len(y)):
        g0, g1 = cross_fit_outcomes(X, t, y, folds, learner, random_state)
    return y - np.where(t == 1, g1, g0)


def cross_fitted_residuals(X: np.ndarray, t: np.ndarray, y: np.ndarray, *, outcome_model="auto",
                           n_folds: int = 5, random_state: int = 0) -> tuple[np.ndarray, str]:
    """Out-of-fold residuals y - g(x, t) of a per-arm outcome model (folds stratified on t):
    the honest estimate of E[(y - g)^2] the bound needs. Returns (residuals, model description).

    ``outcome_model``: "auto" (default) cross-fits both "linear" (ridge on standardised
    covariates) and "gbm" (histogram gradient boosting) and keeps the one with the smaller
    out-of-fold mean squared error; or one of them; or any scikit-learn regressor.
    """
    resid, described, _ = _cross_fitted_residuals(X, t, y, outcome_model, n_folds, random_state)
    return resid, described


def _cross_fitted_residuals(X, t, y, outcome_model, n_folds, random_state):
    """:func:`cross_fitted_residuals`, also returning the learner it chose."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral) or n_folds < 2:
        raise CInAValidationError(f"n_folds must be an integer >= 2; received {n_folds!r}")
    smallest = int(min((t == 1).sum(), (t == 0).sum()))
    if smallest < 2 * n_folds:
        raise CInAValidationError(
            f"cross-fitting the outcome model with n_folds={n_folds} needs at least "
            f"{2 * n_folds} units in each arm; the smallest arm has {smallest}. Use fewer folds")
    candidates = ("linear", "gbm") if isinstance(outcome_model, str) and \
        outcome_model == "auto" else (outcome_model,)
    best = None
    for candidate in candidates:
        learner, described = _resolve_outcome_learner(candidate, random_state)
        resid = _cross_fit(X, t, y, learner, int(n_folds), random_state)
        mse = float(np.mean(resid**2))
        if best is None or mse < best[0]:
            best = (mse, resid, described, candidate)
    _, resid, described, candidate = best
    chosen = " (the smaller out-of-fold error of linear and gbm)" if len(candidates) > 1 else ""
    return resid, f"{described}{chosen}, {n_folds}-fold cross-fitted per arm", candidate


def covariate_groups(data) -> dict[str, list[int]]:
    """The input's covariates as groups of encoded columns: a one-hot encoded categorical column
    ``c`` (encoded as ``c=level`` columns) is one group, so a benchmark removes all its levels."""
    encoding = getattr(data, "encoding", None)
    groups: dict[str, list[int]] = {}
    names = list(data.feature_names)
    source = encoding if isinstance(encoding, dict) else None
    for j, name in enumerate(names):
        key = None
        if source is not None:
            for original, cols in source.items():
                if isinstance(cols, (list, tuple)) and name in cols:
                    key = str(original)
                    break
        if key is None:
            key = name.split("=", 1)[0] if "=" in name else name
        groups.setdefault(key, []).append(j)
    # a name with "=" that is alone in its group was not one-hot encoding: keep its full name
    out: dict[str, list[int]] = {}
    for key, cols in groups.items():
        out[names[cols[0]] if len(cols) == 1 else key] = cols
    return out


# ---------------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------------

@dataclass
class SensitivityResult:
    """Omitted-variable-bias sensitivity of one fitted estimate (docs/sensitivity.md).

    ``sigma2`` = E[(y - g)^2] (cross-fitted outcome model), ``nu2`` = E[RR^2] (the weights' second
    moment), ``scale`` S = sqrt(sigma2 * nu2). Strengths are partial R^2 shares in [0, 1):
    ``r2_y`` of the outcome's residual variation, ``r2_d`` of the representer's variation.
    ``benchmarks``: one row per observed covariate (group) left out in turn: its own strengths,
    the estimate without it, and the bounds of a confounder as strong as it.
    """

    estimate: float
    se: float
    alpha: float
    estimand: str
    method: str
    n: int
    sigma2: float
    nu2: float
    rho: float
    representer: str
    outcome_model: str
    outcome_r2: float
    benchmarks: pd.DataFrame
    benchmark_note: str = ""
    multiples: tuple[float, ...] = DEFAULT_MULTIPLES
    info: dict = field(default_factory=dict)
    y_scale: float = 1.0  # outcomes beyond 1e100 are handled as y / y_scale (sigma2 in those units)

    # -- basic quantities --------------------------------------------------------------------
    @property
    def scale(self) -> float:
        """S = sqrt(E[(y - g)^2] E[RR^2]), in the outcome's units."""
        return float(self.y_scale * math.sqrt(self.sigma2 * self.nu2))

    @property
    def z(self) -> float:
        return float(norm.ppf(1 - self.alpha / 2))

    @property
    def interval(self) -> tuple[float, float]:
        return self.estimate - self.z * self.se, self.estimate + self.z * self.se

    def bias_bound(self, r2_y, r2_d, rho: float | None = None):
        """Largest |bias| of a confounder of strengths (r2_y, r2_d), elementwise."""
        return bias_bound(self.scale, r2_y, r2_d, self.rho if rho is None else rho)

    def bounds(self, r2_y, r2_d, rho: float | None = None) -> pd.DataFrame:
        """Bounds on the effect and on the interval's ends for confounders of the given strengths
        (scalars or arrays of equal length): columns r2_y, r2_d, bias_bound, estimate_lower,
        estimate_upper, ci_lower, ci_upper."""
        ry, rd = np.broadcast_arrays(np.atleast_1d(np.asarray(r2_y, dtype=float)),
                                     np.atleast_1d(np.asarray(r2_d, dtype=float)))
        b = self.bias_bound(ry, rd, rho)
        zse = self.z * self.se
        return pd.DataFrame({
            "r2_y": ry, "r2_d": rd, "bias_bound": b,
            "estimate_lower": self.estimate - b, "estimate_upper": self.estimate + b,
            "ci_lower": self.estimate - b - zse, "ci_upper": self.estimate + b + zse,
        })

    def strength_table(self, strengths=STRENGTH_GRID) -> pd.DataFrame:
        """:meth:`bounds` along the diagonal r2_y = r2_d = r, indexed by r."""
        r = np.asarray(strengths, dtype=float)
        return self.bounds(r, r).set_index(pd.Index(r, name="strength")).drop(
            columns=["r2_y", "r2_d"])

    def robustness_value(self, alpha: float | None = None, rho: float | None = None) -> float:
        """The strength r (r2_y = r2_d = r) of the weakest confounder that would move the estimate
        to 0 (``alpha=None``), or make the (1 - alpha) interval include 0."""
        rho = self.rho if rho is None else _check_rho(rho)
        distance = abs(self.estimate)
        if alpha is not None:
            if not 0 < alpha < 1:
                raise CInAValidationError(f"alpha must be in (0, 1); received {alpha!r}")
            distance -= float(norm.ppf(1 - alpha / 2)) * self.se
        return robustness_value(distance, abs(rho) * self.scale)

    @property
    def rv(self) -> float:
        """Robustness value of the point estimate (see :meth:`robustness_value`)."""
        return self.robustness_value()

    @property
    def rv_alpha(self) -> float:
        """Robustness value of the interval at this result's alpha."""
        return self.robustness_value(self.alpha)

    def benchmark_bounds(self, multiples=None) -> pd.DataFrame:
        """For each benchmark covariate and each multiple k: the strengths of a confounder k times
        as strong (on the odds scale, docs/sensitivity.md) and the bounds it gives."""
        multiples = self.multiples if multiples is None else tuple(multiples)
        rows = []
        for cov, b in self.benchmarks.iterrows():
            if not np.isfinite(b["r2_y"]) or not np.isfinite(b["r2_d"]):
                continue
            for k in multiples:
                if not k > 0:
                    raise CInAValidationError(f"multiples must be positive; received {k!r}")
                ry, rd = _scale_strength(b["r2_y"], k), _scale_strength(b["r2_d"], k)
                bd = self.bounds(ry, rd).iloc[0]
                rows.append({"covariate": cov, "multiple": float(k), "r2_y": ry, "r2_d": rd,
                             **{c: float(bd[c]) for c in ("bias_bound", "estimate_lower",
                                                          "estimate_upper", "ci_lower",
                                                          "ci_upper")}})
        cols = ["covariate", "multiple", "r2_y", "r2_d", "bias_bound", "estimate_lower",
                "estimate_upper", "ci_lower", "ci_upper"]
        return pd.DataFrame(rows, columns=cols)

    # -- summaries ---------------------------------------------------------------------------
    def summary_frame(self) -> pd.DataFrame:
        """One row: the estimate, its interval, the scale of the bound and the robustness values."""
        lo, hi = self.interval
        return pd.DataFrame([{
            "estimand": self.estimand, "estimate": self.estimate, "se": self.se,
            "ci_low": lo, "ci_high": hi, "alpha": self.alpha, "sigma2": self.sigma2,
            "nu2": self.nu2, "scale": self.scale, "rho": self.rho,
            "rv": self.rv, "rv_alpha": self.rv_alpha,
        }]).set_index("estimand")

    def to_dict(self) -> dict:
        """JSON-ready dictionary (plain floats, lists and strings)."""
        lo, hi = self.interval

        def clean(v):
            if isinstance(v, (float, np.floating)):
                return float(v) if np.isfinite(v) else None
            if isinstance(v, (np.integer,)):
                return int(v)
            return v

        bench = [{"covariate": str(cov), **{k: clean(v) for k, v in row.items()}}
                 for cov, row in self.benchmarks.iterrows()]
        return {
            "estimand": self.estimand, "estimate": self.estimate, "se": self.se,
            "alpha": self.alpha, "ci_low": lo, "ci_high": hi, "method": self.method,
            "sigma2": self.sigma2, "y_scale": self.y_scale, "nu2": self.nu2,
            "scale": self.scale, "rho": self.rho,
            "rv": self.rv, "rv_alpha": self.rv_alpha, "representer": self.representer,
            "outcome_model": self.outcome_model, "outcome_r2": clean(self.outcome_r2),
            "benchmarks": bench, "benchmark_note": self.benchmark_note,
            "strength_table": [
                {"strength": float(r), **{k: float(v) for k, v in row.items()}}
                for r, row in self.strength_table().iterrows()],
        }

    def interpretation(self) -> str:
        """Two or three sentences for a reader who is not a statistician."""
        pct = 100 * (1 - self.alpha)
        out = [
            f"An unobserved confounder would have to explain {self.rv:.1%} of the residual "
            f"variation of the outcome and {self.rv:.1%} of the variation of the balancing "
            f"weights (the Riesz representer) to bring the estimate to 0"]
        if self.rv_alpha > 0:
            out[0] += (f", and {self.rv_alpha:.1%} of each to make the {pct:g}% interval "
                       "include 0.")
        else:
            out[0] += f"; the {pct:g}% interval already includes 0."
        strongest = self.strongest_benchmark()
        if strongest is not None:
            cov, b = strongest
            head = (f"For comparison, the observed covariate {cov} explains {b['r2_y']:.1%} of "
                    f"the outcome's residual variation and {b['r2_d']:.1%} of the weights' "
                    f"variation; a confounder as strong as {cov}")
            if self.rv_alpha == 0:
                out.append(f"{head} could move the estimate anywhere between "
                           f"{b['estimate_lower_1x']:.4g} and {b['estimate_upper_1x']:.4g}.")
            else:
                moved = "would" if b["ci_lower_1x"] <= 0 <= b["ci_upper_1x"] else "would not"
                out.append(f"{head} {moved} make the {pct:g}% interval include 0.")
        return " ".join(out)

    def strongest_benchmark(self) -> tuple[str, pd.Series] | None:
        """(covariate, its benchmark row) of the benchmark with the largest bias bound at 1x;
        None without a usable benchmark."""
        if self.benchmarks.empty:
            return None
        ok = self.benchmarks[np.isfinite(self.benchmarks["bias_bound_1x"])]
        if ok.empty:
            return None
        cov = ok["bias_bound_1x"].idxmax()
        return cov, ok.loc[cov]

    def summary(self) -> str:
        """A plain-text summary (what the CLI prints)."""
        lo, hi = self.interval
        pct = 100 * (1 - self.alpha)
        lines = [
            f"Sensitivity to an unobserved confounder ({self.estimand.upper()}, "
            f"method {self.method})",
            f"  estimate {self.estimate:.6g}  {pct:g}% CI [{lo:.6g}, {hi:.6g}]",
            f"  bound    |bias| <= {abs(self.rho):g} * S * sqrt(r2_y r2_d / (1 - r2_d)), "
            f"S = {self.scale:.6g}",
            f"           E[(y-g)^2] = {self._sigma2_text()} ({self.outcome_model}; out-of-fold R^2 "
            f"{self.outcome_r2:.3f}), E[RR^2] = {self.nu2:.6g} ({self.representer})",
            f"  robustness value: {self.rv:.4f} (estimate to 0), {self.rv_alpha:.4f} "
            f"({pct:g}% interval to include 0)",
            "  strength r = r2_y = r2_d:   bias bound     estimate range          CI range",
        ]
        for r, row in self.strength_table((0.01, 0.05, 0.1, 0.2)).iterrows():
            lines.append(
                f"    {r:5.2f}   {row['bias_bound']:14.6g}   [{row['estimate_lower']:.5g}, "
                f"{row['estimate_upper']:.5g}]   [{row['ci_lower']:.5g}, {row['ci_upper']:.5g}]")
        if not self.benchmarks.empty:
            lines.append("  benchmarks (a confounder as strong as the covariate):")
            lines.append("    covariate        r2_y     r2_d    bias bound   CI range")
            for cov, b in self.benchmarks.iterrows():
                if not np.isfinite(b["bias_bound_1x"]):
                    lines.append(f"    {str(cov):14s}  not available: {b['note']}")
                    continue
                lines.append(
                    f"    {str(cov):14s} {b['r2_y']:7.4f}  {b['r2_d']:7.4f}  "
                    f"{b['bias_bound_1x']:11.5g}   [{b['ci_lower_1x']:.5g}, "
                    f"{b['ci_upper_1x']:.5g}]")
        if self.benchmark_note:
            lines.append(f"  {self.benchmark_note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _sigma2_text(self) -> str:
        if self.y_scale == 1.0:
            return f"{self.sigma2:.6g}"
        return f"{self.sigma2:.6g} x {self.y_scale:.6g}^2"

    def call(self) -> str:
        """The Python call that recomputes this analysis on the same fitted estimator."""
        opts = self.info.get("options", {})
        args = ", ".join(f"{k}={v!r}" if k != "outcome_model" or v in ("auto", "gbm", "linear")
                         else f"{k}=<{v}>" for k, v in opts.items())
        return f"sens = est.sensitivity({args})"


# ---------------------------------------------------------------------------------------------
# computing it
# ---------------------------------------------------------------------------------------------

def _resolve_benchmarks(est, data, groups: dict[str, list[int]], benchmark_covariates):
    if benchmark_covariates is False:
        return [], "benchmarks not computed (benchmark_covariates=False)"
    if benchmark_covariates is None:
        if len(groups) <= 1:
            return [], "no benchmark: the estimate adjusts for a single covariate"
        if len(groups) <= AUTO_BENCHMARK_MAX:
            return list(groups), ""
        from .diagnostics import balance_table

        w = est.result_.weights if est.result_.weights is not None else \
            np.where(data.t == 1, 1.0 / data.n_treated, 1.0 / data.n_control)
        smd = balance_table(data.X, data.t, w, feature_names=data.feature_names,
                            estimand=est.result_.estimand)["smd_before"].to_numpy()
        score = {g: float(smd[cols].max()) for g, cols in groups.items()}
        chosen = sorted(score, key=score.get, reverse=True)[:AUTO_BENCHMARK_TOP]
        return chosen, (f"benchmarks: the {len(chosen)} covariates most imbalanced before "
                        f"weighting, of {len(groups)} (benchmark_covariates= chooses others)")
    if isinstance(benchmark_covariates, str):
        benchmark_covariates = [benchmark_covariates]
    chosen = []
    for name in benchmark_covariates:
        if name in groups:
            chosen.append(name)
        elif name in data.feature_names:  # one level of an encoded column
            chosen.append(name)
        else:
            raise CInAValidationError(
                f"benchmark covariate {name!r} is not one of the fitted covariates; choose from "
                f"{', '.join(groups)}")
    if len(chosen) and len(groups) <= 1:
        raise CInAValidationError(
            "benchmarking needs at least two covariates: the estimate adjusts for only one, and "
            "a refit without it would adjust for none")
    return chosen, ""


def sensitivity(est, *, alpha: float = 0.05, rho: float = 1.0, benchmark_covariates=None,
                multiples=DEFAULT_MULTIPLES, outcome_model="auto", n_folds: int = 5,
                random_state: int | None = None, progress: bool | None = None
                ) -> SensitivityResult:
    """Omitted-variable-bias sensitivity analysis of a fitted estimator (docs/sensitivity.md).

    Parameters
    ----------
    est : a fitted estimator with a Riesz representer: a weighting method (CInA, ipw, entropy) or
        a cross-fitted doubly robust one (aipw, dml).
    alpha : the interval's level (1 - alpha) for the bounds on its ends and ``rv_alpha``.
    rho : the assumed correlation between the confounder's outcome and representer errors;
        1 (default) is the worst case.
    benchmark_covariates : None (default): every observed covariate (a one-hot encoded column
        counts once) when there are at most 12, else the 8 most imbalanced before weighting;
        a list of names; False for none. Each costs one refit of the estimator and of the
        outcome model without that covariate.
    multiples : the k of "a confounder k times as strong as the covariate".
    outcome_model : "auto" (default: the better of "linear" and "gbm" by out-of-fold error),
        "linear", "gbm" or a scikit-learn regressor: the cross-fitted per-arm model of
        E[y | x, t] whose residual variance enters the bound.
    n_folds : cross-fitting folds of the outcome model.
    random_state : seed of the folds and the learner; None uses the estimator's own.
    progress : progress bar over the benchmark refits; None shows it on a terminal only.
    """
    from sklearn.base import clone

    if not 0 < alpha < 1:
        raise CInAValidationError(f"alpha must be in (0, 1); received {alpha!r}")
    rho = _check_rho(rho)
    rr, rr_source = riesz_representer(est)  # checks fitted / failed fit / method
    _check_fitted(est)  # and a finite standard error
    data = est.data_
    _check_outcome(data)
    seed = getattr(est, "random_state", 0) if random_state is None else random_state
    seed = 0 if seed is None else seed
    res = est.result_
    top = float(np.max(np.abs(data.y)))
    # squares of outcomes beyond ~1e154 overflow: work on y / 2^k (exact), S scaled back
    y_scale = 2.0 ** math.ceil(math.log2(top)) if top > 1e100 else 1.0
    y = data.y / y_scale
    resid, described, chosen_model = _cross_fitted_residuals(
        data.X, data.t, y, outcome_model, n_folds, seed)
    sigma2 = float(np.mean(resid**2))
    nu2 = float(np.mean(rr**2))
    outcome_r2 = float(1.0 - sigma2 / np.var(y))

    groups = covariate_groups(data)
    chosen, note = _resolve_benchmarks(est, data, groups, benchmark_covariates)
    multiples = tuple(float(k) for k in multiples)
    if any(not k > 0 for k in multiples):
        raise CInAValidationError(f"multiples must be positive numbers; received {multiples!r}")
    result = SensitivityResult(
        estimate=float(res.estimate), se=float(res.se), alpha=float(alpha),
        estimand=res.estimand, method=str(res.method), n=int(data.n), sigma2=sigma2, nu2=nu2,
        rho=rho, representer=rr_source, outcome_model=described, outcome_r2=outcome_r2,
        benchmarks=pd.DataFrame(), benchmark_note=note, multiples=multiples, y_scale=y_scale,
        info={"options": {"alpha": float(alpha), "rho": rho,
                          "benchmark_covariates": list(chosen) if chosen else False,
                          "multiples": list(multiples),
                          "outcome_model": outcome_model if isinstance(outcome_model, str)
                          else " ".join(repr(outcome_model).split()),
                          "n_folds": n_folds, "random_state": seed}})

    rows = []
    for name in progress_iter(chosen, show_progress(progress, True), "sensitivity benchmarks",
                              "covariate"):
        cols = groups.get(name, [data.feature_names.index(name)] if name in data.feature_names
                          else [])
        keep = np.setdiff1d(np.arange(data.d), cols)
        row = {"columns": ", ".join(data.feature_names[j] for j in cols)}
        try:
            short = dataclasses.replace(
                data, X=np.ascontiguousarray(data.X[:, keep]),
                feature_names=[data.feature_names[j] for j in keep], dropped_constant=[])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                refit = clone(est).fit_validated(short)
            rr_s, _ = riesz_representer(refit)
            # the same outcome learner as the full model's, so that r2_y compares like with like
            resid_s, _, _ = _cross_fitted_residuals(short.X, short.t, y, chosen_model,
                                                    n_folds, seed)
        except (CInAError, ValueError, np.linalg.LinAlgError) as exc:
            row.update({k: np.nan for k in ("r2_y", "r2_d", "rho_hat", "estimate_without",
                                             "change")}, note=f"refit without it failed: {exc}")
            rows.append((name, row))
            continue
        sigma2_s = float(np.mean(resid_s**2))
        nu2_s = float(np.mean(rr_s**2))
        # the covariate's own strengths, with the model without it as the "short" one
        r2_y = max(0.0, (sigma2_s - sigma2) / sigma2_s) if sigma2_s > 0 else 0.0
        r2_d = max(0.0, (nu2 - nu2_s) / nu2) if nu2 > 0 else 0.0
        r2_y, r2_d = min(r2_y, 0.999), min(r2_d, 0.999)
        dg = resid_s - resid  # g_long - g_short at the observed (x, t)
        da = rr - rr_s
        rho_hat = float(np.corrcoef(dg, da)[0, 1]) if np.std(dg) > 0 and np.std(da) > 0 \
            else float("nan")
        row.update({"r2_y": r2_y, "r2_d": r2_d, "rho_hat": rho_hat,
                    "estimate_without": float(refit.result_.estimate),
                    "change": float(refit.result_.estimate - res.estimate),
                    "bound_without": bias_bound(y_scale * math.sqrt(sigma2_s * nu2_s), r2_y,
                                                r2_d),
                    "note": ""})
        rows.append((name, row))
    bench = pd.DataFrame([r for _, r in rows], index=pd.Index([n for n, _ in rows],
                                                              name="covariate"))
    if bench.empty:
        bench = pd.DataFrame(columns=["columns", "r2_y", "r2_d", "rho_hat", "estimate_without",
                                      "change", "bound_without", "note"],
                             index=pd.Index([], name="covariate"))
    for col in ("bias_bound_1x", "estimate_lower_1x", "estimate_upper_1x", "ci_lower_1x",
                "ci_upper_1x"):
        bench[col] = np.nan
    for cov, b in bench.iterrows():
        if np.isfinite(b["r2_y"]) and np.isfinite(b["r2_d"]):
            bd = result.bounds(b["r2_y"], b["r2_d"]).iloc[0]
            bench.loc[cov, "bias_bound_1x"] = bd["bias_bound"]
            bench.loc[cov, "estimate_lower_1x"] = bd["estimate_lower"]
            bench.loc[cov, "estimate_upper_1x"] = bd["estimate_upper"]
            bench.loc[cov, "ci_lower_1x"] = bd["ci_lower"]
            bench.loc[cov, "ci_upper_1x"] = bd["ci_upper"]
    result.benchmarks = bench
    return result
