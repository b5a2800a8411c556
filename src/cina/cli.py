"""The ``cina`` command line.

``cina estimate FILE --treatment COL --outcome COL`` reads a data file, fits one estimator and
prints the effect, its interval, effective sample sizes and a balance summary (or one JSON
object with ``--json``). ``cina methods`` lists the estimators.

The CLI holds no statistics of its own: it parses arguments, calls :func:`cina.io.read_table`,
:func:`cina.io.select_columns`, :func:`cina.registry.make_estimator`, input validation and
``fit_validated``, and formats what the estimator returns.

Exit codes: 0 success; 2 a user error (bad arguments, an unreadable file, invalid data), printed
as ``error: <message>`` on stderr without a traceback; 1 a failure inside cina (a solver that did
not converge, a corrupt model checkpoint). Warnings print as ``warning: <message>`` on stderr.

Adding a subcommand
-------------------
Write a module (say ``cina/bench/cli.py``) with ``add_arguments(parser)`` and
``run(args) -> int``, keep its heavy imports inside ``run``, and register it here with one
function appended to :data:`SUBCOMMANDS`::

    def _add_bench(subparsers):
        from .bench import cli as bench_cli

        p = subparsers.add_parser("bench", help="run the benchmark suites",
                                  description=bench_cli.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        bench_cli.add_arguments(p)
        p.set_defaults(handler=bench_cli.run)

``main`` turns every :class:`~cina.errors.CInAValidationError` raised by a handler into exit
code 2 and prints warnings, so handlers only compute and print.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .errors import CInAError, CInAValidationError, MissingDependencyError
from .io import SUPPORTED_EXTENSIONS, read_table, select_columns
from .train.cli import add_pretrain_parser

__all__ = ["main", "build_parser", "DEFAULT_METHOD", "SUBCOMMANDS", "UsageError",
           "format_number"]

DEFAULT_METHOD = "exact"
"""Method used by ``cina estimate`` when ``--method`` is not given."""

BALANCE_THRESHOLD = 0.1
"""|SMD| above which a covariate counts as imbalanced in the summaries."""

N_WORST = 5
"""Covariates listed as the worst balanced."""

# CLI option -> estimator parameter. Only passed when given, and only to methods that accept it.
ESTIMATOR_OPTIONS = {
    "--estimand": "estimand",
    "--balance": "balance",
    "--lam-rel": "lam_rel",
    "--bandwidth": "bandwidth",
    "--max-iter": "max_iter",
}

_SILENT_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class UsageError(CInAValidationError):
    """A command-line argument that cannot be used (reported with exit code 2)."""


class _ArgumentError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so ``main`` returns its exit code."""

    def error(self, message):
        raise _ArgumentError(self, message)


# --- small helpers ---------------------------------------------------------------------------
def format_number(x, digits: int = 5) -> str:
    """``digits`` significant digits, fixed-point for ordinary magnitudes; "n/a" for None/NaN."""
    if x is None:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 10 ** (digits + 2) or ax < 1e-4:
        return f"{x:.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(ax)))
    return f"{x:.{decimals}f}"


def _jsonable(value):
    """Plain JSON values: numpy scalars unwrapped, NaN/inf as null, unknown objects as str."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


@contextlib.contextmanager
def _print_warnings(seen: list[str]) -> Iterator[None]:
    """Collect warnings raised inside the block and print each once as ``warning: ...``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, _SILENT_WARNINGS):
                    continue
                msg = str(w.message)
                if msg not in seen:
                    seen.append(msg)
                    print(f"warning: {msg}", file=sys.stderr)


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1); received {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1); received {text!r}")
    return value


def _positive_or_auto(text: str):
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number or 'auto'; received {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number; received {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer; received {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; received {text!r}")
    return value


def _bandwidth(text: str):
    from .balancing import BANDWIDTH_RULES

    if text in BANDWIDTH_RULES:
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number or one of {', '.join(BANDWIDTH_RULES)}; "
            f"received {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number; received {text!r}")
    return value


def _covariate_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    names = [part.strip() for value in values for part in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UsageError("--covariates is empty; give comma-separated column names, or leave it "
                         "out to use every column except the treatment and the outcome")
    return names


def _treated_level(t, value: str | None):
    """The treatment level the string ``value`` stands for (``"2"`` -> ``2.0`` in a numeric
    column, ``"true"`` -> ``True``); ``value`` itself when no level matches (validation then
    lists the levels)."""
    if value is None:
        return None
    levels = list(dict.fromkeys(v for v in t.dropna().tolist()))
    for level in levels:
        if isinstance(level, str) and level == value:
            return level
    for level in levels:
        if str(level) == value or (isinstance(level, bool) and str(level).lower() == value.lower()):
            return level
    try:
        number = float(value)
    except ValueError:
        return value
    for level in levels:
        if isinstance(level, (int, float)) and not isinstance(level, bool) and level == number:
            return level
    return value


def _check_output_path(option: str, path: str | None) -> None:
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {path!r} is a directory; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option} {path!r}: the directory {str(parent)!r} does not exist")


def _write(option: str, path: str, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as exc:
        raise UsageError(f"cannot write {option} {path!r}: {exc.strerror or exc}") from None


# --- the registry of estimators ------------------------------------------------------------
def _method_names() -> list[str]:
    from .registry import available_methods

    return [str(m) for m in available_methods()]


def _accepted_params(est) -> set[str]:
    if hasattr(est, "get_params"):
        return set(est.get_params(deep=False))
    import inspect

    return set(inspect.signature(type(est).__init__).parameters) - {"self"}


def _build_estimator(method: str, options: dict[str, object]):
    """``make_estimator(method, **params)`` with the options this method accepts; an option it
    does not accept is a :class:`UsageError`. Name matching is the registry's."""
    from .registry import make_estimator

    try:
        probe = make_estimator(method)
    except CInAValidationError as exc:
        names = _method_names()
        near = difflib.get_close_matches(str(method).lower(), names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise UsageError(f"{exc}{hint} (see `cina methods`)") from None
    except ImportError as exc:
        if isinstance(exc, MissingDependencyError):
            raise
        raise MissingDependencyError(
            f"method {method!r} needs a package that is not installed ({exc})") from None
    accepted = _accepted_params(probe)
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


# --- cina estimate ---------------------------------------------------------------------------
ESTIMATE_DESCRIPTION = f"""\
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

ESTIMATE_EPILOG = """\
outputs:
  --weights-out  CSV with one row per input row, in file order: row (0-based data row of the
                 file), treatment (1 treated, 0 control), weight (sums to 1 within each arm)
  --balance-out  CSV with one row per covariate: means per arm and absolute standardised mean
                 differences (SMD) and variance ratios before and after weighting
  --plot         PNG with the love plot and the weight distribution (pip install 'cina[plot]')

--balance, --lam-rel and --bandwidth apply to the CInA methods only: an option the chosen
method does not accept is an error, as is --estimand att for a method without the ATT.

exit codes: 0 success, 2 user error (message on stderr as "error: ..."), 1 internal failure

example:
  cina estimate examples/lalonde_psid.csv --treatment treat --outcome re78 --estimand att
"""


def _add_estimate(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate", help="estimate a treatment effect from a data file",
        description=ESTIMATE_DESCRIPTION, epilog=ESTIMATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
    est.add_argument("--method", "-m", default=DEFAULT_METHOD, metavar="NAME",
                     help=f"estimation method (default: {DEFAULT_METHOD}); `cina methods` "
                          "lists them")
    est.add_argument("--estimand", choices=("ate", "att"), default=None,
                     help="ate: average effect over all units (the default); att: average "
                          "effect on the treated")
    est.add_argument("--balance", choices=("target", "mutual"), default=None,
                     help="CInA methods: balance each arm to the estimand's population "
                          "(target, default) or the arms to each other (mutual)")
    est.add_argument("--lam-rel", type=_positive_or_auto, default=None, metavar="X",
                     help="CInA methods: relative ridge penalty of the weights (default: auto)")
    est.add_argument("--bandwidth", type=_bandwidth, default=None, metavar="X",
                     help="CInA methods: kernel bandwidth, a positive number or median (the "
                          "default), sqrt_d, d")
    est.add_argument("--max-iter", type=_nonnegative_int, default=None, metavar="K",
                     help="CInA fit and zero-shot: iteration cap (zero-shot: weight-tied "
                          "refinement steps after the trained ones, 0 = the trained steps only, "
                          "fastest; default: the method's own)")
    out = p.add_argument_group("output")
    out.add_argument("--alpha", type=_alpha, default=0.05,
                     help="the interval is a (1 - alpha) confidence interval (default: 0.05)")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object (keys ate, ci_low, ci_high, se, n, n_treated, "
                          "n_control, ess_treated, ess_control, method, estimand, seconds, "
                          "balance, ...) and nothing else on stdout; \"ate\" holds the estimate "
                          "whatever the estimand")
    out.add_argument("--weights-out", metavar="PATH", help="write the weights to this CSV")
    out.add_argument("--balance-out", metavar="PATH",
                     help="write the covariate balance table to this CSV")
    out.add_argument("--plot", metavar="PATH",
                     help="write a PNG with the love plot and the weight distribution")
    p.set_defaults(handler=run_estimate)


def _given_options(args) -> dict[str, object]:
    given = {}
    for option, param in ESTIMATOR_OPTIONS.items():
        value = getattr(args, param)
        if value is not None:
            given[option] = value
    return given


def _balance_summary(table) -> dict:
    from .diagnostics import balance_summary

    summary = balance_summary(table, threshold=BALANCE_THRESHOLD)
    worst = table.sort_values("smd_after", ascending=False).head(N_WORST)
    summary["threshold"] = BALANCE_THRESHOLD
    summary["worst"] = [
        {"covariate": str(name), "smd_before": float(row.smd_before),
         "smd_after": float(row.smd_after)} for name, row in worst.iterrows()]
    return summary


def _report(args, est, data, balance: dict | None) -> dict:
    result = est.result_
    out = result.to_dict(args.alpha)
    out = {
        "ate": out["estimate"],
        **out,
        "level": 1 - args.alpha,
        "method": str(getattr(est, "method_name", None) or args.method),
        "estimator": type(est).__name__,
        "file": str(args.file),
        "treatment": args.treatment,
        "outcome": args.outcome,
        "treated_level": args.treated_level,
        "covariates": list(data.feature_names),
        "dropped_constant": list(data.dropped_constant),
        "balance": balance,
        "params": est.get_params(deep=False) if hasattr(est, "get_params") else {},
        # what the method chose and did (lam_rel, bandwidth, refinement steps, timings, ...)
        "info": dict(getattr(result, "info", None) or {}),
    }
    return _jsonable(out)


_ESTIMAND_NAMES = {"ATE": "average treatment effect", "ATT": "average effect on the treated"}


def _print_readable(report: dict, warned: list[str]) -> None:
    f = format_number
    effect = report["estimand"].upper()
    level = round(100 * report["level"], 4)
    lines = [f"cina estimate: {report['file']}"]
    treated = (f"; treated: {report['treatment']} == {report['treated_level']!r}"
               if report["treated_level"] is not None else "")
    rows = [
        ("method", f"{report['method']} ({report['estimator']})"),
        ("estimand", f"{effect} ({_ESTIMAND_NAMES.get(effect, effect)})"),
        ("units", f"N = {report['n']} ({report['n_treated']} treated, "
                  f"{report['n_control']} control){treated}"),
        ("covariates", _short_list(report["covariates"], 8, count=True)),
    ]
    if report["ci_low"] is not None:
        ci = f"{level:g}% CI [{f(report['ci_low'])}, {f(report['ci_high'])}]"
    else:
        ci = f"{level:g}% CI n/a"
    rows.append(("estimate", f"{effect} = {f(report['estimate'])}   {ci}   se {f(report['se'])}"))
    if report["ess_treated"] is not None:
        rows.append(("ESS", f"treated {report['ess_treated']:.1f} of {report['n_treated']}, "
                            f"control {report['ess_control']:.1f} of {report['n_control']}"))
    else:
        rows.append(("ESS", "n/a (this method does not produce weights)"))
    width = max(len(k) for k, _ in rows) + 3
    lines += [f"  {k:<{width}}{v}" for k, v in rows]
    bal = report["balance"]
    pad = " " * (2 + width)
    if bal is not None:
        k = bal["n_covariates"]
        cells = [("|SMD|", "before", "after"),
                 ("max", f(bal["max_smd_before"], 3), f(bal["max_smd_after"], 3)),
                 ("mean", f(bal["mean_smd_before"], 3), f(bal["mean_smd_after"], 3)),
                 (f"over {bal['threshold']:g}", f"{bal['n_over_before']}/{k}",
                  f"{bal['n_over_after']}/{k}")]
        for i, (label, before, after) in enumerate(cells):
            lead = f"  {'balance':<{width}}" if i == 0 else pad
            lines.append(f"{lead}{label:<10}{before:>10}{after:>10}")
        if bal["worst"]:
            lines.append(f"{pad}worst after weighting:")
            name_w = max(len(w["covariate"]) for w in bal["worst"])
            for w in bal["worst"]:
                lines.append(f"{pad}  {w['covariate']:<{name_w}}  {f(w['smd_after'], 3):>8}"
                             f"  (before {f(w['smd_before'], 3)})")
    else:
        lines.append(f"  {'balance':<{width}}n/a (this method does not produce weights)")
    if report["dropped_constant"]:
        lines.append(f"  {'dropped':<{width}}constant covariates: "
                     f"{_short_list(report['dropped_constant'], 10)}")
    setup = report["info"].get("seconds_setup")
    lines.append(f"  {'time':<{width}}{report['seconds']:.2f} s (fit)"
                 + (f" + {setup:.2f} s loading the model (once per process)" if setup else ""))
    if warned:
        lines.append(f"  ({len(warned)} warning(s) on stderr)")
    print("\n".join(lines))


def _short_list(names: list[str], limit: int, count: bool = False) -> str:
    shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)"
                                       if len(names) > limit else "")
    return f"{len(names)}: {shown}" if count else shown


def run_estimate(args) -> int:
    """Handler of ``cina estimate``."""
    from ._validation import validate_inputs

    for option, path in (("--weights-out", args.weights_out),
                         ("--balance-out", args.balance_out), ("--plot", args.plot)):
        _check_output_path(option, path)
    if args.plot is not None:
        from .plotting import require_matplotlib

        require_matplotlib()
    covariates = _covariate_list(args.covariates)
    warned: list[str] = []
    with _print_warnings(warned):
        est = _build_estimator(args.method, _given_options(args))
        df = read_table(args.file)
        X, t, y = select_columns(df, args.treatment, args.outcome, covariates)
        data = validate_inputs(X, t, y, treated_level=_treated_level(t, args.treated_level),
                               treatment_name=args.treatment, outcome_name=args.outcome)
        try:
            est.fit_validated(data)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or ""
            if isinstance(exc, MissingDependencyError) or not missing or \
                    missing.split(".")[0] == "cina":
                raise  # cina's own modules missing is a bug, not a user error
            raise MissingDependencyError(
                f"method {args.method!r} needs the package {missing!r}, which is not "
                "installed") from None
        result = est.result_
        has_weights = result.weights is not None
        if not has_weights:
            for option in ("--weights-out", "--balance-out", "--plot"):
                if getattr(args, option[2:].replace("-", "_")) is not None:
                    raise UsageError(f"{option} needs a weighting method; method "
                                     f"{args.method!r} does not produce weights")
        table = est.balance_table() if has_weights else None
        balance = _balance_summary(table) if table is not None else None
        report = _report(args, est, data, balance)
        if args.weights_out is not None:
            import pandas as pd

            index = data.index if data.index is not None else np.arange(data.n)
            frame = pd.DataFrame({"row": np.asarray(index), "treatment": data.t,
                                  "weight": result.weights})
            _write("--weights-out", args.weights_out,
                   lambda: frame.to_csv(args.weights_out, index=False))
        if args.balance_out is not None:
            _write("--balance-out", args.balance_out, lambda: table.to_csv(args.balance_out))
        if args.plot is not None:
            _save_plot(est, args.plot)
    report["warnings"] = list(warned)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        _print_readable(report, warned)
    return 0


def _save_plot(est, path: str) -> None:
    """Draw on a bare Figure with the Agg canvas: no pyplot, no global backend change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plotting import diagnostics_figure

    fig = Figure()
    FigureCanvasAgg(fig)
    diagnostics_figure(fig=fig, estimator=est, threshold=BALANCE_THRESHOLD)
    _write("--plot", path, lambda: fig.savefig(path, format="png", dpi=120))


# --- cina methods ----------------------------------------------------------------------------
def _add_methods(subparsers) -> None:
    p = subparsers.add_parser(
        "methods", help="list the available estimation methods",
        description="List the estimation methods `cina estimate --method` accepts, with the "
                    "estimator options each one takes.")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=run_methods)


def run_methods(args) -> int:
    """Handler of ``cina methods``."""
    from .registry import make_estimator

    rows = []
    for name in _method_names():
        est = make_estimator(name)
        doc = (type(est).__doc__ or "").strip().splitlines()
        accepted = _accepted_params(est)
        rows.append({
            "name": name,
            "estimator": type(est).__name__,
            "description": doc[0].strip() if doc else "",
            "options": [o for o, p in ESTIMATOR_OPTIONS.items() if p in accepted],
            "default": name == DEFAULT_METHOD,
        })
    if args.json:
        print(json.dumps(rows))
        return 0
    width = max((len(r["name"]) for r in rows), default=4) + 2
    for r in rows:
        mark = " (default)" if r["default"] else ""
        opts = f"  [{' '.join(r['options'])}]" if r["options"] else ""
        print(f"{r['name']:<{width}}{r['estimator']}{mark}: {r['description']}{opts}")
    return 0


# --- cina bench ------------------------------------------------------------------------------
def _add_bench(subparsers) -> None:
    from .bench import cli as bench_cli

    p = subparsers.add_parser("bench", help="run the benchmark suites",
                              description=bench_cli.__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_cli.add_arguments(p)
    p.set_defaults(handler=bench_cli.run)


# --- the parser and main ---------------------------------------------------------------------
SUBCOMMANDS: list[Callable] = [_add_estimate, _add_methods, _add_bench, add_pretrain_parser]
"""Functions ``f(subparsers)`` that each add one subcommand (see the module docstring)."""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="cina",
        description="Average treatment effects with optimal balancing weights (Causal "
                    "Inference with Attention).",
        epilog="Run `cina COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"cina {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``cina`` command line; returns the exit code (never raises for user errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        print("error: a command is required", file=sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except (CInAValidationError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CInAError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
