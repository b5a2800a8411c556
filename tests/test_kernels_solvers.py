"""The kernel-operator and weight-solver interfaces (cina.kernels, cina.solvers).

Unit and reference tests: every operator form gives the library's reference kernel's mat-vecs;
the exact QP on mat-vecs alone gives the dense path's weights; Algorithm 1 and the zero-shot
model run on any operator; the budget policy and the size limits; the solver registry.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cina
from cina.balancing import attention_kernel, median_bandwidth, solve_balancing_weights, standardize
from cina.balancing.weights import balancing_objective
from cina.errors import CInAValidationError
from cina.kernels import (
    DenseKernel,
    KernelOperator,
    OperatorBatchOps,
    StreamedKernel,
    TorchDenseKernel,
    kernel_class,
    kernel_kinds,
    make_kernel,
    register_kernel,
    resolve_kernel_kind,
)
from cina.solvers import (
    SOLVERS,
    BalancingProblem,
    ExactQPSolver,
    SolverOptions,
    WeightSolver,
    solver_class,
)


def _data(seed: int, n: int = 120, d: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(np.int64)
    t[:3], t[3:6] = 1, 0
    y = X[:, 0] + t * (1 + X[:, 1]) + rng.normal(size=n)
    Z, _, _ = standardize(X)
    return Z, t, y, median_bandwidth(Z)


class _MatvecOnly(KernelOperator):
    """A test operator known only through mat-vecs of a dense reference (what a low-rank or
    distributed operator offers): no dense(), no batch_ops() of its own."""

    kind = "matvec-only"

    def __init__(self, keys, bandwidth, **_):
        super().__init__(np.asarray(keys, float), bandwidth)
        self._K = attention_kernel(self.keys, self.bandwidth)
        self.calls = 0

    def matvec(self, V):
        self.calls += 1
        return self._K @ V

    def diagonal(self):
        return np.diag(self._K).copy()

    @property
    def nbytes(self):
        return 0

    @classmethod
    def bytes_needed(cls, n, d, itemsize=8):
        return 0


@pytest.mark.parametrize("kind,dtype,tol", [("dense", "float64", 0), ("dense", "float32", 1e-5),
                                            ("streamed", "float64", 1e-10),
                                            ("streamed", "float32", 1e-5)])
def test_every_operator_form_gives_the_reference_kernel(kind, dtype, tol):
    Z, t, _, bw = _data(0)
    K = attention_kernel(Z, bw)
    op = make_kernel(Z, bw, kind, dtype=dtype, chunk_size=32)
    assert isinstance(op, kernel_class(kind, dtype)) and op.n == len(t) and op.d == Z.shape[1]
    V = np.random.default_rng(1).normal(size=(len(t), 3))
    scale = np.abs(K @ V).max()
    np.testing.assert_allclose(op.matvec(V), K @ V, rtol=0, atol=tol * scale + 1e-300)
    np.testing.assert_allclose(op.matvec(V[:, 0]), K @ V[:, 0], rtol=0, atol=tol * scale + 1e-300)
    np.testing.assert_allclose(op.diagonal(), np.diag(K), rtol=max(tol, 1e-12))
    dens = op.arm_densities(t)
    np.testing.assert_allclose(dens, np.stack([K[:, t == 1].sum(1), K[:, t == 0].sum(1)], 1),
                               rtol=max(tol, 1e-12) * 10)
    assert op.arm_densities(t) is dens  # cached for the same treatment
    assert op.nbytes > 0
    if kind == "dense" and dtype == "float64":
        assert op.dense() is op.dense() and np.array_equal(op.dense(), K)


def test_auto_follows_the_memory_budget():
    assert resolve_kernel_kind("auto", 1000, 5, dtype="float64",
                               dense_budget_bytes=8 * 1000**2) == "dense"
    assert resolve_kernel_kind("auto", 1001, 5, dtype="float64",
                               dense_budget_bytes=8 * 1000**2) == "nystrom"  # beyond: low rank
    assert resolve_kernel_kind("auto", 1001, 5, dtype="float32",
                               dense_budget_bytes=8 * 1000**2) == "dense"  # 4 bytes an entry
    assert resolve_kernel_kind("streamed", 10, 5) == "streamed"
    assert StreamedKernel.bytes_needed(100_000, 25) < TorchDenseKernel.bytes_needed(100_000, 25)
    assert DenseKernel.bytes_needed(100, 3) == 8 * 100**2
    with pytest.raises(CInAValidationError, match="kernel must be one of"):
        resolve_kernel_kind("lowrank", 10, 2)
    assert set(kernel_kinds()) >= {"auto", "dense", "streamed"}


@pytest.mark.parametrize("balance,estimand,penalty", [("target", "ate", "squared_hinge"),
                                                      ("target", "att", "squared_hinge"),
                                                      ("mutual", "ate", "squared_hinge"),
                                                      ("target", "ate", "hinge")])
def test_exact_qp_on_matvecs_alone_equals_the_dense_path(balance, estimand, penalty):
    Z, t, _, bw = _data(2, n=100)
    lam = 0.3 if penalty == "hinge" else 0.1
    dense = solve_balancing_weights(attention_kernel(Z, bw), t, lam, balance=balance,
                                    estimand=estimand, penalty=penalty)
    op = _MatvecOnly(Z, bw)
    sol = solve_balancing_weights(op, t, lam, balance=balance, estimand=estimand,
                                  penalty=penalty)
    assert op.calls > 0  # it really ran on mat-vecs
    np.testing.assert_allclose(sol.alpha, dense.alpha, atol=1e-7 * dense.alpha.max())
    assert sol.objective == pytest.approx(dense.objective, rel=1e-8)
    assert sol.kkt_residual < 1e-8
    obj, mmd = balancing_objective(op, t, dense.alpha, lam if penalty != "hinge" else 0.0,
                                   balance, estimand)
    ref = balancing_objective(attention_kernel(Z, bw), t, dense.alpha,
                              lam if penalty != "hinge" else 0.0, balance, estimand)
    assert obj == pytest.approx(ref[0], rel=1e-12) and mmd == pytest.approx(ref[1], rel=1e-12)


def test_warm_started_solve_is_the_cold_solve():
    Z, t, _, bw = _data(3, n=150)
    K = attention_kernel(Z, bw)
    prev = solve_balancing_weights(K, t, 0.3).alpha
    cold = solve_balancing_weights(K, t, 0.1)
    warm = solve_balancing_weights(K, t, 0.1, x0=prev)
    np.testing.assert_allclose(warm.alpha, cold.alpha, atol=1e-10 * cold.alpha.max())
    assert warm.kkt_residual < 1e-9


def test_solvers_run_on_any_operator():
    """The exact QP, Algorithm 1 (frozen key map) and the zero-shot model on an operator known
    only by its mat-vecs give the weights they give on the dense kernel."""
    Z, t, _, bw = _data(4, n=150)
    problem = BalancingProblem(t, "target", "ate")
    ref = ExactQPSolver(DenseKernel(Z, bw), problem)(0.1)[0]
    for name, atol in (("exact", 1e-7), ("fit", 2e-3), ("zero-shot", None)):
        cls = solver_class(name)
        options = SolverOptions() if name == "zero-shot" else SolverOptions(max_iter=3000,
                                                                            tol=1e-7)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alpha, info = cls(_MatvecOnly(Z, bw), problem, options)(0.1)
            if atol is None:  # the zero-shot model is compared with its native kernel's run
                native, _ = cls(make_kernel(Z, bw, "auto", **cls.kernel_settings()), problem,
                                options)(0.1)
        assert alpha.shape == t.shape and np.all(alpha >= 0)
        np.testing.assert_allclose([alpha[t == 1].sum(), alpha[t == 0].sum()], [1, 1])
        if atol is not None:
            np.testing.assert_allclose(alpha, ref, atol=atol * ref.max())
        else:  # the float64 adapter against the model's native float32 kernel: rounding
            # differences of the kernel steer the learned steps a little apart
            np.testing.assert_allclose(alpha, native, atol=2e-2 * native.max())
            assert np.corrcoef(alpha, ref)[0, 1] > 0.99


def test_zero_shot_adapter_matches_the_native_batched_kernel():
    import torch

    Z, t, _, bw = _data(5, n=90)
    native = make_kernel(Z, bw, "dense", dtype="float32")
    adapter = OperatorBatchOps(DenseKernel(Z, bw), torch.float32)
    V = torch.randn(1, 90, 2)
    np.testing.assert_allclose(adapter.matvec(V).numpy(), native.batch_ops().matvec(V).numpy(),
                               rtol=1e-4, atol=1e-6)
    tt = torch.as_tensor(t, dtype=torch.float32)[None]
    mk = torch.ones(1, 90)
    np.testing.assert_allclose(adapter.arm_density(tt, mk).numpy(),
                               native.batch_ops().arm_density(tt, mk).numpy(), rtol=1e-4)
    np.testing.assert_allclose(adapter.log_kdiag.numpy(), native.batch_ops().log_kdiag.numpy(),
                               atol=1e-5)


def test_cina_kernel_setting_gives_the_same_estimate():
    Z, t, y, _ = _data(6, n=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method, tol in (("exact", 1e-8), ("zero-shot", 1e-5)):
            dense = cina.CInA(method=method, kernel="dense").fit(Z, t, y)
            streamed = cina.CInA(method=method, kernel="streamed").fit(Z, t, y)
            auto = cina.CInA(method=method).fit(Z, t, y)
            assert auto.effect_ == dense.effect_
            assert streamed.effect_ == pytest.approx(dense.effect_, abs=tol)
    with pytest.raises(CInAValidationError, match="kernel must be one of"):
        cina.CInA(kernel="sparse").fit(Z, t, y)


def test_a_registered_operator_kind_is_selectable():
    from cina import kernels

    register_kernel("matvec-only", {"float64": _MatvecOnly, "float32": _MatvecOnly})
    try:
        Z, t, y, _ = _data(7, n=120)
        a = cina.CInA(kernel="matvec-only", lam_rel=0.1).fit(Z, t, y)
        b = cina.CInA(kernel="dense", lam_rel=0.1).fit(Z, t, y)
        assert a.effect_ == pytest.approx(b.effect_, abs=1e-8)
    finally:
        kernels._KINDS.pop("matvec-only")


def test_solver_registry_and_size_limits(monkeypatch):
    assert tuple(SOLVERS) == cina.estimator.CINA_METHODS == ("exact", "fit", "zero-shot")
    for name in SOLVERS:
        cls = solver_class(name)
        assert issubclass(cls, WeightSolver) and cls.name == name
    assert ExactQPSolver.size_limit(DenseKernel) == ExactQPSolver.MAX_N
    assert ExactQPSolver.size_limit(_MatvecOnly) == ExactQPSolver.MAX_N  # quadratic mat-vecs

    class _LowRank(_MatvecOnly):
        quadratic_matvec = False

    assert ExactQPSolver.size_limit(_LowRank) is None
    assert solver_class("fit").size_limit(StreamedKernel) == 10_000
    assert solver_class("zero-shot").size_limit(StreamedKernel) is None
    with pytest.raises(KeyError):
        solver_class("magic")


def test_zero_shot_kernel_budget_is_the_models():
    from cina.model.checkpoint import load_pretrained

    cfg = load_pretrained()[0].config
    settings = solver_class("zero-shot").kernel_settings()
    assert settings["dtype"] == "float32"
    assert settings["dense_budget_bytes"] == cfg.dense_max_bytes
    n_max = int(np.sqrt(cfg.dense_max_bytes / 4))
    assert resolve_kernel_kind("auto", n_max, 5, dtype="float32",
                               dense_budget_bytes=cfg.dense_max_bytes) == "dense"
    assert resolve_kernel_kind("auto", n_max + 1, 5, dtype="float32",
                               dense_budget_bytes=cfg.dense_max_bytes) == "nystrom"


@pytest.mark.parametrize("old,new,name", [
    ("cina.fit", "cina.solvers.attention_fit", "fit_balancing_attention"),
    ("cina.zeroshot", "cina.solvers.zero_shot", "ZeroShotBalancing"),
    ("cina.model.zeroshot", "cina.model.balancer", "ZeroShotBalancer"),
    ("cina.inference", "cina.effect", "weighting_se"),
])
def test_renamed_modules_keep_a_deprecated_alias(old, new, name):
    import importlib

    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.reload(importlib.import_module(old))
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
