"""Quickstart: the effect of job training on 1978 earnings (LaLonde NSW treated vs PSID controls).

Run from the repository root:  python examples/quickstart.py [--plot]
The experimental benchmark for this effect on the treated (ATT) is 1794.34 dollars.
"""

import sys
from pathlib import Path

from cina import CInA
from cina.io import read_table, select_columns

HERE = Path(__file__).resolve().parent

df = read_table(HERE / "lalonde_psid.csv")
X, t, y = select_columns(df, treatment="treat", outcome="re78")  # covariates: all other columns

est = CInA(method="exact", estimand="att").fit(X, t, y)

low, high = est.att_interval(alpha=0.05)
print(f"ATT = {est.att_:.0f} dollars, 95% CI [{low:.0f}, {high:.0f}] (experiment: 1794)")
print(f"effective sample sizes: {est.ess_}")
print(est.summary_frame().T)
print(est.balance_table()[["smd_before", "smd_after"]].round(3))

if "--plot" in sys.argv[1:]:
    from cina.plotting import diagnostics_figure  # needs: pip install 'cina[plot]'

    fig = diagnostics_figure(est)
    fig.savefig("lalonde_diagnostics.png", dpi=120)
    print("wrote lalonde_diagnostics.png")
