"""The kernel-operator interface: one dataset's normalised attention kernel, used by mat-vecs.

Every weight solver (:mod:`cina.solvers`) reaches the kernel only through this interface, so a
new representation of the kernel (low-rank, distributed) is one new module that subclasses
:class:`KernelOperator` and registers a kind (:func:`cina.kernels.register_kernel`).

The kernel is k_ij = exp(s_ij - log h_i - log h_j - c) with scores s_ij = q_i . q_j / bandwidth on
the keys q (the standardised covariates), h the attention row normalisers and c the log mean
diagonal, so that the mean of k_ii is 1 (docs/method_notes.md section 1).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

__all__ = ["KernelOperator", "OperatorBatchOps"]


class KernelOperator(abc.ABC):
    """The normalised attention-induced kernel K (n x n) of one dataset's keys.

    Required of a subclass: :meth:`matvec`, :meth:`diagonal`, :attr:`nbytes` and
    :meth:`bytes_needed`. Optional structure a solver may exploit: :meth:`dense` (the matrix,
    when it is held in memory) and :meth:`batch_ops` (the zero-shot model's batched torch
    interface; the default adapts :meth:`matvec`).

    ``quadratic_matvec``: whether one mat-vec costs O(n^2 d) (the dense and streamed forms) or
    less (a low-rank factor); solvers size their limits by it. ``holds_matrix``: whether
    :meth:`dense` returns the matrix.
    """

    kind: ClassVar[str] = ""
    quadratic_matvec: ClassVar[bool] = True
    #: whether :meth:`dense` gives the float64 matrix (the exact QP's fast path; Algorithm 1
    #: then computes the same kernel itself in torch)
    holds_matrix: ClassVar[bool] = False

    def __init__(self, keys: np.ndarray, bandwidth: float):
        self.keys = keys
        self.bandwidth = float(bandwidth)
        self.seconds_build = 0.0  # wall time of building the operator (info of the solvers)
        self._densities: tuple[bytes, np.ndarray] | None = None

    @property
    def n(self) -> int:
        return int(self.keys.shape[0])

    @property
    def d(self) -> int:
        return int(self.keys.shape[1])

    @abc.abstractmethod
    def matvec(self, V: np.ndarray) -> np.ndarray:
        """K V for V (n,) or (n, k), float64."""

    @abc.abstractmethod
    def diagonal(self) -> np.ndarray:
        """k_ii (n,), float64."""

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Memory held by the operator now."""

    @classmethod
    @abc.abstractmethod
    def bytes_needed(cls, n: int, d: int, itemsize: int = 8) -> int:
        """Memory the operator would hold for n units of d key dimensions in a dtype of
        ``itemsize`` bytes (the budget policy of :func:`cina.kernels.make_kernel`)."""

    def dense(self) -> np.ndarray | None:
        """The kernel matrix when it is held in memory (float64), else None."""
        return None

    def arm_densities(self, t: np.ndarray) -> np.ndarray:
        """(K 1_T, K 1_C) (n, 2) for the 0/1 treatment t, cached for the last t (the balance
        guard and the overlap check reuse them)."""
        t = np.asarray(t)
        key = t.tobytes()
        if self._densities is not None and self._densities[0] == key:
            return self._densities[1]
        dens = self._compute_arm_densities(t)
        self._densities = (key, dens)
        return dens

    def _compute_arm_densities(self, t: np.ndarray) -> np.ndarray:
        tf = t.astype(float)
        return np.asarray(self.matvec(np.stack([tf, 1.0 - tf], axis=1)), dtype=float)

    def batch_ops(self):
        """The zero-shot model's batched kernel interface for this dataset (a batch of one):
        ``matvec(V (1, n, m))``, ``arm_density(t, mask)`` and ``log_kdiag`` (1, n)."""
        return OperatorBatchOps(self)


class OperatorBatchOps:
    """Adapter from a :class:`KernelOperator` to the zero-shot model's batched torch interface
    (the one :class:`cina.kernels.batched.KernelOps` offers), for a batch of one dataset: each
    mat-vec goes through the operator in float64 and comes back in the model's dtype."""

    def __init__(self, op: KernelOperator, dtype=None):
        import torch

        self.op = op
        self.dtype = torch.float32 if dtype is None else dtype
        self.log_kdiag = torch.log(torch.as_tensor(op.diagonal(), dtype=self.dtype))[None]
        self._density = None

    def matvec(self, V):
        import torch

        if V.shape[0] != 1:
            raise ValueError(f"a kernel operator serves a batch of one; received {V.shape[0]}")
        out = self.op.matvec(V[0].detach().to(torch.float64).cpu().numpy())
        return torch.as_tensor(out, dtype=V.dtype)[None]

    def arm_density(self, t, mk):
        import torch

        cached = self._density
        if cached is not None and cached[0].shape == t.shape and torch.equal(cached[0], t):
            return cached[1]
        dens = self.op.arm_densities((t[0] > 0.5).cpu().numpy().astype(np.int64))
        out = torch.as_tensor(dens, dtype=t.dtype)[None] * mk[..., None]
        self._density = (t.detach().clone(), out)
        return out
