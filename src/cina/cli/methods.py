"""``cina methods``: the estimation methods ``cina estimate --method`` accepts."""

from __future__ import annotations

import argparse
import json

from ._estimators import DEFAULT_METHOD, ESTIMATOR_OPTIONS, accepted_params, method_names

__all__ = ["NAME", "HELP", "DESCRIPTION", "add_arguments", "run", "method_rows"]

NAME = "methods"
HELP = "list the available estimation methods"
DESCRIPTION = ("List the estimation methods `cina estimate --method` accepts, with the "
               "estimator options each one takes.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list")


def method_rows() -> list[dict]:
    """One row per registered method: name, estimator class, first docstring line, the
    ``cina estimate`` options it accepts, and whether it is the default."""
    from ..registry import describe, make_estimator

    rows = []
    for name in method_names():
        est = make_estimator(name)
        accepted = accepted_params(est)
        rows.append({
            "name": name,
            "estimator": type(est).__name__,
            "description": describe(name, est),
            "options": [o for o, p in ESTIMATOR_OPTIONS.items() if p in accepted],
            "default": name == DEFAULT_METHOD,
        })
    return rows


def run(args) -> int:
    """Handler of ``cina methods``."""
    rows = method_rows()
    if args.json:
        print(json.dumps(rows))
        return 0
    width = max((len(r["name"]) for r in rows), default=4) + 2
    for r in rows:
        mark = " (default)" if r["default"] else ""
        opts = f"  [{' '.join(r['options'])}]" if r["options"] else ""
        print(f"{r['name']:<{width}}{r['estimator']}{mark}: {r['description']}{opts}")
    return 0
