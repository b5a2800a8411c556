"""Assembly of the one-file HTML report: inline CSS (screen, phone and print), inline SVG figures,
no script, no external resource."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..rules import BALANCE_THRESHOLD, normalize_per_arm
from . import figures
from .content import ReportContent
from .svg import esc, fmt, fmt_signed

__all__ = ["render", "CSS"]

CSS = """
:root { color-scheme: light; --fg: #1d1d1f; --muted: #5f6368; --accent: #0b5cad;
  --line: #dadce0; --card: #f5f7fa; --warn-bg: #fff5e6; --warn-line: #e69f00; --ok: #1b7f3b;
  --bad: #b3261e; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 12px 20px 48px; }
header.top { border-bottom: 3px solid var(--accent); margin-bottom: 8px; }
h1 { font-size: 1.55rem; line-height: 1.25; margin: 12px 0 4px; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.02rem; margin: 1.3rem 0 .4rem; }
p { margin: .5rem 0; }
.meta { color: var(--muted); font-size: .88rem; margin: 0 0 10px; }
.lead { font-size: 1.15rem; line-height: 1.5; }
.lead data { font-weight: 700; }
nav.toc { font-size: .9rem; margin: 8px 0 4px; }
nav.toc a { color: var(--accent); margin-right: .9rem; text-decoration: none;
  white-space: nowrap; display: inline-block; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px;
  margin: 14px 0; }
.card { background: var(--card); border-radius: 8px; padding: 10px 12px; min-width: 0; }
.card .k { color: var(--muted); font-size: .78rem; text-transform: uppercase;
  letter-spacing: .02em; }
.card .v { font-size: 1.08rem; font-weight: 650; overflow-wrap: anywhere; }
.warn { background: var(--warn-bg); border-left: 4px solid var(--warn-line);
  padding: 8px 12px; margin: 8px 0; border-radius: 0 6px 6px 0; }
.note { color: var(--muted); font-size: .92rem; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 8px 0 12px;
  max-width: 100%; }
table { border-collapse: collapse; font-size: .88rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: .85rem; padding: 0 0 4px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
table.kv td, table.kv th { text-align: left; white-space: normal; }
table.kv td:first-child { white-space: nowrap; }
th { background: var(--card); font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td.ok { color: var(--ok); } td.bad { color: var(--bad); font-weight: 600; }
figure { margin: 14px 0 6px; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: 4px; }
.fig-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; }
svg.fig { display: block; width: 100%; max-width: 680px; height: auto; }
details { margin: 4px 0 12px; }
details > summary { cursor: pointer; color: var(--accent); font-size: .92rem; }
pre { background: var(--card); padding: 10px 12px; border-radius: 6px; font-size: .85rem;
  white-space: pre-wrap; overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: .82rem; margin-top: 36px; border-top: 1px solid
  var(--line); padding-top: 8px; }
@media (max-width: 640px) {
  body { font-size: 15px; }
  main { padding: 8px 12px 32px; }
  h1 { font-size: 1.3rem; }
  .lead { font-size: 1.05rem; }
  dl.kv { grid-template-columns: 1fr; } dl.kv dd { margin-bottom: 6px; }
  /* figures keep a legible size and scroll sideways inside their box */
  svg.fig { min-width: 500px; }
}
@media print {
  @page { margin: 14mm; }
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav.toc, details > summary { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  figure, .cards, .warn, tr, pre { break-inside: avoid; page-break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
  .table-wrap { overflow: visible; }
  svg.fig { max-width: 16cm; }
}
"""


def _table(frame: pd.DataFrame, *, caption: str = "", index_name: str | None = None,
           formats: dict | None = None, classes: dict | None = None, table_id: str = "",
           kv: bool = False) -> str:
    """An HTML table of ``frame`` (index as the first column), numbers formatted for reading."""
    formats = formats or {}
    classes = classes or {}
    head = [esc(index_name if index_name is not None else (frame.index.name or ""))]
    head += [esc(c) for c in frame.columns]
    rows = []
    for idx, row in frame.iterrows():
        cells = [f"<td>{esc(idx)}</td>"]
        for c in frame.columns:
            v = row[c]
            f = formats.get(c)
            text = f(v) if f else (fmt(v) if isinstance(v, (int, float, np.number))
                                   and not isinstance(v, bool) else esc(v))
            cls = classes.get(c)
            klass = f' class="{cls(v)}"' if cls else ""
            cells.append(f"<td{klass}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    tid = f' id="{esc(table_id)}"' if table_id else ""
    tid += ' class="kv"' if kv else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table{tid}>{cap}<thead><tr>'
            + "".join(f'<th scope="col">{h}</th>' for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _figure(svg: str, caption: str, table_html: str) -> str:
    return (f'<figure><div class="fig-wrap">{svg}</div><figcaption>{caption}</figcaption>'
            "</figure>"
            f"<details><summary>Data table of this figure</summary>{table_html}</details>")


def _pct(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _names(c: ReportContent) -> tuple[str, str]:
    return (c.treatment_name or "the treatment", c.outcome_name or "the outcome")


def _headline(c: ReportContent) -> str:
    treat, outcome = _names(c)
    pct = f"{100 * (1 - c.alpha):g}"
    lo, hi = c.ci
    est = (f'<data id="estimate" value="{c.estimate!r}">{fmt_signed(c.estimate)}</data>')
    ci = (f'<data id="ci-low" value="{lo!r}">{fmt_signed(lo)}</data> to '
          f'<data id="ci-high" value="{hi!r}">{fmt_signed(hi)}</data>')
    coding = f" ({esc(c.treatment_name)} = 1)" if c.treatment_name else ""
    if c.estimand == "att":
        first = (f"Among the {c.n_treated:,} treated units{coding}, the treatment changed "
                 f"{esc(outcome)} by an estimated {est} on average ({pct}% confidence interval "
                 f"{ci}), compared with what the same units would have had without it.")
    else:
        first = (f"Across all {c.n:,} units, receiving the treatment{coding} changes "
                 f"{esc(outcome)} by an estimated {est} on average ({pct}% confidence interval "
                 f"{ci}), compared with no one receiving it.")
    if lo <= 0 <= hi:
        second = ("The interval includes 0: these data are consistent with no effect as well "
                  "as with any effect inside the interval.")
    else:
        second = (f"The interval excludes 0: an effect of zero is not consistent with these "
                  f"data (two-sided p = {fmt(c.pvalue, 3)}).")
    return f'<p class="lead" id="headline">{first} {second}</p>'


def _summary(c: ReportContent) -> str:
    lo, hi = c.ci
    pct = f"{100 * (1 - c.alpha):g}"
    ess = {a["arm"]: a for a in c.weight_arms}
    cards = [
        (f"{c.estimand.upper()} estimate", fmt_signed(c.estimate)),
        (f"{pct}% interval", f"{fmt(lo)} to {fmt(hi)}"),
        ("standard error", fmt(c.se)),
        ("z / p-value", f"{fmt(c.zstat, 3)} / {fmt(c.pvalue, 3)}"),
        ("units treated / control", f"{c.n_treated:,} / {c.n_control:,}"),
        ("effective sample t / c", f"{ess['treated']['ess']:,.1f} / "
                                   f"{ess['control']['ess']:,.1f}"),
    ]
    treat, outcome = _names(c)
    covs = len(c.feature_names)
    out = [_headline(c), '<div class="cards">']
    out += [f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{v}</div></div>'
            for k, v in cards]
    out.append("</div>")
    out.append(
        f"<p>This reads as a causal effect only if the {covs} covariates include every common "
        f"cause of {esc(treat)} and {esc(outcome)} (no unmeasured confounding) and every unit "
        "could have received either treatment (overlap). The sections below check what the data "
        "can check: balance, the weights, overlap; and ask how strong a missed common cause "
        "would have to be to change the conclusion.</p>")
    for w in c.warnings:
        out.append(f'<div class="warn" role="note"><strong>Check:</strong> {esc(w)}</div>')
    return "\n".join(out)


def _data_section(c: ReportContent) -> str:
    treat, outcome = _names(c)
    out = [f"<p>{c.n:,} units: {c.n_treated:,} treated and {c.n_control:,} control. Outcome: "
           f"{esc(outcome)}; treatment: {esc(treat)} (treated = 1).</p>"]
    out.append(f"<p>{len(c.feature_names)} covariates enter the balancing: "
               f"{esc(', '.join(c.feature_names))}.</p>")
    items = []
    for col, levels in c.encoded.items():
        items.append(f"<li><code>{esc(col)}</code> is categorical: one 0/1 indicator per level "
                     f"({esc(', '.join(levels))}); every level is kept, since the balancing "
                     "kernel and the balance table both want each level.</li>")
    if c.dropped_constant:
        items.append(f"<li>Dropped as constant (the same value in every row, nothing to "
                     f"balance): {esc(', '.join(c.dropped_constant))}.</li>")
    if c.dropped_identifier:
        items.append(f"<li>Dropped as row identifiers (unique per row: an id or an index, not "
                     f"a description of the unit): {esc(', '.join(c.dropped_identifier))}.</li>")
    if items:
        out.append("<p>What validation changed:</p><ul>" + "".join(items) + "</ul>")
    else:
        out.append("<p>Validation changed nothing: no column was dropped or encoded.</p>")
    return "\n".join(out)


def _balance_section(c: ReportContent) -> str:
    b = c.balance
    n_before = int((b["diff_before"].abs() > BALANCE_THRESHOLD).sum())
    n_after = int((~b["balanced"]).sum())
    out = [f"<p>Before weighting {n_before} of {len(b)} covariates differ between the arms by "
           f"more than the customary threshold of {BALANCE_THRESHOLD:g}; after weighting {n_after}. "
           f"Largest absolute difference: {fmt(b['diff_before'].abs().max())} before, "
           f"{fmt(b['diff_after'].abs().max())} after. Differences are treated minus control: "
           "standardised mean differences for continuous covariates, raw differences in "
           "proportion for binary ones (the cobalt convention); the standardising deviation is "
           + ("the pooled one of both arms" if c.estimand == "ate" else "the treated arm's")
           + ", the same before and after weighting.</p>"]
    svg = figures.love_plot(b, BALANCE_THRESHOLD)
    love_tab = _table(b[["kind", "diff_before", "diff_after"]], index_name="covariate",
                      caption="Mean differences plotted in the love plot")
    out.append(_figure(svg, f"Love plot: absolute differences before (hollow) and after "
                            f"(filled) weighting; dashed line at {BALANCE_THRESHOLD:g}.", love_tab))
    ok_col = f"\u2264 {BALANCE_THRESHOLD:g}"
    table = pd.DataFrame({
        "type": b["kind"],
        "diff. before": b["diff_before"],
        "diff. after": b["diff_after"],
        "var. ratio before": b["var_ratio_before"],
        "var. ratio after": b["var_ratio_after"],
        ok_col: np.where(b["balanced"], "yes", "no"),
        "mean treated": b["weighted_mean_treated"],
        "mean control": b["mean_control"],
        "weighted": b["weighted_mean_control"],
    }, index=b.index)
    out.append("<h3>Balance table</h3>")
    out.append(_table(
        table, index_name="covariate", table_id="balance-table",
        caption=(f"Differences after weighting within {BALANCE_THRESHOLD:g} count as balanced; variance "
                 "ratios (treated / control) are for continuous covariates only"),
        formats={"diff. before": lambda v: fmt(v, 3), "diff. after": lambda v: fmt(v, 3),
                 "var. ratio before": lambda v: fmt(v, 3),
                 "var. ratio after": lambda v: fmt(v, 3)},
        classes={ok_col: lambda v: "ok" if v == "yes" else "bad"}))
    return "\n".join(out)


def _weights_section(c: ReportContent) -> str:
    out = []
    facts = pd.DataFrame({
        "units": [a["n"] for a in c.weight_arms],
        "with positive weight": [a["n_positive"] for a in c.weight_arms],
        "effective sample size": [a["ess"] for a in c.weight_arms],
        "ESS / units": [a["ess"] / a["n"] for a in c.weight_arms],
        "largest relative weight": [a["max_relative"] for a in c.weight_arms],
        "share of the 10 largest": [a["top_share"] for a in c.weight_arms],
    }, index=pd.Index([a["arm"] for a in c.weight_arms], name="arm"))
    out.append(
        "<p>Each arm's weights sum to 1. A unit's <em>relative weight</em> is its weight times "
        "the arm's size: 1 is what every unit would get without weighting, 5 means the unit "
        "stands for five average units. The effective sample size (Kish) is the number of "
        "equally weighted units that would give the same precision.</p>")
    out.append(_table(facts, index_name="arm", table_id="weights-table",
                      formats={"ESS / units": _pct, "share of the 10 largest": _pct,
                               "effective sample size": lambda v: f"{v:,.1f}"}))
    panels = []
    for a in c.weight_arms:
        if a["uniform"]:
            out.append(f'<p class="note">The {a["arm"]} units all weigh the same (1/{a["n"]:,})'
                       + (": the ATT keeps the treated as they are." if c.estimand == "att"
                          and a["arm"] == "treated" else ".") + "</p>")
            continue
        panels.append({"label": f"{a['arm']} ({a['n']:,} units)", "relative": a["relative"],
                       "color": figures.COLORS["treated" if a["arm"] == "treated"
                                                  else "control"]})
    if panels:
        svg = figures.weight_histograms(panels)
        rows = []
        for p in panels:
            rel = np.asarray(p["relative"])
            q = np.quantile(rel, [0, 0.25, 0.5, 0.75, 0.9, 0.99, 1])
            rows.append(pd.Series(q, index=["min", "25%", "median", "75%", "90%", "99%", "max"],
                                  name=p["label"]))
        tab = _table(pd.DataFrame(rows), index_name="arm",
                     caption="Quantiles of the relative weights")
        out.append(_figure(svg, "Relative weights by arm (units with weight 0 are counted in "
                                "the table, not drawn).", tab))
    if len(c.top_weights):
        top = c.top_weights.rename(columns={"relative_weight": "relative weight"}).set_index(
            "unit")
        out.append("<h3>The largest weights and the units that carry them</h3>")
        out.append(_table(top, index_name="unit", table_id="top-weights",
                          caption="Covariates shown: the most imbalanced before weighting",
                          formats={"weight": lambda v: fmt(v, 3),
                                   "relative weight": lambda v: fmt(v, 3)}))
    return "\n".join(out)


def _overlap_section(c: ReportContent) -> str:
    o = c.overlap
    losses = ", ".join(f"{k}: {v:.4f}" for k, v in o.log_loss.items())
    out = [f"<p>Estimated propensity P(treated | covariates) from a {esc(o.model)} fitted for "
           f"this diagnostic only (5-fold cross-validated predictions; the balancing weights "
           f"never use it). Out-of-fold log-loss {esc(losses)}; AUC {o.auc:.3f} (0.5: the arms "
           f"look alike; near 1: they barely overlap).</p>"]
    if o.warning:
        out.append(f'<div class="warn" role="note"><strong>Overlap:</strong> '
                   f'{esc(o.warning)}</div>')
    else:
        out.append(f'<p class="note">{_pct(o.extreme_share)} of the {esc(o.target)} have an '
                   f"extreme estimated propensity: no overlap warning.</p>")
    svg = figures.propensity_overlap(o.propensity, np.asarray(c.t), c.weights, c.estimand)
    edges = np.linspace(0, 1, 11)
    t = np.asarray(c.t)
    tab = pd.DataFrame({
        "treated (share)": np.histogram(o.propensity[t == 1], edges)[0] / max((t == 1).sum(), 1),
        "control (share)": np.histogram(o.propensity[t == 0], edges)[0] / max((t == 0).sum(), 1),
        "control after weighting": np.histogram(
            o.propensity[t == 0], edges, weights=normalize_per_arm(c.weights, t)[t == 0])[0],
    }, index=pd.Index([f"{a:.1f}-{b:.1f}" for a, b in zip(edges[:-1], edges[1:], strict=True)],
                      name="propensity"))
    out.append(_figure(svg, "Estimated propensity by arm: treated above the axis, control "
                            "below (each half on its own scale); bars before weighting, "
                            "outlines after.",
                       _table(tab, index_name="propensity",
                              formats={k: _pct for k in tab.columns})))
    return "\n".join(out)


def _sensitivity_section(c: ReportContent) -> str:
    s = c.sensitivity
    if s is None:
        return f'<p class="note">{esc(c.sensitivity_note)}</p>'
    pct = f"{100 * (1 - s.alpha):g}"
    out = [f'<p id="sensitivity-summary">{esc(s.interpretation())}</p>',
           "<p>How it works: balancing weights estimate the Riesz representer of the effect, so "
           "the omitted-variable-bias bound of Chernozhukov, Cinelli, Newey, Sharma &amp; "
           "Syrgkanis (2022) applies with the weights' own second moment: a confounder that "
           "explains a share r2_y of the outcome's residual variation and a share r2_d of the "
           "weights' variation can move the estimate by at most "
           f"S\u00b7\u221a(r2_y\u00b7r2_d / (1 \u2212 r2_d)), here S = {fmt(s.scale)} "
           f"(rho = {s.rho:g}: the worst case).</p>"]
    out.append('<div class="cards">'
               f'<div class="card"><div class="k">robustness value</div><div class="v">'
               f'<data id="rv" value="{s.rv!r}">{_pct(s.rv)}</data></div></div>'
               f'<div class="card"><div class="k">robustness value ({pct}% CI)</div>'
               f'<div class="v"><data id="rv-alpha" value="{s.rv_alpha!r}">{_pct(s.rv_alpha)}'
               f'</data></div></div>'
               f'<div class="card"><div class="k">outcome model R\u00b2 (out of fold)</div>'
               f'<div class="v">{s.outcome_r2:.3f}</div></div></div>'
               f'<p class="note">Outcome model behind E[(y \u2212 g)\u00b2]: '
               f'{esc(s.outcome_model)}.</p>')
    bench = s.benchmark_bounds()
    strength = s.strength_table()
    tab = _table(strength, index_name="r2_y = r2_d",
                 caption="Bounds along the diagonal of the plot",
                 formats={"strength": lambda v: f"{v:g}"})
    bench_tab = ""
    if not bench.empty:
        shown = bench.copy()
        shown.index = [f"{m:g}x {cov}" for cov, m in zip(shown["covariate"], shown["multiple"],
                                                         strict=True)]
        bench_tab = _table(shown.drop(columns=["covariate", "multiple"]),
                           index_name="confounder as strong as",
                           formats={"r2_y": lambda v: fmt(v, 3), "r2_d": lambda v: fmt(v, 3)})
    out.append(_figure(figures.sensitivity_contour(s), "Bias-adjusted estimate over the strength of an "
                                        "unobserved confounder (grey contours); crosses mark "
                                        "confounders as strong as observed covariates.",
                       tab + bench_tab))
    if not s.benchmarks.empty:
        b = s.benchmarks
        table = pd.DataFrame({
            "r2_y": b["r2_y"], "r2_d": b["r2_d"], "bias bound": b["bias_bound_1x"],
            f"{pct}% CI lower": b["ci_lower_1x"], f"{pct}% CI upper": b["ci_upper_1x"],
            "estimate without it": b["estimate_without"], "change": b["change"],
        }, index=b.index)
        out.append("<h3>Benchmarks: a confounder as strong as an observed covariate</h3>")
        out.append("<p>Each covariate is left out in turn and the estimator and the outcome "
                   "model refitted: the share of the outcome's residual variation it explains "
                   "(r2_y) and of the weights' variation it adds (r2_d) say how strong it is. "
                   "'change' is how much the estimate moves without it.</p>")
        out.append(_table(table, index_name="covariate", table_id="benchmark-table",
                          formats={"r2_y": lambda v: fmt(v, 3), "r2_d": lambda v: fmt(v, 3)}))
        notes = [f"{cov}: {n}" for cov, n in b.get("note", pd.Series(dtype=str)).items() if n]
        if notes:
            out.append(f'<p class="note">{esc("; ".join(notes))}</p>')
    if s.benchmark_note:
        out.append(f'<p class="note">{esc(s.benchmark_note)}</p>')
    out.append('<p class="note">The bounds take the covariates\' adjustment as given and ask only '
               "about a further, unobserved confounder; they are documented in "
               "docs/sensitivity.md of the cina repository.</p>")
    return "\n".join(out)


def _method_section(c: ReportContent) -> str:
    params = pd.DataFrame({"value": [repr(v) for v in c.params.values()]},
                          index=pd.Index(list(c.params), name="setting"))
    info = pd.DataFrame({"value": [v for v in c.info.values()]},
                        index=pd.Index(list(c.info), name="fact"))
    vers = pd.DataFrame({"version": list(c.versions.values())},
                        index=pd.Index(list(c.versions), name="package"))
    label = "Command" if c.call_kind == "command" else "Python call"
    out = [f"<p>Estimator <code>{esc(c.estimator_class)}</code>, method "
           f"<code>{esc(c.method)}</code>, estimand {c.estimand.upper()}; the fit took "
           f"{c.seconds:.2f} s.</p>",
           "<h3>Settings (get_params)</h3>", _table(params, index_name="setting", kv=True),
           "<h3>What the fit chose and reported</h3>", _table(info, index_name="fact", kv=True),
           f"<h3>Reproduce</h3><p>{label} that gives this result:</p>",
           f'<pre><code id="reproduce">{esc(c.call)}</code></pre>',
           (f"<p>The sensitivity analysis, in Python on the fitted estimator:</p>"
            f"<pre><code>{esc(c.sensitivity.call())}</code></pre>"
            if c.sensitivity is not None else ""),
           f'<p>SHA-256 of the validated data (covariates, treatment, outcome, names): '
           f'<code id="fingerprint" style="overflow-wrap:anywhere">{esc(c.fingerprint)}</code>. '
           "The same digest means the same numbers reached the estimator.</p>",
           "<h3>Versions</h3>", _table(vers, index_name="package", kv=True)]
    return "\n".join(out)


SECTIONS = (("summary", "Result"), ("data", "Data"), ("balance", "Balance"),
            ("weights", "Weights"), ("overlap", "Overlap"),
            ("sensitivity", "Sensitivity to hidden confounding"),
            ("method", "Method and reproducibility"))


def render(c: ReportContent, title: str | None = None) -> str:
    treat, outcome = _names(c)
    title = title or (f"Effect of {treat} on {outcome} ({c.estimand.upper()})"
                      if c.treatment_name or c.outcome_name
                      else f"Effect estimate ({c.estimand.upper()})")
    bodies = {
        "summary": _summary(c), "data": _data_section(c), "balance": _balance_section(c),
        "weights": _weights_section(c), "overlap": _overlap_section(c),
        "sensitivity": _sensitivity_section(c), "method": _method_section(c),
    }
    toc = " ".join(f'<a href="#{k}">{esc(v)}</a>' for k, v in SECTIONS)
    sections = []
    for key, heading in SECTIONS:
        tag = "h2"
        sections.append(f'<section id="{key}" aria-labelledby="{key}-h"><{tag} id="{key}-h">'
                        f"{esc(heading)}</{tag}>{bodies[key]}</section>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="generator" content="cina ' + esc(c.versions.get("cina", "")) + '">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f'<body><main><header class="top"><h1>{esc(title)}</h1>'
        f'<p class="meta">cina {esc(c.versions.get("cina", ""))} \u00b7 method '
        f'{esc(c.method)} \u00b7 generated {esc(c.generated)}</p>'
        f'<nav class="toc" aria-label="Sections">{toc}</nav></header>\n'
        + "\n".join(sections)
        + '\n<footer>Self-contained report: no script, no network; figures are inline SVG with '
          "a data table each. Made by cina (Causal Inference with Attention).</footer>"
          "</main></body></html>\n")
