"""Reading a user's data file and picking the treatment, outcome and covariate columns.

:func:`read_table` reads CSV (also gzip-compressed ``.csv.gz``), Parquet and Stata ``.dta``
files into a DataFrame; every problem with the file is a :class:`~cina.errors.DataFileError`
whose message names the file. :func:`select_columns` splits a DataFrame into ``(X, t, y)`` for
``fit`` and reports unknown or clashing column names as
:class:`~cina.errors.CInAValidationError`. Neither function modifies its input.

Nothing here encodes or cleans values: string and categorical covariates are one-hot encoded,
and missing values are reported, by the estimators' input validation.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .errors import CInAValidationError, DataFileError, MissingDependencyError

__all__ = ["read_table", "select_columns", "resolve_treated_level", "SUPPORTED_EXTENSIONS",
           "MissingDependencyError"]

SUPPORTED_EXTENSIONS = (".csv", ".csv.gz", ".parquet", ".dta")
"""File name endings :func:`read_table` understands (case-insensitive)."""


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for ext in (".csv.gz", ".csv", ".parquet", ".dta"):
        if name.endswith(ext):
            return ext
    return None


def _csv_header(path: Path, compression) -> list | None:
    """The raw header cells of a CSV file (pandas renames duplicates to ``name.1``)."""
    try:
        head = pd.read_csv(path, header=None, nrows=1, dtype=str, compression=compression,
                           keep_default_na=False)
    except Exception:  # noqa: BLE001 - the main read reports the problem
        return None
    return list(head.iloc[0]) if len(head) else None


_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _first_line(path: Path, compression) -> str | None:
    import gzip

    try:
        opener = gzip.open if compression == "gzip" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            return fh.readline(65536).rstrip("\r\n")
    except (OSError, EOFError):
        return None  # the main read reports the problem


def _check_separator(path: Path, compression) -> None:
    """A header with no comma but semicolons (tabs, pipes) is a file written with another
    separator (a spreadsheet in a locale with decimal commas, say): reading it as comma-separated
    would give one column named 'a;b;c', so say what the file is instead."""
    header = _first_line(path, compression)
    if not header or "," in header:
        return
    for sep, name in _OTHER_SEPARATORS.items():
        if sep in header:
            shown = header if len(header) <= 60 else header[:57] + "..."
            raise DataFileError(
                f"data file {str(path)!r} looks {name}-separated (its header {shown!r} has no "
                f"comma); cina reads comma-separated .csv files: convert it first, e.g. "
                f"pandas.read_csv({str(path)!r}, sep={sep!r}).to_csv('data.csv', index=False) "
                "(add decimal=',' if its numbers use decimal commas)")


def _read_csv(path: Path, compression) -> pd.DataFrame:
    _check_separator(path, compression)
    df = pd.read_csv(path, compression=compression)
    header = _csv_header(path, compression)
    if header is not None and len(header) == df.shape[1] and len(set(header)) < len(header):
        # keep duplicated names visible so that select_columns can report them
        df.columns = [h if h != "" else c for h, c in zip(header, df.columns, strict=True)]
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"reading the Parquet file {path} needs pyarrow, which is not installed; "
            "install it with: pip install 'cina[parquet]'") from None
    return pd.read_parquet(path, engine="pyarrow")


def read_table(path) -> pd.DataFrame:
    """Read a data file into a DataFrame, one row per unit.

    Parameters
    ----------
    path : str or path-like. The format is taken from the name: ``.csv`` or ``.csv.gz``
        (comma-separated with a header row), ``.parquet`` (needs pyarrow:
        ``pip install 'cina[parquet]'``) or ``.dta`` (Stata; value labels become categoricals).

    Returns
    -------
    DataFrame with a fresh ``RangeIndex`` (row ``i`` is the ``i``-th data row of the file).
    Duplicated column names in a CSV header are kept as they are (not renamed to ``name.1``),
    so that :func:`select_columns` can report them.

    Raises
    ------
    DataFileError : the file is missing, is a directory, has an unknown extension, cannot be
        parsed, or has no rows or no columns.
    MissingDependencyError : a Parquet file was given and pyarrow is not installed.
    """
    if path is None:
        raise DataFileError("no data file given (path is None)")
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        hint = ""
        parent = p.parent if str(p.parent) else Path(".")
        if parent.is_dir():
            near = difflib.get_close_matches(p.name, [q.name for q in parent.iterdir()], n=3)
            if near:
                hint = f"; did you mean {', '.join(repr(str(parent / q)) for q in near)}?"
        raise DataFileError(f"data file {str(p)!r} does not exist{hint}")
    if p.is_dir():
        raise DataFileError(f"{str(p)!r} is a directory, not a data file")
    kind = _kind(p)
    if kind is None:
        raise DataFileError(
            f"cannot tell the format of {str(p)!r} from its name; supported file types are "
            f"{', '.join(SUPPORTED_EXTENSIONS)}")
    what = {".csv": "CSV", ".csv.gz": "gzip-compressed CSV", ".parquet": "Parquet",
            ".dta": "Stata .dta"}[kind]
    if p.stat().st_size == 0:
        raise DataFileError(f"data file {str(p)!r} is empty (0 bytes)")
    try:
        if kind == ".csv":
            df = _read_csv(p, compression=None)
        elif kind == ".csv.gz":
            df = _read_csv(p, compression="gzip")
        elif kind == ".parquet":
            df = _read_parquet(p)
        else:
            df = pd.read_stata(p)
    except (MissingDependencyError, DataFileError):
        raise
    except pd.errors.EmptyDataError:
        raise DataFileError(f"data file {str(p)!r} is empty (no columns)") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(
            f"could not read {str(p)!r} as a {what} file: it is not UTF-8 text (byte "
            f"{exc.object[exc.start:exc.start + 1]!r} at position {exc.start}); save it as "
            "UTF-8, or check that it is not a binary file with a text file's name") from None
    except PermissionError:
        raise DataFileError(f"data file {str(p)!r} cannot be read: permission denied") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser fails in its own way
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataFileError(
            f"could not read {str(p)!r} as a {what} file; it may be corrupt or in another "
            f"format ({type(exc).__name__}: {msg})") from None
    if df.shape[1] == 0:
        raise DataFileError(f"data file {str(p)!r} has no columns")
    if df.shape[0] == 0:
        raise DataFileError(
            f"data file {str(p)!r} has no rows (only a header with {df.shape[1]} column(s))")
    return df.reset_index(drop=True)


def _unknown(kind: str, name, columns: list) -> CInAValidationError:
    names = [str(c) for c in columns]
    near = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    near += [c for c in names if c.lower() == str(name).lower() and c not in near]
    hint = f"; did you mean {', '.join(repr(c) for c in near)}?" if near else ""
    shown = ", ".join(repr(c) for c in names[:20]) + (", ..." if len(names) > 20 else "")
    return CInAValidationError(
        f"{kind} column {name!r} is not in the data{hint} (columns: {shown})")


def _as_name_list(covariates) -> list:
    if isinstance(covariates, str):
        return [covariates]
    if not isinstance(covariates, Iterable):
        raise CInAValidationError(
            f"covariates must be a list of column names or None; received {covariates!r}")
    return list(covariates)


def select_columns(df: pd.DataFrame, treatment, outcome, covariates=None
                   ) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Split ``df`` into covariates ``X``, treatment ``t`` and outcome ``y``.

    Parameters
    ----------
    df : DataFrame, e.g. from :func:`read_table`. It is not modified; the returned objects
        are copies.
    treatment, outcome : column names.
    covariates : list of column names, or None for every column except the treatment and the
        outcome (a single string is one column name).

    Returns
    -------
    (X, t, y) : DataFrame of covariates (in the order given), treatment Series, outcome Series,
        all on ``df``'s index.

    Raises
    ------
    CInAValidationError : a name is not a column (close matches are suggested), the treatment
        is the outcome, the treatment or outcome is listed among the covariates, a covariate
        is listed twice, no covariate is left, or a selected name is duplicated in ``df``.
    """
    if not isinstance(df, pd.DataFrame):
        raise CInAValidationError(
            f"select_columns needs a pandas DataFrame; received {type(df).__name__}")
    columns = list(df.columns)
    present = set(columns)
    for kind, name in (("treatment", treatment), ("outcome", outcome)):
        if name is None:
            raise CInAValidationError(f"a {kind} column name is required; received None")
        if name not in present:
            raise _unknown(kind, name, columns)
    if treatment == outcome:
        raise CInAValidationError(
            f"the treatment and the outcome are the same column ({treatment!r}); "
            "they must be two different columns")
    if covariates is None:
        cov = [c for c in columns if c != treatment and c != outcome]
        # a duplicated name appears once in the default list (it is reported below)
        cov = list(dict.fromkeys(cov))
        if not cov:
            raise CInAValidationError(
                f"no covariate columns: the data has only the treatment {treatment!r} and the "
                f"outcome {outcome!r}")
    else:
        cov = _as_name_list(covariates)
        if not cov:
            raise CInAValidationError(
                "the covariate list is empty; give at least one column, or None for every "
                "column except the treatment and the outcome")
        for name in cov:
            if name not in present:
                raise _unknown("covariate", name, columns)
        for kind, name in (("treatment", treatment), ("outcome", outcome)):
            if name in cov:
                raise CInAValidationError(
                    f"the {kind} column {name!r} is also listed among the covariates; "
                    "remove it from the covariates")
        repeated = sorted({str(c) for c in cov if cov.count(c) > 1})
        if repeated:
            raise CInAValidationError(f"covariates listed more than once: {repeated}")
    used = [treatment, outcome, *cov]
    dup = pd.Index(columns)
    dup = dup[dup.duplicated()]
    clash = [str(c) for c in dict.fromkeys(dup) if c in used]
    if clash:
        raise CInAValidationError(
            f"duplicated column names in the data: {clash}; every column needs a unique "
            "name (rename or drop the duplicates)")
    X = df.loc[:, cov].copy()
    t = df[treatment].copy()
    y = df[outcome].copy()
    return X, t, y


def resolve_treated_level(t, value: str | None):
    """The level of the treatment column ``t`` that the text ``value`` names.

    A command line gives every value as text: ``"drug"`` is the string level, ``"2"`` is the
    number 2 in a numeric column, ``"true"`` is ``True`` in a boolean one. Exact string matches
    win, then the level whose text is ``value``, then numeric equality. Returns ``value`` itself
    when no level matches (input validation then lists the levels); None stays None.
    """
    if value is None:
        return None
    levels = list(dict.fromkeys(v for v in pd.Series(t).dropna().tolist()))
    for level in levels:
        if isinstance(level, str) and level == value:
            return level
    for level in levels:
        if str(level) == value or (isinstance(level, bool) and str(level).lower() == value.lower()):
            return level
    try:
        number = float(value)
    except ValueError:
        return value
    for level in levels:
        if isinstance(level, (int, float)) and not isinstance(level, bool) and level == number:
            return level
    return value
