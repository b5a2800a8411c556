"""Synthetic causal datasets: the pretraining prior of the zero-shot model, and test families.

Four families, all seeded and reproducible (same seed -> identical arrays):

* **SCM prior** (:class:`SCMPrior`, :func:`sample_scm_arrays`, :func:`sample_scm_dataset`,
  :func:`stream_datasets`): a random structural causal model per dataset. Covariates are the nodes
  of an Erdos-Renyi DAG (topological order = node index); roots are drawn from their marginal
  family, every other node is a random mechanism of its parents plus noise, pushed through its
  marginal family by a rank (quantile) transform. Families: Gaussian, heavy-tailed Student-t,
  skewed log-normal and exponential, uniform rank features, binary, categorical (one-hot encoded,
  every level kept) and Poisson counts. Mechanisms: linear, small random MLPs (tanh or relu),
  polynomials up to degree 3, step functions. A treatment node after all covariates has a logit
  built from a random subset of covariates (overlap is set by the logit's standard deviation);
  the outcome has a nonlinear ``mu0(x)`` and ``mu1 = mu0 + tau(x)`` with a heterogeneous
  ``tau``; ``y = mu_t + noise``. Treatment and outcome depend on the *observed* columns only, so
  the effect is identified from ``X`` (no hidden confounding).
* **Simulation A** (:func:`simulation_a`): one fixed causal graph over 10 covariates whose
  mechanism coefficients move around fixed values by ``shift`` from dataset to dataset.
* **Semi-synthetic** (:func:`semi_synthetic`): rows of any real covariate table, resampled, with
  treatment and outcome simulated by the prior's mechanisms on the standardised covariates.
* **Out-of-distribution presets** (:func:`ood_prior`): the default prior with one axis pushed out
  of its training range (denser graphs, unseen mechanisms, weak overlap, wide d, large N).

Speed: the covariates take one topological pass over the nodes, each node a few matrix products
over all units at once; see ``benchmarks/results/generators.md`` (well over 100 datasets of
N = 1,000 per second on one core for the array fast path).

Seeding of streams: dataset ``k`` of a stream seeded ``s`` is drawn from
``np.random.default_rng(np.random.SeedSequence(s, spawn_key=(k,)))``, which is exactly the ``k``-th
child of ``np.random.SeedSequence(s).spawn(...)``. It does not depend on which other datasets of
the stream were drawn, so workers can take disjoint slices (``start=rank, step=world_size``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import count
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, log_ndtr, ndtr, ndtri

from ..errors import CInAValidationError
from ._base import CausalDataset

__all__ = [
    "SCM_MECHANISMS",
    "SCM_TRAIN_MECHANISMS",
    "SCM_MARGINALS",
    "OOD_KINDS",
    "SCMPrior",
    "default_prior",
    "ood_prior",
    "dataset_rng",
    "sample_scm_arrays",
    "sample_scm_dataset",
    "stream_datasets",
    "simulation_a",
    "semi_synthetic",
]

#: Every mechanism the generator knows. ``sine`` (periodic) and ``interaction`` (products of
#: random projections of the parents) are kept out of the default prior for the OOD test.
SCM_MECHANISMS = (
    "linear", "mlp_tanh", "mlp_relu", "polynomial", "threshold", "sine", "interaction",
)
#: Mechanisms of the default (training) prior.
SCM_TRAIN_MECHANISMS = ("linear", "mlp_tanh", "mlp_relu", "polynomial", "threshold")
#: Marginal families of the covariates (all of them are in the default prior).
SCM_MARGINALS = (
    "gaussian", "student_t", "lognormal", "exponential", "uniform", "binary", "categorical",
    "poisson",
)
#: Kinds accepted by :func:`ood_prior`.
OOD_KINDS = ("dense", "mechanism", "overlap", "wide", "large")

_ESTIMANDS = ("ate", "att")
_DISCRETE = ("binary", "categorical")
_FEATURE_CLIP = 5.0  # standardised covariates enter the mechanisms clipped to +-5 sd
_SQUASH = 3.0  # standardised covariate/propensity signals are soft-clipped to +-3 sd


# ----------------------------------------------------------------------------------------------
# the prior
# ----------------------------------------------------------------------------------------------


def _fail(msg: str) -> None:
    raise CInAValidationError(msg)


def _check_range(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                 integer: bool = False, lo_open: bool = False, hi_open: bool = False) -> tuple:
    try:
        a, b = value
    except (TypeError, ValueError):
        _fail(f"SCMPrior.{name} must be a (min, max) pair; got {value!r}")
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            _fail(f"SCMPrior.{name} must hold numbers; got {value!r}")
        if integer and float(v) != int(v):
            _fail(f"SCMPrior.{name} must hold integers; got {value!r}")
        if not math.isfinite(float(v)):
            _fail(f"SCMPrior.{name} must be finite; got {value!r}")
    if a > b:
        _fail(f"SCMPrior.{name} must have min <= max; got {value!r}")
    bad_lo = lo is not None and (a <= lo if lo_open else a < lo)
    bad_hi = hi is not None and (b >= hi if hi_open else b > hi)
    if bad_lo or bad_hi:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else lo
        hi_s = "inf" if hi is None else hi
        _fail(f"SCMPrior.{name} must lie in {left}{lo_s}, {hi_s}{right}; got {value!r}")
    if integer:
        return (int(a), int(b))
    return (float(a), float(b))


def _check_names(name: str, value: Any, known: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        value = tuple(value)
    except TypeError:
        _fail(f"SCMPrior.{name} must be a sequence of names; got {value!r}")
    if not value:
        _fail(f"SCMPrior.{name} must name at least one of {known}")
    for v in value:
        if v not in known:
            _fail(f"unknown {name[:-1]} {v!r} in SCMPrior.{name}; expected names from {known}")
    return tuple(dict.fromkeys(value))  # drop duplicates, keep order


@dataclass(frozen=True)
class SCMPrior:
    """A prior over structural causal models; each dataset draws its own SCM from it.

    Ranges are ``(min, max)`` pairs, sampled uniformly per dataset (integers inclusive).

    Attributes
    ----------
    n_range : number of units N (default 100-2,000; min >= 4).
    d_range : number of covariate *columns* d (default 2-50; a categorical node takes as many
        columns as it has levels, so the column count is exactly the drawn d).
    density_range : edge probability of the Erdos-Renyi DAG over the covariate nodes (in [0, 1]).
    noise_range : standard deviation of each non-root covariate's structural noise, relative to
        its (standardised) signal from the parents.
    outcome_noise_range : standard deviation of the outcome noise, in units of sd(mu0) = 1.
    logit_scale_range : the overlap strength: standard deviation of the treatment logit across
        units (0 = randomised experiment; larger = stronger confounding, weaker overlap).
    treated_fraction_range : target share of treated units (the logit's intercept is solved so
        that the mean propensity hits it).
    propensity_clip : propensities are clipped to ``[clip, 1 - clip]`` before ``t`` is drawn;
        the share clipped and the observed range are reported in ``meta``.
    mechanisms : mechanism types for covariate nodes, propensity, mu0 and tau (from
        :data:`SCM_MECHANISMS`).
    marginals : covariate marginal families (from :data:`SCM_MARGINALS`).
    marginal_concentration : each dataset draws its mix of families from a Dirichlet with this
        concentration (small: datasets dominated by one family; large: an even mix).
    n_categories_range : levels of a categorical covariate (one-hot encoded, every level kept).
    subset_fraction_range : share of covariates entering the propensity, the outcome and the
        effect modifiers (each subset drawn independently; at least one confounder is forced).
    effect_range : the mean of tau(x) (before sampling), in units of sd(mu0).
    heterogeneity_range : effect heterogeneity strength: sd of tau(x) across units, in units of
        sd(mu0) (0 = constant effect).
    random_scale : give continuous columns a random location and scale, as real tables have.
    estimand : ``"ate"`` (true effect = sample mean of mu1 - mu0) or ``"att"`` (mean over the
        treated).
    """

    n_range: tuple[int, int] = (100, 2000)
    d_range: tuple[int, int] = (2, 50)
    density_range: tuple[float, float] = (0.0, 0.4)
    noise_range: tuple[float, float] = (0.1, 1.0)
    outcome_noise_range: tuple[float, float] = (0.1, 1.0)
    logit_scale_range: tuple[float, float] = (0.1, 2.0)
    treated_fraction_range: tuple[float, float] = (0.15, 0.85)
    propensity_clip: float = 0.01
    mechanisms: tuple[str, ...] = SCM_TRAIN_MECHANISMS
    marginals: tuple[str, ...] = SCM_MARGINALS
    marginal_concentration: float = 1.0
    n_categories_range: tuple[int, int] = (3, 5)
    subset_fraction_range: tuple[float, float] = (0.2, 0.8)
    effect_range: tuple[float, float] = (-1.0, 1.0)
    heterogeneity_range: tuple[float, float] = (0.0, 1.0)
    random_scale: bool = True
    estimand: str = "ate"

    def __post_init__(self) -> None:
        norm = {
            "n_range": _check_range("n_range", self.n_range, lo=4, integer=True),
            "d_range": _check_range("d_range", self.d_range, lo=1, integer=True),
            "density_range": _check_range("density_range", self.density_range, 0.0, 1.0),
            "noise_range": _check_range("noise_range", self.noise_range, 0.0),
            "outcome_noise_range": _check_range("outcome_noise_range",
                                                self.outcome_noise_range, 0.0),
            "logit_scale_range": _check_range("logit_scale_range", self.logit_scale_range, 0.0),
            "treated_fraction_range": _check_range(
                "treated_fraction_range", self.treated_fraction_range, 0.0, 1.0,
                lo_open=True, hi_open=True),
            "n_categories_range": _check_range("n_categories_range", self.n_categories_range,
                                               lo=2, integer=True),
            "subset_fraction_range": _check_range("subset_fraction_range",
                                                  self.subset_fraction_range, 0.0, 1.0),
            "effect_range": _check_range("effect_range", self.effect_range),
            "heterogeneity_range": _check_range("heterogeneity_range",
                                                self.heterogeneity_range, 0.0),
            "mechanisms": _check_names("mechanisms", self.mechanisms, SCM_MECHANISMS),
            "marginals": _check_names("marginals", self.marginals, SCM_MARGINALS),
        }
        for k, v in norm.items():
            object.__setattr__(self, k, v)
        clip = self.propensity_clip
        if not isinstance(clip, (int, float)) or not 0.0 <= clip < 0.5:
            _fail(f"SCMPrior.propensity_clip must lie in [0, 0.5); got {clip!r}")
        conc = self.marginal_concentration
        if not isinstance(conc, (int, float)) or not conc > 0:
            _fail(f"SCMPrior.marginal_concentration must be > 0; got {conc!r}")
        if self.estimand not in _ESTIMANDS:
            _fail(f"SCMPrior.estimand must be one of {_ESTIMANDS}; got {self.estimand!r}")
        if self.marginals == ("categorical",) and self.d_range[0] < 2:
            _fail("SCMPrior with only categorical marginals needs d_range min >= 2 "
                  f"(a one-hot block has at least 2 columns); got d_range={self.d_range}")


def default_prior() -> SCMPrior:
    """The pretraining prior: N 100-2,000, d 2-50, ER density 0-0.4, the five training mechanism
    types, all eight marginal families, logit sd 0.1-2 (propensities clipped to [0.01, 0.99]),
    treated share 15-85%, effect heterogeneity sd 0-1, estimand ATE."""
    return SCMPrior()


_OOD_CHANGES: dict[str, dict[str, Any]] = {
    # denser graphs: ER edge probability 0.5-0.9 (default 0-0.4)
    "dense": {"density_range": (0.5, 0.9)},
    # mechanism types never seen in pretraining: periodic sin and multiplicative interactions
    "mechanism": {"mechanisms": ("sine", "interaction")},
    # much weaker overlap: logit sd 3-5 (default 0.1-2), propensities clipped only at 0.001
    "overlap": {"logit_scale_range": (3.0, 5.0), "propensity_clip": 0.001},
    # wide tables: d 51-100 columns (default 2-50)
    "wide": {"d_range": (51, 100)},
    # large datasets: N 2,001-10,000 (default 100-2,000)
    "large": {"n_range": (2001, 10000)},
}


def ood_prior(kind: str, base: SCMPrior | None = None) -> SCMPrior:
    """An out-of-distribution prior: ``base`` (default: :func:`default_prior`) with one axis moved.

    * ``"dense"``: ER edge probability 0.5-0.9 instead of 0-0.4.
    * ``"mechanism"``: only mechanisms absent from pretraining (``sine``: sums of sin waves of the
      parents; ``interaction``: products of random projections of the parents).
    * ``"overlap"``: logit sd 3-5 instead of 0.1-2 and a clip of 0.001 instead of 0.01, so many
      propensities lie near 0 or 1.
    * ``"wide"``: d 51-100 columns instead of 2-50.
    * ``"large"``: N 2,001-10,000 instead of 100-2,000.
    """
    if kind not in _OOD_CHANGES:
        _fail(f"unknown OOD kind {kind!r}; expected one of {OOD_KINDS}")
    return replace(base if base is not None else default_prior(), **_OOD_CHANGES[kind])


# ----------------------------------------------------------------------------------------------
# mechanisms: f(G) with G the (p, N) matrix of the parents' standardised values
# ----------------------------------------------------------------------------------------------


def _draw_mech(rng: np.random.Generator, kind: str, p: int) -> tuple[str, dict]:
    r = 1.0 / math.sqrt(p)
    if kind == "linear":
        return kind, {"w": rng.standard_normal(p) * r}
    if kind in ("mlp_tanh", "mlp_relu"):
        h = int(rng.integers(4, 17))
        gain = rng.uniform(0.5, 3.0)
        return kind, {"W": rng.standard_normal((h, p)) * (gain * r),
                      "b": rng.standard_normal((h, 1)) * 0.5,
                      "v": rng.standard_normal(h)}
    if kind == "polynomial":
        c = rng.standard_normal(3)
        c[0] = 1.0 if c[0] >= 0 else -1.0
        c[2] *= 0.3
        return kind, {"W": rng.standard_normal((3, p)) * r, "c": c}
    if kind == "threshold":
        k = int(rng.integers(1, 4))
        return kind, {"V": rng.standard_normal((k, p)) * r,
                      "c": rng.standard_normal((k, 1)) * 0.7,
                      "a": rng.standard_normal(k)}
    if kind == "sine":
        return kind, {"w": rng.uniform(1.0, 3.0, (p, 1)),
                      "phi": rng.uniform(0.0, 2 * math.pi, (p, 1)),
                      "a": rng.standard_normal(p)}
    if kind == "interaction":
        return kind, {"W": rng.standard_normal((3, p)) * r,
                      "c": np.array([1.0, rng.uniform(0.0, 0.5)])}
    raise AssertionError(kind)  # pragma: no cover - names are validated by SCMPrior


def _apply_mech(mech: tuple[str, dict], G: np.ndarray) -> np.ndarray:
    kind, prm = mech
    if kind == "linear":
        return prm["w"] @ G
    if kind == "mlp_tanh":
        return prm["v"] @ np.tanh(prm["W"] @ G + prm["b"])
    if kind == "mlp_relu":
        H = prm["W"] @ G
        H += prm["b"]
        np.maximum(H, 0.0, out=H)
        return prm["v"] @ H
    if kind == "polynomial":
        U = prm["W"] @ G
        c = prm["c"]
        return c[0] * U[0] + c[1] * U[1] * U[1] + c[2] * U[2] * U[2] * U[2]
    if kind == "threshold":
        return prm["a"] @ (prm["V"] @ G > prm["c"]).astype(np.float64)
    if kind == "sine":
        return prm["a"] @ np.sin(prm["w"] * G + prm["phi"])
    if kind == "interaction":
        U = prm["W"] @ G
        prod = U[0] * U[1]
        return prod + prm["c"][1] * prod * U[2]
    raise AssertionError(kind)  # pragma: no cover


def _standardize(v: np.ndarray) -> np.ndarray:
    v = v - float(v.sum()) / v.size
    sd = math.sqrt(float(v @ v) / v.size)
    if sd > 1e-12:
        v *= 1.0 / sd
    else:
        v[:] = 0.0
    return v


def _normalize(v: np.ndarray, stats: tuple[float, float] | None) -> np.ndarray:
    """Standardise with the sample's own mean and sd, or with fixed ``(mean, sd)``."""
    if stats is None:
        return _standardize(v)
    return (v - stats[0]) * (1.0 / stats[1])


def _feature(v: np.ndarray) -> np.ndarray:
    """A column as the mechanisms see it: standardised and clipped to +-5 sd."""
    v = _standardize(v.astype(np.float64, copy=True))
    return np.clip(v, -_FEATURE_CLIP, _FEATURE_CLIP, out=v)


# ----------------------------------------------------------------------------------------------
# structure: everything about one SCM that does not depend on the sample
# ----------------------------------------------------------------------------------------------


class _Structure:
    """One drawn SCM: covariate nodes (family, parents, mechanism, noise) and the treatment and
    outcome parts. ``_simulate`` turns it into a sample of any size."""

    __slots__ = (
        "fams", "fparams", "parents", "mechs", "noise", "cols", "d", "names", "density",
        "t_parents", "t_mech", "logit_scale", "treated_frac", "clip",
        "y_parents", "y_mech", "y_intercept", "y_noise",
        "m_parents", "m_mech", "effect_mean", "heterogeneity", "estimand", "norm",
    )

    @property
    def m(self) -> int:
        return len(self.fams)


def _draw_family_params(rng: np.random.Generator, fam: str, k: int, random_scale: bool) -> dict:
    if fam == "gaussian":
        if random_scale:
            return {"loc": rng.normal(0.0, 2.0), "scale": math.exp(rng.uniform(-1.5, 1.5))}
        return {"loc": 0.0, "scale": 1.0}
    if fam == "student_t":
        prm = {"df": rng.uniform(2.0, 6.0)}
        if random_scale:
            prm.update(loc=rng.normal(0.0, 2.0), scale=math.exp(rng.uniform(-1.5, 1.5)))
        else:
            prm.update(loc=0.0, scale=1.0)
        return prm
    if fam == "lognormal":
        return {"sigma": rng.uniform(0.4, 1.2),
                "scale": math.exp(rng.uniform(-1.5, 1.5)) if random_scale else 1.0}
    if fam == "exponential":
        return {"scale": math.exp(rng.uniform(-1.5, 1.5)) if random_scale else 1.0}
    if fam == "uniform":
        return {}
    if fam == "binary":
        return {"prevalence": rng.uniform(0.05, 0.95)}
    if fam == "categorical":
        scores = rng.standard_normal(k)
        scores -= scores.mean()
        scores /= max(float(np.sqrt(np.mean(scores * scores))), 1e-12)
        return {"k": k, "props": rng.dirichlet(np.full(k, 2.0)), "scores": scores}
    if fam == "poisson":
        return {"lam": math.exp(rng.uniform(math.log(0.3), math.log(10.0))),
                "slope": rng.uniform(0.2, 0.8)}
    raise AssertionError(fam)  # pragma: no cover


def _draw_families(rng: np.random.Generator, prior: SCMPrior, d: int) -> tuple[list, list]:
    """Families and column counts of the nodes so that the columns add up to exactly ``d``."""
    fams = prior.marginals
    probs = rng.dirichlet(np.full(len(fams), float(prior.marginal_concentration)))
    probs = np.maximum(probs, 0.0)
    probs /= probs.sum()
    draws = rng.choice(len(fams), size=d, p=probs)
    kdraws = rng.integers(prior.n_categories_range[0], prior.n_categories_range[1] + 1, size=d)
    non_cat = [i for i, f in enumerate(fams) if f != "categorical"]
    out_f: list[str] = []
    out_k: list[int] = []
    used = 0
    i = 0
    while used < d:
        fam = fams[draws[i]]
        k = 1
        if fam == "categorical":
            k = min(int(kdraws[i]), d - used)
            if k < 2:
                if non_cat:
                    sub = probs[non_cat] + 1e-12
                    fam = fams[non_cat[int(rng.choice(len(non_cat), p=sub / sub.sum()))]]
                    k = 1
                else:  # only categorical: widen the previous block by one level
                    out_k[-1] += 1
                    used += 1
                    i += 1
                    continue
        out_f.append(fam)
        out_k.append(k)
        used += k
        i += 1
    return out_f, out_k


def _draw_subset(rng: np.random.Generator, m: int, frac_range: tuple[float, float]) -> np.ndarray:
    frac = rng.uniform(*frac_range)
    return np.flatnonzero(rng.random(m) < frac)


def _draw_assignment(rng: np.random.Generator, S: _Structure, prior: SCMPrior, m: int) -> None:
    """Treatment and outcome parts of the structure over ``m`` covariate features."""
    T = _draw_subset(rng, m, prior.subset_fraction_range)
    Y = _draw_subset(rng, m, prior.subset_fraction_range)
    if np.intersect1d(T, Y).size == 0:  # force at least one confounder
        j = int(rng.integers(m))
        T = np.union1d(T, [j])
        Y = np.union1d(Y, [j])
    M = _draw_subset(rng, m, prior.subset_fraction_range)
    if M.size == 0:
        M = np.array([int(rng.integers(m))])
    mechs = prior.mechanisms
    S.t_parents = T
    S.t_mech = _draw_mech(rng, mechs[int(rng.integers(len(mechs)))], T.size)
    S.logit_scale = rng.uniform(*prior.logit_scale_range)
    S.treated_frac = rng.uniform(*prior.treated_fraction_range)
    S.clip = float(prior.propensity_clip)
    S.y_parents = Y
    S.y_mech = _draw_mech(rng, mechs[int(rng.integers(len(mechs)))], Y.size)
    S.y_intercept = rng.normal()
    S.y_noise = rng.uniform(*prior.outcome_noise_range)
    S.m_parents = M
    S.m_mech = _draw_mech(rng, mechs[int(rng.integers(len(mechs)))], M.size)
    S.effect_mean = rng.uniform(*prior.effect_range)
    S.heterogeneity = rng.uniform(*prior.heterogeneity_range)
    S.estimand = prior.estimand
    S.norm = None  # standardise propensity/outcome signals on the sample itself


def _draw_structure(rng: np.random.Generator, prior: SCMPrior, d: int) -> _Structure:
    S = _Structure()
    fams, ks = _draw_families(rng, prior, d)
    m = len(fams)
    density = rng.uniform(*prior.density_range)
    adj = np.triu(rng.random((m, m)) < density, 1)  # adj[i, j]: edge i -> j, i < j
    mechs = prior.mechanisms
    kinds = rng.integers(len(mechs), size=m)
    noise = rng.uniform(prior.noise_range[0], prior.noise_range[1], size=m)
    S.fams, S.d, S.density, S.noise = fams, d, density, noise
    S.fparams, S.parents, S.mechs, S.cols, S.names = [], [], [], [], []
    start = 0
    for j in range(m):
        k = ks[j]
        S.fparams.append(_draw_family_params(rng, fams[j], k, prior.random_scale))
        par = np.flatnonzero(adj[:, j])
        S.parents.append(par)
        S.mechs.append(_draw_mech(rng, mechs[kinds[j]], par.size) if par.size else None)
        S.cols.append((start, k))
        if fams[j] == "categorical":
            S.names.extend(f"x{j}={lvl}" for lvl in range(k))
        else:
            S.names.append(f"x{j}")
        start += k
    _draw_assignment(rng, S, prior, m)
    return S


# ----------------------------------------------------------------------------------------------
# simulation
# ----------------------------------------------------------------------------------------------


def _simulate_covariates(rng: np.random.Generator, S: _Structure, n: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``XT`` (d, n) observed columns and ``F`` (m, n) node features (standardised,
    clipped functions of the observed columns that the downstream mechanisms use)."""
    m = S.m
    XT = np.empty((S.d, n))
    F = np.empty((m, n))
    eps = rng.standard_normal((m, n))
    q = ndtri((np.arange(n) + 0.5) / n)  # normal scores of the ranks
    for j in range(m):
        fam = S.fams[j]
        prm = S.fparams[j]
        par = S.parents[j]
        c0, k = S.cols[j]
        discrete = fam in _DISCRETE
        if par.size:
            s = _standardize(_apply_mech(S.mechs[j], F[par]))
            s = _SQUASH * np.tanh(s * (1.0 / _SQUASH))
            z = s + S.noise[j] * eps[j]
            order = np.argsort(z)
            if not discrete:
                z = np.empty(n)
                z[order] = q
        else:
            z = eps[j]
            order = np.argsort(z) if discrete else None
        if fam == "gaussian":
            XT[c0] = prm["loc"] + prm["scale"] * z
            F[j] = z
            continue
        if fam == "student_t":
            df = prm["df"]
            x = z * np.sqrt(df / rng.chisquare(df, n))
            XT[c0] = prm["loc"] + prm["scale"] * x
        elif fam == "lognormal":
            x = np.exp(prm["sigma"] * z)
            XT[c0] = prm["scale"] * x
        elif fam == "exponential":
            x = -log_ndtr(-z)
            XT[c0] = prm["scale"] * x
        elif fam == "uniform":
            x = ndtr(z)
            XT[c0] = x
        elif fam == "binary":
            n1 = min(max(int(round(prm["prevalence"] * n)), 1), n - 1)
            x = np.zeros(n)
            x[order[n - n1:]] = 1.0
            XT[c0] = x
        elif fam == "poisson":
            x = rng.poisson(prm["lam"] * np.exp(prm["slope"] * z)).astype(np.float64)
            if x[0] == x.max() == x.min():  # keep the column non-constant
                x[int(np.argmax(z))] += 1.0
            XT[c0] = x
        else:  # categorical: ordinal coarsening of the latent, one-hot, every level non-empty
            props = prm["props"]
            kk = min(k, n)
            counts = 1 + np.floor(props[:kk] / props[:kk].sum() * (n - kk)).astype(np.int64)
            counts[int(np.argmax(props[:kk]))] += n - int(counts.sum())
            level = np.empty(n, np.int64)
            level[order] = np.repeat(np.arange(kk), counts)
            XT[c0:c0 + k] = level == np.arange(k)[:, None]
            F[j] = prm["scores"][level]
            continue
        F[j] = _feature(x)
    return XT, F


def _arm_min(n: int) -> int:
    """Smallest arm size guaranteed: max(2, min(5, ceil(5% of n)))."""
    return max(2, min(5, math.ceil(0.05 * n)))


def _solve_intercept(s: np.ndarray, target: float) -> float:
    b = math.log(target / (1.0 - target))
    for _ in range(20):
        e = expit(s + b)
        gap = float(e.mean()) - target
        if abs(gap) < 1e-4:
            break
        slope = max(float(np.mean(e * (1.0 - e))), 1e-6)
        b -= min(max(gap / slope, -2.0), 2.0)
    return b


def _simulate_assignment(rng: np.random.Generator, S: _Structure, F: np.ndarray) -> tuple:
    """Propensity, treatment and potential outcomes from the features ``F`` (m, n)."""
    n = F.shape[1]
    norm = S.norm or {}
    # treatment
    s = _normalize(_apply_mech(S.t_mech, F[S.t_parents]), norm.get("t"))
    s = _SQUASH * np.tanh(s * (1.0 / _SQUASH))
    logit = S.logit_scale * s
    logit += norm["intercept"] if "intercept" in norm else _solve_intercept(logit, S.treated_frac)
    e_raw = expit(logit)
    e = np.clip(e_raw, S.clip, 1.0 - S.clip)
    t = (rng.random(n) < e).astype(np.int64)
    need = _arm_min(n)
    arm_fix = None
    for _ in range(3):
        n1 = int(t.sum())
        if need <= n1 <= n - need:
            break
        arm_fix = "redraw"
        t = (rng.random(n) < e).astype(np.int64)
    n1 = int(t.sum())
    if n1 < need or n1 > n - need:  # force: flip units of the large arm, weighted by propensity
        arm_fix = "forced"
        to = 1 if n1 < need else 0
        pool = np.flatnonzero(t != to)
        w = e[pool] if to == 1 else 1.0 - e[pool]
        keys = np.log(np.maximum(w, 1e-300)) - np.log(-np.log(rng.random(pool.size)))
        k = need - n1 if to == 1 else n1 - (n - need)
        t[pool[np.argsort(-keys)[:k]]] = to
    # outcomes
    mu0 = _normalize(_apply_mech(S.y_mech, F[S.y_parents]), norm.get("y"))
    mu0 += S.y_intercept
    if S.heterogeneity > 0:
        tau = _normalize(_apply_mech(S.m_mech, F[S.m_parents]), norm.get("m"))
        tau *= S.heterogeneity
        tau += S.effect_mean
    else:
        tau = np.full(n, S.effect_mean)
    mu1 = mu0 + tau
    y = np.where(t == 1, mu1, mu0) + S.y_noise * rng.standard_normal(n)
    if S.estimand == "att":
        effect = float(tau[t == 1].mean())
    else:
        effect = float(tau.mean())
    clipped = float(np.mean((e_raw < S.clip) | (e_raw > 1.0 - S.clip)))
    meta = {
        "estimand": S.estimand,
        "true_effect": effect,
        "treatment_parents": S.t_parents.tolist(),
        "outcome_parents": S.y_parents.tolist(),
        "effect_modifiers": S.m_parents.tolist(),
        "confounders": np.intersect1d(S.t_parents, S.y_parents).tolist(),
        "treatment_mechanism": S.t_mech[0],
        "outcome_mechanism": S.y_mech[0],
        "effect_mechanism": S.m_mech[0],
        "logit_scale": float(S.logit_scale),
        "treated_fraction_target": float(S.treated_frac),
        "treated_fraction": float(t.mean()),
        "propensity": e,
        "propensity_clip": S.clip,
        "propensity_min": float(e_raw.min()),
        "propensity_max": float(e_raw.max()),
        "frac_clipped": clipped,
        "arm_fix": arm_fix,
        "effect_mean": float(S.effect_mean),
        "heterogeneity": float(S.heterogeneity),
        "effect_sd": float(tau.std()),
        "outcome_noise": float(S.y_noise),
    }
    return t, y, mu0, mu1, meta


def _structure_meta(S: _Structure) -> dict:
    col_fam: list[str] = []
    blocks: list[list[int]] = []
    for fam, (c0, k) in zip(S.fams, S.cols, strict=True):
        col_fam.extend([fam] * k)
        if fam == "categorical":
            blocks.append(list(range(c0, c0 + k)))
    return {
        "n_nodes": S.m,
        "density": float(S.density),
        "n_edges": int(sum(p.size for p in S.parents)),
        "parents": [p.tolist() for p in S.parents],
        "node_family": list(S.fams),
        "node_columns": [list(range(c0, c0 + k)) for c0, k in S.cols],
        "node_mechanism": [None if mc is None else mc[0] for mc in S.mechs],
        "column_family": col_fam,
        "categorical_blocks": blocks,
        "columns": list(S.names),
    }


def _as_rng(rng_or_seed: Any) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, np.random.SeedSequence):
        return np.random.default_rng(rng_or_seed)
    if isinstance(rng_or_seed, (int, np.integer)) and not isinstance(rng_or_seed, bool):
        if rng_or_seed < 0:
            _fail(f"seed must be a non-negative integer; got {rng_or_seed}")
        return np.random.default_rng(int(rng_or_seed))
    _fail("expected a non-negative integer seed, a numpy SeedSequence or a numpy Generator; "
          f"got {type(rng_or_seed).__name__}")
    raise AssertionError  # pragma: no cover


def _check_prior(prior: Any) -> SCMPrior:
    if prior is None:
        return default_prior()
    if not isinstance(prior, SCMPrior):
        _fail(f"prior must be an SCMPrior; got {type(prior).__name__}")
    return prior


# ----------------------------------------------------------------------------------------------
# public samplers
# ----------------------------------------------------------------------------------------------


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


def _to_dataset(XT: np.ndarray, names: list[str], t: np.ndarray, y: np.ndarray,
                mu0: np.ndarray, mu1: np.ndarray, meta: dict, name: str) -> CausalDataset:
    X = pd.DataFrame(XT.T, columns=names)
    return CausalDataset(X=X, t=t, y=y, true_effect=meta["true_effect"],
                         estimand=meta["estimand"], name=name, mu0=mu0, mu1=mu1, meta=meta)


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


# ----------------------------------------------------------------------------------------------
# Simulation A: one fixed graph, coefficients shifted per dataset
# ----------------------------------------------------------------------------------------------

_SIM_A_SEED = 20_231_005
_SIM_A_FAMILIES = ("gaussian", "gaussian", "binary", "student_t", "lognormal", "gaussian",
                   "poisson", "binary", "exponential", "gaussian")
_SIM_A_EDGES = ((0, 2), (0, 3), (0, 4), (1, 4), (1, 5), (2, 5), (2, 6), (3, 7), (4, 7),
                (5, 8), (6, 8), (1, 9), (7, 9))
_SIM_A_MECHS = ("linear", "mlp_tanh", "polynomial", "threshold", "mlp_relu", "linear",
                "mlp_tanh", "polynomial")  # for nodes 2..9 (0 and 1 are roots)


@lru_cache(maxsize=1)
def _sim_a_base() -> _Structure:
    rng = np.random.default_rng(_SIM_A_SEED)
    S = _Structure()
    m = len(_SIM_A_FAMILIES)
    S.fams = list(_SIM_A_FAMILIES)
    S.d = m
    S.density = len(_SIM_A_EDGES) / (m * (m - 1) / 2)
    S.noise = np.full(m, 0.5)
    S.fparams = [_draw_family_params(rng, f, 1, True) for f in S.fams]
    S.parents = [np.array(sorted(i for i, j in _SIM_A_EDGES if j == node), dtype=np.intp)
                 for node in range(m)]
    kinds = iter(_SIM_A_MECHS)
    S.mechs = [_draw_mech(rng, next(kinds), p.size) if p.size else None for p in S.parents]
    S.cols = [(j, 1) for j in range(m)]
    S.names = [f"x{j}" for j in range(m)]
    S.t_parents = np.array([0, 2, 4, 5, 7])
    S.t_mech = _draw_mech(rng, "mlp_tanh", 5)
    S.logit_scale = 1.0
    S.treated_frac = 0.4
    S.clip = 0.01
    S.y_parents = np.array([0, 1, 2, 4, 5, 8, 9])
    S.y_mech = _draw_mech(rng, "mlp_tanh", 7)
    S.y_intercept = 0.0
    S.y_noise = 0.5
    S.m_parents = np.array([0, 2, 5])
    S.m_mech = _draw_mech(rng, "linear", 3)
    S.effect_mean = 1.0
    S.heterogeneity = 0.5
    S.estimand = "ate"
    # One fixed SCM: normalise the propensity, mu0 and tau signals with constants taken once from
    # a large reference sample, so that each dataset's true effect varies with its sample and
    # with the shifted coefficients (not pinned to effect_mean by per-sample standardisation).
    S.norm = None
    _, F = _simulate_covariates(rng, S, 20_000)
    norm = {}
    for key, mech, par in (("t", S.t_mech, S.t_parents), ("y", S.y_mech, S.y_parents),
                           ("m", S.m_mech, S.m_parents)):
        v = _apply_mech(mech, F[par])
        norm[key] = (float(v.mean()), max(float(v.std()), 1e-12))
    s = _SQUASH * np.tanh(_normalize(_apply_mech(S.t_mech, F[S.t_parents]), norm["t"]) / _SQUASH)
    norm["intercept"] = _solve_intercept(S.logit_scale * s, S.treated_frac)
    S.norm = norm
    return S


def _shift_mech(rng: np.random.Generator, mech: tuple[str, dict], shift: float
                ) -> tuple[tuple[str, dict], float, int]:
    kind, prm = mech
    new = {}
    sq = 0.0
    cnt = 0
    for key, val in prm.items():
        size = float(np.sqrt(np.mean(np.square(val)))) or 1.0  # the array's typical magnitude
        delta = (shift * size) * rng.standard_normal(np.shape(val))
        new[key] = val + delta
        sq += float(np.sum(delta * delta)) / size**2
        cnt += int(np.size(val))
    return (kind, new), sq, cnt


def simulation_a(seed: int, n: int = 1000, shift: float = 0.2, *, estimand: str = "ate"
                 ) -> CausalDataset:
    """One dataset of "Simulation A": a single fixed causal graph over 10 covariates.

    The graph, the marginal families (Gaussian, binary, Student-t, log-normal, Poisson,
    exponential), the mechanism types and their base coefficients are fixed once for all
    (seeded by a constant); the propensity, mu0 and tau signals are normalised with constants
    from a large reference sample of the base SCM (treated share about 40%, mean effect 1, effect
    sd 0.5, outcome noise sd 0.5). Each dataset moves every coefficient array of every mechanism
    (covariate mechanisms, propensity, mu0, tau) by ``shift * rms(array) * N(0, 1)`` (a relative
    move: ``shift = 1`` moves coefficients by their own typical size) and the mean effect by
    ``shift * N(0, 1)``; ``shift = 0`` gives the same SCM every time (datasets then differ only by
    sampling). ``meta["coef_shift_rms"]`` is the realised relative root-mean-square move.
    """
    rng = _as_rng(seed)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4:
        _fail(f"simulation_a n must be an integer >= 4; got {n!r}")
    if not isinstance(shift, (int, float)) or not math.isfinite(shift) or shift < 0:
        _fail(f"simulation_a shift must be a finite number >= 0; got {shift!r}")
    if estimand not in _ESTIMANDS:
        _fail(f"estimand must be one of {_ESTIMANDS}; got {estimand!r}")
    base = _sim_a_base()
    S = _Structure()
    for attr in _Structure.__slots__:
        setattr(S, attr, getattr(base, attr))
    sq, cnt = 0.0, 0
    mechs = []
    for mc in base.mechs:
        if mc is None:
            mechs.append(None)
            continue
        mc, a, b = _shift_mech(rng, mc, shift)
        mechs.append(mc)
        sq, cnt = sq + a, cnt + b
    S.mechs = mechs
    for attr in ("t_mech", "y_mech", "m_mech"):
        mc, a, b = _shift_mech(rng, getattr(base, attr), shift)
        setattr(S, attr, mc)
        sq, cnt = sq + a, cnt + b
    S.effect_mean = base.effect_mean + shift * rng.standard_normal()
    S.estimand = estimand
    XT, F = _simulate_covariates(rng, S, int(n))
    t, y, mu0, mu1, meta = _simulate_assignment(rng, S, F)
    meta.update(_structure_meta(S))
    meta.update(generator="simulation_a", n=int(n), d=S.d, shift=float(shift),
                coef_shift_rms=math.sqrt(sq / max(cnt, 1)))
    if isinstance(seed, (int, np.integer)):
        meta["seed"] = int(seed)
    name = f"simA-s{int(seed)}" if isinstance(seed, (int, np.integer)) else "simA"
    return _to_dataset(XT, S.names, t, y, mu0, mu1, meta, name)


# ----------------------------------------------------------------------------------------------
# semi-synthetic: real covariates, simulated treatment and outcome
# ----------------------------------------------------------------------------------------------


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
