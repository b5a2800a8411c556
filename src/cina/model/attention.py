"""The balancing attention layer (Algorithm 1; docs/method_notes.md sections 1, 4 and 5) as a
pure ``nn.Module``.

Units are tokens. Queries = keys = q(z) (the key map never sees the treatment), scores
s_ij = q_i . q_j / bandwidth, and the attention-induced kernel k_ij = exp(s_ij - log h_i - log h_j)
is built in log space. The layer's output is the SVM decision function f = K u + intercept, with
K the kernel normalised to mean diagonal 1 (so lam = lam_rel) and u the per-unit values in
representer form (u_j = h_j v_j with v the attention values; docs/method_notes.md section 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["KeyMap", "BalancingAttention", "log_attention_kernel"]


def log_attention_kernel(q: torch.Tensor, bandwidth: float, normalize: bool = True
                         ) -> torch.Tensor:
    """log k (n, n) from keys q (n, D): s - log h_i - log h_j, optionally minus log mean k_ii."""
    s = (q @ q.T) / bandwidth  # (n, n)
    log_h = torch.logsumexp(s, dim=1)  # (n,)
    logk = s - log_h[:, None] - log_h[None, :]
    if normalize:
        logk = logk - (torch.logsumexp(torch.diagonal(logk), 0) - math.log(q.shape[0]))
    return logk


class KeyMap(nn.Module):
    """z (n, d) -> keys (n, D). ``kind``: "frozen" (identity), "linear" or "mlp".

    Guard against the degenerate optima of a learned kernel (docs/method_notes.md section 5):
    the keys are rescaled so that their mean squared norm equals that of z, so learning can
    rotate and reweight covariates but cannot sharpen the kernel towards the delta kernel.
    """

    def __init__(self, d: int, kind: str = "frozen", hidden: int = 32):
        super().__init__()
        self.kind = kind
        if kind == "frozen":
            self.net = None
        elif kind == "linear":
            self.net = nn.Linear(d, d, bias=False)
            with torch.no_grad():
                self.net.weight.copy_(torch.eye(d))
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, d))
            with torch.no_grad():  # start close to the identity map
                self.net[2].weight.mul_(0.1)
                self.net[2].bias.zero_()
            self.skip = True
        else:
            raise ValueError(f"unknown key map {kind!r}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (n, d) -> (n, d)
        if self.net is None:
            return z
        q = self.net(z) + (z if self.kind == "mlp" else 0.0)
        target = (z * z).sum(dim=1).mean()
        return q * torch.sqrt(target / (q * q).sum(dim=1).mean().clamp_min(1e-12))


class BalancingAttention(nn.Module):
    """Algorithm 1's parameters for one dataset: key map, free values u (n,), intercept(s).

    ``n_problems`` independent value vectors are held: 1 for the mutual problem, one per
    balanced arm for the target problems (2 for the ATE, 1 for the ATT).

    The values are stored as ``raw_values`` and mapped through an optional fixed linear
    preconditioner: u = L^{-T} raw with L the Cholesky factor of K0 + delta I (K0 the initial
    kernel). The loss and its minimiser are unchanged; only the optimiser's geometry is
    (in u the Hessian is K + C K D K, whose condition number is that of K squared, and smooth
    kernels are nearly low rank; in raw coordinates it is close to I + C L'DL).
    """

    def __init__(self, n: int, d: int, bandwidth: float, key_map: str = "frozen",
                 n_problems: int = 1, dtype: torch.dtype = torch.float64,
                 kernel_matvec: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        if kernel_matvec is not None and key_map != "frozen":
            raise ValueError("a fixed kernel mat-vec needs the frozen key map")
        self._kernel_matvec = kernel_matvec
        self.bandwidth = float(bandwidth)
        self.key_map = KeyMap(d, key_map).to(dtype)
        self.raw_values = nn.Parameter(torch.zeros(n_problems, n, dtype=dtype))
        self.intercept = nn.Parameter(torch.zeros(n_problems, dtype=dtype))
        self.register_buffer("precond", None)
        self._frozen_kernel: torch.Tensor | None = None

    def set_preconditioner(self, chol_lower: torch.Tensor | None) -> None:
        self.precond = chol_lower

    @property
    def values(self) -> torch.Tensor:  # u, (P, n)
        if self.precond is None:
            return self.raw_values
        return torch.linalg.solve_triangular(self.precond.T, self.raw_values.T, upper=True).T

    def kernel(self, z: torch.Tensor) -> torch.Tensor:
        """The normalised attention kernel K (n, n) for the current key map (cached if frozen)."""
        if self.key_map.kind == "frozen":
            if self._frozen_kernel is None or self._frozen_kernel.shape[0] != z.shape[0]:
                self._frozen_kernel = torch.exp(log_attention_kernel(z, self.bandwidth))
            return self._frozen_kernel
        return torch.exp(log_attention_kernel(self.key_map(z), self.bandwidth))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Decision values f - intercept = K u per problem (P, n), the values u, and K (None
        when the layer was given a fixed kernel mat-vec instead of computing K)."""
        u = self.values
        if self._kernel_matvec is not None:
            return _FixedKernelMatvec.apply(u, self._kernel_matvec), u, None
        K = self.kernel(z)
        return u @ K, u, K


class _FixedKernelMatvec(torch.autograd.Function):
    """u -> u K for a fixed symmetric kernel given by its mat-vec; the gradient is g K."""

    @staticmethod
    def forward(ctx, u, matvec):
        ctx.matvec = matvec
        return matvec(u)

    @staticmethod
    def backward(ctx, grad):
        return ctx.matvec(grad), None
