"""``cina estimate`` at scale: ``--scheduler`` (the fit on a Dask cluster, :mod:`cina.distributed`)
and ``--by`` (one effect per group, :mod:`cina.groups`). Argument handling only."""

from __future__ import annotations

import argparse
import json

from ..errors import CInAValidationError
from . import _parsing as types
from ._estimators import DEFAULT_METHOD
from ._parsing import UsageError, print_warnings

__all__ = ["add_arguments", "run_distributed", "run_groups", "GROUPS_METHOD"]

#: the method of ``--by`` when ``--method`` is not given: the batched zero-shot model
GROUPS_METHOD = "zero-shot"
# outputs of one in-memory fit that the scale paths do not produce
_IN_MEMORY_OUTPUTS = ("plot", "report")


def add_arguments(p: argparse.ArgumentParser) -> None:
    scale = p.add_argument_group("scale (docs/distributed.md)")
    scale.add_argument("--scheduler", metavar="ADDRESS|local", default=None,
                       help="run on a Dask cluster: a scheduler address (tcp://host:8786) or "
                            "local (a LocalCluster on this machine); FILE may then be Parquet "
                            "files ('data/*.parquet', a directory) and --weights-out a "
                            "directory that receives partitioned Parquet; needs pip install "
                            "'cina[dask]'")
    scale.add_argument("--rank", type=types.positive_int, default=None, metavar="M",
                       help="--scheduler: rank of the low-rank (Nystrom) kernel (default: "
                            "the in-memory default)")
    scale.add_argument("--by", metavar="COL", default=None,
                       help="estimate the effect within each group of this column (one line "
                            f"per group; default method {GROUPS_METHOD}, batched); with "
                            "--scheduler the groups are spread over the Dask workers")
    scale.add_argument("--groups-out", metavar="PATH", default=None,
                       help="--by: write the per-group table to this file (.csv, .csv.gz, or "
                            ".jsonl for JSON lines), all or nothing")


def _refuse_outputs(args, what: str, allowed: tuple[str, ...]) -> None:
    from .. import outputs

    for kind in outputs.ESTIMATE_OUTPUTS:
        if getattr(args, kind.dest, None) is not None and kind.dest not in allowed:
            raise UsageError(f"{kind.option} is not available with {what}")
    if getattr(args, "sensitivity", False) or getattr(args, "benchmarks", None) is not None:
        raise UsageError(f"--sensitivity is not available with {what}")


# --- --scheduler ------------------------------------------------------------------------------
def run_distributed(args) -> int:
    """``cina estimate FILES --scheduler ADDRESS``: the fit on a Dask cluster."""
    from ..distributed import require_dask

    require_dask("--scheduler")
    from ..distributed.driver import _expand_paths, fit
    from ..distributed.writer import check_weights_dir
    from ..outputs import OutputSet, format_estimate_report

    method = args.method or DEFAULT_METHOD
    if method != "exact":
        raise UsageError(f"--scheduler runs method 'exact' (on a low-rank kernel); received "
                         f"{method!r}")
    if args.max_iter is not None:
        raise UsageError("--max-iter does not apply to --scheduler (the dual Newton solver "
                         "runs to its tolerance)")
    _refuse_outputs(args, "--scheduler (the weights stay on the cluster)",
                    ("weights_out", "balance_out"))
    files = _expand_paths(args.file)
    if args.weights_out is not None:
        check_weights_dir(args.weights_out, inputs=files)
    out = OutputSet(inputs=files)
    if args.balance_out is not None:
        out.declare("--balance-out", args.balance_out)
    covariates = types.name_list("--covariates", args.covariates, "give comma-separated "
                                 "column names, or leave it out")
    warned: list[str] = []
    with print_warnings(warned):
        result = fit(files, args.treatment, args.outcome, covariates, scheduler=args.scheduler,
                     estimand=args.estimand or "ate", balance=args.balance or "target",
                     lam_rel=args.lam_rel, bandwidth=args.bandwidth, rank=args.rank,
                     treated_level=args.treated_level, weights_out=args.weights_out,
                     progress=None)
        report = result.to_report(alpha=args.alpha, source={
            "file": str(args.file), "treatment": args.treatment, "outcome": args.outcome,
            "treated_level": args.treated_level})
        if args.balance_out is not None:
            out.commit({"--balance-out": lambda tmp: result.balance_table().to_csv(tmp)})
    report["warnings"] = list(warned)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        print(format_estimate_report(report))
        if args.weights_out is not None:
            print(f"  weights: {args.weights_out} (Parquet, {report['info']['npartitions']} "
                  "partitions)")
    return 0


# --- --by -------------------------------------------------------------------------------------
def run_groups(args) -> int:
    """``cina estimate FILE --by COL``: one effect per group."""
    from ..groups import estimate_by
    from ..io import read_table
    from ..outputs import (
        OutputSet,
        format_groups_table,
        groups_records,
        write_groups_table,
    )

    _refuse_outputs(args, "--by (write the per-group table with --groups-out)", ())
    method = args.method or GROUPS_METHOD
    out = OutputSet(inputs=[args.file])
    if args.groups_out is not None:
        out.declare("--groups-out", args.groups_out)
    covariates = types.name_list("--covariates", args.covariates, "give comma-separated "
                                 "column names, or leave it out")
    if args.rank is not None:
        raise UsageError("--rank applies to --scheduler without --by")
    from ..registry import make_estimator

    try:
        make_estimator(method)
    except CInAValidationError as exc:
        raise UsageError(f"{exc} (see `cina methods`)") from None
    warned: list[str] = []
    with print_warnings(warned):
        df = read_table(args.file)
        settings = dict(by=args.by, treatment=args.treatment, outcome=args.outcome,
                        covariates=covariates, method=method, estimand=args.estimand or "ate",
                        balance=args.balance or "target", lam_rel=args.lam_rel,
                        bandwidth=args.bandwidth, max_iter=args.max_iter, alpha=args.alpha,
                        treated_level=_treated_level(df, args))
        if args.scheduler is not None:
            from ..distributed.cluster import connect

            with connect(args.scheduler) as client:
                table = estimate_by(df, **settings, client=client)
        else:
            table = estimate_by(df, **settings)
        if args.groups_out is not None:
            out.commit({"--groups-out": lambda tmp: write_groups_table(table, tmp,
                                                                       args.groups_out)})
    if args.json:
        for rec in groups_records(table):
            print(json.dumps(rec, allow_nan=False))
    else:
        print(format_groups_table(table, title=f"cina estimate: {args.file} by {args.by}"))
        if args.groups_out is not None:
            print(f"  table: {args.groups_out}")
    return 0


def _treated_level(df, args):
    from ..io import resolve_treated_level

    if args.treated_level is None or args.treatment not in df.columns:
        return None
    return resolve_treated_level(df[args.treatment], args.treated_level)
