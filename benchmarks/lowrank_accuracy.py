"""Accuracy of the low-rank kernel operators against the exact (dense) kernel, by rank m.

    python benchmarks/lowrank_accuracy.py                       # writes results/lowrank_accuracy.*
    python benchmarks/lowrank_accuracy.py --datasets 2 --ranks 128,256 --out /tmp/lr

For each dataset (the first ``--datasets`` of each suite; units beyond ``--max-n`` are
subsampled with a fixed seed so that the dense exact QP stays affordable) and each method
(``exact``, ``zero-shot``), the whole ``CInA(method=..., kernel=...).fit`` with the paper's
kernel and the plain weighting estimate (:data:`PIPELINE`: standardised keys, median bandwidth,
GP lam rule, balance guard; no outcome model, which would hide the weights' differences) is run
on the dense kernel (the reference) and on each low-rank operator: Nystrom and positive random features at every rank of
``--ranks``, and two Nystrom variants at the rank ``--variant-rank`` (uniform landmarks; no
diagonal correction). Reported against the dense fit of the same method:

* ``corr``: Pearson correlation of the weights;
* ``dATE/sd``: |ATE(low-rank) - ATE(dense)| in outcome standard deviations;
* ``max|SMD|``: the largest absolute standardised mean difference of a covariate after
  weighting (the dense fit's alongside);
* ``seconds``: the fit's wall time (one thread; indicative on a shared machine).

Dense references are cached in ``.bench_cache/lowrank/`` (keyed by dataset, method and N).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import command, machine  # noqa: E402

CACHE = ROOT / ".bench_cache" / "lowrank"
#: the pipeline of every fit (the estimator's parameters it has)
PIPELINE = {"metric": "standardized", "augment": None}
OUT = ROOT / "benchmarks" / "results" / "lowrank_accuracy"
SUITES = ("ihdp", "acic2016", "realistic-psid", "realistic-acic", "realistic-twins")


def _limit_threads() -> None:
    from cina.bench.runner import limit_threads

    limit_threads(1)


def _datasets(suites, per_suite: int, max_n: int):
    from cina.bench.suites import suite_datasets

    for suite in suites:
        for spec in suite_datasets(suite)[:per_suite]:
            ds = spec.load()
            X, t, y = np.asarray(ds.X, dtype=float), np.asarray(ds.t), np.asarray(ds.y, float)
            note = ""
            if len(t) > max_n:
                rows = np.sort(np.random.default_rng(0).choice(len(t), max_n, replace=False))
                X, t, y = X[rows], t[rows], y[rows]
                note = f"subsample {max_n} of {len(ds.t)}"
            yield suite, spec.name, X, t, y, note


def _variant(kind: str, rank: int, **options):
    """A registered kernel kind: ``kind``'s operator at default rank ``rank`` with options."""
    from cina.kernels import NystromKernel, RandomFeatureKernel, register_kernel

    base = {"nystrom": NystromKernel, "random-features": RandomFeatureKernel}[kind]
    suffix = "".join(f"-{k}={v}" for k, v in sorted(options.items()))
    name = f"{kind}-{rank}{suffix}"

    class Variant(base):
        default_rank = rank

        def __init__(self, keys, bandwidth, **kw):
            super().__init__(keys, bandwidth, **{**options, **kw})

    register_kernel(name, {"float64": Variant, "float32": Variant})
    return name


def _fit(method: str, kernel: str, X, t, y) -> dict:
    from cina import CInA
    from cina.diagnostics import max_abs_smd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        params = CInA().get_params()
        est = CInA(method=method, kernel=kernel,
                   **{k: v for k, v in PIPELINE.items() if k in params}).fit(X, t, y)
        seconds = time.perf_counter() - start
    r = est.result_
    return {"weights": r.weights, "estimate": float(r.estimate),
            "lam_rel": float(r.info["lam_rel"]), "guard": int(r.info.get("lam_guard_steps", 0)),
            "smd": max_abs_smd(X, t, r.weights, "ate"), "seconds": seconds}


def _reference(name: str, method: str, X, t, y) -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{method}-{len(t)}-standardized-plain.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return {"weights": z["weights"], **json.loads(str(z["info"]))}
    ref = _fit(method, "dense", X, t, y)
    info = {k: v for k, v in ref.items() if k != "weights"}
    np.savez(path, weights=ref["weights"], info=json.dumps(info))
    return ref


def run(args) -> None:
    import pandas as pd

    _limit_threads()
    ranks = [int(r) for r in args.ranks.split(",")]
    kinds = args.kinds.split(",")
    methods = args.methods.split(",")
    variants = [(kind, m, kind, {}) for kind in kinds for m in ranks]
    if "nystrom" in kinds:
        variants += [("nystrom", args.variant_rank, "nystrom (uniform landmarks)",
                      {"landmarks": "uniform"}),
                     ("nystrom", args.variant_rank, "nystrom (no diagonal correction)",
                      {"diagonal": "factor"})]
    registered = [(_variant(kind, m, **opts), label, m) for kind, m, label, opts in variants]
    rows = []
    start = time.time()
    for suite, name, X, t, y, note in _datasets(args.suites.split(","), args.datasets,
                                               args.max_n):
        sd = float(np.std(y))
        for method in methods:
            ref = _reference(name, method, X, t, y)
            for kernel, label, m in registered:
                fit = _fit(method, kernel, X, t, y)
                rows.append({
                    "suite": suite, "dataset": name, "n": len(t), "note": note,
                    "method": method, "operator": label, "rank": m,
                    "corr": float(np.corrcoef(fit["weights"], ref["weights"])[0, 1]),
                    "dATE_sd": abs(fit["estimate"] - ref["estimate"]) / sd,
                    "max_smd": fit["smd"], "max_smd_dense": ref["smd"],
                    "lam_rel": fit["lam_rel"], "lam_rel_dense": ref["lam_rel"],
                    "guard": fit["guard"], "guard_dense": ref["guard"],
                    "seconds": fit["seconds"], "seconds_dense": ref["seconds"]})
            print(f"{name} {method}: done ({time.time() - start:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False, float_format="%.6g")
    out.with_suffix(".md").write_text(_report(df, args, time.time() - start))
    print(f"wrote {out.with_suffix('.md')} and .csv")


def _report(df, args, seconds: float) -> str:
    g = df.groupby(["method", "operator", "rank"], sort=False)
    agg = g.agg(datasets=("dataset", "size"), corr_median=("corr", "median"),
                corr_min=("corr", "min"), dATE_median=("dATE_sd", "median"),
                dATE_max=("dATE_sd", "max"), smd_median=("max_smd", "median"),
                smd_dense_median=("max_smd_dense", "median"), smd_max=("max_smd", "max"),
                seconds=("seconds", "median"), seconds_dense=("seconds_dense", "median"))
    lines = [
        "# Low-rank kernel operators against the exact kernel",
        "",
        f"Machine: {machine()}; one thread. Command: `{command()}` ({seconds / 60:.1f} min).",
        "",
        "Whole `CInA(method, kernel=..., metric=\"standardized\", augment=None).fit` (the "
        "paper's kernel: standardised keys, median bandwidth, GP lam rule, balance guard; the "
        "plain weighting estimate) against the same fit on the dense kernel. corr: Pearson correlation of the weights; dATE/sd: |ATE difference| "
        "in outcome standard deviations; max|SMD|: largest absolute standardised mean difference "
        "after weighting (low-rank; dense alongside); seconds: median fit time (shared machine, "
        "indicative). Datasets: the first "
        f"{args.datasets} of each of {args.suites.replace(',', ', ')}"
        f" (more than {args.max_n:,} units: a seeded subsample of {args.max_n:,}).",
        "",
        "| method | operator | m | datasets | corr median | corr min | dATE/sd median | "
        "dATE/sd max | max SMD median (dense) | max SMD max | seconds (dense) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, op, m), r in agg.iterrows():
        lines.append(
            f"| {method} | {op} | {m} | {int(r.datasets)} | {r.corr_median:.4f} | {r.corr_min:.4f} | "
            f"{r.dATE_median:.4f} | {r.dATE_max:.4f} | {r.smd_median:.3f} "
            f"({r.smd_dense_median:.3f}) | {r.smd_max:.3f} | {r.seconds:.2f} "
            f"({r.seconds_dense:.2f}) |")
    by_suite = df.groupby(["method", "operator", "rank", "suite"], sort=False).agg(
        corr=("corr", "median"), dATE=("dATE_sd", "max"), n=("n", "max"))
    lines += ["", "## By suite (median corr, max dATE/sd)", "",
              "| method | operator | m | suite | N | corr median | dATE/sd max |",
              "|---|---|---|---|---|---|---|"]
    for (method, op, m, suite), r in by_suite.iterrows():
        lines.append(f"| {method} | {op} | {m} | {suite} | {int(r['n']):,} | {r['corr']:.4f} | "
                     f"{r['dATE']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suites", default=",".join(SUITES))
    p.add_argument("--datasets", type=int, default=3, help="datasets per suite")
    p.add_argument("--max-n", type=int, default=6000)
    p.add_argument("--ranks", default="64,128,256,512,1024")
    p.add_argument("--kinds", default="nystrom,random-features")
    p.add_argument("--methods", default="exact,zero-shot")
    p.add_argument("--variant-rank", type=int, default=256)
    p.add_argument("--out", default=str(OUT))
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
