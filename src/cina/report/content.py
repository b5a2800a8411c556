"""What the report shows, computed from a fitted estimator's public attributes (``result_``,
``data_``, ``get_params()``): the cobalt-style balance table, the weights' facts, the overlap
diagnostic, versions, the reproducing call and the data's fingerprint."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import platform
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..diagnostics import smd_denominator, weighted_mean_var
from ..rules import BALANCE_THRESHOLD, effective_sample_size, normalize_per_arm

__all__ = ["ReportContent", "collect", "cobalt_balance", "versions", "python_call",
           "data_fingerprint"]

TOP_WEIGHTS = 10
#: the report warns when a reweighted arm's effective sample size is below this share of the arm
#: or below this count of units
LOW_ESS_SHARE, LOW_ESS_UNITS = 0.1, 20


def cobalt_balance(X: np.ndarray, t: np.ndarray, weights: np.ndarray, names: list[str],
                   estimand: str, threshold: float = BALANCE_THRESHOLD) -> pd.DataFrame:
    """Balance in the convention of R's cobalt: signed differences treated - control, raw
    (difference in proportions) for binary covariates, standardised for continuous ones (by the
    pooled unweighted standard deviation for the ATE, the treated one for the ATT, the same
    before and after weighting: docs/method_notes.md section 7); variance ratios treated /
    control for continuous covariates only; ``balanced`` when |diff_after| <= threshold."""
    X = np.asarray(X, dtype=float)
    t = np.asarray(t)
    x1, x0 = X[t == 1], X[t == 0]
    m1, v1 = x1.mean(axis=0), x1.var(axis=0)
    m0, v0 = x0.mean(axis=0), x0.var(axis=0)
    wm1, wv1 = weighted_mean_var(x1, weights[t == 1])
    wm0, wv0 = weighted_mean_var(x0, weights[t == 0])
    binary = np.array([set(np.unique(X[:, j]).tolist()) <= {0.0, 1.0} for j in range(X.shape[1])])
    scale = np.where(binary, 1.0, smd_denominator(v1, v0, estimand))
    with np.errstate(divide="ignore", invalid="ignore"):
        vr_before = np.where(binary | (v0 <= 0), np.nan, v1 / np.where(v0 > 0, v0, 1.0))
        vr_after = np.where(binary | (wv0 <= 0), np.nan, wv1 / np.where(wv0 > 0, wv0, 1.0))
    diff_after = (wm1 - wm0) / scale
    return pd.DataFrame({
        "kind": np.where(binary, "binary", "continuous"),
        "mean_treated": m1, "mean_control": m0,
        "weighted_mean_treated": wm1, "weighted_mean_control": wm0,
        "diff_before": (m1 - m0) / scale, "diff_after": diff_after,
        "var_ratio_before": vr_before, "var_ratio_after": vr_after,
        "balanced": np.abs(diff_after) <= threshold,
    }, index=pd.Index(names, name="covariate"))


def versions() -> dict[str, str]:
    """Versions of Python and of the packages the result depends on (from the installed
    metadata: torch is not imported)."""
    out = {"python": platform.python_version()}
    for pkg in ("cina", "numpy", "scipy", "pandas", "scikit-learn", "torch"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["platform"] = f"{platform.system()} {platform.machine()}"
    return out


def data_fingerprint(data) -> str:
    """SHA-256 of the validated covariates, treatment, outcome and covariate names: the same
    digest means the same numbers reached the estimator."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(data.X, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(data.t, dtype=np.int64).tobytes())
    if data.y is not None:
        h.update(np.ascontiguousarray(data.y, dtype=np.float64).tobytes())
    h.update("\x1f".join(data.feature_names).encode())
    return h.hexdigest()


def python_call(est) -> str:
    """The Python call that refits this estimator with every one of its settings."""
    cls = type(est)
    # the top-level names of the package the estimator came from (loaded already: no import, so
    # the report stays below the estimator it describes)
    public = getattr(sys.modules.get("cina"), cls.__name__, None)
    path = f"cina.{cls.__name__}" if public is cls else f"{cls.__module__}.{cls.__qualname__}"
    params = est.get_params(deep=False)
    args = ",\n    ".join(f"{k}={v!r}" for k, v in params.items())
    imports = "import cina\n" if path.startswith("cina.") and public is cls else \
        f"import {cls.__module__}\n"
    return f"{imports}est = {path}(\n    {args},\n).fit(X, t, y)"


@dataclass
class ReportContent:
    method: str
    estimator_class: str
    estimand: str
    estimate: float
    se: float
    alpha: float
    ci: tuple[float, float]
    zstat: float
    pvalue: float
    n: int
    n_treated: int
    n_control: int
    treatment_name: str
    outcome_name: str
    feature_names: list[str]
    encoded: dict[str, list[str]]
    dropped_constant: list[str]
    dropped_identifier: list[str]
    balance: pd.DataFrame
    weight_arms: list[dict]
    top_weights: pd.DataFrame
    overlap: object
    sensitivity: object | None
    sensitivity_note: str
    params: dict
    info: dict
    versions: dict
    call: str
    call_kind: str  # "command" or "python"
    fingerprint: str
    generated: str
    seconds: float
    t: np.ndarray
    weights: np.ndarray
    warnings: list[str] = field(default_factory=list)


def _encoded_groups(names: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for nm in names:
        if "=" in nm:
            groups.setdefault(nm.split("=", 1)[0], []).append(nm)
    return {k: v for k, v in groups.items() if len(v) > 1}


def _unit_labels(data, rows: np.ndarray) -> list[str]:
    if data.index is not None:
        return [str(v) for v in np.asarray(data.index)[rows]]
    return [f"row {int(r)}" for r in rows]


def _weight_facts(data, weights: np.ndarray, estimand: str, balance: pd.DataFrame
                  ) -> tuple[list[dict], pd.DataFrame]:
    # each unit's weight relative to uniform weighting within its arm (1 = unweighted)
    share = normalize_per_arm(weights, data.t)
    arms = []
    for arm, label in ((1, "treated"), (0, "control")):
        m = data.t == arm
        w = weights[m]
        n_arm = int(m.sum())
        rel = share[m] * n_arm
        top = np.sort(share[m])[::-1][:TOP_WEIGHTS].sum()
        arms.append({
            "arm": label, "n": n_arm, "n_positive": int((w > 0).sum()),
            "ess": effective_sample_size(w), "relative": rel,
            "max_relative": float(rel.max()), "top_share": float(top),
            "uniform": bool(np.ptp(w) <= 1e-12 * max(float(w.max()), 1e-300)),
            "reweighted": not (estimand == "att" and arm == 1),
        })
    # the largest weights of the reweighted arms, with the units that carry them
    rows = []
    for arm in (0, 1):
        if estimand == "att" and arm == 1:
            continue
        idx = np.flatnonzero(data.t == arm)
        w = weights[idx]
        rel = share[idx] * len(idx)
        order = np.argsort(-w, kind="stable")[:TOP_WEIGHTS]
        for k in order:
            rows.append((int(idx[k]), "treated" if arm else "control", float(w[k]),
                         float(rel[k])))
    rows.sort(key=lambda r: -r[3])
    rows = rows[:TOP_WEIGHTS]
    shown = list(balance["diff_before"].abs().sort_values(ascending=False).index[:8])
    cols = [data.feature_names.index(c) for c in shown]
    unit_rows = np.array([r[0] for r in rows], dtype=int)
    table = pd.DataFrame({
        "unit": _unit_labels(data, unit_rows) if len(rows) else [],
        "arm": [r[1] for r in rows],
        "weight": [r[2] for r in rows],
        "relative_weight": [r[3] for r in rows],
    })
    for name, j in zip(shown, cols, strict=True):
        table[name] = data.X[unit_rows, j] if len(rows) else []
    return arms, table


def collect(est, *, alpha: float, treatment_name: str | None, outcome_name: str | None,
            command: str | None, sensitivity, sensitivity_note: str) -> ReportContent:
    from .overlap import overlap_diagnostic

    res, data = est.result_, est.data_
    weights = np.asarray(res.weights, dtype=float)
    lo, hi = res.interval(alpha)
    z = float(res.estimate / res.se) if res.se and res.se > 0 else float("nan")
    p = float(2 * norm.sf(abs(z))) if np.isfinite(z) else float("nan")
    balance = cobalt_balance(data.X, data.t, weights, data.feature_names, res.estimand)
    arms, top = _weight_facts(data, weights, res.estimand, balance)
    seed = getattr(est, "random_state", 0)
    overlap = overlap_diagnostic(data.X, data.t, res.estimand,
                                 random_state=0 if seed is None else int(seed))
    info = {k: v for k, v in res.info.items()
            if isinstance(v, (int, float, str, bool)) and not isinstance(v, np.ndarray)}
    stages = res.info.get("seconds_by_stage")
    if isinstance(stages, dict):
        info.update({f"seconds ({k})": float(v) for k, v in stages.items()})
    warnings_ = []
    if overlap.warning:
        warnings_.append(overlap.warning)
    unbalanced = balance.index[~balance["balanced"]].tolist()
    if unbalanced:
        warnings_.append(
            f"{len(unbalanced)} covariate(s) remain imbalanced after weighting (|difference| > "
            f"{BALANCE_THRESHOLD:g}): {', '.join(map(str, unbalanced[:8]))}"
            f"{', ...' if len(unbalanced) > 8 else ''}. The estimate may carry bias from them.")
    for a in arms:
        if a["reweighted"] and (a["ess"] < LOW_ESS_SHARE * a["n"] or a["ess"] < LOW_ESS_UNITS):
            warnings_.append(
                f"The {a['arm']} weights concentrate on few units: effective sample size "
                f"{a['ess']:.1f} of {a['n']:,}; the {min(TOP_WEIGHTS, a['n'])} largest weights "
                f"carry {a['top_share']:.0%} of the arm's weight.")
    if res.info.get("converged") is False:
        warnings_.append("The iterative solver stopped before reaching its tolerance "
                         "(info['converged'] is False); the weights are approximate.")
    if command:
        call, kind = command, "command"
    else:
        call, kind = python_call(est) + f"\nest.report({'out.html'!r})", "python"
    return ReportContent(
        method=str(res.method), estimator_class=type(est).__name__, estimand=res.estimand,
        estimate=float(res.estimate), se=float(res.se), alpha=float(alpha), ci=(lo, hi),
        zstat=z, pvalue=p, n=data.n, n_treated=data.n_treated, n_control=data.n_control,
        treatment_name=treatment_name or "", outcome_name=outcome_name or "",
        feature_names=list(data.feature_names), encoded=_encoded_groups(data.feature_names),
        dropped_constant=list(getattr(data, "dropped_constant", []) or []),
        dropped_identifier=list(getattr(data, "dropped_identifier", []) or []),
        balance=balance, weight_arms=arms, top_weights=top, overlap=overlap,
        sensitivity=sensitivity, sensitivity_note=sensitivity_note,
        params=est.get_params(deep=False), info=info, versions=versions(), call=call,
        call_kind=kind, fingerprint=data_fingerprint(data),
        generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=float(res.seconds), t=data.t, weights=weights, warnings=warnings_)
