"""CInA on a ``dask.distributed`` cluster: :func:`fit` (docs/distributed.md).

The fit runs the in-memory estimator's stages (:class:`cina.CInA`) with every pass over the
units a map over the data's partitions plus a reduction on the cluster; the driver process
holds only per-partition counts, m-dimensional vectors and m x m matrices, and the bounded
subsamples that the in-memory rules use anyway:

=================  ==========================================================================
stage              distributed form
=================  ==========================================================================
validation         survey (treatment values, categorical levels) -> plan -> encode, each a
                   map; errors name the partition and the column (:mod:`.partitions`)
standardisation    moments per partition, combined (Chan); z-scores by a map
bandwidth rule     median heuristic on the same <= 1,000 rows the in-memory rule draws
                   (positions drawn from the row count and the seed, rows gathered)
lam rule           GP marginal likelihood on the same stratified <= 1,000 rows
kernel             a low-rank factor K = Phi Phi' + diag(delta) (:mod:`cina.kernels.lowrank`):
                   Nystrom landmarks from the same sample as in memory; factor rows by a map,
                   the row normalisers and the mean diagonal by two reductions
weights            the exact balancing QP in its m-dimensional dual (:mod:`.dual`): each Newton
                   step one map-reduce; the balance guard's |SMD| one map-reduce per lam
effect, se         sum alpha (2t - 1) y by a map-reduce; the residual model on the same <= 1,000
                   basis units per arm as in memory, its residuals by a map, sum alpha^2 r^2 by a
                   reduction; from 50,000 units on over the in-memory weighted sample of the
                   units (its inclusion scale by ten reductions, its draws per partition)
interval           the bias-aware interval's bias sd: each arm's kernel imbalance from one
                   map-reduce on the factor, the lam rule's signal variances
weights out        a Dask DataFrame on the input's partitions and index (never gathered)
=================  ==========================================================================

With the same data, settings and seed the estimate, standard error and weights equal
``CInA(method="exact", kernel=...)`` in memory to the solvers' tolerance (tests/test_dask.py).
"""

from __future__ import annotations

import glob
import math
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from .. import effect as effect_module
from .._progress import progress_bar, show_progress
from ..balancing.kernel import BANDWIDTH_RULES, median_bandwidth
from ..balancing.tuning import LAM_MIN, balance_guard, select_lam_rel
from ..balancing.weights import check_options
from ..diagnostics import smd_denominator
from ..errors import CInAValidationError, DataWarning, IdentifierColumnWarning
from ..rules import BALANCE_THRESHOLD, normalize_per_arm
from . import dual as D
from .partitions import (
    Block,
    arm_moments,
    combine_moments,
    encode_partition,
    huge_column_scale,
    partition_survey,
    plan_columns,
    standardize_partition,
)
from .result import DistributedEffectResult

__all__ = ["fit", "DISTRIBUTED_KERNELS", "DISTRIBUTED_METHODS", "fit_arrays"]

DISTRIBUTED_METHODS = ("exact",)
DISTRIBUTED_KERNELS = ("nystrom", "random-features")
#: the in-memory rules' unit caps (bandwidth rule, lam rule, residual model per arm)
RULE_UNITS = 1000
#: the halvings of :func:`cina.effect.se_sample`'s bisection for its inclusion scale
SE_BISECTION_STEPS = 100
_FAN_IN = 8  # partial sums combined per task of a tree reduction


# --- the session with the cluster ---------------------------------------------------------
def _nbytes(obj) -> int:
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_nbytes(getattr(obj, f)) for f in obj.__dataclass_fields__)
    return 8


class _Cluster:
    """Maps and reductions on the client's cluster; counts what reaches this process
    (``bytes_gathered``: the test that nothing of size N is gathered reads it)."""

    def __init__(self, client, progress: bool):
        self.client = client
        self.bytes_gathered = 0
        self.rounds = 0
        self.progress = progress

    def map(self, fn, *iterables, **kwargs) -> list:
        return self.client.map(fn, *iterables, **kwargs)

    def gather(self, futures):
        out = self.client.gather(futures)
        self.bytes_gathered += _nbytes(out)
        self.rounds += 1
        return out

    def reduce(self, combine: Callable, futures: list):
        """combine(list of partial results) on the workers, in a tree, then the total here."""
        futures = list(futures)
        while len(futures) > _FAN_IN:
            futures = [self.client.submit(combine, futures[i:i + _FAN_IN], pure=False)
                       for i in range(0, len(futures), _FAN_IN)]
        return self.gather(self.client.submit(combine, futures, pure=False))


def _sum_all(parts: list):
    """Sum of partial results: arrays, dicts of arrays, or objects with ``+``."""
    parts = [p for p in parts if p is not None]
    if isinstance(parts[0], dict):
        return D.add_terms(parts)
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


# --- inputs -> delayed pandas partitions ---------------------------------------------------
def _expand_paths(data) -> list[str]:
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    files: list[str] = []
    for item in items:
        item = os.path.expanduser(os.fspath(item))
        if os.path.isdir(item):
            found = sorted(glob.glob(os.path.join(item, "*.parquet")))
        elif glob.has_magic(item):
            found = sorted(glob.glob(item))
        else:
            found = [item] if os.path.exists(item) else []
        if not found:
            raise CInAValidationError(f"no Parquet file matches {item!r}")
        bad = [f for f in found if not f.lower().endswith(".parquet")]
        if bad:
            raise CInAValidationError(
                f"the distributed path reads Parquet files; {bad[0]!r} is not one (convert it, "
                "e.g. with pandas or dask.dataframe.read_csv(...).to_parquet(...))")
        files += found
    return files


def _as_dask_frame(data, npartitions: int | None):
    import dask.dataframe as dd

    if isinstance(data, dd.DataFrame):
        return data, []
    if isinstance(data, pd.DataFrame):
        return dd.from_pandas(data, npartitions=npartitions or 4, sort=False), []
    if isinstance(data, (str, os.PathLike, list, tuple)):
        files = _expand_paths(data)
        try:
            return dd.read_parquet(files), files
        except Exception as exc:  # noqa: BLE001 - every reader fails in its own way
            raise CInAValidationError(
                f"could not read the Parquet files {files[:3]} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    raise CInAValidationError(
        "data must be a Dask DataFrame, a pandas DataFrame, or Parquet file paths (a glob or a "
        f"directory); received {type(data).__name__}")


def _frame_from_arrays(X, t, y, offset, names):
    frame = pd.DataFrame(np.asarray(X), columns=names)
    frame["__t__"] = np.asarray(t).ravel()
    if y is not None:
        frame["__y__"] = np.asarray(y).ravel()
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame


def fit_arrays(X, t, y, **settings) -> DistributedEffectResult:
    """:func:`fit` for Dask arrays: covariates ``X`` (n, d), treatment ``t`` (n,) and outcome
    ``y`` (n,), chunked along the rows (t and y are rechunked to X's row chunks); the weights'
    index is the row number."""
    from ._deps import require_dask

    require_dask()
    import dask
    import dask.dataframe as dd

    if X.ndim != 2:
        raise CInAValidationError(f"X must be two-dimensional; received {X.ndim} dimensions")
    X = X.rechunk({1: -1})
    rows = X.chunks[0]
    t = t.rechunk((rows,))
    y = None if y is None else y.rechunk((rows,))
    names = [f"x{j}" for j in range(X.shape[1])]
    offsets = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(int)
    xb = X.to_delayed().ravel()
    tb = t.to_delayed().ravel()
    yb = [None] * len(xb) if y is None else y.to_delayed().ravel()
    meta = _frame_from_arrays(np.zeros((0, len(names))), np.zeros(0), None if y is None
                              else np.zeros(0), 0, names)
    parts = [dask.delayed(_frame_from_arrays)(a, b, c, int(o), names)
             for a, b, c, o in zip(xb, tb, yb, offsets, strict=True)]
    ddf = dd.from_delayed(parts, meta=meta)
    return fit(ddf, treatment="__t__", outcome=None if y is None else "__y__",
               covariates=names, **settings)


# --- worker tasks (module level: workers import them by name) ------------------------------
def _encode(df, number: int, plan):
    return encode_partition(df, plan, number)


def _first(pair):
    return pair[0]


def _identity(value):
    return value


def _constant(client, value):
    """A future holding ``value`` (the feature map, the residual model's fits) that the
    scheduler can recompute. Not ``client.scatter``: scattered data have no task to rerun, so
    once their future is released the scheduler forgets them together with the lineage of
    every result computed from them, and a worker lost afterwards cancels the fit ("already
    forgotten") instead of having its partitions recomputed (tests/hostile/test_dask_fault.py).
    """
    return client.submit(_identity, value, pure=False)


def _second(pair):
    return pair[1]


def _rows_at(block: Block, positions: np.ndarray, arm: int | None = None):
    """(Z rows, t, y) of a block at local positions (within the arm when ``arm`` is given)."""
    idx = positions if arm is None else np.flatnonzero(block.t == arm)[positions]
    return block.X[idx], block.t[idx], None if block.y is None else block.y[idx]


def _feature_rows(block: Block, fmap, bandwidth: float):
    from ..kernels.lowrank import NormaliserSum, scaled_keys

    rows = fmap.rows(scaled_keys(block.X, bandwidth))
    return rows, NormaliserSum.of(rows)


def _unit_scales(pair, norm):
    from ..kernels.lowrank import LogMeanSum, log_diagonal, log_unit_scales

    rows = pair[0]
    r = rows.residual()
    log_rho = log_unit_scales(rows, norm, r)
    return log_rho, LogMeanSum.of(log_diagonal(rows, log_rho, r))


def _factor(pair, scales, log_c: float):
    from ..kernels.lowrank import normalised_factor_rows

    Phi, delta = normalised_factor_rows(pair[0], scales[0], log_c, out=None)
    return Phi, delta


def _anchor_candidates(block: Block, bandwidth: float, k: int):
    from ..kernels.lowrank import scaled_keys
    from ..kernels.nystrom import anchor_candidates

    return anchor_candidates(scaled_keys(block.X, bandwidth), k)


def _target_sum(factor, block: Block, estimand: str, balance: str):
    Phi, delta = factor
    if balance == "mutual":
        return {"sum": np.zeros(Phi.shape[1]), "delta_max": np.array([delta.max(initial=0.0)])}
    sel = np.ones(len(block.t), bool) if estimand == "ate" else block.t == 1
    return {"sum": Phi[sel].sum(axis=0), "delta_max": np.array([delta.max(initial=0.0)])}


def _combine_target(parts):
    parts = [p for p in parts]
    return {"sum": sum(p["sum"] for p in parts),
            "delta_max": np.array([max(float(p["delta_max"][0]) for p in parts)])}


def _dual_terms(factor, block: Block, x, spec, hessian):
    return D.dual_terms(factor[0], factor[1], block.t, x, spec, hessian)


def _block_weights(factor, block: Block, x, spec, n_treated):
    return D.block_weights(factor[0], factor[1], block.t, x, spec, n_treated)


def _arm_sums(alpha, block: Block):
    return np.array([alpha[block.t == 1].sum(), alpha[block.t == 0].sum()])


def _normalise(alpha, block: Block, totals, counts):
    """The block's weights divided by the arms' totals over all blocks (``totals`` =
    :func:`_arm_sums` reduced; ``counts`` = the arms' unit counts, for an arm with zero weight)."""
    return normalize_per_arm(alpha, block.t, empty="uniform", totals=tuple(totals),
                             counts=counts)


def _weighted_moments(alpha, block: Block):
    """Per arm: sum alpha z, sum alpha z^2, sum alpha, sum alpha^2 (balance and ESS)."""
    out = {}
    for arm, name in ((1, "t"), (0, "c")):
        m = block.t == arm
        a, Z = alpha[m], block.X[m]
        out[f"wz_{name}"] = a @ Z
        out[f"wz2_{name}"] = a @ (Z * Z)
        out[f"w_{name}"] = np.array([a.sum()])
        out[f"w2_{name}"] = np.array([a @ a])
    return out


def _objective_terms(factor, block, alpha, spec, balance, estimand):
    return D.objective_terms(factor[0], factor[1], block.t, alpha, spec, balance, estimand)


def _sorted_squares(alpha):
    """alpha^2 sorted, and its running sums (0 first): the block's part of the inclusion
    rule's sum_i min(1, c alpha_i^2) at any c in O(log n) (:func:`_inclusion_totals`)."""
    a2 = np.sort(alpha * alpha)
    return a2, np.concatenate([[0.0], np.cumsum(a2)])


def _square_summary(sorted_pair):
    a2 = sorted_pair[0]
    positive = a2[a2 > 0]
    return {"nonzero": np.array([float(len(positive))]),
            "min_positive": np.array([positive[0] if len(positive) else np.inf])}


def _combine_square_summary(parts):
    return {"nonzero": np.array([sum(p["nonzero"][0] for p in parts)]),
            "min_positive": np.array([min(p["min_positive"][0] for p in parts)])}


def _inclusion_totals(sorted_pair, scales):
    """sum_i min(1, c alpha_i^2) over the block for every c in ``scales``: the units with
    c alpha_i^2 >= 1 are a suffix of the sorted squares (found by bisection on 1 / c, then
    moved onto the exact products' boundary), the rest contribute c times their sum."""
    a2, running = sorted_pair
    c = np.asarray(scales, dtype=float)
    n = len(a2)
    k = np.searchsorted(a2, 1.0 / c, side="left")
    for _ in range(4):  # 1 / c is rounded: step to where the products cross 1
        down = (k > 0) & (c * a2[np.maximum(k - 1, 0)] >= 1.0)
        up = (k < n) & (c * a2[np.minimum(k, n - 1)] < 1.0)
        k = k - down + up
    return (n - k) + c * running[k]


def _combine_totals(parts):
    return sum(parts[1:], parts[0])


def _bisection_points(lo: float, hi: float, depth: int) -> np.ndarray:
    """Every midpoint ``depth`` steps of bisection from [lo, hi] can visit, in heap order (the
    children of point i are 2i + 1, the left half, and 2i + 2)."""
    points, level = [], [(lo, hi)]
    for _ in range(depth):
        nxt = []
        for a, b in level:
            c = 0.5 * (a + b)
            points.append(c)
            nxt += [(a, c), (c, b)]
        level = nxt
    return np.array(points)


def _se_sample_scale(cluster: _Cluster, squares: list, size: int) -> float | None:
    """The c of :func:`cina.effect.se_sample` (inclusion probabilities min(1, c alpha_i^2),
    about ``size`` units drawn), by the same bisection: its 100 halvings, ten per reduction
    (each reduction evaluates the 1,023 midpoints the next ten steps can visit). None: at most
    ``size`` units have a positive weight, and all of them are taken."""
    summary = cluster.reduce(_combine_square_summary, cluster.map(_square_summary, squares))
    if summary["nonzero"][0] <= size:
        return None
    lo, hi = 0.0, size / float(summary["min_positive"][0])
    depth = 10
    for _ in range(SE_BISECTION_STEPS // depth):
        points = _bisection_points(lo, hi, depth)
        totals = cluster.reduce(_combine_totals, cluster.map(_inclusion_totals, squares,
                                                             scales=points))
        i = 0
        for _ in range(depth):
            if totals[i] > size:
                hi, i = points[i], 2 * i + 1
            else:
                lo, i = points[i], 2 * i + 2
    return lo


def _sampled_rows(alpha, offset: int, sample: dict | None):
    """The block's units in the standard error's sum and 1 / their inclusion probability: all
    (no sample), those of positive weight (scale None), or the Poisson sample of
    :func:`cina.effect.se_sample`, whose uniform draws for the rows of this block are the
    draws at positions offset, offset + 1, ... of its generator."""
    if sample is None:
        return np.arange(len(alpha)), np.ones(len(alpha))
    a2 = alpha * alpha
    if sample["scale"] is None:
        rows = np.flatnonzero(a2 > 0)
        return rows, np.ones(len(rows))
    pi = np.minimum(1.0, sample["scale"] * a2)
    generator = np.random.default_rng([sample["seed"], 11])
    generator.bit_generator.advance(offset)  # one 64-bit draw per uniform double
    rows = np.flatnonzero(generator.random(len(a2)) < pi)
    return rows, 1.0 / pi[rows]


def _residuals_at(block: Block, rows: np.ndarray, fits: dict, basis_local: dict,
                  basis_resid: dict) -> np.ndarray:
    """The residual model's out-of-sample residuals of the block's ``rows``: leave-one-out on
    the basis units, y minus the arm's prediction elsewhere."""
    t, y = block.t, block.y
    resid = np.empty(len(rows))
    for arm in (0, 1):
        sel = np.flatnonzero(t[rows] == arm)
        if not len(sel):
            continue
        basis_rows = np.flatnonzero(t == arm)[basis_local.get(arm, np.zeros(0, int))]
        pos = np.searchsorted(basis_rows, rows[sel])
        hit = pos < len(basis_rows)
        hit[hit] = basis_rows[pos[hit]] == rows[sel][hit]
        if hit.any():
            resid[sel[hit]] = basis_resid[arm][pos[hit]]
        others = sel[~hit]
        if len(others):
            kern, coef, mean = fits[arm]
            for a in range(0, len(others), 4096):
                r = rows[others[a:a + 4096]]
                resid[others[a:a + 4096]] = y[r] - (mean + kern.cross(block.X[r]) @ coef)
    return resid


def _effect_terms(alpha, block: Block, fits: dict, basis_local: dict, basis_resid: dict,
                  offset: int, sample: dict | None):
    """sum alpha (2t - 1) y, and sum alpha^2 r^2 / pi over the standard error's units
    (:func:`_sampled_rows`), r the residual model's out-of-sample residuals, and max |r|."""
    t, y = block.t, block.y
    est = float(np.sum(alpha * (2.0 * t - 1.0) * y))
    rows, inv_pi = _sampled_rows(alpha, offset, sample)
    resid = _residuals_at(block, rows, fits, basis_local, basis_resid)
    a = alpha[rows] * np.sqrt(inv_pi)  # as cina.effect: se of the weights a on the sample
    top = float(np.abs(resid).max(initial=0.0))
    scaled = resid / top if top > 0 and np.isfinite(top) else resid
    return {"estimate": np.array([est]), "var": np.array([float(np.sum(a**2 * resid**2))]),
            "var_scaled": np.array([float(np.sum(a**2 * scaled**2))]),
            "top": np.array([top]), "units": np.array([float(len(rows))])}


def _combine_effect(parts):
    tops = np.array([p["top"][0] for p in parts])
    top = float(tops.max())
    # the overflow-safe form: sum alpha^2 (r / top)^2 over all partitions with one top
    rescaled = sum(p["var_scaled"][0] * (p["top"][0] / top) ** 2 if top > 0 else 0.0
                   for p in parts)
    return {"estimate": np.array([sum(p["estimate"][0] for p in parts)]),
            "var": np.array([sum(p["var"][0] for p in parts)]),
            "var_scaled": np.array([rescaled]), "top": np.array([top]),
            "units": np.array([sum(p["units"][0] for p in parts)])}


def _imbalance_terms(factor, alpha, block: Block, estimand: str, n_target: int):
    """The block's part of each arm's kernel imbalance (alpha_a - m)' K (alpha_a - m) on
    K = Phi Phi' + diag(delta) (:func:`cina.effect.arm_imbalances`): Phi' (alpha_a - m) and
    sum_i delta_i (alpha_a,i - m_i)^2, m uniform over the estimand's population."""
    Phi, delta = factor
    t = block.t
    target = np.ones(len(t), bool) if estimand == "ate" else t == 1
    m = target / n_target
    diffs = np.column_stack([np.where(t == arm, alpha, 0.0) - m for arm in (0, 1)])
    return {"u": Phi.T @ diffs, "q": delta @ (diffs * diffs)}


def _weights_frame(alpha, block: Block):
    return pd.DataFrame({"treatment": block.t.astype(np.int8), "weight": alpha},
                        index=block.index)


# --- sampling the same rows as the in-memory rules -----------------------------------------
def _positions_to_parts(positions: np.ndarray, sizes: np.ndarray) -> dict[int, np.ndarray]:
    """Global positions (in the concatenation of the partitions) -> {partition: local}."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    part = np.searchsorted(starts, positions, side="right") - 1
    return {int(p): positions[part == p] - starts[p] for p in np.unique(part)}


class _Rows:
    """Gathers chosen rows (by global or within-arm position) from the partitions, in the
    order of their global positions."""

    def __init__(self, cluster: _Cluster, blocks: list, sizes: np.ndarray,
                 arm_sizes: dict[int, np.ndarray]):
        self.cluster, self.blocks, self.sizes, self.arm_sizes = cluster, blocks, sizes, arm_sizes

    def get(self, positions: np.ndarray, arm: int | None = None):
        positions = np.sort(np.asarray(positions, dtype=np.int64))
        sizes = self.sizes if arm is None else self.arm_sizes[arm]
        where = _positions_to_parts(positions, sizes)
        futures = [self.cluster.client.submit(_rows_at, self.blocks[p], local, arm, pure=False)
                   for p, local in where.items()]
        got = self.cluster.gather(futures)
        Z = np.concatenate([g[0] for g in got])
        t = np.concatenate([g[1] for g in got])
        y = None if got[0][2] is None else np.concatenate([g[2] for g in got])
        return Z, t, y, where


def _bandwidth_sample_positions(n: int) -> np.ndarray:
    """The rows :func:`cina.balancing.kernel.median_bandwidth` draws (seed 0)."""
    if n <= RULE_UNITS:
        return np.arange(n)
    return np.random.default_rng(0).choice(n, RULE_UNITS, replace=False)


def _stratified_positions(n: int, arm_counts: dict[int, int], seed: int) -> dict[int, np.ndarray]:
    """Within-arm positions of :func:`cina.balancing.tuning._stratified_subsample`."""
    if n <= RULE_UNITS:
        return {arm: np.arange(arm_counts[arm]) for arm in (0, 1)}
    rng = np.random.default_rng(seed)
    out = {}
    for arm in (0, 1):
        k = max(2, int(round(RULE_UNITS * arm_counts[arm] / n)))
        out[arm] = rng.choice(arm_counts[arm], min(k, arm_counts[arm]), replace=False)
    return out


def _basis_positions(arm_counts: dict[int, int], seed: int) -> dict[int, np.ndarray]:
    """Within-arm positions of the residual model's basis
    (:func:`cina.balancing.outcome._per_arm_kernel_ridge`)."""
    rng = np.random.default_rng(seed)
    out = {}
    for arm in (0, 1):
        n_arm = arm_counts[arm]
        out[arm] = np.sort(rng.choice(n_arm, RULE_UNITS, replace=False)) if n_arm > RULE_UNITS \
            else np.arange(n_arm)
    return out


def _residual_model(Zb: np.ndarray, yb: np.ndarray, bandwidth: float, ridge: float):
    """One arm's kernel ridge fit on its basis (the in-memory residual model's numbers):
    (the basis kernel, coefficients, mean, leave-one-out residuals of the basis units)."""
    from scipy.linalg import lapack

    from .._threads import single_threaded_blas
    from ..balancing.outcome import _BasisKernel

    with single_threaded_blas():
        kern = _BasisKernel(Zb, bandwidth)
        mean = yb.mean()
        A = kern.K.copy()
        A[np.diag_indices_from(A)] += ridge
        L, info = lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
        if info != 0:  # pragma: no cover - A is positive definite (ridge > 0)
            raise np.linalg.LinAlgError(f"dpotrf failed (info={info})")
        coef, _ = lapack.dpotrs(L, yb - mean, lower=1)
        L_inv, _ = lapack.dtrtri(L, lower=1, overwrite_c=1)
        inv_diag = np.einsum("ij,ij->j", L_inv, L_inv)
    fit_resid = ridge * coef
    h_diag = np.minimum(1.0 - ridge * inv_diag + 1.0 / len(yb), 0.99)
    kern.K = None  # the n_b x n_b matrix is not needed by the partitions' predictions
    return kern, coef, float(mean), fit_resid / (1.0 - h_diag)


# --- the fit ---------------------------------------------------------------------------------
def _check_settings(method, estimand, balance, kernel, variance, augment, penalty, lam_rel):
    check_options(balance, estimand, penalty)
    if method not in DISTRIBUTED_METHODS:
        raise CInAValidationError(
            f"the distributed path runs method {DISTRIBUTED_METHODS}; received {method!r} (the "
            "zero-shot model's refinement needs several dependent global reductions per step: "
            "docs/distributed.md)")
    if kernel not in DISTRIBUTED_KERNELS:
        raise CInAValidationError(
            f"the distributed path needs a low-rank kernel {DISTRIBUTED_KERNELS}; received "
            f"{kernel!r}")
    if penalty != "squared_hinge":
        raise CInAValidationError("the distributed path solves the squared-hinge (ridge) "
                                  "problem; penalty='hinge' runs in memory only")
    if variance != "kernel":
        raise CInAValidationError("the distributed path estimates the se with the kernel "
                                  "residual model (variance='kernel'); 'matching' needs every "
                                  "unit's nearest neighbours and runs in memory only")
    if augment is not None:
        raise CInAValidationError("augment is not available on the distributed path")
    if lam_rel is not None and (not np.isfinite(lam_rel) or lam_rel <= 0):
        raise CInAValidationError(f"lam_rel must be a positive number or None; received "
                                  f"{lam_rel!r}")


def fit(data, treatment: str, outcome: str, covariates=None, *, client=None,
        scheduler=None, method: str = "exact", estimand: str = "ate", balance: str = "target",
        lam_rel: float | None = None, bandwidth=None, kernel: str = "nystrom",
        rank: int | None = None, landmarks: str = "kmeans++", random_state: int = 0,
        treated_level=None, variance: str = "kernel", augment=None,
        penalty: str = "squared_hinge", npartitions: int | None = None,
        weights_out=None, progress: bool | None = None,
        tol: float = 1e-11) -> DistributedEffectResult:
    """Fit CInA on a Dask cluster: the effect, its standard error and the weights, with every
    pass over the units a map over partitions plus a reduction (module doc).

    Parameters
    ----------
    data : a Dask DataFrame, Parquet files (a path, a glob such as ``"data/*.parquet"``, a
        directory of ``.parquet`` files, or a list of them), or a pandas DataFrame (split into
        ``npartitions``, default 4). Dask arrays: :func:`fit_arrays`.
    treatment, outcome, covariates : column names as in :func:`cina.io.select_columns`
        (covariates None: every other column). Text and categorical covariates are one-hot
        encoded with the levels found in all partitions.
    client, scheduler : a ``distributed.Client``; or a scheduler address, or ``"local"`` for a
        LocalCluster on this machine (closed on return). Neither: the default client, else a
        local cluster. The result's ``weights`` live on the client's cluster: with a cluster
        started here (and closed on return) they are available only through ``weights_out``.
    weights_out : a directory: the weights are written there as partitioned Parquet, all or
        nothing (:func:`cina.distributed.write_weights`), before the cluster is released.
    method : "exact" (the balancing QP, in its m-dimensional dual).
    kernel, rank, landmarks : the low-rank operator: "nystrom" (default; ``landmarks``
        "kmeans++" or "uniform") or "random-features", of rank ``rank`` (None: the in-memory
        default, :data:`cina.kernels.lowrank.DEFAULT_RANK`).
    estimand, balance, lam_rel, bandwidth, random_state, treated_level : as :class:`cina.CInA`.
    progress : tqdm bars for the stages and the Newton steps (None: on a terminal).

    Returns
    -------
    :class:`DistributedEffectResult` (an :class:`~cina.results.EffectResult`): estimate, se,
    interval(), ESS, ``balance_table()``, ``info`` (the rules' choices, Newton steps, seconds by
    stage, bytes gathered to this process) and ``weights`` as a Dask DataFrame.
    """
    from ._deps import require_dask

    require_dask()
    _check_settings(method, estimand, balance, kernel, variance, augment, penalty, lam_rel)
    from .cluster import connect
    from .writer import check_weights_dir, write_weights

    if weights_out is not None:
        inputs = _expand_paths(data) if isinstance(data, (str, os.PathLike, list, tuple)) \
            else []
        check_weights_dir(weights_out, inputs, label="weights_out")
    owned = client is None and (scheduler is not None or not _has_default_client())
    with connect(client if client is not None else scheduler) as cl:
        result = _fit_on(cl, data, treatment, outcome, covariates, estimand=estimand,
                         balance=balance, lam_rel=lam_rel, bandwidth=bandwidth, kernel=kernel,
                         rank=rank, landmarks=landmarks, random_state=random_state,
                         treated_level=treated_level, npartitions=npartitions,
                         progress=progress, tol=tol)
        result.info["params"] = {"method": method, "estimand": estimand, "balance": balance,
                                 "lam_rel": lam_rel, "bandwidth": bandwidth, "kernel": kernel,
                                 "rank": rank, "landmarks": landmarks,
                                 "random_state": random_state}
        if weights_out is not None:
            start = time.perf_counter()
            result.info["weights_out"] = write_weights(result.weights, weights_out, client=cl)
            result.info["seconds_by_stage"]["write_weights"] = time.perf_counter() - start
        if owned:  # the cluster closes on return: its futures go with it
            result.weights, result.client = None, None
        return result


def _has_default_client() -> bool:
    try:
        from distributed import default_client

        default_client()
        return True
    except ValueError:
        return False


class _Stages:
    """Wall time per stage, and a progress bar over the stages on a terminal."""

    NAMES = ("validate", "standardise", "bandwidth", "lam_rule", "kernel", "weights",
             "standard_error")

    def __init__(self, show: bool):
        self.seconds: dict[str, float] = {}
        self._cm = progress_bar(show, len(self.NAMES), "cina (dask)", "stage")
        self.bar = self._cm.__enter__()
        self._start = time.perf_counter()
        self._name = None

    def start(self, name: str):
        now = time.perf_counter()
        if self._name is not None:
            self.seconds[self._name] = now - self._start
            if self.bar is not None:
                self.bar.update(1)
        self._name, self._start = name, now
        if self.bar is not None and name:
            self.bar.set_postfix_str(name)

    def close(self):
        self.start("")
        self._name = None
        self._cm.__exit__(None, None, None)


def _fit_on(cl, data, treatment, outcome, covariates, *, estimand, balance, lam_rel, bandwidth,
            kernel, rank, landmarks, random_state, treated_level, npartitions, progress, tol
            ) -> DistributedEffectResult:
    import dask.dataframe as dd

    from ..io import select_columns

    start = time.perf_counter()
    show = show_progress(progress, True)
    stages = _Stages(show)
    cluster = _Cluster(cl, show)
    try:
        stages.start("validate")
        ddf, files = _as_dask_frame(data, npartitions)
        X_meta, _, _ = select_columns(ddf._meta, treatment, outcome, covariates)
        cov = list(X_meta.columns)
        raw = cl.compute(ddf.to_delayed())
        surveys = cluster.gather(cluster.map(partition_survey, raw, treatment=treatment,
                                             covariates=cov))
        plan, notes = plan_columns(surveys, ddf._meta.dtypes, treatment=treatment,
                                   outcome=outcome, covariates=cov, treated_level=treated_level)
        for note in notes:
            warnings.warn(note, IdentifierColumnWarning, stacklevel=3)
        encoded = cluster.map(_encode, raw, list(range(len(raw))), plan=plan)
        blocks = cluster.map(_first, encoded)
        facts = cluster.gather(cluster.map(_second, encoded))
        del raw, encoded
        sizes = np.array([f["n"] for f in facts])
        treated = np.array([f["n_treated"] for f in facts])
        _raise_partition_errors(facts, sizes)
        n, n1 = int(sizes.sum()), int(treated.sum())
        for label, k in (("treated", n1), ("control", n - n1)):
            if k < 2:
                raise CInAValidationError(
                    f"the {label} arm has {k} unit(s); at least 2 are needed in each arm")

        stages.start("standardise")
        moments = combine_moments([f["moments"] for f in facts])
        _, mean, m2, lo, hi, top = moments
        names = list(plan.feature_names)
        keep = hi > lo
        dropped = [nm for nm, k in zip(names, keep, strict=True) if not k]
        if not keep.any():
            raise CInAValidationError(
                f"every covariate is constant ({dropped[:5]}); nothing to balance on")
        if dropped:
            warnings.warn(f"dropping {len(dropped)} constant covariate(s): {dropped[:10]}",
                          DataWarning, stacklevel=3)
        huge = huge_column_scale(top[keep])
        mean_r = mean[keep] / huge
        std_r = np.sqrt(m2[keep] / n) / huge
        scale = np.where(std_r > 0, std_r, 1.0)
        Zb = cluster.map(standardize_partition, blocks, keep=np.flatnonzero(keep), huge=huge,
                         mean=mean_r, scale=scale)
        del blocks
        arm_parts = cluster.gather(cluster.map(arm_moments, Zb))
        arm_stats = {arm: combine_moments([p[i] for p in arm_parts])
                     for i, arm in ((0, 1), (1, 0))}
        names = [nm for nm, k in zip(names, keep, strict=True) if k]
        d = len(names)
        arm_counts = {1: n1, 0: n - n1}
        rows = _Rows(cluster, Zb, sizes, {1: treated, 0: sizes - treated})

        stages.start("bandwidth")
        if bandwidth is None or bandwidth == "median":
            Zs, _, _, _ = rows.get(_bandwidth_sample_positions(n))
            bw = float(median_bandwidth(Zs, max_units=len(Zs)))
        elif bandwidth == "sqrt_d":
            bw = float(np.sqrt(d))
        elif bandwidth == "d":
            bw = float(d)
        else:
            if isinstance(bandwidth, str):
                raise CInAValidationError(f"bandwidth must be a positive number or one of "
                                          f"{BANDWIDTH_RULES}; received {bandwidth!r}")
            bw = float(bandwidth)
            if not np.isfinite(bw) or bw <= 0:
                raise CInAValidationError(
                    f"bandwidth must be a positive number; received {bandwidth!r}")

        stages.start("lam_rule")
        strata = _stratified_positions(n, arm_counts, random_state)
        Zl, tl, yl = _gather_by_arm(rows, strata)
        gp_lam, lam_info = select_lam_rel(Zl, tl, yl, bandwidth=bw, balance=balance,
                                          estimand=estimand, max_units=len(tl),
                                          seed=random_state)
        lam0 = gp_lam if lam_rel is None else float(lam_rel)

        stages.start("kernel")
        factor, kernel_info = _build_factor(cluster, Zb, sizes, rows, n, d, bw, kernel, rank,
                                            landmarks, random_state)

        stages.start("weights")
        m = kernel_info["rank"]
        target = cluster.reduce(_combine_target, cluster.map(
            _target_sum, factor, Zb, estimand=estimand, balance=balance))
        n_target = n if (estimand == "ate" and balance == "target") else n1
        mu_vec = target["sum"] / max(n_target, 1)
        delta_max = float(target["delta_max"][0])
        denom = _smd_denominator(arm_stats, estimand)
        solver = _DualWeights(cluster, factor, Zb, balance=balance, estimand=estimand, m=m,
                              n=n, n1=n1, mu=mu_vec, delta_max=delta_max, tol=tol, show=show)

        def imbalance(alpha_futures):
            W = cluster.reduce(_sum_all, cluster.map(_weighted_moments, alpha_futures, Zb))
            return float((np.abs(W["wz_t"] / W["w_t"][0] - W["wz_c"] / W["w_c"][0])
                          / denom).max())

        if lam_rel is None:
            alpha, lam_used, winfo, steps = balance_guard(
                solver, lam0, imbalance, threshold=BALANCE_THRESHOLD, floor=LAM_MIN)
        else:
            (alpha, winfo), lam_used, steps = solver(lam0), lam0, 0
        obj = cluster.reduce(_sum_all, cluster.map(
            _objective_terms, factor, Zb, alpha, spec=solver.spec_for(lam_used),
            balance=balance, estimand=estimand))
        objective, mmd2 = D.objective_from_terms(obj, lam_used, estimand, balance)

        stages.start("standard_error")
        basis = _basis_positions(arm_counts, random_state)
        fits, basis_local, basis_resid = {}, {}, {}
        for arm in (0, 1):
            Zr, _, yr, where = rows.get(basis[arm], arm)
            kern, coef, mean_y, loo = _residual_model(Zr, yr, bw, gp_lam)
            fits[arm] = (kern, coef, mean_y)
            offset = 0
            for p, local in where.items():
                basis_local.setdefault(p, {})[arm] = local
                basis_resid.setdefault(p, {})[arm] = loo[offset:offset + len(local)]
                offset += len(local)
        fits_future = _constant(cl, fits)
        # from SE_SAMPLE_FROM units on, the in-memory se sums over a weighted sample of the
        # units (cina.effect.se_sample): the same sample here, drawn partition by partition
        sample = None
        if n >= effect_module.SE_SAMPLE_FROM:
            squares = cluster.map(_sorted_squares, alpha)
            sample = {"scale": _se_sample_scale(cluster, squares,
                                                int(effect_module.SE_SAMPLE_SIZE)),
                      "seed": random_state}
            del squares
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        eff = cluster.reduce(_combine_effect, [
            cl.submit(_effect_terms, alpha[p], Zb[p], fits_future, basis_local.get(p, {}),
                      basis_resid.get(p, {}), int(offsets[p]), sample, pure=False)
            for p in range(len(Zb))])
        estimate = float(eff["estimate"][0])
        se = math.sqrt(eff["var"][0])
        if not np.isfinite(se):
            se = float(eff["top"][0]) * math.sqrt(eff["var_scaled"][0])
        W = cluster.reduce(_sum_all, cluster.map(_weighted_moments, alpha, Zb))
        balance_tab = _balance_table(W, arm_stats, denom, names, mean_r, scale, huge)
        # the bias-aware interval of the in-memory estimator: the prior sd of the weighting
        # bias from the lam rule's signal variances and the kernel imbalance left per arm
        terms = cluster.reduce(_sum_all, cluster.map(
            _imbalance_terms, factor, alpha, Zb, estimand=estimand,
            n_target=n if estimand == "ate" else n1))
        imbalance = {arm: max(float(terms["u"][:, arm] @ terms["u"][:, arm]
                                    + terms["q"][arm]), 0.0) for arm in (0, 1)}
        signal = {arm: lam_info.get(f"signal_var_arm{arm}", math.nan) for arm in (0, 1)}
        bias = effect_module.bias_sd(signal, imbalance) if lam_rel is None else 0.0
        ess = {"treated": float(W["w_t"][0] ** 2 / W["w2_t"][0]),
               "control": float(W["w_c"][0] ** 2 / W["w2_c"][0])}
        meta = pd.DataFrame({"treatment": pd.Series(dtype=np.int8),
                             "weight": pd.Series(dtype=float)},
                            index=ddf._meta.index)
        weights = dd.from_delayed(cluster.map(_weights_frame, alpha, Zb), meta=meta,
                                  divisions=ddf.divisions if ddf.known_divisions else None,
                                  verify_meta=False)
    finally:
        stages.close()
    info = {"bandwidth": bw, **lam_info, "lam_rel": lam_used,
            **({"lam_guard_steps": steps} if lam_rel is None else {"lam_rule": "given"}),
            **winfo, "objective": objective, "mmd2": mmd2, **kernel_info,
            "npartitions": len(sizes), "bytes_gathered": cluster.bytes_gathered,
            **({} if sample is None else {"se_units": int(eff["units"][0])}),
            "imbalance": imbalance, "bias_sd": bias,
            "reductions": cluster.rounds, "seconds_by_stage": stages.seconds,
            "scheduler": getattr(cl, "scheduler_info", lambda: {})().get("address", "")}
    return DistributedEffectResult(
        estimate=estimate, se=se, estimand=estimand, method="exact", n=n, n_treated=n1,
        n_control=n - n1, seconds=time.perf_counter() - start, weights=weights, t=None,
        info=info, bias_sd=bias, balance=balance_tab, ess=ess, feature_names=names,
        dropped_constant=dropped, dropped_identifier=list(plan.dropped_identifier), client=cl)


def _raise_partition_errors(facts: list[dict], sizes: np.ndarray) -> None:
    starts = np.concatenate([[0], np.cumsum(sizes)])
    problems = [(f["number"], e) for f in facts for e in f["errors"]]
    if not problems:
        return
    shown = "; ".join(f"partition {p} (rows {starts[p]}-{starts[p + 1] - 1}): {e}"
                      for p, e in problems[:3])
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    raise CInAValidationError(f"invalid data: {shown}{more}. Drop or impute those rows first")


def _gather_by_arm(rows: _Rows, strata: dict[int, np.ndarray]):
    """The stratified sample, each arm's rows in row order (the lam rule works arm by arm, so
    this is the in-memory rule's sample)."""
    got = [rows.get(strata[arm], arm) for arm in (0, 1)]
    Z = np.concatenate([g[0] for g in got])
    t = np.concatenate([g[1] for g in got])
    y = None if got[0][2] is None else np.concatenate([g[2] for g in got])
    return Z, t, y


def _smd_denominator(arm_stats: dict, estimand: str) -> np.ndarray:
    return smd_denominator(arm_stats[1][2] / arm_stats[1][0], arm_stats[0][2] / arm_stats[0][0],
                           estimand)


def _balance_table(W: dict, arm_stats: dict, denom: np.ndarray, names: list, mean_r, scale,
                   huge) -> pd.DataFrame:
    """The in-memory :func:`cina.diagnostics.balance_table` from reduced moments of z (means
    mapped back to the covariates' units; SMDs and variance ratios are unit-free)."""
    m1, v1 = arm_stats[1][1], arm_stats[1][2] / arm_stats[1][0]
    m0, v0 = arm_stats[0][1], arm_stats[0][2] / arm_stats[0][0]
    wm1 = W["wz_t"] / W["w_t"][0]
    wm0 = W["wz_c"] / W["w_c"][0]
    wv1 = np.maximum(W["wz2_t"] / W["w_t"][0] - wm1**2, 0.0)
    wv0 = np.maximum(W["wz2_c"] / W["w_c"][0] - wm0**2, 0.0)

    def units(z):
        return huge * (z * scale + mean_r)

    with np.errstate(divide="ignore", invalid="ignore"):
        vr_before = np.where(v0 > 0, v1 / v0, np.nan)
        vr_after = np.where(wv0 > 0, wv1 / wv0, np.nan)
    return pd.DataFrame({
        "mean_treated": units(m1), "mean_control": units(m0),
        "smd_before": np.abs(m1 - m0) / denom,
        "weighted_mean_treated": units(wm1), "weighted_mean_control": units(wm0),
        "smd_after": np.abs(wm1 - wm0) / denom,
        "var_ratio_before": vr_before, "var_ratio_after": vr_after,
    }, index=pd.Index(names, name="covariate"))


def _build_factor(cluster: _Cluster, Zb: list, sizes: np.ndarray, rows: _Rows, n: int, d: int,
                  bw: float, kernel: str, rank: int | None, landmarks: str, seed: int):
    """The low-rank factor (Phi, delta) of every partition (futures), built as
    :class:`cina.kernels.lowrank.LowRankKernel` builds it in memory, block by block."""
    from ..kernels.lowrank import rank_for, scaled_keys

    m = rank_for(n, rank=rank, budget_bytes=None)
    if kernel == "nystrom":
        from ..kernels.nystrom import ANCHOR_SHARE, NystromMap, select_landmarks

        rng = np.random.default_rng([seed, 1])
        size = min(n, max(20 * m, 2000))
        pos = np.arange(n) if size == n else np.sort(rng.choice(n, size, replace=False))
        sample = scaled_keys(rows.get(pos)[0], bw)
        k = int(ANCHOR_SHARE * m)
        cands = cluster.gather(cluster.map(_anchor_candidates, Zb, bandwidth=bw, k=k))
        cands = np.concatenate([c for c in cands if len(c)]) if k > 0 else None
        fmap = NystromMap(select_landmarks(sample, m, seed=seed, rule=landmarks,
                                           candidates=cands))
    else:
        from ..kernels.random_features import RandomFeatureMap

        fmap = RandomFeatureMap.draw(d, m, seed=seed)
    fmap_future = _constant(cluster.client, fmap)
    rows_f = cluster.map(_feature_rows, Zb, fmap=fmap_future, bandwidth=bw)
    norm = cluster.reduce(_sum_all, cluster.map(_second, rows_f))
    scales = cluster.map(_unit_scales, rows_f, norm=norm)
    log_c = cluster.reduce(_sum_all, cluster.map(_second, scales)).log_mean
    if not isinstance(log_c, float):
        log_c = float(log_c)
    factor = cluster.map(_factor, rows_f, scales, log_c=log_c)
    from distributed import wait

    wait(factor)  # built before the rows they come from are released
    del rows_f, scales
    return factor, {"kernel": kernel, "rank": int(fmap.rank), "rank_requested": rank,
                    "landmarks": landmarks if kernel == "nystrom" else None}


class _DualWeights:
    """The weight solver of the balance guard: ``solver(lam_rel) -> (alpha futures, info)``,
    each call a dual Newton solve warm-started from the previous lam's solution."""

    def __init__(self, cluster: _Cluster, factor: list, Zb: list, *, balance: str,
                 estimand: str, m: int, n: int, n1: int, mu: np.ndarray, delta_max: float,
                 tol: float, show: bool):
        self.cluster, self.factor, self.Zb = cluster, factor, Zb
        self.balance, self.estimand, self.m, self.n, self.n1 = balance, estimand, m, n, n1
        self.mu_vec, self.delta_max, self.tol, self.show = mu, delta_max, tol, show
        self._last: tuple[float, np.ndarray] | None = None
        self.newton_steps = 0

    def spec_for(self, lam: float) -> D.DualSpec:
        return D.dual_spec(self.balance, self.estimand, self.m, lam, self.n, self.n1)

    def __call__(self, lam_rel: float):
        cluster = self.cluster
        spec = self.spec_for(lam_rel)
        mu = np.zeros((spec.n_blocks, self.m))
        if self.balance == "target":
            mu[:] = self.mu_vec
        if self._last is None:
            x0 = D.initial_point(spec, {1: self.n1, 0: self.n - self.n1})
        else:
            x0 = D.rescale_start(spec, self._last[1], self._last[0])

        def evaluate(x, hessian):
            return cluster.reduce(_sum_all, cluster.map(_dual_terms, self.factor, self.Zb, x=x,
                                                        spec=spec, hessian=hessian))

        with progress_bar(self.show, 50, f"dual Newton (lam {lam_rel:.3g})", "step") as bar:
            sol = D.solve_dual(spec, mu, evaluate, x0,
                               w_floor=D.w_floor_for(lam_rel, self.delta_max), tol=self.tol,
                               on_step=None if bar is None else (lambda k: bar.update(1)))
        self._last = (lam_rel, sol.x)
        self.newton_steps += sol.iterations
        raw = cluster.map(_block_weights, self.factor, self.Zb, x=sol.x, spec=spec,
                          n_treated=self.n1)
        totals = cluster.reduce(_sum_all, cluster.map(_arm_sums, raw, self.Zb))
        alpha = cluster.map(_normalise, raw, self.Zb, totals=totals,
                            counts=(self.n1, self.n - self.n1))
        return alpha, {"dual_value": sol.value, "newton_steps": sol.iterations,
                       "dual_evaluations": sol.evaluations, "dual_grad": sol.grad_norm}
