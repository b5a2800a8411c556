"""Diagnostic plots: the love plot (covariate balance) and the weight distribution.

matplotlib is optional (``pip install 'cina[plot]'``); it is imported when a function is
called, never on ``import cina.plotting``, and no backend is chosen here (the CLI selects the
non-interactive Agg backend itself when it saves a figure). Every function takes ``ax=`` and
returns the axes it drew on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import MissingDependencyError
from .rules import BALANCE_THRESHOLD, effective_sample_size

__all__ = ["love_plot", "weight_plot", "diagnostics_figure", "require_matplotlib",
           "MissingDependencyError"]

_BEFORE, _AFTER = "#999999", "#1f77b4"
_ARMS = ((1, "treated", "#d62728"), (0, "control", "#1f77b4"))


_MISSING = ("plotting needs matplotlib, which is not installed; install it with: "
            "pip install 'cina[plot]'")


def require_matplotlib() -> None:
    """Raise :class:`MissingDependencyError` (an ImportError) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(_MISSING) from None


def _pyplot():
    require_matplotlib()
    import matplotlib.pyplot as plt

    return plt


def _axes(ax):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots()
    return ax


def love_plot(balance_table: pd.DataFrame, ax=None, threshold: float = BALANCE_THRESHOLD):
    """Absolute standardised mean differences per covariate, before and after weighting.

    Parameters
    ----------
    balance_table : the output of ``estimator.balance_table()`` (columns ``smd_before`` and
        ``smd_after``, one row per covariate).
    ax : matplotlib Axes to draw on; a new figure's axes when None.
    threshold : where the dashed reference line goes (default
        :data:`cina.rules.BALANCE_THRESHOLD`, the customary bound of good balance); None draws
        no line.

    Returns
    -------
    The Axes. Covariates are sorted by their imbalance before weighting, the worst at the top.
    """
    missing = {"smd_before", "smd_after"} - set(getattr(balance_table, "columns", []))
    if missing:
        raise ValueError(
            f"love_plot needs a balance table with columns smd_before and smd_after; "
            f"missing {sorted(missing)}")
    ax = _axes(ax)
    table = balance_table.sort_values("smd_before", ascending=True)
    pos = np.arange(len(table))
    labels = [str(i) for i in table.index]
    before = table["smd_before"].to_numpy(dtype=float)
    after = table["smd_after"].to_numpy(dtype=float)
    for p, b, a in zip(pos, before, after, strict=True):
        ax.plot([b, a], [p, p], color="#cccccc", linewidth=1, zorder=1)
    ax.scatter(before, pos, color=_BEFORE, marker="o", label="before weighting", zorder=2)
    ax.scatter(after, pos, color=_AFTER, marker="D", label="after weighting", zorder=3)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1,
                   label=f"|SMD| = {threshold:g}")
    ax.set_yticks(pos)
    ax.set_yticklabels(labels)
    ax.set_ylim(-0.7, max(len(table) - 0.3, 0.7))
    ax.set_xlim(left=0)
    ax.set_xlabel("absolute standardised mean difference")
    ax.set_title("Covariate balance")
    ax.legend(loc="best", fontsize="small")
    return ax


def weight_plot(weights, t, ax=None):
    """The weights of each arm, sorted, with each arm's effective sample size in the legend.

    Parameters
    ----------
    weights : (n,) nonnegative weights (summing to 1 within each arm, as cina's do).
    t : (n,) 0/1 treatment.
    ax : matplotlib Axes to draw on; a new figure's axes when None.

    Returns
    -------
    The Axes. Each arm's weights are scaled by the arm size (1 is the uniform weight of the
    unweighted sample) and drawn largest first against the fraction of the arm's units, on a
    scale that is linear below 1 and logarithmic above, so that a few dominant units and many
    zero weights both show. The legend gives each arm's Kish effective sample size and its
    number of zero weights.
    """
    w = np.asarray(weights, dtype=float).reshape(-1)
    tt = np.asarray(t).reshape(-1)
    if w.shape != tt.shape:
        raise ValueError(f"weights and t must have the same length; received {w.shape[0]} "
                         f"and {tt.shape[0]}")
    ax = _axes(ax)
    top = 1.0
    for arm, label, color in _ARMS:
        wa = w[tt == arm]
        if not len(wa):
            continue
        total = wa.sum()
        scaled = np.sort(wa / total * len(wa) if total > 0 else wa)[::-1]
        top = max(top, float(scaled[0]))
        frac = np.arange(1, len(wa) + 1) / len(wa)
        n_zero = int(np.sum(wa <= 0))
        zeros = f", {n_zero} zero" if n_zero else ""
        ax.step(np.concatenate([[0.0], frac]), np.concatenate([scaled[:1], scaled]),
                where="pre", color=color, linewidth=1.5,
                label=f"{label}: ESS {effective_sample_size(wa):.1f} of {len(wa)}{zeros}")
    ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="uniform weight")
    ax.set_yscale("symlog", linthresh=1.0, linscale=1.0)
    ax.set_ylim(0, top * 1.5)
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    step = 1
    while step * 2 <= top * 1.5:
        ticks += [v * step for v in (2, 5, 10) if v * step <= top * 1.5]
        step *= 10
    ax.set_yticks(sorted(set(ticks)))
    ax.set_yticklabels([f"{v:g}" for v in sorted(set(ticks))])
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of the arm's units, largest weight first")
    ax.set_ylabel("weight x arm size (1 = uniform)")
    ax.set_title("Weights by arm")
    ax.legend(fontsize="small", loc="upper right")
    return ax


def diagnostics_figure(estimator, threshold: float = BALANCE_THRESHOLD, fig=None):
    """A figure with the love plot and the weight distribution of a fitted weighting estimator.

    Parameters
    ----------
    estimator : a fitted estimator that produces weights (``balance_table()`` works).
    threshold : the |SMD| reference line of the love plot.
    fig : a matplotlib Figure to draw into (resized); a new pyplot figure when None. Passing
        a bare ``matplotlib.figure.Figure`` avoids pyplot and its backend altogether.

    Returns
    -------
    The Figure (two axes: balance on the left, weights on the right).
    """
    from .base import check_is_fitted

    check_is_fitted(estimator)
    table = estimator.balance_table()  # raises for a method without weights
    size = (11.0, min(max(3.5, 0.28 * len(table) + 1.5), 14.0))
    if fig is None:
        fig = _pyplot().figure(figsize=size)
    else:
        require_matplotlib()
        fig.set_size_inches(*size)
    ax_bal, ax_w = fig.subplots(1, 2)
    love_plot(table, ax=ax_bal, threshold=threshold)
    result = estimator.result_
    weight_plot(result.weights, result.t, ax=ax_w)
    effect = "ATT" if result.estimand == "att" else "ATE"
    fig.suptitle(f"{result.method}: {effect} = {result.estimate:.4g}")
    fig.tight_layout()
    return fig
