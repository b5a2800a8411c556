"""One-file HTML report of a fitted estimator (docs/report.md).

``write_report(est, "out.html")`` (also ``est.report("out.html")``) writes a self-contained page:
the estimate in plain words, the data and what validation changed, balance before and after
weighting (love plot and a cobalt-style table), the weights, overlap, the sensitivity analysis
(:mod:`cina.sensitivity`), every setting, the versions and the call that reproduces the result.
Figures are inline SVG made here (no plotting library); no script and no external resource, so
the file opens offline and prints.

Writing is atomic: the page goes to a temporary file in the target directory, renamed into place
only after it is complete; any failure leaves no file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import CInAError, CInAValidationError

__all__ = ["write_report", "build_report"]


def _check_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise CInAValidationError(
            f"the report path must be a file path (str or os.PathLike); received {path!r}")
    target = Path(path).expanduser()
    if target.is_dir():
        raise CInAValidationError(
            f"cannot write the report to {str(target)!r}: it is a directory; give a file name "
            "such as report.html")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise CInAValidationError(
            f"cannot write the report to {str(target)!r}: the directory {str(parent)!r} does "
            "not exist")
    if not parent.is_dir():
        raise CInAValidationError(
            f"cannot write the report to {str(target)!r}: {str(parent)!r} is not a directory")
    if target.exists() and not os.access(target, os.W_OK):
        raise CInAValidationError(
            f"cannot write the report to {str(target)!r}: the file exists and is read-only")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CInAValidationError(
            f"cannot write the report to {str(target)!r}: the directory {str(parent)!r} is not "
            "writable")
    return target


def _check_estimator(est) -> None:
    from ..sensitivity import _check_fitted, _check_outcome

    _check_fitted(est, need_se=False)  # NotFittedError / failed fit
    if est.result_.weights is None:
        name = getattr(est, "method_name", type(est).__name__)
        raise CInAValidationError(
            f"report() needs a weighting method (exact, fit, zero-shot, exact-aug, "
            f"zero-shot-aug, ipw, entropy, naive): its balance, weights and overlap sections are "
            f"about the weights, and method {name!r} produces none. For this method, "
            "summary_frame(), effect_interval() and (aipw, dml) sensitivity() are available")
    _check_fitted(est)  # a finite standard error: the interval is the report's headline
    _check_outcome(est.data_)


def _resolve_sensitivity(est, sensitivity, alpha: float, options: dict | None):
    from ..sensitivity import SensitivityResult
    from ..sensitivity import sensitivity as run_sensitivity

    if sensitivity is False or sensitivity is None:
        return None, "The sensitivity analysis was not requested (sensitivity=False)."
    if isinstance(sensitivity, SensitivityResult):
        if not np.isclose(sensitivity.estimate, est.result_.estimate, rtol=1e-12, atol=0) or \
                sensitivity.estimand != est.result_.estimand:
            raise CInAValidationError(
                "the sensitivity result passed to the report belongs to another fit (estimate "
                f"{sensitivity.estimate!r} {sensitivity.estimand}, this estimator's "
                f"{est.result_.estimate!r} {est.result_.estimand}); compute it with "
                "est.sensitivity() on this estimator")
        return sensitivity, ""
    if sensitivity is not True:
        raise CInAValidationError(
            "sensitivity must be True, False or a SensitivityResult from est.sensitivity(); "
            f"received {sensitivity!r}")
    if options is not None and not isinstance(options, dict):
        raise CInAValidationError(
            f"sensitivity_options must be a dict of settings; received {options!r}")
    import inspect

    accepted = [p for p in inspect.signature(run_sensitivity).parameters if p not in ("est",
                                                                                    "alpha")]
    unknown = sorted(set(options or {}) - set(accepted))
    if unknown:
        raise CInAValidationError(
            f"unknown sensitivity option(s) {unknown}; accepted: {', '.join(accepted)} (the "
            "level is the report's own alpha=)")
    try:
        return run_sensitivity(est, alpha=alpha, **(options or {})), ""
    except CInAValidationError as exc:  # e.g. naive (adjusts for nothing) or tiny arms
        if options:  # a setting the caller chose is wrong: say so rather than hide it
            raise
        return None, f"The sensitivity analysis is not available for this fit: {exc}"


def build_report(est, *, command: str | None = None, alpha: float = 0.05, sensitivity=True,
                 sensitivity_options: dict | None = None, treatment_name: str | None = None,
                 outcome_name: str | None = None, title: str | None = None) -> str:
    """The report's HTML as a string (see :func:`write_report` for the parameters)."""
    from .content import collect
    from .html import render

    _check_estimator(est)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise CInAValidationError(f"alpha must be in (0, 1); received {alpha!r}")
    for name, value in (("command", command), ("treatment_name", treatment_name),
                        ("outcome_name", outcome_name), ("title", title)):
        if value is not None and not isinstance(value, str):
            raise CInAValidationError(f"{name} must be a string or None; received {value!r}")
    sens, note = _resolve_sensitivity(est, sensitivity, float(alpha), sensitivity_options)
    content = collect(est, alpha=float(alpha), treatment_name=treatment_name,
                      outcome_name=outcome_name, command=command, sensitivity=sens,
                      sensitivity_note=note)
    return render(content, title=title)


def write_report(est, path, *, command: str | None = None, alpha: float = 0.05,
                 sensitivity=True, sensitivity_options: dict | None = None,
                 treatment_name: str | None = None, outcome_name: str | None = None,
                 title: str | None = None) -> Path:
    """Write the one-file HTML report of a fitted weighting estimator; returns the path.

    Parameters
    ----------
    est : a fitted estimator that produces weights (CInA, ipw, entropy, naive).
    path : the .html file to write (its directory must exist); replaced atomically.
    command : the exact command that produced the fit (the CLI passes its own); None shows the
        Python call that refits the estimator with every one of its settings.
    alpha : the intervals' level is 1 - alpha.
    sensitivity : True (default) runs :func:`cina.sensitivity.sensitivity` (benchmarks included:
        one refit per covariate); False leaves the section out; or a ``SensitivityResult``
        already computed with ``est.sensitivity()``.
    sensitivity_options : keyword arguments for the sensitivity analysis (e.g.
        ``{"benchmark_covariates": ["re74", "re75"]}``).
    treatment_name, outcome_name : how the page names the treatment and the outcome.
    title : the page title (default: "Effect of <treatment> on <outcome> (ATE|ATT)").

    Raises :class:`~cina.errors.NotFittedError` (unfitted), :class:`~cina.errors.CInAError`
    (a failed fit: no finite estimate or standard error), :class:`~cina.errors.CInAValidationError`
    (no weights, a constant outcome, a bad path or setting). Nothing is left at ``path`` (nor
    beside it) when any step fails.
    """
    target = _check_path(path)
    _check_estimator(est)  # the cheap checks first, then the one reliable writability test
    _probe(target)
    page = build_report(est, command=command, alpha=alpha, sensitivity=sensitivity,
                        sensitivity_options=sensitivity_options, treatment_name=treatment_name,
                        outcome_name=outcome_name, title=title)
    _write_atomic(target, page.encode("utf-8"))
    return target


def _probe(target: Path) -> None:
    """Create and remove a file beside the target: the one test of a directory's writability
    that also holds for root and for read-only file systems."""
    fd, tmp = _open_temporary(target)
    os.close(fd)
    os.unlink(tmp)


def _write_atomic(target: Path, data: bytes) -> None:
    """``data`` to a temporary file beside ``target``, synced, then renamed onto it; on any
    failure the temporary file is removed and ``target`` is left as it was."""
    fd, tmp = _open_temporary(target)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if target.exists():
            mode = target.stat().st_mode & 0o777  # a replaced report keeps its permissions
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise CInAError(f"could not write the report to {str(target)!r}: "
                            f"{exc.strerror or exc}; no file was written") from exc
        raise


def _open_temporary(target: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise CInAValidationError(
            f"cannot write the report to {str(target)!r}: {exc.strerror or exc}") from exc
