"""Argument parsing shared by the subcommands: the parser that returns instead of exiting, the
argument types (each error names what it expected and what it received), and the warning
printer."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from collections.abc import Iterator

from ..errors import CInAValidationError

__all__ = ["UsageError", "ArgumentError", "Parser", "print_warnings", "alpha",
           "positive_or_auto", "nonnegative_int", "positive_int", "bandwidth", "name_list"]

_SILENT_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class UsageError(CInAValidationError):
    """A command-line argument that cannot be used (reported with exit code 2)."""


class ArgumentError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser
        self.message = message


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so ``main`` returns its exit code."""

    def error(self, message):
        raise ArgumentError(self, message)


@contextlib.contextmanager
def print_warnings(seen: list[str]) -> Iterator[None]:
    """Collect warnings raised inside the block and print each once as ``warning: ...``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, _SILENT_WARNINGS):
                    continue
                msg = str(w.message)
                if msg not in seen:
                    seen.append(msg)
                    print(f"warning: {msg}", file=sys.stderr)


def alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1); received {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1); received {text!r}")
    return value


def positive_or_auto(text: str):
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number or 'auto'; received {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number; received {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer; received {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; received {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text!r}") \
            from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text!r}")
    return value


def thread_count(text: str):
    """--threads: a positive integer, "all" (every core) or "auto" (the thread policy)."""
    if text.strip().lower() in ("auto", "all"):
        return text.strip().lower()
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer, all or auto; received {text!r}") from None


def bandwidth(text: str):
    from ..balancing import BANDWIDTH_RULES

    if text in BANDWIDTH_RULES:
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number or one of {', '.join(BANDWIDTH_RULES)}; "
            f"received {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number; received {text!r}")
    return value


def name_list(option: str, values: list[str] | None, what: str) -> list[str] | None:
    """Comma-separated names, possibly over several occurrences of ``option``; None when the
    option was not given; an empty list is a :class:`UsageError` (``what`` says what to do)."""
    if values is None:
        return None
    names = [part.strip() for value in values for part in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UsageError(f"{option} is empty; {what}")
    return names
