"""Tests of the baselines (cina.baselines) and of the method registry (cina.registry)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from cina import CInA
from cina.baselines import AIPW, DML, IPW, EntropyBalancing, NaiveDifference, TLearner
from cina.baselines._common import irm_score
from cina.crossfit import cross_fit_folds
from cina.errors import CInAValidationError, ConvergenceError, OverlapWarning
from cina.registry import available_methods, estimator_class, make_estimator


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # gradient boosting uses OpenMP; on a shared 2-core machine extra threads only slow it down
    with threadpool_limits(limits=1):
        yield


def simulate(seed: int, n: int = 400, d: int = 3, hetero: bool = True):
    """Confounded data with good overlap: e(x) = expit(0.6 x0 - 0.5 x1) in about [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    e = expit(0.6 * X[:, 0] - 0.5 * X[:, 1])
    t = (rng.random(n) < e).astype(np.int64)
    tau = 2.0 + (0.5 * X[:, 0] if hetero else 0.0)
    y = 1.0 + X[:, 0] + 0.5 * X[:, 1] + tau * t + rng.normal(size=n)
    return X, t, y, tau


def fast(name: str, **params):
    """Estimators with small learners so that the unit tests stay quick."""
    if name == "aipw":
        params.setdefault("outcome_learner", HistGradientBoostingRegressor(max_iter=20))
        params.setdefault("propensity_learner", HistGradientBoostingClassifier(max_iter=20))
        params.setdefault("n_folds", 3)
    elif name == "dml":
        params.setdefault("outcome_learner", RandomForestRegressor(n_estimators=10,
                                                                   min_samples_leaf=5))
        params.setdefault("propensity_learner", RandomForestClassifier(n_estimators=10,
                                                                       min_samples_leaf=5))
        params.setdefault("n_folds", 3)
    elif name == "tlearner":
        params.setdefault("learner", HistGradientBoostingRegressor(max_iter=20))
        params.setdefault("n_bootstrap", 3)
    return make_estimator(name, **params)


BASELINES = ["naive", "ipw", "aipw", "dml", "tlearner", "entropy"]
WEIGHTING = ["naive", "ipw", "entropy"]


# --- unit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_fit_returns_self_and_sets_attributes(name):
    X, t, y, _ = simulate(1, n=200)
    est = fast(name)
    assert est.fit(X, t, y) is est
    r = est.result_
    assert r.method == name == est.method_name
    assert r.estimand == "ate" and est.ate_ == est.effect_ == r.estimate
    assert (r.n, r.n_treated, r.n_control) == (200, int(t.sum()), int((t == 0).sum()))
    assert est.n_features_in_ == 3
    assert np.isfinite(est.effect_) and est.se_ > 0
    lo, hi = est.effect_interval()
    assert lo < est.effect_ < hi
    assert est.ate_interval(0.1) == pytest.approx(r.interval(0.1))
    with pytest.raises(AttributeError, match="fitted with estimand=.ate."):
        _ = est.att_
    assert hasattr(est, "weights_") == (name in WEIGHTING)
    assert isinstance(r.info, dict) and r.info


@pytest.mark.parametrize("name", BASELINES)
def test_att_is_supported(name):
    X, t, y, _ = simulate(2, n=200)
    est = fast(name, estimand="att").fit(X, t, y)
    assert est.result_.estimand == "att"
    assert est.att_ == est.effect_
    lo, hi = est.att_interval()
    assert lo < est.att_ < hi
    with pytest.raises(CInAValidationError, match="ate_interval|att_interval"):
        est.ate_interval()


@pytest.mark.parametrize("name", BASELINES)
def test_unsupported_estimand_raises(name):
    X, t, y, _ = simulate(3, n=60)
    with pytest.raises(CInAValidationError, match="estimand must be 'ate' or 'att'"):
        fast(name, estimand="atc").fit(X, t, y)


@pytest.mark.parametrize("est, match", [
    (IPW(C=-1.0), "C must be a positive"),
    (IPW(clip=0.7), "clip must be None or a number"),
    (AIPW(n_folds=1), "n_folds must be an integer >= 2"),
    (DML(clip=0.5), "clip must be None or a number"),
    (DML(normalize_ipw="yes"), "normalize_ipw must be True or False"),
    (DML(outcome_learner="forest"), "outcome_learner must be a scikit-learn estimator"),
    (TLearner(n_bootstrap=1), "n_bootstrap must be 0"),
    (EntropyBalancing(on_infeasible="ignore"), "on_infeasible must be one of"),
    (EntropyBalancing(tol=0.0), "tol must be a positive number"),
])
def test_invalid_settings_raise(est, match):
    X, t, y, _ = simulate(4, n=80)
    with pytest.raises(CInAValidationError, match=match):
        est.fit(X, t, y)


def test_cross_fitting_needs_enough_units_per_arm():
    X, t, y, _ = simulate(5, n=60)
    t = np.zeros(60, dtype=np.int64)
    t[:3] = 1
    with pytest.raises(CInAValidationError, match="at least 5 units in each arm"):
        fast("aipw", n_folds=5).fit(X, t, y)


def test_tlearner_without_bootstrap_has_no_se():
    X, t, y, _ = simulate(6, n=150)
    est = TLearner(learner=HistGradientBoostingRegressor(max_iter=10)).fit(X, t, y)
    assert est.se_ is None
    assert np.isnan(est.effect_interval()).all()
    assert est.result_.to_dict()["ci_low"] is None


@pytest.mark.parametrize("name", BASELINES)
def test_clone_and_params_roundtrip(name):
    est = fast(name, estimand="att", random_state=3)
    twin = clone(est)
    assert type(twin) is type(est)
    assert twin.get_params()["estimand"] == "att" and twin.get_params()["random_state"] == 3


@pytest.mark.parametrize("name", WEIGHTING)
def test_pandas_input_and_balance_table(name):
    X, t, y, _ = simulate(7, n=120)
    idx = pd.Index([f"u{i}" for i in range(120)], name="unit")
    Xdf = pd.DataFrame(X, columns=["a", "b", "c"], index=idx)
    est = fast(name).fit(Xdf, pd.Series(t, index=idx), pd.Series(y, index=idx))
    assert isinstance(est.weights_, pd.Series) and est.weights_.index.equals(idx)
    table = est.balance_table()
    assert list(table.index) == ["a", "b", "c"]
    if name == "entropy":
        assert table["smd_after"].max() < 1e-6


def test_non_weighting_methods_have_no_balance_table():
    X, t, y, _ = simulate(8, n=120)
    est = fast("aipw").fit(X, t, y)
    with pytest.raises(CInAValidationError, match="does not produce weights"):
        est.balance_table()


def test_cross_fitted_methods_are_deterministic_and_seeded():
    X, t, y, _ = simulate(9, n=200)
    a = fast("dml", random_state=1).fit(X, t, y).effect_
    b = fast("dml", random_state=1).fit(X, t, y).effect_
    c = fast("dml", random_state=2).fit(X, t, y).effect_
    assert a == b and a != c


# --- properties -----------------------------------------------------------------------------
@pytest.mark.parametrize("estimand", ["ate", "att"])
@pytest.mark.parametrize("name", WEIGHTING)
def test_weights_are_normalised_per_arm_and_give_the_estimate(name, estimand):
    X, t, y, _ = simulate(10, n=300)
    r = fast(name, estimand=estimand).fit(X, t, y).result_
    w = r.weights
    assert np.all(w >= 0)
    assert w[t == 1].sum() == pytest.approx(1.0, abs=1e-12)
    assert w[t == 0].sum() == pytest.approx(1.0, abs=1e-12)
    assert np.array_equal(r.t, t)
    assert r.estimate == pytest.approx(np.sum(w * (2 * t - 1) * y), rel=1e-12, abs=1e-12)
    if estimand == "att":
        np.testing.assert_allclose(w[t == 1], 1.0 / t.sum())


@pytest.mark.parametrize("estimand", ["ate", "att"])
@pytest.mark.parametrize("name", WEIGHTING)
def test_permuting_units_permutes_the_weights(name, estimand):
    X, t, y, _ = simulate(11, n=250)
    perm = np.random.default_rng(11).permutation(250)
    a = fast(name, estimand=estimand).fit(X, t, y).result_
    b = fast(name, estimand=estimand).fit(X[perm], t[perm], y[perm]).result_
    np.testing.assert_allclose(b.weights, a.weights[perm], rtol=1e-5, atol=1e-9)
    assert b.estimate == pytest.approx(a.estimate, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", BASELINES)
def test_inputs_are_not_modified(name):
    X, t, y, _ = simulate(12, n=150)
    Xc, tc, yc = X.copy(), t.copy(), y.copy()
    fast(name).fit(X, t, y)
    assert np.array_equal(X, Xc) and np.array_equal(t, tc) and np.array_equal(y, yc)


# --- statistical ----------------------------------------------------------------------------
@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_consistent_methods_recover_a_known_effect(estimand):
    X, t, y, tau = simulate(2024, n=2000)
    truth = tau.mean() if estimand == "ate" else tau[t == 1].mean()
    methods = {
        "ipw": IPW(estimand=estimand),
        "entropy": EntropyBalancing(estimand=estimand),
        "aipw": AIPW(estimand=estimand,
                     outcome_learner=HistGradientBoostingRegressor(max_iter=50),
                     propensity_learner=HistGradientBoostingClassifier(max_iter=50)),
        "dml": DML(estimand=estimand,
                   outcome_learner=RandomForestRegressor(n_estimators=40, min_samples_leaf=10),
                   propensity_learner=RandomForestClassifier(n_estimators=40,
                                                             min_samples_leaf=10)),
        "tlearner": TLearner(estimand=estimand, n_bootstrap=10,
                             learner=HistGradientBoostingRegressor(max_iter=50)),
    }
    naive = NaiveDifference(estimand=estimand).fit(X, t, y)
    for name, est in methods.items():
        est.fit(X, t, y)
        z = (est.effect_ - truth) / est.se_
        assert abs(z) < 4, f"{name}: estimate {est.effect_:.3f}, truth {truth:.3f}, z {z:.2f}"
        # and every adjustment beats the confounded difference in means
        assert abs(est.effect_ - truth) < abs(naive.effect_ - truth), name


# --- reference formulas ---------------------------------------------------------------------
def test_naive_is_the_difference_of_means_with_welch_se():
    rng = np.random.default_rng(20)
    X = rng.normal(size=(9, 2))
    t = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1])
    y = np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0, 3.5, 8.0])
    y1, y0 = y[t == 1], y[t == 0]
    ate = NaiveDifference().fit(X, t, y)
    att = NaiveDifference(estimand="att").fit(X, t, y)
    assert ate.effect_ == pytest.approx(y1.mean() - y0.mean(), rel=1e-14)
    assert att.effect_ == ate.effect_
    se = np.sqrt(np.var(y1, ddof=1) / 4 + np.var(y0, ddof=1) / 5)
    assert ate.se_ == pytest.approx(se, rel=1e-14)
    np.testing.assert_allclose(ate.weights_, np.where(t == 1, 1 / 4, 1 / 5))


def _tiny():
    X = np.array([[0.1, 1.0], [1.5, 0.0], [-0.3, 1.0], [2.0, 1.0], [0.7, 0.0],
                  [-1.2, 0.0], [0.4, 1.0], [1.1, 0.0], [-0.8, 1.0], [0.0, 0.0]])
    t = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1])
    y = np.array([1.0, 3.0, 0.5, 4.2, 2.0, -1.0, 1.2, 2.5, 0.0, 1.8])
    return X, t, y


@pytest.mark.parametrize("clip", [None, 0.3])
def test_ipw_is_the_explicit_hajek_formula(clip):
    X, t, y = _tiny()
    Z = (X - X.mean(0)) / X.std(0)
    e = LogisticRegression(C=1.0, max_iter=1000).fit(Z, t).predict_proba(Z)[:, 1]
    if clip is not None:
        assert (e < clip).any() or (e > 1 - clip).any()  # the clip binds somewhere
        e = np.clip(e, clip, 1 - clip)
    mu1 = np.sum(t * y / e) / np.sum(t / e)
    mu0 = np.sum((1 - t) * y / (1 - e)) / np.sum((1 - t) / (1 - e))
    ate = IPW(clip=clip).fit(X, t, y)
    assert ate.effect_ == pytest.approx(mu1 - mu0, rel=1e-6)
    np.testing.assert_allclose(ate.result_.info["propensity"], e, rtol=1e-6)
    r = e / (1 - e)
    att_ref = y[t == 1].mean() - np.sum((1 - t) * r * y) / np.sum((1 - t) * r)
    att = IPW(estimand="att", clip=clip).fit(X, t, y)
    assert att.effect_ == pytest.approx(att_ref, rel=1e-6)
    w0 = np.where(t == 0, r, 0) / np.sum((1 - t) * r)
    np.testing.assert_allclose(att.weights_[t == 0], w0[t == 0], rtol=1e-6)


def _numeric_sandwich_se(X, t, y, C, clip, estimand):
    """Sandwich se of the stacked (logistic, mu1, mu0) M-estimator, Jacobian by differences."""
    n = len(y)
    Z = (X - X.mean(0)) / X.std(0)
    Xt = np.column_stack([np.ones(n), Z])
    k = Xt.shape[1]
    lr = LogisticRegression(C=C, max_iter=5000, tol=1e-10).fit(Z, t)
    beta = np.concatenate([lr.intercept_, lr.coef_.ravel()])
    pen = np.r_[0.0, np.ones(k - 1)] / (n * C)

    def psi(theta):
        b, mu1, mu0 = theta[:k], theta[k], theta[k + 1]
        e = expit(Xt @ b)
        ec = np.clip(e, clip, 1 - clip) if clip else e
        if estimand == "ate":
            p1, p0 = t * (y - mu1) / ec, (1 - t) * (y - mu0) / (1 - ec)
        else:
            p1, p0 = t * (y - mu1), (1 - t) * ec / (1 - ec) * (y - mu0)
        return np.column_stack([(t - e)[:, None] * Xt - pen * b, p1, p0])

    e = expit(Xt @ beta)
    ec = np.clip(e, clip, 1 - clip) if clip else e
    a1 = t / ec if estimand == "ate" else t.astype(float)
    a0 = (1 - t) / (1 - ec) if estimand == "ate" else (1 - t) * ec / (1 - ec)
    theta = np.r_[beta, np.sum(a1 * y) / a1.sum(), np.sum(a0 * y) / a0.sum()]
    J = np.empty((k + 2, k + 2))
    h = 1e-6
    for j in range(k + 2):
        d = np.zeros(k + 2)
        d[j] = h
        J[:, j] = (psi(theta + d).mean(0) - psi(theta - d).mean(0)) / (2 * h)
    P = psi(theta)
    Jinv = np.linalg.inv(J)
    V = Jinv @ (P.T @ P / n) @ Jinv.T / n
    c = np.zeros(k + 2)
    c[k], c[k + 1] = 1.0, -1.0
    return float(np.sqrt(c @ V @ c))


@pytest.mark.parametrize("estimand", ["ate", "att"])
@pytest.mark.parametrize("C, clip", [(1.0, None), (np.inf, None), (1.0, 0.15)])
def test_ipw_se_is_the_m_estimation_sandwich(estimand, C, clip):
    X, t, y, _ = simulate(21, n=300)
    ref = _numeric_sandwich_se(X, t, y, C, clip, estimand)
    est = IPW(estimand=estimand, C=C, clip=clip).fit(X, t, y)
    if clip:
        assert est.result_.info["n_clipped"] > 0
    assert est.se_ == pytest.approx(ref, rel=2e-3)


def test_irm_score_is_the_textbook_aipw_formula():
    rng = np.random.default_rng(22)
    n = 50
    y, g0, g1 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    m = rng.uniform(0.2, 0.8, size=n)
    t = (rng.random(n) < 0.5).astype(int)
    psi = g1 - g0 + t * (y - g1) / m - (1 - t) * (y - g0) / (1 - m)
    ate, se, _ = irm_score(y, t, g0, g1, m, "ate")
    assert ate == pytest.approx(psi.mean(), rel=1e-12)
    assert se == pytest.approx(np.sqrt(np.mean((psi - psi.mean()) ** 2) / n), rel=1e-12)
    p = t.mean()
    num = t * (y - g0) - (1 - t) * m * (y - g0) / (1 - m)
    att, se_att, _ = irm_score(y, t, g0, g1, m, "att")
    assert att == pytest.approx(num.sum() / t.sum(), rel=1e-12)
    phi = (num - t * att) / p
    assert se_att == pytest.approx(np.sqrt(np.mean(phi**2) / n), rel=1e-12)


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_entropy_balancing_matches_the_target_means(estimand):
    rng = np.random.default_rng(23)
    n = 400
    X = np.column_stack([rng.normal(size=n), rng.exponential(2.0, size=n),
                         rng.random(n) < 0.4])
    t = (rng.random(n) < expit(0.8 * X[:, 0] - 0.3 * X[:, 1] + X[:, 2])).astype(int)
    y = X @ np.array([1.0, 0.5, -1.0]) + 2.0 * t + rng.normal(size=n)
    est = EntropyBalancing(estimand=estimand).fit(X, t, y)
    w = est.weights_
    target = X.mean(0) if estimand == "ate" else X[t == 1].mean(0)
    arms = (0, 1) if estimand == "ate" else (0,)
    for arm in arms:
        np.testing.assert_allclose(w[t == arm] @ X[t == arm], target, rtol=0, atol=1e-6)
        # maximal entropy: log w is affine in the covariates (the dual's exponential family)
        A = np.column_stack([np.ones((t == arm).sum()), X[t == arm]])
        logw = np.log(w[t == arm])
        resid = logw - A @ np.linalg.lstsq(A, logw, rcond=None)[0]
        assert np.abs(resid).max() < 1e-8
    assert est.result_.info["balanced"] and est.result_.info["max_imbalance"] < 1e-8


def test_entropy_balancing_handles_collinear_columns():
    X, t, y, _ = simulate(24, n=300)
    dummy = (X[:, 2] > 0).astype(float)
    Xc = np.column_stack([X, dummy, 1.0 - dummy, X[:, 0] + X[:, 1]])
    est = EntropyBalancing().fit(Xc, t, y)
    for arm in (0, 1):
        np.testing.assert_allclose(est.weights_[t == arm] @ Xc[t == arm], Xc.mean(0),
                                   atol=1e-6)
    assert est.result_.info["n_constraints"]["treated"] == 4


def test_entropy_balancing_reports_infeasible_balance():
    rng = np.random.default_rng(25)
    n = 200
    x = rng.normal(size=n)
    t = (x > 0.5).astype(int)  # controls all have x <= 0.5 < the treated mean
    X = np.column_stack([x, rng.normal(size=n)])
    y = x + t + rng.normal(size=n)
    with pytest.raises(ConvergenceError, match="control arm.*'x0'.*infeasible"):
        EntropyBalancing(estimand="att", max_iter=50).fit(X, t, y)
    with pytest.warns(OverlapWarning, match="closest weights"):
        est = EntropyBalancing(estimand="att", max_iter=50, on_infeasible="warn").fit(X, t, y)
    assert not est.result_.info["balanced"] and est.result_.info["max_imbalance"] > 1e-3
    assert np.all(est.weights_ >= 0)


# --- DML against DoubleML -------------------------------------------------------------------
@pytest.mark.parametrize("seed, score, normalize_ipw", [
    (0, "ATE", False), (1, "ATE", False), (2, "ATE", False), (0, "ATTE", False),
    (1, "ATE", True),
])
def test_dml_agrees_with_doubleml_irm(seed, score, normalize_ipw):
    dml = pytest.importorskip("doubleml")
    X, t, y, _ = simulate(100 + seed, n=400, d=4)
    g = RandomForestRegressor(n_estimators=30, min_samples_leaf=5, random_state=seed, n_jobs=1)
    m = RandomForestClassifier(n_estimators=30, min_samples_leaf=5, random_state=seed, n_jobs=1)
    ours = DML(estimand="ate" if score == "ATE" else "att", outcome_learner=g,
               propensity_learner=m, n_folds=5, normalize_ipw=normalize_ipw,
               random_state=seed).fit(X, t, y)
    data = dml.DoubleMLData.from_arrays(X, y, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = dml.DoubleMLIRM(data, ml_g=g, ml_m=m, n_folds=5, score=score,
                              normalize_ipw=normalize_ipw, draw_sample_splitting=False)
        ref.set_sample_splitting(cross_fit_folds(t, 5, seed))
        ref.fit(n_jobs_cv=1)
    coef, se = float(ref.coef[0]), float(ref.se[0])
    # same folds, learners and seeds: the two must agree far inside the sampling error
    assert abs(ours.effect_ - coef) < 0.01 * se
    assert ours.se_ == pytest.approx(se, rel=0.01)


# --- registry -------------------------------------------------------------------------------
def test_registry_lists_every_method():
    assert available_methods() == ["exact", "fit", "zero-shot", "exact-aug", "zero-shot-aug",
                                   "exact-plain", "naive", "ipw", "aipw", "dml", "tlearner",
                                   "entropy"]
    aug = make_estimator("exact-aug")
    assert aug.method == "exact" and aug.augment == "gbm"
    expected = {"naive": NaiveDifference, "ipw": IPW, "aipw": AIPW, "dml": DML,
                "tlearner": TLearner, "entropy": EntropyBalancing}
    for name, cls in expected.items():
        est = make_estimator(name)
        assert type(est) is cls and est.method_name == name
        assert estimator_class(name) is cls
    for name in ("exact", "fit", "zero-shot"):
        est = make_estimator(name, estimand="att")
        assert isinstance(est, CInA) and est.method == name and est.estimand == "att"
    assert make_estimator("Zero_Shot").method == "zero-shot"
    assert make_estimator("IPW", C=10.0).C == 10.0


def test_registry_rejects_unknown_methods_and_settings():
    with pytest.raises(CInAValidationError, match=r"unknown method 'lasso'.*naive, ipw"):
        make_estimator("lasso")
    with pytest.raises(CInAValidationError, match=r"'ipw' does not accept.*\['n_folds'\]"):
        make_estimator("ipw", n_folds=3)
    with pytest.raises(CInAValidationError, match="fixed by the method name"):
        make_estimator("exact", method="fit")
    with pytest.raises(CInAValidationError, match="must be a string"):
        make_estimator(None)
