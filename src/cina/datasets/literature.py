"""Published simulation designs of the covariate-balancing and doubly robust literature.

Each function draws one dataset of a design with known potential-outcome means ``mu0``/``mu1``
and a known true propensity (``meta["propensity"]``); the dataset's ``true_effect`` is the
sample ATE ``mean(mu1 - mu0)`` (as every suite scores), ``meta["population_ate"]`` the design's
population value. Same seed, same arrays. The designs, in our words and with the equations, are
in docs/realistic.md section 6; where we depart from a paper (a non-zero effect added where the
paper's effect is zero, an ATE where it estimated a mean), that section says so.

* :func:`kang_schafer` -- Kang & Schafer (2007): four latent standard normals drive treatment
  and outcome, the analyst sees only four nonlinear transformations of them.
* :func:`hainmueller` -- Hainmueller (2012), entropy balancing's Monte Carlo: six mixed
  covariates, a latent-index treatment with three overlap levels, three outcome designs.
* :func:`lunceford_davidian` -- Lunceford & Davidian (2004): confounders and outcome-only
  covariates that are correlated with them, moderate or strong association.
* :func:`nie_wager` -- Nie & Wager (2021), setups A (trimmed sinusoidal propensity,
  heterogeneous effect) and C (logistic propensity, constant effect), used across the doubly
  robust / meta-learner literature.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import chi2, norm

from ..errors import CInAValidationError
from ._base import CausalDataset

__all__ = ["kang_schafer", "hainmueller", "lunceford_davidian", "nie_wager",
           "LITERATURE_DESIGNS", "HAINMUELLER_OVERLAPS", "HAINMUELLER_OUTCOMES",
           "KANG_SCHAFER_ATE", "HAINMUELLER_EFFECTS"]

KANG_SCHAFER_ATE = 10.0
HAINMUELLER_OVERLAPS = ("poor", "medium", "good")
HAINMUELLER_OUTCOMES = (1, 2, 3)
HAINMUELLER_EFFECTS = {1: 1.0, 2: 1.0, 3: 4.0}
"""The constant effect added to each Hainmueller outcome design (the paper's effect is zero):
0.3-0.45 of the outcome's population standard deviation (2.9, 2.3 and 14.1)."""
_HAINMUELLER_SIGMA = np.array([[2.0, 1.0, -1.0], [1.0, 1.0, -0.5], [-1.0, -0.5, 1.0]])
_LD_SIGMA = np.array([[1.0, 0.5, -0.5, -0.5], [0.5, 1.0, -0.5, -0.5],
                      [-0.5, -0.5, 1.0, 0.5], [-0.5, -0.5, 0.5, 1.0]])
_LD_BETA = {"moderate": (0.0, 0.3, -0.3, 0.3), "strong": (0.0, 0.6, -0.6, 0.6)}
_LD_XI = {"moderate": (-0.5, 0.5, 0.5), "strong": (-1.0, 1.0, 1.0)}
_LD_NU = (0.0, -1.0, 1.0, -1.0, 2.0)


def _fail(msg: str):
    raise CInAValidationError(msg)


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        _fail(f"seed must be a non-negative integer; received {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(int(seed)))


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 20:
        _fail(f"n must be an integer >= 20; received {n!r}")
    return int(n)


def _dataset(X: pd.DataFrame, e: np.ndarray, mu0: np.ndarray, mu1: np.ndarray,
             noise0: np.ndarray, noise1: np.ndarray, rng: np.random.Generator, *,
             name: str, meta: dict, t: np.ndarray | None = None) -> CausalDataset:
    if t is None:
        t = (rng.random(len(e)) < e).astype(np.int64)
    y = np.where(t == 1, mu1 + noise1, mu0 + noise0)
    meta = {**meta, "propensity": e, "n_treated": int(t.sum()), "n_control": int(len(t) - t.sum())}
    return CausalDataset(X=X, t=t.astype(np.int64), y=y, true_effect=float(np.mean(mu1 - mu0)),
                         estimand="ate", name=name, mu0=mu0, mu1=mu1, meta=meta)


def kang_schafer(seed: int, n: int = 1000, *, observed: str = "transformed") -> CausalDataset:
    """Kang & Schafer (2007), as an ATE problem.

    Latent ``Z ~ N(0, I_4)``; ``P(T = 1 | Z) = expit(-Z1 + 0.5 Z2 - 0.25 Z3 - 0.1 Z4)``;
    ``mu0 = 210 + 27.4 Z1 + 13.7 (Z2 + Z3 + Z4)`` (the paper's outcome) and
    ``mu1 = mu0 + 10 + 6.85 Z1`` (our addition: an effect whose ATE is 10 and whose ATT differs,
    since treatment falls with Z1); unit-variance Gaussian noise. ``observed="transformed"``
    (default, the paper's misspecified case) gives the analyst ``X1 = exp(Z1 / 2)``,
    ``X2 = Z2 / (1 + exp(Z1)) + 10``, ``X3 = (Z1 Z3 / 25 + 0.6)^3``, ``X4 = (Z2 + Z4 + 20)^2``;
    ``"latent"`` gives Z itself.
    """
    if observed not in ("transformed", "latent"):
        _fail(f"observed must be 'transformed' or 'latent'; received {observed!r}")
    rng, n = _rng(seed), _check_n(n)
    Z = rng.standard_normal((n, 4))
    e = expit(-Z[:, 0] + 0.5 * Z[:, 1] - 0.25 * Z[:, 2] - 0.1 * Z[:, 3])
    mu0 = 210.0 + 27.4 * Z[:, 0] + 13.7 * (Z[:, 1] + Z[:, 2] + Z[:, 3])
    mu1 = mu0 + KANG_SCHAFER_ATE + 6.85 * Z[:, 0]
    noise0, noise1 = rng.standard_normal(n), rng.standard_normal(n)
    if observed == "transformed":
        X = np.column_stack([np.exp(Z[:, 0] / 2), Z[:, 1] / (1 + np.exp(Z[:, 0])) + 10.0,
                             (Z[:, 0] * Z[:, 2] / 25 + 0.6) ** 3, (Z[:, 1] + Z[:, 3] + 20) ** 2])
    else:
        X = Z
    frame = pd.DataFrame(X, columns=["x1", "x2", "x3", "x4"])
    suffix = "" if observed == "transformed" else "-latent"
    return _dataset(frame, e, mu0, mu1, noise0, noise1, rng, name=f"ks{suffix}-s{seed}",
                    meta={"design": "kang-schafer", "observed": observed, "seed": int(seed),
                          "population_ate": KANG_SCHAFER_ATE})


def hainmueller(seed: int, overlap: str = "poor", outcome: int = 1, n: int = 1000
                ) -> CausalDataset:
    """Hainmueller (2012), the entropy-balancing Monte Carlo, as an ATE problem.

    ``(X1, X2, X3) ~ N(0, S)`` with variances 2, 1, 1 and covariances
    ``cov(X1, X2) = 1``, ``cov(X1, X3) = -1``, ``cov(X2, X3) = -0.5``; ``X4 ~ U(-3, 3)``,
    ``X5 ~ chi2(1)``, ``X6 ~ Bernoulli(0.5)``. ``T = 1[X1 + 2 X2 - 2 X3 - X4 - 0.5 X5 + X6 + eps
    > 0]`` with ``eps ~ N(0, 30)`` (``overlap="poor"``), ``N(0, 100)`` (``"good"``) or
    ``chi2(5)`` rescaled to mean 0.5 and variance 67.6 (``"medium"``). Outcome designs:
    1: ``X1 + X2 + X3 - X4 + X5 + X6``; 2: ``X1 + X2 + 0.2 X3 X4 - sqrt(X5)``;
    3: ``(X1 + X2 + X5)^2``; plus ``N(0, 1)`` noise. The paper's effect is zero; we add the
    constant :data:`HAINMUELLER_EFFECTS` so that relative errors are defined. The propensity
    is ``Phi(index / sd)`` for the normal designs and a chi-square tail for ``"medium"``, whose
    noise is bounded below (-12.5), so that a unit with index above 12.5 is treated for sure.
    """
    if overlap not in HAINMUELLER_OVERLAPS:
        _fail(f"overlap must be one of {list(HAINMUELLER_OVERLAPS)}; received {overlap!r}")
    if outcome not in HAINMUELLER_OUTCOMES:
        _fail(f"outcome must be one of {list(HAINMUELLER_OUTCOMES)}; received {outcome!r}")
    rng, n = _rng(seed), _check_n(n)
    X123 = rng.multivariate_normal(np.zeros(3), _HAINMUELLER_SIGMA, size=n, method="cholesky")
    X4 = rng.uniform(-3.0, 3.0, n)
    X5 = rng.chisquare(1.0, n)
    X6 = (rng.random(n) < 0.5).astype(np.float64)
    X = np.column_stack([X123, X4, X5, X6])
    index = X[:, 0] + 2 * X[:, 1] - 2 * X[:, 2] - X4 - 0.5 * X5 + X6
    if overlap == "medium":
        scale = np.sqrt(67.6 / 10.0)  # chi2(5) has variance 10
        eps = scale * (rng.chisquare(5.0, n) - 5.0) + 0.5
        # P(eps > -index) = P(chi2_5 > 5 + (-index - 0.5) / scale)
        e = chi2.sf(5.0 + (-index - 0.5) / scale, 5.0)
    else:
        sd = np.sqrt(30.0 if overlap == "poor" else 100.0)
        eps = sd * rng.standard_normal(n)
        e = norm.cdf(index / sd)
    t = (index + eps > 0).astype(np.int64)
    if outcome == 1:
        mu0 = X[:, 0] + X[:, 1] + X[:, 2] - X4 + X5 + X6
    elif outcome == 2:
        mu0 = X[:, 0] + X[:, 1] + 0.2 * X[:, 2] * X4 - np.sqrt(X5)
    else:
        mu0 = (X[:, 0] + X[:, 1] + X5) ** 2
    tau = HAINMUELLER_EFFECTS[outcome]
    mu1 = mu0 + tau
    noise0, noise1 = rng.standard_normal(n), rng.standard_normal(n)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(1, 7)])
    return _dataset(frame, e, mu0, mu1, noise0, noise1, rng,
                    name=f"hainmueller-{overlap}-y{outcome}-s{seed}", t=t,
                    meta={"design": "hainmueller", "overlap": overlap, "outcome": outcome,
                          "seed": int(seed), "population_ate": tau})


def lunceford_davidian(seed: int, association: str = "strong", n: int = 1000) -> CausalDataset:
    """Lunceford & Davidian (2004), ATE = 2.

    ``X3 ~ Bernoulli(0.2)``; ``V3 | X3 ~ Bernoulli(0.75 X3 + 0.25 (1 - X3))``; given X3,
    ``(X1, V1, X2, V2) ~ N(tau_X3, S)`` with ``tau_1 = (1, 1, -1, -1)``, ``tau_0 = -tau_1``, unit
    variances, correlation 0.5 within (X1, V1) and within (X2, V2) and -0.5 across.
    ``P(T = 1 | X) = expit(b0 + b1 X1 + b2 X2 + b3 X3)`` with ``b = (0, 0.6, -0.6, 0.6)``
    (strong) or ``(0, 0.3, -0.3, 0.3)`` (moderate); ``Y = -X1 + X2 - X3 + 2 T + xi1 V1 + xi2 V2
    + xi3 V3 + N(0, 1)`` with ``xi = (-1, 1, 1)`` (strong) or ``(-0.5, 0.5, 0.5)`` (moderate).
    All six covariates are observed; the V's affect only the outcome.
    """
    if association not in _LD_BETA:
        _fail(f"association must be 'moderate' or 'strong'; received {association!r}")
    rng, n = _rng(seed), _check_n(n)
    X3 = (rng.random(n) < 0.2).astype(np.float64)
    V3 = (rng.random(n) < np.where(X3 == 1, 0.75, 0.25)).astype(np.float64)
    centre = np.where(X3[:, None] == 1, 1.0, -1.0) * np.array([1.0, 1.0, -1.0, -1.0])
    G = rng.multivariate_normal(np.zeros(4), _LD_SIGMA, size=n, method="cholesky") + centre
    X1, V1, X2, V2 = G.T
    b = _LD_BETA[association]
    e = expit(b[0] + b[1] * X1 + b[2] * X2 + b[3] * X3)
    xi = _LD_XI[association]
    nu = _LD_NU
    mu0 = nu[0] + nu[1] * X1 + nu[2] * X2 + nu[3] * X3 + xi[0] * V1 + xi[1] * V2 + xi[2] * V3
    mu1 = mu0 + nu[4]
    noise = rng.standard_normal(n)
    frame = pd.DataFrame(np.column_stack([X1, X2, X3, V1, V2, V3]),
                         columns=["x1", "x2", "x3", "v1", "v2", "v3"])
    return _dataset(frame, e, mu0, mu1, noise, noise, rng,
                    name=f"ld-{association}-s{seed}",
                    meta={"design": "lunceford-davidian", "association": association,
                          "seed": int(seed), "population_ate": nu[4]})


def nie_wager(seed: int, setup: str = "A", n: int = 1000, d: int = 6, sigma: float = 1.0
              ) -> CausalDataset:
    """Nie & Wager (2021), setups A and C, ``y = b(X) + (T - 0.5) tau(X) + sigma N(0, 1)``.

    A: ``X ~ U(0, 1)^d``, ``e = clip(sin(pi X1 X2), 0.1, 0.9)``,
    ``b = sin(pi X1 X2) + 2 (X3 - 0.5)^2 + X4 + 0.5 X5``, ``tau = (X1 + X2) / 2`` (ATE 0.5).
    C: ``X ~ N(0, I_d)``, ``e = 1 / (1 + exp(X2 + X3))``, ``b = 2 log(1 + exp(X1 + X2 + X3))``,
    ``tau = 1``. ``d >= 5`` covariates (the paper varies d; 6 here by default).
    """
    if setup not in ("A", "C"):
        _fail(f"setup must be 'A' or 'C'; received {setup!r}")
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 5:
        _fail(f"d must be an integer >= 5; received {d!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not sigma >= 0:
        _fail(f"sigma must be a number >= 0; received {sigma!r}")
    rng, n = _rng(seed), _check_n(n)
    if setup == "A":
        X = rng.random((n, d))
        s = np.sin(np.pi * X[:, 0] * X[:, 1])
        e = np.clip(s, 0.1, 0.9)
        b = s + 2 * (X[:, 2] - 0.5) ** 2 + X[:, 3] + 0.5 * X[:, 4]
        tau = (X[:, 0] + X[:, 1]) / 2
        population = 0.5
    else:
        X = rng.standard_normal((n, d))
        e = 1.0 / (1.0 + np.exp(X[:, 1] + X[:, 2]))
        b = 2 * np.log1p(np.exp(X[:, 0] + X[:, 1] + X[:, 2]))
        tau = np.ones(n)
        population = 1.0
    mu0, mu1 = b - tau / 2, b + tau / 2
    noise = float(sigma) * rng.standard_normal(n)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(1, d + 1)])
    return _dataset(frame, e, mu0, mu1, noise, noise, rng,
                    name=f"nw-{setup}-s{seed}",
                    meta={"design": "nie-wager", "setup": setup, "d": int(d),
                          "sigma": float(sigma), "seed": int(seed),
                          "population_ate": population})


LITERATURE_DESIGNS = {
    "kang-schafer": kang_schafer,
    "hainmueller": hainmueller,
    "lunceford-davidian": lunceford_davidian,
    "nie-wager": nie_wager,
}
"""Design name -> generator function."""
