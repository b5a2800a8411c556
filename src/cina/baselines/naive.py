"""The unadjusted difference in means."""

from __future__ import annotations

import numpy as np

from .._validation import ValidatedData
from ..base import EffectEstimator
from ..results import EffectResult
from ..rules import normalize_per_arm
from ._common import make_result

__all__ = ["NaiveDifference"]


class NaiveDifference(EffectEstimator):
    """Difference in mean outcomes, treated minus control, with no adjustment for confounding.

    The weights are uniform within each arm (1 / n_treated, 1 / n_control), so the estimate is
    ``sum_i w_i (2 t_i - 1) y_i`` and ``balance_table()`` shows the raw imbalance. The ATE and the
    ATT give the same number (nothing is reweighted towards either population).

    Standard error: Welch's two-sample formula sqrt(s1^2 / n1 + s0^2 / n0) with the unbiased
    (ddof=1) variance of each arm. It is valid for the ATE/ATT only in a randomised experiment.

    Parameters
    ----------
    estimand : "ate" or "att" (same estimate; recorded in the result).
    random_state : accepted for a uniform interface; unused (the method is deterministic).
    """

    method_name = "naive"
    _supports_att = True
    _is_weighting = True

    def __init__(self, estimand: str = "ate", random_state: int = 0):
        self.estimand = estimand
        self.random_state = random_state

    def _fit_validated(self, data: ValidatedData) -> EffectResult:
        t, y = data.t, data.y
        y1, y0 = y[t == 1], y[t == 0]
        estimate = float(y1.mean() - y0.mean())
        se = float(np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0)))
        w = normalize_per_arm(np.ones(data.n), t)
        info = {"mean_treated": float(y1.mean()), "mean_control": float(y0.mean()),
                "se_method": "welch"}
        return make_result(data, estimate, se, self.estimand, self.method_name, w, info)
