"""The Nystrom low-rank kernel operator (``CInA(kernel="nystrom")``).

exp(q_i . q_j) = g(q_i, q_j) a_i a_j with g(q, q') = exp(-|q - q'|^2 / 2) the Gaussian kernel and
a_i = exp(|q_i|^2 / 2): the landmark approximation is made on the Gaussian part, whose landmark
matrix W = g(L, L) has entries in (0, 1] and unit diagonal (the same approximation as on
exp(q . q') directly, which differs by per-unit factors that cancel, but W is far better
conditioned in floating point), and the per-unit factors a_i are kept exact, in log space
(:class:`~cina.kernels.lowrank.FeatureRows` with l_i = |q_i|^2 / 2):

    g(q_i, q_j) ~ F_i . F_j,  F_i = g(q_i, L) W^{-1/2}  (pseudo-inverse square root),

exact whenever i or j is a landmark. Landmarks (:func:`select_landmarks`, seeded):

* **anchors**: the units of largest norm |q_i| (up to m / 8, those whose a_i exceeds the median
  unit's by more than e^3). Their a_j dominate every row normaliser h_i = sum_j exp(s_ij); on a
  landmark the approximation is exact, so a few far-out units (an income 40 standard deviations
  out) cannot swamp the normalisers with their approximation error;
* the rest by k-means++ seeding (D^2 sampling with the kernel distance 2 - 2 g to the nearest
  landmark) on a uniform sample of ``sample_factor * m`` units, or uniformly (``landmarks=
  "uniform"``).

For a distributed build: :func:`anchor_candidates` per partition (the combined candidates give
the anchors), :func:`select_landmarks` on a sample gathered once, then
:meth:`NystromMap.rows` per partition and the sums of :mod:`cina.kernels.lowrank`.
"""

from __future__ import annotations

import numpy as np

from .lowrank import FeatureMap, FeatureRows, LowRankKernel

__all__ = ["NystromMap", "NystromKernel", "select_landmarks",
           "anchor_candidates", "LANDMARK_RULES", "ANCHOR_GAP", "ANCHOR_SHARE"]

LANDMARK_RULES = ("kmeans++", "uniform")
#: anchors: units with |q|^2 / 2 above the median's by more than this (a_i > e^3 a_median)
ANCHOR_GAP = 3.0
#: at most this share of the landmarks are anchors
ANCHOR_SHARE = 0.125
#: eigenvalues of W below this fraction of the largest are dropped (the pseudo-inverse)
EIG_RTOL = 1e-10


def _gaussian(A: np.ndarray, B: np.ndarray, sqA: np.ndarray | None = None,
              sqB: np.ndarray | None = None) -> np.ndarray:
    """g(a_i, b_j) = exp(-|a_i - b_j|^2 / 2) (len(A), len(B)), built in one buffer."""
    sqA = np.einsum("ij,ij->i", A, A) if sqA is None else sqA
    sqB = np.einsum("ij,ij->i", B, B) if sqB is None else sqB
    G = A @ B.T
    G -= 0.5 * sqA[:, None]
    G -= 0.5 * sqB[None, :]
    np.minimum(G, 0.0, out=G)  # -|a - b|^2 / 2 <= 0 (rounding)
    return np.exp(G, out=G)


def anchor_candidates(q: np.ndarray, k: int) -> np.ndarray:
    """The k rows of q of largest norm (the anchors are among the candidates of all blocks)."""
    if k <= 0 or len(q) == 0:
        return q[:0]
    sq = np.einsum("ij,ij->i", q, q)
    k = min(k, len(q))
    idx = np.argpartition(-sq, k - 1)[:k]
    return q[idx[np.argsort(-sq[idx])]]


def select_landmarks(sample: np.ndarray, m: int, *, seed: int = 0, rule: str = "kmeans++",
                     candidates: np.ndarray | None = None) -> np.ndarray:
    """m landmarks (scaled keys) from a sample of scaled keys: the anchors among
    ``candidates`` (default: the sample's own largest-norm units; module doc), then the rest by
    ``rule`` from ``sample``."""
    if rule not in LANDMARK_RULES:
        raise ValueError(f"landmarks must be one of {LANDMARK_RULES}; received {rule!r}")
    rng = np.random.default_rng(seed)
    n = len(sample)
    m = min(m, n)
    sq = np.einsum("ij,ij->i", sample, sample)
    median_half = 0.5 * float(np.median(sq))
    k_anchor = int(ANCHOR_SHARE * m)
    cand = anchor_candidates(sample, k_anchor) if candidates is None \
        else anchor_candidates(np.asarray(candidates, dtype=float), k_anchor)
    csq = np.einsum("ij,ij->i", cand, cand)
    anchors = cand[0.5 * csq > median_half + ANCHOR_GAP]
    chosen = [anchors]
    n_rest = m - len(anchors)
    if n_rest <= 0:
        return anchors[:m]
    if rule == "uniform":
        chosen.append(sample[np.sort(rng.choice(n, n_rest, replace=False))])
        return np.concatenate(chosen)
    # k-means++ seeding in the kernel's feature space: d2_i = 1 - max_l g(q_i, l) (half the
    # squared feature distance to the nearest landmark); the next landmark is drawn with
    # probability proportional to d2
    if len(anchors):
        d2 = 1.0 - _gaussian(sample, anchors, sq).max(axis=1)
    else:
        first = int(rng.integers(n))
        chosen.append(sample[first:first + 1])
        n_rest -= 1
        d2 = 1.0 - _gaussian(sample, sample[first:first + 1], sq)[:, 0]
    for _ in range(n_rest):
        np.maximum(d2, 0.0, out=d2)
        total = float(d2.sum())
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        chosen.append(sample[i:i + 1])
        np.minimum(d2, 1.0 - _gaussian(sample, sample[i:i + 1], sq)[:, 0], out=d2)
    return np.concatenate(chosen)


class NystromMap(FeatureMap):
    """F(q) = g(q, L) W^{-1/2} with the landmarks L (scaled keys) and W = g(L, L)."""

    kind = "nystrom"

    def __init__(self, landmarks: np.ndarray):
        self.landmarks = np.asarray(landmarks, dtype=float)
        self._sq_landmarks = np.einsum("ij,ij->i", self.landmarks, self.landmarks)
        W = _gaussian(self.landmarks, self.landmarks, self._sq_landmarks, self._sq_landmarks)
        w, U = np.linalg.eigh(W)
        keep = w > EIG_RTOL * w[-1]
        self.whitening = U[:, keep] / np.sqrt(w[keep])[None, :]  # (m, r) = W^{-1/2} (pinv)

    @classmethod
    def fit(cls, q: np.ndarray, rank: int, *, seed: int = 0, rule: str = "kmeans++",
            sample_factor: int = 20, candidates: np.ndarray | None = None) -> NystromMap:
        """Landmarks from (a uniform sample of ``sample_factor * rank`` rows of) q, with the
        anchors among all of q's rows (or among ``candidates``)."""
        rng = np.random.default_rng([seed, 1])
        n = len(q)
        size = min(n, max(sample_factor * rank, 2000))
        sample = q if size == n else q[np.sort(rng.choice(n, size, replace=False))]
        if candidates is None and size < n:
            candidates = anchor_candidates(q, int(ANCHOR_SHARE * rank))
        return cls(select_landmarks(sample, rank, seed=seed, rule=rule, candidates=candidates))

    @property
    def rank(self) -> int:
        return int(self.whitening.shape[1])

    def rows(self, q: np.ndarray) -> FeatureRows:
        q = np.asarray(q, dtype=float)
        sq = np.einsum("ij,ij->i", q, q)
        C = _gaussian(q, self.landmarks, sq, self._sq_landmarks)
        return FeatureRows(C @ self.whitening, 0.5 * sq, sq)

    @property
    def nbytes(self) -> int:
        return int(self.landmarks.nbytes + self.whitening.nbytes)


class NystromKernel(LowRankKernel):
    """K ~ Phi Phi' + diag(delta) from m Nystrom landmarks (:class:`NystromMap`), exact
    diagonal; ``landmarks``: "kmeans++" (default) or "uniform"."""

    kind = "nystrom"

    def _feature_map(self, q: np.ndarray, rank: int, random_state: int,
                     landmarks: str = "kmeans++") -> NystromMap:
        return NystromMap.fit(q, rank, seed=random_state, rule=landmarks)

