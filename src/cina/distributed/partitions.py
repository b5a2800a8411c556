"""Partition-wise input validation, encoding and standardisation (run on the Dask workers).

The in-memory path validates a whole table at once (:func:`cina._validation.validate_inputs`);
here every check is a map over the partitions followed by a small reduction, so that no process
ever holds the table:

1. **plan** (:func:`partition_survey`, one pass): the treatment's values, the distinct levels of
   each text or categorical covariate (the categories must be known before any partition is
   encoded, so that every partition gets the same indicator columns), whether a text column
   holds numbers, and the facts of the row-identifier check;
2. **encode** (:func:`encode_partition`): the covariates as float64 (one 0/1 column per level,
   named ``column=level``, booleans 0/1), the treatment as 0/1 and the outcome as float64, with
   per-column counts of NaN and infinite values and the moments (count, mean, M2, min, max) that
   the standardisation and the constant-column check need;
3. **standardise** (:func:`standardize_partition`): z-scores with the global mean and standard
   deviation (the same numbers as the in-memory :func:`cina.balancing.standardize` to rounding:
   moments combined by Chan's pairwise formula).

Errors say which partition and which column, what was expected and what was received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._validation import IDENTIFIER_MIN_ROWS, _is_categorical
from ..errors import CInAValidationError
from ..rules import HUGE_VALUE

__all__ = ["Block", "ColumnPlan", "partition_survey", "plan_columns", "encode_partition",
           "combine_moments", "standardize_partition", "MAX_LEVELS"]

#: text/categorical covariates with more distinct levels than this are refused: one-hot
#: encoding them would add that many covariates (and a column unique per row is an identifier)
MAX_LEVELS = 200
_UNNAMED = re.compile(r"^Unnamed: \d+$")


@dataclass
class Block:
    """One partition's clean arrays, held by a worker: covariates X (or their z-scores Z after
    :func:`standardize_partition`), 0/1 treatment t (int8), outcome y (float64 or None) and the
    input partition's index (the weights are written back on it)."""

    X: np.ndarray
    t: np.ndarray
    y: np.ndarray | None
    index: pd.Index

    @property
    def n(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True)
class ColumnPlan:
    """How every partition is encoded: decided once from the survey of all partitions."""

    treatment: str
    outcome: str | None
    covariates: tuple  # the input columns kept, in order
    levels: dict = field(default_factory=dict)  # categorical column -> its levels (sorted text
    # levels, or a categorical dtype's categories)
    numeric_text: tuple = ()  # text columns that hold numbers: kept numeric, as in memory
    treated_level: object = None
    treatment_coding: str = "01"  # "01" (0/1 or booleans) or "level" (== treated_level)
    feature_names: tuple = ()  # names of the encoded columns
    dropped_identifier: tuple = ()

    def encoded_names(self) -> list[str]:
        names: list[str] = []
        for col in self.covariates:
            if col in self.levels:
                names += [f"{col}={lv}" for lv in self.levels[col]]
            else:
                names.append(str(col))
        return names


# --- pass 1: survey ------------------------------------------------------------------------
def partition_survey(df: pd.DataFrame, treatment: str, covariates: list) -> dict:
    """Facts of one partition for the plan: the treatment's distinct values (up to 3), the
    distinct levels of text/categorical covariates (up to ``MAX_LEVELS + 1``), whether each text
    column parses as numbers, and per numeric column (min, max, all integers, distinct count) for
    the running-index check."""
    tv = pd.unique(df[treatment].dropna())
    out: dict = {"n": int(len(df)), "treatment_values": list(tv[:3]),
                 "treatment_missing": int(df[treatment].isna().sum()), "levels": {},
                 "numeric_text": {}, "numeric": {}}
    for col in covariates:
        s = df[col]
        if _is_categorical(s) and not isinstance(s.dtype, pd.CategoricalDtype):
            nonmissing = s.dropna()
            as_num = pd.to_numeric(nonmissing, errors="coerce")
            out["numeric_text"][col] = bool(as_num.notna().all())
            uniq = pd.unique(nonmissing.astype(str))
            out["levels"][col] = (sorted(uniq[:MAX_LEVELS + 1].tolist()), int(len(uniq)))
        elif isinstance(s.dtype, pd.CategoricalDtype):
            out["levels"][col] = ([str(c) for c in s.cat.categories], -1)
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            finite = v[np.isfinite(v)]
            if len(finite) == len(v) and len(v):
                out["numeric"][col] = (float(finite.min()), float(finite.max()),
                                       bool(np.all(finite == np.round(finite))),
                                       int(len(np.unique(finite))))
            else:
                out["numeric"][col] = None
    return out


def plan_columns(surveys: list[dict], dtypes: pd.Series, *, treatment: str, outcome,
                 covariates: list, treated_level=None) -> tuple[ColumnPlan, list[str]]:
    """The encoding of every partition, from all partitions' surveys; and the warnings to show
    (identifier columns dropped). Raises :class:`CInAValidationError` for a treatment that is not
    binary, a text covariate with too many levels, or nothing left to balance on."""
    n = sum(s["n"] for s in surveys)
    missing = sum(s["treatment_missing"] for s in surveys)
    if missing:
        raise CInAValidationError(
            f"treatment column {treatment!r} has {missing} missing (NaN) value(s); drop or "
            "impute those rows first")
    values: list = []
    for s in surveys:
        for v in s["treatment_values"]:
            if not any(_same_value(v, w) for w in values):
                values.append(v)
    if len(values) > 2:
        shown = ", ".join(repr(v) for v in values[:5])
        raise CInAValidationError(
            f"treatment {treatment!r} must be binary (two levels); received more than two "
            f"distinct values: {shown}")
    coding = "01"
    if isinstance(treated_level, str):  # a command line's text: the level it names
        from ..io import resolve_treated_level

        treated_level = resolve_treated_level(pd.Series(values, dtype=object), treated_level)
    if treated_level is not None:
        if not any(_same_value(treated_level, v) for v in values):
            raise CInAValidationError(
                f"treated_level={treated_level!r} is not a value of treatment {treatment!r}; its "
                f"values are {', '.join(sorted(map(repr, values)))}")
        coding = "level"
    else:
        ok = all(isinstance(v, (bool, np.bool_)) or (_is_number(v) and float(v) in (0.0, 1.0))
                 for v in values)
        if not ok:
            raise CInAValidationError(
                f"treatment {treatment!r} must be coded 0/1 or True/False; received the levels "
                f"{', '.join(sorted(map(repr, values)))}. Pass treated_level= (CLI: "
                "--treated-level) to say which level is the treatment")
    if len(values) < 2:
        raise CInAValidationError(
            f"treatment {treatment!r} takes a single value ({values[0]!r}) in all {n} rows; "
            "both a treated and a control arm are needed")
    levels: dict = {}
    numeric_text: list = []
    identifiers: list[str] = []
    kept: list = []
    for col in covariates:
        if col in surveys[0]["levels"] or any(col in s["levels"] for s in surveys):
            if all(s["numeric_text"].get(col, False) for s in surveys if col in s["numeric_text"]) \
                    and any(col in s["numeric_text"] for s in surveys):
                numeric_text.append(col)
                kept.append(col)
                continue
            union: set = set()
            total_distinct = 0
            for s in surveys:
                lv, count = s["levels"].get(col, ([], 0))
                union.update(lv)
                total_distinct += max(count, 0)
            if len(union) > MAX_LEVELS:
                if n >= IDENTIFIER_MIN_ROWS and len(surveys) == 1 and total_distinct == n:
                    identifiers.append(str(col))
                    continue
                raise CInAValidationError(
                    f"covariate {col!r} has more than {MAX_LEVELS} distinct text values: one-hot "
                    "encoding would add one covariate per level (an identifier or a free-text "
                    "column?); drop it, or give it as numbers")
            if isinstance(dtypes.get(col), pd.CategoricalDtype):
                levels[col] = [str(c) for c in dtypes[col].categories]
            else:
                levels[col] = sorted(union)
            if n >= IDENTIFIER_MIN_ROWS and len(levels[col]) == n:
                identifiers.append(str(col))
                del levels[col]
                continue
            kept.append(col)
            continue
        facts = [s["numeric"].get(col) for s in surveys]
        if _is_running_index(facts, n) or (_UNNAMED.match(str(col)) and _is_running_index(
                facts, n, consecutive=False)):
            identifiers.append(str(col))
            continue
        kept.append(col)
    warnings_out = []
    if identifiers:
        if not kept:
            raise CInAValidationError(
                f"every covariate column identifies rows (unique per row): {identifiers[:10]}; "
                "nothing to balance on")
        warnings_out.append(
            f"dropping {len(identifiers)} column(s) that identify rows rather than describe units "
            f"(unique per row: an id, a saved index or a running index): {identifiers[:10]}")
    plan = ColumnPlan(treatment=treatment, outcome=outcome, covariates=tuple(kept),
                      levels=levels, numeric_text=tuple(numeric_text),
                      treated_level=treated_level, treatment_coding=coding,
                      dropped_identifier=tuple(identifiers))
    names = plan.encoded_names()
    dup = sorted({nm for nm in names if names.count(nm) > 1})
    if dup:
        raise CInAValidationError(
            f"covariate names collide after one-hot encoding: {dup[:10]}; rename the columns")
    return ColumnPlan(**{**plan.__dict__, "feature_names": tuple(names)}), warnings_out


def _same_value(a, b) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b or str(a) == str(b) and not (
        _is_number(a) or _is_number(b))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_))


def _is_running_index(facts: list, n: int, consecutive: bool = True) -> bool:
    """Integers unique per row spanning n consecutive values (k..k+n-1), from each partition's
    (min, max, all integers, distinct count): the partitions' ranges must not overlap."""
    if n < IDENTIFIER_MIN_ROWS or any(f is None for f in facts):
        return False
    if not all(f[2] for f in facts) or sum(f[3] for f in facts) != n:
        return False
    ranges = sorted((f[0], f[1]) for f in facts)
    if any(ranges[i][1] >= ranges[i + 1][0] for i in range(len(ranges) - 1)):
        return False
    lo, hi = ranges[0][0], ranges[-1][1]
    return (hi - lo == n - 1) if consecutive else True


# --- pass 2: encode ------------------------------------------------------------------------
def encode_partition(df: pd.DataFrame, plan: ColumnPlan, number: int = 0
                     ) -> tuple[Block, dict]:
    """The partition's clean arrays and its facts: NaN/inf counts per encoded column, outcome
    problems, arm counts and the moments (count, mean, M2, min, max) of each encoded column.
    Problems are returned (``facts["errors"]``), not raised, so that the driver can report every
    partition's at once."""
    errors: list[str] = []
    cols = []
    for col in plan.covariates:
        s = df[col]
        if col in plan.levels:
            missing = s.isna().to_numpy()
            text = s.astype(str).to_numpy()
            for level in plan.levels[col]:
                ind = (text == str(level)).astype(float)
                ind[missing] = np.nan
                cols.append(ind)
        elif pd.api.types.is_bool_dtype(s.dtype):
            cols.append(s.to_numpy(dtype=float))
        else:
            cols.append(pd.to_numeric(s, errors="coerce").to_numpy(dtype=float))
    X = np.column_stack(cols) if cols else np.zeros((len(df), 0))
    names = plan.feature_names
    bad = ~np.isfinite(X)
    nan_counts = np.isnan(X).sum(axis=0)
    inf_counts = bad.sum(axis=0) - nan_counts
    raw_t = df[plan.treatment]
    if plan.treatment_coding == "level":
        t = np.array([_same_value(v, plan.treated_level) for v in raw_t.tolist()], dtype=np.int8)
    else:
        t = pd.to_numeric(raw_t, errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isin(t, (0.0, 1.0))):
            errors.append(f"treatment {plan.treatment!r} has values other than 0/1")
        t = np.nan_to_num(t).astype(np.int8)
    y = None
    if plan.outcome is not None:
        raw_y = df[plan.outcome]
        y = pd.to_numeric(raw_y, errors="coerce").to_numpy(dtype=float)
        coerced = int((pd.isna(y) & raw_y.notna().to_numpy()).sum())
        if coerced:
            errors.append(f"outcome {plan.outcome!r} must be numeric; received values such as "
                          f"{raw_y[pd.isna(y) & raw_y.notna().to_numpy()].head(3).tolist()}")
        n_nan, n_inf = int(np.isnan(y).sum()), int(np.isinf(y).sum())
        if n_nan or n_inf:
            errors.append(f"outcome {plan.outcome!r} has {n_nan} NaN and {n_inf} infinite "
                          f"value(s) out of {len(y)} rows")
    if bad.any():
        which = np.flatnonzero(bad.any(axis=0))
        detail = ", ".join(f"{names[j]!r}: {int(nan_counts[j])} NaN, {int(inf_counts[j])} inf"
                           for j in which[:5])
        errors.append(f"covariates contain missing or infinite values in {len(which)} "
                      f"column(s) ({detail}{', ...' if len(which) > 5 else ''})")
    facts = {"number": number, "n": int(len(df)), "n_treated": int(t.sum()), "errors": errors,
             "moments": _moments(np.where(bad, 0.0, X)) if len(X) else None}
    return Block(X=X, t=t, y=y, index=df.index), facts


def _moments(X: np.ndarray) -> tuple:
    """(count, mean, M2, min, max, max |x|) per column."""
    mean = X.mean(axis=0)
    return (X.shape[0], mean, ((X - mean) ** 2).sum(axis=0), X.min(axis=0), X.max(axis=0),
            np.abs(X).max(axis=0))


def combine_moments(parts: list[tuple]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, np.ndarray]:
    """The moments of the union of partitions (Chan et al.'s pairwise update)."""
    parts = [p for p in parts if p is not None and p[0] > 0]
    n, mean, m2, lo, hi, top = parts[0]
    mean, m2 = mean.copy(), m2.copy()
    for nb, mb, m2b, lob, hib, topb in parts[1:]:
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta**2 * (n * nb / total)
        lo, hi, top = np.minimum(lo, lob), np.maximum(hi, hib), np.maximum(top, topb)
        n = total
    return n, mean, m2, lo, hi, top


def huge_column_scale(top: np.ndarray) -> np.ndarray:
    """Per column, the power of two that :func:`cina.rules.rescale_huge_columns` divides a column
    above 1e100 in magnitude by (1 elsewhere)."""
    scale = np.ones_like(top)
    huge = top > HUGE_VALUE
    scale[huge] = 2.0 ** np.ceil(np.log2(top[huge]))
    return scale


# --- pass 3: standardise -------------------------------------------------------------------
def standardize_partition(block: Block, keep: np.ndarray, huge: np.ndarray, mean: np.ndarray,
                          scale: np.ndarray) -> Block:
    """z-scores of the kept (non-constant) columns: (X / huge - mean) / scale, the in-memory
    :func:`cina.balancing.standardize` of the rescaled covariates."""
    X = block.X[:, keep] / huge
    return Block(X=(X - mean) / scale, t=block.t, y=block.y, index=block.index)


def arm_moments(block: Block) -> tuple:
    """(treated moments, control moments) of Z: the SMD's denominators and unweighted means."""
    out = []
    for arm in (1, 0):
        Z = block.X[block.t == arm]
        out.append(_moments(Z) if len(Z) else None)
    return tuple(out)


def _register_sizeof() -> None:
    """Let Dask's memory accounting (spilling) see a Block's arrays."""
    try:
        from dask.sizeof import sizeof
    except ImportError:  # the extra is not installed: nothing to register
        return

    @sizeof.register(Block)
    def _sizeof_block(block: Block) -> int:
        return int(block.X.nbytes + block.t.nbytes + (0 if block.y is None else block.y.nbytes)
                   + sizeof(block.index))


_register_sizeof()
