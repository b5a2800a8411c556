"""Unit tests of the BLAS thread policy for small dense problems (cina._threads)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from cina._threads import SINGLE_THREAD_MAX_N, blas_threads_for, single_threaded_blas  # noqa: E402


def _blas_threads() -> list[int]:
    np.ones(2) @ np.ones(2)  # make sure numpy's BLAS is loaded
    return [i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas"]


def test_single_threaded_blas_limits_and_restores():
    before = _blas_threads()
    assert before, "no BLAS library found by threadpoolctl"
    with single_threaded_blas():
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_blas_threads_for_leaves_large_problems_alone():
    assert isinstance(blas_threads_for(SINGLE_THREAD_MAX_N + 1), contextlib.nullcontext)
    before = _blas_threads()
    with blas_threads_for(SINGLE_THREAD_MAX_N):
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before
