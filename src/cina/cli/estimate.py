"""``cina estimate FILE --treatment COL --outcome COL``: read, fit one estimator, report.

Argument parsing only: reading is :mod:`cina.io`, fitting the registry's estimators, the
record, its text form and the output files :mod:`cina.outputs` (a new output file is one entry
of :data:`cina.outputs.ESTIMATE_OUTPUTS`; its option, help and epilog line appear here by
themselves).
"""

from __future__ import annotations

import argparse
import json
import textwrap

from .. import outputs
from ..errors import MissingDependencyError
from ..io import SUPPORTED_EXTENSIONS
from . import _parsing as types
from . import _scale
from ._estimators import DEFAULT_METHOD, build_estimator, given_options
from ._parsing import UsageError, print_warnings

__all__ = ["NAME", "HELP", "DESCRIPTION", "EPILOG", "add_arguments", "run"]

NAME = "estimate"
HELP = "estimate a treatment effect from a data file"

DESCRIPTION = f"""\
Estimate the average treatment effect (ATE) or the effect on the treated (ATT) of a binary
treatment from a data file, and print it with its confidence interval, the effective sample
size of each arm and a covariate-balance summary.

Data: FILE is {', '.join(SUPPORTED_EXTENSIONS)} (Parquet needs pip install 'cina[parquet]'),
one row per unit with a header of column names. Covariates are every column except the
treatment and the outcome unless --covariates names them. String and categorical covariates
are one-hot encoded (one 0/1 column per level, named column=level); True/False columns become
0/1; a constant covariate is dropped with a warning. Missing or infinite values are an error
(drop or impute those rows first). The treatment must be coded 0/1 or True/False; with other
codes (e.g. "drug"/"placebo") say which level is the treatment with --treated-level.
"""


def _epilog() -> str:
    width = max(len(k.option) for k in outputs.ESTIMATE_OUTPUTS) + 2
    lines = ["outputs (checked before the fit, written only if everything succeeds; never over",
             "an input file or over each other):"]
    for kind in outputs.ESTIMATE_OUTPUTS:
        body = textwrap.wrap(kind.description, 88 - width - 2)
        lines.append(f"  {kind.option:<{width}}{body[0]}")
        lines += [f"  {'':<{width}}{b}" for b in body[1:]]
    return "\n".join(lines) + """

--balance, --lam-rel and --bandwidth apply to the CInA methods only: an option the chosen
method does not accept is an error, as is --estimand att for a method without the ATT.

exit codes: 0 success, 2 user error (message on stderr as "error: ..."), 1 internal failure

example:
  cina estimate examples/lalonde_psid.csv --treatment treat --outcome re78 --estimand att
"""


EPILOG = _epilog()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="data file (.csv, .csv.gz, .parquet or .dta)")
    data = p.add_argument_group("columns")
    data.add_argument("--treatment", "-t", required=True, metavar="COL",
                      help="binary treatment column (0/1 or True/False, or see --treated-level)")
    data.add_argument("--outcome", "-y", required=True, metavar="COL",
                      help="numeric outcome column")
    data.add_argument("--covariates", "-x", action="append", metavar="C1,C2,...",
                      help="comma-separated covariate columns (may be repeated); default: every "
                           "other column")
    data.add_argument("--treated-level", metavar="VALUE",
                      help="the treatment column's value that marks treated units (the other "
                           "value is control); needed unless the column is 0/1 or True/False")
    est = p.add_argument_group("estimator")
    est.add_argument("--method", "-m", default=None, metavar="NAME",
                     help=f"estimation method (default: {DEFAULT_METHOD}); `cina methods` "
                          "lists them")
    est.add_argument("--estimand", choices=("ate", "att"), default=None,
                     help="ate: average effect over all units (the default); att: average "
                          "effect on the treated")
    est.add_argument("--balance", choices=("target", "mutual"), default=None,
                     help="CInA methods: balance each arm to the estimand's population "
                          "(target, default) or the arms to each other (mutual)")
    est.add_argument("--lam-rel", type=types.positive_or_auto, default=None, metavar="X",
                     help="CInA methods: relative ridge penalty of the weights (default: auto)")
    est.add_argument("--bandwidth", type=types.bandwidth, default=None, metavar="X",
                     help="CInA methods: kernel bandwidth, a positive number or median (the "
                          "default), sqrt_d, d")
    est.add_argument("--max-iter", type=types.nonnegative_int, default=None, metavar="K",
                     help="CInA fit and zero-shot: iteration cap (zero-shot: weight-tied "
                          "refinement steps after the trained ones, 0 = the trained steps only, "
                          "fastest; default: the method's own)")
    est.add_argument("--threads", type=types.thread_count, default=None, metavar="N",
                     help="BLAS / OpenMP / torch threads of the fit: a count, all, or auto (the "
                          "default: one thread up to 2,000 units, else the cores not busy with "
                          "other tasks; the environment variable CINA_NUM_THREADS sets it too)")
    out = p.add_argument_group("output")
    out.add_argument("--alpha", type=types.alpha, default=0.05,
                     help="the interval is a (1 - alpha) confidence interval (default: 0.05)")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object (keys ate, ci_low, ci_high, se, n, n_treated, "
                          "n_control, ess_treated, ess_control, method, estimand, seconds, "
                          "balance, warnings, ...) and nothing else on stdout; \"ate\" holds "
                          "the estimate whatever the estimand")
    out.add_argument("--sensitivity", action="store_true",
                     help="add the sensitivity to an unobserved confounder (omitted-variable-"
                          "bias bounds on the weights: robustness values, benchmarks against "
                          "the covariates) to the output; --report includes it anyway")
    out.add_argument("--benchmarks", metavar="C1,C2,...|none", default=None,
                     help="covariates the sensitivity analysis compares a hidden confounder "
                          "with (one refit each; default: every covariate, or the 8 most "
                          "imbalanced of more than 12; none: no benchmark)")
    for kind in outputs.ESTIMATE_OUTPUTS:
        out.add_argument(kind.option, dest=kind.dest, metavar=kind.metavar, help=kind.help)
    _scale.add_arguments(p)


def _fit(est, data, method: str) -> None:
    try:
        est.fit_validated(data)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if isinstance(exc, MissingDependencyError) or not missing or \
                missing.split(".")[0] == "cina":
            raise  # cina's own modules missing is a bug, not a user error
        raise MissingDependencyError(
            f"method {method!r} needs the package {missing!r}, which is not installed") from None


def _needs_weights(option: str, method: str) -> UsageError:
    return UsageError(f"{option} needs a weighting method; method {method!r} does not produce "
                      "weights")


def _command_line(args) -> str:
    """The ``cina estimate`` command equivalent to ``args`` (every option that differs from its
    default, in the parser's order): what the report shows to reproduce the result."""
    import shlex

    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    words = ["cina", NAME]
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings:  # the file
            words.append(str(value))
        elif value is None or value == action.default or value is False:
            continue
        elif value is True:
            words.append(action.option_strings[0])
        elif isinstance(value, list):
            for v in value:
                words += [action.option_strings[0], str(v)]
        else:
            words += [action.option_strings[0], str(value)]
    return shlex.join(words)


def _benchmarks(args):
    if args.benchmarks is None:
        return None
    if args.benchmarks.strip().lower() == "none":
        return False
    return types.name_list("--benchmarks", [args.benchmarks],
                           "give comma-separated covariate names, or none")


def run(args) -> int:
    """Handler of ``cina estimate``: :func:`_run` under the ``--threads`` setting (the thread
    policy of :mod:`cina._threads`, which every fit follows)."""
    from .._threads import thread_setting

    with thread_setting(getattr(args, "threads", None)):
        return _run(args)


def _run(args) -> int:
    from .._validation import validate_inputs
    from ..io import read_table, resolve_treated_level, select_columns
    from ..outputs import (
        FittedEstimate,
        OutputSet,
        estimate_report,
        format_estimate_report,
        format_number,
    )

    if args.by is not None:  # one effect per group (cina.groups)
        return _scale.run_groups(args)
    if args.groups_out is not None:
        raise UsageError("--groups-out needs --by COL")
    if args.scheduler is not None:  # on a Dask cluster (cina.distributed)
        return _scale.run_distributed(args)
    if args.rank is not None:
        raise UsageError("--rank applies to --scheduler")
    args.method = args.method or DEFAULT_METHOD
    requested = [(kind, getattr(args, kind.dest)) for kind in outputs.ESTIMATE_OUTPUTS
                 if getattr(args, kind.dest, None) is not None]
    files = OutputSet(inputs=[args.file])
    for kind, path in requested:  # every path checked before anything is read or fitted
        files.declare(kind.option, path)
        if kind.check is not None:
            kind.check(path)
    covariates = types.name_list(
        "--covariates", args.covariates, "give comma-separated column names, or leave it out "
        "to use every column except the treatment and the outcome")
    warned: list[str] = []
    with print_warnings(warned):
        est = build_estimator(args.method, given_options(args))
        for kind, _ in requested:
            if kind.needs_weights and not getattr(est, "produces_weights", True):
                raise _needs_weights(kind.option, args.method)
        df = read_table(args.file)
        X, t, y = select_columns(df, args.treatment, args.outcome, covariates)
        data = validate_inputs(X, t, y, treated_level=resolve_treated_level(t, args.treated_level),
                               treatment_name=args.treatment, outcome_name=args.outcome)
        _fit(est, data, args.method)
        result = est.result_
        for kind, _ in requested:
            if kind.needs_weights and result.weights is None:
                raise _needs_weights(kind.option, args.method)
        report = estimate_report(
            est, data, alpha=args.alpha, method=args.method,
            source={"file": str(args.file), "treatment": args.treatment,
                    "outcome": args.outcome, "treated_level": args.treated_level})
        sensitivity = None
        wants_report = any(kind.option == "--report" for kind, _ in requested)
        if args.sensitivity or wants_report or args.benchmarks is not None:
            from ..errors import CInAValidationError
            from ..sensitivity import sensitivity as sensitivity_analysis

            try:
                sensitivity = sensitivity_analysis(est, alpha=args.alpha,
                                                   benchmark_covariates=_benchmarks(args))
            except CInAValidationError:
                if args.sensitivity or args.benchmarks is not None:
                    raise  # asked for: say why it cannot be done
                # --report alone: the report says in its section why it is not available
            if sensitivity is not None:
                report["sensitivity"] = outputs.to_jsonable(sensitivity.to_dict())
        fitted = FittedEstimate(est, data, report, sensitivity=sensitivity,
                                command=_command_line(args))
        lo, hi = report["ci_low"], report["ci_high"]
        note = (f" (the estimate was {report['estimand'].upper()} = "
                f"{format_number(report['estimate'])}, {round(100 * report['level'], 4):g}% CI "
                f"[{format_number(lo)}, {format_number(hi)}])")
        files.commit({kind.option: (lambda tmp, kind=kind, path=path:
                                      kind.write(fitted, tmp, path))
                        for kind, path in requested}, note=note)
    report["warnings"] = list(warned)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        print(format_estimate_report(report))
    return 0
