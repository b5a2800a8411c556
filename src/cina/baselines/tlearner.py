"""The T-learner: one outcome regression per arm, averaged over the estimand's population."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from .._validation import ValidatedData
from ..base import EffectEstimator
from ..errors import CInAValidationError
from ..results import EffectResult
from ._common import check_int, learner_name, make_result, seeded_clone

__all__ = ["TLearner"]


class TLearner(EffectEstimator):
    """T-learner (two-model plug-in): mu_a(x) = E[y | x, t=a] fitted on arm a alone.

    Effect: the mean of mu1_hat(x_i) - mu0_hat(x_i) over the whole sample (ATE) or over the
    treated (ATT). Default learner: scikit-learn ``HistGradientBoostingRegressor`` with its
    default settings and ``random_state`` (a fresh clone per arm); raw covariates.

    Standard error: none by default (``n_bootstrap=0``, ``se=None``, interval NaN). The
    plug-in inherits the regularisation bias of the outcome models at first order, which no
    variance estimate captures, so a normal interval around it would not be honest. With
    ``n_bootstrap=B > 0`` the se is the standard deviation (ddof=1) of B nonparametric
    bootstrap replicates (units resampled with replacement within each arm, both models refitted,
    rng seeded by ``random_state``): it measures the estimator's variability only, and costs
    2 B extra fits.

    Parameters
    ----------
    estimand : "ate" or "att".
    learner : a scikit-learn regressor; None = HistGradientBoostingRegressor().
    n_bootstrap : number of bootstrap replicates for the se (0 = no se).
    random_state : seed of the learners whose ``random_state`` is None and of the bootstrap.
    """

    method_name = "tlearner"
    _supports_att = True
    _is_weighting = False

    def __init__(self, estimand: str = "ate", learner=None, n_bootstrap: int = 0,
                 random_state: int = 0):
        self.estimand = estimand
        self.learner = learner
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    def _effect(self, learner, X, t, y) -> float:
        m0 = seeded_clone(learner, self.random_state).fit(X[t == 0], y[t == 0])
        m1 = seeded_clone(learner, self.random_state).fit(X[t == 1], y[t == 1])
        target = X if self.estimand == "ate" else X[t == 1]
        return float(np.mean(m1.predict(target) - m0.predict(target)))

    def _fit_validated(self, data: ValidatedData) -> EffectResult:
        n_boot = check_int(self.n_bootstrap, "n_bootstrap", 0)
        if n_boot == 1:
            raise CInAValidationError("n_bootstrap must be 0 (no se) or at least 2; received 1")
        learner = (HistGradientBoostingRegressor(random_state=self.random_state)
                   if self.learner is None else self.learner)
        if not (hasattr(learner, "fit") and hasattr(learner, "predict")):
            raise CInAValidationError(
                f"learner must be a scikit-learn regressor; received {learner!r}")
        X, t, y = data.X, data.t, data.y
        estimate = self._effect(learner, X, t, y)
        se = None
        info = {"learner": learner_name(seeded_clone(learner, self.random_state)),
                "n_bootstrap": n_boot}
        if n_boot:
            rng = np.random.default_rng(self.random_state)
            idx1, idx0 = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
            reps = np.empty(n_boot)
            for b in range(n_boot):
                rows = np.concatenate([rng.choice(idx1, len(idx1)), rng.choice(idx0, len(idx0))])
                reps[b] = self._effect(learner, X[rows], t[rows], y[rows])
            se = float(np.std(reps, ddof=1))
            info["se_method"] = "bootstrap (within-arm resampling)"
        else:
            info["se_method"] = "none (plug-in bias not covered by any variance estimate)"
        return make_result(data, estimate, se, self.estimand, self.method_name, None, info)
