"""Exact solver for the balancing QPs: min 1/2 x'Qx - c'x over a product of (capped) simplices.

Both balancing problems have this form. The paper's problem (P) is one simplex per arm with
Q = 2(K_w + lam I), c = 0; balancing an arm to a target population is one simplex with
Q = 2(K_aa + lam I), c = 2 K_a,target 1/N_target. The plain-hinge variant adds a cap x_i <= u.

Method: accelerated projected gradient (FISTA with adaptive restart) to find the support, then a
primal-dual active-set (PDAS) Newton polish that solves the KKT system on the free set exactly
(Cholesky + Schur complement on the few group constraints). The polish converges in a few
iterations from a good warm start and makes the answer exact to rounding; if it fails to
settle, FISTA simply continues until the KKT residual is below tolerance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..errors import ConvergenceError

__all__ = ["SimplexQPResult", "solve_simplex_qp", "project_capped_simplex"]


@dataclass
class SimplexQPResult:
    x: np.ndarray
    objective: float
    kkt_residual: float
    iterations: int
    polished: bool


def project_capped_simplex(y: np.ndarray, cap: float | None = None, total: float = 1.0
                           ) -> np.ndarray:
    """Euclidean projection of y onto {0 <= x <= cap, sum x = total}."""
    n = y.size
    if cap is None or cap * n <= total * (1 + 1e-12):
        if cap is not None and cap * n < total * (1 - 1e-12):
            raise ValueError("cap too small for the simplex to be non-empty")
        if cap is not None:
            return np.full(n, total / n)
        u = np.sort(y)[::-1]
        css = np.cumsum(u) - total
        ind = np.arange(1, n + 1)
        rho = np.nonzero(u - css / ind > 0)[0][-1]
        tau = css[rho] / (rho + 1)
        return np.maximum(y - tau, 0.0)
    lo, hi = y.min() - cap - 1.0, y.max()
    for _ in range(100):
        tau = 0.5 * (lo + hi)
        s = np.clip(y - tau, 0.0, cap).sum()
        if s > total:
            lo = tau
        else:
            hi = tau
    return np.clip(y - 0.5 * (lo + hi), 0.0, cap)


def _kkt_residual(grad: np.ndarray, x: np.ndarray, groups: list[np.ndarray],
                  cap: np.ndarray | None) -> float:
    """Largest violation of the KKT conditions, relative to the gradient's scale."""
    res = 0.0
    scale = max(np.abs(grad).max(), 1e-300)
    for g in groups:
        gg, xg = grad[g], x[g]
        free = xg > 0
        if cap is not None:
            free &= xg < cap[g]
        nu = -np.median(gg[free]) if free.any() else -gg.min()
        r = gg + nu
        viol = np.where(free, np.abs(r), 0.0)
        viol = np.maximum(viol, np.where(xg <= 0, np.maximum(-r, 0.0), 0.0))
        if cap is not None:
            viol = np.maximum(viol, np.where(xg >= cap[g], np.maximum(r, 0.0), 0.0))
        res = max(res, float(viol.max()))
    return res / scale


def _pdas_polish(Q, c, groups, cap, x0, max_iter=30):
    """Primal-dual active-set Newton on the KKT system; returns x or None if it did not settle."""
    n = x0.size
    gid = np.empty(n, dtype=np.int64)
    for k, g in enumerate(groups):
        gid[g] = k
    theta = float(np.mean(np.diag(Q)))
    x = x0.copy()
    grad = Q @ x - c
    nu = np.array([-np.mean(grad[g][x[g] > 0]) if (x[g] > 0).any() else -grad[g].min()
                   for g in groups])
    prev = None
    for _ in range(max_iter):
        r = grad + nu[gid]
        lower = theta * x < r
        upper = np.zeros(n, dtype=bool) if cap is None else theta * (x - cap) > r
        upper &= ~lower
        key = (lower.tobytes(), upper.tobytes())
        free = ~(lower | upper)
        F = np.flatnonzero(free)
        if F.size == 0:
            return None
        rhs = c[F].copy()
        if upper.any():
            rhs -= Q[np.ix_(F, np.flatnonzero(upper))] @ cap[upper]
        E = np.zeros((len(groups), F.size))
        e = np.ones(len(groups))
        for k in range(len(groups)):
            E[k, gid[F] == k] = 1.0
            if upper.any():
                e[k] -= cap[upper & (gid == k)].sum()
        if np.any(E.sum(axis=1) == 0):
            return None
        try:
            cf = cho_factor(Q[np.ix_(F, F)], check_finite=False)
        except np.linalg.LinAlgError:
            return None
        # KKT: Q_FF x_F + E' nu = rhs, E x_F = e  (nu enters with + sign as the multiplier)
        Qi_rhs = cho_solve(cf, rhs, check_finite=False)
        Qi_Et = cho_solve(cf, E.T, check_finite=False)
        S = E @ Qi_Et
        nu = np.linalg.solve(S, E @ Qi_rhs - e)
        x = np.zeros(n)
        if upper.any():
            x[upper] = cap[upper]
        x[F] = Qi_rhs - Qi_Et @ nu
        grad = Q @ x - c
        if key == prev:
            break
        prev = key
    r = grad + nu[gid]
    ok = (x[F] >= -1e-12).all() and (cap is None or (x[F] <= cap[F] + 1e-12).all())
    ok &= (r[lower] >= -1e-9 * max(1.0, np.abs(grad).max())).all()
    if cap is not None and upper.any():
        ok &= (r[upper] <= 1e-9 * max(1.0, np.abs(grad).max())).all()
    if not ok:
        return None
    return np.clip(x, 0.0, cap)


def solve_simplex_qp(
    Q: np.ndarray,
    c: np.ndarray,
    groups: list[np.ndarray],
    *,
    cap: float | np.ndarray | None = None,
    tol: float = 1e-9,
    max_iter: int = 20000,
    x0: np.ndarray | None = None,
    polish: bool = True,
) -> SimplexQPResult:
    """Minimise 1/2 x'Qx - c'x s.t. x >= 0 (x <= cap), sum_{i in g} x_i = 1 for every group g.

    ``groups`` are disjoint index arrays covering the variables; ``cap`` is a scalar or one
    value per variable, constant within a group. ``Q`` must be symmetric
    positive (semi)definite. Raises :class:`ConvergenceError` if the KKT residual stays above
    ``tol`` (relative) after ``max_iter`` gradient steps.
    """
    Q = np.asarray(Q, dtype=float)
    c = np.asarray(c, dtype=float)
    n = c.size
    if cap is not None:
        cap = np.broadcast_to(np.asarray(cap, dtype=float), (n,)).copy()

    def project(v):
        out = np.empty_like(v)
        for g in groups:
            out[g] = project_capped_simplex(v[g], None if cap is None else float(cap[g][0]))
        return out

    x = project(np.zeros(n)) if x0 is None else project(np.asarray(x0, dtype=float))
    # Lipschitz constant of the gradient: largest eigenvalue of Q by power iteration
    v = np.random.default_rng(0).standard_normal(n)
    for _ in range(30):
        v = Q @ v
        v /= np.linalg.norm(v)
    L = 1.05 * float(v @ Q @ v) + 1e-12
    step = 1.0 / L

    def check(xx):
        return _kkt_residual(Q @ xx - c, xx, groups, cap)

    it = 0
    polished = False
    yk, x_prev, tk = x.copy(), x.copy(), 1.0
    next_polish = 150
    while it < max_iter:
        grad = Q @ yk - c
        x_new = project(yk - step * grad)
        # adaptive restart (O'Donoghue & Candes) keeps FISTA monotone-ish on these QPs
        if (yk - x_new) @ (x_new - x_prev) > 0:
            tk = 1.0
        t_next = 0.5 * (1 + np.sqrt(1 + 4 * tk * tk))
        yk = x_new + ((tk - 1) / t_next) * (x_new - x_prev)
        x_prev, tk = x_new, t_next
        it += 1
        if it >= next_polish:
            next_polish = int(next_polish * 2)
            if polish:
                xp = _pdas_polish(Q, c, groups, cap, x_new)
                if xp is not None and check(xp) < tol:
                    x_new, polished = xp, True
                    break
            if check(x_new) < tol:
                break
    x = x_new
    res = check(x)
    if res > tol:
        if res > 1e3 * tol:
            raise ConvergenceError(
                f"balancing QP did not converge: KKT residual {res:.2e} > tol {tol:.0e} after "
                f"{it} iterations; try a larger lam_rel")
        warnings.warn(f"balancing QP stopped at KKT residual {res:.2e} (tol {tol:.0e})",
                      RuntimeWarning, stacklevel=2)
    obj = float(0.5 * x @ Q @ x - c @ x)
    return SimplexQPResult(x=x, objective=obj, kkt_residual=res, iterations=it, polished=polished)
