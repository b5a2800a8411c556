"""Samplers of the SCM prior: one dataset (arrays or a :class:`CausalDataset`) and seeded
streams of them."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import numpy as np
import pandas as pd

from .._base import CausalDataset
from ._common import _as_rng, _fail
from .prior import SCMPrior, _check_prior
from .structure import _draw_structure, _simulate_assignment, _simulate_covariates, _structure_meta


def dataset_rng(seed: int, k: int) -> np.random.Generator:
    """The generator of dataset ``k`` of a stream seeded ``seed``: the ``k``-th child of
    ``np.random.SeedSequence(seed).spawn(...)``, built directly (no need to spawn k children)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        _fail(f"stream seed must be a non-negative integer; got {seed!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        _fail(f"dataset index must be a non-negative integer; got {k!r}")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(k),)))


def sample_scm_arrays(rng_or_seed: Any, prior: SCMPrior | None = None, *,
                      dtype: Any = np.float32) -> tuple:
    """One dataset of the SCM prior as plain arrays (the pretraining fast path, no DataFrame).

    Returns ``(X, t, y, mu0, mu1, meta)``: ``X`` (N, d) C-contiguous of ``dtype`` (float32 by
    default), ``t`` int64 in {0, 1}, ``y``, ``mu0``, ``mu1`` float64, and ``meta`` a dict with the
    true effect (``meta["true_effect"]``), the propensities (``meta["propensity"]``) and the
    drawn structure (families, parents, mechanisms, overlap facts).
    """
    prior = _check_prior(prior)
    rng = _as_rng(rng_or_seed)
    n = int(rng.integers(prior.n_range[0], prior.n_range[1] + 1))
    d = int(rng.integers(prior.d_range[0], prior.d_range[1] + 1))
    S = _draw_structure(rng, prior, d)
    XT, F = _simulate_covariates(rng, S, n)
    t, y, mu0, mu1, meta = _simulate_assignment(rng, S, F)
    X = np.ascontiguousarray(XT.T, dtype=dtype)
    meta.update(_structure_meta(S))
    meta.update(generator="scm", n=n, d=d)
    return X, t, y, mu0, mu1, meta


def sample_scm_dataset(rng_or_seed: Any, prior: SCMPrior | None = None, *,
                       name: str | None = None) -> CausalDataset:
    """One dataset of the SCM prior as a :class:`CausalDataset` (float64 covariates named
    ``x{node}``, one-hot levels ``x{node}={level}``). Same arrays as :func:`sample_scm_arrays`
    with the same seed, except that ``X`` keeps float64."""
    if name is None:
        name = f"scm-{int(rng_or_seed)}" if isinstance(rng_or_seed, (int, np.integer)) else "scm"
    X, t, y, mu0, mu1, meta = sample_scm_arrays(rng_or_seed, prior, dtype=np.float64)
    return CausalDataset(X=pd.DataFrame(X, columns=meta["columns"]), t=t, y=y,
                         true_effect=meta["true_effect"], estimand=meta["estimand"], name=name,
                         mu0=mu0, mu1=mu1, meta=meta)


def stream_datasets(prior: SCMPrior | None = None, seed: int = 0, n: int | None = None, *,
                    start: int = 0, step: int = 1, arrays: bool = False
                    ) -> Iterator[CausalDataset] | Iterator[tuple]:
    """Datasets ``k = start, start + step, ...`` (below ``n``; forever when ``n`` is None) of the
    stream seeded ``seed``.

    Dataset ``k`` is drawn from :func:`dataset_rng` ``(seed, k)`` alone, so it is identical
    whatever slice it is read from: workers ``rank = 0..world_size-1`` passing the same ``n`` and
    ``start=rank, step=world_size`` together cover datasets ``0..n-1`` exactly once. With
    ``arrays=True`` the items are :func:`sample_scm_arrays` tuples (float32 ``X``) with
    ``meta["index"]`` set; otherwise :class:`CausalDataset` named ``scm-s{seed}-{k}``.
    """
    prior = _check_prior(prior)
    dataset_rng(seed, 0)  # validates the seed
    for label, v, lo in (("start", start, 0), ("step", step, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            _fail(f"stream_datasets {label} must be an integer >= {lo}; got {v!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
        _fail(f"stream_datasets n must be None or an integer >= 0; got {n!r}")
    return _stream(prior, int(seed), n, int(start), int(step), arrays)


def _stream(prior: SCMPrior, seed: int, n: int | None, start: int, step: int, arrays: bool):
    ks = count(start, step) if n is None else range(start, int(n), step)
    for k in ks:
        rng = dataset_rng(seed, k)
        if arrays:
            out = sample_scm_arrays(rng, prior)
            out[5]["index"] = k
            out[5]["seed"] = seed
            yield out
        else:
            ds = sample_scm_dataset(rng, prior, name=f"scm-s{seed}-{k}")
            ds.meta["index"] = k
            ds.meta["seed"] = seed
            yield ds
