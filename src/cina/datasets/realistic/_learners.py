"""Candidate learners of the realistic generator and their selection by cross-validation.

Three families per task, each deliberately regularised so that a full-data fit does not simply
memorise the table: a linear model (ridge / L2 logistic on standardised covariates), histogram
gradient boosting and a random forest. :func:`select` fits every candidate on K folds, scores the
out-of-fold predictions (squared error for a regression, log loss for a classification), keeps
the best and refits it on all rows. Everything is seeded, so a selection is deterministic.

Linear candidates clip every covariate to the range seen in their training rows before
predicting (:class:`RangeClip`): a surface fitted on one arm is evaluated on the whole table,
and a linear fit must not be extrapolated beyond the data it saw (trees are flat outside their
data anyway). docs/realistic.md section 2 gives the reasons and the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["RangeClip", "Selection", "candidates", "select", "n_folds_for", "PROB_EPS",
           "LEARNERS"]

LEARNERS = ("linear", "boosting", "forest")
"""The candidate families, in the order that breaks ties in the cross-validated loss."""

PROB_EPS = 1e-6
"""Probabilities are kept in [PROB_EPS, 1 - PROB_EPS] when scored (log loss stays finite)."""

FOREST_MAX_SAMPLES = 2000
"""Bootstrap size cap of the forests (keeps a 16,000-row table at a few seconds per fit)."""


class RangeClip(TransformerMixin, BaseEstimator):
    """Clip each column to its [min, max] over the rows seen by ``fit``."""

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.low_ = X.min(axis=0)
        self.high_ = X.max(axis=0)
        return self

    def transform(self, X):
        return np.clip(np.asarray(X, dtype=np.float64), self.low_, self.high_)


def _max_samples(n: int) -> float | None:
    return None if n <= FOREST_MAX_SAMPLES else FOREST_MAX_SAMPLES / n


def _max_features(d: int) -> float | str:
    """Half the columns of a narrow table, sqrt(d) of a wide one (speed: ACIC has 82)."""
    return 0.5 if d <= 20 else "sqrt"


def candidates(task: str, n: int, seed: int, d: int = 1) -> dict[str, BaseEstimator]:
    """The candidate learners of a ``task`` ("regression" or "classification") for an
    ``n`` x ``d`` table."""
    if task == "regression":
        return {
            "linear": make_pipeline(RangeClip(), StandardScaler(),
                                    RidgeCV(alphas=np.logspace(-3, 3, 13))),
            "boosting": HistGradientBoostingRegressor(
                max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
                l2_regularization=1.0, early_stopping=False, random_state=seed),
            "forest": RandomForestRegressor(
                n_estimators=100, min_samples_leaf=5, max_features=_max_features(d),
                max_samples=_max_samples(n), random_state=seed, n_jobs=1),
        }
    if task == "classification":
        return {
            "linear": make_pipeline(RangeClip(), StandardScaler(),
                                    LogisticRegression(C=1.0, max_iter=5000)),
            "boosting": HistGradientBoostingClassifier(
                max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
                l2_regularization=1.0, early_stopping=False, random_state=seed),
            "forest": RandomForestClassifier(
                n_estimators=100, min_samples_leaf=10, max_features=_max_features(d),
                max_samples=_max_samples(n), random_state=seed, n_jobs=1),
        }
    raise ValueError(f"task must be 'regression' or 'classification'; received {task!r}")


def n_folds_for(n: int) -> int:
    """Cross-validation folds: 5 up to 2,000 rows, 3 above (the large tables are slow)."""
    return 5 if n <= 2000 else 3


@dataclass
class Selection:
    """The chosen learner of one task, refitted on every row.

    ``scores`` holds each candidate's cross-validated loss (mean squared error or log loss),
    ``baseline`` the loss of the best constant prediction, ``oof`` the chosen learner's
    out-of-fold predictions (probabilities of class 1 for a classification).
    """

    task: str
    name: str
    model: object
    scores: dict[str, float]
    baseline: float
    oof: np.ndarray = field(repr=False)

    @property
    def loss(self) -> float:
        return self.scores[self.name]

    @property
    def r2(self) -> float:
        """1 - loss / constant loss (out of fold): R^2 of a regression, the log-loss
        (McFadden) pseudo-R^2 of a classification."""
        return float(1.0 - self.loss / self.baseline) if self.baseline > 0 else 0.0

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return _proba(self.model, X)
        return np.asarray(self.model.predict(X), dtype=np.float64)


class _Constant:
    """A fitted constant (the only model possible when a class is too rare to cross-validate)."""

    def __init__(self, value: float):
        self.value = float(value)

    def predict(self, X):
        return np.full(len(X), self.value)

    def predict_proba(self, X):
        return np.column_stack([1.0 - self.predict(X), self.predict(X)])


def _proba(model, X: np.ndarray) -> np.ndarray:
    p = model.predict_proba(X)
    classes = list(getattr(model, "classes_", [0, 1]))
    return np.asarray(p[:, classes.index(1)] if 1 in classes else np.zeros(len(X)), float)


def _loss(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    if task == "regression":
        return float(np.mean((y - pred) ** 2))
    p = np.clip(pred, PROB_EPS, 1.0 - PROB_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def select(task: str, X: np.ndarray, y: np.ndarray, seed: int = 0,
           n_folds: int | None = None, learners: tuple[str, ...] = LEARNERS) -> Selection:
    """Cross-validate the candidates of ``task`` (those named in ``learners``) on (X, y),
    refit the best on all rows."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    k = n_folds or n_folds_for(n)
    if task == "classification":
        y = (y > 0.5).astype(np.float64)
        rate = float(y.mean())
        baseline = _loss(task, y, np.full(n, rate))
        if min(y.sum(), n - y.sum()) < max(k, 2):
            # too few of one class to cross-validate a learner: the constant is all we can fit
            return Selection(task, "constant", _Constant(rate), {"constant": baseline},
                             baseline, np.full(n, rate))
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        baseline = float(np.var(y))
        if n < 2 * k:
            return Selection(task, "constant", _Constant(y.mean()), {"constant": baseline},
                             baseline, np.full(n, y.mean()))
        splitter = KFold(k, shuffle=True, random_state=seed)
    folds = list(splitter.split(X, y))
    pool = {k: m for k, m in candidates(task, n, seed, X.shape[1]).items() if k in learners}
    scores: dict[str, float] = {}
    oofs: dict[str, np.ndarray] = {}
    for name, learner in pool.items():
        oof = np.empty(n)
        for train, test in folds:
            model = clone(learner).fit(X[train], y[train])
            oof[test] = (_proba(model, X[test]) if task == "classification"
                         else model.predict(X[test]))
        scores[name] = _loss(task, y, oof)
        oofs[name] = oof
    best = min(scores, key=lambda m: (scores[m], list(pool).index(m)))
    model = clone(pool[best]).fit(X, y)
    return Selection(task, best, model, scores, baseline, oofs[best])
