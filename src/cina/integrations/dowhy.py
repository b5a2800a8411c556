"""CInA as a DoWhy estimator (extra ``cina[dowhy]``).

DoWhy loads third-party estimators by their import path::

    from dowhy import CausalModel
    model = CausalModel(data=df, treatment="treat", outcome="re78", common_causes=[...])
    identified = model.identify_effect()
    estimate = model.estimate_effect(
        identified, method_name="backdoor.cina.integrations.dowhy.CInAEstimator",
        target_units="att",                                # "ate" or "att"
        method_params={"init_params": {"method": "exact"}}, confidence_intervals=True)
    model.refute_estimate(identified, estimate, method_name="placebo_treatment_refuter")

``init_params`` go to :func:`cina.registry.make_estimator` (``"method"`` picks any registry
name: exact, zero-shot, ipw, dml, ...; the rest are that estimator's settings). The covariates are
the identified estimand's backdoor set; the estimand follows DoWhy's ``target_units``. The fitted
cina estimator is ``estimate.estimator.cina_estimator_`` (``.report()``, ``.sensitivity()``).
Confidence intervals, standard errors and the significance test come from cina's own inference
(no bootstrap), unless DoWhy is asked for ``"bootstrap"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import CInAValidationError, MissingDependencyError

try:
    from dowhy.causal_estimator import CausalEstimate, CausalEstimator
except ImportError as exc:  # pragma: no cover - exercised where dowhy is absent
    raise MissingDependencyError(
        "cina.integrations.dowhy needs DoWhy: pip install 'cina[dowhy]' (or pip install "
        f"dowhy); importing it failed with: {exc}") from exc

__all__ = ["CInAEstimator", "METHOD_NAME"]

#: the ``method_name`` to give ``CausalModel.estimate_effect``
METHOD_NAME = "backdoor.cina.integrations.dowhy.CInAEstimator"


class CInAEstimator(CausalEstimator):
    """A DoWhy ``CausalEstimator`` that fits a cina estimator on the backdoor adjustment set.

    Parameters (besides DoWhy's own): ``init_params``, a dict of cina settings; its ``"method"``
    entry (default "exact") is a :mod:`cina.registry` name. ``estimand`` must not be given there:
    DoWhy's ``target_units`` ("ate" or "att") decides it.
    """

    def __init__(self, identified_estimand, test_significance=False,
                 evaluate_effect_strength=False, confidence_intervals=False,
                 num_null_simulations=CausalEstimator.DEFAULT_NUMBER_OF_SIMULATIONS_STAT_TEST,
                 num_simulations=CausalEstimator.DEFAULT_NUMBER_OF_SIMULATIONS_CI,
                 sample_size_fraction=CausalEstimator.DEFAULT_SAMPLE_SIZE_FRACTION,
                 confidence_level=CausalEstimator.DEFAULT_CONFIDENCE_LEVEL,
                 need_conditional_estimates="auto",
                 num_quantiles_to_discretize_cont_cols=(
                     CausalEstimator.NUM_QUANTILES_TO_DISCRETIZE_CONT_COLS),
                 init_params: dict | None = None, **kwargs):
        super().__init__(
            identified_estimand=identified_estimand, test_significance=test_significance,
            evaluate_effect_strength=evaluate_effect_strength,
            confidence_intervals=confidence_intervals, num_null_simulations=num_null_simulations,
            num_simulations=num_simulations, sample_size_fraction=sample_size_fraction,
            confidence_level=confidence_level,
            need_conditional_estimates=need_conditional_estimates,
            num_quantiles_to_discretize_cont_cols=num_quantiles_to_discretize_cont_cols,
            **kwargs)
        params = dict(init_params or {})
        if not isinstance(init_params, (dict, type(None))):
            raise CInAValidationError(
                f"init_params must be a dict of cina settings; received {init_params!r}")
        if "estimand" in params:
            raise CInAValidationError(
                "pass the estimand through DoWhy's target_units ('ate' or 'att'), not "
                "init_params['estimand']")
        self.cina_method = str(params.pop("method", "exact"))
        self.cina_params = params
        from ..registry import make_estimator

        make_estimator(self.cina_method, **self.cina_params)  # settings checked now, not later
        self.logger.info("INFO: Using cina estimator %s", self.cina_method)

    # -- DoWhy's protocol ---------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, effect_modifier_names: list[str] | None = None,
            **_: Any):
        """Record the adjustment set (the identified backdoor variables); the cina fit itself
        happens in :meth:`estimate_effect`, where DoWhy's ``target_units`` fixes the estimand."""
        self.reset_encoders()
        self._set_effect_modifiers(data, effect_modifier_names)
        treatment = list(self._target_estimand.treatment_variable)
        if len(treatment) != 1:
            raise CInAValidationError(
                f"cina estimates the effect of one binary treatment; received {treatment}")
        self._treatment_name = treatment[0]
        self._outcome_name = list(self._target_estimand.outcome_variable)[0]
        # the data's column order (DoWhy hands the set over in hash order, which varies between
        # processes; the weights, and so the estimate's last digits, depend on the order)
        adjustment = set(self._target_estimand.get_adjustment_set())
        missing = sorted(adjustment - set(data.columns))
        if missing:
            raise CInAValidationError(f"backdoor variables {missing} are not columns of the data")
        self._observed_common_causes_names = [c for c in data.columns if c in adjustment]
        if not self._observed_common_causes_names:
            raise CInAValidationError(
                "the identified estimand has no backdoor variables: cina balances covariates, "
                "so at least one common cause is needed")
        self.symbolic_estimator = self.construct_symbolic_estimator(self._target_estimand)
        self.cina_estimator_ = None
        return self

    def estimate_effect(self, data: pd.DataFrame, treatment_value: Any = 1,
                        control_value: Any = 0, target_units=None, **_: Any):
        from ..registry import make_estimator

        if target_units is None:
            target_units = "ate"
        if not isinstance(target_units, str) or target_units not in ("ate", "att"):
            raise CInAValidationError(
                f"cina estimates target_units 'ate' or 'att'; received {target_units!r} (for "
                "'atc', swap the treatment coding and use 'att')")
        self._target_units = target_units
        self._treatment_value, self._control_value = treatment_value, control_value
        t_raw = data[self._treatment_name]
        levels = set(pd.unique(t_raw).tolist())
        if not levels <= {treatment_value, control_value}:
            raise CInAValidationError(
                f"treatment {self._treatment_name!r} takes the values {sorted(map(repr, levels))}"
                f"; cina needs exactly treatment_value={treatment_value!r} and "
                f"control_value={control_value!r}")
        t = (t_raw == treatment_value).astype(int).to_numpy()
        X = data[self._observed_common_causes_names]
        est = make_estimator(self.cina_method, estimand=target_units, **self.cina_params)
        est.fit(X, pd.Series(t, index=data.index, name=self._treatment_name),
                data[self._outcome_name])
        self.cina_estimator_ = est
        estimate = CausalEstimate(
            data=data, treatment_name=self._target_estimand.treatment_variable,
            outcome_name=self._target_estimand.outcome_variable, estimate=float(est.effect_),
            control_value=control_value, treatment_value=treatment_value,
            target_estimand=self._target_estimand, realized_estimand_expr=self.symbolic_estimator)
        estimate.add_estimator(self)
        return estimate

    def construct_symbolic_estimator(self, estimand) -> str:
        covariates = "+".join(estimand.get_adjustment_set())
        return (f"b: {','.join(estimand.outcome_variable)} ~ "
                f"{','.join(estimand.treatment_variable)} | {covariates} "
                f"(cina {self.cina_method}: covariate-balancing weights)")

    # -- inference from cina, not the bootstrap -----------------------------------------------
    def _fitted(self):
        if getattr(self, "cina_estimator_", None) is None:
            raise CInAValidationError("estimate_effect() must run before inference is asked for")
        return self.cina_estimator_

    def _estimate_confidence_intervals(self, confidence_level=None, method=None, **_):
        level = self.confidence_level if confidence_level is None else confidence_level
        lo, hi = self._fitted().effect_interval(alpha=1.0 - float(level))
        return np.array([[lo, hi]])

    def _estimate_std_error(self, method=None, **_):
        return float(self._fitted().se_)

    def _test_significance(self, estimate_value, method=None, **_):
        z, p = self._fitted().result_.z_test()
        return {"p_value": p, "z_statistic": z}
