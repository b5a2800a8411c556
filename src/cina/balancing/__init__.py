"""Balancing math: the attention-induced kernel, the exact QP solver, the lam/bandwidth rules.

Pure numpy/scipy; no torch. Everything the estimator needs for ``method="exact"`` lives here.
"""

from .kernel import (
    BANDWIDTH_RULES,
    attention_kernel,
    attention_log_kernel,
    median_bandwidth,
    resolve_bandwidth,
    standardize,
)
from .qp import project_capped_simplex, solve_simplex_qp
from .weights import (
    BALANCE_MODES,
    ESTIMANDS,
    PENALTIES,
    BalancingSolution,
    balancing_objective,
    solve_balancing_weights,
)

__all__ = [
    "BANDWIDTH_RULES", "attention_kernel", "attention_log_kernel", "median_bandwidth",
    "resolve_bandwidth", "standardize", "project_capped_simplex", "solve_simplex_qp",
    "BALANCE_MODES", "ESTIMANDS", "PENALTIES", "BalancingSolution", "balancing_objective",
    "solve_balancing_weights",
]
