"""Speed and accuracy of CInA exact (QP) and fit (Algorithm 1) next to the difference in means and
logistic IPW (issue 2, item 10).

    python benchmarks/core.py            # writes benchmarks/results/core.{md,csv}

Speed: one fit each at N = 1,000 and 5,000 with d = 25 (design "sparse"), lam_rel fixed at 0.1 so
that the time is the solver's; the naive and IPW times in the same run are the baseline.
Accuracy: 20 seeded replications of designs "sparse" (N = 1,000, d = 25) and "smooth"
(N = 500, d = 5), data-driven lam and bandwidth (the defaults).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import command, design, machine  # noqa: E402

from cina.registry import make_estimator  # noqa: E402

OUT = Path(__file__).parent / "results"
METHODS = ("naive", "ipw", "exact", "fit")


def main(reps: int = 20) -> None:
    speed = []
    for n in (1000, 5000):
        X, t, y, tau = design("sparse", 0, n)
        for m in METHODS:
            params = {"lam_rel": 0.1} if m in ("exact", "fit") else {}
            t0 = time.perf_counter()
            est = make_estimator(m, **params).fit(X, t, y)
            speed.append(dict(n=n, d=X.shape[1], method=m, seconds=time.perf_counter() - t0,
                              error=est.effect_ - tau.mean()))
            print(speed[-1], flush=True)
    acc = []
    for name, n in (("sparse", 1000), ("smooth", 500)):
        for rep in range(reps):
            X, t, y, tau = design(name, 1000 + rep, n)
            for m in METHODS:
                est = make_estimator(m).fit(X, t, y)
                lo, hi = est.effect_interval()
                acc.append(dict(design=name, rep=rep, method=m, error=est.effect_ - tau.mean(),
                                covered=lo <= tau.mean() <= hi, seconds=est.result_.seconds))
        print(name, "done", flush=True)
    sp, ac = pd.DataFrame(speed), pd.DataFrame(acc)
    OUT.mkdir(exist_ok=True)
    pd.concat([sp.assign(kind="speed"), ac.assign(kind="accuracy")]).to_csv(OUT / "core.csv",
                                                                            index=False)
    lines = ["# CInA exact and fit: speed and accuracy", "",
             f"Command: `{command()}`. Machine: {machine()}. Shared machine: timings indicative; "
             "ratios within one run are the comparable numbers.", "",
             "## Time of one fit (d = 25, design sparse, lam_rel = 0.1)", "",
             "| N | " + " | ".join(METHODS) + " | exact / ipw | fit / exact |", "|---" * 7 + "|"]
    for n, g in sp.groupby("n"):
        s = g.set_index("method").seconds
        lines.append(f"| {n} | " + " | ".join(f"{s[m]:.2f} s" for m in METHODS)
                     + f" | {s['exact'] / s['ipw']:.0f}x | {s['fit'] / s['exact']:.1f}x |")
    lines += ["", f"## ATE error over {reps} seeded replications (data-driven lam and bandwidth)",
              "", "| design | method | MAE ± SE | mean error (bias) | RMSE | 95% coverage | median s |",
              "|---|---|---|---|---|---|---|"]
    for (dname, m), g in ac.groupby(["design", "method"], sort=False):
        e = g.error.to_numpy()
        lines.append(f"| {dname} | {m} | {np.abs(e).mean():.3f} ± "
                     f"{np.abs(e).std(ddof=1) / np.sqrt(len(e)):.3f} | {e.mean():+.3f} | "
                     f"{np.sqrt(np.mean(e**2)):.3f} | {g.covered.mean():.2f} | "
                     f"{g.seconds.median():.2f} |")
    lines += ["", "Designs: see `benchmarks/_common.py` (`design`). sparse: N = 1,000, d = 25 "
              "(half binary), effect 2 + x2 1[x3 > 0]; smooth: N = 500, d = 5, effect 1 + x0."]
    (OUT / "core.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(reps=int(sys.argv[1]) if len(sys.argv) > 1 else 20)
