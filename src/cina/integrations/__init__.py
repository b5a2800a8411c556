"""cina in the py-why ecosystem.

* :mod:`cina.integrations.dowhy`: CInA (or any cina estimator) as a DoWhy estimator, so that
  ``CausalModel.estimate_effect(identified, method_name="backdoor.cina.integrations.dowhy.
  CInAEstimator")`` works and DoWhy's refuters run on it (extra ``cina[dowhy]``).
* :func:`to_econml_style` and :func:`to_doubleml_style`: a fitted estimator's result in the
  column names of EconML's population summary and of DoubleML's ``summary`` (no dependency).

The vocabulary mapping (docs/report.md, "EconML and DoubleML vocabulary"):

=====================  ===========================  =====================
cina                   EconML (``ate_inference``)   DoubleML (``summary``)
=====================  ===========================  =====================
``effect_`` / ate_     ``mean_point``               ``coef``
``se_``                ``stderr_mean``              ``std err``
``zstat``              ``zstat``                    ``t``
``pvalue``             ``pvalue``                   ``P>|t|``
``effect_interval``    ``ci_mean_lower/upper``      ``2.5 %`` / ``97.5 %``
=====================  ===========================  =====================
"""

from __future__ import annotations

import pandas as pd

__all__ = ["to_econml_style", "to_doubleml_style"]


def _row(est, alpha: float) -> tuple[float, float, float, float, float, float]:
    from ..base import check_is_fitted

    check_is_fitted(est)
    frame = est.summary_frame(alpha)
    row = frame.iloc[0]
    lo, hi = est.effect_interval(alpha)
    z, p = est.result_.z_test() if hasattr(est.result_, "z_test") else (
        float(row.get("zstat", float("nan"))), float(row.get("pvalue", float("nan"))))
    se = est.result_.se
    return (float(est.result_.estimate), float("nan") if se is None else float(se), z, p,
            float(lo), float(hi))


def to_econml_style(est, alpha: float = 0.05, outcome_name: str = "Y0") -> pd.DataFrame:
    """The fitted effect as EconML's population summary (``est.ate_inference().summary()``
    table "Uncertainty of Mean Point Estimate"): columns ``mean_point``, ``stderr_mean``,
    ``zstat``, ``pvalue``, ``ci_mean_lower``, ``ci_mean_upper``, one row named by the outcome.
    EconML's default alpha is 0.1; cina's is 0.05 (pass ``alpha`` to match)."""
    est_, se, z, p, lo, hi = _row(est, alpha)
    return pd.DataFrame([[est_, se, z, p, lo, hi]], index=pd.Index([outcome_name]),
                        columns=["mean_point", "stderr_mean", "zstat", "pvalue",
                                 "ci_mean_lower", "ci_mean_upper"])


def to_doubleml_style(est, alpha: float = 0.05, treatment_name: str = "d") -> pd.DataFrame:
    """The fitted effect as DoubleML's ``summary``: columns ``coef``, ``std err``, ``t``,
    ``P>|t|`` and the interval's ends named by their quantiles (``2.5 %``, ``97.5 %`` at
    alpha = 0.05), one row named by the treatment."""
    est_, se, z, p, lo, hi = _row(est, alpha)
    lower, upper = f"{100 * alpha / 2:.1f} %", f"{100 * (1 - alpha / 2):.1f} %"
    return pd.DataFrame([[est_, se, z, p, lo, hi]], index=pd.Index([treatment_name]),
                        columns=["coef", "std err", "t", "P>|t|", lower, upper])
