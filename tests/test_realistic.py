"""Tests of the realistic (RealCause-style) generator: cina.datasets.realistic and its suites.

Unit and property tests run on small synthetic tables (a fit takes about a second); one module
fixture fits the IHDP generator (747 rows) to check a shipped table end to end. Statistical
tests use seeded draws with tolerances of 4 standard errors derived from the draws themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cina.bench.suites import GROUPS, resolve_suites, suite_datasets
from cina.datasets import (
    REALISTIC_TABLES,
    CausalDataset,
    fit_realistic,
    generator_name,
    realistic_generator,
    sample_realistic,
)
from cina.errors import CInAValidationError

Z = 4.0  # tolerance in standard errors of the statistical tests
FAST = ("linear",)  # candidate family of the toy fits (test_fit_is_deterministic uses all)


def _table(n: int = 400, seed: int = 0, kind: str = "continuous"):
    """A small confounded table: X (n, 4), t, y of the requested outcome kind."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[:, 3] = (X[:, 3] > 0).astype(float)
    t = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))).astype(int)
    signal = X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.7 * X[:, 3] + t * (1 + 0.5 * X[:, 2])
    if kind == "continuous":
        y = signal + rng.normal(size=n)
    elif kind == "binary":
        y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 1)))).astype(float)
    else:  # nonnegative, zero-inflated, top-coded at 20
        positive = rng.random(n) < 1 / (1 + np.exp(-(signal + 0.5)))
        y = np.where(positive, np.minimum(np.exp(1.5 + 0.4 * signal + 0.5 * rng.normal(size=n)),
                                          20.0), 0.0)
    return pd.DataFrame(X, columns=["a", "b", "c", "d"]), t, y


@pytest.fixture(scope="module")
def continuous_gen():
    X, t, y = _table()
    return fit_realistic(X, t, y, name="toy", learners=FAST)


@pytest.fixture(scope="module")
def hurdle_gen():
    X, t, y = _table(kind="nonnegative")
    return fit_realistic(X, t, y, name="toy-hurdle", learners=FAST)


@pytest.fixture(scope="module")
def binary_gen():
    X, t, y = _table(kind="binary")
    return fit_realistic(X, t, y, name="toy-binary", learners=FAST)


# --- fitting ---------------------------------------------------------------------------------
def test_fit_shapes_and_kinds(continuous_gen, hurdle_gen, binary_gen):
    for gen, kind in ((continuous_gen, "continuous"), (hurdle_gen, "nonnegative"),
                      (binary_gen, "binary")):
        assert gen.outcome_kind == kind
        assert gen.propensity.shape == gen.mu0.shape == gen.mu1.shape == (400,)
        assert np.all(np.isfinite(gen.tau))
        assert gen.info["propensity"]["learner"] in ("linear", "boosting", "forest")
        for arm in gen.arms:
            assert -1.0 <= arm.summary["cv_r2"] <= 1.0
    assert np.all((binary_gen.mu0 >= 0) & (binary_gen.mu1 <= 1))
    assert np.all(hurdle_gen.mu0 >= 0) and np.all(hurdle_gen.mu1 >= 0)


def test_top_code_detected(hurdle_gen):
    tops = [arm.top for arm in hurdle_gen.arms]
    assert all(top == pytest.approx(20.0) for top in tops)
    ds = hurdle_gen.sample(3)
    assert ds.y.max() <= 20.0 and np.any(ds.y == 20.0) and np.any(ds.y == 0.0)


def test_fit_is_deterministic():
    """Two fits with every candidate family (the default) give identical generators."""
    X, t, y = _table(n=100)
    a = fit_realistic(X, t, y)
    b = fit_realistic(X, t, y)
    assert a.info["candidates"] == ["linear", "boosting", "forest"]
    np.testing.assert_array_equal(a.propensity, b.propensity)
    np.testing.assert_array_equal(a.mu0, b.mu0)
    np.testing.assert_array_equal(a.mu1, b.mu1)
    np.testing.assert_array_equal(a.arms[1].pool, b.arms[1].pool)
    assert a.info["propensity"] == b.info["propensity"]
    assert a.arms[0].summary == b.arms[0].summary


def test_propensity_clip_range():
    X, t, y = _table(n=300)
    gen = fit_realistic(X, t, y, propensity_clip=0.05, learners=FAST)
    assert gen.propensity.min() >= 0.05 and gen.propensity.max() <= 0.95
    assert gen.propensities(overlap=3.0).min() >= 0.05
    assert gen.propensities(overlap=3.0).max() <= 0.95


# --- sampling --------------------------------------------------------------------------------
def test_sample_truth_is_mean_of_known_effects(continuous_gen):
    ate = continuous_gen.sample(1)
    att = continuous_gen.sample(1, "att")
    assert isinstance(ate, CausalDataset) and ate.estimand == "ate" and att.estimand == "att"
    assert ate.true_effect == pytest.approx(np.mean(ate.mu1 - ate.mu0), abs=1e-12)
    assert att.true_effect == pytest.approx(np.mean((att.mu1 - att.mu0)[att.t == 1]), abs=1e-12)
    assert ate.sample_effect() == pytest.approx(ate.true_effect, abs=1e-12)
    assert att.sample_effect() == pytest.approx(att.true_effect, abs=1e-12)
    # the ATE population is every unit: the same truth for every seed of a fixed table
    assert continuous_gen.sample(2).true_effect == pytest.approx(ate.true_effect, abs=1e-12)
    # y is the drawn potential outcome of the drawn arm
    np.testing.assert_array_equal(ate.X.to_numpy(), continuous_gen.X.to_numpy())
    assert set(np.unique(ate.t)) == {0, 1} and ate.y.shape == (400,)


def test_sample_is_reproducible_and_independent_of_earlier_calls(continuous_gen):
    first = continuous_gen.sample(7)
    first.y[:] = 0.0  # a caller modifying its copy must not affect later samples
    first.X.iloc[0, 0] = 99.0
    again = continuous_gen.sample(7)
    third = continuous_gen.sample(7)
    np.testing.assert_array_equal(again.t, third.t)
    np.testing.assert_array_equal(again.y, third.y)
    assert again.X.iloc[0, 0] != 99.0 and not np.all(again.y == 0)
    other = continuous_gen.sample(8)
    assert not np.array_equal(other.t, again.t)
    assert again.name == "realistic-toy-s7"
    assert continuous_gen.sample(7, "att").name == "realistic-toy-att-s7"


def test_binary_outcomes_are_binary(binary_gen):
    ds = binary_gen.sample(2)
    assert set(np.unique(ds.y)) <= {0.0, 1.0}
    with pytest.raises(CInAValidationError, match="binary"):
        binary_gen.sample(2, heterogeneity=2.0)
    with pytest.raises(CInAValidationError, match="binary"):
        binary_gen.sample(2, noise=0.5)


def test_knobs(continuous_gen):
    base = continuous_gen.sample(4)
    flat = continuous_gen.sample(4, heterogeneity=0.0)
    tau = flat.mu1 - flat.mu0
    np.testing.assert_allclose(tau, np.full(400, base.true_effect), atol=1e-10)
    assert flat.true_effect == pytest.approx(base.true_effect, abs=1e-10)
    double = continuous_gen.sample(4, heterogeneity=2.0)
    assert np.std(double.mu1 - double.mu0) == pytest.approx(
        2 * np.std(base.mu1 - base.mu0), rel=1e-9)
    quiet = continuous_gen.sample(4, noise=0.0)
    np.testing.assert_allclose(quiet.y, np.where(quiet.t == 1, quiet.mu1, quiet.mu0), atol=1e-10)
    # same seed, same noise: the knobs change the draw only through what they scale
    np.testing.assert_array_equal(quiet.t, base.t)
    e1 = continuous_gen.propensities(1.0)
    e3 = continuous_gen.propensities(3.0)
    np.testing.assert_array_equal(e1, continuous_gen.propensity)
    assert e3.mean() == pytest.approx(e1.mean(), abs=1e-6)  # the treated share is kept
    logit = np.log(e1 / (1 - e1))
    logit3 = np.log(e3 / (1 - e3))
    assert np.std(logit3) > 2.0 * np.std(logit)  # overlap > 1: more extreme propensities


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": 1, "estimand": "atc"}, "estimand"),
    ({"seed": 1, "overlap": 0.0}, "overlap"), ({"seed": 1, "overlap": float("nan")}, "overlap"),
    ({"seed": 1, "heterogeneity": -1.0}, "heterogeneity"), ({"seed": 1, "noise": True}, "noise"),
])
def test_sample_argument_errors(continuous_gen, kwargs, match):
    with pytest.raises(CInAValidationError, match=match):
        continuous_gen.sample(**kwargs)


def test_fit_argument_errors():
    X, t, y = _table(n=120)
    with pytest.raises(CInAValidationError, match="0/1"):
        fit_realistic(X, t + 1, y)
    with pytest.raises(CInAValidationError, match="one value per row"):
        fit_realistic(X, t[:-1], y)
    with pytest.raises(CInAValidationError, match="NaN"):
        fit_realistic(X.assign(a=np.nan), t, y)
    with pytest.raises(CInAValidationError, match="at least 10 rows per arm"):
        fit_realistic(X, np.r_[np.ones(5), np.zeros(115)], y)
    with pytest.raises(CInAValidationError, match="outcome must be"):
        fit_realistic(X, t, y, outcome="count")
    with pytest.raises(CInAValidationError, match="binary"):
        fit_realistic(X, t, y, outcome="binary")
    with pytest.raises(CInAValidationError, match="propensity_clip"):
        fit_realistic(X, t, y, propensity_clip=0.3)
    with pytest.raises(CInAValidationError, match="numeric"):
        fit_realistic(X.assign(a="text"), t, y)
    with pytest.raises(CInAValidationError, match="disagree"):
        fit_realistic(X, t, y, potential_outcomes=(y + 1, y))
    with pytest.raises(CInAValidationError, match="learners"):
        fit_realistic(X, t, y, learners=("lasso",))
    with pytest.raises(ValueError):  # validation errors are ValueErrors
        fit_realistic(np.ones(5), t, y)


def test_potential_outcomes_fit_both_arms_on_every_row():
    X, t, y = _table(n=300, kind="binary")
    rng = np.random.default_rng(1)
    y_other = (rng.random(300) < 0.3).astype(float)
    y0 = np.where(t == 0, y, y_other)
    y1 = np.where(t == 1, y, y_other)
    gen = fit_realistic(X, t, y, potential_outcomes=(y0, y1), learners=FAST)
    assert gen.info["potential_outcomes"] is True
    assert gen.arms[0].summary["n"] == gen.arms[1].summary["n"] == 300


# --- statistical -----------------------------------------------------------------------------
def test_simulated_treatment_matches_fitted_propensity(continuous_gen):
    """Over 200 seeds, the treated share in each decile of e(x) is the bin's mean e(x)."""
    e = continuous_gen.propensity
    draws = np.array([continuous_gen.sample(s).t for s in range(200)])
    edges = np.quantile(e, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, e, side="right") - 1, 0, 9)
    for b in range(10):
        rows = bins == b
        observed = draws[:, rows].mean()
        expected = e[rows].mean()
        se = np.sqrt(np.sum(e[rows] * (1 - e[rows])) * 200) / (200 * rows.sum())
        assert abs(observed - expected) <= Z * se + 1e-12, (b, observed, expected, se)


@pytest.mark.parametrize("fixture", ["continuous_gen", "hurdle_gen", "binary_gen"])
def test_draws_have_the_known_means(request, fixture):
    """mu0 / mu1 are the exact expectations of the draws (incl. the hurdle's top code)."""
    gen = request.getfixturevalue(fixture)
    rng = np.random.default_rng(11)
    for arm in gen.arms:
        draws = np.array([arm.draw(rng) for _ in range(300)])  # (300, n)
        per_draw = draws.mean(axis=1)  # average over units of each draw
        se = per_draw.std(ddof=1) / np.sqrt(len(per_draw))
        assert abs(per_draw.mean() - arm.mean.mean()) <= Z * se, (fixture, arm.kind)
        # and per unit, pooled: standardised unit deviations average to ~0
        unit_sd = draws.std(axis=0, ddof=1)
        ok = unit_sd > 0
        zscores = (draws.mean(axis=0)[ok] - arm.mean[ok]) / (unit_sd[ok] / np.sqrt(300))
        assert abs(zscores.mean()) <= Z / np.sqrt(ok.sum()) + 0.05


def test_simulated_outcome_distribution_matches_real_at_real_treatment(continuous_gen):
    """Drawing y(t_real) reproduces each arm's real mean and variance (the noise rule)."""
    gen = continuous_gen
    rng = np.random.default_rng(5)
    for a in (0, 1):
        rows = gen.t_real == a
        real = gen.y_real[rows]
        draws = np.array([gen.arms[a].draw(rng)[rows] for _ in range(200)])
        se_mean = real.std() / np.sqrt(rows.sum())
        assert abs(draws.mean() - real.mean()) <= Z * se_mean
        assert draws.std() == pytest.approx(real.std(), rel=0.1)


# --- the shipped tables and suites -------------------------------------------------------------
@pytest.fixture(scope="module")
def ihdp_gen():
    return realistic_generator("ihdp", 1)


@pytest.mark.slow
def test_shipped_generator_is_cached_and_consistent(ihdp_gen):
    assert realistic_generator("ihdp") is ihdp_gen  # base 1 is the default; fitted once
    assert ihdp_gen.n == 747 and ihdp_gen.X.shape == (747, 25)
    assert ihdp_gen.propensity.min() >= ihdp_gen.clip
    with pytest.raises(ValueError):
        ihdp_gen.propensity[0] = 0.5  # the cached arrays are read-only
    ds = sample_realistic("ihdp", 3, base=1)
    again = sample_realistic("ihdp", 3, base=1)
    np.testing.assert_array_equal(ds.y, again.y)
    assert ds.name == "realistic-ihdp-r1-s3" and ds.n == 747
    # the treated share is the real one within sampling error (sum of Bernoulli(e) draws)
    se = np.sqrt(np.sum(ihdp_gen.propensity * (1 - ihdp_gen.propensity)))
    assert abs(ds.t.sum() - ihdp_gen.t_real.sum()) <= Z * se + abs(
        ihdp_gen.propensity.sum() - ihdp_gen.t_real.sum())
    # the fitted effect is on the scale of the source's true SATE (IHDP realization 1: 4.02)
    assert ihdp_gen.info["source_effect"] == pytest.approx(4.016, abs=1e-3)
    assert 2.0 < ihdp_gen.tau.mean() < 6.0


def test_table_and_base_errors():
    with pytest.raises(CInAValidationError, match="unknown realistic table"):
        realistic_generator("lalonde")
    with pytest.raises(CInAValidationError, match="base"):
        realistic_generator("ihdp", 9)
    with pytest.raises(CInAValidationError, match="takes no base"):
        realistic_generator("twins", 1)
    assert generator_name("acic2016", 28) == "acic-s28"
    assert set(REALISTIC_TABLES) == {"lalonde-psid", "lalonde-cps", "twins", "ihdp", "acic2016"}


def test_realistic_suites_listing():
    names = resolve_suites("realistic")
    assert names == list(GROUPS["realistic"])
    assert {"realistic-psid", "realistic-psid-att", "realistic-cps", "realistic-cps-att",
            "realistic-twins", "realistic-ihdp", "realistic-acic"} == set(names)
    for suite in names:
        specs = suite_datasets(suite)  # listing loads nothing
        assert len(specs) >= 20
        assert len({s.name for s in specs}) == len(specs)
        assert all(s.name.startswith("realistic-") for s in specs)
        assert all(("-att-" in s.name) == suite.endswith("-att") for s in specs)


@pytest.mark.slow
def test_realistic_suite_dataset_loads_under_its_name(ihdp_gen):
    spec = suite_datasets("realistic-ihdp")[2]
    ds = spec.load()
    assert ds.name == spec.name and ds.estimand == "ate"
    assert ds.true_effect == pytest.approx(ds.sample_effect(), abs=1e-12)
