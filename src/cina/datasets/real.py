"""Real benchmark datasets shipped with the package: IHDP, LaLonde, Twins and ACIC 2016.

The data live in ``DATA_DIR`` as compact ``.npz`` files built from the public originals by
``scripts/build_datasets.py``; ``DATA_DIR/SOURCES.md`` gives origin, licence, checksums and
every transformation. Nothing is downloaded at run time.

Every loader returns a fresh :class:`~cina.datasets.CausalDataset` (the parsed arrays are
cached, the returned objects never share memory with the cache) and accepts ``n`` and
``seed`` to return ``dataset.subsample(n, seed)`` instead (stratified by arm; the true
effect is recomputed on the subsample where ``mu0``/``mu1`` are known).

=================  =======  =========  ==========================================  ========
loader             units    estimand   true effect                                 mu0/mu1
=================  =======  =========  ==========================================  ========
load_ihdp(r)       747      ate        SATE mean(mu1 - mu0), realization r 1..50   yes
load_lalonde(c)    445,     att        1794.34: NSW-DW experimental difference     no
                   16177,              in means of re78 (an estimate, not a
                   2675                known truth)
load_twins()       11984    ate        mean(y1 - y0) = -0.0252 (both observed)     y0, y1
load_acic2016(s)   4802     ate        SATE mean(mu1 - mu0), setting s 1..77       yes
=================  =======  =========  ==========================================  ========
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from functools import lru_cache, partial
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CInAValidationError, DataFileError
from ._base import CausalDataset

__all__ = ["load_ihdp", "load_lalonde", "load_twins", "load_acic2016", "list_real_suites",
           "DATA_DIR"]

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Folder of the compact data files (package data; see ``SOURCES.md`` there)."""

N_IHDP = 50
N_ACIC2016 = 77
LALONDE_CONTROLS = ("experimental", "cps", "psid")
LALONDE_ATE = 1794.34  # published NSW-DW experimental estimate, checked against the data
ACIC2016_SETTING16_CAVEAT = (
    "setting 16 replicate 1 generated here differs from the aciccomp2016 package's own "
    "inst/testData.RData (187 of 4802 z values differ; settings 1-15 and 17-20 match "
    "exactly): still valid data with exact ground truth, but not comparable with results "
    "computed on the package's test data")

_REQUIRED = {
    "ihdp.npz": ("columns", "X", "t", "y", "mu0", "mu1"),
    "lalonde.npz": ("columns", "nsw_dw_X", "nsw_dw_t", "nsw_dw_y", "cps_X", "cps_y",
                    "psid_X", "psid_y"),
    "twins.npz": ("columns", "X", "t", "y0", "y1"),
    "acic2016.npz": ("columns", "X", "z", "y", "mu0", "mu1", "sate_source", "param_names",
                     "param_values"),
}


# --- reading the files -----------------------------------------------------------------------
@lru_cache(maxsize=16)
def _read_npz(path: str) -> dict[str, np.ndarray]:
    """All arrays of one archive, read once and marked read-only (never hand these out)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise DataFileError(
            f"benchmark data file {path} is missing; reinstall cina, or rebuild the data "
            "with scripts/build_datasets.py") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataFileError(
            f"benchmark data file {path} is corrupted or unreadable ({type(exc).__name__}: "
            f"{exc}); reinstall cina, or rebuild the data with scripts/build_datasets.py"
        ) from None
    for arr in arrays.values():
        arr.flags.writeable = False
    return arrays


def _archive(name: str) -> dict[str, np.ndarray]:
    path = Path(DATA_DIR) / name  # looked up at call time so DATA_DIR can be redirected
    if not path.is_file():
        raise DataFileError(
            f"benchmark data file {path} is missing; reinstall cina, or rebuild the data "
            "with scripts/build_datasets.py")
    arrays = _read_npz(str(path))
    missing = [key for key in _REQUIRED[name] if key not in arrays]
    if missing:
        raise DataFileError(f"benchmark data file {path} lacks the arrays {missing}; "
                            "rebuild it with scripts/build_datasets.py")
    return arrays


def _check_shapes(name: str, ok: bool) -> None:
    if not ok:
        raise DataFileError(f"benchmark data file {Path(DATA_DIR) / name} has arrays of "
                            "inconsistent shapes; rebuild it with scripts/build_datasets.py")


def _frame(X: np.ndarray, columns: np.ndarray) -> pd.DataFrame:
    """A float64 DataFrame that owns a fresh copy of ``X``."""
    return pd.DataFrame(np.array(X, dtype=np.float64, copy=True),
                        columns=[str(c) for c in columns])


def _f64(a: np.ndarray) -> np.ndarray:
    return np.array(a, dtype=np.float64, copy=True)


def _t(a: np.ndarray) -> np.ndarray:
    return np.array(a, dtype=np.int64, copy=True)


# --- argument checks -------------------------------------------------------------------------
def _index(value, name: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise CInAValidationError(
            f"{name} must be an integer from 1 to {high}; received {value!r} "
            f"({type(value).__name__})")
    if not 1 <= int(value) <= high:
        raise CInAValidationError(f"{name} must be an integer from 1 to {high}; received {value}")
    return int(value)


def _check_subsample(n, seed) -> None:
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, Integral):
            raise CInAValidationError(
                f"n must be None or an integer >= 4; received {n!r} ({type(n).__name__})")
        if n < 4:
            raise CInAValidationError(
                f"n must be None or an integer >= 4 (two units per arm); received {n}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise CInAValidationError(f"seed must be a non-negative integer; received {seed!r}")


def _finish(ds: CausalDataset, n: int | None, seed: int) -> CausalDataset:
    return ds if n is None else ds.subsample(int(n), int(seed))


# --- loaders ---------------------------------------------------------------------------------
def load_ihdp(realization: int, n: int | None = None, seed: int = 0) -> CausalDataset:
    """IHDP (Hill 2011, NPCI response surface B), one of the 50 standard realizations.

    747 children (139 treated), 25 covariates ``x1``..``x25`` (x1-x6 continuous and
    standardized, x7-x25 binary; x14 is coded 1/2). Covariates and treatment are the same in
    every realization; outcomes, ``mu0`` and ``mu1`` differ. ``true_effect`` is the sample
    ATE ``mean(mu1 - mu0)``.

    Parameters
    ----------
    realization : 1..50 (``ihdp_npci_{realization}.csv`` of the CEVAE/Dragonnet copies,
        the same as realization r of the CFRNet ``ihdp_npci_1-100`` set).
    n, seed : return ``subsample(n, seed)`` when ``n`` is given.
    """
    r = _index(realization, "realization", N_IHDP)
    _check_subsample(n, seed)
    a = _archive("ihdp.npz")
    _check_shapes("ihdp.npz", a["y"].shape == a["mu0"].shape == a["mu1"].shape
                  == (N_IHDP, a["X"].shape[0]) and a["t"].shape == (a["X"].shape[0],))
    mu0, mu1 = _f64(a["mu0"][r - 1]), _f64(a["mu1"][r - 1])
    t = _t(a["t"])
    ds = CausalDataset(
        X=_frame(a["X"], a["columns"]), t=t, y=_f64(a["y"][r - 1]),
        true_effect=float(np.mean(mu1 - mu0)), estimand="ate", name=f"ihdp-{r}",
        mu0=mu0, mu1=mu1,
        meta={"dataset": "ihdp", "realization": r, "n_treated": int(t.sum()),
              "n_control": int((t == 0).sum()),
              "source": "IHDP NPCI surface B, ihdp_npci_{r}.csv (CEVAE / Dragonnet copies)",
              "effect": "sample ATE mean(mu1 - mu0)"},
    )
    return _finish(ds, n, seed)


def _lalonde_experiment(a: dict[str, np.ndarray]) -> tuple[float, float]:
    """Difference in means of re78 in NSW-DW and its standard error."""
    y, t = a["nsw_dw_y"].astype(np.float64), a["nsw_dw_t"]
    y1, y0 = y[t == 1], y[t == 0]
    ate = float(y1.mean() - y0.mean())
    se = float(np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0)))
    if round(ate, 2) != LALONDE_ATE:
        raise DataFileError(
            f"benchmark data file {Path(DATA_DIR) / 'lalonde.npz'} gives an NSW-DW "
            f"experimental difference in means of {ate:.4f}, not {LALONDE_ATE}; it is corrupted")
    return ate, se


def load_lalonde(controls: str = "psid", n: int | None = None, seed: int = 0) -> CausalDataset:
    """LaLonde's NSW job-training data, Dehejia-Wahba subsample (Dehejia & Wahba 1999).

    Covariates age, education, black, hispanic, married, nodegree, re74, re75; outcome re78
    (earnings in 1978, US dollars); estimand ATT.

    Parameters
    ----------
    controls : ``"experimental"``: the NSW-DW randomized sample (185 treated, 260 controls);
        ``"cps"``: the 185 NSW-DW treated + 15992 CPS-1 controls;
        ``"psid"``: the 185 NSW-DW treated + 2490 PSID-1 controls.
    n, seed : return ``subsample(n, seed)`` when ``n`` is given.

    ``true_effect`` is the experimental benchmark: the NSW-DW difference in means of re78,
    1794.34 (standard error about 670; ``meta["experimental_se"]``). It is an estimate from
    the randomized experiment, not a known truth, and it is not recomputed on subsamples
    (no mu0/mu1). Treated rows come first; 15 / 1716 / 154 rows of NSW-DW / CPS-1 / PSID-1
    are exact duplicates of another row of the same file (kept, as in the original data).
    """
    if not isinstance(controls, str) or controls not in LALONDE_CONTROLS:
        raise CInAValidationError(
            f"controls must be one of {list(LALONDE_CONTROLS)}; received {controls!r}")
    _check_subsample(n, seed)
    a = _archive("lalonde.npz")
    d = a["nsw_dw_X"].shape[1]
    _check_shapes("lalonde.npz", all(
        a[f"{k}_X"].ndim == 2 and a[f"{k}_X"].shape[1] == d == len(a["columns"])
        and a[f"{k}_y"].shape == (a[f"{k}_X"].shape[0],) for k in ("nsw_dw", "cps", "psid"))
        and a["nsw_dw_t"].shape == a["nsw_dw_y"].shape)
    ate, se = _lalonde_experiment(a)
    if controls == "experimental":
        X, t, y = a["nsw_dw_X"], a["nsw_dw_t"], a["nsw_dw_y"]
        source = "NSW-DW (nsw_dw.dta): randomized treated and controls"
    else:
        treated = a["nsw_dw_t"] == 1
        X = np.concatenate([a["nsw_dw_X"][treated], a[f"{controls}_X"]])
        y = np.concatenate([a["nsw_dw_y"][treated], a[f"{controls}_y"]])
        t = np.concatenate([np.ones(int(treated.sum()), np.int8),
                            np.zeros(len(a[f"{controls}_y"]), np.int8)])
        source = (f"NSW-DW treated (nsw_dw.dta) + {controls.upper()}-1 controls "
                  f"({controls}_controls.dta)")
    t = _t(t)
    ds = CausalDataset(
        X=_frame(X, a["columns"]), t=t, y=_f64(y), true_effect=ate, estimand="att",
        name=f"lalonde-{controls}",
        meta={"dataset": "lalonde", "controls": controls, "n_treated": int(t.sum()),
              "n_control": int((t == 0).sum()), "outcome": "re78", "source": source,
              "effect": "NSW-DW experimental difference in means of re78 (an estimate)",
              "experimental_ate": ate, "experimental_se": se},
    )
    return _finish(ds, n, seed)


def load_twins(n: int | None = None, seed: int = 0) -> CausalDataset:
    """Twins (Louizos et al. 2017): 11984 US same-sex twin pairs born 1989-1991, both < 2 kg.

    Unit = pair; treatment = being the heavier twin; outcome = one-year mortality (0/1). Both
    potential outcomes are observed (y0: lighter twin, y1: heavier twin), so ``mu0=y0``,
    ``mu1=y1`` and ``true_effect = mean(y1 - y0)`` = -0.0252. ``t`` is the simulated
    confounded assignment of the source file (mean 0.746) and ``y = yf`` = y1 where t = 1,
    y0 elsewhere.

    75 integer-coded covariates named as in the csv header. The header repeats the names
    gestatcat1..gestatcat10 three times (three noisy copies of the one-hot gestation
    category, the proxy construction of CEVAE; they are not one-hot, row sums vary 0..10):
    the repeats are renamed pandas-style ``gestatcat1.1``, ``gestatcat1.2``. The source has
    no missing values, so nothing is imputed.
    """
    _check_subsample(n, seed)
    a = _archive("twins.npz")
    m = a["X"].shape[0]
    _check_shapes("twins.npz", a["X"].shape[1] == len(a["columns"])
                  and a["t"].shape == a["y0"].shape == a["y1"].shape == (m,))
    t, mu0, mu1 = _t(a["t"]), _f64(a["y0"]), _f64(a["y1"])
    ds = CausalDataset(
        X=_frame(a["X"], a["columns"]), t=t, y=np.where(t == 1, mu1, mu0),
        true_effect=float(np.mean(mu1 - mu0)), estimand="ate", name="twins",
        mu0=mu0, mu1=mu1,
        meta={"dataset": "twins", "n_treated": int(t.sum()), "n_control": int((t == 0).sum()),
              "source": "twins.csv (realcause / CEVAE preprocessing of NBER linked births)",
              "effect": "ATE mean(y1 - y0) over pairs; mu0/mu1 are the observed y0/y1",
              "outcome": "one-year mortality", "treatment": "heavier twin (simulated "
              "confounded assignment T)"},
    )
    return _finish(ds, n, seed)


def _param(value) -> float | str:
    """An ACIC 2016 setting parameter: a number where it is one, its label otherwise."""
    try:
        return float(value)
    except ValueError:
        return str(value)


def load_acic2016(setting: int, n: int | None = None, seed: int = 0) -> CausalDataset:
    """ACIC 2016 competition data (Dorie et al. 2019), replicate 1 of one of the 77 settings.

    4802 units; the 58 covariates of ``x.csv`` with the categorical x_2, x_21, x_24 one-hot
    encoded in place (every level, columns ``"x_2=A"`` ...; 82 columns in all). Outcomes from
    the official ``aciccomp2016`` DGP, ``dgp_2016(input_2016, setting, 1)``: observed
    ``y = z*y1 + (1-z)*y0``, ``true_effect`` = SATE ``mean(mu1 - mu0)``. The outcome and mu
    arrays are stored in float32 (the SATE moves by < 1e-8 relative; the float64 value from
    the source is ``meta["sate_source"]``). The CInA paper subsamples ACIC to 1000 units:
    ``load_acic2016(s, n=1000)``.

    Setting 16 differs from the R package's own test data: see ``meta["caveat"]``.
    """
    s = _index(setting, "setting", N_ACIC2016)
    _check_subsample(n, seed)
    a = _archive("acic2016.npz")
    m = a["X"].shape[0]
    _check_shapes("acic2016.npz", a["X"].shape[1] == len(a["columns"])
                  and a["z"].shape == a["y"].shape == a["mu0"].shape == a["mu1"].shape
                  == (N_ACIC2016, m) and a["param_values"].shape
                  == (N_ACIC2016, len(a["param_names"])))
    t, mu0, mu1 = _t(a["z"][s - 1]), _f64(a["mu0"][s - 1]), _f64(a["mu1"][s - 1])
    meta = {"dataset": "acic2016", "setting": s, "replicate": 1,
            "n_treated": int(t.sum()), "n_control": int((t == 0).sum()),
            "parameters": {str(k): _param(v) for k, v in
                           zip(a["param_names"], a["param_values"][s - 1], strict=True)},
            "sate_source": float(a["sate_source"][s - 1]),
            "source": f"aciccomp2016 0.1-0 dgp_2016(input_2016, {s}, 1) on x.csv",
            "effect": "sample ATE mean(mu1 - mu0)"}
    if s == 16:
        meta["caveat"] = ACIC2016_SETTING16_CAVEAT
    ds = CausalDataset(
        X=_frame(a["X"], a["columns"]), t=t, y=_f64(a["y"][s - 1]),
        true_effect=float(np.mean(mu1 - mu0)), estimand="ate", name=f"acic2016-{s}",
        mu0=mu0, mu1=mu1, meta=meta,
    )
    return _finish(ds, n, seed)


# --- suites ----------------------------------------------------------------------------------
def list_real_suites(n: int | None = None, seed: int = 0
                     ) -> dict[str, list[Callable[[], CausalDataset]]]:
    """The real benchmark suites: suite name -> list of zero-argument loaders.

    Each entry is a :func:`functools.partial` (call it to load; ``.func`` and ``.keywords``
    tell what it loads), so listing the suites reads no data::

        for make in list_real_suites()["ihdp"]:
            ds = make()

    Suites: ``"ihdp"`` (realizations 1..50), ``"lalonde-cps"``, ``"lalonde-psid"``,
    ``"lalonde-experimental"`` (one dataset each), ``"twins"`` (one) and ``"acic2016"``
    (settings 1..77). ``n`` and ``seed`` are passed to every loader (e.g. ``n=1000`` for the
    CInA paper's ACIC protocol).
    """
    _check_subsample(n, seed)
    sub = {"n": n, "seed": seed}
    return {
        "ihdp": [partial(load_ihdp, realization=r, **sub) for r in range(1, N_IHDP + 1)],
        "lalonde-cps": [partial(load_lalonde, controls="cps", **sub)],
        "lalonde-psid": [partial(load_lalonde, controls="psid", **sub)],
        "lalonde-experimental": [partial(load_lalonde, controls="experimental", **sub)],
        "twins": [partial(load_twins, **sub)],
        "acic2016": [partial(load_acic2016, setting=s, **sub)
                     for s in range(1, N_ACIC2016 + 1)],
    }
