"""The result of a distributed fit: an :class:`~cina.results.EffectResult` whose weights stay on
the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..results import EffectResult

__all__ = ["DistributedEffectResult"]


@dataclass
class DistributedEffectResult(EffectResult):
    """:class:`~cina.results.EffectResult` of :func:`cina.distributed.fit`.

    ``weights`` is a Dask DataFrame (columns ``treatment`` and ``weight``) with the input's
    partitions and index, computed on the cluster and never gathered (``result.weights.compute()``
    brings it to this process if you want it); :meth:`write_weights` writes it as partitioned
    Parquet. The effective sample sizes and the balance table were reduced on the cluster.
    """

    balance: pd.DataFrame | None = None  # the balance table (cina.diagnostics.balance_table)
    ess: dict = field(default_factory=dict)  # {"treated": ..., "control": ...}
    feature_names: list = field(default_factory=list)
    dropped_constant: list = field(default_factory=list)
    dropped_identifier: list = field(default_factory=list)
    client: object = field(default=None, repr=False)  # the Client that holds the weights

    @property
    def ess_treated(self) -> float | None:
        return self.ess.get("treated")

    @property
    def ess_control(self) -> float | None:
        return self.ess.get("control")

    def balance_table(self) -> pd.DataFrame:
        """|SMD| before and after weighting per covariate (the in-memory table's columns)."""
        return self.balance.copy()

    def to_report(self, alpha: float = 0.05, source: dict | None = None) -> dict:
        """The record ``cina estimate --json`` prints (the keys of
        :func:`cina.outputs.effect_record`), for this distributed fit."""
        from ..outputs import effect_record

        return effect_record(self, alpha=alpha, method=self.method,
                             estimator="cina.distributed.fit", covariates=self.feature_names,
                             dropped_constant=self.dropped_constant, balance_table=self.balance,
                             params=self.info.get("params", {}), source=source)

    def write_weights(self, path, *, overwrite: bool = True) -> str:
        """Write the weights as partitioned Parquet to the directory ``path``, all or nothing
        (:func:`cina.distributed.write_weights`)."""
        from .writer import write_weights

        return write_weights(self.weights, path, overwrite=overwrite, client=self.client)
