"""The weights of a distributed fit written back as partitioned Parquet, all or nothing.

The dataset is written by the workers (one file per input partition, the input's index and row
order, columns ``treatment`` and ``weight``) into a hidden temporary directory beside the target,
``.NAME.XXXXXXXX.tmp``, which is renamed to the target only after every partition was written.
A killed or failed run therefore leaves either the previous target or the new one, never a
partial dataset; the temporary directories a kill leaves behind are removed by the next write to
the same target (:func:`remove_stale_directories`). The target and its parent must be on a file
system that every worker writes to (a local cluster's, or a shared mount).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ..outputs import OutputError, _same_file

__all__ = ["check_weights_dir", "write_weights", "remove_stale_directories"]

_STALE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.(tmp|old)$")


def _is_dataset_dir(p: Path) -> bool:
    """Whether an existing directory holds only what a Parquet dataset write leaves (so that
    replacing it loses nothing else)."""
    return all(e.is_file() and (e.suffix == ".parquet" or e.name.startswith("_"))
               for e in p.iterdir())


def check_weights_dir(path, inputs=(), label: str = "--weights-out") -> str:
    """Check, before the fit, that ``path`` can receive the weights' Parquet dataset: not an
    input (nor a directory holding one), its parent exists and accepts new entries, and an
    existing target is a Parquet dataset directory (which is replaced) rather than a file or a
    directory with other content."""
    path = os.path.expanduser(os.fspath(path))
    if not path or "://" in path:
        raise OutputError(f"{label} {path!r}: give a local directory path (shared by the "
                          "workers)")
    p = Path(path)
    for src in inputs:
        src = os.fspath(src)
        if _same_file(path, src) or os.path.realpath(src).startswith(
                os.path.realpath(path) + os.sep):
            raise OutputError(f"{label} {path!r} is or holds the input {src!r}; refusing to "
                              "overwrite the input (give another path)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{label} {path!r}: the directory {str(parent)!r} does not exist")
    if p.exists():
        if not p.is_dir():
            raise OutputError(f"{label} {path!r} is a file; the weights are a Parquet dataset "
                              "(a directory): give a directory path")
        if not _is_dataset_dir(p):
            raise OutputError(f"{label} {path!r} is a directory with other content than a "
                              "Parquet dataset; refusing to replace it")
    try:
        probe = tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".probe", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(f"{label} {path!r}: cannot create a directory in {str(parent)!r} "
                          f"({exc.strerror or exc})") from None
    return path


def remove_stale_directories(path) -> list[str]:
    """Remove the temporary directories that a killed write to ``path`` left beside it."""
    p = Path(os.path.expanduser(os.fspath(path)))
    parent = p.parent if str(p.parent) else Path(".")
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        m = _STALE.match(entry.name)
        if m and m.group("name") == p.name and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def write_weights(weights, path, *, overwrite: bool = True, client=None) -> str:
    """Write the Dask DataFrame ``weights`` as a Parquet dataset at the directory ``path``, all
    or nothing (module doc); returns the path. An existing dataset at ``path`` is replaced when
    ``overwrite``, else it is an :class:`~cina.outputs.OutputError`."""
    path = check_weights_dir(path)
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputError(f"{path!r} exists; pass overwrite=True to replace it")
    remove_stale_directories(target)
    parent = target.parent if str(target.parent) else Path(".")
    tmp = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    try:
        task = weights.to_parquet(tmp, write_index=True, compute=False)
        if client is not None:
            client.compute(task).result()
        else:
            task.compute()
        for entry in Path(tmp).iterdir():  # the files are complete before the rename
            with open(entry, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent)
            os.rmdir(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write the weights to {path!r}: {exc.strerror or exc}; "
                          "nothing was written") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
