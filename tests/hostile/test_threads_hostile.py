"""Threads that spin (issue 13 item 6): every fit, from the API and from the CLI, runs under
the thread policy of cina._threads, also on a machine kept busy by other CPU-bound processes
(started here), and bad thread settings are clear errors. No timing assertions: the policy's
choice and the thread counts inside the fit are what is checked."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

import cina  # noqa: E402
from cina import _threads  # noqa: E402
from cina.cli import main  # noqa: E402
from cina.errors import CInAValidationError  # noqa: E402
from cina.registry import make_estimator  # noqa: E402


@pytest.fixture(autouse=True)
def _no_thread_env(monkeypatch):
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def _design(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    return X, t, X[:, 0] + 2.0 * t + rng.normal(size=n)


@pytest.fixture
def csv(tmp_path):
    X, t, y = _design()
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    frame["treat"], frame["out"] = t, y
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


class _Busy:
    """Two CPU-bound processes for the duration of the block."""

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(2)]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def _openmp_and_blas() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["user_api"] in ("blas", "openmp")]


@pytest.mark.parametrize("method", ["aipw", "exact"])
def test_on_a_busy_machine_a_fit_takes_one_thread(method, monkeypatch):
    seen = []
    est = make_estimator(method)
    original = type(est)._fit_validated

    def spy(self, data):
        seen.append(_openmp_and_blas())
        return original(self, data)

    monkeypatch.setattr(type(est), "_fit_validated", spy)
    with _Busy(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # (the N = 400 fit is on one thread whatever the load; 2,500 units go by the load)
        est.fit(*_design(n=2500 if method == "exact" else 400))
    assert est.result_.info["threads"] == 1
    assert all(n == 1 for n in seen[0])


def test_cli_threads_option_reaches_the_fit(csv, capsys):
    code = main(["estimate", str(csv), "-t", "treat", "-y", "out", "--method", "aipw",
                 "--threads", "2", "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["info"]["threads"] == 2
    assert record["info"]["threads_rule"] == f"{_threads.ENV_VAR}=2"
    assert _threads.ENV_VAR not in __import__("os").environ  # restored after the command


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5", ""])
def test_cli_bad_threads_is_a_usage_error(csv, capsys, value):
    code = main(["estimate", str(csv), "-t", "treat", "-y", "out", "--threads", value])
    assert code == 2
    assert "--threads" in capsys.readouterr().err


def test_bad_environment_setting_is_a_clear_error(csv, capsys, monkeypatch):
    monkeypatch.setenv(_threads.ENV_VAR, "plenty")
    with pytest.raises(CInAValidationError, match=f"{_threads.ENV_VAR} must be"):
        cina.CInA().fit(*_design())
    code = main(["estimate", str(csv), "-t", "treat", "-y", "out"])
    assert code == 2
    assert _threads.ENV_VAR in capsys.readouterr().err


def test_thread_settings_are_restored_after_a_failing_fit(monkeypatch):
    before = _openmp_and_blas()

    def boom(self, data):
        assert all(n == 1 for n in _openmp_and_blas())
        raise RuntimeError("inside the fit")

    monkeypatch.setattr(cina.CInA, "_fit_validated", boom)
    with pytest.raises(RuntimeError, match="inside the fit"):
        cina.CInA(n_jobs=1).fit(*_design())
    assert _openmp_and_blas() == before
