"""Pretraining configuration: a TOML file read into dataclasses (nanoGPT style, flat sections).

Sections: ``[model]`` (:class:`cina.model.zeroshot.ZeroShotConfig`), ``[data]``, ``[optim]``,
``[run]``. Unknown keys are an error so that a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import CInAValidationError
from ..model.zeroshot import ZeroShotConfig

__all__ = ["DataConfig", "OptimConfig", "RunConfig", "PretrainConfig", "load_config"]


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
    val_every: int = 100
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


def _build(cls, section: dict, name: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise CInAValidationError(
            f"unknown key(s) {unknown} in [{name}] of the pretraining config; known: {sorted(known)}")
    kw = {}
    for k, v in section.items():
        kw[k] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


def config_from_dict(d: dict) -> PretrainConfig:
    unknown = sorted(set(d) - {"model", "data", "optim", "run"})
    if unknown:
        raise CInAValidationError(f"unknown section(s) {unknown} in the pretraining config")
    return PretrainConfig(model=_build(ZeroShotConfig, d.get("model", {}), "model"),
                          data=_build(DataConfig, d.get("data", {}), "data"),
                          optim=_build(OptimConfig, d.get("optim", {}), "optim"),
                          run=_build(RunConfig, d.get("run", {}), "run"))


def load_config(path: str | Path) -> PretrainConfig:
    path = Path(path)
    if not path.is_file():
        raise CInAValidationError(f"pretraining config {str(path)!r} not found")
    with path.open("rb") as fh:
        return config_from_dict(tomllib.load(fh))
