"""Speed and memory of a whole fit against N (1,000 to 1,000,000 units, d = 25), beside DML.

    python benchmarks/scale.py                                   # writes results/scale.{md,csv,svg}
    python benchmarks/scale.py --methods zero-shot --ns 1000,100000 --out /tmp/scale
    python benchmarks/scale.py --estimator-params '{"augment": "stack"}'   # another pipeline

Every point is a fresh subprocess (``--child``): it draws the "sparse" design of
benchmarks/_common.py (d = 25, half binary covariates, nonlinear outcome, effect 2 + x2 (x3 > 0)),
warms up (imports, the zero-shot model's load, one fit on 200 units), then times one whole
``fit`` (the median of ``--repeats`` fits for N <= 1,000) and reports

* wall seconds and CPU seconds (user + system) of the fit, the fit's stages
  (``info["seconds_by_stage"]``), the kernel operator, the thread count the policy chose;
* memory: the process's peak resident set (VmHWM, imports and data included) and the resident
  set just before the fit (tracemalloc would miss numpy's and torch's buffers);
* the estimate.

Methods: ``--methods`` (CInA methods, default exact and zero-shot, with ``--estimator-params``
as JSON for every CInA fit; default ``{"augment": null}``, the plain weighting estimate: an
outcome model such as the stacked learners costs what DML costs by design, and is timed apart
when asked for; the report states the pipeline each row ran, from the estimator's parameters)
and the DML baselines run in the same job: "dml-linear" (linear
regression and logistic regression learners) and "dml-forest" (the package's default DML,
random forests), the latter skipped above ``--forest-max-n`` units (it would run past ~10
minutes; the report says so). Accuracy: at ``--reference-n`` (10,000) the CInA methods also
run on the dense kernel (``kernel="dense"``), and the table gives |ATE - ATE(dense)| in outcome
standard deviations. Busy machine: at N = 1,000 the CInA methods and both DMLs run again while
``--busy`` (2) other CPU-bound processes, started by this script, run beside them; the ratio
of DML's time to CInA's is reported for the quiet and the busy runs, also for a second CInA
pipeline at N = 1,000 (``--extra-pipeline``, default the paper's standardised keys: the default
relevance key map's fit on <= 400 units costs a constant ~1 s). Thread policy: on the busy
machine, AIPW at N = 400 and zero-shot at N = 1,000 and 10,000 run with every core forced
(``CINA_NUM_THREADS``, the libraries' default before the policy) and under the policy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import command, design, machine  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "scale"
DML_METHODS = ("dml-linear", "dml-forest")


# ------------------------------------------------------------------------------------------------
# child: one point
# ------------------------------------------------------------------------------------------------
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def _estimator(method: str, params: dict):
    from cina import CInA
    from cina.baselines import DML

    if method == "aipw":
        from cina.registry import make_estimator

        return make_estimator("aipw")
    if method == "dml-linear":
        from sklearn.linear_model import LinearRegression, LogisticRegression

        return DML(outcome_learner=LinearRegression(),
                   propensity_learner=LogisticRegression(max_iter=1000))
    if method == "dml-forest":
        return DML()
    return CInA(method=method, **params)


def _pipeline(est, info: dict) -> str:
    """What a CInA fit ran: its keys, outcome model and se (the parameters as set, with what
    "auto" resolved to); empty for the baselines."""
    if not hasattr(est, "kernel") or not hasattr(est, "variance"):
        return ""
    params = est.get_params()
    parts = [f"{k}={params[k]}" for k in ("metric", "augment", "variance") if k in params]
    if info.get("augment") is not None:
        parts.append(f"(augment ran: {info['augment']})")
    if isinstance(info.get("metric"), str):
        parts.append(f"(keys: {info['metric']})")
    return ", ".join(parts)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(args) -> None:
    params = json.loads(args.estimator_params)
    X, t, y, tau = design("sparse", args.seed, args.n, d=25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _estimator(args.method, params).fit(*design("sparse", 99, 200, d=25)[:3])  # warm-up
        rss_before = _status_mb("VmRSS")
        times, cpus = [], []
        for _ in range(args.repeats):
            c0, t0 = _cpu(), time.perf_counter()
            est = _estimator(args.method, params).fit(X, t, y)
            times.append(time.perf_counter() - t0)
            cpus.append(_cpu() - c0)
    k = int(np.argsort(times)[len(times) // 2])
    info = est.result_.info
    out = {"n": args.n, "method": args.method, "seconds": times[k], "cpu_seconds": cpus[k],
           "repeats": args.repeats, "estimate": float(est.effect_), "y_sd": float(np.std(y)),
           "true_effect": float(np.mean(tau)), "rss_before_mb": rss_before,
           "peak_mb": _status_mb("VmHWM"), "kernel": info.get("kernel", ""),
           "threads": info.get("threads"), "threads_rule": info.get("threads_rule", ""),
           "stages": {k: round(v, 4) for k, v in info.get("seconds_by_stage", {}).items()},
           "pipeline": _pipeline(est, info)}
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------------------------------------
# parent
# ------------------------------------------------------------------------------------------------
def _point(n: int, method: str, params: dict, repeats: int, seed: int, timeout: float,
           threads: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--method", method,
           "--estimator-params", json.dumps(params), "--repeats", str(repeats),
           "--seed", str(seed)]
    load = os.getloadavg()[0]
    env = dict(os.environ)
    env.pop("CINA_NUM_THREADS", None)
    if threads is not None:  # a forced thread count instead of the policy's choice
        env["CINA_NUM_THREADS"] = threads
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"n": n, "method": method, "status": f"timeout after {timeout:.0f} s",
                "load": load}
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "status": "ok", "load": load}
    return {"n": n, "method": method, "status": "error: " + r.stderr.strip()[-300:],
            "load": load}


class _Busy:
    """``count`` CPU-bound processes running while the block runs."""

    def __init__(self, count: int):
        self.count = count
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        for _ in range(self.count):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(1.0)  # let them get going
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def _label(method: str, params: dict, kernel: str | None = None) -> str:
    if method in DML_METHODS:
        return method
    extra = ",".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "kernel")
    out = method + (f" [{extra}]" if extra else "")
    return out + (f" (kernel={kernel})" if kernel else "")


def run(args) -> None:
    import pandas as pd

    params = json.loads(args.estimator_params)
    methods = [m for m in args.methods.split(",") if m]
    ns = [int(n) for n in args.ns.split(",")]
    rows = []
    start = time.time()

    def record(res: dict, scenario: str, label: str):
        res = {**res, "scenario": scenario, "label": label}
        rows.append(res)
        print(f"[{time.time() - start:6.0f} s] {scenario:5s} N={res['n']:>9,} {label}: "
              f"{res.get('seconds', float('nan')):.3f} s, peak "
              f"{res.get('peak_mb', float('nan')):.0f} MB, {res['status']}", flush=True)

    max_n = {k: int(v) for k, v in (item.split("=") for item in args.max_n.split(",") if item)}
    extra = {**params, **json.loads(args.extra_pipeline)} if args.extra_pipeline else {}
    for n in ns:
        reps = args.repeats if n <= 1000 else 1
        for method in methods:
            if n > max_n.get(method, n):
                rows.append({"n": n, "method": method, "label": _label(method, params),
                             "scenario": "quiet", "status": f"skipped (--max-n {method}="
                             f"{max_n[method]:,})"})
                continue
            auto = _point(n, method, params, reps, args.seed, args.timeout)
            record(auto, "quiet", _label(method, params))
            if n == args.reference_n and auto.get("kernel") == "dense":
                # the auto kernel is still the dense one here: time the low-rank one too, so
                # that its accuracy is measured where both run
                low = {**params, "kernel": "nystrom"}
                record(_point(n, method, low, 1, args.seed, args.timeout), "quiet",
                       _label(method, params, "nystrom"))
            if n == 1000 and extra:
                record(_point(n, method, extra, reps, args.seed, args.timeout), "quiet",
                       _label(method, extra))
            if n == args.reference_n:
                ref = {**params, "kernel": "dense"}
                record(_point(n, method, ref, 1, args.seed, args.timeout), "quiet",
                       _label(method, params, "dense"))
        for dml in DML_METHODS:
            if dml == "dml-forest" and n > args.forest_max_n:
                rows.append({"n": n, "method": dml, "label": dml, "scenario": "quiet",
                             "status": f"skipped (N > {args.forest_max_n:,}: over ~10 min)"})
                continue
            record(_point(n, dml, {}, reps, args.seed, args.timeout), "quiet", dml)
    if args.busy > 0:
        with _Busy(args.busy):
            for method in methods:
                for pipeline in (params, extra) if extra else (params,):
                    record(_point(1000, method, pipeline, args.repeats, args.seed,
                                  args.timeout), "busy", _label(method, pipeline))
            for dml in DML_METHODS:
                record(_point(1000, dml, {}, args.repeats, args.seed, args.timeout), "busy", dml)
            if args.thread_check:
                # the policy against every core (the libraries' default before it), on the
                # cases of the issues: AIPW at N = 400, zero-shot at N = 1,000 and 10,000
                cores = str(len(os.sched_getaffinity(0)))
                for n, method in ((400, "aipw"), (1000, "zero-shot"), (10_000, "zero-shot")):
                    for threads, tag in ((cores, f"threads={cores}"), (None, "policy")):
                        record(_point(n, method, params if method != "aipw" else {},
                                      args.repeats if n <= 1000 else 1, args.seed,
                                      min(args.timeout, args.check_timeout), threads),
                               "busy", f"{method} ({tag})")
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    flat = df.drop(columns=[c for c in ("stages",) if c in df]).copy()
    if "stages" in df:
        flat["stages"] = df["stages"].map(lambda s: json.dumps(s) if isinstance(s, dict) else "")
    flat.to_csv(out.with_suffix(".csv"), index=False, float_format="%.6g")
    _plot(df, out.with_suffix(".svg"))
    out.with_suffix(".md").write_text(_report(df, args, time.time() - start))
    print(f"wrote {out.with_suffix('.md')}, .csv, .svg")


def _ratio(a: float, b: float) -> str:
    r = a / b
    return f"{r:.0f}x" if r >= 10 else f"{r:.2g}x"


def _fmt(v, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return format(v, spec)


def _pipelines(ok) -> dict:
    """method -> the distinct pipelines its rows ran."""
    if "pipeline" not in ok:
        return {}
    out = {}
    for method, g in ok.groupby("method", sort=False):
        seen = [p for p in dict.fromkeys(g["pipeline"]) if isinstance(p, str) and p]
        if seen:
            out[method] = " | ".join(seen)
    return out


def _report(df, args, seconds: float) -> str:
    ok = df[df["status"] == "ok"]
    lines = [
        "# Scale: time and memory of a whole fit against N",
        "",
        f"Machine: {machine()}, load average at the start {df['load'].iloc[0]:.1f} (a machine "
        f"shared with other jobs: wall times are upper bounds; CPU seconds are less sensitive "
        f"to the sharing). Command: `{command()}` ({seconds / 60:.1f} min).",
        "",
        "Design: benchmarks/_common.py \"sparse\" (d = 25). Each row is a fresh process; seconds: "
        "wall time of `fit` (median of the repeats at N <= 1,000); CPU s: user + system; peak: "
        "the process's peak resident set (VmHWM, imports and data included); before: resident "
        "set just before the fit; threads: the thread policy's choice (docs/method_notes.md "
        "section 13); load: the one-minute load average when the point started.",
        "",
        "Pipeline of the CInA rows (the estimator's parameters as the fits ran them): "
        + "; ".join(f"{m}: {p}" for m, p in _pipelines(ok).items()) + ". The DML rows are "
        "`cina.baselines.DML` (5-fold cross-fitting; dml-forest: random forests, dml-linear: "
        "linear and logistic regression).",
        "",
        "| scenario | N | method | status | seconds | CPU s | peak MB | before MB | kernel | "
        "threads | stages (s) | ATE | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        stages = r.get("stages")
        st = " / ".join(f"{k} {v:.2f}" for k, v in stages.items()) \
            if isinstance(stages, dict) else ""
        lines.append(
            f"| {r['scenario']} | {int(r['n']):,} | {r['label']} | {r['status']} | "
            f"{_fmt(r.get('seconds'))} | {_fmt(r.get('cpu_seconds'))} | "
            f"{_fmt(r.get('peak_mb'), '.0f')} | {_fmt(r.get('rss_before_mb'), '.0f')} | "
            f"{r.get('kernel', '') if isinstance(r.get('kernel'), str) else ''} | "
            f"{_fmt(r.get('threads'), '.0f')} | {st} | {_fmt(r.get('estimate'), '.4f')} | "
            f"{_fmt(r.get('load'), '.1f')} |")
    # accuracy against the dense kernel
    ref_n = args.reference_n
    lines += ["", f"## Accuracy at N = {ref_n:,} against the dense kernel", ""]
    at = ok[(ok["n"] == ref_n) & (ok["scenario"] == "quiet")]
    for method in args.methods.split(","):
        others = at[(at["method"] == method) & ~at["label"].str.contains("kernel=dense")]
        dense = at[(at["method"] == method) & at["label"].str.contains("kernel=dense")]
        for _, a in others.iterrows():
            if not len(dense):
                break
            d = dense.iloc[0]
            lines.append(f"* {a['label']} ({a['kernel']}): ATE {a['estimate']:.4f} vs "
                         f"{d['estimate']:.4f} on the dense kernel: |difference| = "
                         f"{abs(a['estimate'] - d['estimate']) / a['y_sd']:.4f} outcome sd "
                         f"(target < 0.02); {d['seconds']:.1f} s on the dense kernel.")
    # speed ratios against DML
    lines += ["", "## Against DML in the same job (N = 1,000)", ""]
    for scenario in ("quiet", "busy"):
        s = ok[(ok["n"] == 1000) & (ok["scenario"] == scenario)]
        for dml in DML_METHODS:
            dm = s[s["method"] == dml]
            if not len(dm):
                continue
            for method in args.methods.split(","):
                m = s[(s["method"] == method) & ~s["label"].str.contains(r"kernel=|\(threads=|"
                                                                          r"\(policy\)")]
                for _, b in m.iterrows():
                    a = dm.iloc[0]
                    lines.append(f"* {scenario}: {dml} {a['seconds']:.3f} s / {b['label']} "
                                 f"{b['seconds']:.3f} s = **{_ratio(a['seconds'], b['seconds'])}"
                                 f"** (CPU seconds {a['cpu_seconds']:.3f} / "
                                 f"{b['cpu_seconds']:.3f} = "
                                 f"{_ratio(a['cpu_seconds'], b['cpu_seconds'])})")
    check = df[df["label"].astype(str).str.contains(r"\((?:threads=\d+|policy)\)",
                                                    regex=True)]
    if len(check):
        lines += ["", "## Thread policy on the busy machine", ""]
        for label, g in check.groupby(check["label"].str.replace(r" \(.*\)", "", regex=True),
                                      sort=False):
            for n, gn in g.groupby("n"):
                forced = gn[~gn["label"].str.contains("policy")]
                policy = gn[(gn["label"].str.contains("policy")) & (gn["status"] == "ok")]
                if not (len(forced) and len(policy)):
                    continue
                f, p_ = forced.iloc[0], policy.iloc[0]
                cores = f["label"].split("threads=")[1].rstrip(")")
                if f["status"] == "ok":
                    lines.append(f"* {label}, N = {int(n):,}: every core forced ({cores} "
                                 f"threads) {f['seconds']:.3f} s, the policy "
                                 f"({int(p_['threads'])} thread(s)) {p_['seconds']:.3f} s: "
                                 f"**{f['seconds'] / p_['seconds']:.1f}x**")
                else:
                    lines.append(f"* {label}, N = {int(n):,}: every core forced ({cores} "
                                 f"threads): {f['status']}; the policy "
                                 f"({int(p_['threads'])} thread(s)) {p_['seconds']:.3f} s")
    skipped = df[df["status"].astype(str).str.startswith("skipped")]
    if len(skipped):
        lines += ["", "Skipped: " + "; ".join(
            f"{r['label']} at N = {int(r['n']):,} ({r['status']})" for _, r in skipped.iterrows())]
    return "\n".join(lines) + "\n"


def _plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[(df["status"] == "ok") & (df["scenario"] == "quiet")
            & ~df["label"].str.contains("kernel=")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, g in ok.groupby("label", sort=False):
        g = g.sort_values("n")
        axes[0].plot(g["n"], g["seconds"], marker="o", label=label)
        axes[1].plot(g["n"], g["peak_mb"] / 1024, marker="o", label=label)
    axes[0].axhline(10, color="grey", ls=":", lw=1)
    axes[0].axhline(60, color="grey", ls="--", lw=1)
    axes[1].axhline(4, color="grey", ls="--", lw=1)
    for ax, ylabel in zip(axes, ("wall seconds of fit", "process peak memory (GB)"),
                          strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (units), d = 25")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("cina scale benchmark (targets: 10 s at 1e5, 60 s and 4 GB at 1e6)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--method", default="zero-shot", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--methods", default="zero-shot,exact")
    p.add_argument("--estimator-params", default='{"augment": null}',
                   help="JSON of CInA parameters for every CInA fit")
    p.add_argument("--extra-pipeline", default='{"metric": "standardized"}',
                   help="JSON of CInA parameters (over --estimator-params) for a second pipeline "
                        "timed at N = 1,000 only, quiet and busy, against DML (default: the "
                        "paper's standardised keys instead of the default relevance key map; "
                        "'' for none)")
    p.add_argument("--ns", default="1000,10000,100000,1000000")
    p.add_argument("--repeats", type=int, default=3, help="fits per point at N <= 1,000")
    p.add_argument("--reference-n", type=int, default=10_000)
    p.add_argument("--forest-max-n", type=int, default=10_000)
    p.add_argument("--busy", type=int, default=2, help="CPU-bound processes for the busy run")
    p.add_argument("--no-thread-check", dest="thread_check", action="store_false",
                   help="skip the busy-machine runs with every core forced")
    p.add_argument("--check-timeout", type=float, default=300.0,
                   help="seconds per point of the thread check (a point past it is reported "
                        "as such: the oversubscribed runs can take many minutes)")
    p.add_argument("--max-n", default="", metavar="METHOD=N,...",
                   help="skip a CInA method above N units (reported as skipped)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per point")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    if args.child:
        child(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
