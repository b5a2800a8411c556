"""The estimator contract shared by CInA and every baseline (scikit-learn style).

``__init__`` stores settings only; ``fit(X, t, y)`` validates once (``_validation``), calls the
subclass's ``_fit_validated`` which returns an :class:`EffectResult`, and stores fitted attributes
ending in ``_``. Subclasses implement only ``_fit_validated`` (and declare ``_supports_att``).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ._threads import fit_threads
from ._validation import ValidatedData, validate_inputs
from .errors import CInAValidationError, NotFittedError
from .results import EffectResult

__all__ = ["EffectEstimator", "check_is_fitted", "FITTED_ATTRIBUTES"]

#: the attributes ``fit`` sets; each raises :class:`~cina.errors.NotFittedError` before fit
FITTED_ATTRIBUTES = ("result_", "data_", "effect_", "se_", "weights_", "n_features_in_",
                     "feature_names_in_")
#: outcomes larger than this in absolute value are fitted on y / 2^k (squares of ~1e154 and
#: above overflow float64; dividing by a power of two is exact)
OUTCOME_RESCALE_ABOVE = 1e100

# facts of ``info`` in the outcome's units, scaled back with the estimate
_OUTCOME_UNIT_INFO = ("outcome_model_effect", "mean_treated", "mean_control")


def _not_fitted(est) -> NotFittedError:
    return NotFittedError(
        f"this {type(est).__name__} is not fitted yet; call fit(X, t, y) first")


def check_is_fitted(est) -> None:
    if "result_" not in vars(est):
        raise _not_fitted(est)


def _outcome_scale(y: np.ndarray | None) -> float:
    """1.0, or the power of two that brings outcomes above :data:`OUTCOME_RESCALE_ABOVE` into
    [-1, 1]."""
    if y is None or y.size == 0:
        return 1.0
    top = float(np.max(np.abs(y)))
    if not top > OUTCOME_RESCALE_ABOVE:
        return 1.0
    return 2.0 ** math.ceil(math.log2(top))


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

    def __getattr__(self, name: str):
        # called only when normal lookup fails: a fitted attribute before fit is NotFittedError
        prop = getattr(type(self), name, None)
        if isinstance(prop, property):  # a property raised AttributeError: let it speak
            return prop.fget(self)
        if name in FITTED_ATTRIBUTES:
            if "result_" not in vars(self):
                raise _not_fitted(self)
            raise AttributeError(f"{type(self).__name__} has no {name!r}" + (
                ": this method does not produce weights" if name == "weights_" else ""))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fit_validated(self, data: ValidatedData) -> EffectEstimator:
        """Fit on already validated data (the benchmark harness and CLI validate once).

        Outcomes of magnitude above :data:`OUTCOME_RESCALE_ABOVE` are fitted on y / 2^k (exact)
        and the estimate, the standard error and the outcome-unit facts of ``info`` scaled back,
        so that squares and variances cannot overflow (``info["outcome_scale"]`` = 2^k).
        """
        self._check_estimand()
        setup = self._prepare()  # once-per-process loads, reported apart from the fit's time
        start = time.perf_counter()
        scale = _outcome_scale(data.y)
        fit_data = data if scale == 1.0 else dataclasses.replace(data, y=data.y / scale)
        # the thread policy (cina._threads): BLAS/OpenMP/torch threads for this fit, restored
        # afterwards; the estimator's n_jobs, else CINA_NUM_THREADS, else by size and load
        with fit_threads(getattr(self, "n_jobs", None), data.n) as threads:
            result = self._fit_validated(fit_data)
        result.info["threads"] = threads.threads
        result.info["threads_rule"] = threads.rule
        if scale != 1.0:
            result.estimate = float(result.estimate) * scale
            result.se = None if result.se is None else float(result.se) * scale
            for key in _OUTCOME_UNIT_INFO:
                if isinstance(result.info.get(key), float):
                    result.info[key] *= scale
            result.info["outcome_scale"] = scale
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

    # -- what an analyst needs around the estimate (cina.report, cina.sensitivity) ----------
    def sensitivity(self, **options):
        """Omitted-variable-bias sensitivity to an unobserved confounder, built on the weights
        (a :class:`cina.sensitivity.SensitivityResult`; options: :func:`cina.sensitivity.
        sensitivity`, docs/sensitivity.md)."""
        from .sensitivity import sensitivity

        return sensitivity(self, **options)

    def report(self, path, **options):
        """Write the one-file HTML report of this fit to ``path`` (options:
        :func:`cina.report.write_report`, docs/report.md); returns the path."""
        from .report import write_report

        return write_report(self, path, **options)
