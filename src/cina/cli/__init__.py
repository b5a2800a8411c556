"""The ``cina`` command line: ``estimate``, ``methods``, ``bench``, ``pretrain``.

Argument parsing only. Each subcommand is one module of this package with ``NAME``, ``HELP``,
``DESCRIPTION`` (and optionally ``EPILOG``), ``add_arguments(parser)`` and ``run(args) -> int``;
the work is done by library functions that the Python API offers too (:mod:`cina.io`,
:mod:`cina.outputs`, :mod:`cina.registry`, :mod:`cina.bench.harness`, :mod:`cina.train`).
Heavy imports stay inside ``run`` so that ``cina --help`` is fast.

Exit codes: 0 success; 2 a user error (bad arguments, an unreadable file, invalid data, an
output path that cannot be written), printed as ``error: <message>`` on stderr without a
traceback; 1 a failure inside cina (a solver that did not converge, a corrupt or unsafe
checkpoint); 130 interrupted. Warnings print as ``warning: <message>`` on stderr.

Adding a subcommand: write ``cina/cli/<name>.py`` with the five names above and append the
module to :data:`SUBCOMMANDS`. Adding an output file to ``cina estimate``: one entry in
:data:`cina.outputs.ESTIMATE_OUTPUTS`.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from ..errors import CInAError, CInAValidationError, MissingDependencyError
from ..outputs import format_number
from . import bench, estimate, methods, pretrain
from ._estimators import DEFAULT_METHOD
from ._parsing import ArgumentError, Parser, UsageError

__all__ = ["main", "build_parser", "DEFAULT_METHOD", "SUBCOMMANDS", "UsageError",
           "format_number"]

SUBCOMMANDS: list[ModuleType] = [estimate, methods, bench, pretrain]
"""The subcommand modules, in the order ``cina --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = Parser(
        prog="cina",
        description="Average treatment effects with optimal balancing weights (Causal "
                    "Inference with Attention).",
        epilog="Run `cina COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"cina {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        p = subparsers.add_parser(module.NAME, help=module.HELP, description=module.DESCRIPTION,
                                  epilog=getattr(module, "EPILOG", None),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``cina`` command line; returns the exit code (never raises for user errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        print("error: a command is required", file=sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except (CInAValidationError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CInAError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
