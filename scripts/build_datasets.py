#!/usr/bin/env python
"""Regenerate the compact benchmark files in ``src/cina/datasets/data/`` (maintainer tool).

The package itself never reads the originals: this script turns the offline copies under
``/work/shared/data`` (or ``--source``) into small ``.npz`` files, checks every fact the
loaders in :mod:`cina.datasets.real` rely on, and refreshes the table of output sha256 in
``src/cina/datasets/data/SOURCES.md``.

Usage::

    python scripts/build_datasets.py [--source /work/shared/data] [--out src/cina/datasets/data]

The output is byte-for-byte reproducible: the ``.npz`` archives are written with a fixed
timestamp, so an unchanged input gives unchanged sha256.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("/work/shared/data")
DEFAULT_OUT = ROOT / "src" / "cina" / "datasets" / "data"

LALONDE_COVARIATES = ["age", "education", "black", "hispanic", "married", "nodegree",
                      "re74", "re75"]
ACIC_CATEGORICAL = ["x_2", "x_21", "x_24"]
# float32 storage is accepted only if the SATE moves by less than this (relative)
FLOAT32_SATE_RTOL = 1e-6

BEGIN = "<!-- BEGIN compact-files (written by scripts/build_datasets.py) -->"
END = "<!-- END compact-files -->"
BEGIN_IN = "<!-- BEGIN original-files (written by scripts/build_datasets.py) -->"
END_IN = "<!-- END original-files -->"

INPUTS: list[Path] = []  # every original file read, in order


def used(path: Path) -> Path:
    """Record an original file as an input of the build."""
    INPUTS.append(path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed with a fixed timestamp (reproducible bytes) and no pickles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key in sorted(arrays):
            arr = np.ascontiguousarray(arrays[key])
            if arr.dtype.hasobject:
                raise TypeError(f"{key}: object arrays are not allowed in package data")
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def float32_ok(mu0: np.ndarray, mu1: np.ndarray) -> float:
    """Largest relative change of mean(mu1 - mu0) over rows of (k, n) arrays in float32."""
    exact = (mu1 - mu0).mean(axis=-1)
    f32 = (mu1.astype(np.float32).astype(np.float64)
           - mu0.astype(np.float32).astype(np.float64)).mean(axis=-1)
    return float(np.max(np.abs(f32 - exact) / np.abs(exact)))


# ---------------------------------------------------------------------------------------------
def build_ihdp(src: Path, out: Path) -> list[str]:
    notes = []
    names = [f"x{j}" for j in range(1, 26)]
    arrs = []
    for r in range(1, 51):
        a = np.loadtxt(used(src / "ihdp" / f"ihdp_npci_{r}.csv"), delimiter=",", dtype=np.float64)
        assert a.shape == (747, 30), (r, a.shape)
        assert np.isfinite(a).all(), r
        arrs.append(a)
    a0 = arrs[0]
    assert all(np.array_equal(a[:, 0], a0[:, 0]) for a in arrs), "t differs across realizations"
    assert all(np.array_equal(a[:, 5:], a0[:, 5:]) for a in arrs), "x differs across realizations"
    t = a0[:, 0]
    assert set(np.unique(t)) == {0.0, 1.0} and int(t.sum()) == 139
    stack = np.stack(arrs)  # (50, 747, 30)
    y, mu0, mu1 = stack[:, :, 1], stack[:, :, 3], stack[:, :, 4]
    notes.append(f"ihdp: x and t identical in all 50 realizations; float32 would move the "
                 f"SATE by {float32_ok(mu0, mu1):.1e} (kept float64 anyway, it is small)")
    save_npz(out / "ihdp.npz", columns=np.array(names), X=a0[:, 5:].copy(),
             t=t.astype(np.int8), y=y, mu0=mu0, mu1=mu1)
    return notes


def build_lalonde(src: Path, out: Path) -> list[str]:
    notes = []
    arrays: dict[str, np.ndarray] = {"columns": np.array(LALONDE_COVARIATES)}
    expected = {"nsw_dw": (445, 185), "cps_controls": (15992, 0), "psid_controls": (2490, 0)}
    short = {"nsw_dw": "nsw_dw", "cps_controls": "cps", "psid_controls": "psid"}
    for fname, (n, n_treated) in expected.items():
        df = pd.read_stata(used(src / "lalonde" / f"{fname}.dta"))
        assert len(df) == n, (fname, len(df))
        assert int(df["treat"].sum()) == n_treated, fname
        assert not df[LALONDE_COVARIATES + ["re78", "treat"]].isna().any().any(), fname
        for col in LALONDE_COVARIATES + ["re78"]:
            assert df[col].dtype == np.float32, (fname, col, df[col].dtype)  # float32 is exact
        key = short[fname]
        arrays[f"{key}_X"] = df[LALONDE_COVARIATES].to_numpy(np.float32)
        arrays[f"{key}_t"] = df["treat"].to_numpy().astype(np.int8)
        arrays[f"{key}_y"] = df["re78"].to_numpy(np.float32)
        dups = int(df.drop(columns="data_id").duplicated().sum())
        notes.append(f"lalonde {fname}: {n} rows, {n_treated} treated, {dups} duplicated rows")
    y, t = arrays["nsw_dw_y"].astype(np.float64), arrays["nsw_dw_t"]
    ate = float(y[t == 1].mean() - y[t == 0].mean())
    assert round(ate, 2) == 1794.34, ate
    notes.append(f"lalonde experimental difference in means = {ate!r}")
    save_npz(out / "lalonde.npz", **arrays)
    return notes


def build_twins(src: Path, out: Path) -> list[str]:
    notes = []
    path = used(src / "twins" / "twins.csv")
    with open(path, newline="") as fh:
        header = next(csv.reader(fh))
    df = pd.read_csv(path)  # pandas renames repeated names: gestatcat1, gestatcat1.1, ...
    assert df.shape == (11984, 82), df.shape
    assert header[-6:] == ["T", "y0", "y1", "yf", "y_cf", "Propensity"], header[-6:]
    assert np.array_equal(df.iloc[:, 0].to_numpy(), np.arange(len(df))), "index column"
    cov = df.iloc[:, 1:76]
    names = [str(c) for c in cov.columns]
    assert len(set(names)) == 75
    repeated = sorted({h for h in header[1:76] if header[1:76].count(h) > 1})
    notes.append(f"twins: repeated header names {repeated} made unique pandas-style (.1, .2)")
    n_nan = int(cov.isna().sum().sum())
    assert n_nan == 0, f"twins covariates contain {n_nan} NaN: add a handling rule"
    values = cov.to_numpy()
    assert np.array_equal(values, np.round(values)) and values.min() >= 0 and values.max() < 128
    t = df["T"].to_numpy()
    y0, y1, yf = (df[c].to_numpy() for c in ("y0", "y1", "yf"))
    assert set(np.unique(t)) == {0, 1}
    assert np.array_equal(yf, np.where(t == 1, y1, y0)), "yf != T*y1 + (1-T)*y0"
    ate = float(np.mean(y1 - y0))
    assert round(ate, 4) == -0.0252, ate
    notes.append(f"twins: ATE mean(y1-y0) = {ate!r}; no NaN in twins.csv covariates")
    save_npz(out / "twins.npz", columns=np.array(names), X=values.astype(np.int8),
             t=t.astype(np.int8), y0=y0.astype(np.int8), y1=y1.astype(np.int8))
    return notes


def build_acic2016(src: Path, out: Path) -> list[str]:
    notes = []
    base = src / "acic2016"
    x = pd.read_csv(used(base / "x.csv"))
    assert x.shape == (4802, 58) and not x.isna().any().any()
    parts = []
    for col in x.columns:
        if col in ACIC_CATEGORICAL:
            levels = sorted(x[col].astype(str).unique())
            for level in levels:  # every level, like cina._validation.encode_covariates
                parts.append((f"{col}={level}", (x[col].astype(str) == level).to_numpy(float)))
        else:
            parts.append((col, x[col].to_numpy(np.float64)))
    names = [p[0] for p in parts]
    X = np.column_stack([p[1] for p in parts])
    assert np.array_equal(X.astype(np.float32).astype(np.float64), X), "x not float32-exact"
    params = pd.read_csv(used(base / "parameters_2016.csv"))
    assert len(params) == 77
    z, y, mu0, mu1 = [], [], [], []
    for s in range(1, 78):
        d = pd.read_csv(used(base / "generated_dgp2016_sim001"
                              / f"acic2016_param{s:02d}_sim001.csv.gz"))
        assert list(d.columns) == ["z", "y0", "y1", "mu0", "mu1", "e"] and len(d) == 4802, s
        assert not d.isna().any().any(), s
        zs = d["z"].to_numpy()
        assert set(np.unique(zs)) == {0, 1}, s
        z.append(zs)
        y.append(np.where(zs == 1, d["y1"].to_numpy(), d["y0"].to_numpy()))
        mu0.append(d["mu0"].to_numpy())
        mu1.append(d["mu1"].to_numpy())
    z, y, mu0, mu1 = (np.stack(a) for a in (z, y, mu0, mu1))
    sate = (mu1 - mu0).mean(axis=1)
    rel = float32_ok(mu0, mu1)
    dtype = np.float32 if rel < FLOAT32_SATE_RTOL else np.float64
    notes.append(f"acic2016: float32 moves the SATE by at most {rel:.1e} (relative) -> "
                 f"outcomes stored as {np.dtype(dtype).name}")
    notes.append(f"acic2016: treated per setting {int(z.sum(1).min())}..{int(z.sum(1).max())}; "
                 f"SATE {sate.min():.4f}..{sate.max():.4f}")
    save_npz(out / "acic2016.npz", columns=np.array(names), X=X.astype(np.float32),
             z=z.astype(np.int8), y=y.astype(dtype), mu0=mu0.astype(dtype),
             mu1=mu1.astype(dtype), sate_source=sate,
             param_names=np.array(list(params.columns)),
             param_values=params.astype(str).to_numpy().astype(str))
    return notes


def upstream_hashes(src: Path) -> dict[str, str]:
    """sha256 listed in the SOURCES.md of each source folder, keyed by folder/file name."""
    listed = {}
    for sources in src.glob("*/SOURCES.md"):
        folder = sources.parent.name
        for line in sources.read_text().splitlines():
            m = re.match(r"\|\s*([^|\s]+)\s*\|\s*\d+\s*\|\s*([0-9a-f]{64})\s*\|", line)
            if m:
                listed[f"{folder}/{m.group(1)}"] = m.group(2)
    return listed


def replace_section(text: str, begin: str, end: str, body: list[str]) -> str:
    block = "\n".join([begin, *body, end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        return head + block + tail
    return text.rstrip("\n") + "\n\n" + block + "\n"


def update_sources(src: Path, out: Path) -> None:
    """Check the originals against their published sha256 and refresh both tables."""
    listed = upstream_hashes(src)
    inputs = ["| original file | bytes | sha256 | as listed upstream |", "|---|---|---|---|"]
    for path in INPUTS:
        key = f"{path.parent.relative_to(src).parts[0]}/{path.name}"
        digest = sha256(path)
        if key in listed and listed[key] != digest:
            raise SystemExit(f"{path}: sha256 {digest} differs from {listed[key]} in SOURCES.md")
        shown = path.relative_to(src).as_posix()
        inputs.append(f"| {shown} | {path.stat().st_size} | {digest} | "
                      f"{'yes' if key in listed else 'not listed'} |")
    outputs = ["| file | bytes | sha256 |", "|---|---|---|"]
    for path in sorted(out.glob("*.npz")):
        outputs.append(f"| {path.name} | {path.stat().st_size} | {sha256(path)} |")
    sources = out / "SOURCES.md"
    text = sources.read_text() if sources.exists() else "# Benchmark data shipped with cina\n"
    text = replace_section(text, BEGIN_IN, END_IN, inputs)
    text = replace_section(text, BEGIN, END, outputs)
    sources.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    notes = []
    for build in (build_ihdp, build_lalonde, build_twins, build_acic2016):
        notes += build(args.source, args.out)
    update_sources(args.source, args.out)
    for note in notes:
        print(note)
    total = sum(p.stat().st_size for p in args.out.glob("*.npz"))
    print(f"wrote {args.out} ({total / 1e6:.2f} MB of .npz)")


if __name__ == "__main__":
    main()
