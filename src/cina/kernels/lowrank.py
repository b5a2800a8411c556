"""Low-rank kernel operators: K ~ Phi Phi' + diag(delta), every mat-vec O(n m).

The normalised attention kernel is k_ij = exp(s_ij) / (h_i h_j c) with s_ij = q_i . q_j on the
scaled keys q = z / sqrt(bandwidth), h_i = sum_j exp(s_ij) the attention row normalisers and c
the mean of the unnormalised diagonal (docs/method_notes.md section 1). A *feature map*
(:class:`FeatureMap`: Nystrom landmarks, :mod:`cina.kernels.nystrom`, or positive random
features, :mod:`cina.kernels.random_features`) approximates the exponentiated scores by rank-m
features, exp(S) ~ Psi Psi', given per unit in log-scaled form Psi_i = exp(l_i) F_i
(:class:`FeatureRows`), so that nothing overflows whatever the keys' norms. This module turns
those rows into the normalised kernel, docs/method_notes.md section 12:

* the diagonal is kept exact: exp(S) ~ Psi Psi' + diag(e_i), e_i = max(exp(s_ii) - |Psi_i|^2, 0)
  (>= 0 for Nystrom, whose residual is positive semi-definite; clipped for random features), so
  the operator stays PSD and the unit's own term is counted in its row normaliser;
* h_i = exp(l_i) (F_i . sum_j exp(l_j) F_j + exp(l_i) r_i), r_i = e_i exp(-2 l_i): with
  M = max_j l_j and S~ = sum_j exp(l_j - M) F_j, h_i = exp(l_i + M) rho_i with
  rho_i = F_i . S~ + exp(l_i - M) r_i, floored at the unit's own term exp(s_ii - l_i - M);
* k_ij = (F_i . F_j + [i = j] r_i) / (rho_i rho_j c'), the per-unit exp(l) cancel, so the
  normalised factor is Phi_i = F_i / (rho_i sqrt(c')), delta_i = r_i / (rho_i^2 c') with
  c' = mean_i (|F_i|^2 + r_i) / rho_i^2 (the mean diagonal is 1).

Every step is a map over blocks of units plus a sum, so a distributed operator can call the same
functions on each partition: :meth:`FeatureMap.rows` (block), :meth:`NormaliserSum.of` (block;
combined with ``+``), :func:`log_unit_scales` (block), :meth:`LogMeanSum.of` (block; ``+``),
:func:`normalised_factor_rows` (block). :class:`LowRankKernel` runs them in memory.
"""

from __future__ import annotations

import abc
import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._progress import progress_bar, show_progress
from .base import KernelOperator

__all__ = ["FeatureRows", "FeatureMap", "NormaliserSum", "LogMeanSum", "log_unit_scales", "log_diagonal",
           "normalised_factor_rows", "scaled_keys", "LowRankKernel", "DEFAULT_RANK",
           "MIN_RANK", "rank_for", "BLOCK_ROWS"]

#: default rank m of the low-rank operators (docs/method_notes.md section 12:
#: benchmarks/results/lowrank_accuracy.md)
DEFAULT_RANK = 256
#: the smallest rank the memory budget may force
MIN_RANK = 32
#: units per block of the build (temporaries of BLOCK_ROWS x m floats)
BLOCK_ROWS = 8192
#: a build on at least this many units is a "long stage" (a progress bar on a terminal)
LONG_BUILD_UNITS = 100_000


def scaled_keys(keys: np.ndarray, bandwidth: float) -> np.ndarray:
    """q = keys / sqrt(bandwidth) (float64): s_ij = q_i . q_j."""
    return np.asarray(keys, dtype=float) / math.sqrt(float(bandwidth))


@dataclass(frozen=True)
class FeatureRows:
    """A block of units' features of the exponentiated scores, log-scaled:
    Psi_i = exp(log_scale_i) F_i approximates exp(S) by Psi Psi', and log_self_i = s_ii is the
    exact log of the unit's own term exp(s_ii)."""

    F: np.ndarray  # (b, m) float64
    log_scale: np.ndarray  # (b,)
    log_self: np.ndarray  # (b,)
    exact_diagonal: bool = True  # False: the plain factor, no diagonal correction

    def residual(self) -> np.ndarray:
        """r_i = max(exp(s_ii - 2 l_i) - |F_i|^2, 0): the diagonal the features miss, in F's
        scale (the exact-diagonal correction; zeros without it)."""
        if not self.exact_diagonal:
            return np.zeros(len(self.F))
        sq = np.einsum("ij,ij->i", self.F, self.F)
        with np.errstate(over="ignore"):
            own = np.exp(np.minimum(self.log_self - 2.0 * self.log_scale, 700.0))
        return np.maximum(own - sq, 0.0)


class FeatureMap(abc.ABC):
    """A rank-m feature map of exp(q . q'), fitted once (on a sample) and applied to any block
    of scaled keys q: small (O(m d) or O(m^2) numbers), so it is shipped to every partition."""

    kind: ClassVar[str] = ""

    @property
    @abc.abstractmethod
    def rank(self) -> int:
        """m, the number of feature columns."""

    @abc.abstractmethod
    def rows(self, q: np.ndarray) -> FeatureRows:
        """The features of the units with scaled keys q (b, d)."""

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Memory held by the map."""


@dataclass(frozen=True)
class NormaliserSum:
    """S = sum_j exp(l_j) F_j over some units, held as (M, S~ = S exp(-M)) with M the largest
    l_j seen: partial sums of blocks combine with ``+`` in any order."""

    log_max: float
    total: np.ndarray  # (m,)

    @classmethod
    def of(cls, rows: FeatureRows) -> NormaliserSum:
        if rows.F.shape[0] == 0:
            return cls(-math.inf, np.zeros(rows.F.shape[1]))
        top = float(rows.log_scale.max())
        return cls(top, np.exp(rows.log_scale - top) @ rows.F)

    def __add__(self, other: NormaliserSum) -> NormaliserSum:
        top = max(self.log_max, other.log_max)
        if top == -math.inf:
            return self
        return NormaliserSum(top, math.exp(self.log_max - top) * self.total
                             + math.exp(other.log_max - top) * other.total)


def log_unit_scales(rows: FeatureRows, norm: NormaliserSum,
                    residual: np.ndarray | None = None) -> np.ndarray:
    """log rho_i (module doc): the units' row normalisers h_i = exp(l_i + M) rho_i, each at
    least its own term. ``residual``: :meth:`FeatureRows.residual` when already computed."""
    r = rows.residual() if residual is None else residual
    rel = rows.log_scale - norm.log_max  # <= 0
    rho = rows.F @ norm.total + np.exp(rel) * r
    floor = rows.log_self - rows.log_scale - norm.log_max  # log of the unit's own term
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rho = np.where(rho > 0, np.log(np.where(rho > 0, rho, 1.0)), -np.inf)
    return np.maximum(log_rho, floor)


@dataclass(frozen=True)
class LogMeanSum:
    """log sum_i exp(v_i) and the count over some units; partial sums combine with ``+``; the
    log mean is ``log_sum - log(count)``."""

    log_sum: float
    count: int

    @classmethod
    def of(cls, log_values: np.ndarray) -> LogMeanSum:
        if log_values.size == 0:
            return cls(-math.inf, 0)
        top = float(log_values.max())
        return cls(top + math.log(float(np.exp(log_values - top).sum())), int(log_values.size))

    def __add__(self, other: LogMeanSum) -> LogMeanSum:
        return LogMeanSum(float(np.logaddexp(self.log_sum, other.log_sum)),
                          self.count + other.count)

    @property
    def log_mean(self) -> float:
        return self.log_sum - math.log(max(self.count, 1))


def log_diagonal(rows: FeatureRows, log_rho: np.ndarray,
                 residual: np.ndarray | None = None) -> np.ndarray:
    """log of the unnormalised diagonal (|F_i|^2 + r_i) / rho_i^2 (its log mean is log c')."""
    r = rows.residual() if residual is None else residual
    sq = np.einsum("ij,ij->i", rows.F, rows.F) + r
    with np.errstate(divide="ignore"):
        return np.log(sq) - 2.0 * log_rho


def normalised_factor_rows(rows: FeatureRows, log_rho: np.ndarray, log_c: float,
                           residual: np.ndarray | None = None, *, out: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(Phi rows (b, m), delta (b,)) of the normalised kernel K = Phi Phi' + diag(delta).
    ``out``: where to write Phi (may be ``rows.F`` itself, or a float32 array)."""
    r = rows.residual() if residual is None else residual
    scale = np.exp(-log_rho - 0.5 * log_c)
    if out is None:
        out = np.empty_like(rows.F)
    np.multiply(rows.F, scale[:, None], out=out, casting="same_kind")
    return out, r * scale * scale


def rank_for(n: int, *, rank: int | None, budget_bytes: int | None, itemsize: int = 8,
             default: int = DEFAULT_RANK) -> int:
    """The rank of an n-unit operator: ``rank`` (default ``default``), lowered so that the
    factor (n x m, ``itemsize`` bytes each) fits ``budget_bytes`` (None: no budget), never
    below :data:`MIN_RANK`, and at most n. A rank given explicitly is used as given."""
    m = default if rank is None else int(rank)
    if budget_bytes is not None and rank is None:
        m = min(m, max(MIN_RANK, int(budget_bytes) // (itemsize * max(n, 1)) - 4))
    return max(1, min(m, n))


class LowRankKernel(KernelOperator):
    """The normalised kernel as K = Phi Phi' + diag(delta), Phi (n, m): O(n m) memory, O(n m k)
    per mat-vec with k value columns. Subclasses give the feature map (:meth:`_feature_map`).

    ``dtype``: the factor's storage ("float64"; "float32" for the zero-shot model, which halves
    the memory and the time of each mat-vec, computed in float32). The build itself is in
    float64. ``rank``: m (None: :data:`DEFAULT_RANK`, lowered to fit ``budget_bytes`` when
    given); ``random_state``: the seed of the map's random choices; ``diagonal``: "exact"
    (default: the diagonal correction of the module doc) or "factor" (K = Phi Phi' alone, kept
    for the accuracy benchmark); ``progress``: a bar over the
    build's blocks (None: on a terminal for n >= 100,000). ``chunk_size`` and ``progress_desc``
    are the torch forms' settings, accepted so that every operator takes the same keywords.
    """

    quadratic_matvec = False
    holds_matrix = False
    seeded = True  # make_kernel passes random_state and the memory budget
    default_rank: ClassVar[int] = DEFAULT_RANK

    def __init__(self, keys: np.ndarray, bandwidth: float, *, dtype: str = "float64",
                 rank: int | None = None, random_state: int = 0,
                 budget_bytes: int | None = None, diagonal: str = "exact",
                 progress: bool | None = None,
                 progress_desc: str = "kernel", chunk_size: int | None = None, **map_options):
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32'; received {dtype!r}")
        if diagonal not in ("exact", "factor"):
            raise ValueError(f"diagonal must be 'exact' or 'factor'; received {diagonal!r}")
        self.exact_diagonal = diagonal == "exact"
        super().__init__(np.asarray(keys, dtype=float), bandwidth)
        start = time.perf_counter()
        self.dtype = dtype
        n = self.n
        self.rank_requested = rank
        itemsize = 8 if dtype == "float64" else 4
        m = rank_for(n, rank=rank, budget_bytes=budget_bytes, itemsize=itemsize,
                     default=self.default_rank)
        q = scaled_keys(self.keys, self.bandwidth)
        self.feature_map = self._feature_map(q, m, random_state, **map_options)
        self.rank = self.feature_map.rank
        show = show_progress(progress, n >= LONG_BUILD_UNITS)
        blocks = range(0, n, BLOCK_ROWS)
        self.Phi = np.empty((n, self.rank), dtype=np.float64 if dtype == "float64"
                            else np.float32)
        log_scale = np.empty(n)
        log_self = np.empty(n)
        norm = NormaliserSum(-math.inf, np.zeros(self.rank))
        with progress_bar(show, 2 * len(blocks), progress_desc, "block") as bar:
            # pass 1: feature rows (kept), the row normalisers' sum
            for a in blocks:
                rows = self.feature_map.rows(q[a:a + BLOCK_ROWS])
                if not self.exact_diagonal:
                    rows = FeatureRows(rows.F, rows.log_scale, rows.log_self, False)
                self.Phi[a:a + BLOCK_ROWS] = rows.F
                log_scale[a:a + BLOCK_ROWS] = rows.log_scale
                log_self[a:a + BLOCK_ROWS] = rows.log_self
                norm = norm + NormaliserSum.of(rows)
                if bar is not None:
                    bar.update(1)
            del q
            # pass 2: unit scales, the mean diagonal, and the normalised rows in place
            log_rho = np.empty(n)
            log_diag = np.empty(n)
            for a in blocks:
                rows = self._stored_rows(a, log_scale, log_self)
                r = rows.residual()
                log_rho[a:a + BLOCK_ROWS] = log_unit_scales(rows, norm, r)
                log_diag[a:a + BLOCK_ROWS] = log_diagonal(rows, log_rho[a:a + BLOCK_ROWS], r)
            self.log_c = LogMeanSum.of(log_diag).log_mean
            self.delta = np.empty(n)
            for a in blocks:
                rows = self._stored_rows(a, log_scale, log_self)
                _, self.delta[a:a + BLOCK_ROWS] = normalised_factor_rows(
                    rows, log_rho[a:a + BLOCK_ROWS], self.log_c, out=self.Phi[a:a + BLOCK_ROWS])
                if bar is not None:
                    bar.update(1)
        self._log_kdiag = log_diag - self.log_c
        self.seconds_build = time.perf_counter() - start

    def _stored_rows(self, a: int, log_scale: np.ndarray, log_self: np.ndarray) -> FeatureRows:
        return FeatureRows(np.asarray(self.Phi[a:a + BLOCK_ROWS], dtype=float),
                           log_scale[a:a + BLOCK_ROWS], log_self[a:a + BLOCK_ROWS],
                           self.exact_diagonal)

    @abc.abstractmethod
    def _feature_map(self, q: np.ndarray, rank: int, random_state: int, **options
                     ) -> FeatureMap:
        """The fitted feature map of rank <= ``rank`` for these scaled keys."""

    # -- the KernelOperator interface ------------------------------------------------------------
    def factor(self) -> tuple[np.ndarray, np.ndarray]:
        """(Phi (n, m), delta (n,)): K = Phi Phi' + diag(delta) (the exact solver's dual path)."""
        return self.Phi, self.delta

    def matvec(self, V: np.ndarray) -> np.ndarray:
        V = np.asarray(V, dtype=float)
        if self.Phi.dtype == np.float32:
            Vs = V.astype(np.float32)
            out = (self.Phi @ (self.Phi.T @ Vs)).astype(float)
        else:
            out = self.Phi @ (self.Phi.T @ V)
        out += (self.delta if V.ndim == 1 else self.delta[:, None]) * V
        return out

    def diagonal(self) -> np.ndarray:
        return np.exp(self._log_kdiag)

    @property
    def nbytes(self) -> int:
        return int(self.Phi.nbytes + self.delta.nbytes + self._log_kdiag.nbytes
                   + self.feature_map.nbytes)

    @classmethod
    def bytes_needed(cls, n: int, d: int, itemsize: int = 8) -> int:
        # the factor and four per-unit vectors kept through the build (float64), the build's
        # block temporaries; at the default rank
        m = min(cls.default_rank, n)
        return itemsize * n * m + 8 * 4 * n + 8 * BLOCK_ROWS * (2 * m + d)
