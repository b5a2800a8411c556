"""Thread policy for the small dense linear algebra of the data-driven rules.

The lam rule, the standard error's residual fit and the bandwidth rule work on matrices of at
most ~1,000 units (their ``max_units`` cap). At that size a multi-threaded BLAS/LAPACK spends
more time synchronising threads than computing: on a 2-vCPU machine a whole zero-shot fit at
N = 1,000 took 0.20 s with OpenBLAS's default 2 threads and 0.08 s with 1
(benchmarks/results/zeroshot.md). :func:`single_threaded_blas` limits BLAS to one thread for
such a block and restores the caller's setting afterwards; without ``threadpoolctl`` (a
dependency of scikit-learn, so normally present) it does nothing. The limit is process-wide (as
with ``threadpoolctl.threadpool_limits``): fits run concurrently from several Python threads
can interleave the limit and its restoration.
"""

from __future__ import annotations

import contextlib
import functools

__all__ = ["single_threaded_blas", "blas_threads_for", "SINGLE_THREAD_MAX_N"]

# the exact QP solver (mat-vecs and Cholesky factors of the N x N kernel) ran faster on one
# thread up to about this N on the 2-vCPU benchmark machine (N = 1,000: 0.12 s vs 0.18-0.25 s;
# 2,000: 0.31 s vs 0.36-0.52 s; 4,000: 1.60 s vs 1.45 s)
SINGLE_THREAD_MAX_N = 2000


@functools.lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None
    return ThreadpoolController()


def single_threaded_blas():
    """Context manager: BLAS/LAPACK calls inside run on one thread (see the module doc)."""
    ctl = _controller()
    if ctl is None:  # pragma: no cover - see _controller
        return contextlib.nullcontext()
    return ctl.limit(limits=1, user_api="blas")


def blas_threads_for(n: int):
    """:func:`single_threaded_blas` for problems of at most :data:`SINGLE_THREAD_MAX_N` units,
    the caller's thread setting above."""
    return single_threaded_blas() if n <= SINGLE_THREAD_MAX_N else contextlib.nullcontext()
