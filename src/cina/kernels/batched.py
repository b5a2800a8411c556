"""The batched attention kernel in torch: a padded batch of datasets, dense or O(N)-memory.

The zero-shot model (:mod:`cina.model.balancer`) trains and runs on batches of datasets through
this class; :class:`cina.kernels.torch_kernel.TorchKernel` wraps one dataset's batch of one as a
:class:`~cina.kernels.base.KernelOperator`. No parameters: the kernel is fixed by the keys.

Kernel identity used throughout (docs/method_notes.md section 1). With log h_i =
logsumexp_j s_ij and the normalising constant c (log of the mean kernel diagonal),
log k_ij = s_ij - log h_i - log h_j - c. Writing the key bias kb_j = -log h_j, the row ``i`` of
the kernel is

    k_ij = (K 1)_i * softmax_j(s_ij + kb_j),     (K 1)_i = exp(logsumexp_j(s_ij + kb_j) - log h_i - c)

so a kernel mat-vec ``K V`` is ONE attention call with queries ``[z_i / sqrt(b), 1]``, keys
``[z_j / sqrt(b), kb_j]`` (the bias folded into an extra key dimension, so no N x N mask is ever
built), values ``V`` and the output scaled per row by the kernel density (K 1)_i. Padded units get
kb_j = -1e9: they drop out of every key, sum, softmax and normaliser. Two paths give the same
numbers (tested): "dense" materialises the (B, N, N) kernel once (small N, training) and "sdpa"
keeps O(N) memory with ``scaled_dot_product_attention`` and row-chunked logsumexps (large N).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["KernelOps", "KERNEL_PATHS"]

KERNEL_PATHS = ("dense", "sdpa")
_NEG = -1.0e9  # key bias of padded units


class KernelOps:
    """The fixed normalised attention kernel of a padded batch of datasets (no parameters).

    z (B, N, D) standardised covariates (zeros on padding), mask (B, N) True on real units,
    bandwidth (B,). ``path``: "dense" materialises K (B, N, N); "sdpa" keeps O(N) memory.
    """

    MATVEC_ROWS = 64  # row block of the dense mat-vec at large N (inference)
    MATVEC_BLOCKED_FROM = 3000  # below, one product is faster (measured at N = 1,000-4,000)

    def __init__(self, z: torch.Tensor, mask: torch.Tensor, bandwidth: torch.Tensor,
                 path: str = "dense", chunk_size: int = 1024,
                 progress: Callable[[], None] | None = None):
        if path not in ("dense", "sdpa"):
            raise ValueError(f"path must be 'dense' or 'sdpa'; received {path!r}")
        self.path = path
        self.chunk = int(chunk_size)
        self._progress = progress  # called once per row chunk of the "sdpa" path's passes
        self.mask = mask
        self._density: tuple[torch.Tensor, torch.Tensor] | None = None  # see arm_density
        with torch.no_grad():
            qs = z / torch.sqrt(bandwidth)[:, None, None]  # (B, N, D)
            qs = qs * mask[..., None]
            N = qs.shape[1]
            colbias = torch.where(mask, 0.0, _NEG).to(z.dtype)  # (B, N)
            n = mask.sum(1).to(z.dtype)  # (B,)
            self.n = n
            if path == "dense":
                # the scores are the only N x N buffer; everything below is in place in it:
                # E_ij = exp(s_ij - max_j s_ij) over the real columns, and
                # log h_i = max_j s_ij + log sum_j E_ij
                S = qs @ qs.transpose(1, 2)  # (B, N, N)
                if not bool(mask.all()):
                    S.masked_fill_(~mask[:, None, :], -math.inf)  # padded units in no sum
                rowmax = S.amax(-1, keepdim=True)  # (B, N, 1), finite: every row has a real unit
                S.sub_(rowmax)
                S.exp_()
                rowsum = S.sum(-1)  # (B, N)
                log_h = rowmax[..., 0] + torch.log(rowsum)  # (B, N)
            else:
                kt = qs.transpose(1, 2)
                log_h = self._chunked_lse(lambda a, b: qs[:, a:b] @ kt, N, colbias)
            sq = (qs * qs).sum(-1)  # (B, N)
            logdiag = sq - 2.0 * log_h  # log k_ii before normalisation
            logdiag_m = torch.where(mask, logdiag, -math.inf)
            c = torch.logsumexp(logdiag_m, dim=1) - torch.log(n)  # (B,) log mean diagonal
            self.keybias = colbias - log_h  # (B, N)
            self.row_shift = log_h + c[:, None]  # (B, N): log k_ij = s_ij + kb_j - shift_i
            self.log_kdiag = logdiag - c[:, None]  # (B, N) log k_ii (normalised)
            if path == "dense":
                # k_ij = M_ij exp(-shift_j) with M_ij = exp(s_ij - log h_i) = E_ij / sum_j E_ij
                # (s symmetric): one scaling pass; padded rows and columns are exact zeros, and
                # the per-unit factor exp(-shift_j) is applied to the mat-vec's output
                S.mul_((mask / rowsum)[..., None])
                self._M = S  # (B, N, N)
                self._out_scale = torch.where(mask, torch.exp(-self.row_shift), 0.0)  # (B, N)
                self.log_rowsum = (torch.log(S.sum(1).clamp_min(1e-30)) - self.row_shift)
            else:
                self._M = None
                self.log_rowsum = self._chunked_lse(lambda a, b: qs[:, a:b] @ kt, N,
                                                    self.keybias) - self.row_shift
                # queries [qs, 1], keys [qs, kb]: q_i . k_j = s_ij + kb_j
                ones = torch.ones_like(qs[..., :1])
                self._q = torch.cat([qs, ones], -1)  # (B, N, D+1)
                self._k = torch.cat([qs, self.keybias[..., None]], -1)  # (B, N, D+1)
            self.log_rowsum = torch.where(mask, self.log_rowsum, 0.0)

    def _chunked_lse(self, scores, N: int, colbias: torch.Tensor) -> torch.Tensor:
        """logsumexp_j (scores_ij + colbias_j) for rows in chunks (O(N * chunk) temporaries);
        ``scores(a, b)`` gives rows a:b of the scores, (B, b - a, N)."""
        out = []
        for a in range(0, N, self.chunk):
            out.append(torch.logsumexp(scores(a, a + self.chunk) + colbias[:, None, :], dim=-1))
            if self._progress is not None:
                self._progress()
        return torch.cat(out, 1)

    @staticmethod
    def n_progress_chunks(N: int, path: str, chunk_size: int) -> int:
        """How many times ``progress`` is called while building the kernel of N units."""
        return 2 * math.ceil(N / chunk_size) if path == "sdpa" else 0

    def arm_density(self, t: torch.Tensor, mk: torch.Tensor) -> torch.Tensor:
        """(K 1_T, K 1_C) (B, N, 2) for treatment t, cached: the same kernel serves several
        lam (the estimator's balance guard) without recomputing it."""
        cached = self._density
        if cached is not None and cached[0].shape == t.shape and torch.equal(cached[0], t):
            return cached[1]
        with torch.no_grad():
            KA = self.matvec(torch.stack([t * mk, (1 - t) * mk], -1))
        self._density = (t.detach().clone(), KA)
        return KA

    def matvec(self, V: torch.Tensor) -> torch.Tensor:
        """K V for V (B, N, m); differentiable in V."""
        if self.path == "dense":  # (K V)_j = exp(-shift_j) sum_i M_ij V_i: (V' M)' is ~5x
            # faster than M' V for thin V
            Vt = V.transpose(1, 2)  # (B, m, N)
            N = Vt.shape[-1]
            if N < self.MATVEC_BLOCKED_FROM or torch.is_grad_enabled():
                out = Vt @ self._M
            else:  # blocks of rows: a block stays in cache for every value column (a single
                # (m, N) x (N, N) product streams the matrix from memory once per value column
                # once it outgrows the cache: ~25% faster at N = 10,000)
                out = torch.zeros(Vt.shape[0], Vt.shape[1], N, dtype=V.dtype, device=V.device)
                for a in range(0, N, self.MATVEC_ROWS):
                    out.baddbmm_(Vt[..., a:a + self.MATVEC_ROWS], self._M[:, a:a + self.MATVEC_ROWS])
            return out.transpose(1, 2) * self._out_scale[..., None]
        B, N, m = V.shape
        D1 = self._q.shape[-1]
        width = max(D1, m)  # the fused CPU kernel wants equal head dims: pad q, k and v
        q = F.pad(self._q, (0, width - D1))
        k = F.pad(self._k, (0, width - D1))
        v = F.pad(V, (0, width - m))
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)
        return torch.exp(self.log_rowsum)[..., None] * out[:, 0, :, :m]
