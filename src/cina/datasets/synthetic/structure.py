"""One drawn SCM (:class:`_Structure`: everything that does not depend on the sample)
and its simulation: covariates in topological order, then treatment and outcome."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, log_ndtr, ndtr, ndtri

from ._common import _DISCRETE, _SQUASH
from .mechanisms import _apply_mech, _draw_mech, _feature, _normalize, _standardize
from .prior import SCMPrior


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
