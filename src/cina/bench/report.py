"""Benchmark report from the cache: results.csv, summary.csv, summary.md, ranks.csv and plots.

Everything is recomputed from ``OUT/cache.jsonl`` (latest record per suite, dataset, method), so
the report always covers every item computed so far, by any command that wrote to ``OUT``
(the commands are listed from ``OUT/commands.log``). The report's files are written together
(:class:`cina.outputs.OutputSet`): the previous report stays in place until every new file was
written. ``summary.md`` is built one section at a time (one ``_*_section`` function each).

The reference numbers of the "anchors" section are data, not code: ``anchors.toml`` beside this
module, which states where they come from.
"""

from __future__ import annotations

import math
import os
import platform
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets.real import LALONDE_ATE as LALONDE_REFERENCE
from ..outputs import OutputSet
from .runner import RECORD_FIELDS, load_cache
from .suites import GROUPS, SUITES

__all__ = ["records_frame", "summarize", "average_ranks", "write_report", "load_anchors",
           "ANCHOR_TABLE", "LALONDE_REFERENCE", "COMMANDS_LOG", "REPORT_FILES"]

COMMANDS_LOG = "commands.log"
REPORT_FILES = ("results.csv", "summary.csv", "summary.md", "ranks.csv", "mae_heatmap.png",
                "time_vs_error.png")
"""Every file the report may write (the cache and the command log are appended to instead)."""
ANCHOR_TABLE = Path(__file__).with_name("anchors.toml")
"""Reference numbers of public estimators on the benchmark data (provenance in the file)."""


@lru_cache(maxsize=1)
def load_anchors() -> dict:
    """``{"source": str, "protocol": str, "suites": {suite: {method: [(label, value), ...]}}}``
    from :data:`ANCHOR_TABLE`."""
    with open(ANCHOR_TABLE, "rb") as fh:
        raw = tomllib.load(fh)
    suites = {s: {m: [tuple(pair) for pair in refs] for m, refs in table.items()}
              for s, table in raw["suites"].items()}
    return {"source": raw["source"], "protocol": raw["protocol"], "suites": suites}


PROTOCOL_NOTES = [
    "ihdp: realizations 1-50, all 747 units, sample ATE.",
    "acic2016: settings 1-77 (replicate 1), each subsampled to 1,000 units (stratified by arm, "
    "seed 0), the CInA paper's protocol; truth = SATE of the subsample. The anchors' ACIC "
    "numbers (except kernel balancing) are on the full 4,802 units.",
    "lalonde-cps: ATT; all 185 NSW treated + 4,000 of the 15,992 CPS-1 controls drawn without "
    "replacement, seeds 0, 1, 2 (3 datasets), because exact kernel balancing needs an N x N "
    f"kernel; reference {LALONDE_REFERENCE} (the NSW experimental estimate, itself with SE "
    "about 670).",
    f"lalonde-psid: ATT; all 2,675 units; reference {LALONDE_REFERENCE}.",
    "twins: 2,000 of the 11,984 pairs (stratified by arm), seeds 0-4; the truth is recomputed on "
    "each subsample from the observed y0/y1 (as the anchors did for kernel balancing).",
    "scm-prior: 40 datasets of the default pretraining prior with N restricted to 100-1,500, "
    "evaluation stream seed 20260001.",
    "simulation-a: 20 datasets, N = 1,000, shift 0.2, seeds 1-20.",
    "semi-synthetic: the LaLonde NSW-DW experimental covariate table (445 x 8; not a test "
    "suite) resampled with replacement to N = 1,000, treatment and outcome simulated by the "
    "default prior's mechanisms, seeds 1-20.",
    "ood-*: 20 datasets each of ood_prior(kind) for dense / mechanism / overlap / wide, N "
    "restricted to 100-1,500 (stream seeds 20260002-20260005).",
]


# --- tables ----------------------------------------------------------------------------------
def _order(values, preferred) -> list:
    values = list(dict.fromkeys(values))
    pref = [v for v in dict.fromkeys(preferred) if v in values]
    return pref + sorted(v for v in values if v not in pref)


def _method_order(methods) -> list[str]:
    try:
        from ..registry import available_methods

        preferred = ["naive", "ipw", "entropy", "aipw", "dml", "tlearner", "exact", "fit",
                     "zero-shot"] + available_methods()
    except Exception:  # pragma: no cover
        preferred = []
    return _order(methods, preferred)


def records_frame(records) -> pd.DataFrame:
    """One row per item, columns :data:`RECORD_FIELDS`, in suite / dataset / method order."""
    if isinstance(records, dict):
        records = list(records.values())
    df = pd.DataFrame(list(records))
    for col in RECORD_FIELDS:
        if col not in df.columns:
            df[col] = None
    df = df[list(RECORD_FIELDS)]
    if df.empty:
        return df
    suites = _order(df["suite"], list(SUITES))
    methods = _method_order(df["method"])
    df["_s"] = df["suite"].map({s: i for i, s in enumerate(suites)})
    df["_m"] = df["method"].map({m: i for i, m in enumerate(methods)})
    df["_d"] = df.groupby("suite", sort=False).cumcount()
    first = {}
    for s, ds in zip(df["suite"], df["dataset"], strict=True):
        first.setdefault((s, ds), len(first))
    df["_d"] = [first[(s, d)] for s, d in zip(df["suite"], df["dataset"], strict=True)]
    df = df.sort_values(["_s", "_d", "_m"]).drop(columns=["_s", "_d", "_m"])
    return df.reset_index(drop=True)


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per suite and method: datasets ok / failed, MAE ± SE, mean relative error, median
    seconds, interval coverage, mean estimate and its sd over datasets."""
    rows = []
    if df.empty:
        return pd.DataFrame()
    for (suite, method), g in df.groupby(["suite", "method"], sort=False):
        ok = _ok(g)
        err = pd.to_numeric(ok["abs_error"], errors="coerce").dropna()
        rel = pd.to_numeric(ok["rel_error"], errors="coerce").dropna()
        cov = ok["covered"].dropna()
        sec = pd.to_numeric(ok["seconds"], errors="coerce").dropna()
        est = pd.to_numeric(ok["estimate"], errors="coerce").dropna()
        rows.append({
            "suite": suite, "kind": SUITES[suite].kind if suite in SUITES else "",
            "method": method, "estimand": g["estimand"].dropna().iloc[0]
            if g["estimand"].notna().any() else None,
            "datasets_ok": int(len(ok)), "datasets_failed": int(len(g) - len(ok)),
            "mae": float(err.mean()) if len(err) else np.nan,
            "mae_se": float(err.std(ddof=1) / math.sqrt(len(err))) if len(err) > 1 else np.nan,
            "mean_rel_error": float(rel.mean()) if len(rel) else np.nan,
            "median_seconds": float(sec.median()) if len(sec) else np.nan,
            "coverage": float(cov.astype(bool).mean()) if len(cov) else np.nan,
            "n_intervals": int(len(cov)),
            "mean_estimate": float(est.mean()) if len(est) else np.nan,
            "sd_estimate": float(est.std(ddof=1)) if len(est) > 1 else np.nan,
            "mean_truth": float(pd.to_numeric(ok["true_effect"], errors="coerce").mean())
            if len(ok) else np.nan,
        })
    out = pd.DataFrame(rows)
    return out


def _eligible(g: pd.DataFrame, methods: list[str]) -> list[str]:
    """Methods with a result on at least half of the datasets they were run on (and >= 1)."""
    out = []
    for m in methods:
        gm = g[g["method"] == m]
        n_ok = int((gm["status"] == "ok").sum())
        if n_ok and 2 * n_ok >= len(gm):
            out.append(m)
    return out


def _common_mae(df: pd.DataFrame, suite: str, methods: list[str]) -> dict[str, float]:
    """MAE per ranked method over the datasets of ``suite`` where every ranked method has a
    result. Ranked: the methods of ``methods`` that succeeded on at least half of the datasets
    they ran on (a method failing on most of a suite is not ranked there)."""
    g = df[(df["suite"] == suite) & df["method"].isin(methods)]
    ranked = _eligible(g, list(methods))
    ok = _ok(g[g["method"].isin(ranked)])
    per = ok.groupby("dataset")["method"].nunique()
    common = set(per[per == len(ranked)].index)
    ok = ok[ok["dataset"].isin(common)]
    return ok.groupby("method")["abs_error"].apply(lambda s: pd.to_numeric(s).mean()).to_dict()


def average_ranks(summary: pd.DataFrame, suites, *, df: pd.DataFrame | None = None,
                  methods=None) -> pd.DataFrame:
    """Average over ``suites`` of each method's MAE rank within the suite (1 = best; ties get
    the average rank). A method is left out of a suite's ranking when it has no MAE there or
    failed on more than half of the suite's datasets it was run on (summary columns
    ``datasets_ok`` / ``datasets_failed``, when present).

    With ``df`` (the results table) the MAE of each suite is recomputed on the datasets where
    every ranked method has a result, so methods run on a subset are compared like for like.
    Returns columns avg_rank, n_suites (index = method) sorted by avg_rank.
    """
    suites = [s for s in suites if s in set(summary["suite"])] if len(summary) else []
    if methods is None:
        methods = list(dict.fromkeys(summary["method"])) if len(summary) else []
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    for s in suites:
        if df is not None:
            mae = pd.Series(_common_mae(df, s, list(methods)), dtype=float)
        else:
            sub = summary[(summary["suite"] == s) & summary["method"].isin(methods)]
            if "datasets_ok" in sub and "datasets_failed" in sub:
                sub = sub[sub["datasets_ok"] >= sub["datasets_failed"]]
            mae = pd.Series(sub["mae"].to_numpy(dtype=float), index=sub["method"])
        mae = mae.dropna()
        if mae.empty:
            continue
        r = mae.rank(method="average")
        for m, v in r.items():
            ranks[m].append(float(v))
    rows = [{"method": m, "avg_rank": float(np.mean(v)) if v else np.nan, "n_suites": len(v)}
            for m, v in ranks.items()]
    out = pd.DataFrame(rows, columns=["method", "avg_rank", "n_suites"])
    return out.sort_values(["avg_rank", "method"], na_position="last").set_index("method")


# --- formatting ------------------------------------------------------------------------------
def _f(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    x = float(x)
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:.0f}"
    if ax >= 1e-3:
        return f"{x:.{max(0, digits - 1 - math.floor(math.log10(ax)))}f}"
    return f"{x:.2e}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _machine() -> list[str]:
    load = ""
    try:
        load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    return [f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs; Python {platform.python_version()}",
            f"- load average at report time (1/5/15 min): {load}",
            f"- report written: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"]


def _commands(out: Path) -> list[str]:
    path = out / COMMANDS_LOG
    if not path.exists():
        return []
    return [ln.rstrip("\n") for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


# --- plots -----------------------------------------------------------------------------------
def _plots(summary: pd.DataFrame, suites: list[str], methods: list[str]
           ) -> tuple[list[str], dict[str, Callable[[str], None]]]:
    """The plots' markdown lines and their files (name -> writer of a temporary path)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import LogNorm
        from matplotlib.figure import Figure
    except ImportError:
        return ["(plots skipped: matplotlib is not installed)"], {}
    piv = summary.pivot(index="suite", columns="method", values="mae").reindex(
        index=suites, columns=methods)
    rel = piv.div(piv.min(axis=1), axis=0)
    notes = []
    files: dict[str, Callable[[str], None]] = {}
    fig = Figure(figsize=(max(7.0, 2.5 + 0.9 * len(methods)), 1.6 + 0.45 * len(suites)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    vals = rel.to_numpy(dtype=float)
    finite = vals[np.isfinite(vals)]
    vmax = max(float(finite.max()), 1.01) if finite.size else 2.0
    im = ax.imshow(np.ma.masked_invalid(vals), cmap="viridis_r", aspect="auto",
                   norm=LogNorm(vmin=1.0, vmax=min(vmax, 100.0)))
    ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
    ax.set_yticks(range(len(suites)), suites)
    for i in range(len(suites)):
        for j in range(len(methods)):
            v = piv.iloc[i, j]
            if np.isfinite(v):
                ax.text(j, i, _f(v, 2), ha="center", va="center", fontsize=7,
                        color="white" if rel.iloc[i, j] > math.sqrt(min(vmax, 100.0)) else "black")
    fig.colorbar(im, ax=ax, label="MAE / best MAE in suite")
    ax.set_title("MAE by suite and method\n(numbers: MAE; colour: ratio to the suite's best)",
                 fontsize=10)
    fig.tight_layout()
    files["mae_heatmap.png"] = lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=120)
    notes.append("![MAE by suite and method](mae_heatmap.png)")

    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    markers = "osD^v<>pPX*hH8d"
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    for j, m in enumerate(methods):
        for i, s in enumerate(suites):
            row = summary[(summary["suite"] == s) & (summary["method"] == m)]
            if row.empty:
                continue
            x, y = float(row["median_seconds"].iloc[0]), float(rel.loc[s, m])
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            ax.scatter(max(x, 1e-4), y, color=cmap(j % 10), marker=markers[i % len(markers)],
                       s=36, label=m if i == 0 else None, alpha=0.85)
    for i, s in enumerate(suites):
        ax.scatter([], [], facecolors="none", edgecolors="black",
                   marker=markers[i % len(markers)], label=s)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("median wall seconds per dataset (one thread)")
    ax.set_ylabel("MAE / best MAE in the suite")
    ax.set_title("time vs error: one point per method and suite")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    files["time_vs_error.png"] = lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=120)
    notes.append("![time vs error](time_vs_error.png)")
    return notes, files


def _error_kind(status: str) -> str:
    """A failure message with numbers and quoted names masked, to group similar failures."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(status))
    text = re.sub(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
    return text[:120]


def _subset_notes(df: pd.DataFrame) -> list[str]:
    """Which methods ran on fewer datasets than their suite holds (``--max-datasets``)."""
    from .suites import suite_datasets

    sizes = {}
    for s in df["suite"].unique():
        try:
            sizes[s] = len(suite_datasets(s))
        except Exception:  # noqa: BLE001 - a suite no longer registered
            continue
    parts: dict[str, list[str]] = {}
    counts = df.groupby(["method", "suite"], sort=False)["dataset"].nunique()
    for (m, s), k in counts.items():
        if s in sizes and k < sizes[s]:
            parts.setdefault(m, []).append(f"{s} {k}/{sizes[s]}")
    return [f"`{m}` has results on fewer datasets than the suite holds (a subset run with "
            f"`--max-datasets`, evenly spread over the suite, or a run not finished): "
            f"{', '.join(v)}; compare it on the 'common datasets' ranks."
            for m, v in parts.items()]


# --- the report ------------------------------------------------------------------------------
@dataclass
class _Report:
    """What every section of summary.md reads, and the files the report will write."""

    out: Path
    df: pd.DataFrame
    summary: pd.DataFrame
    suites: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    files: dict[str, Callable[[str], None]] = field(default_factory=dict)


def _anchor_rows(summary: pd.DataFrame, suite: str, methods: list[str], lalonde: bool
                 ) -> list[list[str]]:
    table = load_anchors()["suites"].get(suite, {})
    rows = []
    for m in methods + ["(other)"]:
        refs = table.get(m)
        if m == "(other)":
            for name, val in refs or []:
                rows.append(["—", "—", name, val])
            continue
        r = summary[(summary["suite"] == suite) & (summary["method"] == m)]
        if r.empty:
            ours = "—"
        elif lalonde:
            ours = _f(r["mean_estimate"].iloc[0] - LALONDE_REFERENCE, 4)
        else:
            ours = f"{_f(r['mae'].iloc[0])} ± {_f(r['mae_se'].iloc[0], 2)}"
        n_ok = "—" if r.empty else str(int(r["datasets_ok"].iloc[0]))
        if refs:
            for name, val in refs:
                rows.append([m, f"{ours} ({n_ok})", name, val])
        elif not r.empty:
            rows.append([m, f"{ours} ({n_ok})", "—", "—"])
    return rows


def _header_section(rep: _Report) -> list[str]:
    lines = ["# Benchmark: CInA and baselines on the benchmark suites", ""]
    lines += ["Generated by `cina bench` (src/cina/bench) from the cache `cache.jsonl`; every "
              "number below is recomputed from it.", ""]
    lines += _machine()
    cmds = _commands(rep.out)
    if cmds:
        lines += ["- commands that filled the cache (UTC start, wall time):", ""]
        lines += ["  " + c for c in cmds]
    return lines + [""]


def _protocol_section(rep: _Report, extra_notes: list[str]) -> list[str]:
    suites = rep.suites
    lines = ["## Protocol", ""]
    lines += [f"- {n}" for n in PROTOCOL_NOTES if n.split(":")[0].rstrip("*").rstrip("-")
              in " ".join(suites) or n.startswith("ood-*") and any(
                  s.startswith("ood") for s in suites)]
    lines += ["- MAE: mean absolute error of the estimate against the dataset's true effect "
              "(ATE, or ATT for LaLonde), ± its standard error over datasets; mean relative "
              "error = mean |error| / |truth| (large where a truth is near 0); coverage: share "
              "of 95% normal intervals (estimate ± 1.96 se) containing the truth, for methods "
              "that give an se; seconds: median wall time of one fit (input validation "
              "excluded), one thread, on a machine shared with other jobs (indicative).",
              "- Failures (dataset that did not load, an estimator that raised) are counted in "
              "'failed' and excluded from the MAE of that method; see results.csv (status).",
              "- Each method runs with its default settings and the dataset's estimand."]
    for n in list(extra_notes) + _subset_notes(rep.df):
        lines.append(f"- {n}")
    return lines + [""]


def _mae_section(rep: _Report) -> list[str]:
    df, summary, methods = rep.df, rep.summary, rep.methods
    lines = ["## MAE per suite and method", "",
             "MAE (number of datasets with a result; failures marked !k). In bold: the best "
             "MAE of the suite among the methods that ran on all of its datasets and "
             "succeeded on at least half (a subset's MAE is not comparable).", ""]
    rows = []
    for s in rep.suites:
        sub = summary[summary["suite"] == s].set_index("method")
        attempted = df[df["suite"] == s].groupby("method")["dataset"].nunique()
        full = attempted.max() if len(attempted) else 0
        fair = sub[(sub["datasets_ok"] >= sub["datasets_failed"])
                   & (attempted.reindex(sub.index) == full)]
        best = fair["mae"].min()
        row = [s]
        for m in methods:
            if m not in sub.index:
                row.append("—")
                continue
            r = sub.loc[m]
            v = _f(r["mae"])
            if m in fair.index and np.isfinite(r["mae"]) and r["mae"] == best:
                v = f"**{v}**"
            fail = f" !{int(r['datasets_failed'])}" if r["datasets_failed"] else ""
            row.append(f"{v} ({int(r['datasets_ok'])}{fail})")
        rows.append(row)
    return lines + _md_table(["suite"] + methods, rows) + [""]


def _rank_section(rep: _Report) -> list[str]:
    """The average-rank table; also registers ranks.csv."""
    df, summary, methods, suites = rep.df, rep.summary, rep.methods, rep.suites
    lines = ["## Average rank of MAE", "",
             "Rank of each method's MAE within each suite (1 = best, ties averaged), averaged "
             "over the suites of a group. 'all datasets': each method's MAE over the datasets "
             "it ran on; 'common datasets': MAE recomputed on the datasets every ranked method "
             "ran on (like for like where a method ran on a subset). A method that failed on "
             "more than half of a suite's datasets is not ranked on that suite (the number of "
             "suites ranked is in ranks.csv). For reference, the CInA paper reports CInA best "
             "on average over its real-world suites, average rank 1.83 vs 3.0 for DML "
             "(Zhang et al., ICML 2024; its own set of baselines and protocols).", ""]
    rank_tables = {}
    grouped = {g: [s for s in GROUPS[g] if s in suites] for g in ("real", "synthetic", "ood")}
    grouped["other"] = [s for s in suites if not any(s in v for v in grouped.values())]
    for group, gs in grouped.items():
        if not gs:
            continue
        a = average_ranks(summary, gs, methods=methods)
        c = average_ranks(summary, gs, df=df, methods=methods)
        rank_tables[group] = (a, c, gs)
    if not rank_tables:
        return lines
    header = ["method"]
    for group, (_, _, gs) in rank_tables.items():
        header += [f"{group} ({len(gs)} suites), all datasets", f"{group}, common datasets"]
    rank_rows = []
    for m in methods:
        row = [m]
        for a, c, _ in rank_tables.values():
            row += [_f(a.loc[m, "avg_rank"]) if m in a.index else "—",
                    _f(c.loc[m, "avg_rank"]) if m in c.index else "—"]
        rank_rows.append(row)
    rk = []
    for group, (a, c, _gs) in rank_tables.items():
        for m in methods:
            rk.append({"group": group, "method": m,
                       "avg_rank_all": a["avg_rank"].get(m, np.nan),
                       "avg_rank_common": c["avg_rank"].get(m, np.nan),
                       "n_suites": a["n_suites"].get(m, 0)})
    ranks = pd.DataFrame(rk)
    rep.files["ranks.csv"] = lambda tmp: ranks.to_csv(tmp, index=False)
    return lines + _md_table(header, rank_rows) + [""]


def _paired_section(rep: _Report) -> list[str]:
    """CInA exact against each other method on the datasets where both have a result."""
    df, methods = rep.df, rep.methods
    if "exact" not in methods:
        return []
    others = [m for m in methods if m != "exact"]
    lines = ["## CInA exact against each method, paired", "",
             "On the datasets where both have a result: MAE of exact / MAE of the other "
             "method, and the share of datasets where exact has the smaller absolute error "
             "(number of paired datasets).", ""]
    rows = []
    for s in rep.suites:
        g = _ok(df[df["suite"] == s])
        ex = g[g["method"] == "exact"].set_index("dataset")["abs_error"].astype(float)
        row = [s]
        for m in others:
            ot = g[g["method"] == m].set_index("dataset")["abs_error"].astype(float)
            both = ex.index.intersection(ot.index)
            if not len(both):
                row.append("—")
                continue
            a, b = ex.loc[both], ot.loc[both]
            row.append(f"{_f(a.mean())} / {_f(b.mean())} ({100 * float((a < b).mean()):.0f}%"
                       f", {len(both)})")
        rows.append(row)
    return lines + _md_table(["suite"] + [f"exact / {m}" for m in others], rows) + [""]


def _per_suite_section(rep: _Report) -> list[str]:
    df, summary = rep.df, rep.summary
    lines = ["## Per suite", ""]
    for s in rep.suites:
        sub = summary[summary["suite"] == s]
        desc = SUITES[s].description if s in SUITES else ""
        lines += [f"### {s}", "", desc, ""]
        rows = []
        for m in rep.methods:
            r = sub[sub["method"] == m]
            if r.empty:
                continue
            r = r.iloc[0]
            cov = (f"{_f(r['coverage'], 2)} ({int(r['n_intervals'])})"
                   if r["n_intervals"] else "no se")
            rows.append([m, f"{int(r['datasets_ok'])} / {int(r['datasets_failed'])}",
                         f"{_f(r['mae'])} ± {_f(r['mae_se'], 2)}", _f(r["mean_rel_error"]),
                         _f(r["median_seconds"], 2), cov])
        lines += _md_table(["method", "datasets ok / failed", "MAE ± SE", "mean rel. err",
                            "median s", "95% coverage (n)"], rows) + [""]
        errs = df[(df["suite"] == s) & (df["status"] != "ok")]
        if len(errs):
            errs = errs.assign(kind=errs["status"].map(_error_kind))
            lines += ["Failures (messages with numbers and names masked; results.csv has each "
                      "one):", ""]
            for (m, kind), g in errs.groupby(["method", "kind"], sort=False):
                lines.append(f"- {m}: {len(g)} x `{kind}` (e.g. {g['dataset'].iloc[0]}: "
                             f"`{g['status'].iloc[0][:200]}`)")
            lines += [""]
    return lines


def _lalonde_section(rep: _Report) -> list[str]:
    summary = rep.summary
    lal = [s for s in ("lalonde-psid", "lalonde-cps") if s in rep.suites]
    if not lal:
        return []
    ref = f"{LALONDE_REFERENCE:.2f}"
    lines = [f"## LaLonde (ATT; reference {ref}, the NSW experimental estimate)", "",
             "CPS: mean over the 3 control subsamples (sd over subsamples in brackets).", ""]
    rows = []
    for m in rep.methods:
        row = [m]
        for s in lal:
            r = summary[(summary["suite"] == s) & (summary["method"] == m)]
            if r.empty or not r["datasets_ok"].iloc[0]:
                row += ["—", "—"]
                continue
            est, sd = r["mean_estimate"].iloc[0], r["sd_estimate"].iloc[0]
            row += [_f(est, 4) + (f" ({_f(sd, 3)})" if np.isfinite(sd) else ""),
                    _f(est - LALONDE_REFERENCE, 4)]
        rows.append(row)
    header = ["method"]
    for s in lal:
        header += [f"{s} ATT", f"{s} error vs {ref}"]
    return lines + _md_table(header, rows) + [""]


def _anchor_section(rep: _Report) -> list[str]:
    anchors = load_anchors()
    anchored = [s for s in rep.suites if s in anchors["suites"]]
    if not anchored:
        return []
    lines = ["## Side by side with the anchors", "",
             f"Reference numbers {anchors['source']}, from `src/cina/bench/{ANCHOR_TABLE.name}` "
             f"(its header says where they come from). {anchors['protocol']}", ""]
    for s in anchored:
        lines += [f"### {s}", ""]
        lines += _md_table(["method", "ours (datasets)", "anchor estimator", "anchor"],
                           _anchor_rows(rep.summary, s, rep.methods, s.startswith("lalonde")))
        lines += [""]
    return lines


def _plot_section(rep: _Report) -> list[str]:
    notes, files = _plots(rep.summary, rep.suites, rep.methods)
    rep.files.update(files)
    return ["## Plots", ""] + notes + [""]


def _files_section(rep: _Report) -> list[str]:
    return ["## Files", "",
            "- `results.csv`: one row per (suite, dataset, method) with "
            + ", ".join(RECORD_FIELDS) + ".",
            "- `summary.csv`: the per suite and method summary; `ranks.csv`: average ranks.",
            "- `cache.jsonl`: the raw records (the run's resume cache); `commands.log`.", ""]


def write_report(out, *, extra_notes: list[str] | None = None, plots: bool = True
                 ) -> dict[str, Path]:
    """Write results.csv, summary.csv, summary.md (and ranks.csv and the plots) under ``out``
    from its cache, all or nothing; returns the main files' paths."""
    out = Path(out)
    df = records_frame(load_cache(out))
    summary = summarize(df)
    rep = _Report(out, df, summary)
    rep.files["results.csv"] = lambda tmp: df.to_csv(tmp, index=False)
    rep.files["summary.csv"] = lambda tmp: summary.to_csv(tmp, index=False)
    lines = _header_section(rep)
    if df.empty:
        lines += ["No results yet."]
    else:
        rep.suites = _order(df["suite"], list(SUITES))
        rep.methods = _method_order(df["method"])
        lines += _protocol_section(rep, extra_notes or [])
        for section in (_mae_section, _rank_section, _paired_section, _per_suite_section,
                        _lalonde_section, _anchor_section):
            lines += section(rep)
        if plots:
            lines += _plot_section(rep)
        lines += _files_section(rep)
    text = "\n".join(lines) + "\n"
    rep.files["summary.md"] = lambda tmp: Path(tmp).write_text(text, encoding="utf-8")
    outputs = OutputSet(inputs=[out / "cache.jsonl", out / COMMANDS_LOG])
    for name in rep.files:
        outputs.declare(name, out / name)
    outputs.commit(rep.files)
    return {"results": out / "results.csv", "summary_csv": out / "summary.csv",
            "summary_md": out / "summary.md"}
