"""The dataset object every loader and generator returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

__all__ = ["CausalDataset"]


@dataclass(frozen=True)
class CausalDataset:
    """One observational dataset with a known effect.

    Attributes
    ----------
    X : DataFrame (n, d) of named covariates (categoricals already encoded as numbers).
    t : (n,) int64 array in {0, 1}.
    y : (n,) float64 observed outcome.
    true_effect : the effect to compare an estimate with (sample ATE, or ATT for ``estimand="att"``).
    estimand : ``"ate"`` or ``"att"``.
    name : a short identifier, unique within a suite (``"ihdp-7"``, ``"acic2016-12"``).
    mu0, mu1 : (n,) expected potential outcomes when known (None otherwise); the true effect of
        any subsample is recomputed from them.
    meta : free-form facts about the source (realization, setting, generator parameters).
    """

    X: pd.DataFrame
    t: np.ndarray
    y: np.ndarray
    true_effect: float
    estimand: str
    name: str
    mu0: np.ndarray | None = None
    mu1: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(len(self.t))

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    def sample_effect(self, rows: np.ndarray | None = None) -> float:
        """True effect on ``rows`` (all rows by default) from mu0/mu1; the stored one otherwise."""
        if self.mu0 is None or self.mu1 is None:
            return float(self.true_effect)
        rows = np.arange(self.n) if rows is None else rows
        diff = self.mu1[rows] - self.mu0[rows]
        if self.estimand == "att":
            diff = diff[self.t[rows] == 1]
        return float(np.mean(diff))

    def subsample(self, n: int, seed: int = 0) -> CausalDataset:
        """At most ``n`` rows drawn without replacement, stratified by arm (the CInA paper
        subsamples ACIC to 1,000 units); keeps at least 2 units per arm. The true effect is
        recomputed on the subsample where mu0/mu1 are known."""
        if n >= self.n:
            return self
        rng = np.random.default_rng(seed)
        treated = np.flatnonzero(self.t == 1)
        control = np.flatnonzero(self.t == 0)
        n1 = int(round(n * len(treated) / self.n))
        n1 = min(max(n1, 2), len(treated), n - 2)
        rows = np.sort(np.concatenate([
            rng.choice(treated, n1, replace=False),
            rng.choice(control, min(n - n1, len(control)), replace=False),
        ]))
        return replace(
            self,
            X=self.X.iloc[rows].reset_index(drop=True),
            t=self.t[rows],
            y=self.y[rows],
            true_effect=self.sample_effect(rows),
            name=f"{self.name}-sub{n}s{seed}",
            mu0=None if self.mu0 is None else self.mu0[rows],
            mu1=None if self.mu1 is None else self.mu1[rows],
            meta={**self.meta, "subsample": {"n": n, "seed": seed}},
        )
