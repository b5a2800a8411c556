"""Kernel operators held as torch tensors: the dense form in torch and the O(N)-memory form.

Both wrap :class:`cina.kernels.batched.KernelOps` for one dataset (a batch of one), so the
zero-shot model runs on them natively (:meth:`TorchKernel.batch_ops` returns the
:class:`KernelOps` itself: the same numbers as the model's own batched kernel, bit for bit).

* :class:`TorchDenseKernel` ("dense" in float32, the zero-shot model's precision): the n x n
  matrix in torch;
* :class:`StreamedKernel` ("streamed"): O(n d) memory; every mat-vec is one fused attention
  call (``scaled_dot_product_attention``) and the row normalisers are computed in row chunks,
  so no n x n buffer is ever built. Each mat-vec still costs O(n^2 d).
"""

from __future__ import annotations

import time

import numpy as np

from .._progress import progress_bar, show_progress
from .base import KernelOperator

__all__ = ["TorchKernel", "TorchDenseKernel", "StreamedKernel"]

_DTYPES = ("float32", "float64")


class TorchKernel(KernelOperator):
    """One dataset's kernel as a :class:`~cina.kernels.batched.KernelOps` of one.

    ``progress``: a tqdm bar over the row chunks of the O(N)-memory build; None shows it on a
    terminal for the streamed form only (the build that takes long), True/False force it.
    """

    path: str = "dense"  # KernelOps' path

    def __init__(self, keys: np.ndarray, bandwidth: float, *, dtype: str = "float32",
                 chunk_size: int = 1024, progress: bool | None = None,
                 progress_desc: str = "kernel"):
        import torch

        from .batched import KernelOps

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}; received {dtype!r}")
        super().__init__(np.asarray(keys, dtype=float), bandwidth)
        start = time.perf_counter()
        self.dtype = dtype
        self.chunk_size = int(chunk_size)
        tdtype = torch.float32 if dtype == "float32" else torch.float64
        n = self.n
        self.progress = show_progress(progress, self.path == "sdpa")
        n_chunks = KernelOps.n_progress_chunks(n, self.path, self.chunk_size)
        with progress_bar(self.progress, n_chunks, progress_desc, "chunk") as bar, \
                torch.inference_mode():
            self.z = torch.as_tensor(self.keys, dtype=tdtype)[None]
            self.mask = torch.ones(1, n, dtype=torch.bool)
            self.ops = KernelOps(self.z, self.mask,
                                 torch.tensor([self.bandwidth], dtype=tdtype), self.path,
                                 self.chunk_size,
                                 None if bar is None else (lambda: bar.update(1)))
        self.seconds_build = time.perf_counter() - start

    def batch_ops(self):
        return self.ops

    def matvec(self, V: np.ndarray) -> np.ndarray:
        import torch

        V = np.asarray(V, dtype=float)
        one = V.ndim == 1
        with torch.inference_mode():
            Vt = torch.as_tensor(V[:, None] if one else V, dtype=self.z.dtype)[None]
            out = self.ops.matvec(Vt)[0].to(torch.float64).numpy()
        return out[:, 0] if one else out

    def diagonal(self) -> np.ndarray:
        import torch

        return torch.exp(self.ops.log_kdiag[0].to(torch.float64)).numpy()

    def _compute_arm_densities(self, t: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tt = torch.as_tensor(t, dtype=self.z.dtype)[None]
            dens = self.ops.arm_density(tt, self.mask.to(self.z.dtype))
        return dens[0].double().numpy()

    @property
    def nbytes(self) -> int:
        import torch

        return int(sum(v.numel() * v.element_size() for v in vars(self.ops).values()
                       if isinstance(v, torch.Tensor)))


class TorchDenseKernel(TorchKernel):
    """The n x n kernel in torch (float32: the zero-shot model's dense path)."""

    kind = "dense"
    path = "dense"

    @classmethod
    def bytes_needed(cls, n: int, d: int, itemsize: int = 4) -> int:
        return itemsize * n * n


class StreamedKernel(TorchKernel):
    """The O(N)-memory kernel: mat-vecs by fused attention, normalisers in row chunks."""

    kind = "streamed"
    path = "sdpa"

    @classmethod
    def bytes_needed(cls, n: int, d: int, itemsize: int = 4) -> int:
        # queries and keys (n, d + 2), scaled keys (n, d), six per-unit vectors, and the
        # row-chunk temporaries of the logsumexps (chunk x n)
        return itemsize * (n * (3 * d + 10) + 1024 * n)
