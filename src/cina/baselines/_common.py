"""Helpers shared by the baselines: setting checks, learner names, the doubly robust (IRM)
score used by AIPW and DML, and the results constructor. Cross-fitting (folds, out-of-fold
nuisances, propensity clipping, seeded clones) lives in :mod:`cina.crossfit`, shared with CInA;
per-arm normalisation in :mod:`cina.rules`. Both are re-exported here for old imports.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import ValidatedData, check_int
from ..base import EffectEstimator
from ..crossfit import (
    _predict_proba1,  # noqa: F401 - re-exported for old imports
    clip_propensity,
    cross_fit_folds,
    cross_fit_nuisances,
    cross_fit_outcomes,
    seeded_clone,
)
from ..errors import CInAValidationError
from ..results import EffectResult
from ..rules import normalize_per_arm

__all__ = [
    "check_int",
    "check_clip",
    "check_choice",
    "cross_fit_folds",
    "clip_propensity",
    "seeded_clone",
    "learner_name",
    "normalize_per_arm",
    "cross_fit_nuisances",
    "cross_fit_outcomes",
    "irm_score",
    "make_result",
    "CrossFittedIRM",
]


def check_clip(clip, name: str = "clip") -> float | None:
    """A propensity clipping level: None (no clipping) or a number in [0, 0.5)."""
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not 0 <= clip < 0.5:
        raise CInAValidationError(
            f"{name} must be None or a number in [0, 0.5); received {clip!r}")
    return float(clip)


def check_choice(value, name: str, choices: tuple) -> str:
    if value not in choices:
        raise CInAValidationError(f"{name} must be one of {list(choices)}; received {value!r}")
    return value


def learner_name(estimator) -> str:
    """A one-line description of a learner: its class and the settings that differ from defaults."""
    return " ".join(repr(estimator).split())


def irm_score(y: np.ndarray, t: np.ndarray, g0: np.ndarray, g1: np.ndarray, m: np.ndarray,
              estimand: str, normalize_ipw: bool = False) -> tuple[float, float, np.ndarray]:
    """The doubly robust (IRM) estimate, its standard error and the per-unit score.

    Exactly DoubleML's ``DoubleMLIRM`` linear score psi = psi_a * theta + psi_b with
    (``m`` already clipped; with ``normalize_ipw`` it is first replaced by DoubleML's Hajek
    adjustment m1 = m mean(t/m) for treated, 1 - (1 - m) mean((1-t)/(1-m)) for controls):

    * ATE:  psi_b = g1 - g0 + t (y - g1) / m - (1 - t)(y - g0) / (1 - m),  psi_a = -1;
    * ATT:  psi_b = [t (g1 - g0) + t (y - g1) - m (1 - t)(y - g0) / (1 - m)] / p,
      psi_a = -t / p, p = mean(t).

    theta = -mean(psi_b) / mean(psi_a), se = sqrt(mean(psi^2) / mean(psi_a)^2 / n).
    """
    t = t.astype(float)
    if normalize_ipw:
        m = t * m * np.mean(t / m) + (1 - t) * (1 - (1 - m) * np.mean((1 - t) / (1 - m)))
    u0, u1 = y - g0, y - g1
    if estimand == "ate":
        w = np.ones_like(y)
        w_bar = w
    else:
        p = float(np.mean(t))
        w = t / p
        w_bar = m / p
    psi_b = w * (g1 - g0) + w_bar * (t * u1 / m - (1 - t) * u0 / (1 - m))
    psi_a = -w / np.mean(w)
    theta = float(-np.mean(psi_b) / np.mean(psi_a))
    psi = psi_a * theta + psi_b
    n = len(y)
    se = float(np.sqrt(np.mean(psi**2) / np.mean(psi_a) ** 2 / n))
    return theta, se, psi


def make_result(data, estimate: float, se: float | None, estimand: str, method: str,
                weights: np.ndarray | None = None, info: dict | None = None) -> EffectResult:
    return EffectResult(
        estimate=float(estimate), se=None if se is None else float(se), estimand=estimand,
        method=method, n=data.n, n_treated=data.n_treated, n_control=data.n_control,
        seconds=0.0, weights=weights, t=None if weights is None else data.t.copy(),
        info=info or {})


class CrossFittedIRM(EffectEstimator):
    """Shared machinery of :class:`~cina.baselines.AIPW` and :class:`~cina.baselines.DML`:
    K-fold cross-fitted nuisances (:func:`cross_fit_nuisances`), clipped propensities and the
    IRM score (:func:`irm_score`). Subclasses set the default learners and ``method_name``.
    """

    _supports_att = True
    _is_weighting = False

    def __init__(self, estimand: str = "ate", n_folds: int = 5, outcome_learner=None,
                 propensity_learner=None, clip: float | None = 0.01,
                 normalize_ipw: bool = False, random_state: int = 0):
        self.estimand = estimand
        self.n_folds = n_folds
        self.outcome_learner = outcome_learner
        self.propensity_learner = propensity_learner
        self.clip = clip
        self.normalize_ipw = normalize_ipw
        self.random_state = random_state

    def _default_learners(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_validated(self, data: ValidatedData) -> EffectResult:
        clip = check_clip(self.clip)
        if not isinstance(self.normalize_ipw, bool):
            raise CInAValidationError(
                f"normalize_ipw must be True or False; received {self.normalize_ipw!r}")
        default_g, default_m = self._default_learners()
        g_learner = default_g if self.outcome_learner is None else self.outcome_learner
        m_learner = default_m if self.propensity_learner is None else self.propensity_learner
        for name, est in (("outcome_learner", g_learner), ("propensity_learner", m_learner)):
            if not (hasattr(est, "fit") and hasattr(est, "get_params")):
                raise CInAValidationError(
                    f"{name} must be a scikit-learn estimator; received {est!r}")
        folds = cross_fit_folds(data.t, self.n_folds, self.random_state)
        g0, g1, m_raw = cross_fit_nuisances(data.X, data.t, data.y, folds, g_learner, m_learner,
                                            self.random_state)
        m = clip_propensity(m_raw, clip)
        estimate, se, _ = irm_score(data.y, data.t, g0, g1, m, self.estimand, self.normalize_ipw)
        info = {
            "n_folds": len(folds),
            "fold_seed": self.random_state,
            "folds": "StratifiedKFold on t, shuffle=True",
            "outcome_learner": learner_name(seeded_clone(g_learner, self.random_state)),
            "propensity_learner": learner_name(seeded_clone(m_learner, self.random_state)),
            "score": "ATE" if self.estimand == "ate" else "ATTE",
            "clip": clip,
            "normalize_ipw": self.normalize_ipw,
            "propensity": m,
            "propensity_min": float(m_raw.min()),
            "propensity_max": float(m_raw.max()),
            "n_clipped": int(np.sum(m != m_raw)),
            "se_method": "influence function of the cross-fitted score",
        }
        return make_result(data, estimate, se, self.estimand, self.method_name, None, info)
