"""Bad input gets a clear ValueError subclass naming the problem; data is never modified."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cina
from cina._validation import validate_inputs
from cina.errors import CInAValidationError, DataWarning


def frame(seed: int = 0, n: int = 40) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.normal(40, 5, n), "income": rng.normal(size=n),
                      "city": rng.choice(["a", "b", "c"], n)})
    t = pd.Series(np.tile([0, 1], n // 2), name="treat")
    y = pd.Series(rng.normal(size=n), name="outcome")
    return X, t, y


def test_valid_dataframe_is_encoded_and_not_modified():
    X, t, y = frame()
    X0, t0, y0 = X.copy(), t.copy(), y.copy()
    data = validate_inputs(X, t, y)
    assert data.feature_names == ["age", "income", "city=a", "city=b", "city=c"]
    assert data.X.shape == (40, 5) and data.t.dtype == np.int64
    pd.testing.assert_frame_equal(X, X0)
    pd.testing.assert_series_equal(t, t0)
    pd.testing.assert_series_equal(y, y0)
    data.X[0, 0] = -1  # the validated copy is independent of the input
    assert X.iloc[0, 0] == X0.iloc[0, 0]


@pytest.mark.parametrize("values,match", [
    (np.repeat([0, 1, 2], [10, 15, 15]), "binary .*3 distinct"),
    (np.ones(40), "single value"),
    (np.array(["a", "b", "c", "d"] * 10), "binary .*4 distinct"),
    (np.array(["drug", "placebo"] * 20), "Pass treated_level"),
    (np.r_[np.ones(1), np.zeros(39)], "treated arm has 1 unit"),
    (np.r_[np.zeros(1), np.ones(39)], "control arm has 1 unit"),
    (np.r_[np.nan, np.tile([0.0, 1.0], 19), 1.0], "1 missing"),
])
def test_bad_treatments(values, match):
    X, _, y = frame()
    with pytest.raises(CInAValidationError, match=match):
        validate_inputs(X, values, y)


def test_string_treatment_with_treated_level():
    X, _, y = frame()
    t = np.array(["drug", "placebo"] * 20)
    data = validate_inputs(X, t, y, treated_level="drug")
    assert data.t.sum() == 20 and data.t[0] == 1
    with pytest.raises(CInAValidationError, match="not a value"):
        validate_inputs(X, t, y, treated_level="aspirin")


def test_nan_and_inf_are_reported_by_column_and_count():
    X, t, y = frame()
    X.loc[[1, 5, 7], "income"] = np.nan
    with pytest.raises(CInAValidationError, match=r"'income': 3 NaN, 0 inf"):
        validate_inputs(X, t, y)
    X, t, y = frame()
    X.loc[2, "age"] = np.inf
    with pytest.raises(CInAValidationError, match=r"'age': 0 NaN, 1 inf"):
        validate_inputs(X, t, y)
    X, t, y = frame()
    y[[0, 3]] = np.nan
    with pytest.raises(CInAValidationError, match=r"outcome 'outcome' has 2 NaN"):
        cina.CInA().fit(X, t, y)


def test_shapes_lengths_and_names():
    X, t, y = frame()
    with pytest.raises(CInAValidationError, match="mismatched lengths: X has 40 rows but "
                                                  "treatment has 39"):
        validate_inputs(X, t[:39], y)
    with pytest.raises(CInAValidationError, match="outcome has 38"):
        validate_inputs(X, t, y[:38])
    with pytest.raises(CInAValidationError, match="two-dimensional"):
        validate_inputs(np.ones(40), t, y)
    dup = pd.concat([X[["age"]], X[["age"]]], axis=1)
    with pytest.raises(CInAValidationError, match="duplicated covariate column names"):
        validate_inputs(dup, t, y)
    with pytest.raises(CInAValidationError, match="feature_names has 2 names"):
        validate_inputs(np.ones((40, 3)), t, y, feature_names=["a", "b"])
    with pytest.raises(CInAValidationError, match="outcome .* must be numeric"):
        validate_inputs(X, t, np.array(["x"] * 40))


def test_constant_covariate_dropped_with_warning():
    X, t, y = frame()
    X["const"] = 3.0
    with pytest.warns(DataWarning, match="dropping 1 constant covariate"):
        data = validate_inputs(X, t, y)
    assert "const" not in data.feature_names and data.dropped_constant == ["const"]
    with pytest.raises(CInAValidationError, match="every covariate is constant"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_inputs(pd.DataFrame({"c": np.ones(40)}), t, y)


def test_validation_error_is_a_value_error():
    assert issubclass(CInAValidationError, ValueError)
    X, t, y = frame()
    with pytest.raises(ValueError):
        cina.CInA().fit(X, np.zeros(40), y)
