"""The optional dependency of the distributed path: ``dask[distributed]`` with pyarrow (the
``cina[dask]`` extra). Its absence is a :class:`~cina.errors.MissingDependencyError` naming the
extra, raised when a distributed entry point is used (importing :mod:`cina.distributed` itself
needs nothing beyond cina's own dependencies)."""

from __future__ import annotations

import importlib

from ..errors import MissingDependencyError

__all__ = ["require_dask", "EXTRA"]

EXTRA = "cina[dask]"
_MODULES = ("dask", "dask.dataframe", "distributed", "pyarrow")


def require_dask(what: str = "the distributed path") -> None:
    """Import dask, dask.dataframe, distributed and pyarrow, or raise
    :class:`MissingDependencyError` naming the missing package and the extra to install."""
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or name
            raise MissingDependencyError(
                f"{what} needs dask[distributed] and pyarrow; {missing!r} is not installed. "
                f"Install the extra with: pip install '{EXTRA}'") from None
