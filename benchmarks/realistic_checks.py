"""Checks that the realistic generators' simulated data look like the real data they were fitted to.

For every generator of cina.datasets.realistic (LaLonde PSID and CPS, Twins, IHDP bases 1-4,
ACIC 2016 bases 4, 28, 44, 71) this script fits the generator, draws the suite's seeds and
compares simulated with real data:

* fitted models: the learner chosen for each part, its cross-validated loss and R^2 (pseudo-R^2
  and AUC for the propensity);
* propensity: the treated share, and the propensity distribution per arm, real vs simulated,
  seen two ways: the generator's fitted e(x) among the real and the simulated treated/controls,
  and an analyst's cross-fitted propensity (the same learner, refitted out of fold on the real
  and on a simulated treatment); quantiles, the share of units with e < 0.05 or > 0.95, and the
  Kolmogorov-Smirnov distance between the real and simulated distributions;
* outcome per arm, real vs simulated: mean, sd, quantiles, share of zeros (and of the top code),
  the Wasserstein-1 and Kolmogorov-Smirnov distances, each next to the same distance between the
  real arm and a bootstrap resample of itself (the sampling-noise floor);
* effects: ATE, ATT, the sd of the individual effects, the source's own effect where one is
  known (the NSW experiment's 1794 for LaLonde, the true SATE of the IHDP / ACIC simulation, the
  observed mean(y1 - y0) of Twins) and the naive difference in means' bias, simulated vs real.

Writes benchmarks/results/realistic/{checks.md, fits.csv, propensity.csv, outcomes.csv,
effects.csv} and the block between the markers of docs/realistic.md.

    nice -n 10 python benchmarks/realistic_checks.py                 # all generators, 20 seeds
    python benchmarks/realistic_checks.py --generators psid,cps   # refresh two generators' rows
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine  # noqa: E402

from cina.datasets import REALISTIC_BASES, REALISTIC_TABLES, realistic_generator  # noqa: E402
from cina.datasets.realistic import generator_name  # noqa: E402
from cina.datasets.realistic._learners import select  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "realistic"
DOCS = ROOT / "docs" / "realistic.md"
BEGIN = "<!-- BEGIN checks (written by benchmarks/realistic_checks.py) -->"
END = "<!-- END checks -->"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def plan() -> list[tuple[str, int | None]]:
    out = []
    for table in REALISTIC_TABLES:
        for base in REALISTIC_BASES.get(table, (None,)):
            out.append((table, base))
    return out


def _q(v: np.ndarray) -> dict:
    qs = np.quantile(v, QUANTILES)
    return {f"q{int(100 * q):02d}": float(x) for q, x in zip(QUANTILES, qs, strict=True)}


def _extreme(e: np.ndarray) -> dict:
    return {"share_below_0.05": float(np.mean(e < 0.05)),
            "share_above_0.95": float(np.mean(e > 0.95))}


def fit_row(gen, name: str, seconds: float) -> dict:
    info = gen.info
    prop = info["propensity"]
    sel = select("classification", gen.X.to_numpy(), gen.t_real, 0,
                 learners=(prop["learner"],))  # the chosen learner's out-of-fold predictions
    row = {"generator": name, "table": info["table"], "base": info["base"], "n": gen.n,
           "d": gen.X.shape[1], "treated_share": float(gen.t_real.mean()),
           "outcome_kind": gen.outcome_kind, "fit_seconds": round(seconds, 1),
           "propensity_learner": prop["learner"],
           "propensity_cv_logloss": prop["cv_loss"][prop["learner"]],
           "propensity_pseudo_r2": prop["cv_r2"],
           "propensity_cv_auc": float(roc_auc_score(gen.t_real, sel.oof)),
           "propensity_clipped_share": prop["clipped_share"],
           "propensity_clipping_added_treated": prop.get("clipping_added_treated", np.nan)}
    for a, arm in enumerate(gen.arms):
        s = arm.summary
        parts = {k: v for k, v in s.items() if isinstance(v, dict) and "learner" in v}
        row[f"arm{a}_rows"] = s["n"]
        row[f"arm{a}_learners"] = "; ".join(f"{k}={v['learner']}" for k, v in parts.items())
        row[f"arm{a}_cv_r2"] = s["cv_r2"]
    return row, sel


def propensity_rows(gen, name: str, samples, analyst_oof_real, analyst_seeds: int) -> list[dict]:
    e = gen.propensity
    rows = []
    for a, label in ((1, "treated"), (0, "control")):
        real = e[gen.t_real == a]
        sim = np.concatenate([e[ds.t == a] for ds in samples])
        for view, r, s in (("fitted e(x)", real, sim),):
            rows.append({"generator": name, "view": view, "arm": label, "source": "real",
                         "n": len(r), **_q(r), **_extreme(r), "ks_vs_real": 0.0})
            rows.append({"generator": name, "view": view, "arm": label, "source": "simulated",
                         "n": len(s) / len(samples), **_q(s), **_extreme(s),
                         "ks_vs_real": float(ks_2samp(r, s).statistic)})
    # analyst's view: the same learner refitted out of fold on the real / simulated treatment
    learner = gen.info["propensity"]["learner"]
    X = gen.X.to_numpy()
    sims = [select("classification", X, ds.t, 0, learners=(learner,)).oof
            for ds in samples[:analyst_seeds]]
    for a, label in ((1, "treated"), (0, "control")):
        r = analyst_oof_real[gen.t_real == a]
        s = np.concatenate([oof[ds.t == a] for oof, ds in zip(sims, samples, strict=False)])
        rows.append({"generator": name, "view": "analyst (cross-fitted)", "arm": label,
                     "source": "real", "n": len(r), **_q(r), **_extreme(r), "ks_vs_real": 0.0})
        rows.append({"generator": name, "view": "analyst (cross-fitted)", "arm": label,
                     "source": "simulated", "n": len(s) / len(sims), **_q(s), **_extreme(s),
                     "ks_vs_real": float(ks_2samp(r, s).statistic)})
    return rows


def outcome_rows(gen, name: str, samples) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    top = [arm.top for arm in gen.arms]
    for a in (1, 0):
        real = gen.y_real[gen.t_real == a]
        stats = []
        for ds in samples:
            sim = ds.y[ds.t == a]
            boot = rng.choice(real, len(real), replace=True)
            stats.append({
                "mean": sim.mean(), "sd": sim.std(), **_q(sim),
                "zero_share": float(np.mean(sim == 0)),
                "top_share": float(np.mean(sim == top[a])) if top[a] else 0.0,
                "wasserstein": wasserstein_distance(real, sim),
                "wasserstein_boot": wasserstein_distance(real, boot),
                "ks": ks_2samp(real, sim).statistic, "ks_boot": ks_2samp(real, boot).statistic})
        sim_mean = pd.DataFrame(stats).mean()
        base = {"generator": name, "arm": "treated" if a == 1 else "control"}
        rows.append({**base, "source": "real", "n": len(real), "mean": real.mean(),
                     "sd": real.std(), **_q(real), "zero_share": float(np.mean(real == 0)),
                     "top_share": float(np.mean(real == top[a])) if top[a] else 0.0})
        rows.append({**base, "source": "simulated (mean over seeds)",
                     "n": float(np.mean([np.sum(ds.t == a) for ds in samples])),
                     **sim_mean.to_dict()})
    return rows


def effect_row(gen, name: str, samples, att_samples) -> dict:
    info = gen.info
    tau = gen.tau
    naive_real = (gen.y_real[gen.t_real == 1].mean() - gen.y_real[gen.t_real == 0].mean())
    naive_sim = np.array([ds.y[ds.t == 1].mean() - ds.y[ds.t == 0].mean() for ds in samples])
    truth_ate = np.array([ds.true_effect for ds in samples])
    truth_att = np.array([ds.true_effect for ds in att_samples])
    src = info["source_effect"]
    return {
        "generator": name, "ate": float(tau.mean()),
        "att_at_real_t": float(tau[gen.t_real == 1].mean()),
        "att_simulated_mean": float(truth_att.mean()), "att_simulated_sd": float(truth_att.std()),
        "sd_tau": float(tau.std()), "source_estimand": info["source_estimand"],
        "source_effect": src, "source_sd_tau": info.get("source_tau_sd", np.nan),
        "naive_real": float(naive_real), "naive_real_bias_vs_source": float(naive_real - src),
        "naive_sim_mean": float(naive_sim.mean()),
        "naive_sim_bias_ate": float(np.mean(naive_sim - truth_ate)),
        "naive_sim_rel_error_ate": float(np.mean(np.abs(naive_sim - truth_ate)
                                                 / np.abs(truth_ate))),
        "naive_sim_bias_att": float(np.mean(naive_sim - truth_att)),
    }


def _fmt(x, digits: int = 3) -> str:
    if isinstance(x, str):
        return x
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def _table(df: pd.DataFrame, cols: list[str], header: list[str] | None = None) -> list[str]:
    header = header or cols
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return lines


def report(fits, props, outs, effs, seeds: int, analyst_seeds: int, seconds: float) -> str:
    lines = [
        "# Realistic generators: simulated vs real data",
        "",
        f"Machine: {machine()}. Command: `{command()}` ({seconds / 60:.1f} min, one thread for "
        "the fits). Seeds: the ATE suites' seeds 1..{0} (IHDP / ACIC: the first {0} of each "
        "base's draws), ATT seeds 21..{1}; the analyst's propensity view uses the first "
        "{2} seeds.".format(seeds, 20 + seeds, analyst_seeds),
        "",
        "## Fitted models (cross-validated)",
        "",
        "Propensity: the chosen learner, its out-of-fold log loss, pseudo-R^2 (1 - log loss / "
        "constant's) and AUC; the share of units whose fitted e(x) was clipped to [0.0001, "
        "0.9999] and the expected number of treated units the clipping adds. Outcome: the "
        "chosen learners per part and the out-of-fold R^2 of y per arm (arm 1 = treated; "
        "LaLonde's treated arm has 185 rows).",
        "",
    ]
    lines += _table(fits, ["generator", "n", "d", "treated_share", "outcome_kind",
                           "propensity_learner", "propensity_pseudo_r2", "propensity_cv_auc",
                           "propensity_clipped_share", "propensity_clipping_added_treated",
                           "arm0_learners", "arm0_cv_r2",
                           "arm1_learners", "arm1_cv_r2", "fit_seconds"],
                    ["generator", "N", "d", "treated", "y kind", "e learner", "e pseudo-R^2",
                     "e AUC", "e clipped", "clip adds treated", "arm 0 learners", "arm 0 R^2",
                     "arm 1 learners", "arm 1 R^2", "fit s"])
    lines += ["", "## Propensity distributions per arm, real vs simulated", "",
              "`fitted e(x)`: the generator's propensity among the real and the simulated "
              "treated / controls (simulated: pooled over seeds). `analyst`: a propensity "
              "cross-fitted by the same learner on the real treatment and on simulated "
              "treatments, i.e. what an analyst would estimate. `KS`: Kolmogorov-Smirnov "
              "distance to the real row above it.", ""]
    lines += _table(props, ["generator", "view", "arm", "source", "n", "q05", "q25", "q50",
                            "q75", "q95", "share_below_0.05", "share_above_0.95",
                            "ks_vs_real"],
                    ["generator", "view", "arm", "source", "n", "q05", "q25", "q50", "q75",
                     "q95", "e < 0.05", "e > 0.95", "KS"])
    lines += ["", "## Outcome distributions per arm, real vs simulated", "",
              "Simulated: each statistic averaged over the seeds. `W1` / `KS`: Wasserstein-1 and "
              "Kolmogorov-Smirnov distance between the real arm and a simulated arm; "
              "`W1 boot` / `KS boot`: the same distance between the real arm and a bootstrap "
              "resample of itself (pure sampling noise, for scale). The simulated treated arm "
              "is a different population from the real one wherever the fitted propensity "
              "gives real controls some chance of treatment (see the propensity table), so "
              "its distribution is not expected to match exactly.", ""]
    lines += _table(outs, ["generator", "arm", "source", "n", "mean", "sd", "q05", "q50",
                           "q95", "zero_share", "top_share", "wasserstein", "wasserstein_boot",
                           "ks", "ks_boot"],
                    ["generator", "arm", "source", "n", "mean", "sd", "q05", "q50", "q95",
                     "zeros", "top code", "W1", "W1 boot", "KS", "KS boot"])
    lines += ["", "## Effects and the naive estimator's bias", "",
              "`ATE`: the generator's truth for every seed (X is the fixed real table). "
              "`ATT real t`: mean effect over the real treated; `ATT sim`: mean (sd) of the "
              "ATT suite's truths. `source`: the source's own effect (LaLonde: the NSW "
              "experimental ATT 1794, an estimate with SE ~670; IHDP / ACIC: the simulation's "
              "true SATE of the base; Twins: mean(y1 - y0) observed). `naive real - source`: "
              "the difference in means on the real data minus that effect; `naive sim bias`: "
              "mean over seeds of the naive estimate minus the dataset's truth (ATE and ATT), "
              "and its mean relative error for the ATE.", ""]
    effs = effs.assign(att_sim=[f"{_fmt(m)} ({_fmt(s)})" for m, s in
                                zip(effs["att_simulated_mean"], effs["att_simulated_sd"],
                                    strict=True)])
    lines += _table(effs, ["generator", "ate", "att_at_real_t", "att_sim", "sd_tau",
                           "source_estimand", "source_effect", "source_sd_tau",
                           "naive_real_bias_vs_source", "naive_sim_bias_ate",
                           "naive_sim_rel_error_ate", "naive_sim_bias_att"],
                    ["generator", "ATE", "ATT real t", "ATT sim (sd)", "sd tau", "source",
                     "source effect", "source sd tau", "naive real - source",
                     "naive sim bias ATE", "naive rel. err. ATE", "naive sim bias ATT"])
    return "\n".join(lines) + "\n"


def write_docs(text: str) -> None:
    if not DOCS.exists():
        return
    doc = DOCS.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        return
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = text.split("\n", 2)[2]  # drop the title line
    body = body.replace("\n## ", "\n### ")
    DOCS.write_text(head + BEGIN + "\n" + body + END + tail, encoding="utf-8")


ISSUE_PSID = {"exact": 0.166, "zero-shot": 0.143, "exact-aug": 0.205, "zero-shot-aug": 0.186,
              "dml": 0.058, "ipw": 0.061, "naive": 0.080}
"""Issue 10's mean relative errors on its own LaLonde-PSID-like ATE data (20 datasets)."""
METHOD_ORDER = ("naive", "ipw", "aipw", "dml", "tlearner", "exact", "zero-shot", "exact-aug",
                "zero-shot-aug")


def bench_tables(bench_dir: Path) -> str:
    """Suite x method tables (mean relative error, MAE, 95% coverage, datasets) from a
    ``cina bench`` cache, with issue 10's PSID row for comparison."""
    import json

    latest: dict = {}
    with open(bench_dir / "cache.jsonl", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                rec = json.loads(line)
                latest[(rec["suite"], rec["dataset"], rec["method"])] = rec
    df = pd.DataFrame(latest.values())
    ok = df[df["status"] == "ok"]
    methods = [m for m in METHOD_ORDER if m in set(ok["method"])]
    suites = list(dict.fromkeys(ok["suite"]))
    g = ok.groupby(["suite", "method"])
    stats = pd.DataFrame({"rel": g["rel_error"].mean(), "mae": g["abs_error"].mean(),
                          "cov": g["covered"].mean(), "n": g["dataset"].nunique(),
                          "sec": g["cpu_seconds"].median()})
    failed = df[df["status"] != "ok"].groupby(["suite", "method"]).size()

    def cell(suite, method, col, fmt):
        if (suite, method) not in stats.index:
            return "fail" if (suite, method) in failed.index else ""
        v = stats.loc[(suite, method), col]
        return fmt(v) if pd.notna(v) else ""

    lines = []
    for title, col, fmt in (
            ("Mean relative error |estimate - truth| / |truth|", "rel", lambda v: f"{v:.3f}"),
            ("MAE", "mae", _fmt),
            ("95% interval coverage", "cov", lambda v: f"{v:.2f}"),
            ("Datasets with a result", "n", lambda v: f"{int(v)}"),
            ("Median CPU seconds per dataset", "sec", lambda v: f"{v:.1f}")):
        lines += [f"### {title}", "", "| suite | " + " | ".join(methods) + " |",
                  "|---|" + "---|" * len(methods)]
        for suite in suites:
            lines.append(f"| {suite} | " + " | ".join(cell(suite, m, col, fmt)
                                                      for m in methods) + " |")
        if col == "rel":
            lines.append("| issue 10, its PSID-like ATE data | " + " | ".join(
                f"{ISSUE_PSID[m]:.3f}" if m in ISSUE_PSID else "" for m in methods) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="draws per generator (default 20)")
    ap.add_argument("--analyst-seeds", type=int, default=3,
                    help="draws whose propensity is cross-fitted again (default 3)")
    ap.add_argument("--generators", default="",
                    help="comma-separated generator names (psid, cps, twins, ihdp-r1, acic-s4, "
                         "...); default all")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--bench-tables", metavar="DIR", default="",
                    help="only write DIR/tables.md: suite x method tables of a cina bench "
                         "output folder (relative error, MAE, coverage)")
    args = ap.parse_args(argv)
    if args.bench_tables:
        bench_dir = Path(args.bench_tables)
        text = (f"# {bench_dir.name}: suite x method tables\n\nWritten by `{command()}` from "
                f"`{bench_dir}/cache.jsonl` (latest record per item). Machine: {machine()}.\n\n"
                + bench_tables(bench_dir))
        (bench_dir / "tables.md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    wanted = {g.strip() for g in args.generators.split(",") if g.strip()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fits, props, outs, effs = [], [], [], []
    for table, base in plan():
        name = generator_name(table, base)
        if wanted and name not in wanted:
            continue
        t0 = time.perf_counter()
        gen = realistic_generator(table, base)
        seconds = time.perf_counter() - t0
        print(f"{name}: fitted in {seconds:.1f} s", flush=True)
        ate_seeds = range(1, args.seeds + 1)
        samples = [gen.sample(s) for s in ate_seeds]
        att_samples = [gen.sample(s, "att") for s in range(21, 21 + args.seeds)]
        row, sel = fit_row(gen, name, seconds)
        fits.append(row)
        props += propensity_rows(gen, name, samples, sel.oof, args.analyst_seeds)
        outs += outcome_rows(gen, name, samples)
        effs.append(effect_row(gen, name, samples, att_samples))
    frames = [pd.DataFrame(x) for x in (fits, props, outs, effs)]
    names = ("fits.csv", "propensity.csv", "outcomes.csv", "effects.csv")
    if wanted:
        # refresh the named generators' rows of an earlier full run, keep the others
        order = {generator_name(t, b): i for i, (t, b) in enumerate(plan())}
        for i, fname in enumerate(names):
            if (out / fname).exists():
                old = pd.read_csv(out / fname)
                old = old[~old["generator"].isin(wanted)]
                merged = pd.concat([old, frames[i]], ignore_index=True)
                key = merged["generator"].map(order)
                frames[i] = merged.iloc[np.argsort(key.to_numpy(), kind="stable")]
    for df, fname in zip(frames, names, strict=True):
        df.to_csv(out / fname, index=False, float_format="%.6g")
    fits, props, outs, effs = frames
    text = report(fits, props, outs, effs, args.seeds, args.analyst_seeds,
                  time.perf_counter() - start)
    if wanted:
        text = text.replace(
            "one thread for the fits)",
            f"one thread for the fits; this run refreshed {', '.join(sorted(wanted))}, the "
            "other generators' rows are from the previous full run)", 1)
    (out / "checks.md").write_text(text, encoding="utf-8")
    if out == OUT and set(fits["generator"]) == {generator_name(t, b) for t, b in plan()}:
        write_docs(text)
    print(f"wrote {out}/checks.md", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
