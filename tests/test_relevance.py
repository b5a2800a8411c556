"""The outcome-informed key map: ARD Gaussian-process relevance (cina.balancing.relevance)."""

import numpy as np
import pytest
from scipy.optimize import check_grad

from cina.balancing.relevance import LENGTH_MAX, _neg_log_lik, fit_relevance


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = np.sin(X[:, 0]) + 0.3 * X[:, 1] + 0.1 * rng.standard_normal(60)
    for _ in range(3):
        p = rng.normal(0.0, 0.4, 6)
        err = check_grad(lambda q: _neg_log_lik(q, X, y)[0], lambda q: _neg_log_lik(q, X, y)[1],
                         p)
        scale = np.linalg.norm(_neg_log_lik(p, X, y)[1])
        assert err <= 1e-5 * max(scale, 1.0)


def test_relevant_covariates_get_short_length_scales():
    rng = np.random.default_rng(1)
    n, d = 400, 10
    Z = rng.standard_normal((n, d))
    t = (rng.random(n) < 0.4).astype(int)
    y = 2.0 * np.sin(Z[:, 0]) + Z[:, 3] + 1.0 * t + 0.2 * rng.standard_normal(n)
    fit = fit_relevance(Z, t, y, seed=0)
    lengths = fit.lengthscales
    irrelevant = np.delete(lengths, [0, 3])
    assert lengths[0] < 0.2 * irrelevant.min()
    assert lengths[3] < 0.2 * irrelevant.min()
    assert fit.noise_var / fit.signal_var < 0.1
    keys = fit.keys(Z)
    assert keys.shape == Z.shape
    np.testing.assert_allclose(keys[:, 0], Z[:, 0] / lengths[0])


def test_pure_noise_outcome_makes_every_covariate_irrelevant():
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((300, 5))
    t = (rng.random(300) < 0.5).astype(int)
    y = rng.standard_normal(300)
    fit = fit_relevance(Z, t, y, seed=0)
    # either the length scales run to the bound or the signal variance vanishes
    assert (fit.lengthscales > 10).all() or fit.signal_var < 0.05 * fit.noise_var
    assert fit.lengthscales.max() <= LENGTH_MAX * (1 + 1e-9)


def test_constant_outcome_returns_none():
    Z = np.random.default_rng(3).standard_normal((50, 3))
    t = np.r_[np.zeros(25, int), np.ones(25, int)]
    assert fit_relevance(Z, t, np.full(50, 2.5)) is None


def test_deterministic_for_a_seed_and_bounded_in_units():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((2000, 3))
    t = (rng.random(2000) < 0.3).astype(int)
    y = Z[:, 0] + rng.standard_normal(2000)
    a = fit_relevance(Z, t, y, seed=5)
    b = fit_relevance(Z, t, y, seed=5)
    np.testing.assert_array_equal(a.lengthscales, b.lengthscales)
    assert a.n_units <= 400


@pytest.mark.parametrize("d", [1, 30])
def test_shapes_for_one_and_many_covariates(d):
    rng = np.random.default_rng(6)
    Z = rng.standard_normal((120, d))
    t = (rng.random(120) < 0.5).astype(int)
    y = Z[:, 0] + 0.5 * rng.standard_normal(120)
    fit = fit_relevance(Z, t, y, max_iter=30)
    assert fit.lengthscales.shape == (d,)
    assert np.all(np.isfinite(fit.lengthscales))
