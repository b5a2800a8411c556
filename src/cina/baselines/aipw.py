"""Augmented inverse probability weighting (doubly robust) with cross-fitted boosting."""

from __future__ import annotations

from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from ._common import CrossFittedIRM

__all__ = ["AIPW"]


class AIPW(CrossFittedIRM):
    """Augmented IPW (doubly robust) estimator with K-fold cross-fitting.

    Nuisances, fitted out of fold (``n_folds`` folds stratified on the treatment, shuffled with
    ``random_state``): an outcome regression per arm, g_a(x) = E[y | x, t=a] (fitted on the
    training units of arm a), and the propensity m(x) = P(t=1 | x) (fitted on all training
    units). Defaults, as the reference anchors' ``aipw_hgb`` (``src/cina/bench/anchors.toml``): scikit-learn's
    ``HistGradientBoostingRegressor`` and ``HistGradientBoostingClassifier`` with their default
    settings (100 iterations, learning rate 0.1, 31 leaves, early stopping only above 10 000
    training units) and ``random_state``. The raw covariates are given to the learners.
    Propensities are clipped to [clip, 1 - clip] (default 0.01, as DoubleML). With these
    defaults the estimator reproduces the anchors' ``aipw_hgb`` (IHDP MAE 0.533 +- 0.053 over the
    50 realizations; LaLonde PSID ATE -11928, ATT 1825), run with one OpenMP thread.

    Scores (theta solves mean(psi) = 0):

    * ATE: psi = g1 - g0 + t (y - g1) / m - (1 - t)(y - g0) / (1 - m) - theta;
    * ATT: psi = [t (y - g0) - (1 - t) m (y - g0) / (1 - m) - t theta] / p, p = mean(t).

    Standard error sqrt(mean(psi^2) / n) from the influence function. This is the same score as
    :class:`~cina.baselines.DML`; the two differ only in their default learners.

    Parameters
    ----------
    estimand : "ate" or "att".
    n_folds : number of cross-fitting folds (default 5); each arm needs >= n_folds units.
    outcome_learner : a scikit-learn regressor (cloned per fold and arm); None = the default.
    propensity_learner : a scikit-learn classifier with predict_proba; None = the default.
    clip : None or a level in [0, 0.5) for the propensities.
    normalize_ipw : DoubleML's Hajek-type normalisation of the inverse propensities.
    random_state : seed of the fold split and of every learner whose ``random_state`` is None.

    ``info``: ``n_folds``, ``fold_seed``, ``outcome_learner``, ``propensity_learner``,
    ``score``, ``clip``, ``propensity`` (out-of-fold, clipped), ``propensity_min``/``_max``
    (before clipping), ``n_clipped``.
    """

    method_name = "aipw"

    def _default_learners(self):
        return (HistGradientBoostingRegressor(random_state=self.random_state),
                HistGradientBoostingClassifier(random_state=self.random_state))
