"""Reference tests of the Gaussian-process helpers behind the lam rule, the standard error and
the kernel-augmented estimate, against hand-written eigendecomposition implementations."""

from __future__ import annotations

import numpy as np
import pytest

from cina.balancing import attention_kernel, median_bandwidth, standardize
from cina.balancing.outcome import gp_outcome_fit, gp_outcome_predictions
from cina.balancing.tuning import (
    LAM_DEFAULT,
    LAM_MAX,
    LAM_MIN,
    _tridiagonal_gp_terms,
    gp_noise_ratio,
    select_lam_rel,
)


def _data(seed: int, n: int, d: int = 3, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    t[:3], t[3:6] = 1, 0
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + t + noise * rng.normal(size=n)
    Z, _, _ = standardize(X)
    return Z, t, y


def _reference_nll(K, t, y, grid):
    """The pooled GP negative log marginal likelihood from full eigendecompositions."""
    parts = []
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        lam, V = np.linalg.eigh(K[np.ix_(idx, idx)])
        lam = np.maximum(lam, 0.0)
        parts.append((lam, (V.T @ (y[idx] - y[idx].mean())) ** 2))
    n = sum(len(lam) for lam, _ in parts)
    nll = []
    for r in grid:
        quad = sum(np.sum(p2 / (lam + r)) for lam, p2 in parts)
        logdet = sum(np.sum(np.log(lam + r)) for lam, _ in parts)
        nll.append(n * np.log(quad / n) + logdet)
    return np.array(nll)


def test_tridiagonal_terms_match_dense_linear_algebra():
    rng = np.random.default_rng(0)
    Z, _, _ = _data(0, 60)
    K = attention_kernel(Z, 3.0)
    v = rng.normal(size=60)
    grid = np.array([1e-3, 0.05, 1.0, 30.0])
    quad, logdet = _tridiagonal_gp_terms(K, v, grid)
    for g, r in enumerate(grid):
        A = K + r * np.eye(60)
        assert quad[g] == pytest.approx(v @ np.linalg.solve(A, v), rel=1e-9)
        assert logdet[g] == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("n", [12, 150, 400])
def test_noise_ratio_matches_eigendecomposition_reference(n):
    Z, t, y = _data(1, n)
    K = attention_kernel(Z, median_bandwidth(Z))
    r, grid, nll = gp_noise_ratio(K, t, y)
    ref = _reference_nll(K, t, y, grid)
    np.testing.assert_allclose(nll, ref, rtol=1e-9, atol=1e-8)
    assert r == grid[int(np.argmin(ref))]


def test_noise_ratio_tracks_the_noise_level():
    # more outcome noise -> a larger noise-to-signal ratio (statistical, seeded)
    Z, t, y_quiet = _data(2, 300, noise=0.05)
    _, _, y_loud = _data(2, 300, noise=1.5)
    K = attention_kernel(Z, median_bandwidth(Z))
    assert gp_noise_ratio(K, t, y_loud)[0] > 10 * gp_noise_ratio(K, t, y_quiet)[0]


def test_select_lam_rel_clips_and_handles_missing_or_constant_outcome():
    Z, t, y = _data(3, 200)
    bw = median_bandwidth(Z)
    lam, info = select_lam_rel(Z, t, y, bandwidth=bw)
    assert LAM_MIN <= lam <= LAM_MAX and info["lam_rule"] == "gp-marginal-likelihood"
    assert select_lam_rel(Z, t, None, bandwidth=bw)[0] == LAM_DEFAULT
    assert select_lam_rel(Z, t, np.ones(200), bandwidth=bw)[0] == LAM_DEFAULT
    # pure noise: the ratio runs to the top of the grid and is clipped to LAM_MAX
    noise = np.random.default_rng(3).normal(size=200)
    assert select_lam_rel(Z, t, noise, bandwidth=bw)[0] == LAM_MAX


def _reference_outcome_fit(Z, t, y, bw, ridge):
    """Per-arm kernel ridge by eigendecomposition (all units in the basis)."""
    preds, resid = [np.empty(len(y)), np.empty(len(y))], np.empty(len(y))
    for arm in (0, 1):
        idx = np.flatnonzero(t == arm)
        Zb = Z[idx]
        s_bb = Zb @ Zb.T / bw
        lh_b = np.log(np.exp(s_bb).sum(1))
        diag = np.diag(s_bb) - 2 * lh_b
        c = np.log(np.mean(np.exp(diag)))
        Kbb = np.exp(s_bb - lh_b[:, None] - lh_b[None, :] - c)
        lam, V = np.linalg.eigh(Kbb)
        mean = y[idx].mean()
        proj = V.T @ (y[idx] - mean)
        coef = V @ (proj / (lam + ridge))
        s_qb = Z @ Zb.T / bw
        K_qb = np.exp(s_qb - np.log(np.exp(s_qb).sum(1))[:, None] - lh_b[None, :] - c)
        preds[arm] = mean + K_qb @ coef
        h = np.einsum("ij,j,ij->i", V, lam / (lam + ridge), V) + 1.0 / len(idx)
        fitted = mean + V @ (lam / (lam + ridge) * proj)
        resid[idx] = (y[idx] - fitted) / (1.0 - np.minimum(h, 0.99))
    return preds[0], preds[1], resid


def test_outcome_fit_matches_eigendecomposition_reference():
    Z, t, y = _data(4, 150)
    bw = median_bandwidth(Z)
    m0, m1, resid = gp_outcome_fit(Z, t, y, bandwidth=bw, ridge=0.07)
    r0, r1, rres = _reference_outcome_fit(Z, t, y, bw, 0.07)
    np.testing.assert_allclose(m0, r0, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m1, r1, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(resid, rres, rtol=1e-8, atol=1e-10)
    p0, p1 = gp_outcome_predictions(Z, t, y, bandwidth=bw, ridge=0.07)
    np.testing.assert_array_equal(p0, m0)
    np.testing.assert_array_equal(p1, m1)


def test_outcome_fit_on_a_subsample_gives_plain_residuals_elsewhere():
    Z, t, y = _data(5, 300)
    bw = median_bandwidth(Z)
    y_copy = y.copy()
    m0, m1, resid = gp_outcome_fit(Z, t, y, bandwidth=bw, ridge=0.1, max_units=50)
    np.testing.assert_array_equal(y, y_copy)  # inputs are never modified
    fitted = np.where(t == 1, m1, m0)
    plain = np.isclose(resid, y - fitted, rtol=0, atol=1e-12)
    # 50 basis units per arm get leave-one-out residuals (never equal to the plain ones)
    assert (~plain).sum() == 100


def test_median_bandwidth_matches_pairwise_definition():
    rng = np.random.default_rng(6)
    for n in (2, 3, 7, 40):
        Z = rng.normal(size=(n, 3))
        pairs = [np.sum((Z[i] - Z[j]) ** 2) for i in range(n) for j in range(i + 1, n)]
        assert median_bandwidth(Z) == pytest.approx(np.median(pairs) / 2, rel=1e-10)
    assert median_bandwidth(np.zeros((1, 3))) == 0.5
    # all rows tied but one: the median is 0, the rule falls back to the mean over pairs
    Z = np.zeros((10, 2))
    Z[0] = 1.0
    assert median_bandwidth(Z) == pytest.approx(np.mean([2.0] * 9 + [0.0] * 36) / 2)


def test_loo_residuals_equal_the_full_fit_residuals():
    # the residual-only path skips the predictions that no residual needs
    from cina.balancing.outcome import gp_loo_residuals

    Z, t, y = _data(7, 400)
    bw = median_bandwidth(Z)
    for max_units in (1000, 60):  # every unit in the basis; a subsampled basis
        full = gp_outcome_fit(Z, t, y, bandwidth=bw, ridge=0.05, max_units=max_units)[2]
        only = gp_loo_residuals(Z, t, y, bandwidth=bw, ridge=0.05, max_units=max_units)
        np.testing.assert_allclose(only, full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bandwidth", [None, 0.05, 1e-4])
def test_one_pass_kernel_matches_the_log_space_definition(bandwidth):
    # attention_kernel builds k with one exp pass; at a tiny bandwidth (1e-4) its column
    # factor overflows and the log-space form is used instead: both match the definition
    from scipy.special import logsumexp

    from cina.balancing.kernel import attention_log_kernel

    rng = np.random.default_rng(8)
    Z = rng.normal(size=(120, 4))
    bw = median_bandwidth(Z) if bandwidth is None else bandwidth
    log_k = attention_log_kernel(Z, bw)
    log_k -= logsumexp(np.diag(log_k)) - np.log(len(Z))
    K = attention_kernel(Z, bw)
    assert np.all(np.isfinite(K))
    np.testing.assert_allclose(K, np.exp(log_k), rtol=1e-12, atol=1e-14 * np.abs(K).max())
    assert np.mean(np.diag(K)) == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("m", [1, 2, 5, 6, 101, 1000])
def test_in_place_median_is_numpys_median(m):
    from cina.balancing.kernel import _median_in_place

    x = np.random.default_rng(m).normal(size=m)
    assert _median_in_place(x.copy()) == np.median(x)
