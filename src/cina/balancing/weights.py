"""Optimal balancing weights for a given kernel: the paper's mutual problem (P) and the
target-population problems that remove the estimand drift (METHOD sections 2, 3 and 7).

Notation: K is the (normalised) kernel matrix, t the 0/1 treatment, w = 2t - 1, lam the ridge.

* ``balance="mutual"`` (the paper's (P)): one simplex per arm,
      min_alpha  alpha' K_w alpha + lam |alpha|^2,   [K_w]_ij = w_i w_j k_ij.
  Its SVM dual variables are b = (2 / p*) alpha (p* the optimum of (P)): the optimum of the
  L2-SVM dual (D) of METHOD section 3; ``svm_dual`` holds them.
* ``balance="target"``: each arm a separately balanced to the estimand's population T
  (all units for the ATE, the treated for the ATT),
      min_{alpha_a in simplex}  |sum_{i in a} alpha_i phi(x_i) - mean_{j in T} phi(x_j)|^2
                                + lam |alpha_a|^2,
  i.e. Q = 2 (K_aa + lam I), c = 2 K_aT 1 / |T|. For the ATT the treated keep uniform weights.
* ``penalty="hinge"``: the plain-hinge (C-SVM) variant, Tarr & Imai (2021): no ridge term, each
  weight capped at 1 / (lam_rel * n_arm) instead, so larger lam_rel still means more uniform
  weights (lam_rel = 1 forces uniform weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CInAValidationError
from .qp import solve_simplex_qp

__all__ = ["BalancingSolution", "solve_balancing_weights", "BALANCE_MODES", "PENALTIES",
           "ESTIMANDS", "balancing_objective"]

BALANCE_MODES = ("target", "mutual")
PENALTIES = ("squared_hinge", "hinge")
ESTIMANDS = ("ate", "att")


@dataclass
class BalancingSolution:
    alpha: np.ndarray  # (n,) weights >= 0, summing to 1 within each arm
    objective: float  # balance (MMD^2, normalised kernel) + lam * |alpha|^2 at the optimum
    mmd2: float  # the worst-case squared-bias part alone
    kkt_residual: float
    svm_dual: np.ndarray | None = None  # b of (D), mutual balance only


def check_options(balance: str, estimand: str, penalty: str) -> None:
    if balance not in BALANCE_MODES:
        raise CInAValidationError(f"balance must be one of {BALANCE_MODES}; received {balance!r}")
    if estimand not in ESTIMANDS:
        raise CInAValidationError(f"estimand must be one of {ESTIMANDS}; received {estimand!r}")
    if penalty not in PENALTIES:
        raise CInAValidationError(f"penalty must be one of {PENALTIES}; received {penalty!r}")
    if balance == "mutual" and estimand == "att":
        raise CInAValidationError(
            "balance='mutual' is the paper's problem (P), whose target population is implicit; "
            "for the ATT use balance='target' (controls balanced to the treated)")


def balancing_objective(K: np.ndarray, t: np.ndarray, alpha: np.ndarray, lam: float,
                        balance: str = "target", estimand: str = "ate") -> tuple[float, float]:
    """(objective, mmd2) of given weights under the formulation's own objective."""
    t = np.asarray(t)
    if balance == "mutual":
        w = 2.0 * t - 1.0
        wa = w * alpha
        mmd2 = float(wa @ K @ wa)
        return mmd2 + lam * float(alpha @ alpha), mmd2
    target = np.ones(len(t), bool) if estimand == "ate" else t == 1
    m = target / target.sum()
    arms = (0, 1) if estimand == "ate" else (0,)
    total = mmd = 0.0
    for a in arms:
        diff = np.where(t == a, alpha, 0.0) - m
        part = float(diff @ K @ diff)
        mmd += part
        total += part + lam * float(alpha[t == a] @ alpha[t == a])
    return total, mmd


def solve_balancing_weights(
    K: np.ndarray,
    t: np.ndarray,
    lam: float,
    *,
    balance: str = "target",
    estimand: str = "ate",
    penalty: str = "squared_hinge",
    lam_rel_for_cap: float | None = None,
    tol: float = 1e-9,
) -> BalancingSolution:
    """Exact balancing weights for kernel ``K`` (n x n) and treatment ``t``.

    ``lam`` is the ridge in the units of ``K`` (use a normalised kernel and lam = lam_rel).
    For ``penalty="hinge"`` the ridge is dropped and ``lam_rel_for_cap`` sets the cap.
    """
    check_options(balance, estimand, penalty)
    t = np.asarray(t).astype(np.int64)
    n = len(t)
    treated, control = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    ridge = lam if penalty == "squared_hinge" else 1e-10 * float(np.mean(np.diag(K)))

    def cap_for(n_arm: int):
        if penalty != "hinge":
            return None
        rel = lam if lam_rel_for_cap is None else lam_rel_for_cap
        if not 0 < rel <= 1:
            raise CInAValidationError(
                f"the hinge variant caps weights at 1/(lam_rel n_arm): lam_rel must be in (0, 1]; "
                f"received {rel}")
        return 1.0 / (rel * n_arm)

    alpha = np.zeros(n)
    svm_dual = None
    kkt = 0.0
    if balance == "mutual":
        w = 2.0 * t - 1.0
        Q = 2.0 * (w[:, None] * K * w[None, :])
        Q[np.diag_indices(n)] += 2.0 * ridge
        cap = None
        if penalty == "hinge":
            cap = np.where(t == 1, cap_for(len(treated)), cap_for(len(control)))
        res = solve_simplex_qp(Q, np.zeros(n), [treated, control], cap=cap, tol=tol)
        alpha = res.x
        kkt = res.kkt_residual
        p_star = 0.5 * float(alpha @ Q @ alpha)
        svm_dual = (2.0 / p_star) * alpha if p_star > 0 else None
    else:
        target = np.ones(n, bool) if estimand == "ate" else t == 1
        arms = [treated, control] if estimand == "ate" else [control]
        if estimand == "att":
            alpha[treated] = 1.0 / len(treated)
        for idx in arms:
            Kaa = K[np.ix_(idx, idx)]
            Q = 2.0 * Kaa
            Q[np.diag_indices(len(idx))] += 2.0 * ridge
            c = 2.0 * K[np.ix_(idx, np.flatnonzero(target))].mean(axis=1)
            res = solve_simplex_qp(Q, c, [np.arange(len(idx))], cap=cap_for(len(idx)), tol=tol)
            alpha[idx] = res.x
            kkt = max(kkt, res.kkt_residual)
    alpha = np.maximum(alpha, 0.0)
    for idx in (treated, control):
        alpha[idx] /= alpha[idx].sum()
    objective, mmd2 = balancing_objective(K, t, alpha, ridge if penalty == "squared_hinge" else 0.0,
                                          balance, estimand)
    return BalancingSolution(alpha=alpha, objective=objective, mmd2=mmd2, kkt_residual=kkt,
                             svm_dual=svm_dual)
