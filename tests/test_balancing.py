"""Reference, property and unit tests of the balancing math (kernel, QP solver, weights)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from cina.balancing import (
    attention_kernel,
    attention_log_kernel,
    balancing_objective,
    median_bandwidth,
    project_capped_simplex,
    resolve_bandwidth,
    solve_balancing_weights,
    solve_simplex_qp,
    standardize,
)
from cina.errors import CInAValidationError


def make_data(seed: int, n: int = 120, d: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    e = 1 / (1 + np.exp(-(X[:, 0] - 0.5 * X[:, 1])))
    t = (rng.random(n) < e).astype(int)
    t[:2], t[2:4] = 1, 0
    Z, _, _ = standardize(X)
    return Z, t


# --- kernel ---------------------------------------------------------------------------------

def test_attention_kernel_matches_naive_softmax_definition():
    Z, _ = make_data(0, n=40)
    bw = 3.0
    s = Z @ Z.T / bw
    E = np.exp(s)
    h = E.sum(axis=1)
    naive = E / np.outer(h, h)  # k_ij = E_ij / (h_i h_j), METHOD section 4
    np.testing.assert_allclose(np.exp(attention_log_kernel(Z, bw)), naive, rtol=1e-10)
    # the softmax rows S = E / h reproduce K v = S (v / h)
    S = softmax(s, axis=1)
    v = np.random.default_rng(1).normal(size=40)
    np.testing.assert_allclose(naive @ v, S @ (v / h), rtol=1e-10)
    K = attention_kernel(Z, bw)
    np.testing.assert_allclose(K, naive / np.mean(np.diag(naive)), rtol=1e-10)
    assert np.mean(np.diag(K)) == pytest.approx(1.0)


def test_kernel_is_psd_and_survives_huge_scores():
    Z, _ = make_data(2, n=60)
    K = attention_kernel(Z * 50, 0.01)  # scores ~ 1e6: overflow without log space
    assert np.isfinite(K).all()
    eig = np.linalg.eigvalsh(0.5 * (K + K.T))
    assert eig.min() > -1e-8 * eig.max()


def test_median_bandwidth_is_about_d_for_standard_normal():
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(800, 20))
    # E|z_i - z_j|^2 = 2d, so the median heuristic is close to d
    assert median_bandwidth(Z) == pytest.approx(20, rel=0.1)


def test_resolve_bandwidth_rules_and_errors():
    Z, _ = make_data(4, d=9)
    assert resolve_bandwidth(Z, "sqrt_d") == 3.0
    assert resolve_bandwidth(Z, "d") == 9.0
    assert resolve_bandwidth(Z, 2.5) == 2.5
    with pytest.raises(CInAValidationError, match="positive number"):
        resolve_bandwidth(Z, -1)
    with pytest.raises(CInAValidationError, match="one of"):
        resolve_bandwidth(Z, "wide")


# --- QP solver ------------------------------------------------------------------------------

@pytest.mark.parametrize("cap", [None, 0.05])
def test_projection_onto_capped_simplex(cap):
    rng = np.random.default_rng(5)
    y = rng.normal(size=50)
    x = project_capped_simplex(y, cap)
    assert x.sum() == pytest.approx(1.0)
    assert (x >= 0).all() and (cap is None or (x <= cap + 1e-12).all())
    # optimality: no feasible point among random ones is closer
    for _ in range(50):
        z = project_capped_simplex(y + rng.normal(scale=0.3, size=50), cap)
        assert np.sum((x - y) ** 2) <= np.sum((z - y) ** 2) + 1e-12


def _slsqp_reference(Q, c, groups, cap=None):
    """Independent QP solve with scipy's SLSQP (small problems only)."""
    n = len(c)
    cons = [{"type": "eq", "fun": (lambda x, g=g: x[g].sum() - 1.0),
             "jac": (lambda x, g=g: np.isin(np.arange(n), g).astype(float))} for g in groups]
    x0 = np.concatenate([np.full(len(g), 1.0 / len(g)) for g in groups])
    order = np.argsort(np.concatenate(groups))
    x0 = x0[order]
    res = minimize(lambda x: 0.5 * x @ Q @ x - c @ x, x0, jac=lambda x: Q @ x - c,
                   bounds=[(0, cap)] * n, constraints=cons, method="SLSQP",
                   options={"ftol": 1e-14, "maxiter": 2000})
    return res.x


@pytest.mark.parametrize("balance,estimand", [("mutual", "ate"), ("target", "ate"),
                                              ("target", "att")])
def test_exact_weights_match_independent_qp_solver(balance, estimand):
    Z, t = make_data(6, n=60)
    K = attention_kernel(Z, median_bandwidth(Z))
    lam = 0.1
    sol = solve_balancing_weights(K, t, lam, balance=balance, estimand=estimand)
    # rebuild (P) or the per-arm target problems and solve them with SLSQP
    if balance == "mutual":
        w = 2.0 * t - 1
        Q = 2 * (np.outer(w, w) * K + lam * np.eye(len(t)))
        ref = _slsqp_reference(Q, np.zeros(len(t)), [np.flatnonzero(t == 1),
                                                     np.flatnonzero(t == 0)])
    else:
        ref = np.zeros(len(t))
        target = np.ones(len(t), bool) if estimand == "ate" else t == 1
        arms = (0, 1) if estimand == "ate" else (0,)
        if estimand == "att":
            ref[t == 1] = 1 / t.sum()
        for a in arms:
            idx = np.flatnonzero(t == a)
            Q = 2 * (K[np.ix_(idx, idx)] + lam * np.eye(len(idx)))
            c = 2 * K[np.ix_(idx, np.flatnonzero(target))].mean(axis=1)
            ref[idx] = _slsqp_reference(Q, c, [np.arange(len(idx))])
    np.testing.assert_allclose(sol.alpha, ref, atol=2e-6 * ref.max() + 1e-8)
    obj_ref, _ = balancing_objective(K, t, ref, lam, balance, estimand)
    assert sol.objective <= obj_ref * (1 + 1e-9)


def test_mutual_weights_equal_the_svm_dual_solution_of_libsvm():
    """(P) and its SVM dual (D): alpha* = b*/s, with b* from an L2-SVM = hard-margin SVC on
    the precomputed kernel K + lam I (METHOD section 3)."""
    from sklearn.svm import SVC

    Z, t = make_data(7, n=150)
    K = attention_kernel(Z, median_bandwidth(Z))
    lam = 0.2
    sol = solve_balancing_weights(K, t, lam, balance="mutual")
    w = 2 * t - 1
    svc = SVC(kernel="precomputed", C=1e8, tol=1e-10).fit(K + lam * np.eye(len(t)), w)
    b = np.zeros(len(t))
    b[svc.support_] = np.abs(svc.dual_coef_[0])
    alpha_svm = b.copy()
    for a in (0, 1):
        alpha_svm[t == a] /= b[t == a].sum()
    np.testing.assert_allclose(sol.alpha, alpha_svm, atol=1e-5 * sol.alpha.max())
    # the solver's dual variables are b* = (2 / p*) alpha*, the optimum of (D)
    np.testing.assert_allclose(sol.svm_dual, b, rtol=1e-4, atol=1e-6 * b.max())


def test_qp_solver_reports_exact_kkt_and_handles_caps():
    rng = np.random.default_rng(8)
    A = rng.normal(size=(30, 30))
    Q = A @ A.T + 0.1 * np.eye(30)
    c = rng.normal(size=30)
    groups = [np.arange(15), np.arange(15, 30)]
    res = solve_simplex_qp(Q, c, groups, cap=0.2)
    ref = _slsqp_reference(Q, c, groups, cap=0.2)
    assert res.kkt_residual < 1e-8
    np.testing.assert_allclose(res.x, ref, atol=1e-6)
    assert (res.x <= 0.2 + 1e-12).all()


# --- weights: properties --------------------------------------------------------------------

@pytest.mark.parametrize("balance,estimand,penalty", [
    ("target", "ate", "squared_hinge"), ("target", "att", "squared_hinge"),
    ("mutual", "ate", "squared_hinge"), ("target", "ate", "hinge"), ("mutual", "ate", "hinge")])
def test_weights_nonnegative_normalised_and_permutation_equivariant(balance, estimand, penalty):
    Z, t = make_data(9, n=80)
    bw = median_bandwidth(Z)
    lam = 0.3 if penalty == "hinge" else 0.1
    a = solve_balancing_weights(attention_kernel(Z, bw), t, lam, balance=balance,
                                estimand=estimand, penalty=penalty).alpha
    assert (a >= 0).all()
    assert a[t == 1].sum() == pytest.approx(1) and a[t == 0].sum() == pytest.approx(1)
    if penalty == "hinge":
        for arm in (0, 1):
            assert a[t == arm].max() <= 1 / (lam * (t == arm).sum()) + 1e-9
    perm = np.random.default_rng(10).permutation(len(t))
    a_perm = solve_balancing_weights(attention_kernel(Z[perm], bw), t[perm], lam,
                                     balance=balance, estimand=estimand, penalty=penalty).alpha
    np.testing.assert_allclose(a_perm, a[perm], atol=1e-7 * a.max())


def test_larger_lam_gives_more_uniform_weights_and_worse_balance():
    Z, t = make_data(11, n=150)
    K = attention_kernel(Z, median_bandwidth(Z))
    sols = [solve_balancing_weights(K, t, lam) for lam in (0.01, 0.1, 1.0, 10.0)]
    ess = [1 / np.sum(s.alpha[t == 0] ** 2) for s in sols]
    mmd = [s.mmd2 for s in sols]
    assert all(np.diff(ess) > 0) and all(np.diff(mmd) > 0)


def test_target_balance_reduces_kernel_imbalance_to_the_population():
    Z, t = make_data(12, n=200)
    K = attention_kernel(Z, median_bandwidth(Z))
    uniform = np.where(t == 1, 1 / t.sum(), 1 / (len(t) - t.sum()))
    sol = solve_balancing_weights(K, t, 0.1)
    _, mmd_uniform = balancing_objective(K, t, uniform, 0.1)
    assert sol.mmd2 < 0.2 * mmd_uniform


def test_option_errors():
    Z, t = make_data(13, n=30)
    K = attention_kernel(Z, 2.0)
    with pytest.raises(CInAValidationError, match="balance must be one of"):
        solve_balancing_weights(K, t, 0.1, balance="both")
    with pytest.raises(CInAValidationError, match="estimand must be one of"):
        solve_balancing_weights(K, t, 0.1, estimand="atc")
    with pytest.raises(CInAValidationError, match="penalty must be one of"):
        solve_balancing_weights(K, t, 0.1, penalty="l1")
    with pytest.raises(CInAValidationError, match="for the ATT use balance='target'"):
        solve_balancing_weights(K, t, 0.1, balance="mutual", estimand="att")
    with pytest.raises(CInAValidationError, match=r"lam_rel must be in \(0, 1\]"):
        solve_balancing_weights(K, t, 2.0, penalty="hinge")


def test_logsumexp_helper_matches_scipy():
    from cina.balancing.kernel import _row_logsumexp

    s = np.random.default_rng(14).normal(scale=30, size=(2100, 7))
    np.testing.assert_allclose(_row_logsumexp(s), logsumexp(s, axis=1), rtol=1e-12)
