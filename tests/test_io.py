"""Tests of cina.io: reading data files and selecting the treatment, outcome and covariates."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pandas as pd
import pytest

from cina.errors import CInAValidationError, DataFileError
from cina.io import SUPPORTED_EXTENSIONS, MissingDependencyError, read_table, select_columns


def _frame(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 0.5).astype(int)
    return pd.DataFrame({"age": X[:, 0], "income": X[:, 1], "score": X[:, 2],
                         "treat": t, "outcome": X[:, 0] + t + rng.normal(size=n)})


# --- read_table ------------------------------------------------------------------------------
def test_supported_extensions():
    assert set(SUPPORTED_EXTENSIONS) == {".csv", ".csv.gz", ".parquet", ".dta"}


@pytest.mark.parametrize("name", ["data.csv", "DATA.CSV", "data.csv.gz"])
def test_read_csv(tmp_path, name):
    df = _frame()
    path = tmp_path / name
    df.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    out = read_table(path)
    pd.testing.assert_frame_equal(out, df)
    assert isinstance(out.index, pd.RangeIndex)


def test_read_csv_accepts_str_path(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "d.csv")), df)


def test_read_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    df = _frame()
    df.to_parquet(tmp_path / "d.parquet", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "d.parquet"), df)


def test_read_parquet_without_pyarrow(tmp_path, monkeypatch):
    (tmp_path / "d.parquet").write_bytes(b"PAR1 not really")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match=r"cina\[parquet\]") as info:
        read_table(tmp_path / "d.parquet")
    assert isinstance(info.value, ImportError)


def test_read_stata(tmp_path):
    df = _frame()
    df.to_stata(tmp_path / "d.dta", write_index=False)
    out = read_table(tmp_path / "d.dta")
    assert list(out.columns) == list(df.columns)
    np.testing.assert_allclose(out["outcome"], df["outcome"])
    np.testing.assert_array_equal(out["treat"], df["treat"])


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        read_table(tmp_path / "nope.csv")


def test_missing_file_suggests_close_name(tmp_path):
    _frame().to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(DataFileError, match="did you mean.*data.csv"):
        read_table(tmp_path / "dta.csv")


def test_directory(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataFileError, match="is a directory"):
        read_table(tmp_path / "dir.csv")


def test_unknown_extension_lists_supported(tmp_path):
    (tmp_path / "d.xlsx").write_text("a,b\n1,2\n")
    with pytest.raises(DataFileError, match=r"\.csv.*\.parquet.*\.dta"):
        read_table(tmp_path / "d.xlsx")


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(DataFileError, match="empty"):
        read_table(tmp_path / "e.csv")


def test_blank_csv(tmp_path):
    (tmp_path / "e.csv").write_text("\n\n")
    with pytest.raises(DataFileError, match="empty|no columns"):
        read_table(tmp_path / "e.csv")


def test_header_only(tmp_path):
    (tmp_path / "h.csv").write_text("treat,outcome,age\n")
    with pytest.raises(DataFileError, match="no rows"):
        read_table(tmp_path / "h.csv")


@pytest.mark.parametrize("name,content", [
    ("ragged.csv", b"a,b,c\n1,2,3\n4,5,6,7,8\n"),
    ("binary.csv", b"\xff\xfe\x00\x81garbage\x00\x9c\n\x81\x82,\xff\n"),
    ("bad.csv.gz", b"this is not gzip"),
    ("bad.parquet", b"this is not parquet at all"),
    ("bad.dta", b"this is not a stata file"),
])
def test_corrupt_file(tmp_path, name, content):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataFileError, match="could not read"):
        read_table(tmp_path / name)


def test_truncated_gzip(tmp_path):
    data = gzip.compress(_frame().to_csv(index=False).encode())
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="could not read"):
        read_table(tmp_path / "t.csv.gz")


def test_duplicated_header_is_kept(tmp_path):
    (tmp_path / "dup.csv").write_text("a,b,a,t,y\n1,2,3,0,1\n4,5,6,1,2\n")
    out = read_table(tmp_path / "dup.csv")
    assert list(out.columns) == ["a", "b", "a", "t", "y"]


def test_read_does_not_modify_file(tmp_path):
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    before = path.read_bytes()
    read_table(path)
    assert path.read_bytes() == before


# --- select_columns --------------------------------------------------------------------------
def test_select_default_covariates():
    df = _frame()
    X, t, y = select_columns(df, "treat", "outcome")
    assert list(X.columns) == ["age", "income", "score"]
    pd.testing.assert_series_equal(t, df["treat"])
    pd.testing.assert_series_equal(y, df["outcome"])


def test_select_given_covariates_keep_order():
    X, _, _ = select_columns(_frame(), "treat", "outcome", ["score", "age"])
    assert list(X.columns) == ["score", "age"]


def test_select_single_string_covariate():
    X, _, _ = select_columns(_frame(), "treat", "outcome", "income")
    assert list(X.columns) == ["income"]


def test_select_returns_copies_and_leaves_input_alone():
    df = _frame()
    original = df.copy(deep=True)
    X, t, y = select_columns(df, "treat", "outcome")
    X.iloc[0, 0] = 1e9
    t.iloc[0] = 7
    y.iloc[0] = -1e9
    pd.testing.assert_frame_equal(df, original)


@pytest.mark.parametrize("kwargs,match", [
    ({"treatment": "traet", "outcome": "outcome"}, r"treatment column 'traet'.*did you mean 'treat'"),
    ({"treatment": "treat", "outcome": "outcom"}, r"outcome column 'outcom'.*did you mean 'outcome'"),
    ({"treatment": "treat", "outcome": "outcome", "covariates": ["age", "incme"]},
     r"covariate column 'incme'.*did you mean 'income'"),
    ({"treatment": "Treat", "outcome": "outcome"}, r"did you mean 'treat'"),
    ({"treatment": "zzz", "outcome": "outcome"}, r"'zzz' is not in the data \(columns: 'age'"),
])
def test_select_unknown_columns(kwargs, match):
    with pytest.raises(CInAValidationError, match=match):
        select_columns(_frame(), **kwargs)


def test_select_treatment_is_outcome():
    with pytest.raises(CInAValidationError, match="same column"):
        select_columns(_frame(), "treat", "treat")


@pytest.mark.parametrize("col,kind", [("treat", "treatment"), ("outcome", "outcome")])
def test_select_treatment_or_outcome_among_covariates(col, kind):
    with pytest.raises(CInAValidationError, match=f"{kind} column '{col}' is also listed"):
        select_columns(_frame(), "treat", "outcome", ["age", col])


def test_select_covariate_twice():
    with pytest.raises(CInAValidationError, match="more than once.*age"):
        select_columns(_frame(), "treat", "outcome", ["age", "age"])


def test_select_empty_covariate_list():
    with pytest.raises(CInAValidationError, match="empty"):
        select_columns(_frame(), "treat", "outcome", [])


def test_select_no_covariates_left():
    with pytest.raises(CInAValidationError, match="no covariate columns"):
        select_columns(_frame()[["treat", "outcome"]], "treat", "outcome")


def test_select_duplicated_names(tmp_path):
    (tmp_path / "dup.csv").write_text("a,b,a,t,y\n1,2,3,0,1\n4,5,6,1,2\n")
    df = read_table(tmp_path / "dup.csv")
    with pytest.raises(CInAValidationError, match=r"duplicated column names.*\['a'\]"):
        select_columns(df, "t", "y")
    # a duplicated column that is not used does not matter
    X, _, _ = select_columns(df, "t", "y", ["b"])
    assert list(X.columns) == ["b"]


def test_select_needs_dataframe():
    with pytest.raises(CInAValidationError, match="DataFrame"):
        select_columns(np.zeros((3, 3)), "a", "b")


def test_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(ValueError):
        select_columns(_frame(), "nope", "outcome")


# --- resolve_treated_level: the text of a command line -> the column's level --------------------
@pytest.mark.parametrize("values, text, expected", [
    (["drug", "placebo"], "drug", "drug"),
    ([1, 2, 2, 1], "2", 2),
    ([1.0, 2.0], "2", 2.0),
    ([True, False], "true", True),
    ([True, False], "False", False),
    (["1", "2"], "1", "1"),  # a string column keeps its string level
    ([0, 1], "7", "7"),  # no match: returned as is (validation lists the levels)
    ([0, 1], None, None),
])
def test_resolve_treated_level(values, text, expected):
    from cina.io import resolve_treated_level

    got = resolve_treated_level(pd.Series(values), text)
    assert got == expected and type(got) is type(expected)
