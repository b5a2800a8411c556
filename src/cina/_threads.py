"""Thread policy: how many BLAS / OpenMP / torch threads a fit uses (docs/method_notes.md
section 13).

Why. numpy/scipy's OpenBLAS, the OpenMP runtimes of scikit-learn and torch, and torch's own
pool each start one thread per core and spin while they wait. On a machine whose cores are
already busy (other jobs, other fits) these threads compete with each other and with the
other processes: on the 2-core benchmark machine with two CPU-bound processes running, a
256 x 256 eigendecomposition took 0.15-0.37 s on two threads and 0.02-0.04 s on one, a zero-shot
fit at N = 1,000 took 4.9 s instead of 0.08 s, and ``cina estimate --method aipw`` at N = 400
98.7 s instead of 4.3 s (benchmarks/results/scale.md). So every fit runs under a thread limit,
chosen once at its start (:func:`fit_threads`, entered by
:meth:`cina.base.EffectEstimator.fit_validated`, so CInA and every baseline, from Python and
from the CLI):

1. an explicit setting wins: the estimator's ``n_jobs`` (``CInA(n_jobs=...)``), else the
   environment variable ``CINA_NUM_THREADS`` (the CLI's ``--threads`` sets it); a positive
   count, or -1 / "all" for every core this process may run on;
2. otherwise ("auto"): the cores this process may run on (``os.sched_getaffinity``) minus the
   other runnable tasks at this moment (``/proc/loadavg``'s running count, less this thread;
   the one-minute load average where that is unavailable), at least 1; capped by
   ``OMP_NUM_THREADS`` when the user set it; and 1 for problems of at most
   :data:`SINGLE_THREAD_MAX_N` units, where threads cost more than they give even on an idle
   machine.

The limit covers BLAS and OpenMP (threadpoolctl, every library loaded at the fit's start) and
torch's intra-op pool (``torch.set_num_threads``, when torch is loaded), and the caller's
settings are restored afterwards. The limits are process-wide: fits run concurrently from
several Python threads share them. :func:`single_threaded_blas` keeps the small dense rules
(lam rule, standard error, bandwidth; <= 1,000 units) on one BLAS thread inside any fit.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from dataclasses import dataclass

__all__ = ["single_threaded_blas", "blas_threads_for", "SINGLE_THREAD_MAX_N", "ENV_VAR",
           "ThreadChoice", "available_cores", "other_runnable_tasks", "resolve_threads",
           "thread_limits", "fit_threads", "check_n_jobs", "thread_setting"]

# the exact QP solver (mat-vecs and Cholesky factors of the N x N kernel) ran faster on one
# thread up to about this N on the 2-vCPU benchmark machine (N = 1,000: 0.12 s vs 0.18-0.25 s;
# 2,000: 0.31 s vs 0.36-0.52 s; 4,000: 1.60 s vs 1.45 s); the auto policy uses one thread for
# whole fits of at most this many units
SINGLE_THREAD_MAX_N = 2000
ENV_VAR = "CINA_NUM_THREADS"

_CONTROLLER: tuple[int, object] | None = None


def _controller():
    """A threadpoolctl controller of the libraries loaded now (rebuilt when modules were
    imported since: a library loaded later, e.g. scipy's own OpenBLAS, must be covered too);
    None without threadpoolctl."""
    global _CONTROLLER
    key = len(sys.modules)
    if _CONTROLLER is not None and _CONTROLLER[0] == key:
        return _CONTROLLER[1]
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None
    _CONTROLLER = (key, ThreadpoolController())
    return _CONTROLLER[1]


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


# -- the per-fit policy ---------------------------------------------------------------------------
def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def other_runnable_tasks() -> float:
    """Tasks other than this thread that want a core now: /proc/loadavg's count of running
    tasks less one (the caller), or the one-minute load average where that is unavailable."""
    try:
        with open("/proc/loadavg") as fh:
            running = int(fh.read().split()[3].split("/")[0])
        return float(max(running - 1, 0))
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        try:
            return float(os.getloadavg()[0])
        except (AttributeError, OSError):
            return 0.0


@dataclass(frozen=True)
class ThreadChoice:
    """The fit's thread count and why (``info["threads"]``, ``info["threads_rule"]``)."""

    threads: int
    rule: str


def check_n_jobs(value, name: str = "n_jobs"):
    """None, "auto", "all", -1 or a positive integer (a clear error otherwise)."""
    from .errors import CInAValidationError

    if value is None or value in ("auto", "all"):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not (value >= 1 or value == -1):
        raise CInAValidationError(
            f"{name} must be a positive integer, -1 or 'all' (every core), or None / 'auto' "
            f"(the thread policy); received {value!r}")
    return value


def resolve_threads(n_jobs=None, n_units: int | None = None) -> ThreadChoice:
    """The thread count of a fit (module doc): ``n_jobs`` (None: ``CINA_NUM_THREADS``, else
    auto) for a problem of ``n_units`` units."""
    cores = available_cores()
    source = "n_jobs"
    if n_jobs is None or n_jobs == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != "auto":
            n_jobs = check_n_jobs(env, ENV_VAR)
            source = ENV_VAR
        else:
            n_jobs = None
    else:
        n_jobs = check_n_jobs(n_jobs)
    if n_jobs is not None:
        k = cores if n_jobs in (-1, "all") else int(n_jobs)
        return ThreadChoice(k, f"{source}={n_jobs}")
    if n_units is not None and n_units <= SINGLE_THREAD_MAX_N:
        return ThreadChoice(1, f"auto: {n_units:,} units <= {SINGLE_THREAD_MAX_N:,}")
    others = other_runnable_tasks()
    k = max(1, min(cores, math.floor(cores - others + 0.5)))
    rule = f"auto: {cores} cores, {others:g} other runnable tasks"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) >= 1 and int(omp) < k:
        k = int(omp)
        rule += f", OMP_NUM_THREADS={omp}"
    return ThreadChoice(k, rule)


@contextlib.contextmanager
def thread_limits(threads: int):
    """BLAS, OpenMP and torch intra-op threads limited to ``threads`` inside the block; the
    previous settings restored afterwards."""
    ctl = _controller()
    torch = sys.modules.get("torch")
    before = None
    if torch is not None:
        try:
            before = torch.get_num_threads()
            if before != threads:
                torch.set_num_threads(threads)
        except Exception:  # pragma: no cover - a torch build without a settable pool
            torch = None
    try:
        with (ctl.limit(limits=threads) if ctl is not None else contextlib.nullcontext()):
            yield
    finally:
        if torch is not None and before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def fit_threads(n_jobs=None, n_units: int | None = None):
    """:func:`thread_limits` at :func:`resolve_threads`'s count; yields the
    :class:`ThreadChoice`."""
    choice = resolve_threads(n_jobs, n_units)
    with thread_limits(choice.threads):
        yield choice


@contextlib.contextmanager
def thread_setting(value):
    """``CINA_NUM_THREADS`` set to ``value`` inside the block (None: unchanged), restored
    afterwards: the command line's ``--threads``, for every fit it runs."""
    if value is None:
        yield
        return
    value = check_n_jobs(value, "--threads")
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(value)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before
