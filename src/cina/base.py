"""The estimator contract shared by CInA and every baseline (scikit-learn style).

``__init__`` stores settings only; ``fit(X, t, y)`` validates once (``_validation``), calls the
subclass's ``_fit_validated`` which returns an :class:`EffectResult`, and stores fitted attributes
ending in ``_``. Subclasses implement only ``_fit_validated`` (and declare ``_supports_att``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ._validation import ValidatedData, validate_inputs
from .errors import CInAValidationError, NotFittedError
from .results import EffectResult

__all__ = ["EffectEstimator", "check_is_fitted"]


def check_is_fitted(est) -> None:
    if not hasattr(est, "result_"):
        raise NotFittedError(
            f"this {type(est).__name__} is not fitted yet; call fit(X, t, y) first")


class EffectEstimator(BaseEstimator):
    """Base class: an average-treatment-effect estimator with the sklearn fit contract.

    Fitted attributes: ``result_`` (:class:`EffectResult`), ``effect_``, ``ate_`` (ATE only) or
    ``att_`` (ATT only), ``se_``, ``weights_`` (weighting methods; a Series on the input index
    when X was pandas), ``n_features_in_``, ``feature_names_in_``, ``data_`` (validated inputs,
    kept for diagnostics).
    """

    method_name: str = "base"
    _supports_att: bool = True
    _is_weighting: bool = False

    @property
    def produces_weights(self) -> bool:
        """Whether ``fit`` produces per-unit balancing weights (``weights_``, balance table)."""
        return self._is_weighting

    def _check_estimand(self) -> None:
        estimand = getattr(self, "estimand", "ate")
        if estimand not in ("ate", "att"):
            raise CInAValidationError(
                f"estimand must be 'ate' or 'att'; received {estimand!r}")
        if estimand == "att" and not self._supports_att:
            raise CInAValidationError(
                f"method {self.method_name!r} does not support estimand='att'")

    def _prepare(self) -> float:
        """One-time work before the timed fit (e.g. importing torch and loading a pretrained
        model: ~1 s, once per process); returns its seconds, 0 when there is none."""
        return 0.0

    def fit(self, X, t, y, *, treated_level=None) -> EffectEstimator:
        self._check_estimand()
        data = validate_inputs(
            X, t, y, treated_level=treated_level,
            treatment_name=str(getattr(t, "name", None) or "t"),
            outcome_name=str(getattr(y, "name", None) or "y"))
        return self.fit_validated(data)

    def fit_validated(self, data: ValidatedData) -> EffectEstimator:
        """Fit on already validated data (the benchmark harness and CLI validate once)."""
        self._check_estimand()
        setup = self._prepare()  # once-per-process loads, reported apart from the fit's time
        start = time.perf_counter()
        result = self._fit_validated(data)
        result.seconds = time.perf_counter() - start
        if setup > 0:
            result.info["seconds_setup"] = setup
        self.result_ = result
        self.data_ = data
        self.n_features_in_ = data.d
        self.feature_names_in_ = np.asarray(data.feature_names, dtype=object)
        self.effect_ = float(result.estimate)
        self.se_ = result.se
        if result.weights is not None:
            w = result.weights
            self.weights_ = pd.Series(w, index=data.index, name="weight") if data.index is not None \
                else w.copy()
        return self

    def _fit_validated(self, data: ValidatedData) -> EffectResult:  # pragma: no cover
        raise NotImplementedError

    # -- effect vocabulary (EconML style) -------------------------------------------------
    @property
    def ate_(self) -> float:
        check_is_fitted(self)
        if self.result_.estimand != "ate":
            raise AttributeError("this estimator was fitted with estimand='att': use att_")
        return self.effect_

    @property
    def att_(self) -> float:
        check_is_fitted(self)
        if self.result_.estimand != "att":
            raise AttributeError("this estimator was fitted with estimand='ate': use ate_")
        return self.effect_

    def effect_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Two-sided (1 - alpha) confidence interval of the estimand's effect."""
        check_is_fitted(self)
        return self.result_.interval(alpha)

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        check_is_fitted(self)
        if self.result_.estimand != "ate":
            raise CInAValidationError(
                "this estimator was fitted with estimand='att': use att_interval()")
        return self.effect_interval(alpha)

    def att_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        check_is_fitted(self)
        if self.result_.estimand != "att":
            raise CInAValidationError(
                "this estimator was fitted with estimand='ate': use ate_interval()")
        return self.effect_interval(alpha)

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        check_is_fitted(self)
        return self.result_.summary_frame(alpha)

    def balance_table(self) -> pd.DataFrame:
        """Standardised mean differences and variance ratios before and after weighting."""
        check_is_fitted(self)
        if self.result_.weights is None:
            raise CInAValidationError(
                f"method {self.method_name!r} does not produce weights; balance_table() needs a "
                "weighting method")
        from .diagnostics import balance_table

        d = self.data_
        return balance_table(d.X, d.t, self.result_.weights, feature_names=d.feature_names,
                             estimand=self.result_.estimand)

    @property
    def ess_(self) -> dict[str, float]:
        check_is_fitted(self)
        return {"treated": self.result_.ess_treated, "control": self.result_.ess_control}
