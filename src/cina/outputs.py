"""What a fitted estimator produces as records and files, and how files are written.

* :func:`to_jsonable` turns results (numpy scalars and arrays, NaN) into plain JSON values.
* :func:`estimate_report` is the one record of a fitted estimate that ``cina estimate --json``
  prints (the effect, its interval, ESS, balance summary, settings, info);
  :func:`format_estimate_report` is its human-readable form (what ``cina estimate`` prints).
* :data:`ESTIMATE_OUTPUTS` lists the files ``cina estimate`` can write (``--weights-out``,
  ``--balance-out``, ``--plot``); each entry says how to check its path before the fit and how
  to write it. A new output kind is one more entry there (the CLI adds its option from it).
* :class:`OutputSet` writes a command's output files all or nothing: every path is checked
  before the computation (not an input, not another output, its directory exists and is
  writable), every file is written to a temporary file in its target's directory, and the
  temporary files are renamed into place only after all of them were written. A failed write
  leaves neither a truncated file nor the outputs written before it.

Appending records to a log that a kill may interrupt is :func:`append_line` (one ``os.write``
on an ``O_APPEND`` descriptor per record, so concurrent or interrupted appends never interleave
inside a line).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .diagnostics import balance_summary
from .errors import CInAValidationError

__all__ = ["to_jsonable", "effect_record", "estimate_report",
           "format_estimate_report", "format_number", "weights_frame", "plot_format",
           "FittedEstimate", "OutputKind", "ESTIMATE_OUTPUTS", "OutputError", "OutputSet",
           "append_line", "write_text_atomic", "repair_jsonl_tail", "read_jsonl",
           "prepare_output_dir", "remove_stale_temporaries", "groups_records", "format_groups_table",
           "write_groups_table"]

N_BENCHMARKS = 5
"""Benchmark covariates listed in the sensitivity lines of the text output (the strongest)."""


class OutputError(CInAValidationError):
    """An output file cannot be written where asked: it is an input or another output, its
    directory is missing or read-only, or the write failed (disk full, file-size limit)."""


# --- JSON ------------------------------------------------------------------------------------
def to_jsonable(value):
    """Plain JSON values: numpy scalars and arrays unwrapped, NaN/inf as None, tuples as lists,
    unknown objects as their ``str``."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


# --- the estimate's record -------------------------------------------------------------------
def effect_record(result, *, alpha: float, method: str, estimator: str, covariates,
                  dropped_constant, balance_table, params: dict, source: dict | None = None,
                  warnings: Iterable[str] = ()) -> dict:
    """The JSON-ready record of one estimate, whichever path computed it (an in-memory
    estimator: :func:`estimate_report`; a distributed fit:
    :meth:`cina.distributed.result.DistributedEffectResult.to_report`).

    Keys: ``ate`` (the estimate whatever the estimand, kept for scripts), every key of
    ``result.to_dict`` (estimate, se, ci_low, ci_high, alpha, n, ESS per arm, seconds, ...),
    ``level``, ``method``, ``estimator``, the ``source`` entries (file and column names for the
    CLI), ``covariates``, ``dropped_constant``, ``balance`` (the summary of ``balance_table``;
    None for a method without weights), ``params``, ``info`` and ``warnings``.
    """
    base = result.to_dict(alpha)
    report = {
        "ate": base["estimate"],
        **base,
        "level": 1 - alpha,
        "method": method,
        "estimator": estimator,
        **(source or {}),
        "covariates": list(covariates),
        "dropped_constant": list(dropped_constant),
        "balance": None if balance_table is None else balance_summary(balance_table),
        "params": dict(params),
        # what the method chose and did (lam_rel, bandwidth, refinement steps, timings, ...)
        "info": dict(getattr(result, "info", None) or {}),
        "warnings": list(warnings),
    }
    return to_jsonable(report)


def estimate_report(estimator, data, *, alpha: float = 0.05, method: str | None = None,
                    source: dict | None = None, warnings: Iterable[str] = ()) -> dict:
    """The JSON-ready record of a fitted estimator (the keys of :func:`effect_record`)."""
    result = estimator.result_
    return effect_record(
        result, alpha=alpha,
        method=str(getattr(estimator, "method_name", None) or method or result.method),
        estimator=type(estimator).__name__, covariates=data.feature_names,
        dropped_constant=data.dropped_constant,
        balance_table=estimator.balance_table() if result.weights is not None else None,
        params=estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {},
        source=source, warnings=warnings)


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


def _short_list(names: list[str], limit: int, count: bool = False) -> str:
    shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)"
                                       if len(names) > limit else "")
    return f"{len(names)}: {shown}" if count else shown


_ESTIMAND_NAMES = {"ATE": "average treatment effect", "ATT": "average effect on the treated"}


def _sensitivity_lines(sens: dict, width: int) -> list[str]:
    """The sensitivity analysis (:meth:`cina.sensitivity.SensitivityResult.to_dict`) in the
    text output: robustness values, the bound's scale and the strongest benchmarks."""
    f = format_number
    pad = " " * (2 + width)
    level = round(100 * (1 - sens["alpha"]), 4)
    lines = [f"  {'sensitivity':<{width}}robustness value {100 * sens['rv']:.2f}% (estimate to "
             f"0), {100 * sens['rv_alpha']:.2f}% ({level:g}% CI to include 0)",
             f"{pad}|bias| <= S sqrt(r2_y r2_d / (1 - r2_d)), S = {f(sens['scale'])}, rho = "
             f"{sens['rho']:g} (docs/sensitivity.md)"]
    bench = [b for b in sens["benchmarks"] if b.get("bias_bound_1x") is not None]
    if bench:
        bench = sorted(bench, key=lambda b: -b["bias_bound_1x"])[:N_BENCHMARKS]
        name_w = max(max(len(b["covariate"]) for b in bench), 23)
        lines.append(f"{pad}{'a confounder as strong as':<{name_w + 2}}  {'r2_y':>7}  "
                     f"{'r2_d':>7}   {level:g}% CI")
        for b in bench:
            lines.append(f"{pad}  {b['covariate']:<{name_w}}  {f(b['r2_y'], 3):>7}  "
                         f"{f(b['r2_d'], 3):>7}   [{f(b['ci_lower_1x'])}, "
                         f"{f(b['ci_upper_1x'])}]")
    failed = [b for b in sens["benchmarks"] if b.get("bias_bound_1x") is None]
    for b in failed:
        lines.append(f"{pad}  {b['covariate']}: not available ({b.get('note', '')})")
    if sens.get("benchmark_note"):
        lines.append(f"{pad}{sens['benchmark_note']}")
    return lines


def format_estimate_report(report: dict, title: str | None = None) -> str:
    """The human-readable form of :func:`estimate_report`'s record (``cina estimate``)."""
    f = format_number
    effect = report["estimand"].upper()
    level = round(100 * report["level"], 4)
    lines = [title or f"cina estimate: {report.get('file', '')}"]
    treated = (f"; treated: {report['treatment']} == {report['treated_level']!r}"
               if report.get("treated_level") is not None else "")
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
    bias = report.get("bias_sd") or 0.0
    spread = f"se {f(report['se'])}" + (f", bias sd {f(bias)}" if bias > 0 else "")
    rows.append(("estimate", f"{effect} = {f(report['estimate'])}   {ci}   {spread}"))
    stack = report["info"].get("stack_weights")
    if stack:
        arms = []
        for arm, label in (("arm0", "control"), ("arm1", "treated")):
            used = sorted(((w, k) for k, w in stack[arm].items() if w >= 0.005), reverse=True)
            arms.append(f"{label} " + ", ".join(f"{k} {w:.2f}" for w, k in used))
        rows.append(("outcome", "stacked model; " + "; ".join(arms)))
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
        if report["info"].get("metric") == "relevance" and bal["n_over_after"]:
            lines.append(f"{pad}(relevance key map: covariates are balanced as far as the "
                         f"outcome depends on them;")
            lines.append(f"{pad} the outcome model adjusts for every covariate: "
                         f"docs/accuracy.md)")
    else:
        lines.append(f"  {'balance':<{width}}n/a (this method does not produce weights)")
    if report["dropped_constant"]:
        lines.append(f"  {'dropped':<{width}}constant covariates: "
                     f"{_short_list(report['dropped_constant'], 10)}")
    if report.get("sensitivity"):
        lines += _sensitivity_lines(report["sensitivity"], width)
    setup = report["info"].get("seconds_setup")
    lines.append(f"  {'time':<{width}}{report['seconds']:.2f} s (fit)"
                 + (f" + {setup:.2f} s loading the model (once per process)" if setup else ""))
    if report.get("warnings"):
        lines.append(f"  ({len(report['warnings'])} warning(s) on stderr)")
    return "\n".join(lines)


# --- the files of an estimate ----------------------------------------------------------------
@dataclass(frozen=True)
class FittedEstimate:
    """A fitted estimator with the validated data it was fitted on and its report record."""

    estimator: Any
    data: Any
    report: dict
    sensitivity: Any = None  # a cina.sensitivity.SensitivityResult when one was computed
    command: str | None = None  # the command line that gives this fit (shown by --report)

    @property
    def has_weights(self) -> bool:
        return self.estimator.result_.weights is not None


def weights_frame(estimator, data):
    """One row per input row, in input order: ``row`` (the data's index: the 0-based data row
    of a file), ``treatment`` (1 treated, 0 control) and ``weight`` (sums to 1 per arm)."""
    import pandas as pd

    index = data.index if data.index is not None else np.arange(data.n)
    return pd.DataFrame({"row": np.asarray(index), "treatment": data.t,
                         "weight": estimator.result_.weights})


_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}


def _csv_compression(target: str) -> str | None:
    """The compression pandas would infer from the target's name (the temporary file that is
    actually written has another name)."""
    return _COMPRESSION.get(Path(target).suffix.lower())


def plot_format(path: str) -> str:
    """The figure format a file name asks for (``.pdf`` -> "pdf"; no extension -> "png").

    Raises :class:`OutputError` for an extension matplotlib cannot write, listing those it can,
    and :class:`~cina.errors.MissingDependencyError` when matplotlib is not installed.
    """
    from .plotting import require_matplotlib

    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in supported:
        raise OutputError(
            f"--plot {path!r}: cannot write a figure in the format {suffix!r}; give a file name "
            f"ending in one of {', '.join('.' + s for s in sorted(supported))}")
    return suffix


def _write_weights(fitted: FittedEstimate, tmp: str, target: str) -> None:
    frame = weights_frame(fitted.estimator, fitted.data)
    frame.to_csv(tmp, index=False, compression=_csv_compression(target))


def _write_balance(fitted: FittedEstimate, tmp: str, target: str) -> None:
    fitted.estimator.balance_table().to_csv(tmp, compression=_csv_compression(target))


def _write_plot(fitted: FittedEstimate, tmp: str, target: str) -> None:
    """Draw on a bare Figure with the Agg canvas: no pyplot, no global backend change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plotting import diagnostics_figure

    fig = Figure()
    FigureCanvasAgg(fig)
    diagnostics_figure(fig=fig, estimator=fitted.estimator)
    fig.savefig(tmp, format=plot_format(target), dpi=120)


def _write_report(fitted: FittedEstimate, tmp: str, target: str) -> None:
    """The one-file HTML report (cina.report), with the sensitivity analysis already computed
    for the text output when there is one."""
    from .report import build_report

    page = build_report(
        fitted.estimator, command=fitted.command, alpha=float(fitted.report.get("alpha", 0.05)),
        sensitivity=fitted.sensitivity if fitted.sensitivity is not None else True,
        treatment_name=fitted.report.get("treatment"), outcome_name=fitted.report.get("outcome"))
    Path(tmp).write_text(page, encoding="utf-8")


@dataclass(frozen=True)
class OutputKind:
    """One file ``cina estimate`` can write.

    ``option`` is the command-line option (its argparse destination is the option without the
    dashes, ``-`` read as ``_``); ``write(fitted, tmp, target)`` writes the file to the
    temporary path ``tmp`` (``target`` is the final name, for its extension); ``check(path)``,
    when given, runs before the fit (an unsupported extension, a missing extra);
    ``needs_weights``: only a weighting method can produce it.
    """

    option: str
    metavar: str
    help: str
    description: str
    write: Callable[[FittedEstimate, str, str], None]
    check: Callable[[str], Any] | None = None
    needs_weights: bool = True

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


ESTIMATE_OUTPUTS: list[OutputKind] = [
    OutputKind(
        "--weights-out", "PATH", "write the weights to this CSV",
        "CSV with one row per input row, in file order: row (0-based data row of the file), "
        "treatment (1 treated, 0 control), weight (sums to 1 within each arm)",
        _write_weights),
    OutputKind(
        "--balance-out", "PATH", "write the covariate balance table to this CSV",
        "CSV with one row per covariate: means per arm and absolute standardised mean "
        "differences (SMD) and variance ratios before and after weighting",
        _write_balance),
    OutputKind(
        "--plot", "PATH",
        "write a figure with the love plot and the weight distribution, in the format of the "
        "file's extension (.png, .pdf, .svg, ...; PNG without one)",
        "the love plot and the weight distribution, in the format the extension names (.png, "
        ".pdf, .svg, ...; PNG without an extension; pip install 'cina[plot]')",
        _write_plot, check=plot_format),
    OutputKind(
        "--report", "PATH",
        "write a one-file HTML report (estimate, balance, weights, overlap, sensitivity, "
        "settings; opens offline, prints)",
        "a self-contained HTML page: the estimate in plain words, balance before and after "
        "weighting (love plot, cobalt-style table), the weights, overlap, the sensitivity "
        "analysis (as --sensitivity), every setting, the versions and the command",
        _write_report),
]
"""The files ``cina estimate`` can write, in the order they are written."""


# --- all-or-nothing files --------------------------------------------------------------------
def _same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file: the same inode when both exist (hard and symbolic
    links, relative paths), else the same resolved path."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@dataclass
class _Planned:
    label: str
    path: str


class OutputSet:
    """The output files of one command, written all or nothing.

    ``declare(label, path)`` checks a path at once, before any computation: it must not name
    an input (``inputs``) or another declared output (compared as files: symbolic and hard
    links and relative paths are resolved), must not be a directory, and its directory must
    exist and accept a new file. ``commit(writers)`` then writes every declared file to a
    temporary file beside its target and renames them into place only after all were written;
    on any failure it removes the temporary files, leaves the targets as they were and raises
    :class:`OutputError` (for an ``OSError``) or the writer's own exception.
    """

    def __init__(self, inputs: Iterable = ()):
        self.inputs = [os.fspath(p) for p in inputs if p is not None]
        self.planned: list[_Planned] = []

    def declare(self, label: str, path) -> str:
        path = os.path.expanduser(os.fspath(path))
        if not path:
            raise OutputError(f"{label}: the path is empty")
        for src in self.inputs:
            if _same_file(path, src):
                raise OutputError(
                    f"{label} {path!r} is the input file {src!r}; refusing to overwrite the "
                    "input (give another path)")
        for other in self.planned:
            if _same_file(path, other.path):
                raise OutputError(
                    f"{label} {path!r} and {other.label} {other.path!r} are the same file; give "
                    "each output its own path")
        p = Path(path)
        if p.is_dir():
            raise OutputError(f"{label} {path!r} is a directory; give a file name")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(f"{label} {path!r}: the directory {str(parent)!r} does not exist")
        if p.exists() and not os.access(p, os.W_OK):
            raise OutputError(f"{label} {path!r} exists and is read-only")
        try:  # the one reliable test of a directory's writability: create a file in it
            fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=parent)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(f"{label} {path!r}: cannot create a file in {str(parent)!r} "
                              f"({exc.strerror or exc})") from None
        self.planned.append(_Planned(label, path))
        return path

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.planned]

    def commit(self, writers: dict[str, Callable[[str], None]], note: str = "") -> list[str]:
        """Write every declared output with ``writers[label](tmp_path)``; returns the paths.

        ``note`` is appended to the error message of a failed write (the CLI puts the estimate
        there, so that a long fit is never lost to a full disk)."""
        missing = [p.label for p in self.planned if p.label not in writers]
        if missing:
            raise ValueError(f"no writer for the declared outputs {missing}")
        staged: list[tuple[str, str]] = []
        try:
            for plan in self.planned:
                target = Path(plan.path)
                parent = target.parent if str(target.parent) else Path(".")
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
                os.close(fd)
                staged.append((tmp, plan.path))
                try:
                    writers[plan.label](tmp)
                    with open(tmp, "rb+") as fh:
                        os.fsync(fh.fileno())
                    mode = (os.stat(plan.path).st_mode & 0o777 if target.exists()
                            else _umask_mode())
                    os.chmod(tmp, mode)
                except OSError as exc:
                    reason = exc.strerror or str(exc)
                    raise OutputError(
                        f"cannot write {plan.label} {plan.path!r}: {reason}; no output file was "
                        f"written{note}") from None
            for tmp, target in staged:
                os.replace(tmp, target)
            staged = []
        finally:
            for tmp, _ in staged:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        return [p.path for p in self.planned]


def prepare_output_dir(path, what: str, purpose: str) -> Path:
    """Create the folder ``path`` if needed and check that files can be created in it, before
    a command's work starts; :class:`OutputError` naming ``what`` (e.g. "--out") and the
    reason otherwise (``purpose`` completes "give a folder ...")."""
    folder = Path(os.path.expanduser(os.fspath(path)))
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {str(folder)!r} is a file; give a folder {purpose}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{what} {str(folder)!r}: cannot create files there "
                          f"({exc.strerror or exc})") from None
    return folder


def remove_stale_temporaries(folder, names: Iterable[str]) -> list[str]:
    """Delete the temporary files that a killed :class:`OutputSet` commit (or checkpoint save)
    left in ``folder`` for the target file ``names`` (``.NAME.XXXXXXXX.tmp``); returns their
    names. Only for folders that one command owns (a run directory, a benchmark folder)."""
    import re

    folder = Path(folder)
    wanted = set(names)
    pattern = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = pattern.match(entry.name)
        if m and m.group("name") in wanted and entry.is_file():
            try:
                entry.unlink()
                removed.append(entry.name)
            except OSError:
                pass
    return removed


def write_text_atomic(path, text: str) -> None:
    """Replace ``path`` by a file holding ``text`` (temporary file + rename: a reader or a kill
    sees the old file or the new one, never a part)."""
    out = OutputSet()
    out.declare(str(path), path)
    out.commit({str(path): lambda tmp: Path(tmp).write_text(text, encoding="utf-8")})


def append_line(path, line: str) -> None:
    """Append one record (``line`` without its newline) to a line-oriented log with a single
    ``os.write`` on an ``O_APPEND`` descriptor: an interrupted or concurrent append never
    interleaves with another record. A short write (disk full) raises ``OSError``."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {os.fspath(path)!r}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_jsonl_tail(path) -> bytes | None:
    """Make a JSON-lines log end with a complete line before the next :func:`append_line`.

    A log whose last byte is not a newline was cut by a kill during an append (or written by
    hand): a last line that parses as JSON is kept and ended with a newline; a torn one is cut
    off and returned (the caller warns), so the next record never glues onto it. Returns None
    when nothing was cut."""
    import json

    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return None
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) == b"\n":
            return None
        # read back to the last newline (a record is small; read in blocks from the end)
        start, block = size, 65536
        tail = b""
        while start > 0:
            lo = max(0, start - block)
            os.lseek(fd, lo, os.SEEK_SET)
            chunk = os.read(fd, start - lo)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                tail = chunk[cut + 1:] + tail
                start = lo + cut + 1
                break
            tail = chunk + tail
            start = lo
        try:
            json.loads(tail.decode("utf-8"))
            complete = True
        except (UnicodeDecodeError, json.JSONDecodeError):
            complete = False
        if complete:
            os.lseek(fd, size, os.SEEK_SET)
            os.write(fd, b"\n")
            os.fsync(fd)
            return None
        os.ftruncate(fd, start)
        os.fsync(fd)
        return tail
    finally:
        os.close(fd)


def read_jsonl(path) -> tuple[list[dict], list[int]]:
    """The JSON objects of a JSON-lines file, and the (1-based) numbers of the lines that are
    not a JSON object (a torn last line, a damaged line), which the caller reports."""
    import json

    records: list[dict] = []
    bad: list[int] = []
    if not os.path.exists(path):
        return records, bad
    with open(path, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad.append(i)
                continue
            if isinstance(rec, dict):
                records.append(rec)
            else:
                bad.append(i)
    return records, bad


# --- the table of many groups (cina estimate --by) ---------------------------------------------
def groups_records(table) -> list[dict]:
    """One JSON-ready record per group of :func:`cina.groups.estimate_by`'s table."""
    return [to_jsonable(rec) for rec in table.to_dict(orient="records")]


def format_groups_table(table, *, title: str = "", max_rows: int = 200) -> str:
    """The text form of a groups table (``cina estimate --by``): one line per group with the
    estimate, its interval and the ESS, then the groups that were not estimated and why."""
    f = format_number
    ok = table[table["status"] == "ok"]
    level = round(100 * (1 - float(table.attrs.get("alpha", 0.05))), 4)
    lines = [title] if title else []
    lines.append(f"  {len(ok)} of {len(table)} groups estimated "
                 f"({table.attrs.get('method', '')}, {str(table.attrs.get('estimand', '')).upper()}"
                 f"; {level:g}% intervals)")
    name_w = max([len(str(g)) for g in table["group"]] + [5])
    lines.append(f"  {'group':<{name_w}}  {'n':>7}  {'treated':>7}  {'estimate':>11}  "
                 f"{'interval':>25}  {'ESS t':>7}  {'ESS c':>7}  {'max|SMD|':>8}")
    for _, r in ok.head(max_rows).iterrows():
        ci = f"[{f(r['ci_low'])}, {f(r['ci_high'])}]"
        lines.append(f"  {str(r['group']):<{name_w}}  {int(r['n']):>7}  {int(r['n_treated']):>7}  "
                     f"{f(r['estimate']):>11}  {ci:>25}  {f(r['ess_treated'], 4):>7}  "
                     f"{f(r['ess_control'], 4):>7}  {f(r['max_smd_after'], 3):>8}"
                     + (f"  ({r['warnings']})" if r["warnings"] else ""))
    if len(ok) > max_rows:
        lines.append(f"  ... {len(ok) - max_rows} more (--groups-out FILE writes them all)")
    skipped = table[table["status"] != "ok"]
    for _, r in skipped.head(max_rows).iterrows():
        lines.append(f"  {str(r['group']):<{name_w}}  not estimated: {r['status']}")
    if len(skipped) > max_rows:
        lines.append(f"  ... {len(skipped) - max_rows} more groups not estimated")
    return "\n".join(lines)


def write_groups_table(table, tmp: str, target: str) -> None:
    """Write a groups table to the temporary path ``tmp``: JSON lines when ``target`` ends in
    .jsonl or .json, else CSV (compressed as the name says: .csv.gz, ...)."""
    import json

    if Path(target).suffix.lower() in (".jsonl", ".json"):
        with open(tmp, "w", encoding="utf-8") as fh:
            for rec in groups_records(table):
                fh.write(json.dumps(rec, allow_nan=False) + "\n")
        return
    table.to_csv(tmp, index=False, compression=_csv_compression(target))
