"""Many groups at once (cina.groups.estimate_by, cina estimate --by): the batched zero-shot path
equals per-group fits, groups that cannot be estimated get a status, the CLI's outputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import cina
from cina.errors import CInAValidationError
from cina.groups import GROUP_COLUMNS, estimate_by


def _groups_frame(sizes, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + 2 * t + rng.normal(size=n)
    df = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    df["kind"] = rng.choice(["u", "v"], n)
    df["t"], df["y"] = t, y
    df["region"] = np.repeat([f"r{i}" for i in range(len(sizes))], sizes)
    return df.sample(frac=1.0, random_state=1)  # groups interleaved in the rows


@pytest.fixture(scope="module")
def frame():
    df = _groups_frame([150, 300, 220, 400, 8, 120])
    df.loc[df.region == "r5", "t"] = 0  # an empty treated arm
    return df


def _per_group(df, method, **settings):
    """Per-group CInA fits with the groups' pipeline (cina.groups.GROUP_PIPELINE)."""
    from cina.groups import GROUP_PIPELINE

    params = cina.CInA().get_params()
    pipeline = {k: v for k, v in GROUP_PIPELINE.items() if k in params}
    out = {}
    for g, sub in df.groupby("region"):
        est = cina.CInA(method=method, **pipeline, **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                est.fit(sub.drop(columns=["region", "t", "y"]), sub["t"], sub["y"])
            except CInAValidationError:
                continue
        out[g] = est
    return out


def test_batched_zero_shot_equals_per_group_fits(frame):
    table = estimate_by(frame, "region", "t", "y")
    assert list(table.columns) == list(GROUP_COLUMNS)
    assert list(table.group) == [f"r{i}" for i in range(6)]
    ref = _per_group(frame, "zero-shot")
    ok = table[table.status == "ok"]
    assert set(ok.group) == {"r0", "r1", "r2", "r3"}
    for _, row in ok.iterrows():
        est = ref[row.group]
        # the padded batch and the fit of one group differ only by float32 rounding
        assert row.estimate == pytest.approx(est.effect_, abs=1e-4)
        assert row.se == pytest.approx(est.se_, rel=1e-3)
        assert row.bias_sd == pytest.approx(est.result_.bias_sd, rel=1e-3, abs=1e-9)
        assert row.ess_treated == pytest.approx(est.ess_["treated"], rel=1e-3)
        assert row.lam_rel == pytest.approx(est.result_.info["lam_rel"], rel=1e-9)
        assert row.n == len(est.data_.t)
        lo, hi = est.effect_interval()
        assert row.ci_low == pytest.approx(lo, abs=1e-3)
    loop = estimate_by(frame, "region", "t", "y", per_group_loop=True)
    np.testing.assert_allclose(loop.estimate.to_numpy(), table.estimate.to_numpy(), atol=1e-4)


def test_groups_that_cannot_be_estimated_get_a_status(frame):
    table = estimate_by(frame, "region", "t", "y", method="exact")
    by = table.set_index("group")
    assert by.loc["r4", "status"].startswith("too few units")
    assert by.loc["r5", "status"].startswith("empty treated arm")
    assert np.isnan(by.loc["r5", "estimate"])
    assert (by.loc[["r0", "r1", "r2", "r3"], "status"] == "ok").all()
    ref = _per_group(frame, "exact")
    for g in ("r0", "r3"):
        assert by.loc[g, "estimate"] == pytest.approx(ref[g].effect_, abs=1e-10)


def test_att_and_a_cluster_give_the_same_table(frame):
    distributed = pytest.importorskip("distributed")
    local = estimate_by(frame, "region", "t", "y", estimand="att")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        spread = estimate_by(frame, "region", "t", "y", estimand="att", client=client)
    pd.testing.assert_frame_equal(local.drop(columns=["warnings"]),
                                  spread.drop(columns=["warnings"]))


def test_bad_arguments(frame):
    with pytest.raises(CInAValidationError, match="not in the data"):
        estimate_by(frame, "regoin", "t", "y")
    with pytest.raises(CInAValidationError, match="also listed"):
        estimate_by(frame, "region", "t", "y", covariates=["x0", "region"])


def test_cli_by(frame, tmp_path, capsys):
    from cina.cli import main

    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    assert main(["estimate", str(path), "-t", "t", "-y", "y", "--by", "region"]) == 0
    text = capsys.readouterr().out
    assert "4 of 6 groups estimated" in text and "empty treated arm" in text
    out = tmp_path / "groups.csv"
    assert main(["estimate", str(path), "-t", "t", "-y", "y", "--by", "region", "--json",
                 "--groups-out", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [rec["group"] for rec in lines] == [f"r{i}" for i in range(6)]
    written = pd.read_csv(out)
    assert list(written.columns) == list(GROUP_COLUMNS)
    assert written.estimate.iloc[0] == pytest.approx(lines[0]["estimate"])
    assert main(["estimate", str(path), "-t", "t", "-y", "y", "--groups-out",
                 str(tmp_path / "g2.csv")]) == 2
    assert main(["estimate", str(path), "-t", "t", "-y", "y", "--by", "region",
                 "--groups-out", str(path)]) == 2  # never over the input
    assert main(["estimate", str(path), "-t", "t", "-y", "y", "--by", "region",
                 "--weights-out", str(tmp_path / "w.csv")]) == 2
