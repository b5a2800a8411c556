"""CInA on a ``dask.distributed`` cluster, for data beyond one machine (docs/distributed.md).

``cina.distributed.fit(data, treatment=..., outcome=..., client=...)`` runs the exact balancing
weights on a low-rank kernel with every pass over the units a map over the data's partitions
plus a reduction, and returns an :class:`~cina.results.EffectResult`
(:class:`DistributedEffectResult`) whose weights stay a Dask DataFrame on the cluster. Needs the
``cina[dask]`` extra (dask[distributed] and pyarrow); without it every entry point raises
:class:`~cina.errors.MissingDependencyError` naming the extra. Importing this package needs
nothing beyond cina's own dependencies.
"""

from __future__ import annotations

from ._deps import EXTRA, require_dask
from .result import DistributedEffectResult

__all__ = ["fit", "fit_arrays", "connect", "local_cluster", "write_weights",
           "DistributedEffectResult", "require_dask", "EXTRA", "DISTRIBUTED_METHODS",
           "DISTRIBUTED_KERNELS"]


def __getattr__(name: str):  # the dask-facing modules on first use
    if name in ("fit", "fit_arrays", "DISTRIBUTED_METHODS", "DISTRIBUTED_KERNELS"):
        from . import driver

        return getattr(driver, name)
    if name in ("connect", "local_cluster"):
        from . import cluster

        return getattr(cluster, name)
    if name == "write_weights":
        from .writer import write_weights

        return write_weights
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
