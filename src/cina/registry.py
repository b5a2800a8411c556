"""The one registry of effect estimators by name, used by the CLI and the benchmark harness.

``make_estimator("ipw", estimand="att")`` returns an unfitted estimator; ``available_methods()``
lists the names. "exact", "fit" and "zero-shot" are :class:`~cina.CInA` with that ``method`` and
the default pipeline (relevance key map, stacked outcome model, bias-aware interval);
"exact-aug" and "zero-shot-aug" the same weights with the gradient-boosting augmentation
(``augment="gbm"``); "exact-plain" is the paper's estimator (standardised key map, balance guard,
no augmentation); the others are the baselines of :mod:`cina.baselines`.
"""

from __future__ import annotations

import inspect

from .base import EffectEstimator
from .baselines import AIPW, DML, IPW, EntropyBalancing, NaiveDifference, TLearner
from .errors import CInAValidationError
from .estimator import CInA

__all__ = ["available_methods", "make_estimator", "estimator_class", "describe"]

# name -> (class, fixed constructor arguments)
_REGISTRY: dict[str, tuple[type[EffectEstimator], dict]] = {
    "exact": (CInA, {"method": "exact"}),
    "fit": (CInA, {"method": "fit"}),
    "zero-shot": (CInA, {"method": "zero-shot"}),
    "exact-aug": (CInA, {"method": "exact", "augment": "gbm"}),
    "zero-shot-aug": (CInA, {"method": "zero-shot", "augment": "gbm"}),
    "exact-plain": (CInA, {"method": "exact", "metric": "standardized", "augment": None}),
    "naive": (NaiveDifference, {}),
    "ipw": (IPW, {}),
    "aipw": (AIPW, {}),
    "dml": (DML, {}),
    "tlearner": (TLearner, {}),
    "entropy": (EntropyBalancing, {}),
}


# name -> one line saying what the name runs (the classes' own docstrings for the others)
_DESCRIPTIONS = {
    "exact": "CInA's default pipeline with the exact QP solver: relevance key map, stacked "
             "outcome model (augmented estimate), bias-aware interval.",
    "fit": "CInA's default pipeline with the weights from Algorithm 1 (a trained balancing "
           "attention layer).",
    "zero-shot": "CInA's default pipeline with the weights from the pretrained zero-shot model.",
    "exact-aug": "CInA exact weights with the gradient-boosting augmentation (augment='gbm').",
    "zero-shot-aug": "CInA zero-shot weights with the gradient-boosting augmentation "
                     "(augment='gbm').",
    "exact-plain": "The paper's CInA: standardised key map, balance guard, plain weighting "
                   "(metric='standardized', augment=None); the fast path.",
}


def describe(name: str, estimator=None) -> str:
    """One line on what the method ``name`` runs: the registry's own line for the CInA
    variants, else the first line of the estimator's docstring (``estimator``, or the class the
    name is registered with)."""
    key = str(name).strip().lower().replace("_", "-")
    if key in _DESCRIPTIONS:
        return _DESCRIPTIONS[key]
    cls = type(estimator) if estimator is not None else _lookup(name)[1]
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0].strip() if doc else ""


def available_methods() -> list[str]:
    """The method names ``make_estimator`` accepts, CInA's first."""
    return list(_REGISTRY)


def _lookup(name) -> tuple[str, type[EffectEstimator], dict]:
    if not isinstance(name, str):
        raise CInAValidationError(
            f"method name must be a string; received {name!r}. Valid methods: "
            f"{', '.join(available_methods())}")
    key = name.strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise CInAValidationError(
            f"unknown method {name!r}; valid methods: {', '.join(available_methods())}")
    cls, fixed = _REGISTRY[key]
    return key, cls, fixed


def estimator_class(name: str) -> type[EffectEstimator]:
    """The estimator class behind a method name."""
    return _lookup(name)[1]


def _param_names(cls) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [p.name for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def make_estimator(name: str, **params) -> EffectEstimator:
    """An unfitted estimator for method ``name`` with the given settings.

    Raises :class:`~cina.errors.CInAValidationError` for an unknown name (listing the valid
    ones) or for a setting the estimator does not accept (listing the accepted ones). Names are
    matched case-insensitively, with "_" read as "-" ("zero_shot" is "zero-shot").
    """
    key, cls, fixed = _lookup(name)
    accepted = [p for p in _param_names(cls) if p not in fixed]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        fixed_hit = [p for p in unknown if p in fixed]
        extra = (f" ({', '.join(fixed_hit)} is fixed by the method name {key!r})"
                 if fixed_hit else "")
        raise CInAValidationError(
            f"method {key!r} does not accept the setting(s) {unknown}{extra}; accepted settings: "
            f"{', '.join(accepted)}")
    return cls(**fixed, **params)
