"""Simulation A: one fixed causal graph over 10 covariates, coefficients shifted per
dataset."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .._base import CausalDataset
from ._common import _ESTIMANDS, _SQUASH, _as_rng, _fail, _to_dataset
from .mechanisms import _apply_mech, _draw_mech, _normalize
from .structure import (
    _draw_family_params,
    _simulate_assignment,
    _simulate_covariates,
    _solve_intercept,
    _Structure,
    _structure_meta,
)

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
