"""Pretraining of the zero-shot balancing model (the amortised solver of docs/zeroshot.md).

``cina pretrain --config configs/zeroshot-v1.toml [--out DIR] [--resume] [--export FILE]``
(:func:`train_and_export`); data-parallel with
``torchrun --nproc_per_node=K -m cina pretrain --config CONFIG`` (gloo on CPU, nccl on GPU).

* Loss per dataset: log(objective(alpha) / lam) of its balancing QP at the predicted weights (its
  minimum is the exact optimum), plus ``trace_weight`` times the mean of the same after each
  intermediate refinement step, plus the optional ZS-S term ``supervised_weight * |tau_hat - tau|``.
  The paper's attention-primal loss is not used: it does not pin the weights down, and the QP
  objective is the quantity it is a dual of (docs/zeroshot.md, "Loss and recipe").
* Optimiser AdamW, linear warmup then cosine decay to ``min_lr_ratio * lr``, gradient clipping.
* Data: global step ``s`` consumes datasets ``s*B .. s*B+B-1`` of the stream (``B`` the batch
  size over all ranks); rank ``r`` of ``W`` takes ``s*B + r, s*B + r + W, ...`` Each rank's loss is
  its sum over datasets divided by ``B`` and gradients are all-reduced by summation, so ``W``
  processes compute the same update as one process with the whole batch.
* Checkpoints (rank 0, atomic rename) every ``ckpt_every`` steps: model, optimiser, scheduler,
  RNG states, step and data-stream position, as tensors and plain values read back with
  ``weights_only=True`` (:mod:`cina.train.run_dir`). Re-running the same command resumes from
  it and reproduces the uninterrupted run bit for bit; a config that differs from the run's is
  refused unless ``allow_config_change`` (the change is then logged).
* Validation every ``val_every`` steps on a fixed held-out set of synthetic datasets: QP gap
  against the exact optimum (:func:`cina.balancing.solve_balancing_weights`), Pearson correlation
  with the exact weights, effective sample size per arm as a fraction of the arm
  (``ess_frac_*``) and ATE error of the model vs the exact weights, written as JSON lines to
  ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..balancing.kernel import attention_kernel
from ..balancing.weights import balancing_objective, solve_balancing_weights
from ..errors import CheckpointError, CInAValidationError
from ..model.balancer import PROBLEMS, ZeroShotBalancer
from ..outputs import OutputSet
from ..rules import effective_sample_fraction, normalize_per_arm
from .config import PretrainConfig, config_differences, load_config, validate_config
from .data import Problem, collate, make_problem, microbatches
from .run_dir import (
    CHECKPOINT_NAME,
    MetricsLog,
    load_checkpoint,
    prepare_run_dir,
    remove_stale_files,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_config,
)

__all__ = ["pretrain", "export_model", "train_and_export", "evaluate_problems", "summarise",
           "CHECKPOINT_NAME"]

_CRASH_ENV = "CINA_PRETRAIN_KILL_AT_STEP"  # test hook: SIGKILL this process after that step


# ----------------------------------------------------------------------------------------------
# distributed helpers
# ----------------------------------------------------------------------------------------------

def _dist_setup() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                rank=rank, world_size=world)
    return rank, world, device


def _allreduce_grads(model: torch.nn.Module, world: int) -> None:
    if world <= 1:
        return
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


# ----------------------------------------------------------------------------------------------
# loss and evaluation
# ----------------------------------------------------------------------------------------------

def batch_loss(model: ZeroShotBalancer, batch: dict, cfg: PretrainConfig,
               device: torch.device, extra_steps: int = 0) -> tuple[torch.Tensor, dict]:
    """Sum over the batch's datasets of the per-dataset loss (B,) and diagnostics;
    ``extra_steps`` weight-tied steps are unrolled after the trained ones."""
    b = {k: v.to(device) for k, v in batch.items()}
    out = model(b["z"], b["t"], b["mask"], b["bandwidth"], b["lam"], b["problem"],
                return_trace=True, extra_steps=extra_steps or None)
    lam = b["lam"]
    final = torch.log(out["objective"].clamp_min(1e-30) / lam)
    per = final
    if cfg.optim.trace_weight > 0 and len(out["trace"]) > 1:
        inter = torch.stack([torch.log(o.clamp_min(1e-30) / lam) for o in out["trace"][:-1]])
        per = per + cfg.optim.trace_weight * inter.mean(0)
    if cfg.optim.supervised_weight > 0:
        w = 2 * b["t"] - 1
        tau_hat = (out["alpha"] * w * b["y"]).sum(1)
        per = per + cfg.optim.supervised_weight * (tau_hat - b["tau"]).abs()
    return per.sum(), {"log_obj": float(final.detach().sum())}


def exact_solution(p: Problem) -> dict:
    """Exact weights and objective of a problem (float64 kernel)."""
    balance, estimand = PROBLEMS[p.problem]
    K = attention_kernel(p.Z, p.bandwidth)
    sol = solve_balancing_weights(K, p.t, p.lam_rel, balance=balance, estimand=estimand)
    return {"alpha": sol.alpha, "objective": sol.objective}


@torch.inference_mode()
def predict_problem(model: ZeroShotBalancer, p: Problem, device=None,
                    dtype=torch.float32) -> np.ndarray:
    batch = collate([p], dtype=dtype)
    device = device or torch.device("cpu")
    b = {k: v.to(device) for k, v in batch.items()}
    out = model(b["z"], b["t"], b["mask"], b["bandwidth"], b["lam"], b["problem"])
    return normalize_per_arm(out["alpha"][0].double().cpu().numpy(), p.t, in_place=True)


def evaluate_problems(model: ZeroShotBalancer, problems: list[Problem],
                      exact: list[dict] | None = None) -> list[dict]:
    """Per-dataset metrics of the model against the exact optimum."""
    was_training = model.training
    model.eval()
    dtype = next(model.parameters()).dtype
    recs = []
    for i, p in enumerate(problems):
        ex = exact[i] if exact is not None else exact_solution(p)
        alpha = predict_problem(model, p, dtype=dtype)
        balance, estimand = PROBLEMS[p.problem]
        K = attention_kernel(p.Z, p.bandwidth)
        obj, _ = balancing_objective(K, p.t, alpha, p.lam_rel, balance, estimand)
        free = np.ones(len(p.t), bool) if p.problem != 1 else p.t == 0
        a, e = alpha[free], ex["alpha"][free]
        corr = float(np.corrcoef(a, e)[0, 1]) if a.std() > 0 and e.std() > 0 else float("nan")
        w = 2 * p.t - 1
        rec = {"index": p.index, "n": len(p.t), "d": p.Z.shape[1], "problem": p.problem,
               "lam_rel": p.lam_rel, "qp_gap": obj / ex["objective"] - 1.0, "corr": corr}
        for arm, name in ((1, "treated"), (0, "control")):  # Kish's ESS / arm size
            sel = p.t == arm
            rec[f"ess_frac_{name}"] = effective_sample_fraction(alpha[sel])
            rec[f"ess_frac_{name}_exact"] = effective_sample_fraction(ex["alpha"][sel])
        rec["ate_err"] = abs(float(np.sum(alpha * w * p.y)) - p.tau)
        rec["ate_err_exact"] = abs(float(np.sum(ex["alpha"] * w * p.y)) - p.tau)
        recs.append(rec)
    model.train(was_training)
    return recs


def summarise(recs: list[dict]) -> dict:
    def arr(k):
        return np.array([r[k] for r in recs], float)

    corr = arr("corr")
    corr = corr[np.isfinite(corr)]
    gap = arr("qp_gap")
    return {
        "n_datasets": len(recs),
        "qp_gap_median": float(np.median(gap)),
        "qp_gap_p90": float(np.quantile(gap, 0.9)),
        "corr_median": float(np.median(corr)) if corr.size else float("nan"),
        "corr_p10": float(np.quantile(corr, 0.1)) if corr.size else float("nan"),
        "ess_frac_treated_median": float(np.median(arr("ess_frac_treated"))),
        "ess_frac_control_median": float(np.median(arr("ess_frac_control"))),
        "ess_frac_treated_exact_median": float(np.median(arr("ess_frac_treated_exact"))),
        "ess_frac_control_exact_median": float(np.median(arr("ess_frac_control_exact"))),
        "ate_mae": float(np.mean(arr("ate_err"))),
        "ate_mae_exact": float(np.mean(arr("ate_err_exact"))),
    }


def _validation_set(cfg: PretrainConfig, run_dir: Path) -> tuple[list[Problem], list[dict]]:
    """The held-out problems and their exact solutions (cached in ``val_exact.npz``, keyed by
    the data config that defines them, so a stale cache of another config is recomputed)."""
    dcfg = cfg.data
    probs = [make_problem(dcfg.val_seed, k, dcfg, n_range=dcfg.val_n_range)
             for k in range(dcfg.val_n)]
    key = json.dumps(cfg.to_dict()["data"], sort_keys=True)
    cache = run_dir / "val_exact.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key and len(z.files) == 2 * len(probs) + 1:
                    return probs, [{"alpha": z[f"a{i}"], "objective": float(z[f"o{i}"])}
                                   for i in range(len(probs))]
        except (OSError, ValueError, KeyError):
            pass  # unreadable or another config's: recomputed below
    exact = [exact_solution(p) for p in probs]
    arrays = {f"a{i}": e["alpha"] for i, e in enumerate(exact)}
    arrays.update({f"o{i}": np.array(e["objective"]) for i, e in enumerate(exact)})
    out = OutputSet()
    out.declare("val_exact.npz", cache)
    out.commit({"val_exact.npz": lambda tmp: _savez(tmp, key=np.array(key), **arrays)})
    return probs, exact


def _savez(path: str, **arrays) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, **arrays)


# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------

class WarmupCosine:
    """Linear warmup over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr``.

    Progress of the cosine part is the larger of the step fraction and, when
    ``optim.time_budget_s > 0``, the fraction of the wall-time budget used (so a run on a busy
    machine still ends with a decayed learning rate); training stops when it reaches 1.
    """

    def __init__(self, opt: torch.optim.Optimizer, cfg: PretrainConfig):
        self.opt = opt
        self.o = cfg.optim
        self.base_lr = cfg.optim.lr
        self.progress = 0.0
        self.factor = 1.0 / max(1, self.o.warmup_steps)
        self._apply()

    def update(self, step: int, elapsed_s: float) -> None:
        """Set the learning rate for the next step (``step`` finished steps so far)."""
        o = self.o
        p_steps = (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps)
        p_time = elapsed_s / o.time_budget_s if o.time_budget_s > 0 else 0.0
        self.progress = min(1.0, max(p_steps, p_time, 0.0))
        if step < o.warmup_steps and self.progress < 1.0:
            self.factor = (step + 1) / max(1, o.warmup_steps)
        else:
            self.factor = o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * self.progress))
        self._apply()

    @property
    def done(self) -> bool:
        return self.progress >= 1.0

    def _apply(self) -> None:
        for g in self.opt.param_groups:
            g["lr"] = self.base_lr * self.factor

    def get_last_lr(self) -> list[float]:
        return [self.base_lr * self.factor]

    def state_dict(self) -> dict:
        return {"progress": self.progress, "factor": self.factor}

    def load_state_dict(self, state: dict) -> None:
        self.progress = float(state["progress"])
        self.factor = float(state["factor"])
        self._apply()


def _checkpoint_state(model, opt, sched, step: int, cfg: PretrainConfig, extra: dict) -> dict:
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "step": step,
        "datasets_consumed": step * cfg.optim.batch_size,
        "rng": rng_state(), "config": cfg.to_dict(), **extra,
    }


def _init_from(model: ZeroShotBalancer, cfg: PretrainConfig) -> None:
    """Fine-tuning: copy the weights of a shipped-format model file into ``model``."""
    from ..errors import CheckpointError
    from ..model.checkpoint import load_model

    src, _ = load_model(cfg.run.init_from)
    arch = ("hidden", "n_encoder_layers", "step_hidden", "n_steps")
    mismatch = [k for k in arch if getattr(src.config, k) != getattr(cfg.model, k)]
    if mismatch:
        raise CheckpointError(
            f"init_from {cfg.run.init_from!r} has another architecture ("
            + ", ".join(f"{k}={getattr(src.config, k)} vs {getattr(cfg.model, k)}"
                        for k in mismatch) + "); [model] must match it")
    own = model.state_dict()
    model.load_state_dict({k: v.to(dtype=own[k].dtype) for k, v in src.state_dict().items()})


def _describe(changes: list[tuple[str, object, object]]) -> str:
    return "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in changes)


def _check_resumed_config(state: dict, cfg: PretrainConfig, ckpt_path: Path,
                          allow_change: bool) -> list[tuple[str, object, object]]:
    """The differences between the run's config and ``cfg``: none allowed unless
    ``allow_change``, and never in [model] (the checkpoint's weights have its architecture)."""
    changes = config_differences(state["config"], cfg.to_dict())
    arch = [c for c in changes if c[0].startswith("model.")]
    if arch:
        raise CInAValidationError(
            f"the config's [model] differs from the run's in {str(ckpt_path.parent)!r} "
            f"({_describe(arch)}); a checkpoint cannot change its architecture: train into "
            "another --out directory")
    if changes and not allow_change:
        raise CInAValidationError(
            f"the config differs from the run's in {str(ckpt_path.parent)!r} (checkpoint at step "
            f"{int(state['step'])}): {_describe(changes)}. Resume with the run's config, train "
            "into another --out directory, or pass --allow-config-change "
            "(allow_config_change=True) to continue with the new settings")
    return changes


# ----------------------------------------------------------------------------------------------
# the training loop
# ----------------------------------------------------------------------------------------------

def _resolve_config(config, out_dir) -> PretrainConfig:
    cfg = validate_config(config) if isinstance(config, PretrainConfig) else load_config(config)
    if out_dir is not None:
        cfg = replace(cfg, run=replace(cfg.run, out_dir=os.fspath(out_dir)))
    if cfg.run.init_from and not Path(cfg.run.init_from).is_file():
        raise CInAValidationError(
            f"pretraining config: [run] init_from {cfg.run.init_from!r} is not a file (a model "
            "file as shipped, e.g. src/cina/weights/zeroshot-v1.safetensors)")
    return cfg


def pretrain(config: str | Path | PretrainConfig, out_dir: str | Path | None = None,
             resume: bool | None = None, max_steps: int | None = None, *,
             allow_config_change: bool = False) -> Path:
    """Train (or resume) the zero-shot model; returns the run directory.

    ``resume``: None resumes when the run directory holds a checkpoint and starts fresh otherwise;
    True requires a checkpoint; False refuses to overwrite one. A resumed run must be given the
    run's own config (``out_dir`` aside) unless ``allow_config_change``; [model] never changes.
    ``max_steps`` stops early (tests; the schedule still follows the config).

    Raises :class:`~cina.errors.CInAValidationError` (an invalid config, a config that differs
    from the run's, ``resume=True`` without a checkpoint, ``resume=False`` with one, an
    unwritable run directory) before any training, and
    :class:`~cina.errors.CheckpointError` for a checkpoint that is corrupt or not safe to load.
    """
    cfg = _resolve_config(config, out_dir)
    rank, world, device = _dist_setup()
    if cfg.optim.batch_size % world:
        raise CInAValidationError(
            f"pretraining config: [optim] batch_size {cfg.optim.batch_size} must be divisible by "
            f"the number of processes ({world})")
    run_dir = prepare_run_dir(cfg.run.out_dir)
    if rank == 0:
        remove_stale_files(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    metrics = MetricsLog(run_dir, enabled=rank == 0)
    torch.set_num_threads(cfg.run.threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.run.dtype]

    state = None
    changes: list = []
    if ckpt_path.exists():
        if resume is False:
            raise CInAValidationError(
                f"{str(ckpt_path)!r} exists; resume it (resume=True, --resume) or train into "
                "another --out directory")
        state = load_checkpoint(ckpt_path, map_location=device)
        changes = _check_resumed_config(state, cfg, ckpt_path, allow_config_change)
    elif resume is True:
        raise CInAValidationError(
            f"--resume given but the run directory {str(run_dir)!r} has no checkpoint "
            f"({CHECKPOINT_NAME}); leave out --resume to start the run")

    torch.manual_seed(cfg.run.seed)
    model = ZeroShotBalancer(cfg.model).to(device=device, dtype=dtype)
    if cfg.run.init_from:
        _init_from(model, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                            weight_decay=cfg.optim.weight_decay)
    sched = WarmupCosine(opt, cfg)
    step = 0
    elapsed = 0.0
    n_skipped = 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {str(ckpt_path)!r} does not match the model or "
                                  f"the optimiser ({exc})") from None
        step = int(state["step"])
        elapsed = float(state.get("elapsed_s", 0.0))
        n_skipped = int(state.get("skipped_steps", 0))
        if changes:  # the optimiser's and the schedule's settings follow the new config
            for g in opt.param_groups:
                g["betas"] = tuple(cfg.optim.betas)
                g["weight_decay"] = cfg.optim.weight_decay
            sched.update(step, elapsed)
        if rank == 0:
            metrics.keep_until(step)
            if changes:
                metrics.append({"kind": "config_change", "step": step,
                                "changes": [{"key": k, "run": a, "now": b}
                                            for k, a, b in changes]})
            print(f"resumed from {ckpt_path} at step {step}", file=sys.stderr)
    elif rank == 0:
        metrics.reset()  # records of an attempt killed before its first checkpoint
    if rank == 0:
        write_config(run_dir, cfg.to_dict())

    val = None
    if rank == 0 and cfg.run.val_every > 0:
        val = _validation_set(cfg, run_dir)

    def validate() -> None:
        if val is None:
            return
        summ = summarise(evaluate_problems(model, *val))
        metrics.append({"kind": "val", "step": step, **summ})

    last_step = cfg.optim.max_steps if max_steps is None else min(max_steps, cfg.optim.max_steps)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.optim.max_steps, initial=step, disable=rank != 0 or not sys.stderr.isatty(),
               desc="pretrain")
    B = cfg.optim.batch_size
    t_start = time.perf_counter() - elapsed
    model.train()
    while step < last_step and not sched.done:
        lo, hi = cfg.optim.train_extra_steps
        # a pure function of (seed, step): identical on every rank and after a resume
        k_extra = int(np.random.default_rng([cfg.run.seed, step]).integers(lo, hi + 1))
        idx = [step * B + rank + j * world for j in range(B // world)]
        probs = [make_problem(cfg.data.seed, k, cfg.data) for k in idx]
        opt.zero_grad(set_to_none=False)
        tot = 0.0
        for group in microbatches(probs, cfg.data.max_cells_per_microbatch):
            loss, info = batch_loss(model, collate(group, dtype=dtype), cfg, device,
                                    extra_steps=k_extra)
            (loss / B).backward()
            tot += info["log_obj"]
        _allreduce_grads(model, world)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        skipped = not bool(torch.isfinite(gnorm))  # identical on every rank (all-reduced grads)
        if skipped:  # one pathological batch must not poison the weights: drop its update
            opt.zero_grad(set_to_none=False)
            n_skipped += 1
        else:
            opt.step()
        step += 1
        elapsed_now = time.perf_counter() - t_start
        if world > 1:  # every rank must agree on the time-based schedule
            et = torch.tensor([elapsed_now], dtype=torch.float64)
            dist.broadcast(et, 0)
            elapsed_now = float(et)
        sched.update(step, elapsed_now)
        finished = step == last_step or sched.done
        bar.update(1)
        if world > 1:
            tt = torch.tensor([tot], dtype=torch.float64)
            dist.all_reduce(tt)
            tot = float(tt)
        if step % cfg.run.log_every == 0 or finished:
            metrics.append({"kind": "train", "step": step, "log_obj": tot / B,
                            "grad_norm": float(gnorm), "skipped_steps": n_skipped,
                            "lr": sched.get_last_lr()[0],
                            "elapsed_s": time.perf_counter() - t_start})
        if cfg.run.val_every > 0 and (step % cfg.run.val_every == 0
                                      or (finished and max_steps is None)):
            validate()
        if rank == 0 and (step % cfg.run.ckpt_every == 0 or finished):
            save_checkpoint(ckpt_path, _checkpoint_state(
                model, opt, sched, step, cfg, {"elapsed_s": time.perf_counter() - t_start,
                                               "skipped_steps": n_skipped}))
        if os.environ.get(_CRASH_ENV) == str(step):  # tests: a real SIGKILL mid-run
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    if world > 1:
        dist.barrier()
    return run_dir


def _training_data(state: dict, cfgd: dict) -> dict:
    data = dict(cfgd["data"])
    training_data = {
        "generator": data["generator"],
        "prior": "cina.datasets.synthetic.default_prior() with n_range/d_range from [data]"
                 if data["generator"] == "scm" else "built-in Gaussian/binary generator",
        "data_config": data,
        "datasets_seen": int(state["step"]) * int(cfgd["optim"]["batch_size"]),
        "steps": int(state["step"]),
        "real_covariates": "none (IHDP, Twins, LaLonde and ACIC are test suites)",
        "optim": cfgd["optim"],
        "train_seconds": float(state.get("elapsed_s", 0.0)),
    }
    init_from = cfgd.get("run", {}).get("init_from", "")
    if init_from:  # fine-tuned: say from what
        training_data["init_from"] = init_from
    return training_data


def export_model(run_dir: str | Path, out_path: str | Path,
                 model_version: str | None = None, *, outputs: OutputSet | None = None) -> str:
    """Write the shipped safetensors file from a run's checkpoint; returns its sha256.

    ``model_version`` defaults to the config's ``[run] name``. The file is written to a
    temporary file and renamed into place (``outputs``: an :class:`~cina.outputs.OutputSet`
    that already declared ``out_path``, as :func:`train_and_export` does before training).
    The checkpoint is read with ``weights_only=True`` (:func:`cina.train.run_dir.load_checkpoint`).
    """
    from ..model.balancer import ZeroShotConfig
    from ..model.checkpoint import save_model, sha256_file

    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT_NAME
    if outputs is None:
        outputs = OutputSet(inputs=[ckpt])
        outputs.declare("export", out_path)
    if not ckpt.exists():
        raise CInAValidationError(f"no checkpoint to export in {str(run_dir)!r}")
    state = load_checkpoint(ckpt)
    cfgd = state["config"]
    model = ZeroShotBalancer(ZeroShotConfig.from_dict(cfgd["model"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} does not match its config ({exc})") \
            from None
    vals = [r for r in MetricsLog(run_dir).records() if r.get("kind") == "val"]
    version = model_version or cfgd.get("run", {}).get("name") or "zeroshot"
    written = outputs.commit({outputs.labels[0]: lambda tmp: save_model(
        model, tmp, training_data=_training_data(state, cfgd),
        metrics=vals[-1] if vals else {}, model_version=version)})
    return sha256_file(written[0])


def train_and_export(config: str | Path, *, out_dir: str | Path | None = None,
                     resume: bool | None = None, export: str | Path | None = None,
                     allow_config_change: bool = False) -> dict:
    """``cina pretrain``: train (or resume) a run, then export its model when ``export`` is
    given (rank 0 only). The export path is checked before training (not the config, not the
    checkpoint, its directory writable). Returns ``{"run_dir", "sha256"}`` (sha256 None without
    an export)."""
    cfg = _resolve_config(config, out_dir)
    outputs = None
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if export is not None and rank0:
        run_dir = Path(cfg.run.out_dir)
        outputs = OutputSet(inputs=[config, run_dir / CHECKPOINT_NAME,
                                    cfg.run.init_from or None])
        outputs.declare("--export", export)
    run_dir = pretrain(cfg, resume=resume, allow_config_change=allow_config_change)
    sha = export_model(run_dir, export, outputs=outputs) if outputs is not None else None
    return {"run_dir": run_dir, "sha256": sha}
