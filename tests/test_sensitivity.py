"""Tests of cina.sensitivity: the omitted-variable-bias bounds built on the balancing weights
(docs/sensitivity.md).

Families: unit (the bound, the robustness value, the strength scaling), property (the Riesz
representer read off the weights), reference (the bound and robustness value against DoubleML's
sensitivity analysis), consistency (a covariate left out moves the estimate by no more than its
own bound), statistical (seeded coverage on simulations with a hidden confounder) and the result
object's interface.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from threadpoolctl import threadpool_limits

import cina
from cina.baselines import AIPW, DML, IPW, EntropyBalancing, NaiveDifference, TLearner
from cina.errors import CInAValidationError, NotFittedError
from cina.sensitivity import (
    SensitivityResult,
    bias_bound,
    covariate_groups,
    r2_y_at_bias,
    riesz_representer,
    robustness_value,
    sensitivity,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def simulate(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < expit(0.7 * X[:, 0] - 0.5 * X[:, 1])).astype(int)
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + 1.0 * t + rng.normal(size=n)
    return X, t, y


@pytest.fixture(scope="module")
def fitted():
    X, t, y = simulate(0)
    return cina.CInA(lam_rel=0.3).fit(X, t, y)


@pytest.fixture(scope="module")
def sens(fitted):
    return sensitivity(fitted, outcome_model="linear")


# --- unit: the bound and the robustness value ------------------------------------------------

def test_bias_bound_formula():
    assert bias_bound(2.0, 0.1, 0.2) == pytest.approx(2.0 * math.sqrt(0.1 * 0.2 / 0.8))
    assert bias_bound(2.0, 0.1, 0.2, rho=-0.5) == pytest.approx(1.0 * math.sqrt(0.1 * 0.2 / 0.8))
    assert bias_bound(2.0, 0.0, 0.5) == 0.0 and bias_bound(2.0, 0.5, 0.0) == 0.0
    grid = bias_bound(1.0, np.array([0.01, 0.1, 0.5]), np.array([0.01, 0.1, 0.5]))
    assert np.all(np.diff(grid) > 0)  # stronger confounders, larger bounds


@pytest.mark.parametrize("r2_y, r2_d, rho", [(1.0, 0.1, 1.0), (0.1, 1.0, 1.0), (-0.1, 0.1, 1.0),
                                              (0.1, np.nan, 1.0), (0.1, 0.1, 1.5),
                                              (0.1, 0.1, float("nan"))])
def test_bias_bound_refuses_invalid_strengths(r2_y, r2_d, rho):
    with pytest.raises(CInAValidationError, match="r2_y|r2_d|rho"):
        bias_bound(1.0, r2_y, r2_d, rho)


@pytest.mark.parametrize("seed", range(5))
def test_robustness_value_solves_the_bound(seed):
    rng = np.random.default_rng(seed)
    scale, distance = rng.uniform(0.1, 10), rng.uniform(0.01, 20)
    rv = robustness_value(distance, scale)
    assert 0 < rv < 1
    assert bias_bound(scale, rv, rv) == pytest.approx(distance, rel=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_r2_y_at_bias_inverts_the_bound(seed):
    """The report's contours: on the curve r2_y = r2_y_at_bias(b, S, r2_d) the bound is b."""
    rng = np.random.default_rng(seed)
    scale, bias = rng.uniform(0.1, 10), rng.uniform(0.01, 2)
    r2_d = rng.uniform(0.05, 0.9, size=20)
    r2_y = r2_y_at_bias(bias, scale, r2_d)
    inside = r2_y < 1
    assert inside.any()
    np.testing.assert_allclose(bias_bound(scale, r2_y[inside], r2_d[inside]), bias, rtol=1e-12)
    assert np.all(np.diff(r2_y) * np.diff(r2_d) <= 0)  # stronger in r2_d, weaker in r2_y


def test_robustness_value_edges():
    assert robustness_value(0.0, 1.0) == 0.0
    assert robustness_value(-1.0, 1.0) == 0.0
    assert robustness_value(1.0, 0.0) == 1.0


# --- property: the weights are the Riesz representer ----------------------------------------

@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_representer_from_weights(estimand):
    X, t, y = simulate(1)
    est = cina.CInA(estimand=estimand, lam_rel=0.1).fit(X, t, y)
    rr, source = riesz_representer(est)
    assert source == "balancing weights"
    # the representer of a functional of the arm alone: E[RR t] = 1 and E[RR (1 - t)] = -1
    assert np.mean(rr * t) == pytest.approx(1.0) and np.mean(rr * (1 - t)) == pytest.approx(-1.0)
    # and of the covariates: the weighted control means reach the target population's means
    target = slice(None) if estimand == "ate" else t == 1
    for j in range(X.shape[1]):
        lhs = -np.mean(rr * (1 - t) * X[:, j])
        assert abs(lhs - X[target, j].mean()) < 0.1 * X[:, j].std()


def test_representer_from_propensity_matches_formula():
    X, t, y = simulate(2)
    est = DML(n_folds=3).fit(X, t, y)
    rr, source = riesz_representer(est)
    m = est.result_.info["propensity"]
    assert "propensity" in source
    np.testing.assert_allclose(rr, t / m - (1 - t) / (1 - m))
    est_att = AIPW(estimand="att", n_folds=3).fit(X, t, y)
    rr_att, _ = riesz_representer(est_att)
    m = est_att.result_.info["propensity"]
    np.testing.assert_allclose(rr_att, (t - (1 - t) * m / (1 - m)) / t.mean())


@pytest.mark.parametrize("make", [lambda: IPW(), lambda: EntropyBalancing(),
                                  lambda: AIPW(n_folds=3)])
def test_other_adjusting_methods_are_supported(make):
    X, t, y = simulate(3)
    s = make().fit(X, t, y).sensitivity(outcome_model="linear", benchmark_covariates=False)
    assert s.scale > 0 and 0 < s.rv < 1


@pytest.mark.parametrize("make, match", [(lambda: NaiveDifference(), "adjusts for no covariate"),
                                         (lambda: TLearner(), "neither balancing weights")])
def test_methods_without_a_representer_say_what_is_available(make, match):
    X, t, y = simulate(4)
    with pytest.raises(CInAValidationError, match=match):
        make().fit(X, t, y).sensitivity()


# --- reference: DoubleML's sensitivity analysis ---------------------------------------------

def test_bound_and_robustness_value_agree_with_doubleml():
    dml = pytest.importorskip("doubleml")
    from sklearn.linear_model import LinearRegression, LogisticRegression

    X, t, y = simulate(5, n=600)
    data = dml.DoubleMLData.from_arrays(X, y, t)
    ref = dml.DoubleMLIRM(data, ml_g=LinearRegression(), ml_m=LogisticRegression(),
                          n_folds=3).fit()
    theta = float(ref.coef[0])
    scale = float(np.squeeze(ref.framework.sensitivity_elements["max_bias"]))
    for cf_y, cf_d, rho in [(0.03, 0.03, 1.0), (0.1, 0.2, 0.5), (0.2, 0.05, -0.8)]:
        ref.sensitivity_analysis(cf_y=cf_y, cf_d=cf_d, rho=rho)
        params = ref.sensitivity_params
        assert theta - bias_bound(scale, cf_y, cf_d, rho) == pytest.approx(
            float(params["theta"]["lower"][0]), rel=1e-10)
        assert theta + bias_bound(scale, cf_y, cf_d, rho) == pytest.approx(
            float(params["theta"]["upper"][0]), rel=1e-10)
        # DoubleML finds the robustness value by bounded scalar minimisation (xtol ~1e-5)
        assert robustness_value(abs(theta), abs(rho) * scale) == pytest.approx(
            float(params["rv"][0]), abs=1e-4)


# --- consistency: a left-out covariate moves the estimate within its own bound --------------

def test_left_out_covariate_moves_estimate_within_its_bound():
    rng = np.random.default_rng(11)
    n = 600
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < expit(0.9 * X[:, 0] - 0.4 * X[:, 1])).astype(int)
    y = 1.5 * X[:, 0] + 0.5 * X[:, 1] + t + rng.normal(size=n)
    est = cina.CInA(lam_rel=0.1).fit(pd.DataFrame(X, columns=["conf", "weak", "noise"]), t, y)
    s = est.sensitivity(outcome_model="linear")
    b = s.benchmarks
    assert list(b.index) == ["conf", "weak", "noise"]
    # the strong confounder is the strongest benchmark on both axes
    assert b.loc["conf", "r2_y"] == b["r2_y"].max() and b.loc["conf", "r2_d"] == b["r2_d"].max()
    assert abs(b.loc["conf", "change"]) > 0.3  # leaving it out biases the estimate visibly
    # the bound with the model without it as the short one covers the move (rho <= 1); a
    # covariate with no strength (r2 clipped to 0) still moves the refitted weights a little:
    # that noise is a small fraction of the standard error
    assert np.all(b["change"].abs() <= b["bound_without"] + 0.25 * s.se)
    assert abs(b.loc["conf", "change"]) <= b.loc["conf", "bound_without"]


# --- statistical: coverage with a hidden confounder ----------------------------------------

def _coverage_module():
    """The simulation designs of benchmarks/sensitivity_coverage.py (one definition for both)."""
    name = "cina_bench_sensitivity_coverage"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "benchmarks" / "sensitivity_coverage.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while being created
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.slow
def test_bound_at_true_strength_covers_the_truth():
    """30 seeded runs of the benchmark's "linear" design at N = 500 (the full check,
    benchmarks/results/sensitivity_coverage.md, runs 300). The bias-aware interval at the
    confounder's true strength must cover at least 95% of runs: with 30 runs the share's standard
    error under 0.95 is 0.040, so 3 SE allow down to 0.83 (25 of 30). The plain interval must
    miss most runs, which shows that the hidden confounder matters in this design."""
    from dataclasses import replace

    cov = _coverage_module()
    design = replace(cov.DESIGNS[0], n=500)
    strengths = cov.true_strengths(design, n_mc=50_000)
    rows = []
    for rep in range(30):
        X, t, y, truth = design.sample(1000 + rep)
        est = cina.CInA(estimand=design.estimand).fit(X, t, y)
        s = est.sensitivity(outcome_model="linear", benchmark_covariates=False)
        b = s.bias_bound(strengths["r2_y"], strengths["r2_d"])
        rows.append((abs(s.estimate - truth) <= b + s.z * s.se, abs(s.estimate - truth) <= s.z *
                     s.se))
    covered, plain = np.mean(rows, axis=0)
    se = math.sqrt(0.95 * 0.05 / len(rows))
    assert covered >= 0.95 - 3 * se
    assert plain <= 0.5


def test_true_strengths_bound_the_population_bias():
    cov = _coverage_module()
    for design in cov.DESIGNS:
        tr = cov.true_strengths(design, n_mc=20_000)
        assert 0 < tr["r2_y"] < 1 and 0 < tr["r2_d"] < 1
        assert abs(tr["bias"]) <= tr["bound"]  # the bound holds at the truth: |rho| <= 1


# --- the result object ------------------------------------------------------------------------

def test_result_interface(sens, fitted):
    assert isinstance(sens, SensitivityResult)
    assert sens.estimate == fitted.effect_ and sens.se == fitted.se_
    assert sens.scale == pytest.approx(math.sqrt(sens.sigma2 * sens.nu2))
    assert sens.nu2 == pytest.approx(len(fitted.data_.t) * np.sum(fitted.result_.weights ** 2))
    lo, hi = fitted.effect_interval(0.05)
    assert sens.interval == pytest.approx((lo, hi))
    frame = sens.bounds([0.0, 0.1], [0.0, 0.2])
    assert list(frame.columns) == ["r2_y", "r2_d", "bias_bound", "estimate_lower",
                                   "estimate_upper", "ci_lower", "ci_upper"]
    assert frame.loc[0, "ci_lower"] == pytest.approx(lo) and frame.loc[0, "bias_bound"] == 0
    assert frame.loc[1, "estimate_upper"] - frame.loc[1, "estimate_lower"] == pytest.approx(
        2 * sens.bias_bound(0.1, 0.2))
    # the robustness values do what they say
    at_rv = sens.bounds(sens.rv, sens.rv).iloc[0]
    assert min(abs(at_rv["estimate_lower"]), abs(at_rv["estimate_upper"])) < 1e-9 * max(
        1, abs(sens.estimate))
    at_rva = sens.bounds(sens.rv_alpha, sens.rv_alpha).iloc[0]
    assert min(abs(at_rva["ci_lower"]), abs(at_rva["ci_upper"])) < 1e-9 * max(
        1, abs(sens.estimate))
    assert sens.rv_alpha < sens.rv
    table = sens.strength_table()
    assert table.index.name == "strength" and (table["bias_bound"].diff().dropna() > 0).all()
    one = sens.summary_frame()
    assert one.loc["ate", "rv"] == sens.rv and one.loc["ate", "rv_alpha"] == sens.rv_alpha
    text = sens.summary()
    assert "robustness value" in text and "benchmarks" in text
    assert "bring the estimate to 0" in sens.interpretation()
    json.dumps(sens.to_dict())  # JSON-ready
    bench = sens.benchmark_bounds([1, 2])
    assert set(bench["multiple"]) == {1.0, 2.0}
    one_x = bench[bench["multiple"] == 1.0].set_index("covariate")
    np.testing.assert_allclose(one_x["r2_y"], sens.benchmarks["r2_y"])
    assert sens.call().startswith("sens = est.sensitivity(")


def test_att_sensitivity_and_the_strength_scaling():
    X, t, y = simulate(6)
    s = cina.CInA(estimand="att", lam_rel=0.3).fit(X, t, y).sensitivity(outcome_model="linear")
    assert s.estimand == "att" and 0 < s.rv < 1
    b = s.benchmark_bounds([1, 3])
    for _cov, g in b.groupby("covariate"):
        one, three = g.set_index("multiple").loc[1.0], g.set_index("multiple").loc[3.0]
        # k times as strong on the odds scale: f2(k) = k f2(1)
        f2 = lambda r: r / (1 - r)  # noqa: E731
        assert f2(three["r2_y"]) == pytest.approx(3 * f2(one["r2_y"]))
        assert f2(three["r2_d"]) == pytest.approx(3 * f2(one["r2_d"]))
        assert three["bias_bound"] >= one["bias_bound"]


def test_benchmark_selection_and_categorical_groups():
    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "g": rng.choice(["u", "v", "w"], n)})
    t = (rng.random(n) < expit(X["a"])).astype(int)
    y = X["a"] + (X["g"] == "u") + t + rng.normal(size=n)
    est = cina.CInA(lam_rel=0.3).fit(X, t, y)
    assert covariate_groups(est.data_) == {"a": [0], "b": [1], "g": [2, 3, 4]}
    s = est.sensitivity(outcome_model="linear", benchmark_covariates=["g"])
    assert list(s.benchmarks.index) == ["g"]
    assert s.benchmarks.loc["g", "columns"] == "g=u, g=v, g=w"
    none = est.sensitivity(outcome_model="linear", benchmark_covariates=False)
    assert none.benchmarks.empty and "not computed" in none.benchmark_note
    with pytest.raises(CInAValidationError, match="not one of the fitted covariates"):
        est.sensitivity(benchmark_covariates=["zzz"])


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0.0}, "alpha"), ({"rho": 2.0}, "rho"), ({"n_folds": 1}, "n_folds"),
    ({"outcome_model": "forest"}, "outcome_model"), ({"multiples": [0]}, "multiples"),
])
def test_bad_settings(fitted, kwargs, match):
    with pytest.raises(CInAValidationError, match=match):
        fitted.sensitivity(benchmark_covariates=False, **kwargs)


def test_unfitted_and_constant_outcome():
    with pytest.raises(NotFittedError, match="not fitted"):
        cina.CInA().sensitivity()
    X, t, _ = simulate(8, n=100)
    est = cina.CInA(lam_rel=0.3).fit(X, t, np.full(100, 2.5))
    with pytest.raises(CInAValidationError, match="outcome is constant"):
        est.sensitivity()


def test_outcome_model_auto_picks_the_better_learner():
    X, t, y = simulate(9)
    est = cina.CInA(lam_rel=0.3).fit(X, t, y)
    auto = est.sensitivity(benchmark_covariates=False)
    lin = est.sensitivity(benchmark_covariates=False, outcome_model="linear")
    gbm = est.sensitivity(benchmark_covariates=False, outcome_model="gbm")
    assert auto.sigma2 == min(lin.sigma2, gbm.sigma2)
    from sklearn.linear_model import LinearRegression

    custom = est.sensitivity(benchmark_covariates=False, outcome_model=LinearRegression())
    assert "LinearRegression" in custom.outcome_model
