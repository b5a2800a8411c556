"""CInA's default pipeline (docs/method_notes.md section 14): the relevance key map, the stacked
outcome model and the bias-aware interval, one unit or property at a time, then together."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm

import cina
from cina import estimator as estimator_module
from cina.balancing.kernel import attention_kernel
from cina.effect import OUTCOME_MODELS, STACK_LEARNERS, arm_imbalances, bias_sd
from cina.results import EffectResult


def design(seed: int, n: int = 500, d: int = 8):
    """Two relevant covariates of eight, confounded treatment, a nonlinear outcome and a
    heterogeneous effect whose sample mean is the truth."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    e = 1.0 / (1.0 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))
    t = (rng.random(n) < e).astype(int)
    mu0 = 2.0 * np.sin(X[:, 0]) + X[:, 1] ** 2
    tau = 1.0 + 0.5 * X[:, 0]
    y = mu0 + tau * t + 0.5 * rng.standard_normal(n)
    return X, t, y, float(tau.mean())


# -- units -----------------------------------------------------------------------------------------
def test_arm_imbalances_match_the_dense_quadratic_form():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((60, 3))
    t = (rng.random(60) < 0.4).astype(int)
    K = attention_kernel(Z, 2.0)
    alpha = rng.random(60)
    for a in (0, 1):
        alpha[t == a] /= alpha[t == a].sum()
    for estimand in ("ate", "att"):
        got = arm_imbalances(lambda V: K @ V, alpha, t, estimand)
        target = np.ones(60, bool) if estimand == "ate" else t == 1
        m = target / target.sum()
        for a in (0, 1):
            diff = np.where(t == a, alpha, 0.0) - m
            assert got[a] == pytest.approx(float(diff @ K @ diff), rel=1e-12)
    # ATT: uniform weights on the treated balance them to themselves exactly
    alpha[t == 1] = 1.0 / (t == 1).sum()
    assert arm_imbalances(lambda V: K @ V, alpha, t, "att")[1] == pytest.approx(0.0, abs=1e-15)


def test_bias_sd_is_the_root_of_summed_arm_variances_and_skips_unknown_arms():
    assert bias_sd({0: 4.0, 1: 9.0}, {0: 0.25, 1: 1.0}) == pytest.approx(np.sqrt(1.0 + 9.0))
    assert bias_sd({0: 4.0, 1: float("nan")}, {0: 0.25, 1: 1.0}) == pytest.approx(1.0)
    assert bias_sd({0: 4.0, 1: 9.0}, {0: 0.0, 1: 0.0}) == 0.0


def test_interval_and_z_test_use_the_total_sd():
    res = EffectResult(estimate=1.0, se=0.3, estimand="ate", method="exact", n=10, n_treated=5,
                       n_control=5, seconds=0.0, bias_sd=0.4)
    z = norm.ppf(0.975)
    lo, hi = res.interval()
    assert res.total_sd == pytest.approx(0.5)
    assert (lo, hi) == pytest.approx((1.0 - z * 0.5, 1.0 + z * 0.5))
    assert res.z_test()[0] == pytest.approx(2.0)
    assert res.to_dict()["bias_sd"] == pytest.approx(0.4)
    no_bias = EffectResult(estimate=1.0, se=0.3, estimand="ate", method="ipw", n=10,
                           n_treated=5, n_control=5, seconds=0.0)
    assert no_bias.interval() == pytest.approx((1.0 - z * 0.3, 1.0 + z * 0.3))


def test_stacked_outcome_model_combines_learners_per_arm_out_of_sample():
    X, t, y, _ = design(1, n=300)
    Z = X / X.std(0)
    m0, m1, resid, info = OUTCOME_MODELS["stack"](X, Z, t, y, bandwidth=8.0, ridge=0.1, seed=0)
    assert m0.shape == m1.shape == resid.shape == (300,)
    assert np.isfinite(m0).all() and np.isfinite(m1).all()
    np.testing.assert_allclose(resid, y - np.where(t == 1, m1, m0))
    for arm in ("arm0", "arm1"):
        weights = info["stack_weights"][arm]
        assert set(weights) == set(STACK_LEARNERS)
        assert min(weights.values()) >= 0.0
        assert sum(weights.values()) == pytest.approx(1.0, abs=2e-3)
    # out of sample: a unit's own outcome does not enter its prediction, so shifting one
    # treated unit's outcome moves its residual one for one, up to the learners refitted
    # without it (the stacking weights move a little)
    i = int(np.flatnonzero(t == 1)[0])
    y2 = y.copy()
    y2[i] += 50.0
    _, m1b, resid_b, _ = OUTCOME_MODELS["stack"](X, Z, t, y2, bandwidth=8.0, ridge=0.1, seed=0)
    assert resid_b[i] - resid[i] > 40.0


def test_stacking_prefers_smooth_learners_on_a_linear_outcome():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 5))
    t = (rng.random(400) < 0.5).astype(int)
    y = X @ np.array([2.0, -1.0, 0.5, 0.0, 0.0]) + 1.0 * t + 0.1 * rng.standard_normal(400)
    _, _, _, info = OUTCOME_MODELS["stack"](X, X, t, y, bandwidth=5.0, ridge=0.01, seed=0)
    for arm in ("arm0", "arm1"):
        weights = info["stack_weights"][arm]
        assert weights["ridge"] + weights["kernel"] > 0.9  # trees fit a plane in steps


# -- the estimator ---------------------------------------------------------------------------------
def test_default_fit_uses_relevance_stack_and_reports_bias_sd():
    X, t, y, _ = design(2)
    est = cina.CInA().fit(X, t, y)
    info = est.result_.info
    assert info["metric"] == "relevance" and info["bandwidth"] == 1.0
    assert info["augment"] == "stack" and "stack_weights" in info
    assert "lam_guard_steps" not in info  # the guard is off with the relevance key map
    # augmented, lam is the GP ratio of the outcome model's out-of-sample residuals
    assert info["lam_rule"].endswith("residuals") and info["gp_noise_ratio_residual"] > 0
    assert set(info["imbalance"]) == {0, 1}
    assert est.result_.bias_sd == info["bias_sd"] >= 0.0
    # the two relevant covariates are the two most relevant
    top = {name for name, _ in info["most_relevant"][:2]}
    assert top == {"x0", "x1"}
    lo, hi = est.ate_interval()
    assert hi - lo == pytest.approx(2 * norm.ppf(0.975) * est.result_.total_sd)


def test_standardized_metric_and_no_augmentation_is_the_papers_estimator():
    X, t, y, _ = design(3)
    plain = cina.CInA(metric="standardized", augment=None).fit(X, t, y)
    info = plain.result_.info
    assert info["metric"] == "standardized" and "lam_guard_steps" in info
    assert "augment" not in info
    w = plain.weights_
    assert plain.ate_ == pytest.approx(float(np.sum(w * (2 * t - 1) * y)))


def test_auto_augmentation_drops_the_outcome_model_beyond_its_size(monkeypatch):
    X, t, y, _ = design(4, n=300)
    monkeypatch.setattr(estimator_module, "AUTO_STACK_MAX_N", 299)
    est = cina.CInA().fit(X, t, y)
    assert "augment" not in est.result_.info
    assert est.ate_ == pytest.approx(float(np.sum(est.weights_ * (2 * t - 1) * y)))


def test_given_lam_has_no_bias_estimate():
    X, t, y, _ = design(5, n=300)
    est = cina.CInA(lam_rel=0.1).fit(X, t, y)
    assert est.result_.bias_sd == 0.0


def test_bad_metric_is_refused():
    X, t, y, _ = design(6, n=100)
    with pytest.raises(cina.errors.CInAValidationError, match="metric must be one of"):
        cina.CInA(metric="ard").fit(X, t, y)


def test_constant_outcome_falls_back_to_the_standardised_keys():
    X, t, _, _ = design(7, n=120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cina.CInA(augment=None).fit(X, t, np.ones(120))
    assert est.result_.info["metric"].startswith("standardized")
    assert est.ate_ == pytest.approx(0.0, abs=1e-12)


# -- statistical -----------------------------------------------------------------------------------
def test_default_estimate_is_accurate_and_its_interval_covers():
    """Ten seeded datasets: the mean error is small against the spread of the estimates and
    the 95% intervals cover the sample effect at least 8 times of 10 (P(<= 7 of 10) = 1.2% for
    a 95% interval)."""
    errors, covered = [], 0
    for seed in range(10):
        X, t, y, truth = design(100 + seed, n=400)
        est = cina.CInA().fit(X, t, y)
        lo, hi = est.ate_interval()
        covered += lo <= truth <= hi
        errors.append(est.ate_ - truth)
    errors = np.array(errors)
    assert covered >= 8
    assert abs(errors.mean()) < 3 * errors.std(ddof=1) / np.sqrt(len(errors)) + 0.05
    assert np.sqrt(np.mean(errors ** 2)) < 0.25
