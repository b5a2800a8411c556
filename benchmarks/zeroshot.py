"""Benchmark of the shipped zero-shot model (accuracy in and out of distribution, speed, memory).

    python benchmarks/zeroshot.py --stage prepare   # exact / fit references, cached (slow part)
    python benchmarks/zeroshot.py                   # everything; writes results/zeroshot.md

The references (exact QP weights, Algorithm 1 "fit") do not depend on the model, so they are
computed once and cached in ``.bench_cache/zeroshot/`` (keyed by dataset and lam_rel). Sections:

* in distribution, estimator defaults: held-out datasets of ``default_prior()`` (stream seed
  777), ``CInA(method=...)`` with its defaults (target ATE, median bandwidth, lam by
  ``select_lam_rel``): QP gap and weight correlation against the exact weights, ESS, ATE MAE of
  zero-shot vs exact vs fit against the true SATE;
* in distribution, training mix: held-out problems drawn exactly like the training data (random
  problem type, lam_rel in [0.01, 3], bandwidth jitter; stream seed 20000);
* out of distribution: ``ood_prior(kind)`` for each kind (``large`` capped at N <= 3,000 so that the
  exact QP stays affordable);
* speed: zero-shot vs ``make_estimator("dml")`` at N = 1,000, d = 25 (same data, same process),
  and zero-shot alone at N = 10,000 and 50,000 in fresh subprocesses (seconds; peak memory as the
  high-water mark VmHWM and its excess over the resident set just before the call).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench_cache" / "zeroshot"
RESULTS = ROOT / "benchmarks" / "results" / "zeroshot.md"


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# ----------------------------------------------------------------------------------------------
# datasets and references
# ----------------------------------------------------------------------------------------------

def _suites(n_id: int, n_ood: int) -> dict[str, list[tuple]]:
    from cina.datasets.synthetic import OOD_KINDS, dataset_rng, default_prior, ood_prior

    suites = {"in-distribution": [("default", 777, k) for k in range(n_id)]}
    for kind in OOD_KINDS:
        n = max(4, n_ood // 2) if kind == "large" else n_ood
        suites[f"ood-{kind}"] = [(kind, 888, k) for k in range(n)]
    del dataset_rng, default_prior, ood_prior
    return suites


def _prior(kind: str):
    from cina.datasets.synthetic import default_prior, ood_prior

    if kind == "default":
        return default_prior()
    p = ood_prior(kind)
    if kind == "large":
        p = replace(p, n_range=(2001, 3000))
    return p


def _dataset(kind: str, seed: int, k: int):
    from cina.datasets.synthetic import dataset_rng, sample_scm_arrays

    X, t, y, mu0, mu1, meta = sample_scm_arrays(dataset_rng(seed, k), _prior(kind),
                                                dtype=np.float64)
    return X, t, y, float(meta["true_effect"])


def _reference(kind: str, seed: int, k: int, with_fit: bool) -> dict:
    """Exact (and optionally fit) results with the estimator's defaults; cached."""
    from cina import CInA

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{kind}-{seed}-{k}.npz"
    X, t, y, tau = _dataset(kind, seed, k)
    if path.exists():
        from cina.balancing.kernel import resolve_bandwidth, standardize
        from cina.balancing.tuning import select_lam_rel

        z = dict(np.load(path, allow_pickle=False))
        info = json.loads(str(z["info"]))
        Z, _, _ = standardize(X)
        lam, _ = select_lam_rel(Z, t, y, bandwidth=resolve_bandwidth(Z, None))
        fresh = abs(float(lam) - info["lam_rel"]) <= 1e-12 * max(1.0, abs(float(lam)))
        if fresh and (not with_fit or "fit_estimate" in info):  # the lam rule may have changed
            return {"alpha": z["alpha"], **info}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est = CInA(method="exact").fit(X, t, y)
        sec = time.perf_counter() - t0
    res = est.result_
    info = {"estimate": res.estimate, "tau": tau, "lam_rel": res.info["lam_rel"],
            "bandwidth": res.info["bandwidth"], "exact_seconds": sec, "n": len(t),
            "d": X.shape[1]}
    if with_fit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            fit = CInA(method="fit", lam_rel=info["lam_rel"]).fit(X, t, y)
            info["fit_seconds"] = time.perf_counter() - t0
        info["fit_estimate"] = fit.result_.estimate
    np.savez(path, alpha=res.weights, info=json.dumps(info))
    return {"alpha": res.weights, **info}


def _training_mix(n: int):
    from cina.train.config import DataConfig
    from cina.train.data import make_problem
    from cina.train.pretrain import exact_solution

    cfg = DataConfig()
    probs, exact = [], []
    for k in range(n):
        p = make_problem(20000, k, cfg)
        path = CACHE / f"mix-20000-{k}.npz"
        if path.exists():
            z = np.load(path)
            ex = {"alpha": z["alpha"], "objective": float(z["objective"])}
        else:
            ex = exact_solution(p)
            CACHE.mkdir(parents=True, exist_ok=True)
            np.savez(path, alpha=ex["alpha"], objective=ex["objective"])
        probs.append(p)
        exact.append(ex)
    return probs, exact


def prepare(args) -> None:
    _threads(1)
    for name, items in _suites(args.n_id, args.n_ood).items():
        t0 = time.perf_counter()
        for i, (kind, seed, k) in enumerate(items):
            _reference(kind, seed, k, with_fit=(name == "in-distribution" and i < args.n_fit))
        print(f"{name}: {len(items)} references in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    _training_mix(args.n_mix)
    print(f"training mix: {args.n_mix} references in {time.perf_counter() - t0:.0f} s", flush=True)


# ----------------------------------------------------------------------------------------------
# accuracy
# ----------------------------------------------------------------------------------------------

def _evaluate_suite(items, n_fit: int) -> dict:
    from cina import CInA
    from cina.balancing.kernel import attention_kernel, standardize
    from cina.balancing.weights import balancing_objective

    rows = []
    n_warn = 0
    for i, (kind, seed, k) in enumerate(items):
        ref = _reference(kind, seed, k, with_fit=False)
        X, t, y, tau = _dataset(kind, seed, k)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            zs = CInA(method="zero-shot").fit(X, t, y).result_
            sec = time.perf_counter() - t0
        n_warn += any("cina" in type(x.message).__module__ for x in w)
        Z, _, _ = standardize(X)
        K = attention_kernel(Z, ref["bandwidth"])
        lam = ref["lam_rel"]
        obj_zs, _ = balancing_objective(K, t, zs.weights, lam)
        obj_ex, _ = balancing_objective(K, t, ref["alpha"], lam)
        w = np.asarray(zs.weights)
        row = {"n": len(t), "gap": obj_zs / obj_ex - 1, "corr": float(np.corrcoef(w, ref["alpha"])[0, 1]),
               "ess_zs": [1 / np.sum(w[t == a] ** 2) / np.sum(t == a) for a in (1, 0)],
               "ess_ex": [1 / np.sum(ref["alpha"][t == a] ** 2) / np.sum(t == a) for a in (1, 0)],
               "err_zs": abs(zs.estimate - tau), "err_ex": abs(ref["estimate"] - tau),
               "sec_zs": sec, "sec_ex": ref["exact_seconds"]}
        if i < n_fit:
            rf = _reference(kind, seed, k, with_fit=True)
            row["err_fit"] = abs(rf["fit_estimate"] - tau)
            row["sec_fit"] = rf["fit_seconds"]
        rows.append(row)
    gap = np.array([r["gap"] for r in rows])
    corr = np.array([r["corr"] for r in rows])
    out = {
        "datasets": len(rows), "N range": f"{min(r['n'] for r in rows)}-{max(r['n'] for r in rows)}",
        "QP gap median": np.median(gap), "QP gap p90": np.quantile(gap, 0.9),
        "corr median": np.median(corr), "corr p10": np.quantile(corr, 0.1),
        "ESS/n zero-shot (T, C)": np.median([r["ess_zs"] for r in rows], axis=0),
        "ESS/n exact (T, C)": np.median([r["ess_ex"] for r in rows], axis=0),
        "ATE MAE zero-shot": np.mean([r["err_zs"] for r in rows]),
        "ATE MAE exact": np.mean([r["err_ex"] for r in rows]),
        "seconds/dataset zero-shot (mean)": np.mean([r["sec_zs"] for r in rows]),
        "seconds/dataset exact (mean)": np.mean([r["sec_ex"] for r in rows]),
        "datasets with a cina warning": n_warn,
    }
    fit_rows = [r for r in rows if "err_fit" in r]
    if fit_rows:
        out[f"ATE MAE on the first {len(fit_rows)}: zero-shot / exact / fit"] = (
            np.mean([r["err_zs"] for r in fit_rows]), np.mean([r["err_ex"] for r in fit_rows]),
            np.mean([r["err_fit"] for r in fit_rows]))
        out["seconds/dataset fit (mean)"] = np.mean([r["sec_fit"] for r in fit_rows])
    return out


def _evaluate_mix(n: int) -> dict:
    """Training-mix problems with the default tied steps, and with the trained steps alone."""
    from cina.model.balancer import PROBLEMS
    from cina.model.checkpoint import load_pretrained
    from cina.train.pretrain import evaluate_problems, summarise

    probs, exact = _training_mix(n)
    model, _ = load_pretrained()
    out = {}
    default_extra = model.config.extra_steps
    for label, extra in (("", default_extra), (" (trained steps only)", 0)):
        model.config.extra_steps = extra
        try:
            recs = evaluate_problems(model, probs, exact)
        finally:
            model.config.extra_steps = default_extra
        out["all problems" + label] = summarise(recs)
        for i, (b, e) in enumerate(PROBLEMS):
            sub = [r for r in recs if r["problem"] == i]
            if sub:
                out[f"{b}-{e}{label}"] = summarise(sub)
        small = [r for r in recs if r["lam_rel"] < 0.05]
        if small:
            out["lam_rel < 0.05" + label] = summarise(small)
    return out


def _evaluate_lalonde() -> list[dict]:
    """Out of the training range (N > 2,000, ATT with 4-7% treated): the LaLonde datasets of the
    bench at fixed lam_rel, zero-shot (default and trained steps only) against the exact QP."""
    from cina.balancing.kernel import attention_kernel, resolve_bandwidth, standardize
    from cina.balancing.weights import solve_balancing_weights
    from cina.bench.suites import _lalonde_cps
    from cina.datasets import load_lalonde
    from cina.solvers.zero_shot import ZeroShotBalancing

    rows = []
    datasets = [("lalonde-psid", load_lalonde("psid"))] + [
        (f"lalonde-cps-s{s}", _lalonde_cps(s)) for s in range(3)]
    for name, ds in datasets:
        Z, _, _ = standardize(ds.X)
        bw = resolve_bandwidth(Z, None)
        K = attention_kernel(Z, bw)
        w = 2 * ds.t - 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zb = ZeroShotBalancing(Z, ds.t, estimand="att", bandwidth=bw)
            for lam in (0.1, 0.03):
                ex = solve_balancing_weights(K, ds.t, lam, estimand="att").alpha
                row = {"dataset": name, "N": len(ds.t), "lam_rel": lam,
                       "ATT exact": float(np.sum(ex * w * ds.y))}
                c = ds.t == 0
                for label, extra in (("default", None), ("trained only", 0)):
                    a, info = zb(lam, extra_steps=extra)
                    row[f"corr {label}"] = float(np.corrcoef(a[c], ex[c])[0, 1])
                    row[f"ATT {label}"] = float(np.sum(a * w * ds.y))
                    row[f"steps {label}"] = info["refinement_steps"]
                rows.append(row)
        del K
    return rows


# ----------------------------------------------------------------------------------------------
# speed
# ----------------------------------------------------------------------------------------------

def _hwm_mb() -> float:
    """The process's resident-set high-water mark (VmHWM; unlike ru_maxrss, not inherited from
    the parent across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _RSSSampler:
    """Maximum resident set size (MB) seen every 5 ms while the block runs (a thread)."""

    def __enter__(self):
        import threading

        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_mb())


_STAGES = ("bandwidth", "lam_rule", "weights", "standard_error")  # of info["seconds_by_stage"]


def speed_child(n: int, d: int, threads: int, with_dml: bool) -> dict:
    """Run in a fresh process: seconds and peak-RSS increase of one zero-shot fit."""
    _threads(threads)
    from cina import CInA
    from cina.model.checkpoint import load_pretrained

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    X[:, : d // 5] = (X[:, : d // 5] > 0).astype(float)
    logit = X[:, :5].sum(1) * 0.4
    t = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    y = X[:, :5].sum(1) + t * (1 + 0.5 * X[:, 1]) + rng.standard_normal(n)
    load_pretrained()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CInA(method="zero-shot").fit(X[:200], t[:200], y[:200])  # warm-up
        from cina.balancing.kernel import resolve_bandwidth, standardize
        from cina.solvers.zero_shot import zero_shot_weights

        Z, _, _ = standardize(X)
        peak0 = _hwm_mb()
        rss0 = _rss_mb()  # current resident set before the call
        with _RSSSampler() as sampler:
            t0 = time.perf_counter()
            _, info = zero_shot_weights(Z, t, y, estimand="ate", balance="target",
                                        lam_rel=None, bandwidth=None)
            sec_weights = time.perf_counter() - t0
        peak1 = _hwm_mb()
        runs = []  # at N <= 2,000 the median of 3 fits (one varies by ~20% on a shared machine)
        for _ in range(3 if n <= 2000 else 1):
            t0 = time.perf_counter()
            fitted = CInA(method="zero-shot").fit(X, t, y)
            runs.append((time.perf_counter() - t0, fitted.result_.info["seconds_by_stage"]))
        sec_fit, stages = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    out = {"n": n, "d": d, "threads": threads, "seconds_weights": sec_weights,
           "seconds_model": info["seconds_model"], "seconds_kernel": info["seconds_kernel"],
           "steps": info["refinement_steps"],
           "seconds_fit": sec_fit, "fit_stages": stages, "rss_before_mb": rss0, "peak_rss_before_mb": peak0,
           "peak_rss_increase_mb": max(0.0, sampler.peak - rss0), "peak_rss_mb": peak1,
           "sampled_peak_rss_mb": sampler.peak,
           "path": info["path"]}
    del resolve_bandwidth
    if with_dml:
        from cina.registry import make_estimator

        t0 = time.perf_counter()
        make_estimator("dml").fit(X, t, y)
        out["seconds_dml"] = time.perf_counter() - t0
        out["dml_over_zero_shot"] = out["seconds_dml"] / sec_fit
    return out


def _speed(n: int, d: int, threads: int, with_dml: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--speed-child", str(n), str(d),
           str(threads)] + (["--dml"] if with_dml else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"n": n, "error": r.stderr[-500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, (list, tuple, np.ndarray)):
        return " / ".join(_fmt(x) for x in v)
    if isinstance(v, (float, np.floating)):
        return f"{v:.3f}" if abs(v) >= 0.001 or v == 0 else f"{v:.2e}"
    return str(v)


def run(args) -> None:
    from cina.model.checkpoint import PINNED_SHA256, load_pretrained, read_metadata

    _threads(1)
    t_start = time.perf_counter()
    model, meta = load_pretrained()
    lines = ["# Zero-shot model benchmark", "",
             f"Command: `python benchmarks/zeroshot.py` (n_id={args.n_id}, n_ood={args.n_ood}, "
             f"n_mix={args.n_mix}, n_fit={args.n_fit}); model `{meta.get('model_version')}` sha256 "
             f"`{PINNED_SHA256[:16]}...`, {model.config.n_steps} trained refinement steps plus up "
             f"to {model.config.extra_steps} weight-tied steps (tol {model.config.extra_tol:g}).",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs "
             f"(timings are noisy, load average at start {os.getloadavg()[0]:.1f}); "
             f"torch threads 1 for accuracy, as stated for speed. Python {platform.python_version()}.",
             "", "Weights: QP gap = objective(zero-shot) / objective(exact) - 1 under the same "
             "kernel and lam; corr = Pearson correlation of the weights with the exact QP weights; "
             "ESS/n per arm (treated / control); ATE MAE against the true SATE of each dataset.",
             ""]
    if not args.skip_accuracy:
        lines += ["## In distribution: training mix (random problem, lam_rel, bandwidth)", "",
                  "| subset | datasets | QP gap median | QP gap p90 | corr median | corr p10 | "
                  "ESS/n T (exact) | ESS/n C (exact) | ATE MAE zs | ATE MAE exact |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, s in _evaluate_mix(args.n_mix).items():
            lines.append(
                f"| {name} | {s['n_datasets']} | {_fmt(s['qp_gap_median'])} | "
                f"{_fmt(s['qp_gap_p90'])} | {_fmt(s['corr_median'])} | {_fmt(s['corr_p10'])} | "
                f"{_fmt(s['ess_frac_treated_median'])} ({_fmt(s['ess_frac_treated_exact_median'])}) | "
                f"{_fmt(s['ess_frac_control_median'])} ({_fmt(s['ess_frac_control_exact_median'])}) | "
                f"{_fmt(s['ate_mae'])} | {_fmt(s['ate_mae_exact'])} |")
        print("\n".join(lines), flush=True)
        lines += ["", "## Estimator defaults (target ATE, median bandwidth, select_lam_rel)", ""]
        results = {}
        for name, items in _suites(args.n_id, args.n_ood).items():
            results[name] = _evaluate_suite(items, args.n_fit if name == "in-distribution" else 0)
            print(name, results[name], flush=True)
        keys = list(results["in-distribution"].keys())
        lines.append("| metric | " + " | ".join(results) + " |")
        lines.append("|---" * (len(results) + 1) + "|")
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(_fmt(r.get(k, "")) for r in results.values())
                         + " |")
        lines += ["", "## Out of the training range: LaLonde (ATT, N 2,675-4,185, fixed lam_rel)",
                  "", "Weight correlation with the exact QP over the control arm, and the ATT "
                  "(reference 1794), for the default (trained + tied steps) and the trained "
                  "steps alone.", ""]
        lal = _evaluate_lalonde()
        cols = list(lal[0].keys())
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|---" * len(cols) + "|")
        for r in lal:
            lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
        print("\n".join(lines[-len(lal) - 2:]), flush=True)
    if not args.skip_speed:
        lines += ["", "## Speed and memory", "",
                  "Fresh subprocess per row; the model and imports warmed up on 200 units first. "
                  "`kernel` = checks, bandwidth rule, kernel and arm densities (built once per "
                  "fit); `refinement` = the model's steps for one lam (`steps` of them); "
                  "`weights` = `zero_shot_weights` (bandwidth, lam rule, model); `fit` = the whole "
                  "`CInA(method='zero-shot').fit` (validation, standard error; at N <= 2,000 the median of 3 fits), and its stages "
                  "from `info['seconds_by_stage']` (`weights` there: kernel and model, balance "
                  "guard included). Memory: RSS just "
                  "before the `weights` call; the process's high-water mark (VmHWM) after it (imports and "
                  "warm-up included); the call's own increase = max RSS sampled every 5 ms during "
                  "the call minus the RSS before it.", "",
                  "| N | d | threads | path | kernel s | refinement s | steps | weights s | "
                  "fit s | fit stages: bandwidth / lam rule / weights / standard error s | "
                  "RSS before MB | process peak RSS MB | call increase MB | DML s | "
                  "DML / zero-shot fit | DML / (kernel + refinement) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, d, th, dml in ((1000, 25, 1, True), (1000, 25, 2, True), (10000, 25, 2, False),
                              (50000, 25, 2, False)):
            r = _speed(n, d, th, dml)
            print(r, flush=True)
            if "error" in r:
                lines.append(f"| {n} | {d} | {th} | error: {r['error'][-200:]!r} |")
                continue
            fwd = r["seconds_kernel"] + r["seconds_model"]
            lines.append(f"| {n:,} | {d} | {th} | {r['path']} | {_fmt(r['seconds_kernel'])} | "
                         f"{_fmt(r['seconds_model'])} | {r['steps']} | "
                         f"{_fmt(r['seconds_weights'])} | "
                         f"{_fmt(r['seconds_fit'])} | "
                         f"{_fmt([r['fit_stages'][k] for k in _STAGES])} | "
                         f"{_fmt(r['rss_before_mb'])} | "
                         f"{_fmt(r['peak_rss_mb'])} | {_fmt(r['peak_rss_increase_mb'])} | "
                         f"{_fmt(r.get('seconds_dml', ''))} | "
                         f"{_fmt(r.get('dml_over_zero_shot', ''))} | "
                         f"{_fmt(r['seconds_dml'] / fwd if 'seconds_dml' in r else '')} |")
    md = read_metadata(Path(__import__("cina.model.checkpoint", fromlist=["x"]).pretrained_path()))
    lines += ["", "## Shipped model's own validation (metadata)", "", "```",
              json.dumps(md.get("metrics", {}), indent=1), "```", "",
              f"Benchmark wall time: {time.perf_counter() - t_start:.0f} s."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    reading = _hand_written_reading()
    if reading:  # keep it (placed before the first table), to be checked against the new tables
        first = text.index("\n## ") + 1
        text = text[:first] + reading + text[first:]
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


def _hand_written_reading() -> str:
    """The "## Reading" section of the current results file (written by hand after a run, it
    is carried over by a rerun, which would otherwise drop it), or ""."""
    if not RESULTS.exists():
        return ""
    old = RESULTS.read_text()
    start = old.find("## Reading")
    if start < 0:
        return ""
    end = old.find("\n## ", start + 1)
    return old[start:] if end < 0 else old[start:end + 1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["prepare", "run"], default="run")
    ap.add_argument("--n-id", type=int, default=24)
    ap.add_argument("--n-ood", type=int, default=8)
    ap.add_argument("--n-mix", type=int, default=32)
    ap.add_argument("--n-fit", type=int, default=4)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--speed-child", nargs=3, type=int, metavar=("N", "D", "THREADS"))
    ap.add_argument("--dml", action="store_true")
    args = ap.parse_args(argv)
    if args.speed_child:
        print(json.dumps(speed_child(*args.speed_child, with_dml=args.dml)))
        return
    if args.stage == "prepare":
        prepare(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
