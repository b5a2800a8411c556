"""Balance diagnostics: standardised mean differences, variance ratios, effective sample size."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .rules import (
    BALANCE_THRESHOLD,
    effective_sample_fraction,
    effective_sample_size,
    rescale_huge_columns,
)

__all__ = ["balance_table", "balance_summary", "max_abs_smd", "effective_sample_size",
           "propensity_overlap", "OVERLAP_EXTREME", "OVERLAP_WARN_SHARE", "OVERLAP_UNITS",
           "effective_sample_fraction", "weighted_mean_var", "smd_denominator", "BALANCE_THRESHOLD",
           "N_WORST"]

N_WORST = 5
"""Covariates listed as the worst balanced by :func:`balance_summary`."""


def weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and variances of x (n, d) under nonnegative weights w (n,) summing to 1."""
    w = w / w.sum()
    mean = w @ x
    var = w @ (x - mean) ** 2
    return mean, var


def smd_denominator(var_treated: np.ndarray, var_control: np.ndarray, estimand: str
                    ) -> np.ndarray:
    """The standardised mean difference's denominator, the same before and after weighting:
    the pooled unweighted standard deviation sqrt((s1^2 + s0^2) / 2) for the ATE, the treated
    arm's s1 for the ATT (the population being targeted); 1 where it is 0 (a constant column)."""
    denom = np.sqrt((var_treated + var_control) / 2) if estimand == "ate" else \
        np.sqrt(var_treated)
    return np.where(denom > 0, denom, 1.0)


def _arm_moments(X: np.ndarray, t: np.ndarray, weights: np.ndarray, estimand: str):
    """Per-arm means and variances before and after weighting, and the SMD's denominator
    (columns above 1e100 in magnitude rescaled exactly first, so variances cannot overflow)."""
    X = rescale_huge_columns(X)
    x1, x0 = X[t == 1], X[t == 0]
    m1, v1 = x1.mean(axis=0), x1.var(axis=0)
    m0, v0 = x0.mean(axis=0), x0.var(axis=0)
    denom = smd_denominator(v1, v0, estimand)
    wm1, wv1 = weighted_mean_var(x1, weights[t == 1])
    wm0, wv0 = weighted_mean_var(x0, weights[t == 0])
    return m1, v1, m0, v0, denom, wm1, wv1, wm0, wv0


def max_abs_smd(X: np.ndarray, t: np.ndarray, weights: np.ndarray, estimand: str = "ate"
                ) -> float:
    """The largest absolute standardised mean difference after weighting (the ``smd_after``
    column of :func:`balance_table`, without building the table)."""
    X = np.asarray(X, dtype=float)
    t = np.asarray(t)
    _, _, _, _, denom, wm1, _, wm0, _ = _arm_moments(X, t, weights, estimand)
    return float((np.abs(wm1 - wm0) / denom).max())


def balance_table(X: np.ndarray, t: np.ndarray, weights: np.ndarray, *,
                  feature_names: list[str] | None = None, estimand: str = "ate") -> pd.DataFrame:
    """One row per covariate: means per arm and the absolute standardised mean difference (SMD)
    and variance ratio (treated / control) before and after weighting.

    The SMD's denominator is the same before and after weighting: for the ATE the pooled
    unweighted standard deviation sqrt((s1^2 + s0^2) / 2), for the ATT the treated arm's s1
    (the population being targeted). The customary threshold for good balance is |SMD| <= 0.1
    (:data:`cina.rules.BALANCE_THRESHOLD`).
    """
    X = np.asarray(X, dtype=float)
    t = np.asarray(t)
    names = feature_names or [f"x{j}" for j in range(X.shape[1])]
    m1, v1, m0, v0, denom, wm1, wv1, wm0, wv0 = _arm_moments(X, t, weights, estimand)
    with np.errstate(divide="ignore", invalid="ignore"):
        vr_before = np.where(v0 > 0, v1 / v0, np.nan)
        vr_after = np.where(wv0 > 0, wv1 / wv0, np.nan)
    return pd.DataFrame({
        "mean_treated": m1,
        "mean_control": m0,
        "smd_before": np.abs(m1 - m0) / denom,
        "weighted_mean_treated": wm1,
        "weighted_mean_control": wm0,
        "smd_after": np.abs(wm1 - wm0) / denom,
        "var_ratio_before": vr_before,
        "var_ratio_after": vr_after,
    }, index=pd.Index(names, name="covariate"))


def balance_summary(table: pd.DataFrame, threshold: float = BALANCE_THRESHOLD,
                    n_worst: int = N_WORST) -> dict:
    """Headline numbers of a balance table: max and mean |SMD| before/after weighting, the count
    over ``threshold`` (default :data:`cina.rules.BALANCE_THRESHOLD`), and the ``n_worst``
    worst balanced covariates after weighting (``worst``: name, |SMD| before and after)."""
    worst = table.sort_values("smd_after", ascending=False).head(n_worst)
    return {
        "max_smd_before": float(table["smd_before"].max()),
        "max_smd_after": float(table["smd_after"].max()),
        "mean_smd_before": float(table["smd_before"].mean()),
        "mean_smd_after": float(table["smd_after"].mean()),
        "n_over_before": int((table["smd_before"] > threshold).sum()),
        "n_over_after": int((table["smd_after"] > threshold).sum()),
        "n_covariates": int(len(table)),
        "threshold": threshold,
        "worst": [{"covariate": str(name), "smd_before": float(row.smd_before),
                   "smd_after": float(row.smd_after)} for name, row in worst.iterrows()],
    }


#: propensities within this distance of 0 or 1 count as extreme (no counterpart in the other arm)
OVERLAP_EXTREME = 0.05
#: the overlap check warns when at least this share of the estimand's population is extreme
OVERLAP_WARN_SHARE = 0.05
#: the overlap check fits its propensity model on at most this many units (stratified by arm)
OVERLAP_UNITS = 20_000


def propensity_overlap(X: np.ndarray, t: np.ndarray, estimand: str, *, seed: int = 0) -> dict:
    """Where the arms do not overlap, from a cross-validated logistic propensity model (on the
    standardised covariates, 5 folds, at most :data:`OVERLAP_UNITS` units): the share and count
    of the estimand's population (all units for the ATE, the treated for the ATT) whose
    propensity is extreme (outside [0.05, 0.95] for the ATE, above 0.95 for the ATT: units with
    almost no counterpart in the other arm), and a warning text when that share reaches
    :data:`OVERLAP_WARN_SHARE`. The HTML report's overlap section (cina.report.overlap) adds a
    boosted model and the distributions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t = np.asarray(t)
    rows = np.arange(len(t))
    if len(t) > OVERLAP_UNITS:
        rng = np.random.default_rng([seed, 16])
        rows = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(t == a), max(2, round(OVERLAP_UNITS * np.mean(t == a))),
                       replace=False) for a in (0, 1)]))
    Xs, ts = rescale_huge_columns(X[rows]), t[rows]  # no overflow in the scaler
    folds = int(min(5, ts.sum(), len(ts) - ts.sum()))
    if folds < 2:
        return {"extreme_share": float("nan"), "extreme_count": 0, "warning": None}
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    e = cross_val_predict(model, Xs, ts, method="predict_proba",
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))[:, 1]
    if estimand == "att":
        target, extreme, region = ts == 1, e > 1 - OVERLAP_EXTREME, f"above {1 - OVERLAP_EXTREME:g}"
        who = "treated units"
    else:
        target = np.ones(len(ts), bool)
        extreme = (e < OVERLAP_EXTREME) | (e > 1 - OVERLAP_EXTREME)
        region, who = f"outside [{OVERLAP_EXTREME:g}, {1 - OVERLAP_EXTREME:g}]", "units"
    share = float(extreme[target].mean())
    count = int(round(share * int(target.sum()) * len(t) / len(ts)))
    warning = None
    if share >= OVERLAP_WARN_SHARE:
        warning = (f"limited overlap: {share:.0%} of the {who} (about {count}) have an estimated "
                   f"propensity {region}: the other arm has almost no units like them, so the "
                   "estimate there rests on extrapolation (the outcome model) and a few heavily "
                   "weighted units. Consider the ATT, trimming, or reading the interval's bias "
                   "sd and the report's overlap section")
    return {"extreme_share": share, "extreme_count": count, "warning": warning}

