"""Real benchmark loaders (cina.datasets.real): shapes, reference effects, errors, caching.

Reference values were computed once from the original files (their sources and checksums are in
src/cina/datasets/data/SOURCES.md); the tests only need the package's own data.
"""

from __future__ import annotations

import shutil
import time
from functools import partial

import numpy as np
import pandas as pd
import pytest

from cina.datasets import (
    DATA_DIR,
    CausalDataset,
    list_real_suites,
    load_acic2016,
    load_ihdp,
    load_lalonde,
    load_twins,
)
from cina.datasets import real as real_mod
from cina.errors import CInAValidationError, DataFileError

# SATE mean(mu1 - mu0) of ihdp_npci_{r}.csv and first observed outcome, from the originals
IHDP_SATE = {1: 4.016066896118338, 2: 4.050838760043126, 25: 4.595643746347299,
             50: 3.9047495521547364}
IHDP_Y_FIRST = {1: 5.59991628549083, 2: 8.5763865229579, 50: 8.6246597058031}
# SATE of acic2016_param{s}_sim001.csv.gz (float64 source) and number treated
ACIC_SATE = {1: 2.1280792580308945, 16: 4.035124733430313, 22: -2.33605936846759,
             77: 4.048413348204943}
ACIC_TREATED = {1: 858, 16: 2551, 22: 1331, 77: 3065}
LALONDE_DIFF_IN_MEANS = 1794.3423818501024  # NSW-DW re78, computed in float64
TWINS_ATE = -0.02520026702269693
LALONDE_COLUMNS = ["age", "education", "black", "hispanic", "married", "nodegree", "re74",
                   "re75"]


def _check_common(ds: CausalDataset) -> None:
    assert isinstance(ds, CausalDataset)
    assert isinstance(ds.X, pd.DataFrame)
    assert ds.X.shape[0] == ds.n == len(ds.y)
    assert ds.X.columns.is_unique
    assert all(isinstance(c, str) for c in ds.X.columns)
    assert (ds.X.dtypes == np.float64).all()
    assert np.isfinite(ds.X.to_numpy()).all()
    assert ds.t.dtype == np.int64 and set(np.unique(ds.t)) == {0, 1}
    assert ds.y.dtype == np.float64 and np.isfinite(ds.y).all()
    assert isinstance(ds.true_effect, float)
    assert ds.estimand in ("ate", "att")
    if ds.mu0 is not None:
        assert ds.mu0.dtype == ds.mu1.dtype == np.float64
        assert ds.mu0.shape == ds.mu1.shape == ds.y.shape
        assert ds.sample_effect() == pytest.approx(ds.true_effect, rel=1e-12)


# --- IHDP ------------------------------------------------------------------------------------
@pytest.mark.parametrize("r", sorted(IHDP_SATE))
def test_ihdp_reference_values(r):
    ds = load_ihdp(r)
    _check_common(ds)
    assert ds.X.shape == (747, 25)
    assert list(ds.X.columns) == [f"x{j}" for j in range(1, 26)]
    assert int(ds.t.sum()) == 139
    assert ds.name == f"ihdp-{r}" and ds.estimand == "ate"
    assert ds.true_effect == pytest.approx(IHDP_SATE[r], rel=1e-6)
    assert ds.meta["realization"] == r
    if r in IHDP_Y_FIRST:
        assert ds.y[0] == pytest.approx(IHDP_Y_FIRST[r], rel=1e-12)


def test_ihdp_covariates_shared_outcomes_differ():
    a, b = load_ihdp(1), load_ihdp(2)
    pd.testing.assert_frame_equal(a.X, b.X)
    np.testing.assert_array_equal(a.t, b.t)
    assert not np.allclose(a.y, b.y)
    # x1..x6 continuous, the rest binary (x14 is coded 1/2)
    assert a.X["x1"].nunique() > 100
    assert set(np.unique(a.X["x7"])) == {0.0, 1.0}
    assert set(np.unique(a.X["x14"])) == {1.0, 2.0}


def test_ihdp_observed_outcome_is_noisy_factual():
    ds = load_ihdp(3)
    factual_mu = np.where(ds.t == 1, ds.mu1, ds.mu0)
    resid = ds.y - factual_mu
    assert abs(resid.mean()) < 0.2 and 0.5 < resid.std() < 1.5  # N(0, 1) noise


def test_ihdp_is_fast():
    load_ihdp(1)  # warm the cache
    start = time.perf_counter()
    for r in range(1, 11):
        load_ihdp(r)
    assert (time.perf_counter() - start) / 10 < 0.05


# --- LaLonde ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("controls", "n", "n_treated"), [
    ("experimental", 445, 185), ("cps", 185 + 15992, 185), ("psid", 185 + 2490, 185)])
def test_lalonde_counts(controls, n, n_treated):
    ds = load_lalonde(controls)
    _check_common(ds)
    assert ds.X.shape == (n, 8)
    assert list(ds.X.columns) == LALONDE_COLUMNS
    assert int(ds.t.sum()) == n_treated
    assert ds.estimand == "att" and ds.name == f"lalonde-{controls}"
    assert ds.mu0 is None and ds.mu1 is None
    assert round(ds.true_effect, 2) == 1794.34
    assert ds.true_effect == pytest.approx(LALONDE_DIFF_IN_MEANS, rel=1e-9)
    assert ds.meta["controls"] == controls


def test_lalonde_default_is_psid_and_treated_are_the_nsw_treated():
    psid, cps, exp = load_lalonde(), load_lalonde("cps"), load_lalonde("experimental")
    assert psid.name == "lalonde-psid"
    treated = exp.X[exp.t == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(psid.X[psid.t == 1].reset_index(drop=True), treated)
    pd.testing.assert_frame_equal(cps.X[cps.t == 1].reset_index(drop=True), treated)
    np.testing.assert_array_equal(psid.y[psid.t == 1], exp.y[exp.t == 1])


def test_lalonde_experimental_difference_in_means():
    ds = load_lalonde("experimental")
    diff = ds.y[ds.t == 1].mean() - ds.y[ds.t == 0].mean()
    assert round(diff, 2) == 1794.34
    assert ds.true_effect == pytest.approx(diff, rel=1e-12)
    assert 600 < ds.meta["experimental_se"] < 750


def test_lalonde_observational_controls_differ_from_experiment():
    # the CPS/PSID controls earn far more than the NSW controls: the naive contrast is
    # badly negative, which is what makes these benchmarks hard
    for controls in ("cps", "psid"):
        ds = load_lalonde(controls)
        assert ds.y[ds.t == 1].mean() - ds.y[ds.t == 0].mean() < -8000


# --- Twins -----------------------------------------------------------------------------------
def test_twins():
    ds = load_twins()
    _check_common(ds)
    assert ds.X.shape == (11984, 75)
    assert ds.name == "twins" and ds.estimand == "ate"
    assert round(ds.true_effect, 4) == -0.0252
    assert ds.true_effect == pytest.approx(TWINS_ATE, rel=1e-9)
    assert ds.X.columns[0] == "eclamp" and ds.X.columns[-1] == "dlivord_min"
    # the header repeats gestatcat1..10 three times: the repeats are renamed pandas-style
    for k in range(1, 11):
        assert {f"gestatcat{k}", f"gestatcat{k}.1", f"gestatcat{k}.2"} <= set(ds.X.columns)
    assert int(ds.t.sum()) == 8936
    np.testing.assert_array_equal(ds.y, np.where(ds.t == 1, ds.mu1, ds.mu0))
    assert set(np.unique(ds.mu0)) == set(np.unique(ds.mu1)) == {0.0, 1.0}
    assert not ds.X.isna().any().any()


# --- ACIC 2016 -------------------------------------------------------------------------------
@pytest.mark.parametrize("s", sorted(ACIC_SATE))
def test_acic2016_reference_values(s):
    ds = load_acic2016(s)
    _check_common(ds)
    assert ds.X.shape == (4802, 58 - 3 + 6 + 16 + 5)
    assert ds.name == f"acic2016-{s}" and ds.estimand == "ate"
    assert ds.true_effect == pytest.approx(ACIC_SATE[s], rel=1e-6)
    assert ds.meta["sate_source"] == pytest.approx(ACIC_SATE[s], rel=1e-12)
    assert int(ds.t.sum()) == ACIC_TREATED[s]
    assert ds.meta["setting"] == s
    assert set(ds.meta["parameters"]) == {"model.trt", "root.trt", "overlap.trt", "model.rsp",
                                          "alignment", "te.hetero"}
    assert ("caveat" in ds.meta) == (s == 16)


def test_acic2016_covariates():
    ds = load_acic2016(1)
    cols = list(ds.X.columns)
    assert cols[:3] == ["x_1", "x_2=A", "x_2=B"]
    assert [c for c in cols if c.startswith("x_2=")] == [f"x_2={c}" for c in "ABCDEF"]
    assert [c for c in cols if c.startswith("x_21=")] == [f"x_21={c}" for c in "ABCDEFGHIJKLMNOP"]
    assert [c for c in cols if c.startswith("x_24=")] == [f"x_24={c}" for c in "ABCDE"]
    for var in ("x_2", "x_21", "x_24"):
        onehot = ds.X[[c for c in cols if c.startswith(f"{var}=")]].to_numpy()
        np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
    # first row of x.csv: 29,"C",1,7,... and x_24 = "B"
    row = ds.X.iloc[0]
    assert row["x_1"] == 29 and row["x_2=C"] == 1 and row["x_3"] == 1 and row["x_4"] == 7
    assert row["x_24=B"] == 1
    pd.testing.assert_frame_equal(ds.X, load_acic2016(77).X)
    assert load_acic2016(16).meta["caveat"].startswith("setting 16")


# --- subsampling -----------------------------------------------------------------------------
@pytest.mark.parametrize("loader", [partial(load_ihdp, 4), load_twins, partial(load_acic2016, 5)])
def test_subsample_keeps_both_arms_and_recomputes_effect(loader):
    full = loader()
    ds = loader(n=200, seed=3)
    assert ds.n == 200 and ds.X.shape == (200, full.d)
    assert 2 <= int(ds.t.sum()) <= 198
    assert ds.meta["subsample"] == {"n": 200, "seed": 3}
    assert ds.true_effect == pytest.approx(float(np.mean(ds.mu1 - ds.mu0)), rel=1e-12)
    assert ds.true_effect != full.true_effect
    # arm shares are kept (stratified)
    assert abs(ds.t.mean() - full.t.mean()) < 0.02
    # same seed, same rows; another seed, other rows
    again = loader(n=200, seed=3)
    pd.testing.assert_frame_equal(ds.X, again.X)
    assert not np.array_equal(loader(n=200, seed=4).y, ds.y)


def test_subsample_lalonde_keeps_effect():
    ds = load_lalonde("psid", n=300, seed=1)
    assert ds.n == 300 and 2 <= int(ds.t.sum()) < 300
    assert ds.true_effect == pytest.approx(LALONDE_DIFF_IN_MEANS)


def test_subsample_larger_than_data_returns_everything():
    assert load_lalonde("experimental", n=10_000).n == 445


# --- suites ----------------------------------------------------------------------------------
def test_list_real_suites():
    suites = list_real_suites()
    assert {k: len(v) for k, v in suites.items()} == {
        "ihdp": 50, "lalonde-cps": 1, "lalonde-psid": 1, "lalonde-experimental": 1,
        "twins": 1, "acic2016": 77}
    assert all(callable(f) for specs in suites.values() for f in specs)
    names = [suites[k][i]().name for k, i in
             [("ihdp", 0), ("ihdp", 49), ("lalonde-cps", 0), ("lalonde-experimental", 0),
              ("twins", 0), ("acic2016", 76)]]
    assert names == ["ihdp-1", "ihdp-50", "lalonde-cps", "lalonde-experimental", "twins",
                     "acic2016-77"]
    ihdp_names = {f.keywords["realization"] for f in suites["ihdp"]}
    assert ihdp_names == set(range(1, 51))
    sub = list_real_suites(n=500, seed=2)["acic2016"][0]()
    assert sub.n == 500 and sub.meta["subsample"] == {"n": 500, "seed": 2}


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, 51, -1, 1.0, "1", True, None])
def test_ihdp_bad_realization(bad):
    with pytest.raises(CInAValidationError, match="realization must be an integer from 1 to 50"):
        load_ihdp(bad)


@pytest.mark.parametrize("bad", [0, 78, 2.5, "16"])
def test_acic_bad_setting(bad):
    with pytest.raises(CInAValidationError, match="setting must be an integer from 1 to 77"):
        load_acic2016(bad)


@pytest.mark.parametrize("bad", ["nsw", "CPS", "cps1", "", None, 1])
def test_lalonde_bad_controls(bad):
    with pytest.raises(CInAValidationError, match=r"controls must be one of \['experimental'"):
        load_lalonde(bad)


def test_validation_error_is_value_error():
    with pytest.raises(ValueError):
        load_ihdp(0)


@pytest.mark.parametrize("kwargs", [{"n": 3}, {"n": 0}, {"n": 10.0}, {"n": True},
                                    {"n": 100, "seed": -1}, {"n": 100, "seed": 0.5}])
def test_bad_subsample_arguments(kwargs):
    with pytest.raises(CInAValidationError, match="n must be|seed must be"):
        load_twins(**kwargs)
    with pytest.raises(CInAValidationError, match="n must be|seed must be"):
        list_real_suites(**kwargs)


def test_missing_data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(real_mod, "DATA_DIR", tmp_path)
    with pytest.raises(DataFileError, match=r"ihdp\.npz is missing"):
        load_ihdp(1)
    with pytest.raises(DataFileError, match=str(tmp_path)):
        load_twins()


@pytest.mark.parametrize("corrupt", ["garbage", "truncated", "flipped"])
def test_corrupted_data_file(tmp_path, monkeypatch, corrupt):
    raw = (DATA_DIR / "lalonde.npz").read_bytes()
    if corrupt == "garbage":
        data = b"this is not an npz archive" * 10
    elif corrupt == "truncated":
        data = raw[: len(raw) // 2]
    else:  # one byte flipped in the middle of the compressed data: CRC fails
        mid = len(raw) // 2
        data = raw[:mid] + bytes([raw[mid] ^ 0xFF]) + raw[mid + 1:]
    (tmp_path / "lalonde.npz").write_bytes(data)
    monkeypatch.setattr(real_mod, "DATA_DIR", tmp_path)
    with pytest.raises(DataFileError, match=r"lalonde\.npz is corrupted or unreadable"):
        load_lalonde("cps")


def test_data_file_missing_arrays(tmp_path, monkeypatch):
    with np.load(DATA_DIR / "twins.npz") as archive:
        arrays = {k: archive[k] for k in archive.files if k != "y1"}
    np.savez_compressed(tmp_path / "twins.npz", **arrays)
    monkeypatch.setattr(real_mod, "DATA_DIR", tmp_path)
    with pytest.raises(DataFileError, match=r"twins\.npz lacks the arrays \['y1'\]"):
        load_twins()


def test_data_file_inconsistent_shapes(tmp_path, monkeypatch):
    shutil.copy(DATA_DIR / "ihdp.npz", tmp_path / "ihdp.npz")
    with np.load(DATA_DIR / "ihdp.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["mu1"] = arrays["mu1"][:10]
    np.savez_compressed(tmp_path / "ihdp.npz", **arrays)
    monkeypatch.setattr(real_mod, "DATA_DIR", tmp_path)
    with pytest.raises(DataFileError, match="inconsistent shapes"):
        load_ihdp(1)


# --- no shared memory with the cache ---------------------------------------------------------
@pytest.mark.parametrize("loader", [partial(load_ihdp, 1), partial(load_lalonde, "cps"),
                                    partial(load_lalonde, "experimental"), load_twins,
                                    partial(load_acic2016, 16)])
def test_returned_objects_do_not_share_memory(loader):
    a = loader()
    ref = loader()
    arrays = [a.t, a.y] + ([a.mu0, a.mu1] if a.mu0 is not None else [])
    for arr in arrays:
        assert arr.flags.writeable  # the cached arrays are read-only: these are copies
        assert not any(np.shares_memory(arr, other) for other in
                       [ref.t, ref.y, ref.mu0, ref.mu1] if other is not None)
    assert not np.shares_memory(a.X.to_numpy(), ref.X.to_numpy())
    a.X.iloc[:, :] = -999.0
    a.t[:] = 0
    a.y[:] = np.nan
    if a.mu0 is not None:
        a.mu0[:] = 1e9
        a.mu1[:] = -1e9
    a.meta["dataset"] = "mutated"
    b = loader()
    pd.testing.assert_frame_equal(b.X, ref.X)
    np.testing.assert_array_equal(b.t, ref.t)
    np.testing.assert_array_equal(b.y, ref.y)
    if b.mu0 is not None:
        np.testing.assert_array_equal(b.mu0, ref.mu0)
        np.testing.assert_array_equal(b.mu1, ref.mu1)
    assert b.true_effect == ref.true_effect
    assert b.meta["dataset"] != "mutated"


def test_package_data_is_present():
    names = sorted(p.name for p in DATA_DIR.iterdir())
    assert {"ihdp.npz", "lalonde.npz", "twins.npz", "acic2016.npz", "SOURCES.md"} <= set(names)
    total = sum(p.stat().st_size for p in DATA_DIR.iterdir() if p.is_file())
    assert total < 15e6


def test_seeded_subsample_matches_manual_draw():
    # the loaders' subsample is CausalDataset.subsample: check it with our own generator
    rng = np.random.default_rng(11)
    seed = int(rng.integers(0, 1000))
    ds = load_acic2016(2)
    loaded = load_acic2016(2, n=1000, seed=seed)
    manual = ds.subsample(1000, seed)
    pd.testing.assert_frame_equal(loaded.X, manual.X)
    assert loaded.true_effect == manual.true_effect
