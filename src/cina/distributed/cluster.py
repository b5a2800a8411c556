"""Connecting to a ``dask.distributed`` cluster: an existing scheduler by address, or a
``LocalCluster`` on this machine (``"local"``).

:func:`connect` is a context manager that yields a ``distributed.Client`` and closes what it
started (a local cluster and its worker processes) on exit, also when the body raises or is
interrupted. A client passed in by the caller is yielded as it is and never closed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import CInAValidationError
from ._deps import require_dask

__all__ = ["connect", "local_cluster"]


def local_cluster(n_workers: int | None = None, *, threads_per_worker: int = 1,
                  memory_limit: str | int | None = "auto", processes: bool = True):
    """A ``LocalCluster`` on the loopback interface, without a dashboard: ``n_workers``
    processes (default: the CPU count, at most 4) of ``threads_per_worker`` threads each."""
    require_dask("a local Dask cluster")
    from distributed import LocalCluster

    if n_workers is None:
        n_workers = max(1, min(4, os.cpu_count() or 1))
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                        processes=processes, memory_limit=memory_limit, host="127.0.0.1",
                        dashboard_address=None, silence_logs=40)


@contextlib.contextmanager
def connect(scheduler=None, *, n_workers: int | None = None) -> Iterator:
    """A ``distributed.Client``: ``scheduler`` is a Client (used as given), a scheduler address
    (``tcp://host:8786``), ``"local"`` (a new ``LocalCluster`` on this machine, closed on exit)
    or None (the current default client, else a new local cluster)."""
    require_dask("cina's distributed path")
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is None:
        try:
            from distributed import default_client

            yield default_client()
            return
        except ValueError:
            scheduler = "local"
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise CInAValidationError(
            f"scheduler must be a Dask scheduler address (e.g. tcp://10.0.0.5:8786), 'local' "
            f"or a distributed.Client; received {scheduler!r}")
    if scheduler.strip().lower() == "local":
        cluster = local_cluster(n_workers)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise CInAValidationError(
            f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`, or use --scheduler "
            "local") from None
    with client:
        yield client
