"""Save and load the zero-shot model as safetensors, and the shipped pretrained model.

File layout: the model's ``state_dict`` tensors plus a metadata header of JSON strings:
``format`` ("cina-zeroshot"), ``format_version``, ``cina_version``, ``model_version``,
``config`` (:class:`~cina.model.balancer.ZeroShotConfig`), ``training_data`` (what the model was
trained on: prior, ranges, number of datasets, recipe) and ``metrics`` (validation metrics of
the final checkpoint).

:func:`load_pretrained` loads ``cina/weights/zeroshot-v2.safetensors`` (package data), verifies its
sha256 against :data:`PINNED_SHA256` and caches the model. Nothing here ever touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import torch

from ..errors import CheckpointError
from .balancer import ZeroShotBalancer, ZeroShotConfig

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_VERSION", "PINNED_SHA256", "pretrained_path",
           "sha256_file", "save_model", "load_model", "load_pretrained", "read_metadata"]

FORMAT = "cina-zeroshot"
FORMAT_VERSION = 1
MODEL_VERSION = "zeroshot-v2"
#: sha256 of the shipped ``cina/weights/zeroshot-v2.safetensors``.
PINNED_SHA256 = "0ac00df2ae87d823d4090381279837795849d18d10b88e783291867a76455f16"

_CACHE: dict = {}
_LOCK = threading.Lock()


def pretrained_path() -> Path:
    return Path(__file__).resolve().parent.parent / "weights" / f"{MODEL_VERSION}.safetensors"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(model: ZeroShotBalancer, path: str | Path, *, training_data: dict | None = None,
               metrics: dict | None = None, model_version: str = MODEL_VERSION) -> str:
    """Write ``model`` (float32) with its metadata; returns the file's sha256."""
    from safetensors.torch import save_file

    from .._version import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "cina_version": __version__,
        "model_version": model_version,
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "training_data": json.dumps(training_data or {}, sort_keys=True, default=str),
        "metrics": json.dumps(metrics or {}, sort_keys=True, default=str),
    }
    save_file(tensors, str(path), metadata=meta)
    os.chmod(path, 0o644)  # package data: readable by everyone
    return sha256_file(path)


def read_metadata(path: str | Path) -> dict:
    """The metadata header, JSON fields decoded."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read model file {str(path)!r}: {exc}") from exc
    out = dict(raw)
    for k in ("config", "training_data", "metrics"):
        if k in out:
            try:
                out[k] = json.loads(out[k])
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"model file {str(path)!r}: metadata field {k!r} is not "
                                      "valid JSON") from exc
    return out


def load_model(path: str | Path, *, expected_sha256: str | None = None
               ) -> tuple[ZeroShotBalancer, dict]:
    """Load a model file (eval mode, float32); checks the sha256 when given, the format, the
    format version and that the tensors match the config exactly."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {str(path)!r} not found")
    if expected_sha256 is not None:
        got = sha256_file(path)
        if got != expected_sha256:
            raise CheckpointError(
                f"model file {str(path)!r} has sha256 {got}, expected {expected_sha256}: the file "
                "is corrupted or was replaced; reinstall cina to restore the shipped model")
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a cina zero-shot model file "
                              f"(format {meta.get('format')!r})")
    try:
        version = int(meta.get("format_version", "-1"))
    except ValueError:
        version = -1
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} has format version {meta.get('format_version')!r}; "
                              f"this cina reads version {FORMAT_VERSION}")
    try:
        config = ZeroShotConfig.from_dict(meta["config"])
        model = ZeroShotBalancer(config)
        model.load_state_dict(load_file(str(path)), strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"model file {str(path)!r} does not match the model code: {exc}"
                              ) from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, meta


def is_pretrained_loaded() -> bool:
    """Whether :func:`load_pretrained` has already loaded (and cached) the shipped model."""
    return "model" in _CACHE


def load_pretrained() -> tuple[ZeroShotBalancer, dict]:
    """The shipped model (cached after the first call), sha256-verified."""
    with _LOCK:
        if "model" not in _CACHE:
            path = pretrained_path()
            if not path.is_file():
                raise CheckpointError(
                    f"the pretrained zero-shot model is missing ({str(path)!r}); the package "
                    "data was not installed. Reinstall cina, or train one with "
                    "`cina pretrain --config configs/zeroshot-v2-finetune.toml`")
            _CACHE["model"] = load_model(path, expected_sha256=PINNED_SHA256)
        return _CACHE["model"]
