"""Cross-fitting: folds and out-of-fold nuisance predictions, shared by CInA and the baselines.

The outcome regressions g_a(x) = E[y | x, t=a] and the propensity m(x) = P(t=1 | x) are fitted
on K-1 folds and predicted on the held-out fold, so that every unit's nuisance predictions come
from models that never saw it (the sample splitting of double machine learning; DoubleML's
``_dml_cv_predict``). Used by the augmented CInA estimate (:mod:`cina.effect`), AIPW and DML.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from ._validation import check_int
from .errors import CInAValidationError

__all__ = ["cross_fit_folds", "cross_fit_outcomes", "cross_fit_propensity",
           "cross_fit_nuisances", "clip_propensity", "seeded_clone"]


def cross_fit_folds(t: np.ndarray, n_folds: int, random_state
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds stratified on the treatment (as DoubleML's sample splitting), shuffled with
    ``random_state``: a list of sorted (train, test) index arrays whose tests partition the units.
    """
    t = np.asarray(t)
    n_folds = check_int(n_folds, "n_folds", 2)
    smallest = int(min((t == 1).sum(), (t == 0).sum()))
    if smallest < n_folds:
        raise CInAValidationError(
            f"n_folds={n_folds} cross-fitting needs at least {n_folds} units in each arm; the "
            f"smallest arm has {smallest}. Use fewer folds")
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    return [(np.sort(tr), np.sort(te)) for tr, te in skf.split(np.zeros((len(t), 1)), t)]


def seeded_clone(estimator, seed):
    """An unfitted clone of ``estimator``; a ``random_state`` left at None is set to ``seed``."""
    est = clone(estimator)
    params = est.get_params(deep=False)
    if "random_state" in params and params["random_state"] is None:
        est.set_params(random_state=seed)
    return est


def clip_propensity(e: np.ndarray, clip: float | None) -> np.ndarray:
    """Propensities clipped to [clip, 1 - clip] (unchanged when ``clip`` is None or 0)."""
    if not clip:
        return np.asarray(e, dtype=float).copy()
    return np.clip(e, clip, 1.0 - clip)


def _predict_proba1(model, X: np.ndarray) -> np.ndarray:
    if not hasattr(model, "predict_proba"):
        raise CInAValidationError(
            f"the propensity learner {type(model).__name__} has no predict_proba; pass a "
            "scikit-learn classifier")
    proba = model.predict_proba(X)
    classes = list(getattr(model, "classes_", [0, 1]))
    return proba[:, classes.index(1)]


def cross_fit_outcomes(X: np.ndarray, t: np.ndarray, y: np.ndarray, folds, outcome_learner,
                       seed) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions g0(x) = E[y | x, t=0] and g1(x) = E[y | x, t=1]: for each fold
    the learner is fitted separately on the training units of each arm (a fresh clone whose
    ``random_state`` left at None becomes ``seed``) and predicts the fold's units."""
    n = len(y)
    g0, g1 = np.full(n, np.nan), np.full(n, np.nan)
    for train, test in folds:
        t_tr = t[train]
        for arm, g in ((0, g0), (1, g1)):
            idx = train[t_tr == arm]
            model = seeded_clone(outcome_learner, seed).fit(X[idx], y[idx])
            g[test] = model.predict(X[test])
    if not (np.isfinite(g0).all() and np.isfinite(g1).all()):
        raise CInAValidationError("an outcome learner returned non-finite predictions")
    return g0, g1


def cross_fit_propensity(X: np.ndarray, t: np.ndarray, folds, propensity_learner, seed
                         ) -> np.ndarray:
    """Out-of-fold m(x) = P(t=1 | x): the learner fitted on all training units of each fold."""
    m = np.full(len(t), np.nan)
    for train, test in folds:
        prop = seeded_clone(propensity_learner, seed).fit(X[train], t[train])
        m[test] = _predict_proba1(prop, X[test])
    if not np.isfinite(m).all():
        raise CInAValidationError("a nuisance learner returned non-finite predictions")
    return m


def cross_fit_nuisances(X: np.ndarray, t: np.ndarray, y: np.ndarray, folds, outcome_learner,
                        propensity_learner, seed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold predictions g0(x) = E[y | x, t=0], g1(x) = E[y | x, t=1] and m(x) = P(t=1 | x).

    For each fold the outcome learner is fitted separately on the training units of each arm
    and the propensity learner on all training units; each fit is a fresh clone (a
    ``random_state`` left at None becomes ``seed``), so every fold's learner starts from the same
    seed, exactly as DoubleML's ``_dml_cv_predict`` does.
    """
    g0, g1 = cross_fit_outcomes(X, t, y, folds, outcome_learner, seed)
    m = cross_fit_propensity(X, t, folds, propensity_learner, seed)
    return g0, g1, m
