"""Benchmark harness: suites of datasets, a resumable runner and the report (``cina bench``).

* :mod:`cina.bench.suites`: the named suites (lazy dataset specs) and groups.
* :mod:`cina.bench.runner`: runs methods on datasets, one cached JSON line per item.
* :mod:`cina.bench.report`: results.csv, summary.csv / summary.md, ranks and plots; the
  reference numbers of public estimators are data (``anchors.toml``).
* :mod:`cina.bench.harness`: one benchmark command (check the folder, run, log, report); the
  ``cina bench`` subcommand (:mod:`cina.cli.bench`) parses its arguments.
"""

from .suites import GROUPS, SUITES, DatasetSpec, SuiteSpec, resolve_suites, suite_datasets

__all__ = ["GROUPS", "SUITES", "DatasetSpec", "SuiteSpec", "resolve_suites", "suite_datasets"]
