"""Semi-synthetic datasets: rows of a real covariate table, with treatment and outcome
simulated by the prior's mechanisms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._base import CausalDataset
from ._common import _as_rng, _fail, _to_dataset
from .mechanisms import _feature
from .prior import SCMPrior, _check_prior
from .structure import _draw_assignment, _simulate_assignment, _Structure


def _encode_table(X_table: Any) -> tuple[np.ndarray, list[str], int]:
    """(n, d) float64 matrix, column names and the number of missing cells filled."""
    if isinstance(X_table, pd.DataFrame):
        df = X_table
    elif isinstance(X_table, np.ndarray):
        if X_table.ndim != 2:
            _fail(f"semi_synthetic X_table must be 2-dimensional; got shape {X_table.shape}")
        df = pd.DataFrame(X_table, columns=[f"x{j}" for j in range(X_table.shape[1])])
    else:
        _fail("semi_synthetic X_table must be a pandas DataFrame or a 2-d numpy array; got "
              f"{type(X_table).__name__}")
    if df.shape[0] < 4 or df.shape[1] < 1:
        _fail(f"semi_synthetic X_table needs at least 4 rows and 1 column; got shape {df.shape}")
    parts: dict[str, np.ndarray] = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            parts[str(col)] = s.astype(float).to_numpy()
        elif pd.api.types.is_numeric_dtype(s.dtype):
            parts[str(col)] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:  # categorical / object / string: one indicator per level, every level kept
            codes = pd.Categorical(s)
            for li, lvl in enumerate(codes.categories):
                ind = (codes.codes == li).astype(np.float64)
                ind[codes.codes < 0] = np.nan
                parts[f"{col}={lvl}"] = ind
    names = list(parts)
    A = np.column_stack([parts[c] for c in names]) if names else np.empty((df.shape[0], 0))
    if not np.all(np.isfinite(A[~np.isnan(A)])):
        _fail("semi_synthetic X_table holds infinite values")
    miss = np.isnan(A)
    n_miss = int(miss.sum())
    if n_miss:
        ref = A.copy()
        ref[:, miss.all(axis=0)] = 0.0
        A = np.where(miss, np.nanmedian(ref, axis=0), A)
    return A, names, n_miss


def semi_synthetic(X_table: pd.DataFrame | np.ndarray, seed: int, n: int | None = None, *,
                   prior: SCMPrior | None = None, replace: bool | None = None,
                   name: str | None = None) -> CausalDataset:
    """Real covariates, simulated treatment and outcome.

    ``n`` rows (default: all) are drawn from ``X_table`` (without replacement unless ``replace``
    or ``n`` exceeds the table); non-numeric columns are one-hot encoded (every level kept) and
    missing cells filled with the column median. Treatment and outcome follow the prior's
    propensity/outcome part (mechanism types, overlap, effect and heterogeneity ranges, estimand;
    its N, d, graph and marginal settings are not used), applied to the standardised covariates
    clipped to +-5 sd. ``X`` holds the resampled covariates on their original scale.
    """
    prior = _check_prior(prior)
    rng = _as_rng(seed)
    A, names, n_miss = _encode_table(X_table)
    rows = A.shape[0]
    if n is None:
        n = rows
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4:
        _fail(f"semi_synthetic n must be None or an integer >= 4; got {n!r}")
    n = int(n)
    if replace is None:
        replace = n > rows
    if not replace and n > rows:
        _fail(f"semi_synthetic n={n} exceeds the table's {rows} rows; pass replace=True")
    idx = rng.choice(rows, size=n, replace=bool(replace))
    Xs = A[idx]
    XT = np.ascontiguousarray(Xs.T)
    F = np.empty_like(XT)
    for j in range(XT.shape[0]):
        F[j] = _feature(XT[j])
    S = _Structure()
    _draw_assignment(rng, S, prior, XT.shape[0])
    t, y, mu0, mu1, meta = _simulate_assignment(rng, S, F)
    meta.update(generator="semi_synthetic", n=n, d=len(names), rows=idx,
                replace=bool(replace), missing_filled=n_miss, columns=names)
    if isinstance(seed, (int, np.integer)):
        meta["seed"] = int(seed)
    if name is None:
        name = f"semi-s{int(seed)}" if isinstance(seed, (int, np.integer)) else "semi"
    return _to_dataset(XT, names, t, y, mu0, mu1, meta, name)
