"""``cina bench``: argument parsing for the benchmark harness (:mod:`cina.bench`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from . import _parsing as types

__all__ = ["NAME", "HELP", "DESCRIPTION", "DEFAULT_OUT", "QUICK_DATASETS", "add_arguments",
           "run"]

NAME = "bench"
HELP = "run the benchmark suites"
DEFAULT_OUT = "benchmarks/results/bench"
QUICK_DATASETS = 3

DESCRIPTION = """\
Run estimation methods on benchmark suites and write a report.

Every method runs on every dataset of the chosen suites with the dataset's estimand (ATT for
LaLonde). Each finished (suite, dataset, method) item is appended at once to OUT/cache.jsonl
(one write per record; a line cut by a kill is dropped with a warning on the next run): an
interrupted run, re-run with the same command, skips the finished items (--no-cache recomputes
them). Adding a method later is the same command with the method added to --methods. A
dataset that fails to load, a treatment with one value or an estimator that raises is recorded
as a failure in the results, and the other items still run. The report (OUT/results.csv,
OUT/summary.md, OUT/summary.csv, OUT/ranks.csv, plots) is rebuilt from the whole cache and
replaces the previous report only once all of its files are written.

suites: ihdp, acic2016, lalonde-cps, lalonde-psid, twins, scm-prior, simulation-a,
        semi-synthetic, ood-dense, ood-mechanism, ood-overlap, ood-wide,
        realistic-psid, realistic-psid-att, realistic-cps, realistic-cps-att, realistic-ihdp,
        realistic-acic, realistic-twins (docs/realistic.md), literature-kang-schafer,
        literature-hainmueller, literature-lunceford-davidian, literature-nie-wager
groups: real, synthetic, ood, all, realistic, literature

exit codes: 0 done (even with recorded failures), 2 unknown suite or method, or an --out folder
            that cannot be written (nothing run), 130 interrupted (finished items are kept)

example:
  cina bench --suite real --methods naive,ipw,exact --out benchmarks/results/bench
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", "--suites", dest="suite", metavar="NAMES",
                        help="comma-separated suites and groups (real, synthetic, ood, all, "
                             "realistic, literature)")
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
    parser.add_argument("--max-datasets", type=types.positive_int, default=None, metavar="K",
                        help="at most K datasets per suite, spread evenly over the suite "
                             "(indices round(linspace(0, size - 1, K)))")
    parser.add_argument("--threads", type=types.positive_int, default=1, metavar="N",
                        help="BLAS / OpenMP / torch threads (default 1: timings comparable "
                             "across machines and with the reference numbers)")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild the report from the cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-plots", action="store_true", help="write the report without plots")


def _command(args) -> str:
    """The command line that reproduces this run (logged in OUT/commands.log)."""
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


def run(args) -> int:
    """Handler of ``cina bench``."""
    from ..bench.harness import report_only, run_and_report, spread
    from ..bench.runner import BenchConfig, limit_threads, resolve_methods
    from ..bench.suites import resolve_suites, suite_datasets
    from ._parsing import UsageError, print_warnings

    if args.report_only:
        with print_warnings([]):
            paths = report_only(args.out, plots=not args.no_plots)
        print(f"report: {paths['summary_md']}")
        return 0
    if not args.suite or not args.methods:
        raise UsageError("--suite and --methods are required (or --report-only)")
    suites = resolve_suites(args.suite)  # raise before anything runs
    methods = resolve_methods(args.methods)
    k = args.max_datasets
    if args.quick:
        k = min(k, QUICK_DATASETS) if k is not None else QUICK_DATASETS
    limit_threads(args.threads)
    cfg = BenchConfig(suites=suites, methods=methods, out=args.out,
                      use_cache=not args.no_cache, retry_errors=args.retry_errors,
                      max_datasets=k, progress=False if args.no_progress else None)
    with print_warnings([]):
        outcome = run_and_report(cfg, command=_command(args), plots=not args.no_plots,
                                 suite_lister=lambda s: spread(suite_datasets(s), k))
    if outcome.interrupted:
        print(f"interrupted after {outcome.wall_s:.1f} s; finished items are cached in "
              f"{args.out}; re-run the same command to resume", file=sys.stderr)
        return 130
    c = outcome.counts
    print(f"cina bench: {c['items']} items ({c['computed']} computed, {c['cached']} from cache, "
          f"{c['failed']} failed) in {outcome.wall_s:.1f} s")
    print(f"report: {outcome.report['summary_md']}")
    return 0
