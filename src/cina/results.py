"""The results object every estimator returns, and the normal-approximation interval."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from .errors import CInAValidationError
from .rules import effective_sample_size

__all__ = ["EffectResult", "normal_interval", "effective_sample_size"]


def normal_interval(estimate: float, se: float, alpha: float = 0.05) -> tuple[float, float]:
    if not 0 < alpha < 1:
        raise CInAValidationError(f"alpha must be in (0, 1); received {alpha!r}")
    z = float(norm.ppf(1 - alpha / 2))
    return estimate - z * se, estimate + z * se


@dataclass
class EffectResult:
    """An effect estimate with its uncertainty and the facts needed to judge it.

    ``weights`` (when the method is a weighting method) are nonnegative and sum to 1 within each
    arm; the estimate of a pure weighting method is sum_i weights_i (2 t_i - 1) y_i.

    ``se`` is the sampling standard error (the outcome noise the weights average); ``bias_sd``
    (0 when the method does not estimate it) the standard deviation of the bias the weights'
    remaining imbalance may leave (CInA: docs/method_notes.md section 14). The interval, the z
    statistic and the p-value use both: total sd = sqrt(se^2 + bias_sd^2), so the interval
    widens where imbalance, not noise, dominates.
    """

    estimate: float
    se: float | None
    estimand: str
    method: str
    n: int
    n_treated: int
    n_control: int
    seconds: float
    weights: np.ndarray | None = None
    t: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    bias_sd: float = 0.0

    @property
    def total_sd(self) -> float | None:
        """sqrt(se^2 + bias_sd^2): the spread the interval and the z test use."""
        if self.se is None:
            return None
        return float(np.hypot(self.se, self.bias_sd or 0.0))

    def interval(self, alpha: float = 0.05) -> tuple[float, float]:
        sd = self.total_sd
        if sd is None or not np.isfinite(sd):
            return (float("nan"), float("nan"))
        return normal_interval(self.estimate, sd, alpha)

    @property
    def ess_treated(self) -> float | None:
        if self.weights is None or self.t is None:
            return None
        return effective_sample_size(self.weights[self.t == 1])

    @property
    def ess_control(self) -> float | None:
        if self.weights is None or self.t is None:
            return None
        return effective_sample_size(self.weights[self.t == 0])

    def to_dict(self, alpha: float = 0.05) -> dict:
        lo, hi = self.interval(alpha)
        return {
            "estimand": self.estimand,
            "estimate": float(self.estimate),
            "se": None if self.se is None else float(self.se),
            "bias_sd": float(self.bias_sd or 0.0),
            "ci_low": None if not np.isfinite(lo) else float(lo),
            "ci_high": None if not np.isfinite(hi) else float(hi),
            "alpha": alpha,
            "n": self.n,
            "n_treated": self.n_treated,
            "n_control": self.n_control,
            "ess_treated": self.ess_treated,
            "ess_control": self.ess_control,
            "method": self.method,
            "seconds": float(self.seconds),
        }

    def z_test(self) -> tuple[float, float]:
        """(z statistic, two-sided p-value) of the null "the effect is 0" under the normal
        approximation with the total sd (se and bias sd); NaN when the method gives no standard
        error."""
        sd = self.total_sd
        if sd is None or not np.isfinite(sd) or sd <= 0:
            return float("nan"), float("nan")
        z = float(self.estimate) / sd
        return z, float(2.0 * norm.sf(abs(z)))

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """One row (indexed by the estimand): the estimate, its standard error, the z statistic
        and two-sided p-value of a zero effect (EconML's ``zstat``/``pvalue``), the interval,
        and the facts of :meth:`to_dict`."""
        row = self.to_dict(alpha)
        z, p = self.z_test()
        ordered = {k: row[k] for k in ("estimand", "estimate", "se")}
        ordered.update(zstat=z, pvalue=p)
        ordered.update({k: v for k, v in row.items() if k not in ordered})
        return pd.DataFrame([ordered]).set_index("estimand")
