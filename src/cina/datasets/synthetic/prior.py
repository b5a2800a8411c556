"""The SCM prior's settings (:class:`SCMPrior`) and the pretraining prior."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import _ESTIMANDS, SCM_MARGINALS, SCM_MECHANISMS, SCM_TRAIN_MECHANISMS, _fail


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


def _check_prior(prior: Any) -> SCMPrior:
    if prior is None:
        return default_prior()
    if not isinstance(prior, SCMPrior):
        _fail(f"prior must be an SCMPrior; got {type(prior).__name__}")
    return prior
