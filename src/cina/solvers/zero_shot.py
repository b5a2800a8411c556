"""Zero-shot balancing weights from the pretrained model (``CInA(method="zero-shot")``).

The bandwidth and lam_rel are chosen by the same rules as the exact estimator
(:func:`cina.balancing.kernel.resolve_bandwidth`, :func:`cina.balancing.tuning.select_lam_rel`)
and given to the model as inputs. The model (:class:`cina.model.balancer.ZeroShotBalancer`) is
a learned, unrolled mirror-descent solver of the same balancing QP: every step is one kernel
mat-vec, which it gets from the dataset's kernel operator (:mod:`cina.kernels`; see
docs/method_notes.md section 9 and docs/zeroshot.md).

Out-of-range behaviour (never a silent garbage estimate):

* more units than the training range (N > 2,800 for zeroshot-v2), more covariate columns than it
  (d > 50), or a lam_rel outside [0.01, 3] (clipped to the range):
  :class:`~cina.errors.OutOfRangeWarning`;
* fewer than :data:`MIN_ARM` units in an arm: :class:`~cina.errors.OutOfRangeWarning` (an empty
  arm is a :class:`~cina.errors.CInAValidationError`);
* non-finite model output (a safeguard): :class:`~cina.errors.OutOfRangeWarning` and the exact QP
  instead for N <= 5,000, a :class:`~cina.errors.CInAError` above;
* near-total lack of overlap, i.e. more than :data:`OVERLAP_MAX_FRACTION` of an arm's units whose
  mean kernel similarity to the other arm is below :data:`OVERLAP_RATIO` times that to their own
  arm (no counterpart): :class:`~cina.errors.OverlapWarning`, with the fractions in the message.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from .._progress import progress_bar, show_progress
from ..errors import CInAError, CInAValidationError, OutOfRangeWarning, OverlapWarning
from ..kernels import KernelOperator
from ..rules import check_balance_estimand, normalize_per_arm
from .base import BalancingProblem, SolverOptions, WeightSolver

__all__ = ["zero_shot_weights", "ZeroShotBalancing", "ZeroShotSolver", "MIN_ARM",
           "OVERLAP_RATIO", "OVERLAP_MAX_FRACTION", "overlap_fractions"]

MIN_ARM = 5
OVERLAP_RATIO = 0.05
OVERLAP_MAX_FRACTION = 0.5


def overlap_fractions(arm_density: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Share of treated and of control units without a counterpart in the other arm.

    ``arm_density`` (N, 2) holds (K 1_T, K 1_C) per unit. A unit of arm a has no counterpart when
    its mean kernel similarity to the other arm is below ``OVERLAP_RATIO`` times its mean
    similarity to its own arm.
    """
    n1, n0 = max(int(t.sum()), 1), max(int((1 - t).sum()), 1)
    dT = arm_density[:, 0] / n1
    dC = arm_density[:, 1] / n0
    own = np.where(t == 1, dT, dC)
    other = np.where(t == 1, dC, dT)
    lonely = other < OVERLAP_RATIO * own
    return float(lonely[t == 1].mean()) if n1 else 0.0, float(lonely[t == 0].mean()) if n0 else 0.0


class ZeroShotBalancing:
    """The pretrained model prepared for one dataset: validated inputs, range checks and the
    kernel, built once; calling it with a lam_rel runs the refinement and returns the weights.

    The estimator's balance guard calls it for a decreasing sequence of lam_rel, so the kernel
    (the O(N^2 d) part at large N) and the arm densities are computed only once.

    ``progress``: tqdm bars on stderr for the kernel build and the refinement steps; None shows
    them on a terminal for the O(N)-memory path (N above ~11,500 units, where a fit takes
    minutes), True/False forces them on/off.

    ``kernel``: the dataset's kernel operator (of Z at ``bandwidth``), already built; by default
    it is built here: the dense form while its float32 matrix fits the model's memory budget
    (``ZeroShotConfig.dense_max_bytes``), the streamed O(N)-memory form beyond (``kernel_kind``
    "auto"), or the kind asked for. An operator held as torch tensors serves the model natively;
    any other through :class:`cina.kernels.OperatorBatchOps`.
    """

    def __init__(self, Z: np.ndarray, t: np.ndarray, *, estimand: str = "ate",
                 balance: str = "target", bandwidth=None, progress: bool | None = None,
                 kernel: KernelOperator | None = None, kernel_kind: str = "auto"):
        import torch

        from ..balancing.kernel import resolve_bandwidth
        from ..kernels import OperatorBatchOps, TorchKernel, make_kernel
        from ..model.balancer import problem_index
        from ..model.checkpoint import load_pretrained

        t0 = time.perf_counter()
        Z = np.asarray(Z, dtype=float)
        if Z.ndim == 1:
            Z = Z[:, None]
        t = np.asarray(t).astype(np.int64).ravel()
        if Z.ndim != 2 or Z.shape[0] != t.shape[0]:
            raise CInAValidationError(f"Z must be (N, d) with N = len(t); received {Z.shape} "
                                      f"and {t.shape}")
        if not np.all(np.isfinite(Z)):
            raise CInAValidationError("Z contains NaN or infinite values")
        if not np.isin(t, (0, 1)).all():
            raise CInAValidationError("t must be binary (0/1)")
        check_balance_estimand(balance, estimand)
        try:
            self.problem = problem_index(balance, estimand)
        except ValueError as exc:
            raise CInAValidationError(str(exc)) from exc
        n, d = Z.shape
        n1, n0 = int(t.sum()), int(n - t.sum())
        if n1 == 0 or n0 == 0:
            raise CInAValidationError(f"both arms need units; received {n1} treated and {n0} "
                                      "control")
        self.Z, self.t, self.estimand, self.balance = Z, t, estimand, balance
        self.model, self.meta = load_pretrained()
        cfg = self.model.config
        lo_n, hi_n = cfg.train_n_range
        if n > hi_n:
            warnings.warn(
                f"zero-shot: N = {n:,} units exceeds the pretraining range ({lo_n:,}-{hi_n:,}); "
                "the model runs (the kernel is dimension- and size-agnostic) but its accuracy was "
                "only measured out of range in benchmarks/results/zeroshot.md; compare with "
                "CInA(method='exact') on a subsample", OutOfRangeWarning, stacklevel=4)
        elif n < lo_n:
            warnings.warn(f"zero-shot: N = {n} units is below the pretraining range ({lo_n:,}-"
                          f"{hi_n:,}); prefer CInA(method='exact'), which is instant at this size",
                          OutOfRangeWarning, stacklevel=4)
        if d > cfg.train_d_range[1]:
            warnings.warn(f"zero-shot: d = {d} covariate columns exceeds the pretraining range "
                          f"({cfg.train_d_range[0]}-{cfg.train_d_range[1]}); the covariates only "
                          "enter through the kernel, so the model runs, but it was not trained "
                          "here", OutOfRangeWarning, stacklevel=4)
        small = [f"{name} = {k}" for name, k in (("treated", n1), ("control", n0))
                 if k < MIN_ARM]
        if small:
            warnings.warn(f"zero-shot: fewer than {MIN_ARM} units in an arm ({', '.join(small)});"
                          " the weights of such an arm are nearly fixed and the estimate rests on "
                          "very few units", OutOfRangeWarning, stacklevel=4)
        built_here = kernel is None
        if built_here:
            kernel = make_kernel(Z, float(resolve_bandwidth(Z, bandwidth)), kernel_kind,
                                 **ZeroShotSolver.kernel_settings(), progress=progress)
        elif kernel.n != n:
            raise CInAValidationError(f"the kernel operator has {kernel.n} units; Z has {n}")
        self.kernel = kernel
        self.bandwidth = kernel.bandwidth
        self.path = getattr(kernel, "path", kernel.kind)  # the model's name of the kernel path
        # the model runs in float32: a float32 torch operator serves it natively (the model's
        # own batched kernel, bit for bit); any other through the float64 mat-vec adapter
        native = isinstance(kernel, TorchKernel) and kernel.dtype == "float32"
        self._ops = kernel.batch_ops() if native else OperatorBatchOps(kernel, torch.float32)
        # the model reads only the dtype of z when given the kernel
        self._z = kernel.z if native else torch.zeros(1, n, 0, dtype=torch.float32)
        # progress bars where a fit takes long: the O(N)-memory path (seconds per step at
        # N ~ 50,000) and any path from 100,000 units (the model's per-unit steps), on a
        # terminal only unless asked for
        self.progress = show_progress(progress, self.path == "sdpa" or n >= 100_000)
        self._t = torch.as_tensor(t, dtype=torch.float32)[None]
        self._mask = torch.ones(1, n, dtype=torch.bool)
        density = kernel.arm_densities(t)
        self.no_counterpart = overlap_fractions(density, t)
        lonely_t, lonely_c = self.no_counterpart
        if max(lonely_t, lonely_c) > OVERLAP_MAX_FRACTION:
            warnings.warn(
                f"zero-shot: near-total lack of overlap: {lonely_t:.0%} of treated and "
                f"{lonely_c:.0%} of control units have no counterpart in the other arm (kernel "
                f"similarity to the other arm below {OVERLAP_RATIO:g} of that to their own arm); "
                "the weights lean on few units and the estimate extrapolates. Consider trimming, "
                "the ATT, or a different estimand", OverlapWarning, stacklevel=4)
        # the kernel's build is part of this preparation, wherever it happened
        self.seconds_prepare = time.perf_counter() - t0 + (0.0 if built_here
                                                           else kernel.seconds_build)

    def __call__(self, lam_rel: float, *, extra_steps: int | None = None,
                 extra_tol: float | None = None) -> tuple[np.ndarray, dict]:
        """Weights (N,) for this lam_rel (clipped to the training range, with a warning) and
        info; ``extra_steps``/``extra_tol`` override the model's tied-step settings."""
        import torch

        from ..model.checkpoint import MODEL_VERSION

        t0 = time.perf_counter()
        cfg = self.model.config
        lam_rel = float(lam_rel)
        lam_lo, lam_hi = cfg.train_lam_rel_range
        lam_used = float(np.clip(lam_rel, lam_lo, lam_hi))
        if lam_used != lam_rel:
            warnings.warn(f"zero-shot: lam_rel = {lam_rel:g} is outside the pretraining range "
                          f"[{lam_lo:g}, {lam_hi:g}]; the model uses {lam_used:g}. For another "
                          "lam_rel use CInA(method='exact')", OutOfRangeWarning, stacklevel=3)
        max_steps = cfg.n_steps + (cfg.extra_steps if extra_steps is None else int(extra_steps))
        with progress_bar(self.progress, max_steps, "zero-shot refinement", "step") as bar, \
                torch.inference_mode():
            out = self.model(self._z, self._t, self._mask,
                             torch.tensor([self.bandwidth], dtype=torch.float32),
                             torch.tensor([lam_used], dtype=torch.float32),
                             torch.tensor([self.problem]), ops=self._ops,
                             extra_steps=extra_steps, extra_tol=extra_tol,
                             on_step=None if bar is None else (lambda k: bar.update(1)))
            alpha = out["alpha"][0].double().numpy()
            steps = int(out["steps"][0])
            if bar is not None:  # the stopping rule ended it early: show the steps run
                bar.total = bar.n
                bar.refresh()
        seconds_model = time.perf_counter() - t0
        t, n = self.t, len(self.t)
        if not np.all(np.isfinite(alpha)):  # never a silent garbage estimate
            if n > 5000:
                raise CInAError("zero-shot: the model produced non-finite weights on this "
                                "dataset; use CInA(method='exact') (on a subsample if N is very "
                                "large)")
            from ..balancing.kernel import attention_kernel
            from ..balancing.weights import solve_balancing_weights

            warnings.warn("zero-shot: the model produced non-finite weights on this dataset; "
                          "falling back to the exact balancing QP (info['fallback'] = 'exact')",
                          OutOfRangeWarning, stacklevel=3)
            alpha = solve_balancing_weights(attention_kernel(self.Z, self.bandwidth), t,
                                            lam_used, balance=self.balance,
                                            estimand=self.estimand).alpha
            fallback = "exact"
        else:
            fallback = None
        alpha = normalize_per_arm(np.maximum(alpha, 0.0), t, empty="uniform", in_place=True)
        if self.problem == 1:
            alpha[t == 1] = 1.0 / int(t.sum())
        info = {
            "bandwidth": self.bandwidth, "lam_rel": lam_used,
            "model_version": self.meta.get("model_version", MODEL_VERSION),
            "refinement_steps": steps, "path": self.path,
            "no_counterpart_treated": self.no_counterpart[0],
            "no_counterpart_control": self.no_counterpart[1],
            "seconds_kernel": self.seconds_prepare, "seconds_model": seconds_model,
        }
        if lam_used != lam_rel:
            info["lam_rel_requested"] = lam_rel
        if fallback:
            info["fallback"] = fallback
        return alpha, info


def zero_shot_weights(Z: np.ndarray, t: np.ndarray, y: np.ndarray | None = None, *,
                      estimand: str = "ate", balance: str = "target",
                      lam_rel: float | None = None, bandwidth=None, seed: int = 0,
                      extra_steps: int | None = None, extra_tol: float | None = None
                      ) -> tuple[np.ndarray, dict]:
    """Balancing weights for standardised covariates ``Z`` (N, d) and treatment ``t``.

    Returns ``alpha`` (N,) >= 0 summing to 1 within each arm (the ATT keeps the treated uniform)
    and ``info`` (bandwidth, lam_rel, model version, refinement steps run, seconds in all, in
    building the kernel and in the model's refinement, kernel path, shares of units without
    counterpart). ``lam_rel`` None: the GP rule of :func:`cina.balancing.tuning.select_lam_rel`
    (needs ``y``). ``extra_steps``/``extra_tol``: the weight-tied refinement steps after the
    trained ones (default: the model config's, 100 and 3e-4; 0 gives the trained steps alone).
    """
    from ..balancing.tuning import select_lam_rel

    t0 = time.perf_counter()
    zb = ZeroShotBalancing(Z, t, estimand=estimand, balance=balance, bandwidth=bandwidth)
    lam_info: dict = {}
    if lam_rel is None:
        lam_rel, lam_info = select_lam_rel(zb.Z, zb.t, y, bandwidth=zb.bandwidth,
                                           balance=balance, estimand=estimand, seed=seed)
    alpha, info = zb(lam_rel, extra_steps=extra_steps, extra_tol=extra_tol)
    info.update(lam_info)
    info["seconds"] = time.perf_counter() - t0
    return alpha, info


class ZeroShotSolver(WeightSolver):
    """The pretrained zero-shot model as a weight solver (``CInA(method="zero-shot")``): a
    :class:`ZeroShotBalancing` on the estimator's kernel operator. ``options.max_iter`` and
    ``options.tol`` are the weight-tied refinement steps' cap and tolerance."""

    name = "zero-shot"
    kernel_dtype = "float32"  # the model's precision

    @classmethod
    def setup(cls) -> float:
        """Imports torch and loads the shipped model (once per process; cached afterwards)."""
        loaded = sys.modules.get("cina.model.checkpoint")  # without importing torch
        if loaded is not None and loaded.is_pretrained_loaded():
            return 0.0
        start = time.perf_counter()
        from ..model.checkpoint import load_pretrained

        load_pretrained()
        return time.perf_counter() - start

    @classmethod
    def kernel_settings(cls) -> dict:
        """float32, the dense form while the model's memory budget holds it
        (``ZeroShotConfig.dense_max_bytes``: 512 MiB, N <= 11,585), the model's chunk size."""
        from ..model.checkpoint import load_pretrained

        cfg = load_pretrained()[0].config
        return {"dtype": cls.kernel_dtype, "dense_budget_bytes": cfg.dense_max_bytes,
                "chunk_size": cfg.chunk_size, "progress_desc": "zero-shot kernel"}

    def __init__(self, kernel: KernelOperator, problem: BalancingProblem,
                 options: SolverOptions | None = None):
        super().__init__(kernel, problem, options)
        self.prepared = ZeroShotBalancing(kernel.keys, problem.t, estimand=problem.estimand,
                                          balance=problem.balance, kernel=kernel,
                                          progress=self.options.progress)

    def __call__(self, lam_rel: float) -> tuple[np.ndarray, dict]:
        return self.prepared(lam_rel, extra_steps=self.options.max_iter,
                             extra_tol=self.options.tol)
