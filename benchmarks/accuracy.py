"""Accuracy and interval coverage of the default CInA against DML, IPW and the T-learner on the
realistic and the real suites: the table behind CInA's defaults (docs/accuracy.md).

    python benchmarks/accuracy.py                      # run (resumable) and write the tables
    python benchmarks/accuracy.py --report-only        # rebuild the tables from the cache
    python benchmarks/accuracy.py --suites realistic-psid --max-datasets 5

Every (suite, dataset, method) item runs through ``cina bench`` (the same estimators, datasets and
scoring as the CLI), cached in ``results/accuracy/cache.jsonl``: an interrupted run, re-run, goes
on where it stopped. The tables (``results/accuracy/accuracy.md`` and ``accuracy.csv``) give per
suite and method the mean relative error |estimate - truth| / |truth|, the mean absolute error,
the 95% interval coverage, the number of datasets and the median seconds per fit; then each
method's average rank (by mean relative error) over the suites, and the issue's targets with
their status.

Methods: "exact" and "zero-shot" are CInA's default pipeline (relevance key map, stacked outcome
model, bias-aware interval) with the exact solver and the zero-shot model; "exact-plain" is the
paper's estimator (standardised keys, balance guard, no augmentation); "dml" DoubleML's IRM with
random forests, "ipw" logistic IPW, "tlearner" per-arm gradient boosting, "naive" the difference
in means.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import command, machine  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "accuracy"
REALISTIC = ("realistic-psid", "realistic-psid-att", "realistic-cps", "realistic-cps-att",
             "realistic-ihdp", "realistic-acic", "realistic-twins")
REAL = ("ihdp", "acic2016", "lalonde-psid", "lalonde-cps", "twins")
METHODS = ("exact", "zero-shot", "exact-plain", "dml", "ipw", "tlearner", "naive")
DEFAULT = "exact"  # the method CInA() and `cina estimate` run


def run_bench(suites, methods, max_datasets: int | None, out: Path) -> None:
    cmd = [sys.executable, "-m", "cina", "bench", "--suite", ",".join(suites), "--methods",
           ",".join(methods), "--out", str(out), "--no-plots"]
    if max_datasets:
        cmd += ["--max-datasets", str(max_datasets)]
    subprocess.run(cmd, check=True)


def load(out: Path, methods=METHODS) -> pd.DataFrame:
    rows = [json.loads(line) for line in (out / "cache.jsonl").read_text().splitlines()
            if line.strip()]
    df = pd.DataFrame(rows)
    df = df[(df.status == "ok") & df.method.isin(methods)].copy()
    # compare like with like: the datasets on which every method ran (a cache may hold more)
    per = df.groupby(["suite", "dataset"]).method.nunique()
    complete = per[per == df.method.nunique()].index
    df = df.set_index(["suite", "dataset"]).loc[complete].reset_index()
    df["abs_error"] = (df.estimate - df.true_effect).abs()
    df["rel_error"] = df.abs_error / df.true_effect.abs().clip(lower=1e-12)
    return df


def table(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["suite", "method"])
    return pd.DataFrame({
        "rel_error": g.rel_error.mean(), "abs_error": g.abs_error.mean(),
        "coverage": g.covered.mean(), "datasets": g.abs_error.size(),
        "median_seconds": g.seconds.median()}).reset_index()


def ranks(tab: pd.DataFrame) -> pd.DataFrame:
    wide = tab.pivot(index="suite", columns="method", values="rel_error")
    return wide.rank(axis=1).mean().sort_values().rename("average_rank").to_frame()


def targets(tab: pd.DataFrame) -> list[str]:
    wide = tab.pivot(index="suite", columns="method", values="rel_error")
    cover = tab.pivot(index="suite", columns="method", values="coverage")
    lines = []
    realistic = [s for s in REALISTIC if s in wide.index]
    if realistic and "dml" in wide:
        per = wide.loc[realistic, [DEFAULT, "dml"]]
        beaten = (per[DEFAULT] <= per["dml"])
        ratio = per[DEFAULT].mean() / per["dml"].mean()
        lines.append(f"- default <= DML on every realistic suite: "
                     f"{'met' if beaten.all() else 'missed'} ({int(beaten.sum())} of "
                     f"{len(per)}; missed on {', '.join(per.index[~beaten]) or 'none'})")
        lines.append(f"- averaged over the realistic suites, default / DML = {ratio:.2f} "
                     f"(target <= 0.80: {'met' if ratio <= 0.8 else 'missed'})")
    r = ranks(tab)
    if DEFAULT in r.index:
        best = r.index[0]
        lines.append(f"- best average rank over all suites: {best} ({r.iloc[0, 0]:.2f}); "
                     f"default {r.loc[DEFAULT, 'average_rank']:.2f} "
                     f"({'met' if best in (DEFAULT, 'zero-shot') else 'missed'})")
    for suite, target in (("acic2016", 0.18), ("ihdp", 0.115)):
        if suite in wide.index and DEFAULT in wide:
            mae = tab[(tab.suite == suite) & (tab.method == DEFAULT)].abs_error.iloc[0]
            lines.append(f"- {suite} mean absolute error {mae:.3f} (target <= {target}: "
                         f"{'met' if mae <= target else 'missed'})")
    if DEFAULT in cover:
        c = cover[DEFAULT].dropna()
        bad = c[(c < 0.90) | (c > 0.98)]
        lines.append(f"- 95% coverage in [0.90, 0.98] on every suite: "
                     f"{'met' if bad.empty else 'missed'} (outside: "
                     f"{', '.join(f'{s} {v:.2f}' for s, v in bad.items()) or 'none'})")
    return lines


def write(df: pd.DataFrame, out: Path) -> None:
    tab = table(df)
    tab.to_csv(out / "accuracy.csv", index=False)
    wide = tab.pivot(index="suite", columns="method", values="rel_error")
    cols = [m for m in METHODS if m in wide] + [m for m in wide if m not in METHODS]
    cover = tab.pivot(index="suite", columns="method", values="coverage")
    n = tab.pivot(index="suite", columns="method", values="datasets")
    md = ["# Accuracy of CInA's default against the baselines", "",
          f"Machine: {machine()}  ", f"Command: `{command()}`"
          + ("  \nThe `cina bench` runs that filled the cache: `commands.log`."
             if (out / "commands.log").exists() else ""), "",
          "Mean relative error |estimate - truth| / |truth| per suite (datasets in brackets; "
          "the default is `exact`):", "",
          "| suite | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for suite in wide.index:
        cells = []
        best = wide.loc[suite].min()
        for m in cols:
            v = wide.loc[suite].get(m, np.nan)
            k = n.loc[suite].get(m, np.nan)
            cell = "" if not np.isfinite(v) else f"{v:.3f} ({int(k)})"
            cells.append(f"**{cell}**" if np.isfinite(v) and v == best else cell)
        md.append(f"| {suite} | " + " | ".join(cells) + " |")
    md += ["", "95% interval coverage (the T-learner gives no interval):", "",
           "| suite | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for suite in cover.index:
        md.append(f"| {suite} | " + " | ".join(
            "" if not np.isfinite(cover.loc[suite].get(m, np.nan))
            else f"{cover.loc[suite][m]:.2f}" for m in cols) + " |")
    md += ["", "Average rank by mean relative error over the suites above (1 = best):", "",
           "| method | average rank |", "|---|---|"]
    md += [f"| {m} | {r:.2f} |" for m, r in ranks(tab)["average_rank"].items()]
    md += ["", "Targets (issue 10):", "", *targets(tab), ""]
    (out / "accuracy.md").write_text("\n".join(md))
    print("\n".join(md))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(REALISTIC + REAL))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--max-datasets", type=int, default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        run_bench(args.suites.split(","), args.methods.split(","), args.max_datasets, args.out)
    write(load(args.out, args.methods.split(",")), args.out)


if __name__ == "__main__":
    main()
