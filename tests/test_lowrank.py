"""Low-rank kernel operators (Nystrom, positive random features) and the exact solver's dual
path on them: reference tests against the dense kernel, properties, and the solvers running on
the operators unchanged."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cina import CInA
from cina.balancing import resolve_bandwidth, standardize
from cina.balancing.weights import solve_balancing_weights
from cina.kernels import (
    DenseKernel,
    NystromKernel,
    RandomFeatureKernel,
    kernel_kinds,
    make_kernel,
)
from cina.kernels.lowrank import (
    LogMeanSum,
    NormaliserSum,
    log_diagonal,
    log_unit_scales,
    normalised_factor_rows,
    scaled_keys,
)
from cina.kernels.nystrom import NystromMap, _gaussian, select_landmarks
from cina.kernels.random_features import RandomFeatureMap
from cina.solvers.factor_dual import solve_factor_balancing, weighted_simplex_projection


def _data(n=400, d=6, seed=0, outlier=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, d // 2:] = (X[:, d // 2:] > 0.3).astype(float)
    if outlier:
        X[0, 0] = 60.0  # 60 sd out before standardising: exp(|q|^2 / 2) ~ e^100
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0].clip(-5, 5)))).astype(int)
    y = X[:, 0] + t + rng.normal(size=n)
    Z = standardize(X)[0]
    return X, Z, t, y, resolve_bandwidth(Z, None)


def _matrix(op) -> np.ndarray:
    return op.matvec(np.eye(op.n))


def test_kinds_registered():
    assert {"nystrom", "random-features"} <= set(kernel_kinds())


# -- reference: against the dense kernel ----------------------------------------------------------
def test_nystrom_with_every_unit_a_landmark_is_the_dense_kernel():
    _, Z, _, _, bw = _data(n=150)
    K = DenseKernel(Z, bw).dense()
    op = NystromKernel(Z, bw, rank=150)
    np.testing.assert_allclose(_matrix(op), K, rtol=0, atol=1e-8 * np.abs(K).max())
    np.testing.assert_allclose(op.diagonal(), np.diag(K), rtol=1e-9)


@pytest.mark.parametrize("m", [32, 128])
def test_nystrom_matvec_error_within_the_nystrom_residual(m):
    # K - K_op comes from (a) the Gaussian part's Nystrom residual G - F F' (PSD, trace
    # sum_i (1 - |F_i|^2)) and (b) the normalisers computed with it. The mat-vec error is
    # bounded by the residual's trace times the largest per-unit factor a_i a_j / (h_i h_j c):
    # a tolerance derived from m through the residual actually left.
    _, Z, _, _, bw = _data(n=400)
    K = DenseKernel(Z, bw).dense()
    op = NystromKernel(Z, bw, rank=m)
    q = scaled_keys(Z, bw)
    F = op.feature_map.rows(q).F
    trace_resid = float(np.sum(1.0 - np.einsum("ij,ij->i", F, F)))
    rng = np.random.default_rng(1)
    V = rng.normal(size=(400, 3))
    err = np.linalg.norm(op.matvec(V) - K @ V, 2) / np.linalg.norm(V, 2)
    scale = np.abs(K).max() / 1.0  # k_ij <= max entry; g_ij <= 1
    assert err <= 2.0 * trace_resid * scale + 1e-12


def test_nystrom_error_falls_with_rank():
    _, Z, _, _, bw = _data(n=500)
    K = DenseKernel(Z, bw).dense()
    errs = [np.linalg.norm(_matrix(NystromKernel(Z, bw, rank=m)) - K) for m in (16, 64, 256)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05 * np.linalg.norm(K)


def test_nystrom_residual_of_the_gaussian_part_is_psd():
    _, Z, _, _, bw = _data(n=200)
    q = scaled_keys(Z, bw)
    fmap = NystromMap.fit(q, 40, seed=3)
    F = fmap.rows(q).F
    resid = _gaussian(q, q) - F @ F.T
    assert np.linalg.eigvalsh(resid).min() > -1e-9
    # exact on the landmarks' columns
    Fl = fmap.rows(fmap.landmarks).F
    np.testing.assert_allclose(F @ Fl.T, _gaussian(q, fmap.landmarks), atol=1e-7)


def test_random_features_are_unbiased_for_the_exponentiated_scores():
    # E[psi(q) . psi(q')] = exp(q . q'): the mean over independent maps within 5 standard errors
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 4)) * 0.4
    target = np.exp(q @ q.T)
    draws = []
    for seed in range(300):
        rows = RandomFeatureMap.draw(4, 64, seed=seed).rows(q)
        Psi = np.exp(rows.log_scale)[:, None] * rows.F
        draws.append(Psi @ Psi.T)
    draws = np.array(draws)
    se = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - target) <= 5 * se + 1e-12)


# -- properties ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [NystromKernel, RandomFeatureKernel])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_operator_properties(cls, dtype):
    _, Z, t, _, bw = _data(n=300)
    op = cls(Z, bw, rank=48, dtype=dtype)
    rtol = 1e-10 if dtype == "float64" else 1e-5
    K = _matrix(op)
    np.testing.assert_allclose(K, K.T, atol=rtol * np.abs(K).max())  # symmetric
    assert np.linalg.eigvalsh(0.5 * (K + K.T)).min() > -rtol * np.abs(K).max() * 300  # PSD
    assert op.diagonal().mean() == pytest.approx(1.0, rel=1e-9)  # normalised
    np.testing.assert_allclose(np.diag(K), op.diagonal(), rtol=max(rtol, 1e-9) * 10)
    dens = op.arm_densities(t)
    np.testing.assert_allclose(dens[:, 0] + dens[:, 1], op.matvec(np.ones(300)), rtol=1e-5)
    np.testing.assert_allclose(dens[:, 0], K[:, t == 1].sum(axis=1), rtol=1e-4)
    assert op.nbytes >= op.Phi.nbytes
    assert not op.quadratic_matvec and op.dense() is None
    assert op.bytes_needed(10_000, 6) < DenseKernel.bytes_needed(10_000, 6)


def test_extreme_outlier_stays_finite_and_accurate():
    # an extreme key norm: exp(|q|^2 / 2) overflows float64; the log-scaled rows do not, and the
    # outlier, an anchor landmark, is exact
    _, Z, _, _, bw = _data(n=400, outlier=True)
    K = DenseKernel(Z, bw).dense()
    for cls in (NystromKernel, RandomFeatureKernel):
        op = cls(Z, bw, rank=64)
        assert np.all(np.isfinite(op.Phi)) and np.all(np.isfinite(op.diagonal()))
    op = NystromKernel(Z, bw, rank=64)
    row = op.matvec(np.ones(400))
    # (the outlier's own row is ~1e-27, its own term dominating its normaliser)
    np.testing.assert_allclose(row, K.sum(axis=1), rtol=0.05, atol=1e-9 * K.sum(axis=1).max())


def test_landmarks_are_seeded_and_include_the_anchors():
    _, Z, _, _, bw = _data(n=400, outlier=True)
    q = scaled_keys(Z, bw)
    a = select_landmarks(q, 40, seed=5)
    b = select_landmarks(q, 40, seed=5)
    np.testing.assert_array_equal(a, b)
    assert any(np.array_equal(row, q[0]) for row in a)  # the outlier is a landmark
    u = select_landmarks(q, 40, seed=5, rule="uniform")
    assert u.shape == (40, q.shape[1])
    with pytest.raises(ValueError, match="landmarks must be one of"):
        select_landmarks(q, 40, rule="farthest")


def test_blockwise_build_equals_the_in_memory_operator():
    # the map-and-sum steps a distributed build calls, on uneven partitions in another order
    _, Z, _, _, bw = _data(n=333)
    op = NystromKernel(Z, bw, rank=40, random_state=2)
    q = scaled_keys(Z, bw)
    fmap = op.feature_map
    parts = [np.arange(200, 333), np.arange(0, 57), np.arange(57, 200)]
    rows = {i: fmap.rows(q[p]) for i, p in enumerate(parts)}
    norm = NormaliserSum.of(rows[2]) + NormaliserSum.of(rows[0]) + NormaliserSum.of(rows[1])
    scales = {i: log_unit_scales(r, norm) for i, r in rows.items()}
    diag = LogMeanSum.of(log_diagonal(rows[1], scales[1])) + \
        LogMeanSum.of(log_diagonal(rows[0], scales[0])) + \
        LogMeanSum.of(log_diagonal(rows[2], scales[2]))
    assert diag.log_mean == pytest.approx(op.log_c, rel=1e-12, abs=1e-12)
    for i, p in enumerate(parts):
        Phi, delta = normalised_factor_rows(rows[i], scales[i], diag.log_mean)
        np.testing.assert_allclose(Phi, op.Phi[p], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(delta, op.delta[p], rtol=1e-10, atol=1e-12 * op.delta.max())


def test_budget_lowers_the_rank_and_an_explicit_rank_is_kept():
    _, Z, _, _, bw = _data(n=1000)
    op = make_kernel(Z, bw, "nystrom", dense_budget_bytes=8 * 1000 * 70)
    assert op.rank <= 66
    assert make_kernel(Z, bw, "nystrom", rank=100, dense_budget_bytes=1).rank == 100


# -- the exact solver's dual path ------------------------------------------------------------------
def test_weighted_simplex_projection_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        beta = rng.normal(size=n) * rng.choice([0.01, 1, 100])
        lam = rng.uniform(0.1, 3, size=n)
        alpha, _ = weighted_simplex_projection(beta, lam, nu0=float(rng.normal()))
        # KKT: alpha >= 0, sums to 1, lam alpha - beta = -nu on the support, >= -nu off it
        assert alpha.min() >= 0 and alpha.sum() == pytest.approx(1.0, abs=1e-12)
        g = lam * alpha - beta
        sup = alpha > 0
        assert np.ptp(g[sup]) < 1e-9 * max(1.0, np.abs(beta).max())
        if (~sup).any():
            assert g[~sup].min() >= g[sup].max() - 1e-9 * max(1.0, np.abs(beta).max())


@pytest.mark.parametrize("balance,estimand", [("target", "ate"), ("target", "att"),
                                              ("mutual", "ate")])
@pytest.mark.parametrize("lam", [1.0, 0.05])
def test_dual_path_equals_the_dense_qp_on_the_same_operator(balance, estimand, lam):
    _, Z, t, _, bw = _data(n=400)
    op = NystromKernel(Z, bw, rank=60)
    Phi, delta = op.factor()
    ref = solve_balancing_weights(_matrix(op), t, lam, balance=balance, estimand=estimand)
    sol = solve_factor_balancing(Phi, delta, t, lam, balance=balance, estimand=estimand)
    np.testing.assert_allclose(sol.alpha, ref.alpha, atol=1e-7 * ref.alpha.max())
    assert sol.gap < 1e-10 and sol.kkt_residual < 1e-6
    # warm start from the previous lam's dual variables: the same answer
    again = solve_factor_balancing(Phi, delta, t, lam, balance=balance, estimand=estimand,
                                   theta0=sol.theta)
    np.testing.assert_allclose(again.alpha, sol.alpha, atol=1e-9 * sol.alpha.max())
    assert again.iterations <= 1


def _fit(method, kernel, X, t, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CInA(method=method, kernel=kernel, **kw).fit(X, t, y)


@pytest.mark.parametrize("method", ["exact", "zero-shot"])
def test_solvers_run_on_the_low_rank_operator_and_approach_dense(method):
    X, _, t, y, _ = _data(n=400)
    dense = _fit(method, "dense", X, t, y)
    for m, floor in ((100, 0.9), (400, 0.999)):
        from cina.kernels import register_kernel

        cls = type(f"Nystrom{m}", (NystromKernel,), {"default_rank": m})
        register_kernel(f"test-nystrom-{m}", {"float64": cls, "float32": cls})
        low = _fit(method, f"test-nystrom-{m}", X, t, y)
        assert np.corrcoef(low.weights_, dense.weights_)[0, 1] > floor
    assert abs(low.effect_ - dense.effect_) < 1e-3 * np.std(y)
    assert low.result_.info["kernel"] == f"test-nystrom-{400}"


def test_hinge_penalty_takes_the_matvec_path_on_a_low_rank_operator():
    X, _, t, y, _ = _data(n=200)
    # the standardised keys: the path is what this checks (with the relevance key map the hinge
    # QP needs more than its iteration cap here, on the dense kernel as on this one)
    keys = {"metric": "standardized"} if "metric" in CInA().get_params() else {}
    est = _fit("exact", "nystrom", X, t, y, penalty="hinge", lam_rel=0.5, augment=None, **keys)
    dense = _fit("exact", "dense", X, t, y, penalty="hinge", lam_rel=0.5, augment=None, **keys)
    assert "newton_steps" not in est.result_.info
    assert np.all(est.weights_ >= 0)
    # at m = N landmarks (N = 200 < the default rank) the operator is the dense kernel
    np.testing.assert_allclose(est.weights_, dense.weights_, atol=1e-6)
