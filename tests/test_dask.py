"""The distributed path (cina.distributed) on a two-worker LocalCluster: equal to the in-memory
estimator, partition-wise validation, nothing of size N gathered, weights written back aligned.

The cluster: two worker processes on the loopback interface, one thread each, whose memory limit
is below the data's size (Dask spills what exceeds 60% of it to disk; the process-memory
thresholds are off because a worker process's own baseline is above such a limit). Every test
has a timeout (TIMEOUT_S: tests/conftest.py).

What is compared with the in-memory path: ``CInA(method="exact", kernel="nystrom")`` with the
same rank, seed and settings (the same landmarks: drawn from the same rows), fitted on the
concatenated data; the distributed fit solves the QP in its dual, the in-memory one in its
primal, so the comparison checks the solver too.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import cina
import cina.distributed
from cina.errors import CInAValidationError, MissingDependencyError

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

TIMEOUT_S = 240
RANK = 48
# above cina.effect.SE_SAMPLE_FROM: the se then sums over a weighted sample of the units, drawn
# by the distributed path as in memory (the smaller data sets below check the full sum)
N = 60_000


def _data(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0] - 0.5 * X[:, 1]))).astype(int)
    y = X[:, 0] + np.sin(X[:, 1]) + 2 * t + rng.normal(size=n)
    df = pd.DataFrame(X, columns=["x0", "x1", "x2", "x3"])
    # a categorical covariate whose levels are spread unevenly over the partitions
    df["g"] = np.where(np.arange(n) < n // 2, rng.choice(["a", "b"], n), rng.choice(["b", "c"], n))
    df["t"] = t
    df["y"] = y
    return df


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _data(N)


MEMORY_LIMIT = 2 * 2**20  # bytes per worker: below the data's size (asserted below)


@pytest.fixture(scope="module")
def client():
    import dask

    with dask.config.set({"distributed.worker.memory.target": 0.6,
                          "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": False,
                          "distributed.worker.memory.terminate": False}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           memory_limit=MEMORY_LIMIT, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=50)
        cl = distributed.Client(cluster)
        try:
            yield cl
        finally:
            cl.close()
            cluster.close()


def _in_memory(df, monkeypatch, **settings):
    """CInA(method="exact", kernel="nystrom") at rank RANK (the estimator's kernel built with
    the same rank and seed as the distributed factor), with the distributed path's pipeline:
    the standardised covariates as keys and the plain weighting estimate (no outcome model)."""
    import cina.estimator as estimator_module

    make = estimator_module.make_kernel

    def with_rank(*args, **kwargs):
        kwargs.update(rank=RANK, random_state=0)
        return make(*args, **kwargs)

    monkeypatch.setattr(estimator_module, "make_kernel", with_rank)
    pipeline = {"augment": None}
    if "metric" in cina.CInA().get_params():
        pipeline["metric"] = "standardized"
    est = cina.CInA(method="exact", kernel="nystrom", **pipeline, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(df.drop(columns=["t", "y"]), df["t"], df["y"])
    return est


def _parquet(df, folder, parts: int) -> str:
    folder.mkdir(exist_ok=True)
    bounds = np.linspace(0, len(df), parts + 1).astype(int)
    for i in range(parts):
        df.iloc[bounds[i]:bounds[i + 1]].to_parquet(folder / f"part{i:02d}.parquet")
    return str(folder / "*.parquet")


# --- the absence of the extra --------------------------------------------------------------------
def test_missing_dask_is_a_clear_error(monkeypatch):
    # the import of the extra fails as on a machine without it (sys.modules[name] = None makes
    # `import name` raise ImportError)
    for name in ("distributed", "distributed.client"):
        monkeypatch.setitem(sys.modules, name, None)
    import cina.distributed as cd

    with pytest.raises(MissingDependencyError, match=r"cina\[dask\]") as info:
        cd.fit(pd.DataFrame({"t": [0, 1], "y": [0.0, 1.0], "x": [1.0, 2.0]}), "t", "y")
    assert "distributed" in str(info.value)
    from cina.cli import main

    assert main(["estimate", "x.parquet", "-t", "t", "-y", "y", "--scheduler", "local"]) == 2


# --- equality with the in-memory path ------------------------------------------------------------
def test_parquet_glob_equals_in_memory_with_memory_limit_below_data(data, client, tmp_path,
                                                                    monkeypatch):
    from cina.effect import SE_SAMPLE_FROM

    data_bytes = int(data.memory_usage(deep=True).sum())
    assert MEMORY_LIMIT < data_bytes  # each worker's limit is below the data's size
    assert len(data) >= SE_SAMPLE_FROM  # the se of a weighted sample of the units
    pattern = _parquet(data, tmp_path / "data", 6)
    res = cina.distributed.fit(pattern, "t", "y", client=client, rank=RANK)
    ref = _in_memory(data, monkeypatch)
    assert abs(res.estimate - ref.effect_) < 1e-6
    assert abs(res.se - ref.se_) < 1e-6
    assert res.info["se_units"] == ref.result_.info["se_units"]  # the same sample
    # the bias-aware interval: the weighting bias's prior sd from the kernel imbalance
    assert res.bias_sd > 0
    assert res.bias_sd == pytest.approx(ref.result_.bias_sd, rel=1e-6)
    np.testing.assert_allclose(res.interval(), ref.effect_interval(), atol=1e-6)
    assert res.info["lam_rel"] == pytest.approx(ref.result_.info["lam_rel"], rel=1e-12)
    assert res.info["bandwidth"] == pytest.approx(ref.result_.info["bandwidth"], rel=1e-10)
    assert res.feature_names == list(ref.feature_names_in_)
    w = res.weights.compute()
    assert np.abs(w["weight"].to_numpy() - ref.weights_.to_numpy()).max() < 1e-8
    assert (w["treatment"].to_numpy() == data["t"].to_numpy()).all()
    assert res.ess_treated == pytest.approx(ref.ess_["treated"], rel=1e-8)
    pd.testing.assert_frame_equal(res.balance_table(), ref.balance_table(), rtol=1e-6,
                                  atol=1e-9)
    # nothing of size N reached this process: the rules' subsamples and m-sized terms only
    assert res.info["bytes_gathered"] < data_bytes / 4
    assert res.weights.npartitions == 6


def test_att_and_mutual_equal_in_memory(client, monkeypatch):
    df = _data(12_000, seed=1)
    ddf = dd.from_pandas(df, npartitions=5)
    for settings in ({"estimand": "att"}, {"balance": "mutual", "lam_rel": 0.3}):
        res = cina.distributed.fit(ddf, "t", "y", client=client, rank=RANK, **settings)
        ref = _in_memory(df, monkeypatch, **settings)
        assert abs(res.estimate - ref.effect_) < 1e-6, settings
        assert abs(res.se - ref.se_) < 1e-6, settings
        assert res.bias_sd == pytest.approx(ref.result_.bias_sd, rel=1e-6, abs=1e-12), settings
        w = res.weights.compute()["weight"].to_numpy()
        assert np.abs(w - ref.weights_.to_numpy()).max() < 1e-8, settings
        # the weights keep the input's partitions and index
        assert res.weights.npartitions == ddf.npartitions
        assert (res.weights.compute().index == df.index).all()


def test_sampled_se_branches_equal_in_memory(client, monkeypatch):
    """The se's weighted sample (cina.effect.se_sample) from a lowered threshold: a sample of
    about 3,000 units, and every unit of positive weight when there are fewer than the sample's
    size."""
    import cina.effect as effect_module

    df = _data(12_000, seed=7)
    ddf = dd.from_pandas(df, npartitions=5)
    monkeypatch.setattr(effect_module, "SE_SAMPLE_FROM", 5_000)
    for size in (3_000, 50_000):
        monkeypatch.setattr(effect_module, "SE_SAMPLE_SIZE", size)
        res = cina.distributed.fit(ddf, "t", "y", client=client, rank=RANK)
        ref = _in_memory(df, monkeypatch)
        assert res.info["se_units"] == ref.result_.info["se_units"], size
        assert abs(res.se - ref.se_) < 1e-6, size
    assert res.info["se_units"] == np.count_nonzero(ref.weights_.to_numpy())


def test_dask_arrays(client, monkeypatch):
    import dask.array as da

    df = _data(8_000, seed=2).drop(columns=["g"])
    X = da.from_array(df[["x0", "x1", "x2", "x3"]].to_numpy(), chunks=(3000, 2))
    t = da.from_array(df["t"].to_numpy(), chunks=2500)
    y = da.from_array(df["y"].to_numpy(), chunks=2000)
    res = cina.distributed.fit_arrays(X, t, y, client=client, rank=RANK)
    ref = _in_memory(df, monkeypatch)
    assert abs(res.estimate - ref.effect_) < 1e-6
    assert res.weights.npartitions == 3


# --- validation, partition by partition ----------------------------------------------------------
def test_partition_errors_name_the_partition_and_column(client):
    df = _data(3000, seed=3)
    df.loc[2500, "x2"] = np.nan
    ddf = dd.from_pandas(df, npartitions=3)
    with pytest.raises(CInAValidationError, match=r"partition 2 \(rows 2000-2999\).*'x2'"):
        cina.distributed.fit(ddf, "t", "y", client=client, rank=RANK)
    bad = _data(3000, seed=3)
    bad.loc[10, "t"] = 2
    with pytest.raises(CInAValidationError, match="binary"):
        cina.distributed.fit(dd.from_pandas(bad, npartitions=3), "t", "y", client=client)
    one_arm = _data(3000, seed=3).assign(t=0)
    with pytest.raises(CInAValidationError, match="single value"):
        cina.distributed.fit(dd.from_pandas(one_arm, npartitions=3), "t", "y", client=client)
    with pytest.raises(CInAValidationError, match="zero-shot model"):
        cina.distributed.fit(dd.from_pandas(df, npartitions=3), "t", "y", client=client,
                             method="zero-shot")
    with pytest.raises(CInAValidationError, match="not in the data"):
        cina.distributed.fit(dd.from_pandas(df, npartitions=3), "treat", "y", client=client)


def test_treated_level_and_text_levels(client, monkeypatch):
    df = _data(4000, seed=4)
    df["arm"] = np.where(df["t"] == 1, "drug", "placebo")
    ddf = dd.from_pandas(df.drop(columns=["t"]), npartitions=4)
    res = cina.distributed.fit(ddf, "arm", "y", client=client, rank=RANK, treated_level="drug")
    ref = _in_memory(df.drop(columns=["arm"]), monkeypatch)
    assert abs(res.estimate - ref.effect_) < 1e-6
    assert res.feature_names == ["x0", "x1", "x2", "x3", "g=a", "g=b", "g=c"]


# --- writing the weights -------------------------------------------------------------------------
def test_weights_written_as_aligned_partitioned_parquet(client, tmp_path):
    df = _data(5000, seed=5)
    pattern = _parquet(df, tmp_path / "in", 4)
    out = tmp_path / "weights"
    res = cina.distributed.fit(pattern, "t", "y", client=client, rank=RANK, weights_out=out)
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"part.{i}.parquet" for i in range(4)]
    back = pd.read_parquet(out)
    assert (back["treatment"].to_numpy() == df["t"].to_numpy()).all()
    np.testing.assert_allclose(back["weight"].to_numpy(),
                               res.weights.compute()["weight"].to_numpy())
    for arm in (0, 1):
        assert back["weight"][back["treatment"] == arm].sum() == pytest.approx(1.0)
    # the input is never the output
    with pytest.raises(CInAValidationError, match="input"):
        cina.distributed.fit(pattern, "t", "y", client=client, weights_out=tmp_path / "in")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_write_leaves_nothing(client, tmp_path):
    from cina.distributed.writer import write_weights

    def boom(part):
        if part.index[0] >= 200:
            raise OSError(28, "No space left on device")
        return part

    frame = dd.from_pandas(pd.DataFrame({"weight": np.ones(400)}), npartitions=4)
    failing = frame.map_partitions(boom)
    target = tmp_path / "w"
    with pytest.raises(Exception, match="No space left"):
        write_weights(failing, target, client=client)
    assert list(tmp_path.iterdir()) == []


# --- the command line ----------------------------------------------------------------------------
def test_cli_scheduler_address(client, tmp_path, capsys):
    from cina.cli import main

    df = _data(5000, seed=6)
    pattern = _parquet(df, tmp_path / "in", 3)
    address = client.scheduler.address
    code = main(["estimate", pattern, "-t", "t", "-y", "y", "--scheduler", address, "--rank",
                 str(RANK), "--weights-out", str(tmp_path / "w"), "--balance-out",
                 str(tmp_path / "balance.csv"), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    rec = json.loads(out)
    res = cina.distributed.fit(pattern, "t", "y", client=client, rank=RANK)
    assert rec["estimate"] == pytest.approx(res.estimate, abs=1e-12)
    assert rec["n"] == 5000 and rec["balance"]["n_covariates"] == 7
    assert len(list((tmp_path / "w").iterdir())) == 3
    assert (tmp_path / "balance.csv").exists()
    assert main(["estimate", pattern, "-t", "t", "-y", "y", "--scheduler", address,
                 "--plot", str(tmp_path / "p.png")]) == 2
    assert main(["estimate", pattern, "-t", "t", "-y", "y", "--scheduler", address,
                 "-m", "zero-shot"]) == 2
