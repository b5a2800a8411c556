"""Run estimation methods on benchmark suites and write a report.

Every method runs on every dataset of the chosen suites with the dataset's estimand (ATT for
LaLonde). Each finished (suite, dataset, method) item is appended at once to OUT/cache.jsonl:
an interrupted run, re-run with the same command, skips the finished items (--no-cache
recomputes them). Adding a method later is the same command with the method added to --methods.
A dataset that fails to load, a treatment with one value or an estimator that raises is recorded
as a failure in the results, and the other items still run. The report (OUT/results.csv,
OUT/summary.md, OUT/summary.csv, OUT/ranks.csv, plots) is rebuilt from the whole cache.

suites: ihdp, acic2016, lalonde-cps, lalonde-psid, twins, scm-prior, simulation-a,
        semi-synthetic, ood-dense, ood-mechanism, ood-overlap, ood-wide
groups: real, synthetic, ood, all

exit codes: 0 done (even with recorded failures), 2 unknown suite or method (nothing run),
            130 interrupted (finished items are kept)

example:
  cina bench --suite real --methods naive,ipw,exact --out benchmarks/results/bench
"""

from __future__ import annotations

import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["add_arguments", "run", "DEFAULT_OUT", "QUICK_DATASETS"]

DEFAULT_OUT = "benchmarks/results/bench"
QUICK_DATASETS = 3


def _positive_int(text: str) -> int:
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text!r}") \
            from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text!r}")
    return v


def add_arguments(parser) -> None:
    parser.add_argument("--suite", "--suites", dest="suite", metavar="NAMES",
                        help="comma-separated suites and groups (real, synthetic, ood, all)")
    parser.add_argument("--methods", "--method", dest="methods", metavar="NAMES",
                        help="comma-separated methods (`cina methods` lists them)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (cache and report; default: {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true",
                        help=f"at most {QUICK_DATASETS} datasets per suite (a smoke run; same "
                             "items, so they count toward a full run)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute every item even when the cache has it")
    parser.add_argument("--retry-errors", action="store_true",
                        help="recompute items recorded as failures (otherwise skipped)")
    parser.add_argument("--max-datasets", type=_positive_int, default=None, metavar="K",
                        help="at most K datasets per suite, spread evenly over the suite "
                             "(indices round(linspace(0, size - 1, K)))")
    parser.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                        help="BLAS / OpenMP / torch threads (default 1, as ANCHORS)")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild the report from the cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-plots", action="store_true", help="write the report without plots")


def _command(args) -> str:
    parts = ["cina", "bench"]
    if args.suite:
        parts += ["--suite", args.suite]
    if args.methods:
        parts += ["--methods", args.methods]
    parts += ["--out", str(args.out)]
    for flag in ("quick", "no_cache", "retry_errors", "report_only", "no_plots"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    if args.max_datasets is not None:
        parts += ["--max-datasets", str(args.max_datasets)]
    if args.threads != 1:
        parts += ["--threads", str(args.threads)]
    return shlex.join(parts)


def spread(specs: list, k: int | None) -> list:
    """At most ``k`` items of ``specs`` spread evenly (all of them when k is None or large)."""
    if k is None or k >= len(specs):
        return list(specs)
    import numpy as np

    idx = sorted(set(np.round(np.linspace(0, len(specs) - 1, k)).astype(int).tolist()))
    return [specs[i] for i in idx]


def run(args) -> int:
    """Handler of ``cina bench``."""
    from ..errors import CInAValidationError
    from .runner import resolve_methods
    from .suites import resolve_suites, suite_datasets

    out = Path(args.out)
    if args.report_only:
        from .report import write_report

        paths = write_report(out, plots=not args.no_plots)
        print(f"report: {paths['summary_md']}")
        return 0
    if not args.suite or not args.methods:
        raise CInAValidationError("--suite and --methods are required (or --report-only)")
    suites = resolve_suites(args.suite)  # raise before anything runs
    methods = resolve_methods(args.methods)
    k = args.max_datasets
    if args.quick:
        k = min(k, QUICK_DATASETS) if k is not None else QUICK_DATASETS

    from .runner import BenchConfig, limit_threads, run_bench

    limit_threads(args.threads)
    cfg = BenchConfig(suites=suites, methods=methods, out=out, use_cache=not args.no_cache,
                      retry_errors=args.retry_errors, max_datasets=k,
                      progress=False if args.no_progress else None)
    command = _command(args)
    start = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    interrupted = False
    try:
        counts = run_bench(cfg, suite_lister=lambda s: spread(suite_datasets(s), k))
    except KeyboardInterrupt:
        interrupted = True
        counts = None
    wall = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    from .report import COMMANDS_LOG, write_report

    with open(out / COMMANDS_LOG, "a", encoding="utf-8") as fh:
        done = "interrupted" if interrupted else (
            f"{counts['computed']} computed, {counts['cached']} cached, "
            f"{counts['failed']} failed")
        fh.write(f"{started}  {wall:8.1f} s  `{command}`  ({done})\n")
    paths = write_report(out, plots=not args.no_plots)
    if interrupted:
        print(f"interrupted after {wall:.1f} s; finished items are cached in {out}; re-run the "
              "same command to resume", file=sys.stderr)
        return 130
    print(f"cina bench: {counts['items']} items ({counts['computed']} computed, "
          f"{counts['cached']} from cache, {counts['failed']} failed) in {wall:.1f} s")
    print(f"report: {paths['summary_md']}")
    return 0
