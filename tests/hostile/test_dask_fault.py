"""Fault injection on the distributed path (issue 13): a killed command, or a killed worker, and
the final result equals the uninterrupted one; a killed run leaves no partial Parquet dataset.

* The command ``cina estimate 'in/*.parquet' ... --scheduler local --weights-out W --json`` is
  killed (SIGKILL to its process group: the command and its LocalCluster's processes) at a
  seeded random point of its run; the target W must then be absent or complete (never partial),
  and a rerun must give the uninterrupted run's estimate and weights, removing what the killed
  run left behind.
* One worker of a running fit is killed (SIGKILL to its process); the scheduler recomputes its
  lost partitions from their lineage and the fit's estimate and weights equal the undisturbed
  fit's.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("dask.dataframe")

TIMEOUT_S = 400


def _write_data(folder: Path, n: int = 20_000, parts: int = 5) -> str:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    df["t"], df["y"] = t, X[:, 0] + X[:, 1] ** 2 + 2 * t + rng.normal(size=n)
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(n), parts)):
        df.iloc[part].to_parquet(folder / f"p{i}.parquet")
    return str(folder / "*.parquet")


def _command(pattern: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "cina", "estimate", pattern, "-t", "t", "-y", "y",
            "--scheduler", "local", "--rank", "32", "--weights-out", str(out), "--json"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _run(cmd: list[str]) -> tuple[dict, float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), time.monotonic() - start


def test_killed_command_then_rerun_equals_uninterrupted(tmp_path):
    pattern = _write_data(tmp_path / "in", n=6_000, parts=4)
    ref_dir = tmp_path / "ref"
    ref, seconds = _run(_command(pattern, ref_dir))
    ref_weights = pd.read_parquet(ref_dir)

    out = tmp_path / "w"
    delay = random.Random(20260101).uniform(0.3, 0.95) * seconds
    proc = subprocess.Popen(_command(pattern, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), start_new_session=True,
                            stdin=subprocess.DEVNULL)
    finished = False
    try:
        proc.wait(timeout=delay)
        finished = True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    # never a partial dataset: absent, or the complete one of a run that finished first
    if out.exists():
        assert finished or sorted(p.name for p in out.iterdir()) == sorted(
            p.name for p in ref_dir.iterdir())
        pd.testing.assert_frame_equal(pd.read_parquet(out), ref_weights)

    rerun, _ = _run(_command(pattern, out))
    for key in ("estimate", "se", "ci_low", "ci_high", "ess_treated", "ess_control"):
        assert rerun[key] == ref[key], key
    pd.testing.assert_frame_equal(pd.read_parquet(out), ref_weights)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the rerun removed what the killed run left beside the target


def _wait_for_workers(client, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
        assert time.monotonic() < deadline, f"fewer than {n} workers after {timeout} s"
        time.sleep(0.2)


def test_killed_worker_does_not_change_the_result(tmp_path, monkeypatch):
    """One worker is SIGKILLed at a seeded random reduction of the fit (a point inside the fit by
    construction, whatever the machine's speed), once in each half of the fit's reductions: the
    first half builds the partitions and the rules' samples, the second the kernel factor, the
    weights and the se, whose lost partitions are recomputed from the feature map and the
    residual model's fits (held as tasks, not scattered: scattered data take their dependents'
    lineage with them once released). The estimate and weights equal the undisturbed fit's."""
    import cina.distributed
    from cina.distributed import driver

    pattern = _write_data(tmp_path / "in", n=12_000, parts=6)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        ref = cina.distributed.fit(pattern, "t", "y", client=client, rank=32)
        ref_w = ref.weights.compute()
        rounds = ref.info["reductions"]
        draw = random.Random(13)
        gather = driver._Cluster.gather
        for kill_at in (draw.randint(2, rounds // 2 - 1), draw.randint(rounds // 2, rounds - 1)):
            _wait_for_workers(client, 2)
            victim = sorted(client.run(os.getpid).values())[0]
            killed = []

            def gather_with_a_kill(self, futures, kill_at=kill_at, victim=victim,
                                   killed=killed):
                if self.rounds + 1 == kill_at:  # the worker dies while this round is computed
                    os.kill(victim, signal.SIGKILL)
                    killed.append(self.rounds + 1)
                return gather(self, futures)

            monkeypatch.setattr(driver._Cluster, "gather", gather_with_a_kill)
            res = cina.distributed.fit(pattern, "t", "y", client=client, rank=32)
            w = res.weights.compute()
            monkeypatch.setattr(driver._Cluster, "gather", gather)
            assert killed == [kill_at]
            assert victim not in client.run(os.getpid).values()  # a new worker took its place
            assert res.info["reductions"] == rounds
            assert res.estimate == pytest.approx(ref.estimate, abs=1e-12), kill_at
            assert res.se == pytest.approx(ref.se, abs=1e-12), kill_at
            np.testing.assert_allclose(w["weight"].to_numpy(), ref_w["weight"].to_numpy(),
                                       atol=1e-12)
            pd.testing.assert_index_equal(w.index, ref_w.index)
