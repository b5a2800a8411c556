"""Shared pieces of the benchmark scripts: simulation designs and the machine description."""

from __future__ import annotations

import os
import platform
import sys
from datetime import date

import numpy as np


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} ({date.today().isoformat()})")


def command() -> str:
    return "python " + " ".join(sys.argv)


DESIGN_IDS = {"smooth": 1, "sparse": 2, "constant": 3}


def design(name: str, seed: int, n: int, d: int = 25):
    """Seeded simulation designs with known conditional effects.

    * "smooth": d = 5 Gaussian covariates, propensity logistic in x0, x1, x2, nonlinear mu0,
      heterogeneous effect tau(x) = 1 + x0 (arms unequal: about 40% treated).
    * "sparse": d covariates (default 25), half binary, propensity and outcome driven by a few of
      them, nonlinear mu0, effect tau(x) = 2 + x2 * (x3 > 0).
    * "constant": like "smooth" with a constant effect 1 (no estimand drift possible).
    Returns X (n, d), t, y, tau (n,) with the conditional sample effect tau.mean().
    """
    rng = np.random.default_rng([DESIGN_IDS[name], seed])
    if name in ("smooth", "constant"):
        X = rng.normal(size=(n, 5))
        logit = 0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] - 0.4
        mu0 = X[:, 0] + 0.5 * X[:, 1] ** 2 + np.sin(2 * X[:, 2])
        tau = 1.0 + (X[:, 0] if name == "smooth" else np.zeros(n))
    elif name == "sparse":
        X = rng.normal(size=(n, d))
        X[:, d // 2:] = (X[:, d // 2:] > 0.3).astype(float)
        logit = 0.9 * X[:, 0] - 0.6 * X[:, 1] + 0.8 * X[:, -1] - 0.5
        mu0 = 1.5 * np.tanh(X[:, 0]) + X[:, 1] ** 2 + X[:, -1] + 0.5 * X[:, 2]
        tau = 2.0 + X[:, 2] * (X[:, 3] > 0)
    e = 1 / (1 + np.exp(-logit))
    t = (rng.random(n) < e).astype(int)
    y = mu0 + t * tau + rng.normal(size=n)
    return X, t, y, tau
