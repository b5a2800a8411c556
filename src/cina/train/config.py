"""Pretraining configuration: a TOML file read into dataclasses (nanoGPT style, flat sections).

Sections: ``[model]`` (:class:`cina.model.balancer.ZeroShotConfig`), ``[data]``, ``[optim]``,
``[run]``. Every key is checked when the file is read, so that a typo or a wrong value never
reaches the training loop: unknown sections and keys are errors (a typo never silently falls
back to a default), every value must have its field's type (an integer where an integer is
expected, ``[lo, hi]`` pairs as two-element lists) and lie in its range
(:data:`RULES`), and pairs must be ordered (``lo <= hi``). Errors are
:class:`~cina.errors.CInAValidationError` messages naming the key, what it expects and what
it received.
"""

from __future__ import annotations

import math
import tomllib
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import CInAValidationError
from ..model.balancer import ZeroShotConfig

__all__ = ["DataConfig", "OptimConfig", "RunConfig", "PretrainConfig", "load_config",
           "config_from_dict", "validate_config", "DTYPES", "GENERATORS", "RULES"]

DTYPES = ("float32", "float64")
"""Training dtypes: float16/bfloat16 would overflow the kernel's exponentials."""

GENERATORS = ("scm", "gaussian")


@dataclass
class DataConfig:
    generator: str = "scm"  # "scm" (cina.datasets.synthetic default prior) or "gaussian" (tests)
    seed: int = 0  # stream seed of the training datasets
    n_range: tuple[int, int] = (100, 2000)
    d_range: tuple[int, int] = (1, 50)
    lam_rel_range: tuple[float, float] = (0.01, 3.0)  # sampled log-uniformly
    problem_probs: tuple[float, float, float] = (0.5, 0.2, 0.3)  # target-ate, target-att, mutual
    bandwidth_jitter_prob: float = 0.25  # share of datasets whose median bandwidth is rescaled
    bandwidth_jitter_range: tuple[float, float] = (0.2, 2.0)  # log-uniform factor
    max_cells_per_microbatch: int = 4_000_000  # B * N_max^2 budget of one dense forward
    val_seed: int = 10_000  # stream seed of the held-out validation datasets
    val_n: int = 32
    val_n_range: tuple[int, int] = (100, 700)


@dataclass
class OptimConfig:
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 50
    max_steps: int = 1000
    time_budget_s: float = 0.0  # > 0: the cosine schedule also ends when this much time is used
    batch_size: int = 16  # datasets per optimiser step, all ranks together
    grad_clip: float = 1.0
    trace_weight: float = 0.2  # weight of the mean log-objective after intermediate steps
    supervised_weight: float = 0.0  # ZS-S term |tau_hat - tau| (off by default)
    # weight-tied steps unrolled after the trained ones in training, K ~ uniform on this range per
    # optimiser step (the same K on every rank): teaches the last step to be a good repeated
    # step, as inference uses it. (0, 0) = none (how zeroshot-v1 was trained)
    train_extra_steps: tuple[int, int] = (0, 0)


@dataclass
class RunConfig:
    name: str = "zeroshot"
    out_dir: str = "runs/zeroshot"
    ckpt_every: int = 50
    val_every: int = 100  # 0: no validation
    log_every: int = 10
    threads: int = 1
    dtype: str = "float32"
    seed: int = 0  # torch seed of the initialisation
    # fine-tuning: start from these weights (a safetensors model file as shipped, e.g.
    # "src/cina/weights/zeroshot-v1.safetensors"); its model config must equal [model]'s
    # architecture. Empty: random initialisation
    init_from: str = ""


@dataclass
class PretrainConfig:
    model: ZeroShotConfig = field(default_factory=ZeroShotConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)


SECTIONS: dict[str, type] = {"model": ZeroShotConfig, "data": DataConfig, "optim": OptimConfig,
                             "run": RunConfig}

# --- ranges ----------------------------------------------------------------------------------
# (section, key) -> (lower bound, upper bound, lower bound inclusive); None: unbounded.
# Pairs ("..._range") apply the bounds to both ends and require lo <= hi.
_Bound = tuple[float | None, float | None, bool]
RULES: dict[tuple[str, str], _Bound] = {
    ("model", "hidden"): (1, None, True),
    ("model", "n_encoder_layers"): (0, None, True),
    ("model", "step_hidden"): (1, None, True),
    ("model", "n_steps"): (1, None, True),
    ("model", "dense_max_bytes"): (0, None, True),
    ("model", "extra_steps"): (0, None, True),
    ("model", "extra_tol"): (0, None, True),
    ("model", "chunk_size"): (1, None, True),
    ("model", "train_n_range"): (1, None, True),
    ("model", "train_d_range"): (1, None, True),
    ("model", "train_lam_rel_range"): (0, None, False),
    ("data", "seed"): (0, None, True),
    ("data", "n_range"): (10, None, True),  # both arms need units; the generators keep >= 5 each
    ("data", "d_range"): (1, None, True),
    ("data", "lam_rel_range"): (0, None, False),
    ("data", "problem_probs"): (0, None, True),
    ("data", "bandwidth_jitter_prob"): (0, 1, True),
    ("data", "bandwidth_jitter_range"): (0, None, False),
    ("data", "max_cells_per_microbatch"): (1, None, True),
    ("data", "val_seed"): (0, None, True),
    ("data", "val_n"): (1, None, True),
    ("data", "val_n_range"): (10, None, True),
    ("optim", "lr"): (0, None, False),
    ("optim", "min_lr_ratio"): (0, 1, True),
    ("optim", "weight_decay"): (0, None, True),
    ("optim", "betas"): (0, 1, True),
    ("optim", "warmup_steps"): (0, None, True),
    ("optim", "max_steps"): (1, None, True),
    ("optim", "time_budget_s"): (0, None, True),
    ("optim", "batch_size"): (1, None, True),
    ("optim", "grad_clip"): (0, None, False),
    ("optim", "trace_weight"): (0, None, True),
    ("optim", "supervised_weight"): (0, None, True),
    ("optim", "train_extra_steps"): (0, None, True),
    ("run", "ckpt_every"): (1, None, True),
    ("run", "val_every"): (0, None, True),
    ("run", "log_every"): (1, None, True),
    ("run", "threads"): (1, None, True),
    ("run", "seed"): (0, None, True),
}

_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("data", "generator"): GENERATORS,
    ("run", "dtype"): DTYPES,
}


def _fail(where: str, expected: str, value) -> CInAValidationError:
    return CInAValidationError(
        f"pretraining config: {where} must be {expected}; received {value!r} "
        f"({type(value).__name__})")


def _bound_text(bound: _Bound, kind: str) -> str:
    lo, hi, inclusive = bound
    parts = []
    if lo is not None:
        parts.append(f"{'>=' if inclusive else '>'} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    return f"{kind} {' and '.join(parts)}" if parts else kind


def _scalar(where: str, kind: type, value, bound: _Bound | None):
    """Check one scalar of type ``kind`` (int, float, str, bool) and its range."""
    name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]
    if kind is bool:
        if not isinstance(value, bool):
            raise _fail(where, name, value)
        return value
    if kind is str:
        if not isinstance(value, str):
            raise _fail(where, name, value)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, _bound_text(bound, name) if bound else name, value)
    if kind is int and not isinstance(value, int):
        raise _fail(where, _bound_text(bound, name) if bound else name, value)
    if not math.isfinite(value):
        raise _fail(where, "a finite number", value)
    if bound is not None:
        lo, hi, inclusive = bound
        if (lo is not None and (value < lo if inclusive else value <= lo)) or \
                (hi is not None and value > hi):
            raise _fail(where, _bound_text(bound, name), value)
    return float(value) if kind is float else value


def _check_value(section: str, key: str, hint, value):
    where = f"[{section}] {key}"
    bound = RULES.get((section, key))
    if typing.get_origin(hint) is tuple:
        kinds = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(kinds):
            inner = ", ".join("an integer" if k is int else "a number" for k in kinds)
            raise _fail(where, f"a list of {len(kinds)} values [{inner}]", value)
        items = tuple(_scalar(f"{where}[{i}]", k, v, bound)
                      for i, (k, v) in enumerate(zip(kinds, value, strict=True)))
        if key.endswith("_range") or key == "train_extra_steps":
            if items[0] > items[1]:
                raise _fail(where, "an ordered pair [lo, hi] with lo <= hi", list(value))
        if key == "problem_probs" and sum(items) <= 0:
            raise _fail(where, "three non-negative probabilities with a positive sum",
                        list(value))
        return items
    value = _scalar(where, hint, value, bound)
    choices = _CHOICES.get((section, key))
    if choices is not None and value not in choices:
        raise _fail(where, f"one of {', '.join(repr(c) for c in choices)}", value)
    return value


def _build(cls, section: dict, name: str):
    if not isinstance(section, dict):
        raise CInAValidationError(
            f"pretraining config: [{name}] must be a table of keys; received {section!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise CInAValidationError(
            f"pretraining config: unknown key(s) {unknown} in [{name}]; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kw = {k: _check_value(name, k, hints[k], v) for k, v in section.items()}
    return cls(**kw)


def validate_config(cfg: PretrainConfig) -> PretrainConfig:
    """Check every field of a config built in Python (the same rules as a TOML file)."""
    return config_from_dict(cfg.to_dict())


def config_from_dict(d: dict) -> PretrainConfig:
    if not isinstance(d, dict):
        raise CInAValidationError(f"pretraining config must be a table; received {d!r}")
    unknown = sorted(set(d) - set(SECTIONS))
    if unknown:
        raise CInAValidationError(
            f"pretraining config: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    built: dict[str, object] = {name: _build(cls, d.get(name, {}), name)
                                for name, cls in SECTIONS.items()}
    return PretrainConfig(**built)


def load_config(path: str | Path) -> PretrainConfig:
    """Read and check a TOML pretraining config (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise CInAValidationError(f"pretraining config {str(path)!r} not found"
                                  + (" (it is a directory)" if path.is_dir() else ""))
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CInAValidationError(
            f"pretraining config {str(path)!r} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CInAValidationError(
            f"pretraining config {str(path)!r} cannot be read: {exc}") from None
    return config_from_dict(raw)


# --- comparing the config of a run with the one given on resume -----------------------------
def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, (list, tuple)) else v
    return out


def config_differences(run: dict, given: dict,
                       ignore: Callable[[str], bool] = lambda key: key == "run.out_dir"
                       ) -> list[tuple[str, object, object]]:
    """``(key, value in the run, value given)`` for every setting that differs (``ignore``:
    keys that may differ, by default the run directory itself)."""
    a, b = _flatten(run), _flatten(given)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if not ignore(k) and a.get(k) != b.get(k)]
