"""Consistency: every registered method reproduces its stored outputs bit for bit.

The stored outputs (``tests/data/reference_outputs/*.npz``, written by
``scripts/make_reference_outputs.py``) are the guard of refactors: the estimate, the standard
error, the interval, the weights and every stored fact of ``info`` must be exactly equal
(np.array_equal, NaN equal to NaN); facts added to ``info`` later are allowed, and facts about
the machine (wall times, the thread count) are not compared. A deliberate change of behaviour
regenerates them with the script, and the commit says why.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "reference_outputs"


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_reference_outputs", ROOT / "scripts" / "make_reference_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


def _environment_fact(key: str) -> bool:
    """A fact about where and when the fit ran (its wall time, its thread count), not about the
    result: not compared (scripts/make_reference_outputs.py leaves them out)."""
    return any(part in key for part in SCRIPT.ENVIRONMENT_FACTS)


def _cases():
    out = []
    for name in SCRIPT.CASES:
        path = DATA / f"{name}.npz"
        if not path.is_file():
            continue
        with np.load(path) as f:
            methods = sorted({k.split("/")[0] for k in f.files if "/" in k})
        out += [pytest.param(name, m, id=f"{name}-{m}") for m in methods]
    return out


def test_reference_files_cover_every_method():
    from cina.registry import available_methods

    assert all((DATA / f"{name}.npz").is_file() for name in SCRIPT.CASES)
    covered = {m for _, m in (p.values for p in _cases())}
    assert covered == set(available_methods())


@pytest.mark.parametrize("dataset,method", _cases())
def test_outputs_are_reproduced_exactly(dataset, method):
    estimand, _ = SCRIPT.CASES[dataset]
    with np.load(DATA / f"{dataset}.npz") as f:
        X, t, y = f["X"], f["t"], f["y"]
        stored = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(method + "/")}
    got = SCRIPT.run_case(method, estimand, X, t, y)
    # every stored fact is reproduced; facts added to info since (new keys) are allowed
    got_text = json.loads(str(got.pop("info_text")))
    for key, value in json.loads(str(stored.pop("info_text"))).items():
        if _environment_fact(key):  # stored before such facts were left out
            continue
        assert got_text.get(key, "<missing>") == value, f"{method} on {dataset}: info {key!r}"
    stored = {k: v for k, v in stored.items() if not _environment_fact(k)}
    assert set(stored) <= set(got), f"{method} on {dataset}: lost {set(stored) - set(got)}"
    for key, value in stored.items():
        assert np.array_equal(got[key], value, equal_nan=True), (
            f"{method} on {dataset}: {key} changed (max |diff| "
            f"{np.nanmax(np.abs(np.asarray(got[key]) - value)) if value.size else 0:.3g})")
