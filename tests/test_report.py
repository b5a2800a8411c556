"""Tests of the HTML report (cina.report) without a browser: the page is self-contained, every
figure is accessible, the numbers shown are the fitted ones, the cobalt-style balance table
agrees with cina's balance table, the reproducing call refits the same estimate, and writing is
atomic. (The page rendered in Chromium: tests/test_report_browser.py.)"""

from __future__ import annotations

import html
import re
import stat

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from threadpoolctl import threadpool_limits

import cina
from cina.baselines import IPW, NaiveDifference
from cina.errors import CInAValidationError
from cina.report import build_report, write_report
from cina.report.content import cobalt_balance, data_fingerprint, python_call
from cina.report.figures import love_plot
from cina.report.overlap import overlap_diagnostic
from cina.report.svg import fmt, nice_ticks


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def simulate(seed: int = 0, n: int = 300, shift: float = 0.8):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.normal(40, 10, n), "score": rng.normal(size=n),
                      "female": (rng.random(n) < 0.5).astype(float),
                      "region": rng.choice(["north", "south"], n)})
    logit = shift * X["score"] + 0.03 * (X["age"] - 40) - 0.5 * X["female"]
    t = (rng.random(n) < expit(logit)).astype(int)
    y = 2 * X["score"] + 0.05 * X["age"] + 1.0 * t + rng.normal(size=n)
    return X, t, y


@pytest.fixture(scope="module")
def fitted():
    X, t, y = simulate()
    return cina.CInA(lam_rel=0.3).fit(X, t, y)


@pytest.fixture(scope="module")
def page(fitted):
    return build_report(fitted, treatment_name="treat", outcome_name="earnings",
                        sensitivity_options={"outcome_model": "linear"})


def _data_value(page: str, ident: str) -> float:
    m = re.search(rf'<data id="{ident}" value="([^"]+)"', page)
    assert m, ident
    return float(m.group(1))


# --- self-contained and accessible ------------------------------------------------------------

def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    # nothing is fetched: no external URL in src/href/url(), no @import
    assert not re.search(r'(src|href)\s*=\s*"(?!#|data:)', page)
    assert not re.search(r"url\((?!#)", page) and "@import" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert '<meta name="viewport"' in page and "@media print" in page
    assert "@media (max-width: 640px)" in page


def test_every_figure_is_accessible_and_has_a_data_table(page):
    svgs = re.findall(r"<svg [^>]*>", page)
    assert len(svgs) == 4  # love plot, weights, overlap, sensitivity contour
    for tag in svgs:
        assert 'role="img"' in tag and "aria-labelledby=" in tag and "viewBox=" in tag
        ident = re.search(r'id="([^"]+)"', tag).group(1)
        assert f'<title id="{ident}-title">' in page and f'<desc id="{ident}-desc">' in page
    assert page.count("<figure>") == 4
    assert page.count("Data table of this figure") == 4


def test_numbers_shown_are_the_fitted_ones(page, fitted):
    assert _data_value(page, "estimate") == fitted.effect_
    lo, hi = fitted.effect_interval(0.05)
    assert _data_value(page, "ci-low") == lo and _data_value(page, "ci-high") == hi
    sens = fitted.sensitivity(outcome_model="linear")
    assert _data_value(page, "rv") == sens.rv and _data_value(page, "rv-alpha") == sens.rv_alpha
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert f"{fitted.ess_['control']:,.1f}" in text
    assert "Across all 300 units" in text and "earnings" in text
    for section in ("summary", "data", "balance", "weights", "overlap", "sensitivity", "method"):
        assert f'<section id="{section}"' in page
    assert data_fingerprint(fitted.data_) in page
    assert "region=north, region=south" in text  # what validation encoded, and why


def test_user_text_is_escaped():
    X, t, y = simulate(1)
    X = X.rename(columns={"score": "<b>score</b>"})
    est = cina.CInA(lam_rel=0.3).fit(X, t, y)
    out = build_report(est, sensitivity=False, treatment_name="<script>alert(1)</script>")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<b>score</b>" not in out and "&lt;b&gt;score&lt;/b&gt;" in out


# --- the content ---------------------------------------------------------------------------------

@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_cobalt_table_agrees_with_cinas_balance_table(estimand):
    X, t, y = simulate(2)
    est = cina.CInA(estimand=estimand, lam_rel=0.3).fit(X, t, y)
    d = est.data_
    ours = cobalt_balance(d.X, d.t, est.result_.weights, d.feature_names, estimand)
    core = est.balance_table()
    cont = ours["kind"] == "continuous"
    assert list(ours.index[~cont]) == ["female", "region=north", "region=south"]
    # continuous: the absolute value of the signed SMD is cina's |SMD|
    np.testing.assert_allclose(ours.loc[cont, "diff_before"].abs(), core.loc[cont, "smd_before"])
    np.testing.assert_allclose(ours.loc[cont, "diff_after"].abs(), core.loc[cont, "smd_after"])
    np.testing.assert_allclose(ours.loc[cont, "var_ratio_after"],
                               core.loc[cont, "var_ratio_after"])
    # binary: raw differences in proportion, treated minus control
    w = est.result_.weights
    f = d.X[:, d.feature_names.index("female")]
    raw = f[d.t == 1] @ w[d.t == 1] - f[d.t == 0] @ w[d.t == 0]
    assert ours.loc["female", "diff_after"] == pytest.approx(raw)
    assert np.isnan(ours.loc["female", "var_ratio_after"])
    assert (ours["balanced"] == (ours["diff_after"].abs() <= 0.1)).all()


def test_python_call_refits_the_same_estimate(fitted):
    call = python_call(fitted)
    X, t, y = simulate()
    scope = {"X": X, "t": t, "y": y}
    exec(call, scope)  # noqa: S102 - the report's own reproducing call
    assert scope["est"].effect_ == fitted.effect_
    assert scope["est"].get_params() == fitted.get_params()


def test_fingerprint_changes_with_the_data(fitted):
    from dataclasses import replace

    d = fitted.data_
    assert data_fingerprint(d) == data_fingerprint(replace(d, y=d.y.copy()))
    y2 = d.y.copy()
    y2[0] += 1e-9
    assert data_fingerprint(replace(d, y=y2)) != data_fingerprint(d)


def test_att_report_and_the_weights_section():
    X, t, y = simulate(3)
    est = cina.CInA(estimand="att", lam_rel=0.3).fit(X, t, y)
    out = build_report(est, sensitivity=False)
    text = html.unescape(re.sub(r"<[^>]+>", " ", out))
    assert f"Among the {est.data_.n_treated} treated units" in text
    assert "the ATT keeps the treated as they are" in text
    assert "not requested" in text
    top = re.search(r'<table id="top-weights">.*?</table>', out, re.S).group(0)
    assert "control" in top and ">treated<" not in top  # only the reweighted arm


def test_overlap_warning():
    rng = np.random.default_rng(4)
    n = 400
    x = rng.normal(size=(n, 2))
    t_bad = (rng.random(n) < expit(4 * x[:, 0])).astype(int)
    bad = overlap_diagnostic(x, t_bad, "ate")
    assert bad.warning and "Limited overlap" in bad.warning and bad.auc > 0.9
    t_good = (rng.random(n) < expit(0.3 * x[:, 0])).astype(int)
    good = overlap_diagnostic(x, t_good, "ate")
    assert good.warning is None and good.extreme_share < 0.05
    assert len(good.propensity) == n and np.all((good.propensity > 0) & (good.propensity < 1))


def test_report_for_other_weighting_methods():
    X, t, y = simulate(5)
    ipw = IPW().fit(X, t, y)
    assert "Sensitivity" in build_report(ipw, sensitivity_options={"outcome_model": "linear",
                                                                   "benchmark_covariates": False})
    naive = NaiveDifference().fit(X, t, y)
    text = build_report(naive)
    assert "not available for this fit" in text and "adjusts for no covariate" in text


def test_precomputed_sensitivity_is_used_and_checked(fitted):
    sens = fitted.sensitivity(outcome_model="linear", benchmark_covariates=["age"])
    out = build_report(fitted, sensitivity=sens)
    assert "1x age" in out and "1x score" not in out
    other = cina.CInA(lam_rel=0.5).fit(*simulate())
    with pytest.raises(CInAValidationError, match="belongs to another fit"):
        build_report(other, sensitivity=sens)


# --- writing ---------------------------------------------------------------------------------

def test_write_report_is_atomic_and_keeps_permissions(fitted, tmp_path):
    target = tmp_path / "r.html"
    out = write_report(fitted, target, sensitivity=False)
    assert out == target and target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # no temporary file left
    target.chmod(0o640)
    fitted.report(target, sensitivity=False)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


# --- the SVG helpers ---------------------------------------------------------------------------

def test_number_format_and_ticks():
    assert fmt(1340.4514) == "1,340.5" and fmt(2490) == "2,490" and fmt(0.0001234) == "0.0001234"
    assert fmt(float("nan")) == "n/a" and fmt(None) == "n/a" and fmt(0.05632) == "0.05632"
    assert fmt(1.5e-7) == "1.500e-07"
    assert nice_ticks(0, 1, 5) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(-620.9, 3301.8, 5)
    assert ticks[0] >= -620.9 and ticks[-1] <= 3301.8 and len(ticks) >= 4


def test_love_plot_has_one_row_per_covariate():
    table = pd.DataFrame({"diff_before": [0.5, -0.2, 0.05], "diff_after": [0.01, 0.02, -0.2],
                          "kind": ["continuous", "binary", "continuous"]},
                         index=pd.Index(["a", "b", "c"], name="covariate"))
    svg = love_plot(table)
    assert svg.count("<circle") == 2 * 3 + 2  # two per covariate and two in the legend
    assert "b (binary)" in svg and "after weighting 1." in svg


# --- the command line: cina estimate --report / --sensitivity ----------------------------------

@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    X, t, y = simulate(6, n=240)
    df = X.assign(treat=t, outcome=y)
    path = tmp_path_factory.mktemp("cli") / "data.csv"
    df.to_csv(path, index=False)
    return path


def _cli(args, capsys):
    from cina.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sensitivity_in_text_and_json(csv_file, capsys):
    import json

    base = ["estimate", csv_file, "--treatment", "treat", "--outcome", "outcome",
            "--lam-rel", "0.3", "--benchmarks", "score,age"]
    code, out, err = _cli(base + ["--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    sens = record["sensitivity"]
    X, t, y = simulate(6, n=240)
    est = cina.CInA(lam_rel=0.3).fit(X, t, y)
    ref = est.sensitivity(benchmark_covariates=["score", "age"])
    assert sens["rv"] == pytest.approx(ref.rv, rel=1e-9)
    assert [b["covariate"] for b in sens["benchmarks"]] == ["score", "age"]
    code, out, err = _cli(base + ["--sensitivity"], capsys)
    assert code == 0, err
    assert "robustness value" in out and "a confounder as strong as" in out and "score" in out
    code, out, _ = _cli(base[:-2], capsys)  # neither option: no sensitivity analysis
    assert code == 0 and "robustness value" not in out


def test_cli_report_reproduces_with_its_command(csv_file, tmp_path, capsys):
    import json
    import shlex

    target = tmp_path / "r.html"
    code, out, err = _cli(["estimate", csv_file, "--treatment", "treat", "--outcome", "outcome",
                           "--lam-rel", "0.3", "--estimand", "att", "--benchmarks", "none",
                           "--report", target], capsys)
    assert code == 0, err
    assert "robustness value" in out  # computed for the report, so shown too
    page = target.read_text(encoding="utf-8")
    command = html.unescape(re.search(r'<code id="reproduce">(.*?)</code>', page, re.S).group(1))
    words = shlex.split(command)
    assert words[:2] == ["cina", "estimate"] and "--report" in words
    assert "--estimand" in words and "att" in words
    # the command shown gives the same estimate
    rerun = words[2:words.index("--report")] + ["--json"]
    code, out, err = _cli(["estimate", *rerun], capsys)
    assert code == 0, err
    assert json.loads(out)["estimate"] == _data_value(page, "estimate")
    assert "Among the" in page and "outcome" in page
