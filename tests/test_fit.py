"""Algorithm 1 (torch balancing attention) against the exact QP: a reference test of Theorem 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cina.balancing import attention_kernel, median_bandwidth, solve_balancing_weights, standardize
from cina.errors import CInAValidationError
from cina.model.attention import BalancingAttention, KeyMap, log_attention_kernel
from cina.solvers.attention_fit import fit_balancing_attention


def make_data(seed: int, n: int = 300, d: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    y = X[:, 0] + t * (1 + X[:, 1]) + rng.normal(size=n)
    Z, _, _ = standardize(X)
    return Z, t, y


@pytest.mark.parametrize("balance,estimand", [("mutual", "ate"), ("target", "ate"),
                                              ("target", "att")])
def test_frozen_kernel_fit_matches_exact_solver(balance, estimand):
    """Theorem 1: with the key map frozen, the trained attention's slack read-off equals the
    exact optimal balancing weights (issue bar: corr >= 0.999, max diff <= 1e-3 of the largest
    weight at N = 300, ATE equal to 3 decimals)."""
    Z, t, y = make_data(0)
    bw = median_bandwidth(Z)
    exact = solve_balancing_weights(attention_kernel(Z, bw), t, 0.1, balance=balance,
                                    estimand=estimand).alpha
    fitted = fit_balancing_attention(Z, t, bandwidth=bw, lam_rel=0.1, balance=balance,
                                     estimand=estimand).alpha
    w = 2 * t - 1
    assert np.corrcoef(exact, fitted)[0, 1] >= 0.999
    assert np.abs(exact - fitted).max() <= 1e-3 * exact.max()
    assert round(float(exact @ (w * y)), 3) == round(float(fitted @ (w * y)), 3)


def test_float32_and_representer_readoff_run_and_are_close():
    Z, t, _ = make_data(1, n=150)
    bw = median_bandwidth(Z)
    exact = solve_balancing_weights(attention_kernel(Z, bw), t, 0.1, balance="mutual").alpha
    f32 = fit_balancing_attention(Z, t, bandwidth=bw, lam_rel=0.1, balance="mutual",
                                  dtype="float32", tol=1e-4).alpha
    assert np.corrcoef(exact, f32)[0, 1] > 0.99
    rep = fit_balancing_attention(Z, t, bandwidth=bw, lam_rel=0.1, balance="mutual",
                                  readoff="representer").alpha
    assert np.corrcoef(exact, rep)[0, 1] > 0.95


def test_learned_kernel_keeps_guards():
    Z, t, _ = make_data(2, n=120)
    res = fit_balancing_attention(Z, t, bandwidth=median_bandwidth(Z), lam_rel=0.1,
                                  learn_kernel="linear", max_iter=300)
    a = res.alpha
    assert (a >= 0).all() and a[t == 1].sum() == pytest.approx(1)
    assert res.info["delta_ratio"] > 0 and np.isfinite(res.info["delta_ratio"])
    # the bandwidth guard: keys keep the mean squared norm of z
    km = KeyMap(Z.shape[1], "linear").double()
    with torch.no_grad():
        km.net.weight.mul_(10.0)
    with torch.no_grad():
        q = km(torch.as_tensor(Z))
    assert float((q * q).sum(1).mean()) == pytest.approx(float((Z * Z).sum(1).mean()))


def test_layer_kernel_matches_numpy_and_is_permutation_equivariant():
    Z, t, _ = make_data(3, n=50)
    bw = 4.0
    layer = BalancingAttention(50, Z.shape[1], bw)
    K = layer.kernel(torch.as_tensor(Z)).numpy()
    np.testing.assert_allclose(K, attention_kernel(Z, bw), rtol=1e-10)
    perm = np.random.default_rng(4).permutation(50)
    lk = log_attention_kernel(torch.as_tensor(Z[perm]), bw).numpy()
    np.testing.assert_allclose(lk, np.log(K)[np.ix_(perm, perm)], atol=1e-10)


def test_fit_option_errors():
    Z, t, _ = make_data(5, n=40)
    with pytest.raises(CInAValidationError, match="readoff must be one of"):
        fit_balancing_attention(Z, t, bandwidth=1.0, lam_rel=0.1, readoff="dual")
    with pytest.raises(CInAValidationError, match="learn_kernel must be"):
        fit_balancing_attention(Z, t, bandwidth=1.0, lam_rel=0.1, learn_kernel="cnn")
    with pytest.raises(CInAValidationError, match="dtype must be"):
        fit_balancing_attention(Z, t, bandwidth=1.0, lam_rel=0.1, dtype="float16")
