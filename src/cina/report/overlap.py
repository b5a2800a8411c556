"""Overlap diagnostic of the report: a cross-validated propensity model, for display only.

The balancing weights never use a propensity model; the report fits one to show the reader how
far apart the arms are. Two learners are cross-fitted (5 folds, stratified on t): a logistic
regression on standardised covariates and histogram gradient boosting; the one with the smaller
out-of-fold log-loss is shown. The warning follows the estimand: for the ATE every unit needs
counterparts in the other arm, so units with an estimated propensity outside [0.05, 0.95] count;
for the ATT only treated units with a propensity above 0.95 (treated units unlike any control)
count. It is raised when they are at least 5% of the target population (docs/report.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._threads import fit_threads
from ..diagnostics import OVERLAP_EXTREME as EXTREME  # one definition of the overlap rule
from ..diagnostics import OVERLAP_WARN_SHARE as WARN_SHARE

__all__ = ["OverlapDiagnostic", "overlap_diagnostic", "EXTREME", "WARN_SHARE"]


@dataclass
class OverlapDiagnostic:
    propensity: np.ndarray  # out-of-fold estimated P(t = 1 | x)
    model: str
    log_loss: dict[str, float]
    auc: float
    extreme_share: float  # share of the target population in the extreme region
    extreme_count: int
    target: str  # "all units" or "treated units"
    warning: str | None


def overlap_diagnostic(X: np.ndarray, t: np.ndarray, estimand: str, *, n_folds: int = 5,
                       random_state: int = 0) -> OverlapDiagnostic:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = max(2, min(n_folds, int(t.sum()), int(len(t) - t.sum())))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    learners = {
        "logistic regression (standardised covariates)": make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000)),
        "gradient boosting (HistGradientBoosting)": HistGradientBoostingClassifier(
            random_state=random_state),
    }
    preds, losses = {}, {}
    with fit_threads(None, len(t)):  # the fits' thread policy (cina._threads)
        for name, learner in learners.items():
            p = cross_val_predict(learner, X, t, cv=cv, method="predict_proba")[:, 1]
            p = np.clip(p, 1e-6, 1 - 1e-6)
            preds[name] = p
            losses[name] = float(log_loss(t, p))
    best = min(losses, key=losses.get)
    e = preds[best]
    auc = float(roc_auc_score(t, e))
    if estimand == "att":
        mask = t == 1
        extreme = e[mask] > 1 - EXTREME
        target = "treated units"
        region = f"above {1 - EXTREME:g}"
    else:
        mask = np.ones(len(t), bool)
        extreme = (e < EXTREME) | (e > 1 - EXTREME)
        target = "all units"
        region = f"outside [{EXTREME:g}, {1 - EXTREME:g}]"
    share = float(extreme.mean()) if mask.any() else 0.0
    count = int(extreme.sum())
    warning = None
    if share >= WARN_SHARE:
        warning = (f"Limited overlap: {share:.1%} of the {target} ({count} of {int(mask.sum())}) "
                   f"have an estimated propensity {region}. Few units of the other arm resemble "
                   "them, so the weights lean on a few units and the estimate extrapolates there.")
    return OverlapDiagnostic(propensity=e, model=best, log_loss=losses, auc=auc,
                             extreme_share=share, extreme_count=count, target=target,
                             warning=warning)
