"""The run directory of a pretraining run and everything in it that must survive a kill.

* ``checkpoint.pt``: model, optimiser, schedule, RNG states, step; written to a temporary file
  and renamed (a kill leaves the old or the new checkpoint). It holds tensors and plain values
  only and is read with ``torch.load(weights_only=True)``: a crafted pickle placed in a run
  directory cannot run code, it is refused with a :class:`~cina.errors.CheckpointError`.
* ``metrics.jsonl``: one JSON line per log record, appended with one ``os.write`` per record
  (:func:`cina.outputs.append_line`); on resume the lines after the checkpoint's step, and a
  line cut by a kill, are dropped, and a fresh start clears the records of an earlier attempt
  that died before its first checkpoint, so the log never holds a step twice.
* ``config.json``: the run's configuration (rewritten atomically).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..outputs import (
    append_line,
    prepare_output_dir,
    read_jsonl,
    remove_stale_temporaries,
    repair_jsonl_tail,
    write_text_atomic,
)

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "METRICS_NAME", "prepare_run_dir", "write_config",
           "remove_stale_files",
           "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "MetricsLog"]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"


def prepare_run_dir(path) -> Path:
    """Create the run directory and check that files can be created in it (before training);
    :class:`~cina.outputs.OutputError` names the directory and the reason otherwise."""
    return prepare_output_dir(path, "run directory", "(--out)")


def remove_stale_files(run_dir: Path) -> None:
    """Temporary files of a run killed while it wrote its checkpoint, config or validation
    cache (rank 0, before writing anything)."""
    remove_stale_temporaries(run_dir, (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME,
                                       "val_exact.npz"))


# --- RNG states as tensors and plain values ---------------------------------------------------
def rng_state() -> dict:
    """The torch, NumPy (legacy global) and Python RNG states, as tensors and plain values
    (what ``torch.load(weights_only=True)`` reads back)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version),
                   "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()),
                     p["gauss_next"]))


# --- checkpoints ------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a kill -9 leaves either the old or the new checkpoint
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a run checkpoint without unpickling arbitrary objects (``weights_only=True``).

    Raises :class:`~cina.errors.CheckpointError` for a file that holds anything but tensors
    and plain values (a crafted pickle, or a checkpoint of a cina version that stored NumPy
    objects; no code from it is run), a corrupt file, or one without the expected entries.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {str(path)!r} was refused: it holds objects other than tensors and "
            f"plain values ({first[-1] if first else 'unsafe pickle'}); nothing in it was run. "
            "It was not written by this version of cina: delete it, or train into another "
            "--out directory") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'corrupt'}); delete "
            "it to start the run again, or train into another --out directory") from None
    required = ("model", "optimizer", "scheduler", "step", "rng", "config")
    if not isinstance(state, dict) or any(k not in state for k in required):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is not a cina pretraining checkpoint "
                              f"(expected the entries {list(required)}; found {have})")
    return state


# --- the metrics log --------------------------------------------------------------------------
class MetricsLog:
    """``metrics.jsonl`` of a run (records written by rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / METRICS_NAME
        self.enabled = enabled

    def append(self, record: dict) -> None:
        if self.enabled:
            append_line(self.path, json.dumps(record))

    def reset(self) -> None:
        """A fresh start: drop the records of an attempt that died before its first
        checkpoint (their steps will be trained again)."""
        if self.enabled and self.path.exists():
            write_text_atomic(self.path, "")

    def keep_until(self, step: int) -> None:
        """On resume from the checkpoint of ``step``: keep the records up to ``step`` (later
        ones will be logged again) and drop a line cut by a kill, with a warning."""
        if not self.enabled or not self.path.exists():
            return
        torn = repair_jsonl_tail(self.path)
        if torn:
            warnings.warn(f"{self.path}: dropped a line cut by an interrupted write "
                          f"({len(torn)} bytes)", stacklevel=2)
        records, _ = read_jsonl(self.path)
        keep = [r for r in records if r.get("step", 0) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def records(self) -> list[dict]:
        return read_jsonl(self.path)[0]


def write_config(run_dir: Path, config: dict) -> None:
    write_text_atomic(Path(run_dir) / CONFIG_NAME, json.dumps(config, indent=1))
