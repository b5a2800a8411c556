"""Exact CInA with very unequal arms: a few treated units among thousands.

With 5 treated units the arms cannot be balanced to the whole sample, the balance guard of the
lam rule runs to its floor (5 re-solves at smaller lam), and each re-solve is a QP over the
large control arm. This measures the fit's CPU time against a balanced design of the same size,
on one BLAS/OpenMP thread (CPU seconds, so that other jobs on the machine matter less), each
design twice. Writes benchmarks/results/skewed_arms.md.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/skewed_arms.py [N]
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine  # noqa: E402

import cina  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "skewed_arms.md"


def fit_seconds(n: int, n_treated: int) -> tuple[float, int, float]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5))
    t = np.zeros(n, int)
    t[rng.choice(n, n_treated, replace=False)] = 1
    y = X[:, 0] + t + rng.normal(size=n)
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cina.CInA().fit(X, t, y)
    return time.process_time() - start, est.result_.info["lam_guard_steps"], est.effect_


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rows = []
    for rep in (1, 2):
        for n_treated in (5, n // 2):
            sec, steps, _ = fit_seconds(n, n_treated)
            rows.append((rep, n_treated, sec, steps))
            print(f"rep {rep}: {n_treated} treated: {sec:.2f} s CPU, {steps} guard steps",
                  flush=True)
    skew = [r[2] for r in rows if r[1] == 5]
    bal = [r[2] for r in rows if r[1] != 5]
    lines = [f"# Exact CInA with {5} treated of {n:,} units vs balanced arms", "",
             f"Command: `OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 {command()}`. "
             f"Machine: {machine()}. CPU seconds of one `CInA().fit` (method exact, data-driven "
             "lam with the balance guard), one thread; ratios within the run are the comparable "
             "numbers.", "",
             "| repetition | treated | CPU s | guard steps |", "|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]:,} | {r[2]:.2f} | {r[3]} |" for r in rows]
    lines += ["", f"Ratio (5 treated / balanced): {np.mean(skew) / np.mean(bal):.1f}x.", "",
              "Before the solver reused its Hessian blocks and warm-started each of the guard's "
              "re-solves (and stopped refactorising a stable active set), the same measurement "
              "gave 13.4 / 15.4 s against 1.2 / 1.4 s: 11x (docs/method_notes.md section 3)."]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
