"""One benchmark command: check the output folder, run the suites, log the command, write the
report (what ``cina bench`` does, callable from Python)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..outputs import append_line, prepare_output_dir, remove_stale_temporaries

__all__ = ["spread", "prepare_out_dir", "BenchOutcome", "run_and_report", "report_only"]


def spread(specs: list, k: int | None) -> list:
    """At most ``k`` items of ``specs`` spread evenly (all of them when k is None or large)."""
    if k is None or k >= len(specs):
        return list(specs)
    import numpy as np

    idx = sorted(set(np.round(np.linspace(0, len(specs) - 1, k)).astype(int).tolist()))
    return [specs[i] for i in idx]


def prepare_out_dir(out) -> Path:
    """Create the output folder if needed and check that files can be created in it, before
    anything runs; :class:`~cina.outputs.OutputError` (exit code 2 in the CLI) otherwise."""
    out = prepare_output_dir(out, "--out", "for the cache and report")
    from .report import REPORT_FILES

    remove_stale_temporaries(out, REPORT_FILES)  # left by a run killed while writing its report
    return out


@dataclass
class BenchOutcome:
    """What a benchmark command did: item counts (None when interrupted before any count),
    whether it was interrupted, its wall time and the report's files."""

    counts: dict | None
    interrupted: bool
    wall_s: float
    report: dict = field(default_factory=dict)


def _log_command(out: Path, started: str, wall: float, command: str, done: str) -> None:
    from .report import COMMANDS_LOG

    append_line(out / COMMANDS_LOG, f"{started}  {wall:8.1f} s  `{command}`  ({done})")


def run_and_report(cfg, *, command: str, plots: bool = True,
                   suite_lister: Callable | None = None) -> BenchOutcome:
    """Run ``cfg`` (a :class:`~cina.bench.runner.BenchConfig`), append ``command`` to the
    folder's command log and rebuild the report from the whole cache. An interrupt (Ctrl-C)
    keeps the finished items, still writes the report, and is reported in the outcome."""
    from .report import write_report
    from .runner import run_bench

    out = prepare_out_dir(cfg.out)
    start = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    interrupted = False
    try:
        counts = run_bench(cfg, suite_lister=suite_lister)
    except KeyboardInterrupt:
        interrupted = True
        counts = None
    wall = time.perf_counter() - start
    done = "interrupted" if interrupted else (
        f"{counts['computed']} computed, {counts['cached']} cached, {counts['failed']} failed")
    _log_command(out, started, wall, command, done)
    paths = write_report(out, plots=plots)
    return BenchOutcome(counts=counts, interrupted=interrupted, wall_s=wall, report=paths)


def report_only(out, *, plots: bool = True) -> dict:
    """Rebuild the report of a folder from its cache; returns the report's files."""
    from .report import write_report

    return write_report(prepare_out_dir(out), plots=plots)
