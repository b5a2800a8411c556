"""Tests of the ``cina`` command line, run in-process through ``cina.cli.main``."""

from __future__ import annotations

import hashlib
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from cina import CInA
from cina.base import EffectEstimator
from cina.cli import DEFAULT_METHOD, format_number, main
from cina.results import EffectResult

N = 200
JSON_KEYS = {"ate", "estimate", "se", "alpha", "ci_low", "ci_high", "n", "n_treated",
             "n_control", "ess_treated", "ess_control", "method", "estimand", "seconds",
             "balance"}


class _DifferenceInMeans(EffectEstimator):
    """Difference in means (test stand-in for a method without weights and CInA options)."""

    method_name = "diff"

    def __init__(self, estimand: str = "ate"):
        self.estimand = estimand

    def _fit_validated(self, data):
        y1, y0 = data.y[data.t == 1], data.y[data.t == 0]
        se = float(np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0)))
        return EffectResult(estimate=float(y1.mean() - y0.mean()), se=se,
                            estimand=self.estimand, method="diff", n=data.n,
                            n_treated=data.n_treated, n_control=data.n_control, seconds=0.0)


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """cina.registry, or a stand-in with the same API while it does not exist yet; the test
    method "diff" is added to whichever it is."""
    try:
        import cina.registry as reg
    except ImportError:
        reg = types.ModuleType("cina.registry")
        reg.available_methods = lambda: ["exact"]
        reg.make_estimator = lambda name, **params: CInA(method=name, **params)
        monkeypatch.setitem(sys.modules, "cina.registry", reg)
    real_available, real_make = reg.available_methods, reg.make_estimator

    def available_methods():
        return [*real_available(), "diff"]

    def make_estimator(name, **params):
        return _DifferenceInMeans(**params) if name == "diff" else real_make(name, **params)

    monkeypatch.setattr(reg, "available_methods", available_methods, raising=False)
    monkeypatch.setattr(reg, "make_estimator", make_estimator, raising=False)
    return reg


def _data(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-0.8 * X[:, 0]))
    t = (rng.random(n) < p).astype(int)
    y = X[:, 0] + 0.5 * X[:, 1] + 2.0 * t + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "treat": t, "y": y})


def _csv(tmp_path, df: pd.DataFrame | None = None, name: str = "data.csv"):
    path = tmp_path / name
    (_data() if df is None else df).to_csv(path, index=False)
    return path


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _estimate(capsys, path, *extra, treatment="treat", outcome="y"):
    return _run(capsys, "estimate", path, "--treatment", treatment, "--outcome", outcome, *extra)


def _user_error(rc, out, err, *fragments):
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert out == ""
    assert "error: " in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# --- successful runs -------------------------------------------------------------------------
def test_default_method_is_exact():
    assert DEFAULT_METHOD == "exact"


def test_json_output(tmp_path, capsys):
    rc, out, err = _estimate(capsys, _csv(tmp_path), "--json")
    assert rc == 0, err
    report = json.loads(out)  # the whole of stdout is one JSON object
    assert isinstance(report, dict)
    assert out.strip().count("\n") == 0
    assert JSON_KEYS <= set(report)
    assert report["method"] == "exact" and report["estimand"] == "ate"
    assert report["n"] == N and report["n_treated"] + report["n_control"] == N
    assert report["ate"] == report["estimate"]
    assert report["ci_low"] < report["ate"] < report["ci_high"]
    assert 1.5 < report["ate"] < 2.5
    assert 0 < report["ess_treated"] <= report["n_treated"]
    assert report["seconds"] >= 0
    assert report["alpha"] == 0.05
    bal = report["balance"]
    assert bal["n_covariates"] == 3 and bal["max_smd_after"] < bal["max_smd_before"]
    assert {"covariate", "smd_before", "smd_after"} <= set(bal["worst"][0])
    assert report["covariates"] == ["x1", "x2", "x3"]


def test_json_att_uses_ate_key(tmp_path, capsys):
    rc, out, _ = _estimate(capsys, _csv(tmp_path), "--json", "--estimand", "att", "--alpha",
                           "0.1")
    assert rc == 0
    report = json.loads(out)
    assert report["estimand"] == "att" and report["ate"] == report["estimate"]
    assert report["alpha"] == 0.1


def test_readable_output(tmp_path, capsys):
    path = _csv(tmp_path)
    rc, out, _ = _estimate(capsys, path, "--json")
    report = json.loads(out)
    rc, out, err = _estimate(capsys, path)
    assert rc == 0 and err == ""
    for text in ("exact", "ATE", f"N = {N}", "95% CI", "ESS", "balance", "max", "mean",
                 "over 0.1", "worst", "time"):
        assert text in out, text
    assert format_number(report["estimate"]) in out
    assert f"[{format_number(report['ci_low'])}, {format_number(report['ci_high'])}]" in out
    assert format_number(report["se"]) in out


def test_cina_options_passed(tmp_path, capsys):
    rc, out, err = _estimate(capsys, _csv(tmp_path), "--json", "--balance", "mutual",
                             "--lam-rel", "0.5", "--bandwidth", "2.0")
    assert rc == 0, err
    params = json.loads(out)["params"]
    assert params["balance"] == "mutual" and params["lam_rel"] == 0.5
    assert params["bandwidth"] == 2.0


def test_weights_out(tmp_path, capsys):
    df = _data()
    path, wpath = _csv(tmp_path, df), tmp_path / "w.csv"
    rc, _, err = _estimate(capsys, path, "--weights-out", wpath)
    assert rc == 0, err
    w = pd.read_csv(wpath)
    assert list(w.columns) == ["row", "treatment", "weight"]
    assert len(w) == len(df)
    np.testing.assert_array_equal(w["row"], np.arange(len(df)))
    np.testing.assert_array_equal(w["treatment"], df["treat"])
    assert (w["weight"] >= 0).all()
    sums = w.groupby("treatment")["weight"].sum()
    np.testing.assert_allclose(sums.to_numpy(), [1.0, 1.0], atol=1e-8)


def test_balance_out(tmp_path, capsys):
    bpath = tmp_path / "b.csv"
    rc, _, err = _estimate(capsys, _csv(tmp_path), "--balance-out", bpath)
    assert rc == 0, err
    table = pd.read_csv(bpath, index_col=0)
    assert list(table.index) == ["x1", "x2", "x3"]
    assert {"smd_before", "smd_after", "var_ratio_before", "var_ratio_after"} <= set(table)


def test_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ppath = tmp_path / "diag.png"
    rc, _, err = _estimate(capsys, _csv(tmp_path), "--plot", ppath)
    assert rc == 0, err
    assert ppath.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    ppath = tmp_path / "diag.png"
    rc, out, err = _estimate(capsys, _csv(tmp_path), "--plot", ppath)
    _user_error(rc, out, err, "cina[plot]")
    assert not ppath.exists()


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "dta"])
def test_input_formats(tmp_path, capsys, fmt):
    df = _data()
    path = tmp_path / f"data.{fmt}"
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
        df.to_parquet(path, index=False)
    elif fmt == "dta":
        df.to_stata(path, write_index=False)
    else:
        df.to_csv(path, index=False)
    rc, out, err = _estimate(capsys, path, "--json")
    assert rc == 0, err
    rc0, out0, _ = _estimate(capsys, _csv(tmp_path, df), "--json")
    assert json.loads(out)["ate"] == pytest.approx(json.loads(out0)["ate"], rel=1e-6)


def test_parquet_without_pyarrow(tmp_path, capsys, monkeypatch):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    _user_error(*_estimate(capsys, path), "cina[parquet]")


def test_string_covariate_one_hot(tmp_path, capsys):
    df = _data()
    df["region"] = np.random.default_rng(1).choice(["north", "south", "west"], len(df))
    rc, out, err = _estimate(capsys, _csv(tmp_path, df), "--json")
    assert rc == 0, err
    covs = json.loads(out)["covariates"]
    assert {"region=north", "region=south", "region=west"} <= set(covs)
    assert "region" not in covs


def test_covariates_option(tmp_path, capsys):
    rc, out, err = _estimate(capsys, _csv(tmp_path), "--json", "--covariates", "x1, x3")
    assert rc == 0, err
    assert json.loads(out)["covariates"] == ["x1", "x3"]


def test_string_treatment_with_treated_level(tmp_path, capsys):
    df = _data()
    df["arm"] = np.where(df.pop("treat") == 1, "drug", "placebo")
    path = _csv(tmp_path, df)
    _user_error(*_estimate(capsys, path, treatment="arm"), "--treated-level", "'drug'")
    rc, out, err = _estimate(capsys, path, "--json", "--treated-level", "drug", treatment="arm")
    assert rc == 0, err
    report = json.loads(out)
    assert report["n_treated"] == int((df["arm"] == "drug").sum())


def test_numeric_treated_level(tmp_path, capsys):
    df = _data()
    df["treat"] = df["treat"] + 1  # coded 1 (control) / 2 (treated)
    rc, out, err = _estimate(capsys, _csv(tmp_path, df), "--json", "--treated-level", "2")
    assert rc == 0, err
    assert json.loads(out)["n_treated"] == int((df["treat"] == 2).sum())


def test_constant_covariate_warns(tmp_path, capsys):
    df = _data()
    df["const"] = 3.0
    rc, out, err = _estimate(capsys, _csv(tmp_path, df), "--json")
    assert rc == 0
    assert "warning: " in err and "const" in err and "error" not in err
    report = json.loads(out)
    assert report["dropped_constant"] == ["const"]
    assert "const" not in report["covariates"]
    rc, out, err = _estimate(capsys, _csv(tmp_path, df))
    assert rc == 0 and "const" in out and "warning: " in err


def test_input_file_not_modified(tmp_path, capsys):
    path = _csv(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rc, _, _ = _estimate(capsys, path, "--weights-out", tmp_path / "w.csv", "--balance-out",
                         tmp_path / "b.csv")
    assert rc == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_method_without_weights(tmp_path, capsys):
    path = _csv(tmp_path)
    rc, out, err = _estimate(capsys, path, "--method", "diff", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["method"] == "diff" and report["balance"] is None
    assert report["ess_treated"] is None
    rc, out, err = _estimate(capsys, path, "--method", "diff")
    assert rc == 0 and "n/a" in out
    _user_error(*_estimate(capsys, path, "--method", "diff", "--weights-out",
                           tmp_path / "w.csv"), "--weights-out", "weighting method")


@pytest.mark.parametrize("option,value", [("--balance", "mutual"), ("--lam-rel", "0.1"),
                                          ("--bandwidth", "median"), ("--max-iter", "0")])
def test_option_not_accepted_by_method(tmp_path, capsys, option, value):
    _user_error(*_estimate(capsys, _csv(tmp_path), "--method", "diff", option, value),
                f"{option} does not apply to method 'diff'")


def test_methods_subcommand(capsys):
    rc, out, err = _run(capsys, "methods")
    assert rc == 0 and "exact" in out and "(default)" in out, err
    rc, out, _ = _run(capsys, "methods", "--json")
    names = [m["name"] for m in json.loads(out)]
    assert "exact" in names and "diff" in names


def test_help(capsys):
    rc, out, _ = _run(capsys, "estimate", "--help")
    assert rc == 0
    assert "one-hot" in out and "--treated-level" in out and "--weights-out" in out
    rc, out, _ = _run(capsys, "--help")
    assert rc == 0 and "estimate" in out and "methods" in out


# --- user errors: exit code 2, a specific message, no traceback --------------------------------
def test_no_command(capsys):
    rc, out, err = _run(capsys)
    assert rc == 2 and "error: " in err


def test_missing_file(tmp_path, capsys):
    _user_error(*_estimate(capsys, tmp_path / "nope.csv"), "does not exist")


def test_directory(tmp_path, capsys):
    (tmp_path / "folder.csv").mkdir()
    _user_error(*_estimate(capsys, tmp_path / "folder.csv"), "is a directory")


def test_unknown_extension(tmp_path, capsys):
    (tmp_path / "d.txt").write_text("a,b\n")
    _user_error(*_estimate(capsys, tmp_path / "d.txt"), ".csv", ".parquet", ".dta")


@pytest.mark.parametrize("name,content", [("ragged.csv", b"a,b\n1,2\n3,4,5,6\n"),
                                          ("bad.csv.gz", b"not gzip"),
                                          ("bad.dta", b"not stata")])
def test_corrupt_file(tmp_path, capsys, name, content):
    (tmp_path / name).write_bytes(content)
    _user_error(*_estimate(capsys, tmp_path / name), "could not read")


@pytest.mark.parametrize("content,match", [("", "empty"), ("treat,y,x1\n", "no rows")])
def test_empty_file(tmp_path, capsys, content, match):
    (tmp_path / "e.csv").write_text(content)
    _user_error(*_estimate(capsys, tmp_path / "e.csv"), match)


@pytest.mark.parametrize("args,fragment", [
    (("--treatment", "tret", "--outcome", "y"), "treatment column 'tret'"),
    (("--treatment", "treat", "--outcome", "yy"), "outcome column 'yy'"),
    (("--treatment", "treat", "--outcome", "y", "--covariates", "x1,x4"),
     "covariate column 'x4'"),
    (("--treatment", "treat", "--outcome", "treat"), "same column"),
    (("--treatment", "treat", "--outcome", "y", "--covariates", "x1,treat"),
     "treatment column 'treat' is also listed"),
])
def test_bad_columns(tmp_path, capsys, args, fragment):
    _user_error(*_run(capsys, "estimate", _csv(tmp_path), *args), fragment)


def test_unknown_column_suggests(tmp_path, capsys):
    _user_error(*_estimate(capsys, _csv(tmp_path), treatment="treet"), "did you mean 'treat'")


def test_treatment_three_values(tmp_path, capsys):
    df = _data()
    df.loc[:9, "treat"] = 2
    _user_error(*_estimate(capsys, _csv(tmp_path, df)), "'treat' must be binary",
                "3 distinct values")


def test_treatment_one_value(tmp_path, capsys):
    df = _data()
    df["treat"] = 1
    _user_error(*_estimate(capsys, _csv(tmp_path, df)), "single value")


def test_string_treatment_not_two_levels(tmp_path, capsys):
    df = _data()
    df["arm"] = np.random.default_rng(2).choice(["a", "b", "c"], len(df))
    _user_error(*_estimate(capsys, _csv(tmp_path, df), "--treated-level", "a", treatment="arm"),
                "'arm' must be binary")


def test_treated_level_not_a_value(tmp_path, capsys):
    _user_error(*_estimate(capsys, _csv(tmp_path), "--treated-level", "7"),
                "is not a value of treatment 'treat'")


def test_nan_in_covariate(tmp_path, capsys):
    df = _data()
    df.loc[[3, 8, 20], "x2"] = np.nan
    _user_error(*_estimate(capsys, _csv(tmp_path, df)), "'x2': 3 NaN")


def test_inf_in_covariate(tmp_path, capsys):
    df = _data()
    df.loc[5, "x3"] = np.inf
    _user_error(*_estimate(capsys, _csv(tmp_path, df)), "'x3'", "1 inf")


def test_nan_in_treatment(tmp_path, capsys):
    df = _data()
    df["treat"] = df["treat"].astype(float)
    df.loc[[1, 2], "treat"] = np.nan
    _user_error(*_estimate(capsys, _csv(tmp_path, df)), "treatment column 'treat' has 2 missing")


def test_nan_in_outcome(tmp_path, capsys):
    df = _data()
    df.loc[4, "y"] = np.nan
    _user_error(*_estimate(capsys, _csv(tmp_path, df)), "outcome 'y' has 1 NaN")


def test_too_few_in_arm(tmp_path, capsys):
    df = _data()
    df["treat"] = 0
    df.loc[7, "treat"] = 1
    _user_error(*_estimate(capsys, _csv(tmp_path, df)), "treated arm has 1 unit")


def test_duplicated_columns(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    df = _data()
    lines = df.to_csv(index=False).splitlines()
    lines[0] = lines[0].replace("x3", "x1")
    path.write_text("\n".join(lines) + "\n")
    _user_error(*_estimate(capsys, path), "duplicated column names", "'x1'")


def test_unknown_method(tmp_path, capsys):
    _user_error(*_estimate(capsys, _csv(tmp_path), "--method", "exakt"), "unknown method",
                "did you mean 'exact'")


def test_att_not_supported_passes_through(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_DifferenceInMeans, "_supports_att", False)
    _user_error(*_estimate(capsys, _csv(tmp_path), "--method", "diff", "--estimand", "att"),
                "does not support estimand='att'")


@pytest.mark.parametrize("argv,fragment", [
    (("--alpha", "1.5"), "--alpha"),
    (("--estimand", "ATX"), "--estimand"),
    (("--lam-rel", "-1"), "--lam-rel"),
    (("--bandwidth", "wide"), "--bandwidth"),
    (("--max-iter", "-3"), "--max-iter"),
    (("--max-iter", "many"), "--max-iter"),
    (("--covariates", " , "), "--covariates is empty"),
])
def test_bad_arguments(tmp_path, capsys, argv, fragment):
    _user_error(*_estimate(capsys, _csv(tmp_path), *argv), fragment)


def test_missing_required_argument(tmp_path, capsys):
    _user_error(*_run(capsys, "estimate", _csv(tmp_path), "--outcome", "y"), "--treatment")


def test_output_directory_missing(tmp_path, capsys):
    _user_error(*_estimate(capsys, _csv(tmp_path), "--weights-out",
                           tmp_path / "nope" / "w.csv"), "does not exist")


# --- the plotting functions behind --plot ------------------------------------------------------
def test_plotting_functions_return_axes():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from cina.plotting import diagnostics_figure, love_plot, weight_plot

    df = _data()
    est = CInA().fit(df[["x1", "x2", "x3"]], df["treat"], df["y"])
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert love_plot(est.balance_table(), ax=ax1) is ax1
    assert [t.get_text() for t in ax1.get_yticklabels()][-1] == \
        est.balance_table()["smd_before"].idxmax()  # worst at the top
    assert weight_plot(est.weights_, df["treat"], ax=ax2) is ax2
    labels = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert any(label.startswith("treated: ESS") for label in labels)
    fig2 = diagnostics_figure(est, fig=Figure())
    assert len(fig2.axes) == 2


def test_pretrain_and_bench_subcommands_are_registered(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "pretrain" in out and "bench" in out


def test_zero_shot_max_iter_reaches_the_estimator(tmp_path, capsys):
    path = _csv(tmp_path)
    rc, out, _ = _estimate(capsys, path, "--method", "zero-shot", "--max-iter", "0", "--json")
    assert rc == 0
    assert json.loads(out)["info"]["refinement_steps"] == 10


# --- the package layout: one module per subcommand, the logic in the library ------------------
def test_every_subcommand_module_has_the_interface():
    from cina.cli import SUBCOMMANDS

    names = [m.NAME for m in SUBCOMMANDS]
    assert names == ["estimate", "methods", "bench", "pretrain"]
    for module in SUBCOMMANDS:
        assert module.HELP and module.DESCRIPTION
        assert callable(module.add_arguments) and callable(module.run)


def test_cli_imports_no_training_module_and_no_cycle():
    """The CLI's import does not pull in torch or the training loop (they load when a command
    runs), and cina.train no longer imports any argument parser."""
    code = ("import sys, cina.cli; bad = [m for m in ('torch', 'cina.train.pretrain') "
            "if m in sys.modules]; print(bad)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip() == "[]", out.stderr
    import inspect

    import cina.train.pretrain as pretrain_mod

    assert "argparse" not in inspect.getsource(pretrain_mod)


def test_python_dash_m_cina(tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, "-m", "cina", "--version"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("cina ")


def test_a_new_output_kind_is_one_entry(tmp_path, capsys, monkeypatch):
    """Adding an OutputKind to cina.outputs.ESTIMATE_OUTPUTS adds the option, checks its path
    before the fit and writes it with the others (the recipe of /cli/__init__.py)."""
    from cina import outputs

    seen = []

    def write_json(fitted, tmp, target):
        seen.append(fitted.report["estimate"])
        with open(tmp, "w") as fh:
            json.dump(fitted.report, fh)

    kind = outputs.OutputKind("--json-out", "PATH", "write the JSON record to this file",
                              "the JSON record", write_json, needs_weights=False)
    monkeypatch.setattr(outputs, "ESTIMATE_OUTPUTS", [*outputs.ESTIMATE_OUTPUTS, kind])
    path = _csv(tmp_path)
    rc, out, err = _estimate(capsys, path, "--json", "--json-out", tmp_path / "r.json")
    assert rc == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["estimate"] == json.loads(out)["ate"]
    assert seen == [json.loads(out)["ate"]]
    _user_error(*_estimate(capsys, path, "--json-out", path), "--json-out", "input file")


def test_estimate_report_is_the_api_of_the_json_output(tmp_path, capsys):
    from cina.outputs import estimate_report, format_estimate_report

    df = _data()
    path = _csv(tmp_path, df)
    rc, out, _ = _estimate(capsys, path, "--json")
    cli = json.loads(out)
    est = CInA().fit(df[["x1", "x2", "x3"]], df["treat"], df["y"])
    api = estimate_report(est, est.data_)
    for key in ("estimate", "se", "ci_low", "ci_high", "ess_treated", "balance", "covariates"):
        assert api[key] == cli[key], key
    text = format_estimate_report(api, title="mine")
    assert text.startswith("mine") and format_number(api["estimate"]) in text
