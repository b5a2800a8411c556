"""The attention-induced kernel (docs/method_notes.md section 1), computed in log space.

With queries = keys = q(x) and scores s_ij = q_i . q_j / bandwidth, attention's row normaliser is
h_i = sum_j exp(s_ij) and the kernel whose SVM the attention layer is reads

    k(x_i, x_j) = exp(s_ij) / (h_i h_j) = exp(s_ij - log h_i - log h_j).

The reference key map is the standardised covariates z. Writing exp(z_i . z_j / b) =
exp(-|z_i - z_j|^2 / 2b) exp(|z_i|^2 / 2b) exp(|z_j|^2 / 2b) shows that this is a Gaussian (RBF)
kernel of squared length scale b, rescaled per unit. That is why the bandwidth is a squared length
scale and why the median heuristic (b = median |z_i - z_j|^2 / 2, about d for standardised data)
is the natural data-driven choice; sqrt(d) makes the kernel nearly diagonal at large d
(docs/method_notes.md section 11, item 3).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import logsumexp

from .._threads import single_threaded_blas
from ..errors import CInAValidationError
from ..rules import rescale_huge_columns

__all__ = [
    "standardize",
    "median_bandwidth",
    "resolve_bandwidth",
    "attention_log_kernel",
    "attention_kernel",
    "BANDWIDTH_RULES",
]

BANDWIDTH_RULES = ("median", "sqrt_d", "d")


def standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-scores per column; columns with zero spread are left centred (scale 1). Columns of
    magnitude above 1e100 are first divided by a power of two (:func:`cina.rules.
    rescale_huge_columns`), so that their variance cannot overflow; the returned mean and scale
    are then those of the rescaled column."""
    X = rescale_huge_columns(X)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (X - mean) / scale, mean, scale


def median_bandwidth(Z: np.ndarray, *, max_units: int = 1000, seed: int = 0) -> float:
    """Median heuristic: median over pairs i != j of |z_i - z_j|^2 / 2.

    At most ``max_units`` units (drawn with a fixed seed) enter, so the cost is bounded and the
    rule is deterministic. Falls back to the mean when the median is 0 (many tied rows).
    """
    Z = np.asarray(Z, dtype=float)
    n = Z.shape[0]
    if n > max_units:
        Z = Z[np.random.default_rng(seed).choice(n, max_units, replace=False)]
    if Z.shape[0] < 2:
        return 0.5
    sq = np.einsum("ij,ij->i", Z, Z)
    with single_threaded_blas():  # <= 1,000 units: threads cost more than they give
        d2 = Z @ Z.T
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    pair = d2[_upper_triangle(Z.shape[0])]  # a new array: partitioned in place below
    del d2
    np.maximum(pair, 0.0, out=pair)
    med = _median_in_place(pair)
    if med <= 0:
        med = float(pair.mean()) if pair.mean() > 0 else 1.0
    return med / 2.0


def _median_in_place(x: np.ndarray) -> float:
    """np.median(x) (the same number), reordering x instead of partitioning a copy: one
    selection, plus a minimum over the upper half for an even count."""
    m = x.size
    k = (m - 1) // 2
    x.partition(k)
    if m % 2:
        return float(x[k])
    return float((x[k] + x[k + 1:].min()) / 2.0)


@functools.lru_cache(maxsize=4)
def _upper_triangle(m: int) -> np.ndarray:
    """Boolean mask of the pairs i < j of m units (cached: the rule calls it with m <= 1,000)."""
    mask = np.triu(np.ones((m, m), dtype=bool), k=1)
    mask.setflags(write=False)
    return mask


def resolve_bandwidth(Z: np.ndarray, bandwidth, *, scale: float = 1.0) -> float:
    """A number is used as given; ``None``/"median" is the median heuristic times ``scale``;
    "sqrt_d" and "d" are the fixed rules of the paper and of earlier measurements
    (docs/method_notes.md section 11, item 3), kept for reproduction."""
    d = Z.shape[1]
    if bandwidth is None or bandwidth == "median":
        return scale * median_bandwidth(Z)
    if bandwidth == "sqrt_d":
        return float(np.sqrt(d))
    if bandwidth == "d":
        return float(d)
    if isinstance(bandwidth, str):
        raise CInAValidationError(
            f"bandwidth must be a positive number or one of {BANDWIDTH_RULES}; "
            f"received {bandwidth!r}")
    bw = float(bandwidth)
    if not np.isfinite(bw) or bw <= 0:
        raise CInAValidationError(f"bandwidth must be a positive number; received {bandwidth!r}")
    return bw


def attention_log_kernel(Q: np.ndarray, bandwidth: float, K: np.ndarray | None = None
                         ) -> np.ndarray:
    """log k_ij = s_ij - log h_i - log h_j with s = Q K^T / bandwidth (keys default to queries)."""
    Q = np.asarray(Q, dtype=float)
    Kk = Q if K is None else np.asarray(K, dtype=float)
    s = Q @ Kk.T
    s /= bandwidth
    log_h = _row_logsumexp(s)
    log_h_cols = log_h if K is None else _row_logsumexp(s.T)
    s -= log_h[:, None]
    s -= log_h_cols[None, :]
    return s


def _row_logsumexp(s: np.ndarray, block: int = 1024) -> np.ndarray:
    """logsumexp over rows, in blocks so the temporary stays small (scipy's is 5x slower)."""
    out = np.empty(s.shape[0])
    for start in range(0, s.shape[0], block):
        rows = s[start:start + block]
        m = rows.max(axis=1)
        out[start:start + block] = m + np.log(np.exp(rows - m[:, None]).sum(axis=1))
    return out


def attention_kernel(Z: np.ndarray, bandwidth: float, *, normalize: bool = True) -> np.ndarray:
    """The attention-induced kernel matrix for key map z -> z (float64, symmetric PSD).

    With ``normalize`` the matrix is divided by the mean of its diagonal: the entries of k are
    O(1/N^2), and the balancing weights depend only on K / lam with lam = lam_rel * mean k_ii,
    so the normalised kernel with lam = lam_rel gives the same weights at a sane scale.
    """
    if normalize:
        Z = np.asarray(Z, dtype=float)
        S = Z @ Z.T
        S /= bandwidth
        K = normalised_kernel_in_place(S)[0]
        if K is not None:
            return K
    # without normalisation, or where the one-pass form would overflow: the log-space form
    S = attention_log_kernel(Z, bandwidth)
    if normalize:
        S -= logsumexp(np.diag(S)) - np.log(S.shape[0])
    np.exp(S, out=S)
    return S  # symmetric up to rounding (~1e-16 relative), which the solvers tolerate


def normalised_kernel_in_place(S: np.ndarray
                               ) -> tuple[np.ndarray | None, np.ndarray, float]:
    """The kernel k_ij = exp(s_ij - log h_i - log h_j - c) of symmetric scores S (n, n),
    c the log mean of its diagonal before normalisation, built in S's memory with one exp
    pass; returns (K, log h, c).

    Why one pass: with E_ij = exp(s_ij - max_j s_ij) (which the row normalisers need anyway),
    k_ij = (E_ij / sum_j E_ij) exp(-log h_j - c): two scalings instead of a second exp of the
    n x n matrix. K is None when exp(-log h_j - c) overflows (extreme scores, e.g. a tiny
    bandwidth); S is then overwritten and the caller uses the log-space form.
    """
    diag = np.diag(S).copy()
    rowmax = S.max(axis=1)
    S -= rowmax[:, None]
    np.exp(S, out=S)
    rowsum = S.sum(axis=1)
    log_h = rowmax + np.log(rowsum)
    c = float(logsumexp(diag - 2.0 * log_h) - np.log(S.shape[0]))
    with np.errstate(over="ignore"):
        col = np.exp(-log_h - c)
    if not np.all(np.isfinite(col)):
        return None, log_h, c
    S *= (1.0 / rowsum)[:, None]
    S *= col[None, :]
    return S, log_h, c
