"""The large-N paths: the auto kernel policy, the memory budget (a fit that must take the
low-rank path allocates no N x N array), the standard error on a weighted sample, and the
progress bars of the long stages."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

from cina import CInA
from cina import effect as effect_module
from cina import estimator as estimator_module
from cina.kernels import (
    LOWRANK_KIND,
    NystromKernel,
    make_kernel,
    resolve_kernel_kind,
)
from cina.solvers.exact import ExactQPSolver


def _design(n, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    return X, t, X[:, 0] + 2.0 * t + rng.normal(size=n)


def _fit(**kw):
    """A fit with the plain weighting estimate: the kernel paths and the standard error's sample
    are what these tests look at (an outcome model would replace that se, and time no kernel)."""
    X, t, y = kw.pop("data")
    kw.setdefault("augment", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CInA(**kw).fit(X, t, y)


# -- the auto policy ---------------------------------------------------------------------------
def test_auto_policy_thresholds():
    big = 10**12
    assert resolve_kernel_kind("auto", 3999, 5, dense_budget_bytes=big, lowrank_from=4000) \
        == "dense"
    assert resolve_kernel_kind("auto", 4000, 5, dense_budget_bytes=big, lowrank_from=4000) \
        == LOWRANK_KIND
    # without a size threshold only the budget decides; beyond it the low-rank form
    assert resolve_kernel_kind("auto", 50_000, 5, dense_budget_bytes=big) == "dense"
    assert resolve_kernel_kind("auto", 3000, 5, dense_budget_bytes=8 * 2000**2) == LOWRANK_KIND
    for kind in ("dense", "nystrom", "random-features", "streamed"):  # forcing each
        assert resolve_kernel_kind(kind, 10, 5, dense_budget_bytes=1) == kind
    assert ExactQPSolver.kernel_settings()["lowrank_from"] == ExactQPSolver.LOWRANK_FROM


def test_exact_takes_the_low_rank_path_from_its_threshold(monkeypatch):
    monkeypatch.setattr(ExactQPSolver, "LOWRANK_FROM", 500)
    est = _fit(method="exact", data=_design(600))
    assert est.result_.info["kernel"] == "nystrom"
    assert "newton_steps" in est.result_.info
    est = _fit(method="exact", data=_design(400))
    assert est.result_.info["kernel"] == "dense"


# -- the memory budget ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["exact", "zero-shot"])
def test_a_small_budget_forces_the_low_rank_path_without_n_by_n_arrays(method, monkeypatch):
    n = 8000
    budget = 8 * 2000**2  # a dense matrix of 2,000 units: N = 8,000 cannot be dense
    if method == "exact":
        monkeypatch.setattr(ExactQPSolver, "dense_budget_bytes", budget)
    else:
        from cina.solvers.zero_shot import ZeroShotSolver

        original = ZeroShotSolver.kernel_settings.__func__

        def small(cls):
            return {**original(cls), "dense_budget_bytes": budget}

        monkeypatch.setattr(ZeroShotSolver, "kernel_settings", classmethod(small))
    built = []

    def recording_make_kernel(*args, **kwargs):
        op = make_kernel(*args, **kwargs)
        built.append(op)
        return op

    monkeypatch.setattr(estimator_module, "make_kernel", recording_make_kernel)
    data = _design(n)
    _fit(method=method, data=_design(300))  # imports, model load, caches: outside the trace
    built.clear()
    tracemalloc.start()
    try:
        est = _fit(method=method, data=data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert est.result_.info["kernel"] == LOWRANK_KIND
    (op,) = built
    assert isinstance(op, NystromKernel) and op.dense() is None
    assert op.nbytes <= budget
    # even a float32 N x N array is 256 MB; the factor and its build blocks (O(N m)) and the
    # rules' fixed 1,000-unit matrices (lam rule, bandwidth, standard error) stay below half
    n_by_n = 4 * n * n
    assert peak < n_by_n / 2, f"numpy peak {peak / 1e6:.1f} MB: an N x N array was allocated"


def test_the_low_rank_factor_shrinks_to_the_budget():
    X, _, _ = _design(5000)
    op = make_kernel(X, 5.0, "nystrom", dense_budget_bytes=8 * 5000 * 100)
    assert op.Phi.nbytes <= 8 * 5000 * 100
    assert op.rank >= 32


# -- the standard error at large N -----------------------------------------------------------------
def test_se_sample_is_unbiased_and_skips_zero_weights():
    rng = np.random.default_rng(0)
    alpha = rng.exponential(size=20_000) * (rng.random(20_000) < 0.7)
    alpha /= alpha.sum()
    r2 = rng.chisquare(3, size=20_000)
    total = float(np.sum(alpha**2 * r2))
    estimates = []
    for seed in range(200):
        rows, inv_pi = effect_module.se_sample(alpha, size=2000, seed=seed)
        assert np.all(alpha[rows] > 0)
        estimates.append(float(np.sum(alpha[rows] ** 2 * r2[rows] * inv_pi)))
    estimates = np.array(estimates)
    se = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - total) < 5 * se
    rows, inv_pi = effect_module.se_sample(alpha[:100], size=2000)
    assert np.all(inv_pi == 1.0) and len(rows) == np.count_nonzero(alpha[:100])


def test_large_n_standard_error_on_a_sample_is_close_to_the_full_sum(monkeypatch):
    data = _design(4000)
    full = _fit(method="exact", lam_rel=0.1, data=data)
    monkeypatch.setattr(effect_module, "SE_SAMPLE_FROM", 1000)
    monkeypatch.setattr(effect_module, "SE_SAMPLE_SIZE", 1500)
    sampled = _fit(method="exact", lam_rel=0.1, data=data)
    assert sampled.result_.info["se_units"] <= 2000
    # the same estimate: the thread policy picks each fit's threads from the machine's load, so
    # BLAS sums may round differently between the two fits (last bits only)
    assert sampled.effect_ == pytest.approx(full.effect_, rel=1e-12)
    assert sampled.se_ == pytest.approx(full.se_, rel=0.1)


# -- progress bars ---------------------------------------------------------------------------------
def test_progress_bars_on_request_and_off_when_not_a_terminal(capsys):
    X, t, _ = _design(2000)
    NystromKernel(X, 5.0, rank=32)  # default: no terminal here, no bar
    assert capsys.readouterr().err == ""
    op = NystromKernel(X, 5.0, rank=32, progress=True, progress_desc="nystrom kernel")
    assert "nystrom kernel" in capsys.readouterr().err
    from cina.solvers.factor_dual import solve_factor_balancing

    Phi, delta = op.factor()
    solve_factor_balancing(Phi, delta, t, 0.1, progress=True)
    assert "dual Newton" in capsys.readouterr().err
    solve_factor_balancing(Phi, delta, t, 0.1)
    assert capsys.readouterr().err == ""
