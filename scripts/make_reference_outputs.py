"""Store the outputs of every registered method on a few small datasets, the guard of refactors.

``tests/test_reference_outputs.py`` refits every case and checks that the estimate, the standard
error, the interval, the weights and the numeric facts of ``info`` are reproduced bit for bit.
A refactor must leave them unchanged; a deliberate change of behaviour regenerates the file:

    .venv/bin/python scripts/make_reference_outputs.py

The datasets are stored with the outputs, so the test does not depend on the loaders:

* ``synthetic``: 200 units, 5 covariates, a confounded design with heterogeneous effects (ATE);
* ``synthetic-att``: 120 units of the same design, the ATT;
* ``ihdp``: IHDP realization 1 (747 units, 25 covariates), ATE;
* ``acic``: ACIC 2016 setting 1 subsampled to 400 units (82 covariates), ATE;
* ``lalonde-att``: LaLonde with the PSID controls subsampled to 500 units, the ATT.

Every registered method runs on the two synthetic datasets; the real ones run a selection
(``CASES``) to keep the test's runtime small.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "reference_outputs"

#: dataset -> (estimand, the methods run on it). Every method runs on the synthetic datasets
#: (aipw on one); the larger ones run a selection to keep the test's runtime small (the
#: boosting fits of aipw and of the augmented estimates cost seconds each; entropy balancing
#: cannot reach ACIC's full-sample means)
ALL = ("exact", "fit", "zero-shot", "exact-aug", "zero-shot-aug", "exact-plain", "naive", "ipw",
       "aipw", "dml", "tlearner", "entropy")
CASES = {
    "synthetic": ("ate", ALL),
    "synthetic-att": ("att", tuple(m for m in ALL if m != "aipw")),
    "ihdp": ("ate", ("exact", "zero-shot", "naive", "ipw", "entropy")),
    "acic": ("ate", ("exact", "zero-shot", "naive", "ipw")),
    "lalonde-att": ("att", ("exact", "zero-shot", "naive", "ipw", "dml", "entropy")),
}
#: settings that keep a method fast here: Algorithm 1 stops after 300 L-BFGS iterations (the
#: guard is about identical results, not about convergence)
SETTINGS = {"fit": {"max_iter": 300}}


#: facts of ``info`` about the machine and the moment, not about the result: wall times and the
#: thread policy's choice (it follows CINA_NUM_THREADS and the machine's load); never stored or
#: compared
ENVIRONMENT_FACTS = ("seconds", "threads")


def _synthetic(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[:, 4] = (X[:, 4] > 0.3).astype(float)
    e = 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 4])))
    t = (rng.random(n) < e).astype(np.int64)
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * X[:, 2] + t * (1.0 + X[:, 3]) \
        + 0.5 * rng.normal(size=n)
    return np.round(X, 8), t, np.round(y, 8)


def make_datasets() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(X, t, y) of every dataset, as plain arrays."""
    from cina.datasets.real import load_acic2016, load_ihdp, load_lalonde

    out = {"synthetic": _synthetic(11, 200), "synthetic-att": _synthetic(12, 120)}
    for name, ds in (("ihdp", load_ihdp(1)), ("acic", load_acic2016(1, n=400, seed=0)),
                     ("lalonde-att", load_lalonde("psid", n=500, seed=0))):
        out[name] = (np.asarray(ds.X, dtype=float), np.asarray(ds.t, dtype=np.int64),
                     np.asarray(ds.y, dtype=float))
    return out


def _flatten(info: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in info.items():
        name = f"{prefix}{key}"
        if any(part in name for part in ENVIRONMENT_FACTS):  # where it ran, not what it computed
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def run_case(method: str, estimand: str, X: np.ndarray, t: np.ndarray, y: np.ndarray
             ) -> dict[str, np.ndarray]:
    """The outputs of one method on one dataset, as named arrays (numeric) plus one JSON text
    of the non-numeric facts (``info_text``)."""
    from cina.registry import make_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make_estimator(method, estimand=estimand, **SETTINGS.get(method, {})).fit(X, t, y)
    res = est.result_
    lo, hi = res.interval(0.05)
    arrays = {"estimate": np.float64(res.estimate),
              "se": np.float64(np.nan if res.se is None else res.se),
              "interval": np.array([lo, hi], dtype=float),
              "weights": np.zeros(0) if res.weights is None else np.asarray(res.weights, float)}
    text = {}
    for key, value in sorted(_flatten(res.info).items()):
        if isinstance(value, (bool, str)) or value is None:
            text[key] = value
        elif isinstance(value, (int, float, np.integer, np.floating)):
            arrays[f"info.{key}"] = np.float64(value)
        elif isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
            arrays[f"info.{key}"] = value.astype(float)
        else:
            text[key] = repr(value)
    arrays["info_text"] = np.array(json.dumps(text, sort_keys=True))
    return arrays


def main() -> None:
    from cina.registry import available_methods

    OUT.mkdir(parents=True, exist_ok=True)
    datasets = make_datasets()
    assert set(ALL) == set(available_methods()), "a new method: add it to ALL"
    for name, (estimand, methods) in CASES.items():
        X, t, y = datasets[name]
        store = {"X": X, "t": t, "y": y}
        for method in methods:
            start = time.process_time()
            for key, value in run_case(method, estimand, X, t, y).items():
                store[f"{method}/{key}"] = value
            est = float(store[f"{method}/estimate"])
            print(f"{name:14s} {method:14s} {est: .6g}  ({time.process_time() - start:.1f} s CPU)"
                  if math.isfinite(est) else name)
        np.savez_compressed(OUT / f"{name}.npz", **store)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
