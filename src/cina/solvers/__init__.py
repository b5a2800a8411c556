"""Weight solvers: one per balancing method, registered by name.

=============  ==========================  ==================================================
name           class                       what it is
=============  ==========================  ==================================================
``exact``      :class:`ExactQPSolver`      the balancing QP solved exactly (FISTA + active-set
                                           polish; dense fast path or mat-vecs only)
``fit``        :class:`AttentionFitSolver` Algorithm 1: the balancing attention layer trained
                                           per dataset (torch, L-BFGS)
``zero-shot``  :class:`ZeroShotSolver`     the pretrained model: a learned, unrolled
                                           mirror-descent solver of the QP
=============  ==========================  ==================================================

``CInA(method=name)`` looks the solver up in :data:`SOLVERS`; a new method is one module with a
:class:`WeightSolver` subclass and one :func:`register_solver` call.
"""

from __future__ import annotations

from .base import BalancingProblem, SolverOptions, WeightSolver
from .exact import ExactQPSolver

__all__ = ["BalancingProblem", "SolverOptions", "WeightSolver", "ExactQPSolver",
           "SOLVERS", "register_solver", "solver_class"]

#: method name -> solver class. The torch solvers are imported on first use (torch is heavy).
SOLVERS: dict[str, type[WeightSolver] | str] = {
    "exact": ExactQPSolver,
    "fit": "cina.solvers.attention_fit:AttentionFitSolver",
    "zero-shot": "cina.solvers.zero_shot:ZeroShotSolver",
}


def register_solver(name: str, solver: type[WeightSolver] | str) -> None:
    """Make ``CInA(method=name)`` use ``solver`` (a class, or "module:Class" imported on first
    use)."""
    SOLVERS[name] = solver


def solver_class(name: str) -> type[WeightSolver]:
    """The solver class registered under ``name`` (KeyError if none)."""
    entry = SOLVERS[name]
    if isinstance(entry, str):
        import importlib

        module, cls = entry.split(":")
        entry = getattr(importlib.import_module(module), cls)
        SOLVERS[name] = entry
    return entry


def __getattr__(name: str):  # the torch solvers on demand, without importing torch eagerly
    if name == "AttentionFitSolver":
        return solver_class("fit")
    if name == "ZeroShotSolver":
        return solver_class("zero-shot")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
