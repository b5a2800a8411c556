"""The exact balancing QP on a low-rank kernel K = Phi Phi' + diag(delta), through its
m-dimensional dual: every iteration O(n m), no n x n matrix and no n-dimensional linear system.

Each balancing problem of :mod:`cina.balancing.weights` (one per balanced arm for
``balance="target"``, one with both arms for ``"mutual"``) becomes, with lam_i = ridge + delta_i
(the diagonal correction acts as a per-unit ridge), s_i = +-1 the unit's sign (mutual: 2t - 1)
and b_i = delta_i [i in T] / |T| (the target's own diagonal terms),

    min over the arms' simplices of  |sum_i s_i alpha_i Phi_i - mu|^2 + sum_i lam_i alpha_i^2
                                      - 2 sum_i b_i alpha_i,

mu = Phi' 1_T / |T| (mutual: 0). Writing u = sum_i s_i alpha_i Phi_i - mu and dualising it with
theta in R^m, the dual function

    g(theta) = -|theta|^2 - 2 theta . mu + min_alpha sum_i [lam_i alpha_i^2 - 2 alpha_i beta_i],
    beta_i = b_i - s_i Phi_i . theta,

is concave and smooth; its inner minimiser is a weighted projection onto each simplex,
alpha_i = max(beta_i - nu_g, 0) / lam_i with nu_g making the group sum to 1
(:func:`weighted_simplex_projection`), and grad g = 2 (u(alpha) - theta). Strong duality holds
and alpha(theta*) is the QP's unique solution. We maximise g by semismooth Newton with an Armijo
line search: -hess g / 2 = I + sum_F Phi_i Phi_i' / lam_i - sum_g v_g v_g' / S_g over the free
units F (v_g = sum_{F in g} s_i Phi_i / lam_i, S_g = sum_{F in g} 1 / lam_i), its first sum
kept up to date as F changes (:class:`_Hessian`: built once, then only the units entering or
leaving F, a handful per step near the solution). Stopping rule: the duality gap, a bound on the
primal suboptimality, below ``tol`` relative to the primal objective. Derivation and
measurements: docs/method_notes.md section 12.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dsyrk as syrk

from .._progress import progress_bar, show_progress
from ..balancing.qp import _kkt_residual
from ..errors import ConvergenceError

__all__ = ["weighted_simplex_projection", "solve_factor_balancing", "FactorDualResult"]

#: a solve on at least this many units is a "long stage" (a progress bar on a terminal)
LONG_SOLVE_UNITS = 100_000
#: rows per block of the Hessian's accumulation
_BLOCK = 8192


def weighted_simplex_projection(beta: np.ndarray, lam: np.ndarray, nu0: float | None = None
                                ) -> tuple[np.ndarray, float]:
    """alpha_i = max(beta_i - nu, 0) / lam_i with sum_i alpha_i = 1 (lam > 0): the minimiser of
    sum_i lam_i alpha_i^2 - 2 alpha_i beta_i over the simplex. Returns (alpha, nu).

    f(nu) = sum_i max(beta_i - nu, 0) / lam_i - 1 is convex, piecewise linear and decreasing:
    Newton's method started left of its root (f >= 0) stays left of it and reaches it in
    finitely many steps, each O(n). ``nu0``: a start (the previous call's nu), used when it is
    left of the root.
    """
    inv = 1.0 / lam
    start = float(np.max(beta - lam))  # the unit reaching the max gets alpha = 1 alone: f >= 0
    nu = start
    if nu0 is not None and np.isfinite(nu0):
        act = beta > nu0
        if float(((beta[act] - nu0) * inv[act]).sum()) >= 1.0:
            nu = max(float(nu0), start)
    for _ in range(200):
        act = beta > nu
        s = float(inv[act].sum())
        f = float(((beta[act] - nu) * inv[act]).sum()) - 1.0
        if f <= 1e-15 * max(1.0, s * abs(nu)):
            break
        nu += f / s
    alpha = np.maximum(beta - nu, 0.0) * inv
    total = alpha.sum()
    if total > 0:
        alpha /= total  # the last Newton step leaves at most a rounding error in the sum
    return alpha, nu


@dataclass
class FactorDualResult:
    alpha: np.ndarray
    theta: np.ndarray  # (P, m) the dual variables, a warm start for a nearby lam
    objective: float  # the primal objective (the balancing QP's, without constants)
    gap: float  # relative duality gap at the end
    kkt_residual: float  # the primal KKT residual (relative, as the dense solver reports it)
    iterations: int


class _Problem:
    """The problems' structure: unit -> problem, groups, signs, per-unit ridge and linear
    term, and the targets mu (P, m)."""

    def __init__(self, Phi, delta, t, ridge, balance, estimand):
        n = len(t)
        t = np.asarray(t)
        self.problem = np.full(n, -1, dtype=np.int64)
        self.sign = np.ones(n)
        self.groups: list[np.ndarray] = []  # unit indices of each simplex
        self.group_problem: list[int] = []
        self.fixed = np.zeros(n)  # alpha of units outside every problem (ATT treated)
        self.b = np.zeros(n)
        treated, control = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
        if balance == "mutual":
            self.problem[:] = 0
            self.sign = 2.0 * t - 1.0
            self.groups = [treated, control]
            self.group_problem = [0, 0]
            self.mu = np.zeros((1, Phi.shape[1]))
        else:
            target = np.ones(n, bool) if estimand == "ate" else t == 1
            arms = [treated, control] if estimand == "ate" else [control]
            mean_target = (target / target.sum()) @ Phi  # Phi' 1_T / |T|
            self.b = np.where(target, delta / target.sum(), 0.0)
            for p, idx in enumerate(arms):
                self.problem[idx] = p
                self.groups.append(idx)
                self.group_problem.append(p)
            self.mu = np.tile(mean_target, (len(arms), 1))
            if estimand == "att":
                self.fixed[treated] = 1.0 / len(treated)
        self.P = self.mu.shape[0]
        self.lam = ridge + delta
        self.in_problem = self.problem >= 0
        self.b[~self.in_problem] = 0.0


def _scores(Phi, theta, pb: _Problem) -> np.ndarray:
    """s_i Phi_i . theta_{p(i)} (0 outside the problems): one pass over Phi."""
    PT = Phi @ theta.T  # (n, P)
    out = np.zeros(Phi.shape[0])
    sel = pb.in_problem
    out[sel] = pb.sign[sel] * np.take_along_axis(PT[sel], pb.problem[sel, None], axis=1)[:, 0]
    return out


def _inner(Phi, theta, pb: _Problem, nus):
    """alpha(theta), nu per group, and the dual value g(theta) / 1 (module doc)."""
    beta = pb.b - _scores(Phi, theta, pb)
    alpha = pb.fixed.copy()
    new_nus = []
    inner = 0.0
    for g, idx in enumerate(pb.groups):
        a, nu = weighted_simplex_projection(beta[idx], pb.lam[idx], nus[g])
        alpha[idx] = a
        new_nus.append(nu)
        inner += float(pb.lam[idx] @ (a * a) - 2.0 * (a @ beta[idx]))
    dual = inner - float(np.sum(theta * theta)) - 2.0 * float(np.sum(theta * pb.mu))
    return alpha, new_nus, dual


def _imbalance(Phi, alpha, pb: _Problem, extra: np.ndarray | None = None):
    """u_p = sum_{i in p} s_i alpha_i Phi_i - mu_p (P, m), and Phi' extra (one pass)."""
    cols = np.zeros((Phi.shape[0], pb.P))
    sel = pb.in_problem
    cols[np.flatnonzero(sel), pb.problem[sel]] = pb.sign[sel] * alpha[sel]
    if extra is not None:
        cols = np.concatenate([cols, extra], axis=1)
    prod = (Phi.T @ cols).T  # (P [+ extra], m)
    return prod[:pb.P] - pb.mu, prod[pb.P:]


def _primal(alpha, u, pb: _Problem) -> float:
    a = np.where(pb.in_problem, alpha, 0.0)
    return float(np.sum(u * u) + pb.lam @ (a * a) - 2.0 * (pb.b @ a))


def _syrk_update(A: np.ndarray, Phi: np.ndarray, rows: np.ndarray, w: np.ndarray,
                 sign: float) -> None:
    """A += sign * sum_{i in rows} w_i Phi_i Phi_i' (upper triangle; dsyrk, blocks of rows)."""
    for a in range(0, len(rows), _BLOCK):
        r = rows[a:a + _BLOCK]
        Xs = np.asarray(Phi[r], dtype=np.float64) * np.sqrt(w[r])[:, None]
        A[:] = syrk(sign, Xs, beta=1.0, c=A, trans=1, lower=0)


class _Hessian:
    """-hess g / 2 = I + sum_F Phi_i Phi_i' / lam_i - sum_g v_g v_g' / S_g per problem, kept
    up to date as the free set F changes (module doc): built once over the first free set
    (O(|F| m^2)), then only the units that entered or left F are added or removed, which near
    the solution are a handful per Newton step (at N = 100,000: ~550, then ~130, 8, 1, 0), so
    every step is an exact Newton step at O(changes m^2) beyond the passes over Phi."""

    def __init__(self, Phi, pb: _Problem):
        self.Phi, self.pb = Phi, pb
        m = Phi.shape[1]
        self.inv = 1.0 / pb.lam
        self.free = np.zeros(len(pb.lam), dtype=bool)
        self.A = [np.zeros((m, m)) for _ in range(pb.P)]  # upper triangles

    def direction(self, alpha, theta, u) -> np.ndarray:
        pb, Phi = self.pb, self.Phi
        free = (alpha > 0) & pb.in_problem
        changed = free != self.free
        for p in range(pb.P):
            mine = pb.problem == p
            n_changed = int(np.count_nonzero(changed & mine))
            if n_changed == 0:
                continue
            if n_changed > int(np.count_nonzero(free & mine)):  # cheaper to start over
                self.A[p][:] = 0.0
                _syrk_update(self.A[p], Phi, np.flatnonzero(free & mine), self.inv, 1.0)
            else:
                _syrk_update(self.A[p], Phi, np.flatnonzero(changed & free & mine),
                             self.inv, 1.0)
                _syrk_update(self.A[p], Phi, np.flatnonzero(changed & ~free & mine),
                             self.inv, -1.0)
        self.free = free
        # the groups' rank-one terms: v_g = sum_{F in g} s_i Phi_i / lam_i (one pass)
        w = np.zeros((len(pb.lam), len(pb.groups)))
        S = np.zeros(len(pb.groups))
        for g, idx in enumerate(pb.groups):
            wg = np.where(free[idx], self.inv[idx], 0.0)
            w[idx, g] = pb.sign[idx] * wg
            S[g] = wg.sum()
        v = (Phi.T @ w).T
        out = np.empty_like(theta)
        for p in range(pb.P):
            H = np.triu(self.A[p]) + np.triu(self.A[p], 1).T
            H[np.diag_indices_from(H)] += 1.0
            for g, gp in enumerate(pb.group_problem):
                if gp == p and S[g] > 0:
                    H -= np.outer(v[g], v[g]) / S[g]
            rhs = u[p] - theta[p]
            try:
                out[p] = cho_solve(cho_factor(H, lower=True, check_finite=False), rhs,
                                   check_finite=False)
            except np.linalg.LinAlgError:  # H >= I in exact arithmetic; rounding: gradient
                out[p] = rhs
        return out


def solve_factor_balancing(Phi: np.ndarray, delta: np.ndarray, t: np.ndarray, ridge: float, *,
                           balance: str = "target", estimand: str = "ate", tol: float = 1e-12,
                           theta0: np.ndarray | None = None, max_iter: int = 500,
                           progress: bool | None = None) -> FactorDualResult:
    """The balancing weights of K = Phi Phi' + diag(delta) at ridge ``ridge`` (squared-hinge
    penalty), by the dual Newton method of the module doc. ``theta0``: the previous solve's
    ``theta`` (the balance guard's warm start). Raises :class:`ConvergenceError` if the
    relative duality gap is still above 1e3 ``tol`` after ``max_iter`` Newton steps.
    ``progress``: a bar over the Newton steps (None: on a terminal from
    :data:`LONG_SOLVE_UNITS` units)."""
    Phi = np.asarray(Phi)
    pb = _Problem(Phi, np.asarray(delta, dtype=float), t, float(ridge), balance, estimand)
    m = Phi.shape[1]
    theta = np.zeros((pb.P, m)) if theta0 is None or np.shape(theta0) != (pb.P, m) \
        else np.array(theta0, dtype=float)
    hessian = _Hessian(Phi, pb)
    nus = [None] * len(pb.groups)
    alpha, nus, dual = _inner(Phi, theta, pb, nus)
    u, _ = _imbalance(Phi, alpha, pb)
    primal = _primal(alpha, u, pb)
    it = 0
    with progress_bar(show_progress(progress, len(pb.lam) >= LONG_SOLVE_UNITS), max_iter,
                      "exact QP (dual Newton)", "step") as bar:
        while it < max_iter and (primal - dual) / max(abs(primal), 1e-300) > tol:
            it += 1
            if bar is not None:
                bar.update(1)
            step = hessian.direction(alpha, theta, u)
            slope = 2.0 * float(np.sum((u - theta) * step))  # grad g . step > 0
            t_step = 1.0
            while True:
                cand = theta + t_step * step
                a_new, nus_new, d_new = _inner(Phi, cand, pb, nus)
                if d_new >= dual + 1e-4 * t_step * slope or t_step < 1e-10:
                    break
                t_step *= 0.5
            if d_new < dual:  # no ascent left at rounding level: as good as it gets
                break
            theta, alpha, nus, dual = cand, a_new, nus_new, d_new
            u, _ = _imbalance(Phi, alpha, pb)
            primal = _primal(alpha, u, pb)
        if bar is not None:  # the stopping rule ended it: show the steps run
            bar.total = bar.n
            bar.refresh()
    gap = (primal - dual) / max(abs(primal), 1e-300)
    # the primal gradient 2 (s_i Phi_i . u_p + lam_i alpha_i - b_i) for the KKT residual
    grad = 2.0 * (_scores(Phi, u, pb) + pb.lam * alpha - pb.b)
    kkt = _kkt_residual(grad, alpha, pb.groups, None)
    if gap > 1e3 * tol and gap > 1e-9:
        raise ConvergenceError(
            f"the low-rank balancing QP stopped at a relative duality gap {gap:.1e} after "
            f"{it} Newton steps; try a larger lam_rel")
    return FactorDualResult(alpha=alpha, theta=theta, objective=primal, gap=max(gap, 0.0),
                            kkt_residual=kkt, iterations=it)
