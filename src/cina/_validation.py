"""Input validation: the one place where a user's data enters cina.

Everything downstream works on the clean arrays of :class:`ValidatedData`. The caller's objects
are never modified: every array here is a fresh copy.
"""

from __future__ import annotations

import numbers
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import CInAValidationError, DataWarning, IdentifierColumnWarning

__all__ = ["ValidatedData", "validate_inputs", "encode_covariates", "check_int"]


def check_int(value, name: str, minimum: int) -> int:
    """An integer setting >= ``minimum`` (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise CInAValidationError(
            f"{name} must be an integer >= {minimum}; received {value!r}")
    return int(value)


@dataclass(frozen=True)
class ValidatedData:
    """Clean inputs: float64 covariates, 0/1 treatment, float64 outcome (or None)."""

    X: np.ndarray  # (n, d) float64, finite, no constant column
    t: np.ndarray  # (n,) int64 in {0, 1}
    y: np.ndarray | None  # (n,) float64, finite
    feature_names: list[str]
    index: pd.Index | None = None  # the input's index when it was a pandas object
    dropped_constant: list[str] = field(default_factory=list)
    dropped_identifier: list[str] = field(default_factory=list)  # row ids, running indices

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_treated(self) -> int:
        return int(self.t.sum())

    @property
    def n_control(self) -> int:
        return self.n - self.n_treated


def _is_categorical(s: pd.Series) -> bool:
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(s.dtype)
        or pd.api.types.is_string_dtype(s.dtype)
    )


#: rows from which a column unique per row counts as an identifier (below, all-distinct values
#: are common by chance)
IDENTIFIER_MIN_ROWS = 20
_UNNAMED = re.compile(r"^Unnamed: \d+$")  # the header pandas gives a saved, unnamed index


def _is_identifier(name: str, values: pd.Series) -> bool:
    """Whether a column identifies rows rather than describing units: unique per row, and text
    (an id), a saved pandas index (``Unnamed: 0``) or consecutive integers (a running index)."""
    n = len(values)
    if n < IDENTIFIER_MIN_ROWS or values.isna().any() or values.nunique() != n:
        return False
    if _UNNAMED.match(name) or _is_categorical(values):
        return True
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values):
        return False
    arr = values.to_numpy(dtype=float)
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        return False
    return float(arr.max() - arr.min()) == n - 1  # n distinct integers spanning n: k..k+n-1


def _check_unique_names(names: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for nm in names:
        seen[nm] = seen.get(nm, 0) + 1
    dup = sorted(nm for nm, k in seen.items() if k > 1)
    if dup:
        raise CInAValidationError(
            f"covariate names collide {what}: {dup[:10]}; every covariate needs a unique "
            "name: rename the columns (e.g. 0 and '0', or a column 'g=a' beside a categorical "
            "'g' with level 'a')")


def encode_covariates(X: pd.DataFrame, *, drop_identifiers: bool = True) -> pd.DataFrame:
    """One-hot encode string, object and categorical columns; booleans become 0/1.

    Every level gets its own indicator column named ``column=level`` (no level is dropped: a
    balancing kernel and a balance table both want every level). Missing values are left as
    NaN in every indicator so that validation reports them against the original column.

    With ``drop_identifiers``, columns that identify rows (see :func:`_is_identifier`: a text
    id unique per row, a saved pandas index ``Unnamed: N``, a running integer index) are dropped
    with an :class:`~cina.errors.IdentifierColumnWarning` naming them: one-hot encoding an id
    gives one covariate per unit, and an index column is no covariate.
    """
    if X.columns.duplicated().any():
        dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
        raise CInAValidationError(
            f"duplicated covariate column names: {dup}; every column needs a unique name"
        )
    _check_unique_names([str(c) for c in X.columns], "once written as text")
    parts: list[pd.DataFrame | pd.Series] = []
    identifiers = [str(name) for name in X.columns
                   if drop_identifiers and _is_identifier(str(name), X[name])]
    if identifiers:
        if len(identifiers) == X.shape[1]:
            raise CInAValidationError(
                f"every covariate column identifies rows (unique per row): {identifiers[:10]}; "
                "nothing to balance on")
        warnings.warn(
            f"dropping {len(identifiers)} column(s) that identify rows rather than describe "
            f"units (unique per row: an id, a saved index or a running index): "
            f"{identifiers[:10]}", IdentifierColumnWarning, stacklevel=4)
    for name in X.columns:
        if str(name) in identifiers:
            continue
        col = X[name]
        if pd.api.types.is_bool_dtype(col.dtype):
            parts.append(col.astype(float).rename(str(name)))
        elif _is_categorical(col):
            as_num = pd.to_numeric(col, errors="coerce") if not isinstance(
                col.dtype, pd.CategoricalDtype) else None
            if as_num is not None and as_num.notna().sum() == col.notna().sum():
                # numbers stored as text: keep them numeric
                parts.append(as_num.astype(float).rename(str(name)))
                continue
            missing = col.isna()
            levels = (list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype)
                      else sorted(col.dropna().astype(str).unique()))
            values = col.astype(str).where(~missing) if not isinstance(
                col.dtype, pd.CategoricalDtype) else col
            for level in levels:
                ind = (values == (level if isinstance(col.dtype, pd.CategoricalDtype)
                                  else str(level))).astype(float)
                ind[missing] = np.nan
                parts.append(ind.rename(f"{name}={level}"))
        else:
            parts.append(pd.to_numeric(col, errors="coerce").astype(float).rename(str(name)))
    if not parts:
        return pd.DataFrame(index=X.index)
    out = pd.concat(parts, axis=1)
    _check_unique_names([str(c) for c in out.columns], "after one-hot encoding")
    out.attrs["dropped_identifier"] = identifiers
    return out


def _as_array(values, what: str) -> np.ndarray:
    """np.array(values) (a copy), with clear errors for what numpy would take badly: sparse
    matrices (densified), ragged nested lists, complex numbers."""
    if _is_sparse(values):
        values = values.toarray(order="C")
    try:
        arr = np.array(values, copy=True)
    except ValueError as exc:
        if "inhomogeneous" in str(exc) or "sequence" in str(exc):
            raise CInAValidationError(
                f"{what} must be a rectangular table: its rows have different lengths (a ragged "
                "list); pass a 2-D array or a DataFrame") from None
        raise
    if arr.dtype == object and arr.ndim >= 1 and any(
            isinstance(v, (list, tuple, np.ndarray)) for v in arr.ravel()[:1000]):
        raise CInAValidationError(
            f"{what} must be a rectangular table of numbers: it holds nested sequences of "
            "different lengths (a ragged list)")
    if np.iscomplexobj(arr) or (arr.dtype == object and any(
            isinstance(v, complex) for v in arr.ravel()[:1000])):
        raise CInAValidationError(
            f"{what} holds complex numbers; cina needs real numbers (the imaginary part would be "
            "lost)")
    return arr


def _is_sparse(values) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(values)


def _as_1d(values, what: str) -> tuple[np.ndarray, pd.Index | None]:
    index = values.index if isinstance(values, (pd.Series, pd.DataFrame)) else None
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise CInAValidationError(
                f"{what} must be one column; received a DataFrame with {values.shape[1]} columns")
        values = values.iloc[:, 0]
    arr = _as_array(values.to_numpy() if isinstance(values, pd.Series) else values, what)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise CInAValidationError(f"{what} must be one-dimensional; received shape {arr.shape}")
    return arr, index


def _validate_treatment(t_raw: np.ndarray, treated_level, name: str) -> np.ndarray:
    s = pd.Series(t_raw)
    n_missing = int(s.isna().sum())
    if n_missing:
        raise CInAValidationError(
            f"treatment column {name!r} has {n_missing} missing (NaN) value(s); "
            "drop or impute those rows first")
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        n_inf = int(np.isinf(s.to_numpy(dtype=float)).sum())
        if n_inf:
            raise CInAValidationError(
                f"treatment column {name!r} has {n_inf} infinite value(s)")
    levels = pd.unique(s)
    if len(levels) > 2:
        shown = ", ".join(repr(v) for v in list(levels)[:5])
        raise CInAValidationError(
            f"treatment {name!r} must be binary (two levels); received {len(levels)} distinct "
            f"values: {shown}{', ...' if len(levels) > 5 else ''}")
    if treated_level is not None:
        if treated_level not in set(levels.tolist()):
            raise CInAValidationError(
                f"treated_level={treated_level!r} is not a value of treatment {name!r}; "
                f"its values are {', '.join(sorted(map(repr, levels.tolist())))}")
        t = (s == treated_level).to_numpy().astype(np.int64)
    else:
        if pd.api.types.is_bool_dtype(s.dtype):
            t = s.to_numpy().astype(np.int64)
        else:
            numeric = pd.to_numeric(s, errors="coerce")
            if numeric.isna().any() or not set(numeric.unique().tolist()) <= {0, 1}:
                raise CInAValidationError(
                    f"treatment {name!r} must be coded 0/1 or True/False; received the levels "
                    f"{', '.join(sorted(map(repr, levels.tolist())))}. Pass treated_level= (CLI: "
                    "--treated-level) to say which level is the treatment")
            t = numeric.to_numpy().astype(np.int64)
    if len(levels) < 2:
        raise CInAValidationError(
            f"treatment {name!r} takes a single value ({levels[0]!r}) in all {len(t)} rows; "
            "both a treated and a control arm are needed")
    for arm, label in ((1, "treated"), (0, "control")):
        n_arm = int((t == arm).sum())
        if n_arm < 2:
            raise CInAValidationError(
                f"the {label} arm has {n_arm} unit(s); at least 2 are needed in each arm")
    return t


def validate_inputs(
    X,
    t,
    y=None,
    *,
    feature_names: list[str] | None = None,
    treated_level=None,
    treatment_name: str = "t",
    outcome_name: str = "y",
    require_outcome: bool = True,
) -> ValidatedData:
    """Check and convert user inputs.

    Parameters
    ----------
    X : array-like (n, d), a scipy sparse matrix (densified: the kernel is dense in the
        covariates anyway) or DataFrame. Strings and categoricals are one-hot encoded. Columns
        that identify rows (a text id, a saved index ``Unnamed: N``, a running integer index)
        are dropped with an :class:`~cina.errors.IdentifierColumnWarning`.
    t : array-like (n,) of two levels; 0/1 or booleans unless ``treated_level`` is given.
    y : array-like (n,) numeric outcome, or None when ``require_outcome`` is False.
    """
    if X is None:
        raise CInAValidationError("X (covariates) is required; received None")
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        index = X.index
        if X.shape[1] == 0:
            raise CInAValidationError("X has no covariate columns")
        complex_cols = [str(c) for c, dt in zip(X.columns, X.dtypes, strict=True)
                        if pd.api.types.is_complex_dtype(dt)]
        if complex_cols:
            raise CInAValidationError(
                f"covariate column(s) {complex_cols[:10]} hold complex numbers; cina needs real "
                "numbers (the imaginary part would be lost)")
        frame = encode_covariates(X)
        identifiers = list(frame.attrs.get("dropped_identifier", []))
        names = [str(c) for c in frame.columns]
        Xa = frame.to_numpy(dtype=float, copy=True)
    else:
        index = None
        identifiers = []
        Xa = _as_array(X, "X")
        if Xa.ndim == 1:
            raise CInAValidationError(
                f"X must be two-dimensional (units x covariates); received a 1-D array of "
                f"length {Xa.shape[0]}. Use X.reshape(-1, 1) for a single covariate")
        if Xa.ndim != 2:
            raise CInAValidationError(f"X must be two-dimensional; received shape {Xa.shape}")
        if Xa.shape[1] == 0:
            raise CInAValidationError("X has no covariate columns")
        try:
            Xa = Xa.astype(float)
        except (TypeError, ValueError) as exc:
            raise CInAValidationError(
                "X must be numeric when given as an array; pass a DataFrame to have string "
                f"columns one-hot encoded ({exc})") from None
        names = list(feature_names) if feature_names is not None else [
            f"x{j}" for j in range(Xa.shape[1])]
        if len(names) != Xa.shape[1]:
            raise CInAValidationError(
                f"feature_names has {len(names)} names but X has {Xa.shape[1]} columns")
        if len(set(names)) != len(names):
            raise CInAValidationError("feature_names contains duplicated names")
        if Xa.shape[0] >= IDENTIFIER_MIN_ROWS:
            ids = [j for j in range(Xa.shape[1])
                   if np.all(np.isfinite(Xa[:, j])) and _is_identifier(names[j],
                                                                       pd.Series(Xa[:, j]))]
            if ids:
                identifiers = [names[j] for j in ids]
                if len(ids) == Xa.shape[1]:
                    raise CInAValidationError(
                        f"every covariate column identifies rows (unique consecutive integers: "
                        f"a running index): {identifiers[:10]}; nothing to balance on")
                warnings.warn(
                    f"dropping {len(ids)} column(s) that identify rows rather than describe "
                    f"units (a running integer index): {identifiers[:10]}",
                    IdentifierColumnWarning, stacklevel=3)
                keep = np.setdiff1d(np.arange(Xa.shape[1]), ids)
                Xa = Xa[:, keep]
                names = [names[j] for j in keep]
    n = Xa.shape[0]
    if n == 0:
        raise CInAValidationError("X has no rows")

    t_raw, t_index = _as_1d(t, "treatment")
    if len(t_raw) != n:
        raise CInAValidationError(
            f"mismatched lengths: X has {n} rows but treatment has {len(t_raw)}")
    if y is None:
        if require_outcome:
            raise CInAValidationError("an outcome y is required; received None")
        ya = None
    else:
        y_raw, _ = _as_1d(y, "outcome")
        if len(y_raw) != n:
            raise CInAValidationError(
                f"mismatched lengths: X has {n} rows but outcome has {len(y_raw)}")
        try:
            ya = np.array(y_raw, dtype=float, copy=True)
        except (TypeError, ValueError):
            raise CInAValidationError(
                f"outcome {outcome_name!r} must be numeric; received values such as "
                f"{y_raw[:3].tolist()}") from None
        n_nan, n_inf = int(np.isnan(ya).sum()), int(np.isinf(ya).sum())
        if n_nan or n_inf:
            raise CInAValidationError(
                f"outcome {outcome_name!r} has {n_nan} NaN and {n_inf} infinite value(s) "
                f"out of {n} rows; drop or impute those rows first")
    if index is None and t_index is not None:
        index = t_index

    bad = ~np.isfinite(Xa)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        detail = ", ".join(
            f"{names[j]!r}: {int(np.isnan(Xa[:, j]).sum())} NaN, "
            f"{int(np.isinf(Xa[:, j]).sum())} inf" for j in cols[:5])
        raise CInAValidationError(
            f"covariates contain missing or infinite values in {len(cols)} column(s) "
            f"({detail}{', ...' if len(cols) > 5 else ''}); drop or impute those rows first")

    tv = _validate_treatment(t_raw, treated_level, treatment_name)

    const = np.ptp(Xa, axis=0) == 0
    dropped = [names[j] for j in np.flatnonzero(const)]
    if dropped:
        if const.all():
            raise CInAValidationError(
                f"every covariate is constant ({dropped[:5]}); nothing to balance on")
        warnings.warn(
            f"dropping {len(dropped)} constant covariate(s): {dropped[:10]}",
            DataWarning, stacklevel=3)
        Xa = Xa[:, ~const]
        names = [nm for nm, c in zip(names, const, strict=True) if not c]
    return ValidatedData(X=Xa, t=tv, y=ya, feature_names=names, index=index,
                         dropped_constant=dropped, dropped_identifier=identifiers)
