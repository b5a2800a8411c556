"""The realistic (RealCause-style) generator: fitted treatment and outcome models of a real table,
sampled with known individual effects.

:func:`fit_realistic` fits, on a real covariate table ``X`` with its treatment ``t`` and outcome
``y``:

* the propensity ``e(x) = P(t = 1 | x)``: the best of three classifiers by cross-validated log
  loss, refitted on all rows, clipped to ``[clip, 1 - clip]`` (default 0.0001: light, so that
  overlap stays as poor as the table's);
* per arm ``a`` (the rows with ``t = a``; every row when both potential outcomes are observed,
  as in Twins) an outcome model of ``y | x, t = a`` whose kind follows the outcome:

  - ``"binary"``: ``y(a) ~ Bernoulli(p_a(x))``, ``mu_a = p_a``;
  - ``"continuous"``: ``y(a) = mu_a(x) + g_a(x) r`` with ``r`` drawn from the arm's
    residuals (divided by ``g_a``) and ``g_a`` a fitted heteroscedastic profile (1 where no
    profile beats a constant in cross-validation);
  - ``"nonnegative"`` (a point mass at zero plus a skewed positive part, e.g. earnings): a
    hurdle, ``y(a) = 0`` with probability ``1 - p_a(x)``, else ``exp(m_a(x) + r)`` with ``r``
    drawn from the arm's residuals of ``log y``; when the arm is top-coded (at least 2% of its
    positive values equal its maximum, as CPS earnings at 25,564.67) a third part gives the
    probability of the top code and the positive draws are capped there. ``mu_a(x)`` is the
    exact expectation of that mixture over the residual pool (512 quantiles at most).

  The residuals are the full fit's own (the empirical residuals), so that at the real treatment
  the simulated outcomes reproduce each arm's real distribution; they are widened to at least a
  quarter of the cross-validated residual variance where a flexible fit absorbed more noise.

:meth:`RealisticGenerator.sample` keeps ``X`` (all rows, the table's full N), draws
``t ~ Bernoulli(e(x))`` and ``y = y(t)`` from the arm models, and returns a
:class:`~cina.datasets.CausalDataset` whose ``mu0``/``mu1`` are the known surfaces, so that
its true effect is the sample mean of ``mu1 - mu0`` over the estimand's population (all units
for the ATE, the sampled treated for the ATT), as :meth:`CausalDataset.sample_effect` computes.

Knobs in the spirit of RealCause, all 1 by default (= as fitted): ``overlap`` multiplies the
propensity logit (re-centred so that the expected treated share is unchanged; > 1 worsens
overlap), ``heterogeneity`` scales the individual effects around their mean, ``noise`` scales
each draw around its mean. docs/realistic.md describes the design and the checks.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit

from ...errors import CInAValidationError
from .._base import CausalDataset
from ._learners import LEARNERS, Selection, select

__all__ = ["ArmModel", "RealisticGenerator", "fit_realistic", "OUTCOME_KINDS",
           "DEFAULT_PROPENSITY_CLIP"]

OUTCOME_KINDS = ("auto", "continuous", "binary", "nonnegative")
DEFAULT_PROPENSITY_CLIP = 1e-4
"""Fitted propensities are clipped to [clip, 1 - clip]. 1e-3 added 9 of 194 expected treated
units to LaLonde-CPS (73% of its units sit below it) and quadrupled the median propensity an
analyst estimates for its controls; 1e-4 adds about one (docs/realistic.md section 2)."""
MIN_ARM = 10
"""Smallest arm the generator fits an outcome model on."""
NOISE_FLOOR = 0.25
"""The noise variance is at least this share of the cross-validated residual variance."""
TOP_SHARE = 0.02
"""A ``nonnegative`` arm has a top-code atom when this share of its positive values equal its
maximum."""
POOL_SIZE = 512
"""A ``nonnegative`` arm draws its log residual from at most this many quantiles."""
ZERO_SHARE = 0.05
"""``auto`` picks the ``nonnegative`` hurdle when y >= 0 and at least this share is exactly 0."""


def _fail(msg: str):
    raise CInAValidationError(msg)


def _standardise(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    sd = float(r.std())
    return (r - r.mean()) / sd if sd > 0 else np.zeros_like(r)


def _cv_r2(y: np.ndarray, pred: np.ndarray) -> float:
    var = float(np.var(y))
    return float(1.0 - np.mean((y - pred) ** 2) / var) if var > 0 else 0.0


def _part(sel: Selection) -> dict:
    return {"learner": sel.name, "cv_loss": {k: round(v, 6) for k, v in sel.scores.items()},
            "cv_r2": round(sel.r2, 4)}


@dataclass(frozen=True)
class ArmModel:
    """The fitted outcome model of one arm, evaluated on every row of the table.

    ``mean`` is ``mu_a(x)`` (the known expected potential outcome). ``kind`` says how a draw is
    made: ``binary`` uses ``prob``; ``continuous`` uses ``mean``, ``scale`` (per row) and the
    residual pool ``pool`` (mean 0); ``nonnegative`` uses ``prob`` (of y > 0), ``top`` and
    ``prob_top`` (a top-code atom and the probability of it given y > 0, when the arm has
    one), ``log_mean`` and the log-scale residual pool ``pool``.
    """

    kind: str
    mean: np.ndarray
    prob: np.ndarray | None = None
    log_mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    pool: np.ndarray | None = field(default=None, repr=False)
    top: float | None = None
    prob_top: np.ndarray | None = None
    summary: dict = field(default_factory=dict)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of y(a) for every row."""
        n = len(self.mean)
        if self.kind == "binary":
            return (rng.random(n) < self.prob).astype(np.float64)
        z = self.pool[rng.integers(0, len(self.pool), size=n)]
        if self.kind == "continuous":
            return self.mean + self.scale * z
        positive = rng.random(n) < self.prob
        at_top = rng.random(n) < self.prob_top
        inner = np.exp(self.log_mean + z)
        if self.top is not None:
            inner = np.minimum(inner, self.top)
            inner = np.where(at_top, self.top, inner)
        return np.where(positive, inner, 0.0)


def _fit_binary(Xa, ya, X, seed, learners) -> tuple[ArmModel, np.ndarray]:
    sel = select("classification", Xa, ya, seed, learners=learners)
    prob = sel.predict(X)
    summary = {"kind": "binary", "n": int(len(ya)), "mean_y": float(np.mean(ya)),
               "probability": _part(sel), "cv_r2": round(_cv_r2(ya, sel.oof), 4)}
    return ArmModel("binary", prob.copy(), prob=prob, summary=summary), sel.oof


def _residual_pool(resid_in: np.ndarray, resid_oof: np.ndarray) -> tuple[np.ndarray, bool]:
    """The empirical (in-sample) residuals, centred; widened to NOISE_FLOOR of the
    cross-validated residual variance when the fit has absorbed more than that."""
    r = resid_in - resid_in.mean()
    floor = NOISE_FLOOR * float(np.mean(resid_oof ** 2))
    var = float(np.mean(r ** 2))
    if var < floor:
        return (r * np.sqrt(floor / var) if var > 0 else
                _standardise(resid_oof) * np.sqrt(floor)), True
    return r, False


def _quantile_pool(r: np.ndarray, k: int = POOL_SIZE) -> np.ndarray:
    """At most ``k`` evenly spaced quantiles of ``r`` (mid-point levels): the pool a draw picks
    from, small enough that each row's expectation over it is computed exactly."""
    if len(r) <= k:
        return np.sort(r)
    return np.quantile(r, (np.arange(k) + 0.5) / k)


def _fit_continuous(Xa, ya, X, rows_a, seed, learners) -> tuple[ArmModel, np.ndarray]:
    sel = select("regression", Xa, ya, seed, learners=learners)
    mean = sel.predict(X)
    resid_in = ya - mean[rows_a]
    resid_oof = ya - sel.oof
    # heteroscedastic profile: |residual| as a function of x, kept only if it beats a constant
    prof = select("regression", Xa, np.abs(resid_oof), seed, learners=learners)
    if prof.name != "constant" and prof.r2 > 0.01:
        floor = 0.1 * float(np.mean(np.abs(resid_oof)))
        g = np.maximum(prof.predict(X), floor)
        g = g / np.sqrt(np.mean(g[rows_a] ** 2))
        hetero = _part(prof)
    else:
        g = np.ones(len(X))
        hetero = None
    pool, widened = _residual_pool(resid_in / g[rows_a], resid_oof / g[rows_a])
    pool = pool - pool.mean()
    # a flexible fit's own residuals are correlated with it (a forest shrinks towards local
    # means), so var(fit) + var(residuals) falls short of var(y): widen the residuals until the
    # arm's simulated variance at the real treatment is the real one (never narrow them)
    target = float(np.var(ya) - np.var(mean[rows_a])) / float(np.mean(g[rows_a] ** 2))
    current = float(np.mean(pool ** 2))
    matched = bool(current > 0 and target > current)
    if matched:
        pool = pool * np.sqrt(target / current)
    summary = {"kind": "continuous", "n": int(len(ya)), "mean_y": float(np.mean(ya)),
               "mean": _part(sel), "heteroscedastic": hetero,
               "noise_sd": float(np.sqrt(np.mean(g[rows_a] ** 2) * np.mean(pool ** 2))),
               "noise_widened": widened, "noise_matched_to_real_variance": matched,
               "cv_r2": round(sel.r2, 4)}
    return ArmModel("continuous", mean, scale=g, pool=pool, summary=summary), sel.oof


def _top_code(ya: np.ndarray) -> float | None:
    """The arm's maximum when at least TOP_SHARE of its positive values sit exactly there (a
    top-coded outcome, as CPS earnings at 25,564.67)."""
    pos = ya[ya > 0]
    if len(pos) == 0:
        return None
    top = float(pos.max())
    return top if np.mean(pos == top) >= TOP_SHARE else None


def _capped_mean(log_mean: np.ndarray, pool: np.ndarray, top: float | None) -> np.ndarray:
    """mean_j min(exp(log_mean + pool_j), top) per row (chunked: rows x pool)."""
    if top is None:
        return np.exp(log_mean) * float(np.mean(np.exp(pool)))
    out = np.empty(len(log_mean))
    step = max(1, 4_000_000 // max(len(pool), 1))
    for i in range(0, len(log_mean), step):
        block = np.exp(log_mean[i:i + step, None] + pool[None, :])
        out[i:i + step] = np.minimum(block, top).mean(axis=1)
    return out


def _fit_nonnegative(Xa, ya, X, seed, learners) -> tuple[ArmModel, np.ndarray]:
    pos = ya > 0
    top = _top_code(ya)
    sel_p = select("classification", Xa, pos.astype(float), seed, learners=learners)
    prob = sel_p.predict(X)
    if top is not None:
        sel_top = select("classification", Xa[pos], (ya[pos] == top).astype(float), seed,
                         learners=learners)
        prob_top = sel_top.predict(X)
        inner = pos & (ya < top)
    else:
        sel_top = None
        prob_top = np.zeros(len(X))
        inner = pos
    logy = np.log(ya[inner])
    sel_m = select("regression", Xa[inner], logy, seed, learners=learners)
    log_mean = sel_m.predict(X)
    pool, widened = _residual_pool(logy - sel_m.predict(Xa[inner]), logy - sel_m.oof)
    pool = _quantile_pool(pool)
    inner_mean = _capped_mean(log_mean, pool, top)
    top_value = 0.0 if top is None else top
    mean = prob * (prob_top * top_value + (1 - prob_top) * inner_mean)
    # cross-validated prediction of y itself, for its R^2: out-of-fold parts where a row was
    # in a part's training data, the full fit elsewhere (rows outside a part's training rows,
    # e.g. y = 0 for the log model, are out of sample for it anyway)
    m_cv = sel_m.predict(Xa)
    m_cv[inner] = sel_m.oof
    pt_cv = np.zeros(len(ya))
    if sel_top is not None:
        pt_cv = sel_top.predict(Xa)
        pt_cv[pos] = sel_top.oof
    oof = sel_p.oof * (pt_cv * top_value + (1 - pt_cv) * _capped_mean(m_cv, pool, top))
    summary = {"kind": "nonnegative", "n": int(len(ya)), "mean_y": float(np.mean(ya)),
               "zero_share": float(np.mean(~pos)), "positive": _part(sel_p),
               "top_code": top, "top_share": float(np.mean(ya == top)) if top else 0.0,
               "at_top": None if sel_top is None else _part(sel_top),
               "log_inner": _part(sel_m), "log_noise_sd": float(np.std(pool)),
               "noise_widened": widened, "cv_r2": round(_cv_r2(ya, oof), 4)}
    return ArmModel("nonnegative", mean, prob=prob, log_mean=log_mean, pool=pool, top=top,
                    prob_top=prob_top, summary=summary), oof


def _auto_kind(y: np.ndarray) -> str:
    values = np.unique(y)
    if np.all(np.isin(values, (0.0, 1.0))):
        return "binary"
    if values.min() >= 0 and np.mean(y == 0) >= ZERO_SHARE:
        return "nonnegative"
    return "continuous"


def _solve_shift(z: np.ndarray, target: float, clip: float) -> float:
    """b such that mean(clip(expit(z + b))) = target."""
    def gap(b):
        return float(np.mean(np.clip(expit(z + b), clip, 1 - clip)) - target)
    lo, hi = -50.0, 50.0
    if gap(lo) >= 0:
        return lo
    if gap(hi) <= 0:
        return hi
    return float(brentq(gap, lo, hi, xtol=1e-10))


def _check_knob(value, name: str, lo: float, hi: float, open_lo: bool) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and np.isfinite(value) and (value > lo if open_lo else value >= lo) and value <= hi)
    if not ok:
        side = "(" if open_lo else "["
        _fail(f"{name} must be a number in {side}{lo:g}, {hi:g}]; received {value!r}")
    return float(value)


@dataclass(frozen=True)
class RealisticGenerator:
    """A fitted realistic generator (see the module doc); build with :func:`fit_realistic`.

    Attributes: ``name``; ``X`` (the real table); ``t_real``, ``y_real`` (the real treatment
    and outcome it was fitted to); ``propensity`` (the fitted, clipped e(x)); ``arms`` (the
    :class:`ArmModel` of t = 0 and t = 1); ``outcome_kind``; ``clip``; ``info`` (chosen
    learners, cross-validated losses and R^2, timings).
    """

    name: str
    X: pd.DataFrame
    t_real: np.ndarray
    y_real: np.ndarray
    propensity: np.ndarray
    arms: tuple[ArmModel, ArmModel]
    outcome_kind: str
    clip: float
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(len(self.t_real))

    @property
    def mu0(self) -> np.ndarray:
        return self.arms[0].mean

    @property
    def mu1(self) -> np.ndarray:
        return self.arms[1].mean

    @property
    def tau(self) -> np.ndarray:
        """Known individual effects mu1(x) - mu0(x) on every row (as fitted)."""
        return self.arms[1].mean - self.arms[0].mean

    def propensities(self, overlap: float = 1.0) -> np.ndarray:
        """e(x) with the overlap knob: logit multiplied by ``overlap`` and shifted so that the
        expected treated share is the fitted one; clipped to [clip, 1 - clip]."""
        overlap = _check_knob(overlap, "overlap", 0.0, 20.0, open_lo=True)
        if overlap == 1.0:
            return self.propensity.copy()
        z = overlap * logit(self.propensity)
        b = _solve_shift(z, float(np.mean(self.propensity)), self.clip)
        return np.clip(expit(z + b), self.clip, 1 - self.clip)

    def sample(self, seed: int, estimand: str = "ate", *, overlap: float = 1.0,
               heterogeneity: float = 1.0, noise: float = 1.0,
               name: str | None = None) -> CausalDataset:
        """One dataset: the real ``X``, ``t ~ Bernoulli(e(x))``, ``y = y(t)`` from the arm
        models; ``mu0``/``mu1`` known, true effect = mean of ``mu1 - mu0`` over all units
        (``"ate"``) or the sampled treated (``"att"``).

        Both potential outcomes are drawn for every unit (the treatment only selects one), so
        the same seed gives the same noise under any knob setting. If the draw leaves an arm
        with fewer than 2 units, the treatment is drawn again from the same stream (counted in
        ``meta["redraws"]``).
        """
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            _fail(f"seed must be a non-negative integer; received {seed!r}")
        if estimand not in ("ate", "att"):
            _fail(f"estimand must be 'ate' or 'att'; received {estimand!r}")
        heterogeneity = _check_knob(heterogeneity, "heterogeneity", 0.0, 100.0, open_lo=False)
        noise = _check_knob(noise, "noise", 0.0, 100.0, open_lo=False)
        if self.outcome_kind == "binary" and (heterogeneity != 1.0 or noise != 1.0):
            _fail("heterogeneity and noise must stay 1 for a binary outcome (a draw is 0 or 1 "
                  f"and its mean a probability); received heterogeneity={heterogeneity}, "
                  f"noise={noise}")
        e = self.propensities(overlap)
        rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
        n = self.n
        t = (rng.random(n) < e).astype(np.int64)
        redraws = 0
        while min(int(t.sum()), n - int(t.sum())) < 2:
            if redraws >= 100:
                _fail(f"generator {self.name!r}: 100 treatment draws left an arm with fewer "
                      "than 2 units; use a smaller overlap setting")
            t = (rng.random(n) < e).astype(np.int64)
            redraws += 1
        y0 = self.arms[0].draw(rng)
        y1 = self.arms[1].draw(rng)
        mu0, mu1_fit = self.mu0, self.mu1
        if heterogeneity == 1.0:
            mu1 = mu1_fit.copy()
        else:
            tau = mu1_fit - mu0
            mu1 = mu0 + tau.mean() + heterogeneity * (tau - tau.mean())
        if noise != 1.0:
            y0 = mu0 + noise * (y0 - mu0)
            y1 = mu1 + noise * (y1 - mu1_fit)
        elif heterogeneity != 1.0:
            y1 = y1 + (mu1 - mu1_fit)  # as fitted, the draws are left untouched (exact 0/1)
        y = np.where(t == 1, y1, y0)
        diff = mu1 - mu0
        truth = float(np.mean(diff) if estimand == "ate" else np.mean(diff[t == 1]))
        meta = {"generator": "realistic", "table": self.name, "seed": int(seed),
                "estimand": estimand, "overlap": overlap, "heterogeneity": heterogeneity,
                "noise": noise, "propensity_clip": self.clip, "redraws": redraws,
                "n_treated": int(t.sum()), "n_control": int(n - t.sum()),
                "outcome_kind": self.outcome_kind,
                "learners": {"propensity": self.info.get("propensity", {}).get("learner"),
                             "arm0": self.arms[0].summary, "arm1": self.arms[1].summary}}
        if name is None:
            name = f"realistic-{self.name}{'-att' if estimand == 'att' else ''}-s{seed}"
        return CausalDataset(X=self.X.copy(), t=t, y=y, true_effect=truth, estimand=estimand,
                             name=name, mu0=mu0.copy(), mu1=mu1, meta=meta)


def _as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        bad = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c].dtype)
               and not pd.api.types.is_bool_dtype(X[c].dtype)]
        if bad:
            _fail(f"fit_realistic needs numeric covariates; columns {bad} are not numeric "
                  "(one-hot encode them first)")
        df = X.astype(np.float64).reset_index(drop=True)
        df.columns = [str(c) for c in df.columns]
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        df = pd.DataFrame(np.asarray(X, dtype=np.float64),
                          columns=[f"x{j}" for j in range(X.shape[1])])
    else:
        _fail("fit_realistic X must be a pandas DataFrame or a 2-d numpy array; received "
              f"{type(X).__name__}" + (f" of shape {X.shape}" if hasattr(X, "shape") else ""))
    if df.shape[1] < 1:
        _fail("fit_realistic X needs at least one column")
    if not np.all(np.isfinite(df.to_numpy())):
        _fail("fit_realistic X holds NaN or infinite values; impute them first")
    return df


def _vector(v, name: str, n: int) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (n,):
        _fail(f"fit_realistic {name} must have one value per row of X ({n}); "
              f"received shape {np.shape(v)}")
    if not np.all(np.isfinite(a)):
        _fail(f"fit_realistic {name} holds NaN or infinite values")
    return a


def fit_realistic(X, t, y, *, outcome: str = "auto", potential_outcomes=None,
                  propensity_clip: float = DEFAULT_PROPENSITY_CLIP, random_state: int = 0,
                  learners: tuple[str, ...] = LEARNERS, name: str = "custom"
                  ) -> RealisticGenerator:
    """Fit a :class:`RealisticGenerator` to a real table (see the module doc).

    Parameters
    ----------
    X : DataFrame or 2-d array of numeric covariates (kept as the generator's table).
    t : 0/1 treatment, both arms with at least 10 rows.
    y : observed outcome.
    outcome : ``"auto"`` (binary if y is 0/1; ``"nonnegative"`` if y >= 0 with at least 5%
        zeros; ``"continuous"`` otherwise) or one of those kinds.
    potential_outcomes : optional ``(y0, y1)`` observed for every row (Twins): each arm's model
        is then fitted on all rows with that arm's outcome.
    propensity_clip : fitted propensities are clipped to [clip, 1 - clip]; in [0, 0.1].
    random_state : seed of every learner and fold split (fitting is deterministic).
    learners : the candidate families cross-validated for every model, a non-empty subset of
        ``("linear", "boosting", "forest")`` (all by default).
    name : the generator's name (used in dataset names).
    """
    import time

    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    df = _as_frame(X)
    n = len(df)
    t = _vector(t, "t", n)
    if not np.all(np.isin(t, (0.0, 1.0))):
        _fail(f"fit_realistic t must be 0/1; received values {np.unique(t)[:5].tolist()}")
    t = t.astype(np.int64)
    n1 = int(t.sum())
    if min(n1, n - n1) < MIN_ARM:
        _fail(f"fit_realistic needs at least {MIN_ARM} rows per arm; received {n1} treated and "
              f"{n - n1} control")
    y = _vector(y, "y", n)
    if outcome not in OUTCOME_KINDS:
        _fail(f"outcome must be one of {list(OUTCOME_KINDS)}; received {outcome!r}")
    if (isinstance(propensity_clip, bool) or not isinstance(propensity_clip, numbers.Real)
            or not 0 <= propensity_clip <= 0.1):
        _fail(f"propensity_clip must be a number in [0, 0.1]; received {propensity_clip!r}")
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        _fail(f"random_state must be an integer; received {random_state!r}")
    seed = int(random_state)
    if (not isinstance(learners, (tuple, list)) or not learners
            or any(m not in LEARNERS for m in learners)):
        _fail(f"learners must be a non-empty subset of {list(LEARNERS)}; received {learners!r}")
    learners = tuple(m for m in LEARNERS if m in learners)
    if potential_outcomes is not None:
        if not isinstance(potential_outcomes, (tuple, list)) or len(potential_outcomes) != 2:
            _fail("potential_outcomes must be a pair (y0, y1)")
        ypot = [_vector(v, f"potential_outcomes[{a}]", n) for a, v in
                enumerate(potential_outcomes)]
        if not np.allclose(np.where(t == 1, ypot[1], ypot[0]), y):
            _fail("potential_outcomes disagree with y: y must equal y1 where t = 1, y0 elsewhere")
    kind = _auto_kind(y if potential_outcomes is None else np.concatenate(ypot)) \
        if outcome == "auto" else outcome
    if kind == "binary" and not np.all(np.isin(y, (0.0, 1.0))):
        _fail("outcome='binary' needs y in {0, 1}")
    if kind == "nonnegative" and (y.min() < 0 or np.mean(y > 0) == 0):
        _fail("outcome='nonnegative' needs y >= 0 with some positive values")
    A = df.to_numpy(dtype=np.float64)
    # one thread: boosting's OpenMP threads spin against each other on a shared machine (a
    # 747-row fit took 12-22 s with 2 threads under load, 0.8 s with one)
    with threadpool_limits(limits=1):
        gen = _fit(df, A, t, y, kind, potential_outcomes is not None and ypot, propensity_clip,
                   seed, learners, name)
    gen.info["seconds"] = round(time.perf_counter() - start, 2)
    return gen


def _fit(df, A, t, y, kind, ypot, propensity_clip, seed, learners, name) -> RealisticGenerator:
    n = len(t)
    sel_e = select("classification", A, t, seed, learners=learners)
    e_fit = sel_e.predict(A)
    clip = float(propensity_clip)
    e = np.clip(e_fit, clip, 1 - clip)
    info = {"propensity": {**_part(sel_e), "clipped_share": float(np.mean(e != e_fit)),
                           "clipping_added_treated": float(np.sum(e - e_fit))}}

    arms = []
    for a in (0, 1):
        rows = np.ones(n, bool) if ypot else t == a
        ya = ypot[a] if ypot else y[t == a]
        Xa = A[rows]
        if kind == "binary":
            arm, _ = _fit_binary(Xa, ya, A, seed, learners)
        elif kind == "continuous":
            arm, _ = _fit_continuous(Xa, ya, A, rows, seed, learners)
        else:
            if np.sum(ya > 0) < MIN_ARM:
                _fail(f"arm t={a} has {int(np.sum(ya > 0))} positive outcomes; the "
                      f"nonnegative hurdle needs at least {MIN_ARM}")
            arm, _ = _fit_nonnegative(Xa, ya, A, seed, learners)
        arms.append(arm)
    info["outcome_kind"] = kind
    info["candidates"] = list(learners)
    info["potential_outcomes"] = bool(ypot)
    return RealisticGenerator(name=name, X=df, t_real=t, y_real=y, propensity=e,
                              arms=(arms[0], arms[1]), outcome_kind=kind, clip=clip, info=info)
