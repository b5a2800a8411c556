"""The positive-random-feature low-rank kernel operator (``CInA(kernel="random-features")``).

Performer's FAVOR+ (Choromanski et al. 2021): for w ~ N(0, I_d),
E_w[exp(w . q - |q|^2 / 2) exp(w . q' - |q'|^2 / 2)] = exp(q . q'), so with m draws

    exp(q_i . q_j) ~ psi(q_i) . psi(q_j),   psi_k(q) = exp(w_k . q - |q|^2 / 2) / sqrt(m),

positive features (every row normaliser stays positive). The draws are orthogonal in blocks of d
(the rows of a Haar-random orthogonal matrix, each rescaled to a chi_d-distributed norm, so that
each w_k is still N(0, I) marginally), which lowers the variance. The map is data-independent:
nothing is fitted, and a distributed build only needs the seed. Rows are log-scaled
(l_i = max_k w_k . q_i - |q_i|^2 / 2 - log(m) / 2) so that no feature overflows; the diagonal is
made exact where the features underestimate it (:mod:`cina.kernels.lowrank`).
"""

from __future__ import annotations

import math

import numpy as np

from .lowrank import FeatureMap, FeatureRows, LowRankKernel

__all__ = ["RandomFeatureMap", "RandomFeatureKernel", "orthogonal_gaussian"]


def orthogonal_gaussian(m: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """m x d: blocks of d orthogonal directions with chi_d norms (marginally N(0, I_d))."""
    blocks = []
    for _ in range(math.ceil(m / d)):
        Qm, R = np.linalg.qr(rng.standard_normal((d, d)))
        Qm *= np.sign(np.diag(R))[None, :]  # Haar-distributed
        blocks.append(Qm.T)
    W = np.concatenate(blocks)[:m]
    norms = np.sqrt(rng.chisquare(d, size=m))
    return W * norms[:, None]


class RandomFeatureMap(FeatureMap):
    """psi(q) = exp(W q - |q|^2 / 2) / sqrt(m), W (m, d) orthogonal Gaussian draws."""

    kind = "random-features"

    def __init__(self, W: np.ndarray):
        self.W = np.asarray(W, dtype=float)

    @classmethod
    def draw(cls, d: int, rank: int, *, seed: int = 0) -> RandomFeatureMap:
        return cls(orthogonal_gaussian(rank, d, np.random.default_rng([seed, 2])))

    @property
    def rank(self) -> int:
        return int(self.W.shape[0])

    def rows(self, q: np.ndarray) -> FeatureRows:
        q = np.asarray(q, dtype=float)
        sq = np.einsum("ij,ij->i", q, q)
        P = q @ self.W.T
        top = P.max(axis=1)
        P -= top[:, None]
        np.exp(P, out=P)
        return FeatureRows(P, top - 0.5 * sq - 0.5 * math.log(self.rank), sq)

    @property
    def nbytes(self) -> int:
        return int(self.W.nbytes)


class RandomFeatureKernel(LowRankKernel):
    """K ~ Phi Phi' + diag(delta) from m positive orthogonal random features, exact diagonal
    where the features fall short of it."""

    kind = "random-features"

    def _feature_map(self, q: np.ndarray, rank: int, random_state: int) -> RandomFeatureMap:
        return RandomFeatureMap.draw(q.shape[1], rank, seed=random_state)
