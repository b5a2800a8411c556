"""The estimator options of ``cina estimate`` and how they reach the registry's estimators."""

from __future__ import annotations

import difflib
import inspect

from ..errors import CInAValidationError, MissingDependencyError
from ._parsing import UsageError

__all__ = ["DEFAULT_METHOD", "ESTIMATOR_OPTIONS", "method_names", "accepted_params",
           "given_options", "build_estimator"]

DEFAULT_METHOD = "exact"
"""Method used by ``cina estimate`` when ``--method`` is not given."""

# CLI option -> estimator parameter. Only passed when given, and only to methods that accept it.
ESTIMATOR_OPTIONS = {
    "--estimand": "estimand",
    "--balance": "balance",
    "--lam-rel": "lam_rel",
    "--bandwidth": "bandwidth",
    "--max-iter": "max_iter",
}


def method_names() -> list[str]:
    from ..registry import available_methods

    return [str(m) for m in available_methods()]


def accepted_params(est) -> set[str]:
    if hasattr(est, "get_params"):
        return set(est.get_params(deep=False))
    return set(inspect.signature(type(est).__init__).parameters) - {"self"}


def given_options(args) -> dict[str, object]:
    """The estimator options given on the command line (option -> value)."""
    return {option: getattr(args, param) for option, param in ESTIMATOR_OPTIONS.items()
            if getattr(args, param) is not None}


def build_estimator(method: str, options: dict[str, object]):
    """``make_estimator(method, **params)`` with the options this method accepts; an option it
    does not accept is a :class:`UsageError`. Name matching is the registry's."""
    from ..registry import make_estimator

    try:
        probe = make_estimator(method)
    except CInAValidationError as exc:
        names = method_names()
        near = difflib.get_close_matches(str(method).lower(), names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise UsageError(f"{exc}{hint} (see `cina methods`)") from None
    except ImportError as exc:
        if isinstance(exc, MissingDependencyError):
            raise
        raise MissingDependencyError(
            f"method {method!r} needs a package that is not installed ({exc})") from None
    accepted = accepted_params(probe)
    params = {}
    for option, value in options.items():
        param = ESTIMATOR_OPTIONS[option]
        if param not in accepted:
            usable = [o for o, p in ESTIMATOR_OPTIONS.items() if p in accepted]
            raise UsageError(
                f"{option} does not apply to method {method!r} (options it accepts: "
                f"{', '.join(usable) if usable else 'none'})")
        params[param] = value
    return make_estimator(method, **params)
