"""Hostile and careless inputs to the Python API (issue 13 items 4 and 8, and issue 9 item 7).

Each case gives a clear :class:`~cina.errors.CInAValidationError` (what was expected, what was
received) or the correct result, never a raw numpy error, a NaN interval or a silently wrong
estimate: ragged lists, sparse and complex input, covariates near the float range, outcomes near
it, colliding column names, identifier-like columns, and an extremely unequal design.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cina
from cina.errors import CInAValidationError, IdentifierColumnWarning


def _design(seed: int = 0, n: int = 200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    y = X[:, 0] + 2.0 * t + 0.5 * rng.normal(size=n)
    return X, t, y


def _fit(X, t, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cina.CInAWarning)
        return cina.CInA(**kw).fit(X, t, y)


def test_ragged_list_is_a_clear_error():
    with pytest.raises(CInAValidationError, match="rectangular.*different lengths"):
        cina.CInA().fit([[1.0, 2.0], [3.0], [4.0, 5.0]] * 10, [0, 1, 0] * 10, [1.0, 2.0, 3.0] * 10)
    X, t, y = _design(n=30)
    with pytest.raises(CInAValidationError, match="outcome|rectangular|one-dimensional"):
        cina.CInA().fit(X, t, [[1.0, 2.0]] + [[1.0]] * 29)


def test_sparse_input_is_accepted_as_the_dense_table():
    sp = pytest.importorskip("scipy.sparse")
    X, t, y = _design(1)
    X[np.abs(X) < 0.5] = 0.0
    dense = _fit(X, t, y, lam_rel=0.1)
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        assert _fit(fmt(X), t, y, lam_rel=0.1).effect_ == dense.effect_


def test_complex_input_is_refused():
    X, t, y = _design(2)
    with pytest.raises(CInAValidationError, match="complex"):
        cina.CInA().fit(X + 1j, t, y)
    with pytest.raises(CInAValidationError, match="complex"):
        cina.CInA().fit(X, t, y + 0j)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype({"b": complex})
    with pytest.raises(CInAValidationError, match="complex.*'b'|'b'.*complex"):
        cina.CInA().fit(frame, t, y)


@pytest.mark.parametrize("method", ["exact", "zero-shot"])
def test_covariates_near_the_float_range_give_the_scaled_result(method):
    # X x 1e307: means and variances overflowed, the kernel became NaN, and the exact solver
    # failed with an IndexError; z-scores do not depend on the scale
    X, t, y = _design(3)
    plain = _fit(X, t, y, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow on the way
        warnings.simplefilter("ignore", cina.CInAWarning)
        huge = cina.CInA(method=method).fit(X * 1e307, t, y)
    assert huge.effect_ == pytest.approx(plain.effect_, rel=1e-9)
    assert np.all(np.isfinite(huge.effect_interval()))
    assert huge.balance_table()["smd_after"].max() == pytest.approx(
        plain.balance_table()["smd_after"].max(), rel=1e-6)


@pytest.mark.parametrize("name", ["exact", "zero-shot", "exact-aug", "naive", "ipw", "dml"])
def test_outcomes_near_the_float_range_give_a_finite_interval(name):
    # y x 1e200: squared residuals overflowed to inf and the interval was NaN with only a
    # RuntimeWarning; the fit runs on y / 2^k (exact) and scales back
    from cina.registry import make_estimator

    X, t, y = _design(4, n=150)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cina.CInAWarning)
        plain = make_estimator(name).fit(X, t, y)
        warnings.simplefilter("error", RuntimeWarning)
        huge = make_estimator(name).fit(X, t, y * 1e200)
    lo, hi = huge.effect_interval()
    assert np.isfinite(lo) and np.isfinite(hi) and lo < huge.effect_ < hi
    # forests choose splits by comparing sums of squares: y x 1e200 rounds a little
    # differently from y, and a near-tie can go the other way
    rel = 1e-2 if name == "dml" else 1e-6
    assert huge.effect_ == pytest.approx(plain.effect_ * 1e200, rel=rel)
    assert huge.se_ == pytest.approx(plain.se_ * 1e200, rel=10 * rel)
    assert huge.result_.info["outcome_scale"] > 1e199


def test_column_names_that_collide_as_text_are_refused():
    X, t, y = _design(5)
    frame = pd.DataFrame({0: X[:, 0], "0": X[:, 1], "b": X[:, 2]})
    with pytest.raises(CInAValidationError, match="collide.*'0'"):
        cina.CInA().fit(frame, t, y)


def test_one_hot_names_that_collide_with_a_column_are_refused():
    X, t, y = _design(6)
    g = np.where(X[:, 2] > 0, "a", "b")
    frame = pd.DataFrame({"g": g, "g=a": X[:, 0], "x": X[:, 1]})
    with pytest.raises(CInAValidationError, match="collide.*one-hot.*'g=a'"):
        cina.CInA().fit(frame, t, y)


def test_identifier_columns_are_dropped_with_a_warning_naming_them():
    X, t, y = _design(7)
    n = len(t)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame.insert(0, "Unnamed: 0", np.arange(n))  # a saved pandas index
    frame["id"] = [f"unit-{i:04d}" for i in np.random.default_rng(0).permutation(n)]
    frame["row"] = np.arange(1, n + 1)[::-1]  # a running index under another name
    reference = _fit(pd.DataFrame(X, columns=["a", "b", "c"]), t, y)
    with pytest.warns(IdentifierColumnWarning, match="Unnamed: 0.*id.*row"):
        est = cina.CInA().fit(frame, t, y)
    assert list(est.feature_names_in_) == ["a", "b", "c"]
    assert est.effect_ == reference.effect_
    assert est.data_.dropped_identifier == ["Unnamed: 0", "id", "row"]
    # a running index in a plain array too
    with pytest.warns(IdentifierColumnWarning, match="x0"):
        est = cina.CInA().fit(np.column_stack([np.arange(n), X]), t, y)
    assert list(est.feature_names_in_) == ["x1", "x2", "x3"]


def test_columns_that_only_look_like_identifiers_are_kept():
    X, t, y = _design(8, n=60)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["count"] = np.random.default_rng(1).integers(0, 5, size=60)  # integers, repeated
    frame["group"] = np.where(X[:, 0] > 0, "p", "q")  # a categorical
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifierColumnWarning)
        est = _fit(frame, t, y)
    assert "count" in est.feature_names_in_ and "group=p" in est.feature_names_in_
    with pytest.raises(CInAValidationError, match="identifies rows"):
        cina.CInA().fit(pd.DataFrame({"id": [f"u{i}" for i in range(60)]}), t, y)


def test_five_treated_of_many_gives_the_same_weights_as_a_cold_solve():
    # the balance guard re-solves the QP at smaller lam from the previous weights (the fix of
    # the 10-14x slowdown with 5 treated units): the warm-started answer is the cold one
    from cina.balancing import attention_kernel, solve_balancing_weights, standardize

    rng = np.random.default_rng(9)
    n = 400
    X = rng.normal(size=(n, 4))
    t = np.zeros(n, int)
    t[rng.choice(n, 5, replace=False)] = 1
    y = X[:, 0] + t + rng.normal(size=n)
    est = _fit(X, t, y, metric="standardized", augment=None)  # the guard's key map
    info = est.result_.info
    assert info["lam_guard_steps"] >= 1  # the guard ran
    Z, _, _ = standardize(X)
    cold = solve_balancing_weights(attention_kernel(Z, info["bandwidth"]), t, info["lam_rel"])
    np.testing.assert_allclose(est.result_.weights, cold.alpha, atol=1e-9)


def test_no_overlap_design_warns_in_the_api_and_the_cli_json(tmp_path):
    """Issue 13.4: treated iff x > 0, y = 3x + 2t: no unit has a counterpart across x = 0. The
    fit must say so (OverlapWarning, and in the CLI's JSON warnings), and an overlapping design
    of the same size must not."""
    import json
    import subprocess
    import sys

    from cina.errors import OverlapWarning

    rng = np.random.default_rng(0)
    n = 400
    x = rng.standard_normal(n)
    X = np.column_stack([x, rng.standard_normal(n)])
    t = (x > 0).astype(int)
    y = 3 * x + 2 * t + 0.5 * rng.standard_normal(n)
    with pytest.warns(OverlapWarning, match="limited overlap"):
        est = cina.CInA(augment=None).fit(X, t, y)
    assert est.result_.info["overlap_extreme_share"] > 0.5
    t_ok = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x))).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverlapWarning)
        cina.CInA(augment=None).fit(X, t_ok, 3 * x + 2 * t_ok + rng.standard_normal(n))
    path = tmp_path / "no_overlap.csv"
    pd.DataFrame({"x": x, "z": X[:, 1], "t": t, "y": y}).to_csv(path, index=False)
    out = subprocess.run([sys.executable, "-m", "cina", "estimate", str(path), "-t", "t", "-y",
                          "y", "--json", "--method", "exact-plain"],
                         capture_output=True, text=True, check=True)
    record = json.loads(out.stdout)
    assert any("limited overlap" in w for w in record["warnings"])
