"""Algorithm 1: balancing weights for one dataset by training the balancing attention layer.

Self-supervised: only (x, t) enter. The layer's values u and intercept are trained by L-BFGS on
the penalised squared-hinge loss whose minimiser is the SVM dual of the balancing QP
(docs/method_notes.md sections 4 and 5), and the weights are read off the trained layer. With the kernel normalised to mean diagonal 1, lam = lam_rel and
C = 1 / lam.

* mutual (the paper's (P)): f = K u + beta0,
      L(u, beta0) = 1/2 u'Ku + C/2 sum_i [1 - w_i f_i]_+^2,
  slack read-off b_i = C [1 - w_i f_i]_+, representer read-off b_i = w_i u_i.
* target (arm a balanced to the population T, m = 1_T / |T|): g = K u,
      L_a(u, rho) = 1/2 u'Ku + m'K u - rho + C/2 sum_{i in a} [rho - g_i]_+^2,
  slack read-off b_i = C [rho - g_i]_+ (i in a), representer read-off b_i = u_i + m_i.
  Its Lagrange dual is exactly min_{b in simplex} |sum_a b_i phi_i - mean_T phi|^2 + lam |b|^2
  (derivation in docs/method_notes.md): g is the witness function of the remaining imbalance
  and rho plays the intercept's role.

alpha = max(b, 0) normalised within each arm; tau_hat = sum alpha_i w_i y_i.

Learning the key map (``learn_kernel="linear"`` or ``"mlp"``) minimises the same loss over the
kernel too, which rewards kernels under which the arms are hardest to balance (docs/method_notes.md
section 5). Guards: the keys never see t, the kernel is normalised, and the keys' mean
squared norm is held at that of z (a bandwidth constraint), so the kernel cannot collapse to the
delta kernel. ``info["delta_ratio"]`` = p* / p_delta compares the optimum under the learned
kernel with that under the delta kernel: values near or above 1 mean the kernel has learned
directions in which the arms cannot be balanced (the degeneracy). benchmarks/formulation.py
measures what learning does: it did not help, so the default is the frozen kernel.

The kernel: the layer computes it itself from the operator's keys and bandwidth (torch,
differentiable in a learned key map; Cholesky-preconditioned values). On an operator without an
in-memory matrix (``kernel.dense()`` is None: the streamed or a low-rank form) the frozen layer
uses the operator's mat-vecs instead, unpreconditioned (more iterations to the same tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..balancing.weights import balancing_objective
from ..errors import CInAValidationError
from ..kernels import KernelOperator
from ..model.attention import BalancingAttention
from ..rules import normalize_per_arm
from .base import BalancingProblem, SolverOptions, WeightSolver

__all__ = ["FitResult", "fit_balancing_attention", "READOFFS", "AttentionFitSolver",
           "FIT_MAX_ITER", "FIT_TOL"]

FIT_MAX_ITER, FIT_TOL = 3000, 1e-6  # Algorithm 1's default stopping rule

READOFFS = ("slack", "representer")


@dataclass
class FitResult:
    alpha: np.ndarray
    info: dict = field(default_factory=dict)


def _problems(t: np.ndarray, balance: str, estimand: str):
    """(arm mask, target vector m) per problem; mutual is one signed problem (m = None)."""
    n = len(t)
    if balance == "mutual":
        return [(np.ones(n, bool), None)]
    target = np.ones(n, bool) if estimand == "ate" else t == 1
    m = target / target.sum()
    arms = (1, 0) if estimand == "ate" else (0,)
    return [(t == a, m) for a in arms]


def fit_balancing_attention(
    Z: np.ndarray,
    t: np.ndarray,
    *,
    bandwidth: float,
    lam_rel: float,
    balance: str = "target",
    estimand: str = "ate",
    learn_kernel=False,
    readoff: str = "slack",
    dtype: str = "float64",
    max_iter: int = 3000,
    tol: float = 1e-6,
    seed: int = 0,
    precondition: bool = True,
    kernel: KernelOperator | None = None,
) -> FitResult:
    """Train the balancing attention layer on (Z, t) and read off the weights.

    Stops when the read-off weights change by less than ``tol`` (relative to the largest weight)
    between two L-BFGS rounds of 50 iterations, or after ``max_iter`` iterations (then
    ``info["converged"]`` is False). ``kernel``: a kernel operator of (Z, bandwidth) without an
    in-memory matrix, whose mat-vecs the frozen layer then uses (module doc).
    """
    if readoff not in READOFFS:
        raise CInAValidationError(f"readoff must be one of {READOFFS}; received {readoff!r}")
    key_map = {False: "frozen", None: "frozen", True: "linear"}.get(learn_kernel, learn_kernel)
    if key_map not in ("frozen", "linear", "mlp"):
        raise CInAValidationError(
            f"learn_kernel must be False, 'linear' or 'mlp'; received {learn_kernel!r}")
    if dtype not in ("float64", "float32"):
        raise CInAValidationError(f"dtype must be 'float64' or 'float32'; received {dtype!r}")
    if kernel is not None and key_map != "frozen":
        raise CInAValidationError(
            f"learn_kernel={learn_kernel!r} learns the key map, which needs the kernel in memory; "
            "use kernel='dense' (or learn_kernel=False on this kernel)")
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    torch.manual_seed(seed)
    t = np.asarray(t).astype(np.int64)
    n, d = Z.shape
    z = torch.as_tensor(Z, dtype=tdtype)
    w = torch.as_tensor(2.0 * t - 1.0, dtype=tdtype)
    probs = _problems(t, balance, estimand)
    masks = torch.as_tensor(np.stack([p[0] for p in probs]), dtype=tdtype)  # (P, n)
    ms = None if balance == "mutual" else torch.as_tensor(
        np.stack([p[1] for p in probs]), dtype=tdtype)
    C = 1.0 / lam_rel
    matvec = None
    if kernel is not None:
        def matvec(u: torch.Tensor) -> torch.Tensor:  # u (P, n) -> u K
            out = kernel.matvec(u.detach().to(torch.float64).numpy().T).T
            return torch.as_tensor(np.ascontiguousarray(out), dtype=u.dtype)
    layer = BalancingAttention(n, d, bandwidth, key_map, n_problems=len(probs), dtype=tdtype,
                               kernel_matvec=matvec)

    if precondition and kernel is None:
        with torch.no_grad():
            K0 = layer.kernel(z).to(torch.float64)
            jitter = 1e-6 * float(K0.diagonal().mean())
            chol = torch.linalg.cholesky(K0 + jitter * torch.eye(n, dtype=torch.float64))
        layer.set_preconditioner(chol.to(tdtype))

    def loss_fn():
        g, u, K = layer(z)  # (P, n), (P, n), (n, n)
        c0 = layer.intercept
        reg = 0.5 * torch.einsum("pi,pi->p", g, u)  # 1/2 u'Ku per problem
        if balance == "mutual":
            slack = torch.clamp(1.0 - w * (g[0] + c0[0]), min=0.0)
            return reg.sum() + 0.5 * C * (slack**2).sum()
        lin = torch.einsum("pi,pi->p", ms, g) - c0  # m'Ku - rho
        slack = torch.clamp(c0[:, None] - g, min=0.0) * masks
        # u and the weights are O(1/n) here: scale the loss by n so the optimiser's absolute
        # tolerances mean the same as in the mutual problem (the minimiser is unchanged)
        return n * ((reg + lin).sum() + 0.5 * C * (slack**2).sum())

    def read_off() -> np.ndarray:
        with torch.no_grad():
            g, u, _ = layer(z)
            if balance == "mutual":
                if readoff == "slack":
                    b = C * torch.clamp(1.0 - w * (g[0] + layer.intercept[0]), min=0.0)
                else:
                    b = w * u[0]
                b = b.numpy().astype(float)
            else:
                b = np.zeros(n)
                for p in range(len(probs)):
                    if readoff == "slack":
                        bp = C * torch.clamp(layer.intercept[p] - g[p], min=0.0)
                    else:
                        bp = u[p] + ms[p]
                    mask = probs[p][0]
                    b[mask] = bp.numpy()[mask]
        alpha = np.maximum(b, 0.0)
        if estimand == "att" and balance == "target":
            alpha[t == 1] = 1.0
        return normalize_per_arm(alpha, t, empty="uniform", in_place=True)

    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=50, history_size=50,
                            tolerance_grad=1e-14, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    alpha_prev = read_off()
    iterations, converged, change = 0, False, float("inf")
    while iterations < max_iter:
        loss = opt.step(closure)
        iterations += 50
        alpha = read_off()
        change = float(np.abs(alpha - alpha_prev).max() / max(alpha.max(), 1e-300))
        alpha_prev = alpha
        if change < tol:
            converged = True
            break
    alpha = alpha_prev
    if kernel is not None:
        K = kernel
    else:
        with torch.no_grad():
            K = layer.kernel(z).numpy().astype(float)
    objective, mmd2 = balancing_objective(K, t, alpha, lam_rel, balance, estimand)
    info = {"converged": converged, "iterations": iterations, "weight_change": change,
            "loss": float(loss.detach()), "objective": objective, "mmd2": mmd2, "readoff": readoff,
            "key_map": key_map}
    if key_map != "frozen":
        # p_delta: the same objective under the delta kernel (uniform weights are optimal there)
        eye = np.eye(n)
        uni = np.where(t == 1, 1.0 / t.sum(), 1.0 / (n - t.sum()))
        p_delta, _ = balancing_objective(eye, t, uni, lam_rel, balance, estimand)
        info["delta_ratio"] = objective / p_delta
    return FitResult(alpha=alpha, info=info)


class AttentionFitSolver(WeightSolver):
    """Algorithm 1 as a weight solver (``CInA(method="fit")``): the balancing attention layer
    trained per dataset and per lam (module doc)."""

    name = "fit"
    #: the layer's kernel, its Cholesky preconditioner and L-BFGS's history are n x n
    MAX_N = 10_000

    @classmethod
    def size_limit(cls, kernel_cls: type[KernelOperator]) -> int | None:
        return cls.MAX_N

    def __init__(self, kernel: KernelOperator, problem: BalancingProblem,
                 options: SolverOptions | None = None):
        super().__init__(kernel, problem, options)
        # an operator that can hold its matrix: the layer computes the same kernel itself, in
        # torch (differentiable); otherwise the layer uses the operator's mat-vecs
        self._matvec_kernel = None if type(kernel).holds_matrix else kernel

    def __call__(self, lam_rel: float) -> tuple[np.ndarray, dict]:
        p, o = self.problem, self.options
        res = fit_balancing_attention(
            self.kernel.keys, p.t, bandwidth=self.kernel.bandwidth, lam_rel=lam_rel,
            balance=p.balance, estimand=p.estimand, learn_kernel=o.learn_kernel, dtype=o.dtype,
            max_iter=FIT_MAX_ITER if o.max_iter is None else o.max_iter,
            tol=FIT_TOL if o.tol is None else o.tol, seed=o.random_state,
            kernel=self._matvec_kernel)
        return res.alpha, res.info
