"""Hostile and careless use of ``cina bench`` (issue 13 items 2 and 7, and fault injection).

A line of the cache torn by a kill is dropped with a warning and never glued to the next
record; an unwritable ``--out`` is an exit-2 error before anything runs; a report that fails
to write leaves the previous report whole; a run killed at random moments and re-run ends with
the same results as an uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from cina.bench import suites as suites_mod
from cina.bench.runner import CACHE_NAME, load_cache
from cina.bench.suites import DatasetSpec, SuiteSpec
from cina.cli import main
from cina.datasets import simulation_a

from ._faults import kill_after

# the columns that must not depend on an interruption (timings and stamps do)
STABLE = ["suite", "dataset", "method", "estimand", "true_effect", "estimate", "abs_error",
          "se", "ci_low", "ci_high", "covered", "n", "n_treated", "d", "status"]


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(suites_mod.SUITES, "tiny", SuiteSpec(
        "tiny", "test", "three small Simulation A datasets",
        lambda: [DatasetSpec(f"simA-s{s}", partial(simulation_a, s, n=120)) for s in (1, 2, 3)]))


def _bench(capsys, out, *extra, methods="naive,ipw"):
    rc = main(["bench", "--suite", "tiny", "--methods", methods, "--out", str(out),
               "--no-progress", "--no-plots", *extra])
    o, e = capsys.readouterr()
    return rc, o, e


def _lines(out: Path) -> list[str]:
    return (out / CACHE_NAME).read_text().splitlines()


# --- item 7: a torn cache line ------------------------------------------------------------------
def test_a_torn_last_line_is_dropped_and_never_glued(tmp_path, tiny, capsys):
    out = tmp_path / "bench"
    assert _bench(capsys, out)[0] == 0
    lines = _lines(out)
    assert len(lines) == 6
    torn = lines[-1][: len(lines[-1]) // 2]  # a kill in the middle of the last record's write
    (out / CACHE_NAME).write_text("\n".join(lines[:-1]) + "\n" + torn)
    rc, o, e = _bench(capsys, out)
    assert rc == 0
    assert "warning: " in e and "cut by an interrupted run" in e
    assert "1 computed, 5 from cache" in o  # the torn item was recomputed, nothing else
    after = _lines(out)
    assert len(after) == 6
    assert all(isinstance(json.loads(s), dict) for s in after)  # no glued line
    assert len(load_cache(out)) == 6


def test_a_damaged_middle_line_is_reported(tmp_path, tiny, capsys):
    out = tmp_path / "bench"
    assert _bench(capsys, out)[0] == 0
    lines = _lines(out)
    lines[2] = lines[2][:20]
    (out / CACHE_NAME).write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"skipped 1 line\(s\).*line 3"):
        records = load_cache(out)
    assert len(records) == 5
    rc, o, e = _bench(capsys, out)
    assert rc == 0 and "1 computed, 5 from cache" in o and "line 3" in e


def test_a_last_record_without_its_newline_is_kept(tmp_path, tiny, capsys):
    out = tmp_path / "bench"
    assert _bench(capsys, out)[0] == 0
    text = (out / CACHE_NAME).read_text()
    (out / CACHE_NAME).write_text(text.rstrip("\n"))  # complete record, newline lost
    rc, o, e = _bench(capsys, out, methods="naive,ipw,exact")
    assert rc == 0 and "warning" not in e
    assert "3 computed, 6 from cache" in o
    assert all(json.loads(s) for s in _lines(out)) and len(_lines(out)) == 9


# --- item 2: --out checked first, the report all or nothing -------------------------------------
def test_unwritable_out_is_refused_before_anything_runs(tmp_path, tiny, capsys, monkeypatch):
    import cina.registry as registry

    def refuse(*a, **k):
        raise AssertionError("an estimator was built although --out cannot be written")

    monkeypatch.setattr(registry, "make_estimator", refuse)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for out, fragment in ((blocker, "is a file"), (blocker / "sub", "cannot create files")):
        rc, o, e = _bench(capsys, out)
        assert rc == 2 and o == "" and fragment in e and "Traceback" not in e
    rc, o, e = main(["bench", "--report-only", "--out", str(blocker)]), *capsys.readouterr()
    assert rc == 2 and "is a file" in e


def test_a_failed_report_write_keeps_the_previous_report(tmp_path, tiny, capsys, monkeypatch):
    out = tmp_path / "bench"
    assert _bench(capsys, out)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "commands.log"}
    import cina.bench.report as report

    original_commit = report.OutputSet.commit

    def commit(self, writers, note=""):
        def fail(tmp):
            with open(tmp, "w") as fh:
                fh.write("# partial")
            raise OSError(errno.ENOSPC, "No space left on device")

        return original_commit(self, {**writers, "summary.md": fail}, note)

    monkeypatch.setattr(report.OutputSet, "commit", commit)
    rc, o, e = _bench(capsys, out, methods="naive,ipw,exact")
    assert rc == 2 and "cannot write summary.md" in e and "No space left" in e
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "commands.log"}
    assert set(after) == set(before)  # no temporary file left
    for name in before:
        if name != CACHE_NAME:
            assert after[name] == before[name], name  # the old report, whole
    assert len(load_cache(out)) == 9  # the finished items are kept for the next run


def test_stale_temporaries_of_a_killed_report_are_cleaned(tmp_path, tiny, capsys):
    out = tmp_path / "bench"
    out.mkdir()
    (out / ".summary.md.abcd1234.tmp").write_text("partial")
    (out / ".mine.tmp").write_text("not ours")
    assert _bench(capsys, out)[0] == 0
    names = {p.name for p in out.iterdir()}
    assert ".summary.md.abcd1234.tmp" not in names and ".mine.tmp" in names


# --- fault injection ----------------------------------------------------------------------------
_CHILD = """
import sys
from functools import partial
from cina.bench import suites
from cina.bench.suites import DatasetSpec, SuiteSpec
from cina.cli import main
from cina.datasets import simulation_a
suites.register_suite(SuiteSpec("tiny", "test", "Simulation A, N = 300", lambda: [
    DatasetSpec(f"simA-s{s}", partial(simulation_a, s, n=300)) for s in range(1, 9)]))
sys.exit(main(["bench", "--suite", "tiny", "--methods", "naive,ipw,exact", "--out", sys.argv[1],
               "--no-progress", "--no-plots"]))
"""


def _child(out: Path) -> list[str]:
    return [sys.executable, "-c", _CHILD, str(out)]


def _env() -> dict:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def _stable(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv")[STABLE]


def _n_lines(out: Path) -> int:
    try:
        return (out / CACHE_NAME).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_random_kills_then_rerun_equal_the_uninterrupted_run(tmp_path):
    """SIGKILL ``cina bench`` at random moments (after a seeded random number of finished
    items, plus a seeded random delay), re-run the same command until it finishes: every item
    once, and the results bit-identical to an uninterrupted run."""
    ref = tmp_path / "ref"
    done = subprocess.run(_child(ref), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rng = random.Random(20261130)
    out = tmp_path / "run"
    targets = sorted(rng.sample(range(1, 24), 3))
    kills = 0
    for target in targets:
        proc = subprocess.Popen(_child(out), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        kills += kill_after(proc, lambda: _n_lines(out), target, rng.uniform(0.0, 0.3))
    final = subprocess.run(_child(out), env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert final.returncode == 0, final.stderr
    assert kills >= 1
    a, b = _stable(ref), _stable(out)
    assert len(a) == len(b) == 24
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    lines = _lines(out)
    assert all(isinstance(json.loads(s), dict) for s in lines)
    keys = [(r["suite"], r["dataset"], r["method"]) for r in map(json.loads, lines)]
    assert len(keys) == len(set(keys)) == 24  # no item computed twice, none lost
