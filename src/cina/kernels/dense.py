"""The dense kernel operator: the n x n float64 matrix in memory (numpy).

The exact QP solver keeps its fast path on it (Hessian blocks, Cholesky factors of the free set)
through :meth:`DenseKernel.dense`. The matrix is built on first use (an Algorithm 1 fit, which
trains its own torch kernel, never builds it).
"""

from __future__ import annotations

import time

import numpy as np

from .base import KernelOperator

__all__ = ["DenseKernel"]


class DenseKernel(KernelOperator):
    """k_ij as an n x n float64 matrix (:func:`cina.balancing.kernel.attention_kernel`)."""

    kind = "dense"
    holds_matrix = True

    def __init__(self, keys: np.ndarray, bandwidth: float):
        super().__init__(np.asarray(keys, dtype=float), bandwidth)
        self._K: np.ndarray | None = None

    def dense(self) -> np.ndarray:
        if self._K is None:
            from ..balancing.kernel import attention_kernel

            start = time.perf_counter()
            self._K = attention_kernel(self.keys, self.bandwidth)
            self.seconds_build += time.perf_counter() - start
        return self._K

    def matvec(self, V: np.ndarray) -> np.ndarray:
        return self.dense() @ V

    def diagonal(self) -> np.ndarray:
        return np.diag(self.dense()).copy()

    def _compute_arm_densities(self, t: np.ndarray) -> np.ndarray:
        K = self.dense()
        return np.stack([K[:, t == 1].sum(axis=1), K[:, t == 0].sum(axis=1)], axis=1)

    @property
    def nbytes(self) -> int:
        return 0 if self._K is None else int(self._K.nbytes)

    @classmethod
    def bytes_needed(cls, n: int, d: int, itemsize: int = 8) -> int:
        return 8 * n * n  # always float64
