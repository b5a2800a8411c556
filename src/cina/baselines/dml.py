"""Double machine learning for the interactive regression model (DoubleML's IRM)."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from ._common import CrossFittedIRM

__all__ = ["DML"]


class DML(CrossFittedIRM):
    """Cross-fitted double machine learning, interactive regression model (IRM).

    A re-implementation with scikit-learn only of DoubleML's ``DoubleMLIRM`` (0.11) with
    ``n_rep=1``: the same sample splitting (``n_folds`` folds stratified on the treatment;
    here ``StratifiedKFold(shuffle=True, random_state=random_state)``), the same nuisances
    (ml_g fitted per arm on the training units of that arm, ml_m on all training units, a fresh
    clone per fold), the same propensity clipping (DoubleML's ``clipping_threshold=1e-2``:
    m in [0.01, 0.99]), ``normalize_ipw=False`` by default as DoubleML, and the same linear
    scores "ATE" and "ATTE" with theta = -mean(psi_b) / mean(psi_a) and
    se = sqrt(mean(psi^2) / mean(psi_a)^2 / n) (see :func:`cina.baselines._common.irm_score`).
    Given the same folds and learners, estimates equal DoubleML's to rounding (tests check it).

    Default learners (the reference anchors' ``doubleml_irm_rf``, ``src/cina/bench/anchors.toml``): scikit-learn
    ``RandomForestRegressor(n_estimators=100, random_state=random_state, n_jobs=1)`` for ml_g and
    ``RandomForestClassifier(n_estimators=100, random_state=random_state, n_jobs=1)`` for ml_m,
    otherwise scikit-learn's defaults (fully grown trees; max_features 1.0 for the regressor,
    "sqrt" for the classifier). The anchors do not record their forests' hyper-parameters. The raw
    covariates are given to the learners.

    Parameters
    ----------
    estimand : "ate" (DoubleML score "ATE") or "att" (score "ATTE").
    n_folds : number of cross-fitting folds (default 5); each arm needs >= n_folds units.
    outcome_learner : scikit-learn regressor for ml_g; None = the default forest.
    propensity_learner : scikit-learn classifier for ml_m; None = the default forest.
    clip : propensity clipping level (default 0.01); None for none.
    normalize_ipw : DoubleML's ``normalize_ipw`` (default False).
    random_state : seed of the fold split and of every learner whose ``random_state`` is None.
    """

    method_name = "dml"

    def _default_learners(self):
        return (RandomForestRegressor(n_estimators=100, random_state=self.random_state, n_jobs=1),
                RandomForestClassifier(n_estimators=100, random_state=self.random_state,
                                       n_jobs=1))
