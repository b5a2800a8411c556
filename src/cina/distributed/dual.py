"""The exact balancing weights on a low-rank kernel K = Phi Phi' + diag(delta), solved in the
m-dimensional dual: every iteration is one map over the units plus a sum.

For one arm a balanced to the target T (docs/method_notes.md section 4), with the normalised
kernel and lam = lam_rel,

    min_{alpha in simplex(a)}  alpha' K_aa alpha - 2 alpha' K_aT 1 / |T| + lam |alpha|^2
  = |Phi_a' alpha - mu|^2 + sum_i lam_i alpha_i^2 + sum_i b_i alpha_i + const,

mu = Phi' 1_T / |T|, lam_i = lam + delta_i and b_i = -2 delta_i [i in T] / |T| (the exact
diagonal's part of the target term). Writing |u|^2 = max_theta 2 theta'u - |theta|^2 and
dualising the simplex's sum with rho, the minimisation over alpha >= 0 is per unit:

    alpha_i(theta, rho) = max(r_i, 0) / lam_i,   r_i = rho - s_i Phi_i theta - b_i / 2,

and the dual function, to maximise over (theta, rho) in R^{m+1},

    g(theta, rho) = -2 theta'mu - |theta|^2 + 2 rho - sum_i max(r_i, 0)^2 / lam_i,

is concave and piecewise quadratic; at its maximum theta = Phi_a'alpha - mu (the residual's
embedding) and g equals the primal optimum. Its gradient and generalised Hessian are sums over
the units with r_i > 0 (:func:`dual_terms`), so a semismooth Newton step with a backtracking
line search costs one map-reduce, O(n m^2), and converges in a few steps (finitely, once the
set of units with positive weight is right). The mutual problem (P) is the same with one
residual theta for both arms (s_i = -1 on the control arm) and one rho per arm; the ATE's two
target problems are solved together (two thetas). The weights are the same as the primal
solver's on the same operator (:func:`cina.balancing.weights.solve_balancing_weights`) to its
tolerance; ``tests/test_dask.py`` compares them.

Everything here is numpy on one block of units: the distributed driver maps :func:`dual_terms`
and :func:`block_weights` over partitions and adds the results (:func:`add_terms`);
:func:`solve_dual` runs the Newton iteration given any ``evaluate(x) -> terms`` callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceError

__all__ = ["DualSpec", "dual_spec", "dual_terms", "add_terms", "solve_dual", "block_weights",
           "DualSolution"]


@dataclass(frozen=True)
class DualSpec:
    """The dual's layout: ``problems`` (arm, theta block, sign, arm in the target) per rho;
    ``n_blocks`` thetas of size ``m``; ``lam``; ``n_target`` = |T| (0 for mutual);
    ``fixed_treated``: the ATT's treated keep uniform weights."""

    problems: tuple
    n_blocks: int
    m: int
    lam: float
    n_target: int
    fixed_treated: bool = False

    @property
    def size(self) -> int:
        return self.n_blocks * self.m + len(self.problems)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(theta (n_blocks, m), rho (n_problems,)) of the stacked variable x."""
        return x[:self.n_blocks * self.m].reshape(self.n_blocks, self.m), \
            x[self.n_blocks * self.m:]


def dual_spec(balance: str, estimand: str, m: int, lam: float, n: int, n_treated: int
              ) -> DualSpec:
    """The dual of CInA's balancing problem for (balance, estimand)."""
    if balance == "mutual":
        return DualSpec(((1, 0, 1.0, False), (0, 0, -1.0, False)), 1, m, lam, 0)
    if estimand == "ate":  # each arm to the whole sample (every unit is in T)
        return DualSpec(((1, 0, 1.0, True), (0, 1, 1.0, True)), 2, m, lam, n)
    # ATT: the controls to the treated; controls are not in T
    return DualSpec(((0, 0, 1.0, False),), 1, m, lam, n_treated, fixed_treated=True)


def _arm_rows(spec: DualSpec, k: int, Phi: np.ndarray, delta: np.ndarray, t: np.ndarray,
              theta: np.ndarray, rho: np.ndarray):
    arm, block, sign, in_target = spec.problems[k]
    sel = t == arm
    P = Phi[sel]
    w = 1.0 / (spec.lam + delta[sel])
    r = rho[k] - sign * (P @ theta[block])
    if in_target:
        r += delta[sel] / spec.n_target
    return sel, P, w, r, sign


def dual_terms(Phi: np.ndarray, delta: np.ndarray, t: np.ndarray, x: np.ndarray,
               spec: DualSpec, hessian: bool = True) -> dict:
    """One block of units' sums for the dual at x: per problem k, with S = {r_i > 0},
    q = sum_S r^2 w, v = s Phi_S'(w r), sigma = sum_S w r, and for the Hessian G = Phi_S' W Phi_S,
    c = s Phi_S' w, nw = sum_S w (w_i = 1 / lam_i)."""
    theta, rho = spec.split(np.asarray(x, dtype=float))
    P_, m = len(spec.problems), spec.m
    out = {"q": np.zeros(P_), "v": np.zeros((P_, m)), "sigma": np.zeros(P_)}
    if hessian:
        out.update(G=np.zeros((P_, m, m)), c=np.zeros((P_, m)), nw=np.zeros(P_))
    for k in range(P_):
        _, P, w, r, sign = _arm_rows(spec, k, Phi, delta, t, theta, rho)
        on = r > 0
        if not on.any():
            continue
        Ps, ws, rs = P[on], w[on], r[on]
        wr = ws * rs
        out["q"][k] = float(wr @ rs)
        out["v"][k] = sign * (Ps.T @ wr)
        out["sigma"][k] = float(wr.sum())
        if hessian:
            out["G"][k] = (Ps * ws[:, None]).T @ Ps
            out["c"][k] = sign * (Ps.T @ ws)
            out["nw"][k] = float(ws.sum())
    return out


def add_terms(parts: list[dict]) -> dict:
    """The sum of blocks' :func:`dual_terms` (or of any dicts of arrays)."""
    total = {k: np.array(v, dtype=float, copy=True) for k, v in parts[0].items()}
    for p in parts[1:]:
        for k, v in p.items():
            total[k] += v
    return total


def _value_grad_hess(spec: DualSpec, x: np.ndarray, mu: np.ndarray, T: dict, w_floor: float):
    theta, rho = spec.split(x)
    B, m = spec.n_blocks, spec.m
    value = float(-2.0 * np.sum(theta * mu) - np.sum(theta * theta) + 2.0 * rho.sum()
                  - T["q"].sum())
    g_theta = -2.0 * mu - 2.0 * theta
    H = np.zeros((spec.size, spec.size))
    for b in range(B):
        H[b * m:(b + 1) * m, b * m:(b + 1) * m] = -2.0 * np.eye(m)
    for k, (_, block, _, _) in enumerate(spec.problems):
        g_theta[block] += 2.0 * T["v"][k]
        sl = slice(block * m, (block + 1) * m)
        if "G" in T:
            H[sl, sl] -= 2.0 * T["G"][k]
            H[sl, B * m + k] = 2.0 * T["c"][k]
            H[B * m + k, sl] = 2.0 * T["c"][k]
            # an empty active set leaves rho's curvature at 0: count one unit's worth
            H[B * m + k, B * m + k] = -2.0 * max(T["nw"][k], w_floor)
    g_rho = 2.0 - 2.0 * T["sigma"]
    return value, np.concatenate([g_theta.ravel(), g_rho]), H


@dataclass
class DualSolution:
    x: np.ndarray
    value: float  # the dual optimum = the primal optimum (objective of the balancing QP)
    iterations: int  # Newton steps, each one evaluation (map-reduce) plus any backtracking
    evaluations: int
    grad_norm: float


def solve_dual(spec: DualSpec, mu: np.ndarray, evaluate: Callable[[np.ndarray, bool], dict],
               x0: np.ndarray, *, w_floor: float, tol: float = 1e-11, max_iter: int = 200,
               on_step: Callable[[int], None] | None = None) -> DualSolution:
    """Maximise the dual by semismooth Newton steps with Armijo backtracking.

    ``evaluate(x, hessian)`` returns the summed :func:`dual_terms` at x (one map-reduce). Stops
    when the gradient (the simplex sums' and the residual's errors, twice) is below ``tol``
    relative to the problem's scale, or when the step no longer changes anything."""
    x = np.asarray(x0, dtype=float).copy()
    T = evaluate(x, True)
    value, grad, H = _value_grad_hess(spec, x, mu, T, w_floor)
    evaluations = 1
    scale = 1.0 + float(np.abs(mu).max(initial=0.0))
    for it in range(1, max_iter + 1):
        gnorm = float(np.abs(grad).max())
        if gnorm <= tol * scale:
            return DualSolution(x, value, it - 1, evaluations, gnorm)
        try:
            step = np.linalg.solve(-H, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(-H, grad, rcond=None)[0]
        slope = float(grad @ step)
        if not slope > 0:
            step, slope = grad, float(grad @ grad)
        size = 1.0
        while True:
            trial = x + size * step
            T_new = evaluate(trial, True)
            evaluations += 1
            v_new, g_new, H_new = _value_grad_hess(spec, trial, mu, T_new, w_floor)
            if v_new >= value + 1e-4 * size * slope or size < 1e-12:
                break
            size *= 0.5
        if on_step is not None:
            on_step(it)
        stalled = abs(v_new - value) <= 1e-15 * max(1.0, abs(value)) and size < 1e-12
        x, value, grad, H = trial, v_new, g_new, H_new
        if stalled:
            break
    gnorm = float(np.abs(grad).max())
    if gnorm > 1e3 * tol * scale:
        raise ConvergenceError(
            f"the distributed balancing dual did not converge: gradient {gnorm:.2e} after "
            f"{max_iter} Newton steps")
    return DualSolution(x, value, max_iter, evaluations, gnorm)


def block_weights(Phi: np.ndarray, delta: np.ndarray, t: np.ndarray, x: np.ndarray,
                  spec: DualSpec, n_treated: int) -> np.ndarray:
    """alpha of one block of units at the dual solution x (before the per-arm normalisation):
    max(r_i, 0) / lam_i on the solved arms, 1 / n_treated on the ATT's treated."""
    theta, rho = spec.split(np.asarray(x, dtype=float))
    alpha = np.zeros(len(t))
    for k in range(len(spec.problems)):
        sel, _, w, r, _ = _arm_rows(spec, k, Phi, delta, t, theta, rho)
        alpha[sel] = np.maximum(r, 0.0) * w
    if spec.fixed_treated:
        alpha[t == 1] = 1.0 / n_treated
    return alpha


def initial_point(spec: DualSpec, arm_sizes: dict) -> np.ndarray:
    """theta = 0 and rho = lam / n_arm: uniform weights where delta is 0."""
    x = np.zeros(spec.size)
    for k, (arm, _, _, _) in enumerate(spec.problems):
        x[spec.n_blocks * spec.m + k] = spec.lam / max(arm_sizes[arm], 1)
    return x


def rescale_start(spec: DualSpec, x: np.ndarray, lam_old: float) -> np.ndarray:
    """A warm start at a new lam from the solution at ``lam_old``: r scales with lam."""
    x = x.copy()
    x[spec.n_blocks * spec.m:] *= spec.lam / lam_old
    return x


def objective_terms(Phi: np.ndarray, delta: np.ndarray, t: np.ndarray, alpha: np.ndarray,
                    spec: DualSpec, balance: str, estimand: str) -> dict:
    """One block's sums for the primal objective (:func:`cina.balancing.weights.
    balancing_objective` on K = Phi Phi' + diag(delta)): per residual r_a = alpha 1_a - m_T,
    Phi' r_a and sum delta r_a^2, and sum_a lam |alpha_a|^2."""
    n_target = spec.n_target
    if balance == "mutual":
        w = 2.0 * t - 1.0
        ra = (w * alpha)[:, None]
    else:
        target = np.ones(len(t), bool) if estimand == "ate" else t == 1
        arms = (1, 0) if estimand == "ate" else (0,)
        ra = np.stack([np.where(t == a, alpha, 0.0) - target / n_target for a in arms], axis=1)
    return {"embed": Phi.T @ ra, "diag": (delta[:, None] * ra * ra).sum(axis=0),
            "ridge": np.array([float(alpha[t == a] @ alpha[t == a]) for a in (1, 0)])}


def objective_from_terms(T: dict, lam: float, estimand: str, balance: str) -> tuple[float, float]:
    """(objective, mmd2) from the summed :func:`objective_terms`."""
    mmd2 = float(np.sum(T["embed"] ** 2) + np.sum(T["diag"]))
    if balance == "mutual" or estimand == "ate":
        ridge = float(T["ridge"].sum())
    else:
        ridge = float(T["ridge"][1])
    return mmd2 + lam * ridge, mmd2


def w_floor_for(lam: float, delta_max: float) -> float:
    """The smallest per-unit weight 1 / (lam + delta_i): the curvature one active unit gives."""
    return 1.0 / (lam + max(delta_max, 0.0)) if math.isfinite(delta_max) else 1.0 / lam
