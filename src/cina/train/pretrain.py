"""Pretraining of the zero-shot balancing model (Algorithm 2, METHOD sections 6 and 9).

``python -m cina.train.pretrain configs/zeroshot-v1.toml [--out DIR] [--resume]`` or
``cina pretrain --config configs/zeroshot-v1.toml``; data-parallel with
``torchrun --nproc_per_node=K -m cina.train.pretrain CONFIG`` (gloo on CPU, nccl on GPU).

* Loss per dataset: log(objective(alpha) / lam) of its balancing QP at the predicted weights (its
  minimum is the exact optimum), plus ``trace_weight`` times the mean of the same after each
  intermediate refinement step, plus the optional ZS-S term ``supervised_weight * |tau_hat - tau|``.
  The paper's attention-primal loss is omitted: METHOD section 9 item 1 shows it does not pin the
  weights down, and the QP objective is the quantity it is a dual of.
* Optimiser AdamW, linear warmup then cosine decay to ``min_lr_ratio * lr``, gradient clipping.
* Data: global step ``s`` consumes datasets ``s*B .. s*B+B-1`` of the stream (``B`` the batch
  size over all ranks); rank ``r`` of ``W`` takes ``s*B + r, s*B + r + W, ...`` Each rank's loss is
  its sum over datasets divided by ``B`` and gradients are all-reduced by summation, so ``W``
  processes compute the same update as one process with the whole batch.
* Checkpoints (rank 0, atomic rename) every ``ckpt_every`` steps: model, optimiser, scheduler,
  RNG states, step and data-stream position. Re-running the same command resumes from it (lines
  of ``metrics.jsonl`` logged after the checkpoint are dropped, so the log has no duplicates).
* Validation every ``val_every`` steps on a fixed held-out set of synthetic datasets: QP gap
  against the exact optimum (:func:`cina.balancing.solve_balancing_weights`), Pearson correlation
  with the exact weights, ESS per arm and ATE error of the model vs the exact weights, written as
  JSON lines to ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
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
from ..model.zeroshot import PROBLEMS, ZeroShotBalancer
from .config import PretrainConfig, load_config
from .data import Problem, collate, make_problem, microbatches

__all__ = ["pretrain", "export_model", "evaluate_problems", "summarise", "main",
           "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
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
    alpha = out["alpha"][0].double().cpu().numpy()
    for arm in (0, 1):
        sel = p.t == arm
        alpha[sel] /= alpha[sel].sum()
    return alpha


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
        for arm, name in ((1, "treated"), (0, "control")):
            sel = p.t == arm
            rec[f"ess_{name}"] = float(1.0 / np.sum(alpha[sel] ** 2) / sel.sum())
            rec[f"ess_{name}_exact"] = float(1.0 / np.sum(ex["alpha"][sel] ** 2) / sel.sum())
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
        "ess_treated_median": float(np.median(arr("ess_treated"))),
        "ess_control_median": float(np.median(arr("ess_control"))),
        "ess_treated_exact_median": float(np.median(arr("ess_treated_exact"))),
        "ess_control_exact_median": float(np.median(arr("ess_control_exact"))),
        "ate_mae": float(np.mean(arr("ate_err"))),
        "ate_mae_exact": float(np.mean(arr("ate_err_exact"))),
    }


def _validation_set(cfg: PretrainConfig, run_dir: Path) -> tuple[list[Problem], list[dict]]:
    dcfg = cfg.data
    probs = [make_problem(dcfg.val_seed, k, dcfg, n_range=dcfg.val_n_range)
             for k in range(dcfg.val_n)]
    cache = run_dir / "val_exact.npz"
    if cache.exists():
        z = np.load(cache)
        if len(z.files) == 2 * len(probs):
            return probs, [{"alpha": z[f"a{i}"], "objective": float(z[f"o{i}"])}
                           for i in range(len(probs))]
    exact = [exact_solution(p) for p in probs]
    tmp = run_dir / "val_exact.tmp.npz"
    np.savez(tmp, **{f"a{i}": e["alpha"] for i, e in enumerate(exact)},
             **{f"o{i}": np.array(e["objective"]) for i, e in enumerate(exact)})
    os.replace(tmp, cache)
    return probs, exact


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


def _save_checkpoint(path: Path, model, opt, sched, step: int, cfg: PretrainConfig,
                     extra: dict) -> None:
    state = {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "step": step,
        "datasets_consumed": step * cfg.optim.batch_size,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                "python": random.getstate()},
        "config": cfg.to_dict(), **extra,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill -9 leaves either the old or the new checkpoint


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


def _truncate_log(log_path: Path, step: int) -> None:
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    log_path.write_text("".join(s + "\n" for s in keep))


# ----------------------------------------------------------------------------------------------
# the training loop
# ----------------------------------------------------------------------------------------------

def pretrain(config: str | Path | PretrainConfig, out_dir: str | Path | None = None,
             resume: bool | None = None, max_steps: int | None = None) -> Path:
    """Train (or resume) the zero-shot model; returns the run directory.

    ``resume``: None resumes when the run directory holds a checkpoint and starts fresh otherwise;
    True requires a checkpoint; False refuses to overwrite one. ``max_steps`` stops early (tests;
    the schedule still follows the config).
    """
    cfg = config if isinstance(config, PretrainConfig) else load_config(config)
    if out_dir is not None:
        cfg = replace(cfg, run=replace(cfg.run, out_dir=str(out_dir)))
    rank, world, device = _dist_setup()
    if cfg.optim.batch_size % world:
        raise ValueError(f"batch_size {cfg.optim.batch_size} must be divisible by the world "
                         f"size {world}")
    torch.set_num_threads(cfg.run.threads)
    run_dir = Path(cfg.run.out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT_NAME
    log_path = run_dir / "metrics.jsonl"
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.run.dtype]

    torch.manual_seed(cfg.run.seed)
    model = ZeroShotBalancer(cfg.model).to(device=device, dtype=dtype)
    if cfg.run.init_from:
        _init_from(model, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                            weight_decay=cfg.optim.weight_decay)
    sched = WarmupCosine(opt, cfg)
    step = 0
    elapsed = 0.0
    if ckpt_path.exists():
        if resume is False:
            raise FileExistsError(f"{ckpt_path} exists; pass resume=True (--resume) or another "
                                  "--out directory")
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        elapsed = float(state.get("elapsed_s", 0.0))
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        if rank == 0:
            _truncate_log(log_path, step)
            print(f"resumed from {ckpt_path} at step {step}", file=sys.stderr)
    elif resume is True:
        raise FileNotFoundError(f"--resume given but no checkpoint at {ckpt_path}")
    if rank == 0:
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    val = None
    if rank == 0 and cfg.run.val_every > 0:
        val = _validation_set(cfg, run_dir)

    def log(rec: dict) -> None:
        if rank == 0:
            with log_path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")

    def validate() -> None:
        if val is None:
            return
        summ = summarise(evaluate_problems(model, *val))
        log({"kind": "val", "step": step, **summ})

    last_step = cfg.optim.max_steps if max_steps is None else min(max_steps, cfg.optim.max_steps)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.optim.max_steps, initial=step, disable=rank != 0 or not sys.stderr.isatty(),
               desc="pretrain")
    B = cfg.optim.batch_size
    t_start = time.perf_counter() - elapsed
    n_skipped = int(state.get("skipped_steps", 0)) if step else 0
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
            log({"kind": "train", "step": step, "log_obj": tot / B, "grad_norm": float(gnorm),
                 "skipped_steps": n_skipped,
                 "lr": sched.get_last_lr()[0], "elapsed_s": time.perf_counter() - t_start})
        if cfg.run.val_every > 0 and (step % cfg.run.val_every == 0 or (finished and max_steps is None)):
            validate()
        if rank == 0 and (step % cfg.run.ckpt_every == 0 or finished):
            _save_checkpoint(ckpt_path, model, opt, sched, step, cfg,
                             {"elapsed_s": time.perf_counter() - t_start,
                              "skipped_steps": n_skipped})
        if os.environ.get(_CRASH_ENV) == str(step):  # tests: a real SIGKILL mid-run
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    if world > 1:
        dist.barrier()
    return run_dir


def export_model(run_dir: str | Path, out_path: str | Path,
                 model_version: str | None = None) -> str:
    """Write the shipped safetensors file from a run's checkpoint; returns its sha256.
    ``model_version`` defaults to the config's ``[run] name``."""
    from ..model.checkpoint import save_model
    from ..model.zeroshot import ZeroShotConfig

    run_dir = Path(run_dir)
    state = torch.load(run_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=False)
    cfgd = state["config"]
    model = ZeroShotBalancer(ZeroShotConfig.from_dict(cfgd["model"]))
    model.load_state_dict(state["model"])
    metrics = {}
    log_path = run_dir / "metrics.jsonl"
    if log_path.exists():
        vals = [json.loads(s) for s in log_path.read_text().splitlines() if '"val"' in s]
        if vals:
            metrics = vals[-1]
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
    version = model_version or cfgd.get("run", {}).get("name") or "zeroshot"
    return save_model(model, out_path, training_data=training_data, metrics=metrics,
                      model_version=version)


# ----------------------------------------------------------------------------------------------

def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from .cli import add_run_arguments

    p = parser or argparse.ArgumentParser(prog="python -m cina.train.pretrain",
                                          description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config_pos", nargs="?", metavar="CONFIG", help="TOML config file")
    p.add_argument("--config", dest="config", default=None, help="TOML config file")
    add_run_arguments(p)
    return p


def run_cli(args: argparse.Namespace) -> int:
    from ..errors import CInAValidationError

    config = args.config or args.config_pos
    if not config:
        raise CInAValidationError("a config file is required: --config FILE.toml")
    run_dir = pretrain(config, out_dir=args.out, resume=True if args.resume else None)
    if args.export and int(os.environ.get("RANK", "0")) == 0:
        sha = export_model(run_dir, args.export)
        print(f"exported {args.export} sha256={sha}")
    print(f"run directory: {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_arg_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
