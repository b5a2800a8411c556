"""Tests of the published simulation designs (cina.datasets.literature) and their suites.

Reference checks compare each design with its equations recomputed here from the latent draws;
statistical checks use seeded draws with tolerances of 4 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from cina.bench.suites import GROUPS, resolve_suites, suite_datasets
from cina.datasets import (
    HAINMUELLER_EFFECTS,
    LITERATURE_DESIGNS,
    hainmueller,
    kang_schafer,
    lunceford_davidian,
    nie_wager,
)
from cina.errors import CInAValidationError

Z = 4.0

ALL = [
    (kang_schafer, {}),
    (kang_schafer, {"observed": "latent"}),
    *[(hainmueller, {"overlap": ov, "outcome": o}) for ov in ("poor", "medium", "good")
      for o in (1, 2, 3)],
    (lunceford_davidian, {"association": "strong"}),
    (lunceford_davidian, {"association": "moderate"}),
    (nie_wager, {"setup": "A"}),
    (nie_wager, {"setup": "C"}),
]


@pytest.mark.parametrize("make, kwargs", ALL)
def test_shapes_truth_and_determinism(make, kwargs):
    ds = make(3, n=500, **kwargs)
    assert ds.n == 500 and ds.estimand == "ate"
    assert ds.X.shape[0] == 500 and ds.X.shape[1] >= 4
    assert set(np.unique(ds.t)) == {0, 1}
    assert ds.true_effect == pytest.approx(np.mean(ds.mu1 - ds.mu0), abs=1e-12)
    assert ds.sample_effect() == pytest.approx(ds.true_effect, abs=1e-12)
    e = ds.meta["propensity"]
    # in [0, 1]: Hainmueller's "medium" design bounds eps below (a rescaled chi-square), so
    # units with a latent index above 12.5 are treated for sure (e = 1)
    assert e.shape == (500,) and np.all((e >= 0) & (e <= 1)) and 0 < e.mean() < 1
    again = make(3, n=500, **kwargs)
    np.testing.assert_array_equal(ds.X.to_numpy(), again.X.to_numpy())
    np.testing.assert_array_equal(ds.t, again.t)
    np.testing.assert_array_equal(ds.y, again.y)
    other = make(4, n=500, **kwargs)
    assert not np.array_equal(other.y, ds.y)
    # y = the treated arm's mean plus noise on the treated, the control arm's elsewhere
    resid = ds.y - np.where(ds.t == 1, ds.mu1, ds.mu0)
    assert abs(resid.mean()) < 0.3 and 0.5 < resid.std() < 1.5  # N(0, 1) noise


def test_kang_schafer_transformation_matches_the_latent_draws():
    lat = kang_schafer(5, n=300, observed="latent")
    obs = kang_schafer(5, n=300)
    Zm = lat.X.to_numpy()
    X = obs.X.to_numpy()
    np.testing.assert_allclose(X[:, 0], np.exp(Zm[:, 0] / 2))
    np.testing.assert_allclose(X[:, 1], Zm[:, 1] / (1 + np.exp(Zm[:, 0])) + 10)
    np.testing.assert_allclose(X[:, 2], (Zm[:, 0] * Zm[:, 2] / 25 + 0.6) ** 3)
    np.testing.assert_allclose(X[:, 3], (Zm[:, 1] + Zm[:, 3] + 20) ** 2)
    np.testing.assert_allclose(obs.meta["propensity"], expit(
        -Zm[:, 0] + 0.5 * Zm[:, 1] - 0.25 * Zm[:, 2] - 0.1 * Zm[:, 3]))
    np.testing.assert_allclose(obs.mu0, 210 + 27.4 * Zm[:, 0] + 13.7 * Zm[:, 1:].sum(axis=1))
    np.testing.assert_allclose(obs.mu1 - obs.mu0, 10 + 6.85 * Zm[:, 0])
    np.testing.assert_array_equal(obs.t, lat.t)


@pytest.mark.parametrize("make, kwargs", [
    (kang_schafer, {}), (nie_wager, {"setup": "A"}),
])
def test_population_ate_within_standard_errors_of_the_sample_truths(make, kwargs):
    """Heterogeneous designs: the mean of the sample ATEs over seeds is the population ATE."""
    truths = np.array([make(s, n=1000, **kwargs).true_effect for s in range(1, 41)])
    population = make(1, n=1000, **kwargs).meta["population_ate"]
    se = truths.std(ddof=1) / np.sqrt(len(truths))
    assert abs(truths.mean() - population) <= Z * se
    assert truths.std() > 0  # the sample truth does vary by seed


@pytest.mark.parametrize("make, kwargs, effect", [
    (lunceford_davidian, {"association": "strong"}, 2.0),
    (nie_wager, {"setup": "C"}, 1.0),
    *[(hainmueller, {"outcome": o}, HAINMUELLER_EFFECTS[o]) for o in (1, 2, 3)],
])
def test_constant_effect_designs(make, kwargs, effect):
    ds = make(2, n=400, **kwargs)
    np.testing.assert_allclose(ds.mu1 - ds.mu0, effect)
    assert ds.meta["population_ate"] == effect


@pytest.mark.parametrize("make, kwargs", ALL)
def test_treatment_follows_the_stated_propensity(make, kwargs):
    """Binned calibration over 20 seeds: the treated share of each quintile of e is its mean e.
    For Hainmueller this checks the closed forms of e (normal cdf, rescaled chi-square)."""
    es, ts = [], []
    for s in range(20):
        ds = make(100 + s, n=1000, **kwargs)
        es.append(ds.meta["propensity"])
        ts.append(ds.t)
    e = np.concatenate(es)
    t = np.concatenate(ts)
    edges = np.quantile(e, np.linspace(0, 1, 6))
    bins = np.clip(np.searchsorted(edges, e, side="right") - 1, 0, 4)
    for b in range(5):
        rows = bins == b
        se = np.sqrt(np.sum(e[rows] * (1 - e[rows]))) / rows.sum()
        assert abs(t[rows].mean() - e[rows].mean()) <= Z * se + 1e-12, (b, kwargs)


def test_hainmueller_covariates():
    ds = hainmueller(9, n=20000)
    X = ds.X.to_numpy()
    cov = np.cov(X[:, :3], rowvar=False)
    target = np.array([[2.0, 1.0, -1.0], [1.0, 1.0, -0.5], [-1.0, -0.5, 1.0]])
    # the sd of a sample covariance of normals is about sqrt((s_ii s_jj + s_ij^2) / n)
    se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target ** 2) / len(X))
    assert np.all(np.abs(cov - target) <= Z * se)
    assert X[:, 3].min() >= -3 and X[:, 3].max() <= 3
    assert X[:, 4].min() >= 0 and abs(X[:, 4].mean() - 1.0) <= Z * np.sqrt(2 / len(X))
    assert set(np.unique(X[:, 5])) == {0.0, 1.0}


def test_lunceford_davidian_structure():
    ds = lunceford_davidian(4, "strong", n=20000)
    X = ds.X
    x3 = X["x3"].to_numpy()
    assert abs(x3.mean() - 0.2) <= Z * np.sqrt(0.16 / len(x3))
    v3 = X["v3"].to_numpy()
    for level, p in ((1, 0.75), (0, 0.25)):
        rows = x3 == level
        assert abs(v3[rows].mean() - p) <= Z * np.sqrt(p * (1 - p) / rows.sum())
    # given X3 = 0 the Gaussian block has mean (-1, -1, 1, 1) in the order (X1, V1, X2, V2)
    block = X.loc[x3 == 0, ["x1", "v1", "x2", "v2"]].to_numpy()
    assert np.all(np.abs(block.mean(axis=0) - [-1, -1, 1, 1]) <= Z / np.sqrt(len(block)))
    assert np.corrcoef(block[:, 0], block[:, 1])[0, 1] == pytest.approx(0.5, abs=0.05)
    assert np.corrcoef(block[:, 0], block[:, 2])[0, 1] == pytest.approx(-0.5, abs=0.05)


@pytest.mark.parametrize("call, match", [
    (lambda: kang_schafer(-1), "seed"),
    (lambda: kang_schafer(1, observed="raw"), "observed"),
    (lambda: hainmueller(1, overlap="bad"), "overlap"),
    (lambda: hainmueller(1, outcome=4), "outcome"),
    (lambda: lunceford_davidian(1, "weak"), "association"),
    (lambda: nie_wager(1, setup="B"), "setup"),
    (lambda: nie_wager(1, d=3), "d must"),
    (lambda: nie_wager(1, n=5), "n must"),
])
def test_argument_errors(call, match):
    with pytest.raises(CInAValidationError, match=match):
        call()


def test_literature_suites():
    names = resolve_suites("literature")
    assert names == list(GROUPS["literature"])
    total = 0
    for suite in names:
        specs = suite_datasets(suite)
        total += len(specs)
        assert len({s.name for s in specs}) == len(specs) >= 18
        first = specs[0].load()
        assert first.name == specs[0].name and first.n == 1000 and first.estimand == "ate"
    assert total >= 50
    assert set(LITERATURE_DESIGNS) == {"kang-schafer", "hainmueller", "lunceford-davidian",
                                       "nie-wager"}
