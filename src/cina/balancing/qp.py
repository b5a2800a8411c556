"""Exact solver for the balancing QPs: min 1/2 x'Qx - c'x over a product of (capped) simplices.

Both balancing problems have this form. The paper's problem (P) is one simplex per arm with
Q = 2(K_w + lam I), c = 0; balancing an arm to a target population is one simplex with
Q = 2(K_aa + lam I), c = 2 K_a,target 1/N_target. The plain-hinge variant adds a cap x_i <= u.

Method: accelerated projected gradient (FISTA with adaptive restart) to find the support, then a
primal-dual active-set (PDAS) Newton polish that solves the KKT system on the free set exactly
(Cholesky + Schur complement on the few group constraints). The polish converges in a few
iterations from a good warm start and makes the answer exact to rounding; if it fails to
settle, FISTA simply continues until the KKT residual is below tolerance.

Q is either a matrix (the dense fast path) or a :class:`MatvecHessian`, Q known only through
its products Q x and its diagonal (a kernel operator without an in-memory matrix): the polish
then solves the free set's systems by preconditioned conjugate gradients instead of Cholesky.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..errors import ConvergenceError

__all__ = ["SimplexQPResult", "solve_simplex_qp", "project_capped_simplex", "MatvecHessian"]


class MatvecHessian:
    """A symmetric positive (semi)definite Q given by its mat-vec ``matvec(x)`` (x (n,)) and
    its ``diagonal`` (n,): what :func:`solve_simplex_qp` needs of Q on the matvec-only path."""

    def __init__(self, matvec, diagonal: np.ndarray):
        self.matvec = matvec
        self.diagonal = np.asarray(diagonal, dtype=float)

    @property
    def size(self) -> int:
        return int(self.diagonal.size)


class _DenseQ:
    """Q as a matrix: the expressions of the dense fast path."""

    def __init__(self, Q: np.ndarray):
        self.Q = Q

    def mv(self, x):
        return self.Q @ x

    def vqv(self, v) -> float:
        return float(v @ self.Q @ v)

    def half_xqx(self, x):
        return 0.5 * x @ self.Q @ x

    def diag_mean(self) -> float:
        return float(np.mean(np.diag(self.Q)))

    def block_times(self, F, U, v):
        return self.Q[np.ix_(F, U)] @ v

    def free_solver(self, F):
        """A solver of Q_FF X = B (raises LinAlgError when Q_FF is not positive definite)."""
        cf = cho_factor(self.Q[np.ix_(F, F)], check_finite=False)
        return lambda B: cho_solve(cf, B, check_finite=False)


class _MatvecQ:
    """Q through a :class:`MatvecHessian`: products only; free-set systems by Jacobi-
    preconditioned conjugate gradients."""

    CG_TOL = 1e-13  # relative residual of the free-set solves

    def __init__(self, H: MatvecHessian):
        self.H = H
        self.n = H.size

    def mv(self, x):
        return self.H.matvec(x)

    def vqv(self, v) -> float:
        return float(v @ self.H.matvec(v))

    def half_xqx(self, x):
        return 0.5 * x @ self.H.matvec(x)

    def diag_mean(self) -> float:
        return float(np.mean(self.H.diagonal))

    def block_times(self, F, U, v):
        full = np.zeros(self.n)
        full[U] = v
        return self.H.matvec(full)[F]

    def free_solver(self, F):
        dinv = 1.0 / np.maximum(self.H.diagonal[F], 1e-300)

        def mv_free(p):
            full = np.zeros(self.n)
            full[F] = p
            return self.H.matvec(full)[F]

        def solve(B):
            B = np.asarray(B, dtype=float)
            if B.ndim == 1:
                return _pcg(mv_free, B, dinv, self.CG_TOL)
            return np.column_stack([_pcg(mv_free, B[:, j], dinv, self.CG_TOL)
                                    for j in range(B.shape[1])])
        return solve


def _pcg(mv, b: np.ndarray, dinv: np.ndarray, tol: float) -> np.ndarray:
    """Preconditioned conjugate gradients for a symmetric positive definite system; raises
    LinAlgError when it does not reach ``tol`` (relative residual) in 10 n + 100 steps."""
    x = np.zeros_like(b)
    r = b.copy()
    bnorm = float(np.linalg.norm(b))
    if bnorm == 0:
        return x
    z = dinv * r
    p = z.copy()
    rz = float(r @ z)
    for _ in range(10 * b.size + 100):
        Ap = mv(p)
        pAp = float(p @ Ap)
        if not pAp > 0:
            break
        a = rz / pAp
        x += a * p
        r -= a * Ap
        if np.linalg.norm(r) <= tol * bnorm:
            return x
        z = dinv * r
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    raise np.linalg.LinAlgError("conjugate gradients did not converge")


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
    """Primal-dual active-set Newton on the KKT system; returns x or None if it did not settle.
    ``Q``: a :class:`_DenseQ` or :class:`_MatvecQ`."""
    n = x0.size
    gid = np.empty(n, dtype=np.int64)
    for k, g in enumerate(groups):
        gid[g] = k
    theta = Q.diag_mean()
    x = x0.copy()
    grad = Q.mv(x) - c
    nu = np.array([-np.mean(grad[g][x[g] > 0]) if (x[g] > 0).any() else -grad[g].min()
                   for g in groups])
    prev = None
    for _ in range(max_iter):
        r = grad + nu[gid]
        lower = theta * x < r
        upper = np.zeros(n, dtype=bool) if cap is None else theta * (x - cap) > r
        upper &= ~lower
        key = (lower.tobytes(), upper.tobytes())
        if key == prev:  # the active set is stable: x, nu and grad already solve its system
            break
        prev = key
        free = ~(lower | upper)
        F = np.flatnonzero(free)
        if F.size == 0:
            return None
        rhs = c[F].copy()
        if upper.any():
            rhs -= Q.block_times(F, np.flatnonzero(upper), cap[upper])
        E = np.zeros((len(groups), F.size))
        e = np.ones(len(groups))
        for k in range(len(groups)):
            E[k, gid[F] == k] = 1.0
            if upper.any():
                e[k] -= cap[upper & (gid == k)].sum()
        if np.any(E.sum(axis=1) == 0):
            return None
        try:
            solve_free = Q.free_solver(F)
            # KKT: Q_FF x_F + E' nu = rhs, E x_F = e  (nu enters with + sign as the multiplier)
            Qi_rhs = solve_free(rhs)
            Qi_Et = solve_free(E.T)
        except np.linalg.LinAlgError:
            return None
        S = E @ Qi_Et
        nu = np.linalg.solve(S, E @ Qi_rhs - e)
        x = np.zeros(n)
        if upper.any():
            x[upper] = cap[upper]
        x[F] = Qi_rhs - Qi_Et @ nu
        grad = Q.mv(x) - c
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
    positive (semi)definite: a matrix, or a :class:`MatvecHessian` (products only). Raises
    :class:`ConvergenceError` if the KKT residual stays above ``tol`` (relative) after
    ``max_iter`` gradient steps. ``x0``: a warm start; the active-set polish is tried from it
    first, and the gradient steps start there when it does not settle.
    """
    Q = _MatvecQ(Q) if isinstance(Q, MatvecHessian) else _DenseQ(np.asarray(Q, dtype=float))
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

    def check(xx):
        return _kkt_residual(Q.mv(xx) - c, xx, groups, cap)

    if x0 is not None and polish:
        # warm start (the previous lam's solution, in the balance guard): its active set is
        # nearly right, and the active-set Newton polish settles from it in a few steps
        xp = _pdas_polish(Q, c, groups, cap, x)
        if xp is not None:
            res = check(xp)
            if res < tol:
                return SimplexQPResult(x=xp, objective=float(Q.half_xqx(xp) - c @ xp),
                                       kkt_residual=res, iterations=0, polished=True)
    # Lipschitz constant of the gradient: largest eigenvalue of Q by power iteration
    v = np.random.default_rng(0).standard_normal(n)
    for _ in range(30):
        v = Q.mv(v)
        v /= np.linalg.norm(v)
    L = 1.05 * Q.vqv(v) + 1e-12
    step = 1.0 / L

    it = 0
    polished = False
    yk, x_prev, tk = x.copy(), x.copy(), 1.0
    next_polish = 150
    while it < max_iter:
        grad = Q.mv(yk) - c
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
    obj = float(Q.half_xqx(x) - c @ x)
    return SimplexQPResult(x=x, objective=obj, kkt_residual=res, iterations=it, polished=polished)
