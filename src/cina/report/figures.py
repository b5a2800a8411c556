"""The report's figures as inline SVG strings: love plot, weight distributions, propensity
overlap and the sensitivity contour. Each SVG carries a <title> and a <desc> (role="img"); the
report puts a data table with the same numbers beside every figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..rules import BALANCE_THRESHOLD, normalize_per_arm
from ..sensitivity import r2_y_at_bias
from .svg import LinearScale, esc, fmt, nice_ticks, svg_open

__all__ = ["love_plot", "weight_histograms", "propensity_overlap", "sensitivity_contour",
           "COLORS"]

# colour-blind safe (Okabe-Ito) with a neutral grey
COLORS = {"before": "#7f7f7f", "after": "#0072b2", "treated": "#d55e00", "control": "#0072b2",
          "threshold": "#444444", "zero": "#c0392b", "ci": "#e69f00", "grid": "#e3e3e3",
          "text": "#222222", "muted": "#666666"}
WIDTH = 640


def _x_axis(scale: LinearScale, ticks, y: float, label: str, fmt_tick=fmt) -> str:
    parts = [f'<line x1="{scale.p0:.1f}" x2="{scale.p1:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
             f'stroke="{COLORS["muted"]}"/>']
    for v in ticks:
        x = scale(v)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y:.1f}" y2="{y + 4:.1f}" '
                     f'stroke="{COLORS["muted"]}"/>'
                     f'<text x="{x:.1f}" y="{y + 16:.1f}" text-anchor="middle" '
                     f'fill="{COLORS["text"]}">{esc(fmt_tick(v))}</text>')
    mid = (scale.p0 + scale.p1) / 2
    parts.append(f'<text x="{mid:.1f}" y="{y + 32:.1f}" text-anchor="middle" '
                 f'fill="{COLORS["text"]}">{esc(label)}</text>')
    return "".join(parts)


def _y_axis(scale: LinearScale, ticks, x: float, label: str, fmt_tick=fmt) -> str:
    parts = [f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{scale.p0:.1f}" y2="{scale.p1:.1f}" '
             f'stroke="{COLORS["muted"]}"/>']
    for v in ticks:
        y = scale(v)
        parts.append(f'<line x1="{x - 4:.1f}" x2="{x:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{COLORS["muted"]}"/>'
                     f'<text x="{x - 7:.1f}" y="{y + 4:.1f}" text-anchor="end" '
                     f'fill="{COLORS["text"]}">{esc(fmt_tick(v))}</text>')
    mid = (scale.p0 + scale.p1) / 2
    parts.append(f'<text transform="translate({x - 44:.1f},{mid:.1f}) rotate(-90)" '
                 f'text-anchor="middle" fill="{COLORS["text"]}">{esc(label)}</text>')
    return "".join(parts)


def _label_width(labels) -> float:
    longest = max((len(str(s)) for s in labels), default=4)
    return float(min(max(longest * 6.6 + 14, 60), 220))


def love_plot(table: pd.DataFrame, threshold: float = BALANCE_THRESHOLD,
              fig_id: str = "love-plot") -> str:
    """Absolute mean differences before (hollow grey) and after (filled blue) weighting, one row
    per covariate, with the threshold as a dashed line. ``table``: index covariate, columns
    ``diff_before``, ``diff_after`` (signed), ``kind`` ("binary" or "continuous")."""
    order = table.assign(_abs=table["diff_before"].abs()).sort_values("_abs", ascending=False)
    labels = [f"{cov}{' (binary)' if kind == 'binary' else ''}"
              for cov, kind in zip(order.index, order["kind"], strict=True)]
    left = _label_width(labels)
    row_h, top, bottom = 22, 34, 48
    height = int(top + row_h * len(order) + bottom)
    vmax = float(np.nanmax(np.abs(order[["diff_before", "diff_after"]].to_numpy()),
                           initial=0.0))
    xmax = max(vmax, threshold * 1.5) * 1.05
    sx = LinearScale(0, xmax, left, WIDTH - 20)
    n_over_before = int((order["diff_before"].abs() > threshold).sum())
    n_over_after = int((order["diff_after"].abs() > threshold).sum())
    desc = (f"Love plot of {len(order)} covariates. Before weighting {n_over_before} covariates "
            f"have an absolute mean difference above {threshold:g}, after weighting "
            f"{n_over_after}. Largest before: {fmt(order['diff_before'].abs().max())}; largest "
            f"after: {fmt(order['diff_after'].abs().max())}.")
    out = [svg_open(fig_id, WIDTH, height, "Covariate balance before and after weighting", desc)]
    y_axis = top + row_h * len(order) + 4
    for v in nice_ticks(0, xmax, 5):
        x = sx(v)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{y_axis:.1f}" '
                   f'stroke="{COLORS["grid"]}"/>')
    xt = sx(threshold)
    out.append(f'<line x1="{xt:.1f}" x2="{xt:.1f}" y1="{top - 6}" y2="{y_axis:.1f}" '
               f'stroke="{COLORS["threshold"]}" stroke-dasharray="4 3"/>')
    for i, ((_, row), label) in enumerate(zip(order.iterrows(), labels, strict=True)):
        y = top + row_h * i + row_h / 2
        b, a = abs(row["diff_before"]), abs(row["diff_after"])
        out.append(
            f'<g><title>{esc(label)}: before {fmt(b)}, after {fmt(a)}</title>'
            f'<text x="{left - 8:.1f}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="{COLORS["text"]}">{esc(label)}</text>'
            f'<line x1="{sx(min(a, b)):.1f}" x2="{sx(max(a, b)):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#b9c7d6" stroke-width="2"/>'
            f'<circle cx="{sx(b):.1f}" cy="{y:.1f}" r="5" fill="#ffffff" '
            f'stroke="{COLORS["before"]}" stroke-width="2"/>'
            f'<circle cx="{sx(a):.1f}" cy="{y:.1f}" r="5" fill="{COLORS["after"]}"/></g>')
    out.append(_x_axis(sx, nice_ticks(0, xmax, 5), y_axis,
                       "absolute mean difference (standardised; raw for binary covariates)"))
    # legend
    lx = left
    out.append(
        f'<g font-size="11"><circle cx="{lx + 5}" cy="14" r="5" fill="#ffffff" '
        f'stroke="{COLORS["before"]}" stroke-width="2"/>'
        f'<text x="{lx + 14}" y="18" fill="{COLORS["text"]}">before weighting</text>'
        f'<circle cx="{lx + 125}" cy="14" r="5" fill="{COLORS["after"]}"/>'
        f'<text x="{lx + 134}" y="18" fill="{COLORS["text"]}">after weighting</text>'
        f'<line x1="{lx + 240}" x2="{lx + 262}" y1="14" y2="14" stroke="{COLORS["threshold"]}" '
        f'stroke-dasharray="4 3"/><text x="{lx + 268}" y="18" fill="{COLORS["text"]}">'
        f'threshold {threshold:g}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _histogram(values: np.ndarray, edges: np.ndarray, weights=None) -> np.ndarray:
    counts, _ = np.histogram(values, bins=edges, weights=weights)
    return counts.astype(float)


def weight_histograms(panels: list[dict], fig_id: str = "weights-plot") -> str:
    """One histogram per reweighted arm of the relative weights n_arm * alpha_i (1 = the weight
    of every unit under uniform weighting). ``panels``: dicts with ``label``, ``relative``
    (the relative weights of the arm's units), ``color``."""
    panel_h, gap, top = 150, 40, 10
    height = int(top + len(panels) * (panel_h + gap) - gap + 14)
    parts = []
    descs = []
    for k, panel in enumerate(panels):
        rel = np.asarray(panel["relative"], dtype=float)
        positive = rel[rel > 0]
        n_zero = int((rel <= 0).sum())
        vmax = float(positive.max()) if len(positive) else 1.0
        edges = np.linspace(0, vmax * 1.0001, 31)
        counts = _histogram(positive, edges)
        y0 = top + k * (panel_h + gap)
        sx = LinearScale(0, edges[-1], 64, WIDTH - 20)
        cmax = max(float(counts.max()) if len(counts) else 1.0, 1.0)
        sy = LinearScale(0, cmax * 1.08, y0 + panel_h - 30, y0 + 18)
        parts.append(f'<text x="64" y="{y0 + 10}" font-weight="600" '
                     f'fill="{COLORS["text"]}">{esc(panel["label"])}</text>')
        for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
            if c <= 0:
                continue
            x, w = sx(lo), max(sx(hi) - sx(lo) - 1, 1)
            parts.append(f'<rect x="{x:.1f}" y="{sy(c):.1f}" width="{w:.1f}" '
                         f'height="{sy(0) - sy(c):.1f}" fill="{panel["color"]}" '
                         f'fill-opacity="0.8"><title>{fmt(lo)} to {fmt(hi)}: {int(c)} units'
                         f'</title></rect>')
        x1 = sx(1.0)
        if 0 <= 1.0 <= edges[-1]:
            parts.append(f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{sy.p1:.1f}" y2="{sy(0):.1f}" '
                         f'stroke="{COLORS["threshold"]}" stroke-dasharray="4 3"/>'
                         f'<text x="{x1 + 4:.1f}" y="{sy.p1 + 10:.1f}" font-size="11" '
                         f'fill="{COLORS["muted"]}">uniform weight</text>')
        parts.append(_x_axis(sx, nice_ticks(0, edges[-1], 6), sy(0),
                             "relative weight (units' weight \u00d7 arm size)"))
        parts.append(_y_axis(sy, nice_ticks(0, cmax, 3), 64, "units"))
        note = f"{n_zero} units with weight 0 not shown" if n_zero else ""
        if note:
            parts.append(f'<text x="{WIDTH - 20}" y="{y0 + 10}" text-anchor="end" '
                         f'font-size="11" fill="{COLORS["muted"]}">{esc(note)}</text>')
        descs.append(f"{panel['label']}: {len(positive)} units with positive weight, largest "
                     f"relative weight {fmt(vmax)}" + (f", {n_zero} with weight 0" if n_zero
                                                        else ""))
    head = svg_open(fig_id, WIDTH, height, "Distribution of the balancing weights",
                    "Histograms of relative weights. " + "; ".join(descs) + ".")
    return head + "".join(parts) + "</svg>"


def propensity_overlap(e: np.ndarray, t: np.ndarray, weights: np.ndarray | None,
                       estimand: str, fig_id: str = "overlap-plot") -> str:
    """Mirrored histograms of the estimated propensity: treated above the axis, control below,
    as shares of each arm; outlines show each reweighted arm after weighting."""
    edges = np.linspace(0, 1, 21)
    height, top, mid_h = 300, 24, 110
    sx = LinearScale(0, 1, 64, WIDTH - 20)
    treated = _histogram(e[t == 1], edges) / max(int((t == 1).sum()), 1)
    control = _histogram(e[t == 0], edges) / max(int((t == 0).sum()), 1)
    after = {}
    if weights is not None:
        share = normalize_per_arm(weights, t)
        for arm in (0, 1):
            if estimand == "att" and arm == 1:
                continue
            m = t == arm
            after[arm] = _histogram(e[m], edges, weights=share[m])
    # each half on its own scale: one arm piled into a single bin (common when the arms barely
    # overlap) would otherwise flatten the other arm's bars
    top_t = max([float(treated.max())] + ([float(after[1].max())] if 1 in after else []) + [.02])
    top_c = max([float(control.max())] + ([float(after[0].max())] if 0 in after else []) + [.02])
    axis_y = top + mid_h
    up = LinearScale(0, top_t * 1.05, axis_y, top)
    down = LinearScale(0, top_c * 1.05, axis_y, axis_y + mid_h)
    desc = (f"Estimated propensity by arm. Treated median {fmt(np.median(e[t == 1]))}, control "
            f"median {fmt(np.median(e[t == 0]))}. Bars: share of each arm per bin (treated above "
            "the axis, control below, each half on its own scale); outlines: the same after "
            "weighting.")
    out = [svg_open(fig_id, WIDTH, height, "Overlap of the estimated propensity scores", desc)]
    for v in nice_ticks(0, 1, 5):
        x = sx(v)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{axis_y + mid_h}" '
                   f'stroke="{COLORS["grid"]}"/>')
    for counts, scale, color, name in ((treated, up, COLORS["treated"], "treated"),
                                       (control, down, COLORS["control"], "control")):
        for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
            if c <= 0:
                continue
            y = min(scale(c), scale(0))
            out.append(f'<rect x="{sx(lo):.1f}" y="{y:.1f}" width="{sx(hi) - sx(lo) - 1:.1f}" '
                       f'height="{abs(scale(c) - scale(0)):.1f}" fill="{color}" '
                       f'fill-opacity="0.55"><title>{name}, propensity {lo:.2f}-{hi:.2f}: '
                       f'{c:.1%} of the arm</title></rect>')
    for arm, shares in after.items():
        scale = up if arm == 1 else down
        pts = []
        for c, lo, hi in zip(shares, edges[:-1], edges[1:], strict=True):
            pts += [f"{sx(lo):.1f},{scale(c):.1f}", f"{sx(hi):.1f},{scale(c):.1f}"]
        color = COLORS["treated"] if arm == 1 else COLORS["control"]
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" '
                   f'stroke-width="2"/>')
    out.append(f'<line x1="{sx.p0}" x2="{sx.p1}" y1="{axis_y}" y2="{axis_y}" '
               f'stroke="{COLORS["muted"]}"/>')
    out.append(f'<text x="{sx.p0 + 4}" y="{top + 12}" font-size="11" '
               f'fill="{COLORS["treated"]}">treated \u2191</text>'
               f'<text x="{sx.p0 + 4}" y="{axis_y + mid_h - 4}" font-size="11" '
               f'fill="{COLORS["control"]}">control \u2193</text>')
    if after:
        out.append(f'<text x="{WIDTH - 20}" y="{top + 12}" text-anchor="end" font-size="11" '
                   f'fill="{COLORS["muted"]}">bars: raw; outline: after weighting</text>')
    bottom = axis_y + mid_h
    out.append(_x_axis(sx, nice_ticks(0, 1, 5), bottom,
                       "estimated propensity P(treated | covariates), cross-validated"))
    out.append("</svg>")
    return "".join(out)


def _contour_curve(level_bias: float, scale: float, xmax: float, ymax: float,
                   n: int = 120) -> list[tuple[float, float]]:
    """Points (r2_d, r2_y) with S sqrt(r2_y r2_d / (1 - r2_d)) = level_bias, inside the box
    (r2_y from :func:`cina.sensitivity.r2_y_at_bias`)."""
    if scale <= 0 or level_bias <= 0:
        return []
    # where the curve enters the box from the top: r2_y = ymax -> r2_d = a / (ymax + a)
    a = (level_bias / scale) ** 2
    x_start = a / (ymax + a)
    if x_start >= xmax:
        return []
    xs = np.geomspace(max(x_start, 1e-6), xmax, n)
    ys = r2_y_at_bias(level_bias, scale, xs)
    return [(float(x), float(min(y, ymax))) for x, y in zip(xs, ys, strict=True)
            if y <= ymax * 1.0001]


def sensitivity_contour(sens, fig_id: str = "sensitivity-plot", max_labels: int = 10) -> str:
    """Contours of the bias-adjusted estimate (moved towards zero by the bound) over the
    confounder's strengths: r2_d (share of the representer's variation) across, r2_y (share of
    the outcome's residual variation) up. The red line is where the adjusted estimate reaches 0,
    the orange dashed line where the interval reaches 0; benchmark covariates are marked."""
    est, s = sens.estimate, sens.scale * abs(sens.rho)
    bench = sens.benchmark_bounds()
    strong = sens.strongest_benchmark()
    pts = []
    if not bench.empty:
        for _, b in bench.iterrows():
            if b["multiple"] == 1.0 or (strong is not None and b["covariate"] == strong[0]):
                pts.append(b)
    cand = [sens.rv * 2.0, 0.1] + [max(b["r2_y"], b["r2_d"]) * 1.15 for b in pts]
    lim = min(max(cand), 0.99)
    lim = float(nice_ticks(0, lim, 4)[-1]) if nice_ticks(0, lim, 4)[-1] >= lim else lim
    lim = min(max(lim, 0.05), 0.99)
    xmax = ymax = lim
    left, right, top, bottom = 64, 20, 34, 52
    plot_w = WIDTH - left - right
    height = int(top + plot_w * 0.72 + bottom)
    sx = LinearScale(0, xmax, left, WIDTH - right)
    sy = LinearScale(0, ymax, height - bottom, top)
    sign = 1.0 if est >= 0 else -1.0
    # levels of the adjusted estimate est - sign * B, from est towards (and past) zero
    b_max = sens.bias_bound(ymax, xmax)
    levels = [v for v in nice_ticks(est - sign * b_max, est, 6) if sign * (est - v) > 0]
    desc = (f"Contour plot of the bias-adjusted estimate over the strengths of an unobserved "
            f"confounder. Robustness value {sens.rv:.3f} (estimate reaches 0) and "
            f"{sens.rv_alpha:.3f} (interval reaches 0) on the diagonal. "
            + ("Benchmarks: " + "; ".join(
                f"{b['multiple']:g}x {b['covariate']} at r2_d {b['r2_d']:.3f}, r2_y "
                f"{b['r2_y']:.3f}, adjusted estimate {fmt(est - sign * b['bias_bound'])}"
                for b in pts) + "." if pts else "No benchmark covariates."))
    out = [svg_open(fig_id, WIDTH, height, "Sensitivity to an unobserved confounder", desc)]
    out.append(f'<clipPath id="{fig_id}-clip"><rect x="{sx.p0}" y="{sy.p1}" '
               f'width="{sx.p1 - sx.p0:.1f}" height="{sy.p0 - sy.p1:.1f}"/></clipPath>')
    for v in nice_ticks(0, xmax, 5):
        out.append(f'<line x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{sy.p1}" y2="{sy.p0}" '
                   f'stroke="{COLORS["grid"]}"/>')
    for v in nice_ticks(0, ymax, 5):
        out.append(f'<line x1="{sx.p0}" x2="{sx.p1}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" '
                   f'stroke="{COLORS["grid"]}"/>')
    out.append(f'<g clip-path="url(#{fig_id}-clip)">')
    out.append(f'<line x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(lim):.1f}" y2="{sy(lim):.1f}" '
               f'stroke="{COLORS["grid"]}" stroke-width="1.5" stroke-dasharray="2 3"/>')

    def path(points):
        return " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)

    for v in levels:
        bias = sign * (est - v)
        curve = _contour_curve(bias, s, xmax, ymax)
        if len(curve) < 2:
            continue
        is_zero = abs(v) < 1e-12 * max(abs(est), 1.0)
        if is_zero:
            continue
        out.append(f'<polyline points="{path(curve)}" fill="none" stroke="#9aa7b4" '
                   f'stroke-width="1"/>')
        x, y = curve[len(curve) // 2]
        out.append(f'<text x="{sx(x) + 3:.1f}" y="{sy(y) - 3:.1f}" font-size="10" '
                   f'fill="{COLORS["muted"]}">{esc(fmt(v))}</text>')
    zero = _contour_curve(abs(est), s, xmax, ymax)
    if len(zero) >= 2:
        out.append(f'<polyline points="{path(zero)}" fill="none" stroke="{COLORS["zero"]}" '
                   f'stroke-width="2.5"/>')
    ci_dist = abs(est) - sens.z * sens.se
    ci_curve = _contour_curve(ci_dist, s, xmax, ymax) if ci_dist > 0 else []
    if len(ci_curve) >= 2:
        out.append(f'<polyline points="{path(ci_curve)}" fill="none" stroke="{COLORS["ci"]}" '
                   f'stroke-width="2" stroke-dasharray="6 4"/>')
    out.append("</g>")
    # robustness values on the diagonal
    for rv, color, name in ((sens.rv, COLORS["zero"], "RV"),
                            (sens.rv_alpha, COLORS["ci"], "RV (interval)")):
        if 0 < rv <= lim:
            out.append(f'<circle cx="{sx(rv):.1f}" cy="{sy(rv):.1f}" r="4" fill="{color}">'
                       f'<title>{name} = {rv:.3f}</title></circle>')
    # benchmarks
    for i, b in enumerate(pts):
        x, y = min(b["r2_d"], lim), min(b["r2_y"], lim)
        label = f"{b['multiple']:g}x {b['covariate']}"
        out.append(f'<g><title>{esc(label)}: r2_d {b["r2_d"]:.3f}, r2_y {b["r2_y"]:.3f}, '
                   f'bias bound {esc(fmt(b["bias_bound"]))}</title>'
                   f'<path d="M{sx(x) - 5:.1f},{sy(y) - 5:.1f} l10,10 m-10,0 l10,-10" '
                   f'stroke="{COLORS["text"]}" stroke-width="2"/>')
        if i < max_labels:
            anchor = "end" if sx(x) > WIDTH - 150 else "start"
            dx = -8 if anchor == "end" else 8
            out.append(f'<text x="{sx(x) + dx:.1f}" y="{sy(y) + 4:.1f}" font-size="11" '
                       f'text-anchor="{anchor}" fill="{COLORS["text"]}">{esc(label)}</text>')
        out.append("</g>")
    out.append(_x_axis(sx, nice_ticks(0, xmax, 5), sy.p0,
                       "r2_d: share of the weights' (Riesz representer's) variation"))
    out.append(_y_axis(sy, nice_ticks(0, ymax, 5), sx.p0,
                       "r2_y: share of outcome's residual variation"))
    out.append(f'<g font-size="11"><line x1="{left}" x2="{left + 22}" y1="13" y2="13" '
               f'stroke="{COLORS["zero"]}" stroke-width="2.5"/>'
               f'<text x="{left + 26}" y="17" fill="{COLORS["text"]}">estimate reaches 0</text>'
               f'<line x1="{left + 140}" x2="{left + 162}" y1="13" y2="13" '
               f'stroke="{COLORS["ci"]}" stroke-width="2" stroke-dasharray="6 4"/>'
               f'<text x="{left + 166}" y="17" fill="{COLORS["text"]}">'
               f'{"interval reaches 0" if ci_dist > 0 else "(interval already includes 0)"}'
               f'</text>'
               f'<path d="M{left + 340},8 l10,10 m-10,0 l10,-10" stroke="{COLORS["text"]}" '
               f'stroke-width="2"/><text x="{left + 356}" y="17" fill="{COLORS["text"]}">'
               f'covariate, k\u00d7 as strong</text></g>')
    out.append("</svg>")
    return "".join(out)
