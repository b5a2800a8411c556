"""The few SVG primitives the report's figures need: escaping, linear scales, readable ticks and
number formats. Figures are plain strings of SVG markup (no plotting library)."""

from __future__ import annotations

import html
import math

import numpy as np

__all__ = ["esc", "fmt", "fmt_signed", "nice_ticks", "LinearScale", "svg_open", "FONT"]

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def esc(text) -> str:
    """Text escaped for HTML and SVG (quotes included: safe in attributes too)."""
    return html.escape(str(text), quote=True)


def fmt(x, digits: int = 4) -> str:
    """A number for a reader: thousands separators for large values, ``digits`` significant
    digits otherwise; "n/a" for None, NaN or infinity."""
    if x is None:
        return "n/a"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return esc(x)
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    ax = abs(x)
    if x.is_integer() and ax < 1e15:
        return f"{x:,.0f}"
    if ax >= 10 ** digits:
        return f"{x:,.0f}"
    if ax >= 1000:
        return f"{x:,.1f}"
    if ax < 1e-4:
        return f"{x:.{max(digits - 1, 1)}e}"
    magnitude = int(math.floor(math.log10(ax)))
    decimals = max(digits - 1 - magnitude, 0)
    out = f"{x:.{decimals}f}"
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


def fmt_signed(x, digits: int = 4) -> str:
    s = fmt(x, digits)
    if s != "n/a" and x is not None and float(x) > 0:
        return "+" + s
    return s.replace("-", "\u2212") if s.startswith("-") else s


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = mag * min((m for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(0.0 if abs(v) < step * 1e-9 else round(v, 12))
        v += step
    return ticks


class LinearScale:
    """Maps data values in [d0, d1] to pixels in [p0, p1]."""

    def __init__(self, d0: float, d1: float, p0: float, p1: float):
        if d1 == d0:
            d1 = d0 + 1.0
        self.d0, self.d1, self.p0, self.p1 = float(d0), float(d1), float(p0), float(p1)

    def __call__(self, v) -> float | np.ndarray:
        out = self.p0 + (np.asarray(v, dtype=float) - self.d0) * (self.p1 - self.p0) / (
            self.d1 - self.d0)
        return float(out) if np.ndim(out) == 0 else out


def svg_open(fig_id: str, width: int, height: int, title: str, desc: str) -> str:
    """The opening of an accessible inline SVG: role="img", labelled by its title and desc."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="fig" id="{esc(fig_id)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{esc(fig_id)}-title {esc(fig_id)}-desc" '
        f'preserveAspectRatio="xMinYMin meet" font-family="{esc(FONT)}" font-size="12">'
        f'<title id="{esc(fig_id)}-title">{esc(title)}</title>'
        f'<desc id="{esc(fig_id)}-desc">{esc(desc)}</desc>')
