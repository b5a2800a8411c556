"""The exact balancing QP as a weight solver (``CInA(method="exact")``).

On an operator that holds its matrix (:class:`~cina.kernels.DenseKernel`) the QP takes its dense
fast path (Hessian blocks, Cholesky factors of the free set); on any other operator it runs on
mat-vecs alone (:func:`cina.balancing.weights.solve_balancing_weights`). Algorithm in
docs/method_notes.md section 3.
"""

from __future__ import annotations

import numpy as np

from .._threads import blas_threads_for
from ..balancing.weights import solve_balancing_weights
from ..kernels import KernelOperator
from .base import BalancingProblem, SolverOptions, WeightSolver

__all__ = ["ExactQPSolver"]


class ExactQPSolver(WeightSolver):
    """min over the arms' simplices of the kernel imbalance plus lam |alpha|^2, solved exactly.

    Called again (the balance guard's smaller lam), the solve reuses the Hessian blocks and
    starts from the previous weights, where the active-set polish settles in a Newton step or
    two. Why it matters: with 5 treated units of 5,000 the arms cannot be balanced, the guard
    runs to its floor, and each of its five re-solves was a full solve of the 4,995-unit control
    problem from scratch (11x a balanced design's time at N = 3,000; 4.7x now, the rest being
    the guard's five factorisations of the control problem: docs/method_notes.md section 3,
    benchmarks/results/skewed_arms.md)."""

    name = "exact"
    #: the dense kernel and the QP's Hessian blocks are n x n float64 matrices: 20,000 units
    #: are 3.2 GB each, the most ``kernel="dense"`` accepts (and the dense budget).
    MAX_N = 20_000
    dense_budget_bytes = 8 * MAX_N**2
    #: ``kernel="auto"`` takes the low-rank operator (and the dual path) from this many units:
    #: the dense QP's time grows as n^2 to n^3 while the Nystrom weights reach a correlation
    #: of 0.997 with the dense ones (docs/method_notes.md section 12)
    LOWRANK_FROM = 4_000

    @classmethod
    def kernel_settings(cls) -> dict:
        return {**super().kernel_settings(), "lowrank_from": cls.LOWRANK_FROM}

    @classmethod
    def size_limit(cls, kernel_cls: type[KernelOperator]) -> int | None:
        # each of the QP's hundreds to thousands of mat-vecs is a full O(n^2 d) pass on the
        # streamed form too: the same limit, in time rather than memory
        return cls.MAX_N if kernel_cls.quadratic_matvec else None

    def __init__(self, kernel: KernelOperator, problem: BalancingProblem,
                 options: SolverOptions | None = None):
        super().__init__(kernel, problem, options)
        self._K = kernel.dense()  # built once, before (and outside) the solver's thread limit
        self._t = np.asarray(problem.t)
        self._last: np.ndarray | None = None  # the previous lam's weights: the next warm start
        self._blocks: dict = {}  # the QP's Hessian blocks, built on the first call
        # a low-rank operator K = Phi Phi' + diag(delta): the QP's m-dimensional dual
        # (solvers/factor_dual.py), O(n m) per step; the plain hinge has no ridge, so no
        # smooth dual, and takes the mat-vec path
        factor = getattr(kernel, "factor", None)
        self._factor = factor() if factor is not None and problem.penalty == "squared_hinge" \
            else None
        self._theta = None  # the previous lam's dual variables

    def __call__(self, lam_rel: float) -> tuple[np.ndarray, dict]:
        p = self.problem
        if self._factor is not None:
            return self._solve_dual(lam_rel)
        with blas_threads_for(len(self._t)):
            sol = solve_balancing_weights(self.kernel if self._K is None else self._K, self._t,
                                          lam_rel, balance=p.balance, estimand=p.estimand,
                                          penalty=p.penalty, x0=self._last, cache=self._blocks)
        self._last = sol.alpha
        return sol.alpha, {"objective": sol.objective, "mmd2": sol.mmd2,
                           "kkt_residual": sol.kkt_residual}

    def _solve_dual(self, lam_rel: float) -> tuple[np.ndarray, dict]:
        from ..balancing.weights import balancing_objective
        from .factor_dual import solve_factor_balancing

        p = self.problem
        Phi, delta = self._factor
        sol = solve_factor_balancing(Phi, delta, self._t, lam_rel, balance=p.balance,
                                     estimand=p.estimand, theta0=self._theta,
                                     progress=self.options.progress)
        self._theta = sol.theta
        objective, mmd2 = balancing_objective(self.kernel, self._t, sol.alpha, lam_rel,
                                              p.balance, p.estimand)
        return sol.alpha, {"objective": objective, "mmd2": mmd2,
                           "kkt_residual": sol.kkt_residual, "duality_gap": sol.gap,
                           "newton_steps": sol.iterations}
