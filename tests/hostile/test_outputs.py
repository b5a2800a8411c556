"""Hostile and careless use of ``cina estimate``'s outputs (issue 13 items 1, 2 and 8).

Outputs never overwrite an input and never each other; every output path is checked before the
fit; a write that fails midway (file-size limit, disk full) leaves no truncated file and no
earlier output behind; ``--plot`` writes the format its extension names; a semicolon-separated
file gets a hint about its separator. Each case through the CLI and, where the library offers
it, through the Python API (:mod:`cina.outputs`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cina.cli import main
from cina.outputs import OutputError, OutputSet

N = 150
OUTPUT_OPTIONS = ("--weights-out", "--balance-out", "--plot")


def _data(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-0.8 * X[:, 0]))).astype(int)
    y = X[:, 0] + 0.5 * X[:, 1] + 2.0 * t + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "treat": t, "y": y})


@pytest.fixture
def data_csv(tmp_path) -> Path:
    path = tmp_path / "data.csv"
    _data().to_csv(path, index=False)
    return path


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if any estimator is fitted (the refusal must come before the fit)."""
    from cina.base import EffectEstimator

    def refuse(self, data):
        raise AssertionError("the estimator was fitted although an output path was invalid")

    monkeypatch.setattr(EffectEstimator, "fit_validated", refuse)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _estimate(capsys, path, *extra):
    rc = main(["estimate", str(path), "--treatment", "treat", "--outcome", "y",
               *[str(e) for e in extra]])
    out, err = capsys.readouterr()
    return rc, out, err


def _refused(rc, out, err, *fragments):
    assert rc == 2, (rc, out, err)
    assert out == "" and "Traceback" not in err and err.startswith("error: ")
    for f in fragments:
        assert f in err, (f, err)


def _only(folder: Path, *names: str) -> None:
    """The folder holds exactly these files (no temporary or partial output left)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


# --- item 1: outputs never overwrite an input, never each other --------------------------------
@pytest.mark.parametrize("option", OUTPUT_OPTIONS)
@pytest.mark.parametrize("form", ["same", "relative", "dotted", "symlink", "hardlink"])
def test_output_onto_the_input_is_refused_before_the_fit(data_csv, capsys, monkeypatch, no_fit,
                                                         option, form):
    pytest.importorskip("matplotlib")
    folder = data_csv.parent
    monkeypatch.chdir(folder)
    target = {"same": str(data_csv), "relative": "data.csv", "dotted": "./sub/../data.csv",
              "symlink": "link.csv", "hardlink": "hard.csv"}[form]
    if form == "dotted":
        (folder / "sub").mkdir()
    if form == "symlink":
        os.symlink("data.csv", folder / "link.csv")
    if form == "hardlink":
        os.link(data_csv, folder / "hard.csv")
    before = _sha(data_csv)
    _refused(*_estimate(capsys, data_csv, option, target), option, "is the input file",
             "refusing to overwrite")
    assert _sha(data_csv) == before


@pytest.mark.parametrize("first, second", [("--weights-out", "--balance-out"),
                                           ("--weights-out", "--plot"),
                                           ("--balance-out", "--plot")])
def test_two_outputs_with_one_path_are_refused(data_csv, capsys, no_fit, first, second):
    pytest.importorskip("matplotlib")
    target = data_csv.parent / "out.csv"
    other = data_csv.parent / "." / "out.csv"
    _refused(*_estimate(capsys, data_csv, first, target, second, other), "are the same file",
             first, second)
    _only(data_csv.parent, "data.csv")


def test_output_set_api_refuses_inputs_and_clashes(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    os.symlink(src, tmp_path / "alias.csv")
    outputs = OutputSet(inputs=[src])
    with pytest.raises(OutputError, match="is the input file"):
        outputs.declare("weights", tmp_path / "alias.csv")
    outputs.declare("weights", tmp_path / "w.csv")
    with pytest.raises(OutputError, match="are the same file"):
        outputs.declare("balance", str(tmp_path / "w.csv"))


# --- item 2: paths checked before the fit, all or nothing after it ------------------------------
def test_missing_directory_is_found_before_the_fit(data_csv, capsys, no_fit):
    _refused(*_estimate(capsys, data_csv, "--weights-out", data_csv.parent / "nope" / "w.csv"),
             "does not exist")


def test_output_under_a_file_is_found_before_the_fit(data_csv, capsys, no_fit):
    _refused(*_estimate(capsys, data_csv, "--balance-out", data_csv / "b.csv"),
             "--balance-out", "does not exist")


def test_unwritable_directory_is_found_before_the_fit(data_csv, capsys, no_fit, monkeypatch):
    """A directory that refuses new files (simulated: the probe file cannot be created)."""
    import cina.outputs as outputs_mod

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(outputs_mod.tempfile, "mkstemp", refuse)
    _refused(*_estimate(capsys, data_csv, "--weights-out", data_csv.parent / "w.csv"),
             "cannot create a file", "Permission denied")


def test_read_only_directory_is_found_before_the_fit(world_tmp, capsys, no_fit, unprivileged):
    # as root (CI) the command runs in a child as "nobody", for whom the folder is read-only
    data_csv = world_tmp / "data.csv"
    _data().to_csv(data_csv, index=False)
    data_csv.chmod(0o644)
    ro = world_tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    _refused(*unprivileged(lambda: _estimate(capsys, data_csv, "--weights-out", ro / "w.csv")),
             "cannot create a file")
    assert list(ro.iterdir()) == []


def test_a_failed_write_leaves_no_output_and_keeps_the_estimate(data_csv, capsys, monkeypatch):
    """The third output fails (disk full): the first two are not left behind, an existing file
    at a target is untouched, and the error message still carries the estimate."""
    pytest.importorskip("matplotlib")
    import cina.outputs as outputs_mod

    folder = data_csv.parent
    (folder / "w.csv").write_text("old weights\n")

    def disk_full(fitted, tmp, target):
        with open(tmp, "wb") as fh:
            fh.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    kinds = [k if k.option != "--plot" else replace(k, write=disk_full)
             for k in outputs_mod.ESTIMATE_OUTPUTS]
    monkeypatch.setattr(outputs_mod, "ESTIMATE_OUTPUTS", kinds)
    rc, out, err = _estimate(capsys, data_csv, "--weights-out", folder / "w.csv",
                             "--balance-out", folder / "b.csv", "--plot", folder / "p.png")
    _refused(rc, out, err, "cannot write --plot", "No space left on device",
             "no output file was written", "the estimate was ATE = ")
    assert (folder / "w.csv").read_text() == "old weights\n"
    _only(folder, "data.csv", "w.csv")


def test_file_size_limit_midway_leaves_nothing(tmp_path):
    """A real short write: the process may write at most 24 KB per file (RLIMIT_FSIZE), enough
    for the weights and balance CSVs, not for the figure. Nothing may be left behind."""
    pytest.importorskip("matplotlib")
    resource = pytest.importorskip("resource")
    assert resource  # the child imports it again
    path = tmp_path / "data.csv"
    _data(n=300).to_csv(path, index=False)
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))\n"
        "from cina.cli import main\n"
        f"sys.exit(main(['estimate', {str(path)!r}, '-t', 'treat', '-y', 'y',"
        " '--weights-out', 'w.csv', '--balance-out', 'b.csv', '--plot', 'p.png']))\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "cannot write --plot" in proc.stderr and "Traceback" not in proc.stderr
    assert "the estimate was ATE = " in proc.stderr
    assert proc.stdout == ""
    _only(tmp_path, "data.csv")


def test_successful_outputs_are_complete_and_readable(data_csv, capsys):
    pytest.importorskip("matplotlib")
    folder = data_csv.parent
    rc, out, err = _estimate(capsys, data_csv, "--json", "--weights-out", folder / "w.csv.gz",
                             "--balance-out", folder / "b.csv", "--plot", folder / "p.svg")
    assert rc == 0, err
    report = json.loads(out)
    w = pd.read_csv(folder / "w.csv.gz")  # gzip, as the name says
    assert len(w) == report["n"]
    assert list(pd.read_csv(folder / "b.csv", index_col=0).index) == ["x1", "x2", "x3"]
    assert b"<svg" in (folder / "p.svg").read_bytes()[:2000]
    _only(folder, "data.csv", "w.csv.gz", "b.csv", "p.svg")
    mode = (folder / "b.csv").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not the 0600 of a temporary file


# --- item 8: the figure's format, the separator hint ---------------------------------------------
@pytest.mark.parametrize("name, magic", [("diag.pdf", b"%PDF"), ("diag.png", b"\x89PNG"),
                                         ("diag.PNG", b"\x89PNG"), ("diag", b"\x89PNG")])
def test_plot_writes_the_format_of_its_extension(data_csv, capsys, name, magic):
    pytest.importorskip("matplotlib")
    target = data_csv.parent / name
    rc, _, err = _estimate(capsys, data_csv, "--plot", target)
    assert rc == 0, err
    assert target.read_bytes().startswith(magic)


def test_plot_with_an_unknown_extension_is_refused_before_the_fit(data_csv, capsys, no_fit):
    pytest.importorskip("matplotlib")
    _refused(*_estimate(capsys, data_csv, "--plot", data_csv.parent / "diag.docx"),
             "format 'docx'", ".pdf", ".png", ".svg")
    _only(data_csv.parent, "data.csv")


@pytest.mark.parametrize("sep, name, decimal", [(";", "semicolon", "."), (";", "semicolon", ","),
                                                ("\t", "tab", ".")])
def test_other_separators_get_a_hint(tmp_path, capsys, no_fit, sep, name, decimal):
    path = tmp_path / "data.csv"
    _data().to_csv(path, index=False, sep=sep, decimal=decimal)
    _refused(*_estimate(capsys, path), f"looks {name}-separated", f"sep={sep!r}")


def test_separator_hint_in_the_api(tmp_path):
    from cina.errors import DataFileError
    from cina.io import read_table

    path = tmp_path / "data.csv.gz"
    _data().to_csv(path, index=False, sep=";")
    with pytest.raises(DataFileError, match="looks semicolon-separated"):
        read_table(path)
    comma = tmp_path / "ok.csv"
    df = _data()
    df["note"] = "a;b"  # a semicolon inside values of a comma-separated file is fine
    df.to_csv(comma, index=False)
    assert read_table(comma).shape == df.shape
