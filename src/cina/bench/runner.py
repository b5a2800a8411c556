"""Run methods on suites, one (suite, dataset, method) item at a time, with a resumable cache.

Every finished item (a result or a recorded failure) is appended at once, as one JSON line, to
``OUT/cache.jsonl``, with a single ``os.write`` on an ``O_APPEND`` descriptor
(:func:`cina.outputs.append_line`): a kill cannot interleave two records, and at worst cuts the
line being written. The next run drops such a torn last line with a warning before its first
append (:func:`cina.outputs.repair_jsonl_tail`), so no finished record is ever glued onto it
and lost. A re-run with the same command reads the cache and skips the items it holds, so an
interrupted run loses at most the item in progress. Later lines win over earlier ones for the
same key (``--no-cache`` recomputes and appends). Items that failed are skipped too unless
``retry_errors`` is set.

A failure (dataset that does not load, treatment with one value, estimator that raises) is
recorded with ``status = "error: <message>"`` and the run goes on with the other items.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..outputs import append_line, read_jsonl, repair_jsonl_tail
from .suites import DatasetSpec, suite_datasets

__all__ = ["BenchConfig", "RECORD_FIELDS", "CACHE_NAME", "run_bench", "load_cache",
           "cache_key", "resolve_methods", "limit_threads"]

CACHE_NAME = "cache.jsonl"
RECORD_FIELDS = ("suite", "dataset", "method", "estimand", "true_effect", "estimate",
                 "abs_error", "rel_error", "se", "ci_low", "ci_high", "covered", "seconds",
                 "cpu_seconds", "n", "n_treated", "d", "status", "finished_at")
ALPHA = 0.05


@dataclass
class BenchConfig:
    suites: list[str]
    methods: list[str]
    out: Path
    use_cache: bool = True
    retry_errors: bool = False
    max_datasets: int | None = None
    progress: bool | None = None  # None: on when stderr is a terminal


def limit_threads(n: int = 1) -> None:
    """One thread for BLAS/OpenMP/torch (timings comparable across machines and with the
    single-thread reference numbers of the report's anchors table)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "CINA_NUM_THREADS"):  # the last: every fit's thread policy (cina._threads)
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except Exception:  # pragma: no cover - torch missing or already configured
        pass


def resolve_methods(text: str | list[str]) -> list[str]:
    """Comma-separated method names -> registry names; unknown names raise (listing valid)."""
    from ..errors import CInAValidationError
    from ..registry import available_methods

    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip().lower().replace("_", "-") for p in parts if p and p.strip()]
    valid = available_methods()
    if not names:
        raise CInAValidationError(f"no method given; valid methods: {', '.join(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise CInAValidationError(
            f"unknown method(s) {', '.join(repr(u) for u in unknown)}; valid methods: "
            f"{', '.join(valid)}")
    return list(dict.fromkeys(names))


def cache_key(rec: dict) -> tuple[str, str, str]:
    return (rec["suite"], rec["dataset"], rec["method"])


def load_cache(out: Path) -> dict[tuple[str, str, str], dict]:
    """Latest record per (suite, dataset, method). Lines that are not a record (a line cut by a
    kill during a write) are skipped with a warning naming them."""
    path = Path(out) / CACHE_NAME
    records: dict[tuple[str, str, str], dict] = {}
    lines, bad = read_jsonl(path)
    for rec in lines:
        try:
            records[cache_key(rec)] = rec
        except KeyError:
            bad.append(-1)
    if bad:
        where = ", ".join(str(i) for i in bad if i > 0)
        warnings.warn(f"{path}: skipped {len(bad)} line(s) that are not benchmark records"
                      + (f" (line {where})" if where else "")
                      + "; a line cut by an interrupted run is recomputed", stacklevel=2)
    return records


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _message(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    text = msg[0] if msg else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _base_record(suite: str, dataset: str, method: str, ds=None) -> dict:
    rec = dict.fromkeys(RECORD_FIELDS)
    rec.update(suite=suite, dataset=dataset, method=method)
    if ds is not None:
        rec.update(estimand=ds.estimand, true_effect=_num(ds.true_effect), n=ds.n,
                   n_treated=int(np.sum(ds.t == 1)), d=ds.d)
    return rec


def _fit_record(rec: dict, method: str, data, estimand: str, truth: float) -> dict:
    from ..registry import make_estimator

    est = make_estimator(method, estimand=estimand)
    wall, cpu = time.perf_counter(), time.process_time()
    est.fit_validated(data)
    rec["seconds"] = time.perf_counter() - wall
    rec["cpu_seconds"] = time.process_time() - cpu
    res = est.result_
    estimate = _num(res.estimate)
    if estimate is None:
        raise FloatingPointError(f"estimate is not finite ({res.estimate!r})")
    rec["estimate"] = estimate
    rec["se"] = _num(res.se)
    lo, hi = res.interval(ALPHA)
    rec["ci_low"], rec["ci_high"] = _num(lo), _num(hi)
    if truth is not None:
        rec["abs_error"] = abs(estimate - truth)
        rec["rel_error"] = rec["abs_error"] / abs(truth) if truth != 0 else None
        if rec["ci_low"] is not None and rec["ci_high"] is not None:
            rec["covered"] = bool(rec["ci_low"] <= truth <= rec["ci_high"])
    rec["status"] = "ok"
    return rec


class _Cache:
    def __init__(self, out: Path, use: bool):
        self.path = Path(out) / CACHE_NAME
        torn = repair_jsonl_tail(self.path)  # before the first append: start on a new line
        if torn:
            warnings.warn(f"{self.path}: dropped a last line cut by an interrupted run "
                          f"({len(torn)} bytes); its item is recomputed", stacklevel=2)
        self.records = load_cache(out) if use else {}

    def done(self, key, retry_errors: bool) -> bool:
        rec = self.records.get(key)
        if rec is None:
            return False
        return rec.get("status") == "ok" or not retry_errors

    def add(self, rec: dict) -> None:
        rec["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.records[cache_key(rec)] = rec
        append_line(self.path, json.dumps(rec, allow_nan=False))


def _datasets(suite: str, max_datasets: int | None) -> list[DatasetSpec]:
    specs = suite_datasets(suite)
    return specs if max_datasets is None else specs[:max_datasets]


def run_bench(cfg: BenchConfig, *, on_record: Callable[[dict], None] | None = None,
              suite_lister: Callable[[str], Iterable[DatasetSpec]] | None = None) -> dict:
    """Run every method of ``cfg`` on every dataset of its suites; returns counts.

    ``{"computed": k, "cached": k, "failed": k, "items": k}``; records go to the cache file.
    """
    from .._validation import validate_inputs

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = _Cache(out, cfg.use_cache)
    lister = suite_lister or (lambda s: _datasets(s, cfg.max_datasets))
    plan = [(suite, spec) for suite in cfg.suites for spec in lister(suite)]
    total = len(plan) * len(cfg.methods)
    counts = {"items": total, "computed": 0, "cached": 0, "failed": 0}
    progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    from tqdm.auto import tqdm

    bar = tqdm(total=total, disable=not progress, unit="fit", dynamic_ncols=True)
    try:
        for suite, spec in plan:
            pending = [m for m in cfg.methods
                       if not (cfg.use_cache and cache.done((suite, spec.name, m),
                                                            cfg.retry_errors))]
            counts["cached"] += len(cfg.methods) - len(pending)
            bar.update(len(cfg.methods) - len(pending))
            if not pending:
                continue
            bar.set_description(f"{suite}/{spec.name}")
            ds = data = None
            problem = None
            try:
                ds = spec.load()
                if len(np.unique(ds.t)) < 2:
                    raise ValueError(f"treatment takes one value only ({np.unique(ds.t)})")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data = validate_inputs(ds.X, ds.t, ds.y)
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                problem = f"error: dataset failed to load: {_message(exc)}"
            for method in pending:
                bar.set_postfix_str(method)
                rec = _base_record(suite, spec.name, method, ds if problem is None else None)
                if problem is not None:
                    rec["status"] = problem
                else:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            _fit_record(rec, method, data, ds.estimand, _num(ds.true_effect))
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        rec["status"] = f"error: {_message(exc)}"
                        if os.environ.get("CINA_BENCH_TRACEBACK"):
                            traceback.print_exc()
                cache.add(rec)
                counts["computed"] += 1
                counts["failed"] += rec["status"] != "ok"
                if on_record is not None:
                    on_record(rec)
                bar.update(1)
    finally:
        bar.close()
    return counts
