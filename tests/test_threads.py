"""The thread policy (cina._threads): the small dense rules on one BLAS thread, and the per-fit
limit of BLAS / OpenMP / torch threads, observed inside fits of CInA and of the baselines."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from cina import CInA, _threads  # noqa: E402
from cina._threads import (  # noqa: E402
    ENV_VAR,
    SINGLE_THREAD_MAX_N,
    available_cores,
    blas_threads_for,
    resolve_threads,
    single_threaded_blas,
    thread_limits,
)
from cina.errors import CInAValidationError  # noqa: E402


def _blas_threads() -> list[int]:
    np.ones(2) @ np.ones(2)  # make sure numpy's BLAS is loaded
    return [i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas"]


def _all_threads() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i in threadpoolctl.threadpool_info():
        out.setdefault(i["user_api"], []).append(i["num_threads"])
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        out["torch"] = [torch.get_num_threads()]
    return out


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_single_threaded_blas_limits_and_restores():
    before = _blas_threads()
    assert before, "no BLAS library found by threadpoolctl"
    with single_threaded_blas():
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_blas_threads_for_leaves_large_problems_alone():
    assert isinstance(blas_threads_for(SINGLE_THREAD_MAX_N + 1), contextlib.nullcontext)
    before = _blas_threads()
    with blas_threads_for(SINGLE_THREAD_MAX_N):
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


# -- resolving the count -----------------------------------------------------------------------
def test_precedence_n_jobs_then_env_then_auto(no_env, monkeypatch):
    monkeypatch.setattr(_threads, "other_runnable_tasks", lambda: 0.0)
    monkeypatch.setattr(_threads, "available_cores", lambda: 4)
    assert resolve_threads(None, 100_000).threads == 4
    monkeypatch.setenv(ENV_VAR, "3")
    assert resolve_threads(None, 100_000) == _threads.ThreadChoice(3, f"{ENV_VAR}=3")
    assert resolve_threads(2, 100_000).threads == 2  # the estimator's own setting wins
    assert resolve_threads(-1, 10).threads == 4  # every core, even for a small problem
    monkeypatch.setenv(ENV_VAR, "all")
    assert resolve_threads(None, 10).threads == 4
    monkeypatch.setenv(ENV_VAR, "auto")
    assert resolve_threads(None, 100_000).threads == 4


def test_auto_counts_the_other_runnable_tasks(no_env, monkeypatch):
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    for others, expected in ((0.0, 2), (1.0, 1), (2.0, 1), (12.0, 1)):
        monkeypatch.setattr(_threads, "other_runnable_tasks", lambda o=others: o)
        choice = resolve_threads(None, 100_000)
        assert choice.threads == expected
        assert "other runnable" in choice.rule
    monkeypatch.setattr(_threads, "other_runnable_tasks", lambda: 0.0)
    assert resolve_threads(None, SINGLE_THREAD_MAX_N).threads == 1  # small problems
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's OpenMP cap is honoured
    assert resolve_threads(None, 100_000).threads == 1


def test_machine_probes_are_sane():
    assert available_cores() >= 1
    assert _threads.other_runnable_tasks() >= 0


@pytest.mark.parametrize("bad", ["lots", "0", "-3", "1.5", 0, -2, 2.5, True])
def test_bad_settings_are_clear_errors(no_env, monkeypatch, bad):
    with pytest.raises(CInAValidationError, match="n_jobs must be"):
        resolve_threads(bad, 10)
    monkeypatch.setenv(ENV_VAR, str(bad))
    if str(bad) in ("True",):
        return
    with pytest.raises(CInAValidationError, match=ENV_VAR):
        resolve_threads(None, 10)


def test_thread_limits_cover_blas_openmp_torch_and_restore():
    torch = pytest.importorskip("torch")
    before = _all_threads()
    with thread_limits(1):
        inside = _all_threads()
    assert all(n == 1 for counts in inside.values() for n in counts)
    assert _all_threads() == before
    assert torch.get_num_threads() == before["torch"][0]


# -- inside fits -------------------------------------------------------------------------------
def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 0.5).astype(int)
    return X, t, X[:, 0] + t + rng.normal(size=n)


class _Spy:
    """Records the thread counts seen at one point inside a fit."""

    def __init__(self):
        self.seen: list[dict] = []

    def __call__(self, *args, **kwargs):
        self.seen.append(_all_threads())


@pytest.mark.parametrize("n_jobs,env,expected", [(1, None, 1), (2, None, 2), (None, "2", 2),
                                                 (None, "1", 1)])
def test_cina_fit_runs_under_the_policy(no_env, monkeypatch, n_jobs, env, expected):
    pytest.importorskip("torch")
    if env is not None:
        monkeypatch.setenv(ENV_VAR, env)
    spy = _Spy()
    original = CInA._lam_rule

    def lam_rule(self, *args, **kwargs):
        spy()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CInA, "_lam_rule", lam_rule)
    before = _all_threads()
    est = CInA(method="exact", n_jobs=n_jobs).fit(*_data())
    assert est.result_.info["threads"] == expected
    assert all(n == expected for counts in spy.seen[0].values() for n in counts)
    assert _all_threads() == before  # restored


@pytest.mark.parametrize("method", ["aipw", "dml", "ipw", "tlearner", "entropy"])
def test_baselines_run_under_the_policy(no_env, monkeypatch, method):
    from cina.registry import make_estimator

    monkeypatch.setenv(ENV_VAR, "1")
    est = make_estimator(method)
    spy = _Spy()
    original = type(est)._fit_validated

    def fit_validated(self, data):
        spy()
        return original(self, data)

    monkeypatch.setattr(type(est), "_fit_validated", fit_validated)
    est.fit(*_data())
    assert est.result_.info["threads"] == 1
    assert all(n == 1 for counts in spy.seen[0].values() for n in counts)


def test_auto_on_a_busy_machine_takes_one_thread(no_env, monkeypatch):
    monkeypatch.setattr(_threads, "other_runnable_tasks", lambda: 5.0)
    est = CInA(method="exact").fit(*_data(n=2500))
    assert est.result_.info["threads"] == 1
    assert "5 other runnable" in est.result_.info["threads_rule"]


def test_n_jobs_is_validated_before_the_fit():
    with pytest.raises(CInAValidationError, match="n_jobs must be"):
        CInA(n_jobs=0).fit(*_data())
    assert CInA(n_jobs=-1).get_params()["n_jobs"] == -1
