"""Optimal balancing weights for a given kernel: the paper's mutual problem (P) and the
target-population problems that remove the estimand drift (docs/method_notes.md sections 3, 4
and 11).

Notation: K is the (normalised) kernel matrix, t the 0/1 treatment, w = 2t - 1, lam the ridge.

* ``balance="mutual"`` (the paper's (P)): one simplex per arm,
      min_alpha  alpha' K_w alpha + lam |alpha|^2,   [K_w]_ij = w_i w_j k_ij.
  Its SVM dual variables are b = (2 / p*) alpha (p* the optimum of (P)): the optimum of the
  L2-SVM dual (D) of the balancing QP (docs/method_notes.md section 3); ``svm_dual`` holds them.
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

import contextlib
from dataclasses import dataclass

import numpy as np

from ..errors import CInAValidationError
from ..rules import check_balance_estimand, normalize_per_arm
from .qp import MatvecHessian, solve_simplex_qp

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
    check_balance_estimand(balance, estimand)


def _is_operator(K) -> bool:
    """Whether K is a kernel operator (products only) rather than a matrix."""
    return not isinstance(K, np.ndarray) and hasattr(K, "matvec")


def _quad(K, v: np.ndarray) -> float:
    """v' K v for a matrix or a kernel operator."""
    if _is_operator(K):
        return float(v @ K.matvec(v))
    return float(v @ K @ v)


def balancing_objective(K, t: np.ndarray, alpha: np.ndarray, lam: float,
                        balance: str = "target", estimand: str = "ate") -> tuple[float, float]:
    """(objective, mmd2) of given weights under the formulation's own objective; K a matrix or
    a kernel operator (:class:`cina.kernels.KernelOperator`)."""
    t = np.asarray(t)
    if balance == "mutual":
        w = 2.0 * t - 1.0
        wa = w * alpha
        mmd2 = _quad(K, wa)
        return mmd2 + lam * float(alpha @ alpha), mmd2
    target = np.ones(len(t), bool) if estimand == "ate" else t == 1
    m = target / target.sum()
    arms = (0, 1) if estimand == "ate" else (0,)
    total = mmd = 0.0
    for a in arms:
        diff = np.where(t == a, alpha, 0.0) - m
        part = _quad(K, diff)
        mmd += part
        total += part + lam * float(alpha[t == a] @ alpha[t == a])
    return total, mmd


def solve_balancing_weights(
    K,
    t: np.ndarray,
    lam: float,
    *,
    balance: str = "target",
    estimand: str = "ate",
    penalty: str = "squared_hinge",
    lam_rel_for_cap: float | None = None,
    tol: float = 1e-9,
    x0: np.ndarray | None = None,
    cache: dict | None = None,
) -> BalancingSolution:
    """Exact balancing weights for kernel ``K`` and treatment ``t``.

    ``K``: the kernel matrix (n x n), or a kernel operator (:class:`cina.kernels.KernelOperator`):
    one holding its matrix (:meth:`~cina.kernels.KernelOperator.dense`) takes the dense path,
    any other is used through its mat-vecs alone (the QP's Hessian as products, its free-set
    systems by conjugate gradients; the same weights to the solver's tolerance).
    ``lam`` is the ridge in the units of ``K`` (use a normalised kernel and lam = lam_rel).
    For ``penalty="hinge"`` the ridge is dropped and ``lam_rel_for_cap`` sets the cap.
    ``x0``: weights (n,) to start from (the solution at a nearby lam), which makes a sequence of
    solves (the balance guard's) cost a few active-set steps each instead of a full solve.
    ``cache``: a dict kept across calls with the same K and t (the balance guard's): the dense
    path's Hessian blocks 2 K_aa (2 K_w for mutual) and linear terms are built once and the
    ridge is put on (and taken off) their diagonal in place, instead of n_a^2 copies per call.
    """
    check_options(balance, estimand, penalty)
    if _is_operator(K):
        dense = K.dense()
        if dense is not None:
            K = dense
    operator = _is_operator(K)
    t = np.asarray(t).astype(np.int64)
    n = len(t)
    treated, control = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    diag = K.diagonal() if operator else None
    ridge = lam if penalty == "squared_hinge" else 1e-10 * float(
        np.mean(diag if operator else np.diag(K)))

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
        cap = None
        if penalty == "hinge":
            cap = np.where(t == 1, cap_for(len(treated)), cap_for(len(control)))
        if operator:
            Q = MatvecHessian(lambda x: 2.0 * (w * K.matvec(w * x)) + 2.0 * ridge * x,
                              2.0 * diag + 2.0 * ridge)
            res = solve_simplex_qp(Q, np.zeros(n), [treated, control], cap=cap, tol=tol, x0=x0)
        else:
            base = _cached(cache, "mutual", lambda: (2.0 * (w[:, None] * K * w[None, :]), None))[0]
            with _ridge_on_diagonal(base, 2.0 * ridge, restore=cache is not None) as Q:
                res = solve_simplex_qp(Q, np.zeros(n), [treated, control], cap=cap, tol=tol,
                                       x0=x0)
                p_dense = 0.5 * float(res.x @ Q @ res.x)
        alpha = res.x
        kkt = res.kkt_residual
        p_star = 0.5 * float(alpha @ Q.matvec(alpha)) if operator else p_dense
        svm_dual = (2.0 / p_star) * alpha if p_star > 0 else None
    else:
        target = np.ones(n, bool) if estimand == "ate" else t == 1
        arms = [treated, control] if estimand == "ate" else [control]
        if estimand == "att":
            alpha[treated] = 1.0 / len(treated)
        if operator:  # K 1_T / |T|, the target's kernel mean embedding at every unit
            dens = K.arm_densities(t)
            target_mean = (dens.sum(axis=1) if estimand == "ate" else dens[:, 0]) / target.sum()
        for idx in arms:
            if operator:
                Q = MatvecHessian(_arm_block_matvec(K, idx, ridge), 2.0 * diag[idx] + 2.0 * ridge)
                c = 2.0 * target_mean[idx]
                res = solve_simplex_qp(Q, c, [np.arange(len(idx))], cap=cap_for(len(idx)),
                                       tol=tol, x0=None if x0 is None else x0[idx])
            else:
                base, c = _cached(cache, ("arm", idx[0], len(idx)),
                                  lambda idx=idx: _arm_block(K, idx, target))
                with _ridge_on_diagonal(base, 2.0 * ridge, restore=cache is not None) as Q:
                    res = solve_simplex_qp(Q, c, [np.arange(len(idx))], cap=cap_for(len(idx)),
                                           tol=tol, x0=None if x0 is None else x0[idx])
            alpha[idx] = res.x
            kkt = max(kkt, res.kkt_residual)
    alpha = normalize_per_arm(np.maximum(alpha, 0.0), t, in_place=True)
    objective, mmd2 = balancing_objective(K, t, alpha, ridge if penalty == "squared_hinge" else 0.0,
                                          balance, estimand)
    return BalancingSolution(alpha=alpha, objective=objective, mmd2=mmd2, kkt_residual=kkt,
                             svm_dual=svm_dual)


def _arm_block(K: np.ndarray, idx: np.ndarray, target: np.ndarray):
    """(2 K_aa, 2 K_aT 1 / |T|) of one arm's target problem."""
    Q = K[np.ix_(idx, idx)]  # a copy: scaled in place (no second n_a^2 copy)
    Q *= 2.0
    c = 2.0 * K[np.ix_(idx, np.flatnonzero(target))].mean(axis=1)
    return Q, c


def _cached(cache: dict | None, key, build):
    if cache is None:
        return build()
    if key not in cache:
        cache[key] = build()
    return cache[key]


@contextlib.contextmanager
def _ridge_on_diagonal(Q: np.ndarray, add: float, *, restore: bool):
    """Q with ``add`` on its diagonal, in place; with ``restore`` the diagonal is put back
    (exactly: from a copy) afterwards, so a cached block serves the next ridge."""
    diag = np.diag_indices(Q.shape[0])
    saved = Q[diag].copy() if restore else None
    Q[diag] += add
    try:
        yield Q
    finally:
        if restore:
            Q[diag] = saved


def _arm_block_matvec(K, idx: np.ndarray, ridge: float):
    """x -> 2 (K_aa + ridge I) x for the units idx of one arm, through K's mat-vec."""
    n = K.n

    def mv(x):
        full = np.zeros(n)
        full[idx] = x
        return 2.0 * K.matvec(full)[idx] + 2.0 * ridge * x
    return mv
