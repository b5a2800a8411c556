"""The weight-solver interface: one balancing method, prepared once per dataset on a kernel
operator, then called per lam.

A solver receives the dataset's :class:`~cina.kernels.KernelOperator` and the
:class:`BalancingProblem` (treatment, balance, estimand, penalty) once, and returns
``(alpha, info)`` for each ``lam_rel`` it is called with (the estimator's balance guard calls it
for a decreasing sequence). Solvers are registered by name in :data:`cina.solvers.SOLVERS`;
``CInA(method=name)`` looks them up there.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..kernels import DEFAULT_DENSE_BUDGET_BYTES, KernelOperator

__all__ = ["BalancingProblem", "SolverOptions", "WeightSolver"]


@dataclass(frozen=True)
class BalancingProblem:
    """What the weights balance: treatment t (n,) in {0, 1}, ``balance`` ("target" or
    "mutual"), ``estimand`` ("ate" or "att") and ``penalty`` ("squared_hinge" or "hinge")."""

    t: np.ndarray
    balance: str = "target"
    estimand: str = "ate"
    penalty: str = "squared_hinge"

    @property
    def n(self) -> int:
        return int(len(self.t))


@dataclass(frozen=True)
class SolverOptions:
    """The estimator's settings a solver may use (each uses its own and ignores the rest).

    ``max_iter``/``tol``: the iterative solvers' stopping rule (None: the solver's default);
    ``random_state``: seeds; ``dtype``: Algorithm 1's precision; ``learn_kernel``: Algorithm 1's
    key map; ``progress``: progress bars (None: on a terminal for long stages).
    """

    max_iter: int | None = None
    tol: float | None = None
    random_state: int = 0
    dtype: str = "float64"
    learn_kernel: object = False
    progress: bool | None = None


class WeightSolver(abc.ABC):
    """Balancing weights of one method for one dataset.

    Class-level facts, known before any kernel is built:

    * :attr:`name`: the method name (``CInA(method=name)``);
    * :meth:`setup`: once-per-process work before the timed fit (e.g. loading a pretrained
      model), returning its seconds;
    * :meth:`kernel_settings`: how the estimator builds the kernel operator for this solver
      (its dtype and the memory budget of ``kernel="auto"``);
    * :meth:`size_limit`: the largest number of units the solver accepts on an operator class
      (None: no limit).

    Per dataset: ``solver = cls(kernel, problem, options)`` prepares (one-time work on the
    kernel), ``solver(lam_rel)`` returns ``(alpha, info)``: alpha (n,) >= 0 summing to 1
    within each arm (the ATT keeps the treated uniform), info the solver's facts (objective,
    iterations, ...), merged into the fit's ``info``.
    """

    name: ClassVar[str] = ""
    kernel_dtype: ClassVar[str] = "float64"
    dense_budget_bytes: ClassVar[int] = DEFAULT_DENSE_BUDGET_BYTES

    def __init__(self, kernel: KernelOperator, problem: BalancingProblem,
                 options: SolverOptions | None = None):
        self.kernel = kernel
        self.problem = problem
        self.options = SolverOptions() if options is None else options

    @classmethod
    def setup(cls) -> float:
        """Once-per-process work before the timed fit; its seconds (0 when there is none)."""
        return 0.0

    @classmethod
    def kernel_settings(cls) -> dict:
        """Keyword arguments of :func:`cina.kernels.make_kernel` for this solver's operator."""
        return {"dtype": cls.kernel_dtype, "dense_budget_bytes": cls.dense_budget_bytes}

    @classmethod
    def size_limit(cls, kernel_cls: type[KernelOperator]) -> int | None:
        """The most units this solver accepts on operators of ``kernel_cls`` (None: any)."""
        return None

    @abc.abstractmethod
    def __call__(self, lam_rel: float) -> tuple[np.ndarray, dict]:
        """Weights alpha (n,) and info for this lam_rel."""
