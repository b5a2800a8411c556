"""Hostile and careless use of the report, the sensitivity analysis and the py-why helpers.

An unfitted estimator, a failed fit, an unwritable path, a constant outcome, a method without
weights or without a Riesz representer, an ATT fit asked for the ATE's vocabulary, bad settings,
outcomes near float64's limit: each gives a clear error of cina's hierarchy (or a correct
result), and no report file, partial or temporary, is left behind.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from threadpoolctl import threadpool_limits

import cina
from cina.baselines import DML, TLearner
from cina.errors import CInAError, CInAValidationError, NotFittedError
from cina.integrations import to_doubleml_style, to_econml_style
from cina.report import write_report


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def simulate(seed: int = 0, n: int = 200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < expit(0.6 * X[:, 0])).astype(int)
    y = X[:, 0] + t + rng.normal(size=n)
    return X, t, y


@pytest.fixture(scope="module")
def fitted():
    return cina.CInA(lam_rel=0.3).fit(*simulate())


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- unfitted and failed fits ------------------------------------------------------------------

def test_unfitted_estimator(tmp_path):
    est = cina.CInA()
    with pytest.raises(NotFittedError, match="not fitted"):
        est.report(tmp_path / "r.html")
    with pytest.raises(NotFittedError, match="not fitted"):
        est.sensitivity()
    with pytest.raises(NotFittedError):
        to_econml_style(est)
    assert _left(tmp_path) == []


def test_fit_that_raised_leaves_nothing_to_report(tmp_path):
    X, t, y = simulate()
    est = cina.CInA()
    with pytest.raises(CInAValidationError):
        est.fit(X, np.ones_like(t), y)  # a single arm: the fit fails
    with pytest.raises(NotFittedError):
        est.report(tmp_path / "r.html")
    assert _left(tmp_path) == []


def test_failed_refit_reports_the_last_successful_fit(tmp_path):
    """scikit-learn's contract: a refit that fails validation leaves the previous fit in place;
    the report then describes that fit, whose data fingerprint it shows."""
    from cina.report.content import data_fingerprint

    X, t, y = simulate()
    est = cina.CInA(lam_rel=0.3).fit(X, t, y)
    with pytest.raises(CInAValidationError):
        est.fit(X, t, np.full_like(y, np.nan))
    out = est.report(tmp_path / "r.html", sensitivity=False)
    assert data_fingerprint(est.data_) in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("field, value, match", [("estimate", float("nan"), "failed"),
                                                 ("estimate", float("inf"), "failed"),
                                                 ("se", float("nan"), "standard error"),
                                                 ("se", None, "standard error")])
def test_fit_with_a_non_finite_result(tmp_path, field, value, match):
    from dataclasses import replace

    est = cina.CInA(lam_rel=0.3).fit(*simulate())
    est.result_ = replace(est.result_, **{field: value})
    with pytest.raises(CInAError, match=match):
        est.report(tmp_path / "r.html")
    with pytest.raises(CInAError, match=match):
        est.sensitivity()
    assert _left(tmp_path) == []


# --- paths ---------------------------------------------------------------------------------------

def _unwritable_paths(tmp_path: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    cases = [(tmp_path / "missing" / "r.html", "does not exist"),
             (tmp_path, "is a directory"),
             (a_file / "r.html", "not a directory|does not exist")]
    if Path("/proc/self").is_dir():  # a read-only file system: root cannot write there either
        cases.append((Path("/proc/r.html"), "cannot write the report"))
    return cases


def test_unwritable_paths_fail_before_any_work(fitted, tmp_path, monkeypatch):
    from cina import report as report_mod

    def never(*a, **k):  # the fit's report must not even be built
        raise AssertionError("the report was built before the path was checked")

    monkeypatch.setattr(report_mod, "build_report", never)
    for path, match in _unwritable_paths(tmp_path):
        with pytest.raises(CInAValidationError, match=match):
            write_report(fitted, path)
    assert _left(tmp_path) == ["a_file.txt"]
    for bad in (None, 3, ""):
        with pytest.raises(CInAValidationError, match="file path"):
            write_report(fitted, bad)


def _report_error(fitted, path) -> str:
    """The message of the CInAValidationError that write_report raises for ``path``."""
    try:
        write_report(fitted, path, sensitivity=False)
    except CInAValidationError as exc:
        return str(exc)
    return "no error"


def test_read_only_directory_and_file(fitted, world_tmp, unprivileged):
    # as root (CI) the calls run in a child as "nobody", for whom these paths are read-only
    ro = world_tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    assert "not writable" in unprivileged(lambda: _report_error(fitted, ro / "r.html"))
    assert list(ro.iterdir()) == []
    existing = world_tmp / "old.html"
    existing.write_text("old")
    existing.chmod(0o444)
    assert "read-only" in unprivileged(lambda: _report_error(fitted, existing))
    assert existing.read_text() == "old"


def test_disk_full_midway_leaves_the_old_report_whole(fitted, tmp_path, monkeypatch):
    target = tmp_path / "r.html"
    target.write_text("previous report")
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[:1000])  # a short write first, then the disk is full

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(CInAError, match="No space left on device"):
        write_report(fitted, target, sensitivity=False)
    monkeypatch.undo()
    assert target.read_text() == "previous report"
    assert _left(tmp_path) == ["r.html"]


def test_failure_while_building_leaves_nothing(fitted, tmp_path, monkeypatch):
    from cina.report import html as html_mod

    def broken(*a, **k):
        raise RuntimeError("a bug while rendering")

    monkeypatch.setattr(html_mod, "render", broken)
    with pytest.raises(RuntimeError, match="a bug while rendering"):
        write_report(fitted, tmp_path / "r.html", sensitivity=False)
    assert _left(tmp_path) == []


def test_interrupt_while_writing_leaves_nothing(fitted, tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(fitted, tmp_path / "r.html", sensitivity=False)
    monkeypatch.undo()
    assert _left(tmp_path) == []


# --- data and methods that cannot give a report or bounds ------------------------------------

def test_constant_outcome(tmp_path):
    X, t, _ = simulate()
    est = cina.CInA(lam_rel=0.3).fit(X, t, np.full(len(t), 7.0))
    for call in (lambda: est.report(tmp_path / "r.html"), est.sensitivity):
        with pytest.raises(CInAValidationError, match="outcome is constant"):
            call()
    assert _left(tmp_path) == []


def test_methods_without_weights(tmp_path):
    X, t, y = simulate()
    dml = DML(n_folds=3).fit(X, t, y)
    with pytest.raises(CInAValidationError, match=r"needs a weighting method.*summary_frame"):
        dml.report(tmp_path / "r.html")
    assert dml.sensitivity(outcome_model="linear", benchmark_covariates=False).rv > 0
    tl = TLearner().fit(X, t, y)
    with pytest.raises(CInAValidationError, match="summary_frame"):
        tl.report(tmp_path / "r.html")
    with pytest.raises(CInAValidationError, match="neither balancing weights nor a propensity"):
        tl.sensitivity()
    assert _left(tmp_path) == []


def test_att_fit_and_the_ate_vocabulary(tmp_path):
    X, t, y = simulate()
    est = cina.CInA(estimand="att", lam_rel=0.3).fit(X, t, y)
    with pytest.raises(CInAValidationError, match="estimand='att': use att_interval"):
        est.ate_interval()
    with pytest.raises(AttributeError):
        est.ate_  # noqa: B018
    assert to_econml_style(est).iloc[0]["mean_point"] == est.att_
    assert to_doubleml_style(est).iloc[0]["coef"] == est.att_
    s = est.sensitivity(outcome_model="linear", benchmark_covariates=False)
    assert s.estimand == "att" and "ATT" in s.summary()
    page = est.report(tmp_path / "r.html", sensitivity=s).read_text(encoding="utf-8")
    assert "treated units" in page and "(ATT)" in page


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"alpha": "0.05"}, "alpha"),
    ({"command": ["cina", "estimate"]}, "command must be a string"),
    ({"sensitivity": "yes"}, "sensitivity must be True, False"),
    ({"sensitivity_options": {"bogus": 1}}, "unknown sensitivity option"),
    ({"sensitivity_options": {"alpha": 0.1}}, "unknown sensitivity option"),
    ({"sensitivity_options": {"benchmark_covariates": ["nope"]}}, "not one of the fitted"),
    ({"sensitivity_options": "linear"}, "sensitivity_options must be a dict"),
])
def test_bad_report_settings(fitted, tmp_path, kwargs, match):
    with pytest.raises(CInAValidationError, match=match):
        write_report(fitted, tmp_path / "r.html", **kwargs)
    assert _left(tmp_path) == []


def test_outcomes_near_the_float64_limit(tmp_path):
    """Outcomes of 1e200: squares overflow float64, so the bound works on y / 2^k; the
    robustness value is scale-free and equals the one on the unscaled data."""
    X, t, y = simulate()
    small = cina.CInA(lam_rel=0.3).fit(X, t, y)
    huge = cina.CInA(lam_rel=0.3).fit(X, t, y * 1e200)
    s_small = small.sensitivity(outcome_model="linear", benchmark_covariates=["x0"])
    s_huge = huge.sensitivity(outcome_model="linear", benchmark_covariates=["x0"])
    assert np.isfinite(s_huge.scale) and s_huge.y_scale > 1
    assert s_huge.rv == pytest.approx(s_small.rv, rel=1e-6)
    assert s_huge.benchmarks.loc["x0", "r2_y"] == pytest.approx(
        s_small.benchmarks.loc["x0", "r2_y"], rel=1e-6)
    page = huge.report(tmp_path / "r.html", sensitivity=s_huge).read_text(encoding="utf-8")
    assert not re.search(r"\b(-?inf|nan)\b", page.lower())


def test_categorical_covariates_and_odd_names(tmp_path):
    rng = np.random.default_rng(3)
    n = 200
    X = pd.DataFrame({"a&b <x>": rng.normal(size=n), "grp": rng.choice(["p", "q"], n),
                      "é unicode": rng.normal(size=n)})
    t = (rng.random(n) < expit(X["a&b <x>"])).astype(int)
    y = X["a&b <x>"] + t + rng.normal(size=n)
    est = cina.CInA(lam_rel=0.3).fit(X, t, y)
    page = est.report(tmp_path / "r.html",
                      sensitivity_options={"outcome_model": "linear"}).read_text("utf-8")
    assert "a&amp;b &lt;x&gt;" in page and "<x>" not in page and "é unicode" in page
    assert "1x grp" in page  # a categorical column is benchmarked as one covariate


def test_a_benchmark_refit_that_fails_is_reported_not_hidden():
    """A benchmark refit that fails is recorded with its reason in the table and the summary,
    never as a silent NaN; the rest of the analysis stands."""
    X, t, y = simulate()
    est = cina.CInA(lam_rel=0.3).fit(X, t, y)

    class Failing(type(est)):
        def _fit_validated(self, data):
            if data.d < 3:
                raise CInAValidationError("refit refused for the test")
            return super()._fit_validated(data)

    failing = Failing(lam_rel=0.3).fit(X, t, y)
    s = failing.sensitivity(outcome_model="linear", benchmark_covariates=["x0"])
    row = s.benchmarks.loc["x0"]
    assert np.isnan(row["r2_y"]) and "refit refused for the test" in row["note"]
    assert "not available: refit without it failed" in s.summary()


def test_missing_dowhy_is_a_named_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dowhy", None)
    monkeypatch.setitem(sys.modules, "dowhy.causal_estimator", None)
    monkeypatch.delitem(sys.modules, "cina.integrations.dowhy", raising=False)
    from cina.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match=r"pip install 'cina\[dowhy\]'"):
        import cina.integrations.dowhy  # noqa: F401
    monkeypatch.delitem(sys.modules, "cina.integrations.dowhy", raising=False)


# --- the command line ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    X, t, y = simulate(9, n=160)
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(treat=t, out=y)
    path = tmp_path_factory.mktemp("cli") / "data.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("extra, match", [
    (["--method", "dml", "--report", "{dir}/r.html"], "needs a weighting method"),
    (["--method", "naive", "--sensitivity"], "adjusts for no covariate"),
    (["--benchmarks", "zzz", "--report", "{dir}/r.html"], "not one of the fitted"),
    (["--benchmarks", ",", "--sensitivity"], "--benchmarks is empty"),
    (["--report", "{dir}/missing/r.html"], "does not exist"),
    (["--report", "{dir}"], "is a directory"),
])
def test_cli_failures_leave_no_file(csv_file, tmp_path, capsys, extra, match):
    from cina.cli import main

    args = ["estimate", str(csv_file), "--treatment", "treat", "--outcome", "out"] + [
        e.format(dir=tmp_path) for e in extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(match, err), err
    assert _left(tmp_path) == []


def test_cli_report_for_naive_says_why_there_is_no_sensitivity(csv_file, tmp_path, capsys):
    from cina.cli import main

    target = tmp_path / "r.html"
    assert main(["estimate", str(csv_file), "--treatment", "treat", "--outcome", "out",
                 "--method", "naive", "--report", str(target)]) == 0
    assert "adjusts for no covariate" in target.read_text(encoding="utf-8")
    assert _left(tmp_path) == ["r.html"]
