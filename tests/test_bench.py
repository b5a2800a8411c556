"""Tests of the benchmark harness (``cina bench``): suites, resumable runner, failures, report."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import pytest

import cina.registry as registry
from cina.base import EffectEstimator
from cina.bench import suites as suites_mod
from cina.bench.harness import spread
from cina.bench.report import average_ranks, summarize
from cina.bench.runner import RECORD_FIELDS, load_cache
from cina.bench.suites import DatasetSpec, SuiteSpec, resolve_suites, suite_datasets
from cina.cli import main
from cina.datasets import simulation_a

N = 120


def _tiny(seed: int):
    return simulation_a(seed, n=N)


def _one_arm():
    ds = simulation_a(7, n=N)
    return replace(ds, t=np.ones_like(ds.t), name="one-arm")


def _no_file():
    raise FileNotFoundError("no such data file: missing.npz")


@pytest.fixture
def tiny_suites(monkeypatch):
    """Register a 2-dataset suite and a suite with two broken datasets and one good one."""
    monkeypatch.setitem(suites_mod.SUITES, "tiny", SuiteSpec(
        "tiny", "test", "two small Simulation A datasets",
        lambda: [DatasetSpec(f"simA-s{s}", partial(_tiny, s)) for s in (1, 2)]))
    monkeypatch.setitem(suites_mod.SUITES, "broken", SuiteSpec(
        "broken", "test", "one good, one unloadable, one single-arm dataset",
        lambda: [DatasetSpec("good", partial(_tiny, 3)), DatasetSpec("missing", _no_file),
                 DatasetSpec("one-arm", _one_arm)]))


@pytest.fixture
def calls(monkeypatch):
    """Count estimator constructions by the runner (one per computed item)."""
    seen: list[str] = []
    original = registry.make_estimator

    def counting(name, **params):
        seen.append(name)
        return original(name, **params)

    monkeypatch.setattr(registry, "make_estimator", counting)
    return seen


def _bench(out, *extra, suite="tiny", methods="naive,exact", plots=False):
    return main(["bench", "--suite", suite, "--methods", methods, "--out", str(out),
                 "--no-progress", *extra] + ([] if plots else ["--no-plots"]))


def test_tiny_suite_runs_and_writes_files(tmp_path, tiny_suites, capsys):
    assert _bench(tmp_path, plots=True) == 0
    for name in ("mae_heatmap.png", "time_vs_error.png", "results.csv", "summary.md", "summary.csv", "cache.jsonl", "commands.log",
                 "ranks.csv"):
        assert (tmp_path / name).is_file(), name
    res = pd.read_csv(tmp_path / "results.csv")
    assert list(res.columns) == list(RECORD_FIELDS)
    assert len(res) == 4 and set(res["status"]) == {"ok"}
    assert set(res["method"]) == {"naive", "exact"}
    assert set(res["dataset"]) == {"simA-s1", "simA-s2"}
    np.testing.assert_allclose(res["abs_error"], (res["estimate"] - res["true_effect"]).abs())
    assert (res["n"] == N).all() and (res["estimand"] == "ate").all()
    assert res["covered"].isin([True, False]).all()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert set(summary["method"]) == {"naive", "exact"}
    assert (summary["datasets_ok"] == 2).all()
    md = (tmp_path / "summary.md").read_text()
    assert "MAE per suite and method" in md and "Average rank" in md
    assert "cina bench --suite tiny --methods naive,exact" in md
    assert "4 items (4 computed" in capsys.readouterr().out


def test_resume_skips_finished_items(tmp_path, tiny_suites, calls):
    assert _bench(tmp_path) == 0
    assert len(calls) == 4
    first = load_cache(tmp_path)
    calls.clear()
    assert _bench(tmp_path) == 0  # same command: everything cached
    assert calls == []
    assert load_cache(tmp_path) == first
    assert _bench(tmp_path, methods="naive,exact,ipw") == 0  # a new method: only it runs
    assert calls == ["ipw", "ipw"]
    calls.clear()
    assert _bench(tmp_path, "--no-cache") == 0  # recomputes
    assert sorted(calls) == ["exact", "exact", "naive", "naive"]
    assert len(pd.read_csv(tmp_path / "results.csv")) == 6  # latest record per item


def test_interrupted_run_resumes(tmp_path, tiny_suites, monkeypatch):
    original = registry.make_estimator
    calls: list[str] = []

    def interrupt_third(name, **params):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(name)
        return original(name, **params)

    monkeypatch.setattr(registry, "make_estimator", interrupt_third)
    assert _bench(tmp_path) == 130
    assert len(load_cache(tmp_path)) == 2  # finished items were written at once
    calls.clear()
    monkeypatch.setattr(registry, "make_estimator",
                        lambda name, **p: (calls.append(name), original(name, **p))[1])
    assert _bench(tmp_path) == 0
    assert len(calls) == 2 and len(load_cache(tmp_path)) == 4


class _Boom(EffectEstimator):
    method_name = "boom"

    def __init__(self, estimand: str = "ate"):
        self.estimand = estimand

    def _fit_validated(self, data):
        raise RuntimeError("solver exploded")


def test_failures_are_recorded_and_others_run(tmp_path, tiny_suites, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "boom", (_Boom, {}))
    assert _bench(tmp_path, suite="broken", methods="naive,boom") == 0
    res = pd.read_csv(tmp_path / "results.csv").set_index(["dataset", "method"])
    assert len(res) == 6
    assert res.loc[("good", "naive"), "status"] == "ok"
    assert np.isfinite(res.loc[("good", "naive"), "estimate"])
    assert res.loc[("good", "boom"), "status"] == "error: RuntimeError: solver exploded"
    for method in ("naive", "boom"):
        assert "FileNotFoundError: no such data file" in res.loc[("missing", method), "status"]
        assert "treatment takes one value" in res.loc[("one-arm", method), "status"]
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("method")
    assert summary.loc["naive", "datasets_ok"] == 1
    assert summary.loc["naive", "datasets_failed"] == 2
    assert summary.loc["boom", "datasets_ok"] == 0
    assert "Failures (" in (tmp_path / "summary.md").read_text()


def test_failures_are_skipped_on_resume_unless_retried(tmp_path, tiny_suites, calls):
    assert _bench(tmp_path, suite="broken", methods="naive") == 0
    assert calls == ["naive"]  # the two broken datasets never reach an estimator
    calls.clear()
    assert _bench(tmp_path, suite="broken", methods="naive") == 0
    assert calls == []
    assert _bench(tmp_path, "--retry-errors", suite="broken", methods="naive") == 0
    assert calls == []  # still broken: recorded again, no estimator built
    lines = (tmp_path / "cache.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(ln)["suite"] == "broken" for ln in lines)


@pytest.mark.parametrize("suite, methods, needle", [
    ("nonsense", "naive", "unknown suite(s) 'nonsense'; valid suites: ihdp"),
    ("tiny", "naive,nonsense", "unknown method(s) 'nonsense'; valid methods:"),
    ("real,bogus", "exact", "groups: real, synthetic, ood, all"),
])
def test_unknown_names_exit_2(tmp_path, tiny_suites, calls, capsys, suite, methods, needle):
    out = tmp_path / "out"
    assert _bench(out, suite=suite, methods=methods) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("error: ")
    assert calls == [] and not out.exists()


def test_resolve_groups_and_lazy_specs():
    assert resolve_suites("real") == ["ihdp", "acic2016", "lalonde-cps", "lalonde-psid", "twins"]
    assert resolve_suites("ihdp, real") [:2] == ["ihdp", "acic2016"]
    assert len(resolve_suites("all")) == 12
    specs = suite_datasets("acic2016")
    assert len(specs) == 77 and specs[0].name == "acic2016-1"
    assert len(suite_datasets("ihdp")) == 50 and len(suite_datasets("scm-prior")) == 40
    assert [len(suite_datasets(s)) for s in ("lalonde-cps", "lalonde-psid", "twins")] == [3, 1, 5]


def test_synthetic_suites_bounded_and_reproducible():
    for suite in ("scm-prior", "ood-wide", "semi-synthetic"):
        a = suite_datasets(suite)[0].load()
        b = suite_datasets(suite)[0].load()
        assert a.n <= 1500
        np.testing.assert_array_equal(a.y, b.y)
    assert suite_datasets("ood-wide")[0].load().d > 50


def test_lalonde_cps_keeps_all_treated():
    ds = suite_datasets("lalonde-cps")[1].load()
    assert int(ds.t.sum()) == 185 and int((ds.t == 0).sum()) == 4000
    assert ds.estimand == "att" and round(ds.true_effect, 2) == 1794.34


def test_spread_subset():
    assert spread(list(range(10)), None) == list(range(10))
    assert spread(list(range(77)), 5) == [0, 19, 38, 57, 76]
    assert spread([1, 2], 5) == [1, 2]


def _hand_summary():
    # suite s1: a 0.1, b 0.2, c 0.3 -> ranks 1, 2, 3
    # suite s2: a 0.5, b 0.5, c 0.1 -> ranks 2.5, 2.5, 1
    # suite s3: a 1.0, b missing, c 2.0 -> ranks 1, -, 2
    rows = [("s1", "a", 0.1), ("s1", "b", 0.2), ("s1", "c", 0.3),
            ("s2", "a", 0.5), ("s2", "b", 0.5), ("s2", "c", 0.1),
            ("s3", "a", 1.0), ("s3", "b", np.nan), ("s3", "c", 2.0)]
    return pd.DataFrame(rows, columns=["suite", "method", "mae"])


def test_average_ranks_hand_made():
    r = average_ranks(_hand_summary(), ["s1", "s2", "s3"])
    assert r.loc["a", "avg_rank"] == pytest.approx((1 + 2.5 + 1) / 3)
    assert r.loc["b", "avg_rank"] == pytest.approx((2 + 2.5) / 2)
    assert r.loc["c", "avg_rank"] == pytest.approx((3 + 1 + 2) / 3)
    assert list(r["n_suites"].loc[["a", "b", "c"]]) == [3, 2, 3]
    assert list(r.index) == ["a", "c", "b"]  # sorted by average rank 1.5, 2.0, 2.25
    r2 = average_ranks(_hand_summary(), ["s1"])
    assert list(r2["avg_rank"].loc[["a", "b", "c"]]) == [1, 2, 3]


def test_average_ranks_common_datasets():
    # method b ran on dataset d1 only: on the common dataset d1, b beats a
    recs = []
    for ds, err_a, err_b in (("d1", 0.3, 0.2), ("d2", 0.0, None)):
        recs.append({"suite": "s", "dataset": ds, "method": "a", "abs_error": err_a,
                     "status": "ok"})
        if err_b is not None:
            recs.append({"suite": "s", "dataset": ds, "method": "b", "abs_error": err_b,
                         "status": "ok"})
    df = pd.DataFrame(recs)
    for col in RECORD_FIELDS:
        if col not in df:
            df[col] = None
    summary = summarize(df)
    plain = average_ranks(summary, ["s"])
    assert plain.loc["a", "avg_rank"] == 1  # MAE 0.15 over both datasets vs 0.2
    common = average_ranks(summary, ["s"], df=df, methods=["a", "b"])
    assert common.loc["b", "avg_rank"] == 1 and common.loc["a", "avg_rank"] == 2


def test_ranks_skip_a_method_failing_on_most_datasets():
    recs = []
    for ds, errs in (("d1", (0.1, 0.2, 0.0)), ("d2", (0.3, 0.4, None)), ("d3", (0.2, 0.3, None))):
        for m, e in zip(("a", "b", "c"), errs, strict=True):
            recs.append({"suite": "s", "dataset": ds, "method": m, "abs_error": e,
                         "status": "ok" if e is not None else "error: failed"})
    df = pd.DataFrame(recs)
    for col in RECORD_FIELDS:
        if col not in df:
            df[col] = None
    summary = summarize(df)  # c: 1 ok, 2 failed -> not ranked, although its MAE is 0
    for r in (average_ranks(summary, ["s"]),
              average_ranks(summary, ["s"], df=df, methods=["a", "b", "c"])):
        assert r.loc["a", "avg_rank"] == 1 and r.loc["b", "avg_rank"] == 2
        assert np.isnan(r.loc["c", "avg_rank"]) and r.loc["c", "n_suites"] == 0


def test_anchor_table_is_package_data_with_its_provenance():
    from cina.bench.report import ANCHOR_TABLE, load_anchors

    anchors = load_anchors()
    assert ANCHOR_TABLE.parent.name == "bench" and ANCHOR_TABLE.suffix == ".toml"
    assert set(anchors["suites"]) == {"ihdp", "acic2016", "twins", "lalonde-psid",
                                      "lalonde-cps"}
    assert "DoubleML 0.11.4" in anchors["source"]
    assert anchors["suites"]["ihdp"]["dml"] == [("doubleml_irm_rf", "0.118 ± 0.015")]
    assert "Provenance" in ANCHOR_TABLE.read_text()


def test_report_sections_and_no_outside_paths(tmp_path, tiny_suites, monkeypatch):
    """Every section of summary.md comes from its own function, and the report cites files of
    the repository only."""
    from cina.bench import report

    monkeypatch.setitem(report.load_anchors()["suites"], "tiny",
                        {"naive": [("naive (anchor)", "0.5")]})
    assert _bench(tmp_path) == 0
    md = (tmp_path / "summary.md").read_text()
    for title in ("## Protocol", "## MAE per suite and method", "## Average rank of MAE",
                  "## CInA exact against each method, paired", "## Per suite",
                  "## Side by side with the anchors", "## Files"):
        assert title in md, title
    assert "src/cina/bench/anchors.toml" in md and "naive (anchor)" in md
    assert "/work/" not in md and "ANCHORS.md" not in md and "METHOD" not in md
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_bench_harness_api(tmp_path, tiny_suites):
    """`cina bench` is argument parsing over cina.bench.harness.run_and_report."""
    from cina.bench.harness import run_and_report
    from cina.bench.runner import BenchConfig

    cfg = BenchConfig(suites=["tiny"], methods=["naive"], out=tmp_path / "o", progress=False)
    outcome = run_and_report(cfg, command="python api", plots=False)
    assert not outcome.interrupted and outcome.counts["computed"] == 2
    assert outcome.report["summary_md"].is_file()
    assert "`python api`" in (tmp_path / "o" / "commands.log").read_text()


def test_bench_help_lists_every_registered_suite_and_group():
    from cina.bench.suites import GROUPS, SUITES
    from cina.cli.bench import DESCRIPTION

    text = " ".join(DESCRIPTION.split())
    for name in list(SUITES) + list(GROUPS):
        assert name in text, name
