"""The user-facing estimator :class:`CInA`.

``CInA._fit_validated`` reads as the method: key map (standardised covariates, scaled by their
relevance to the outcome) -> bandwidth rule -> lam rule -> weight solver on the kernel operator
(:mod:`cina.kernels`, :mod:`cina.solvers`) and the imbalance it leaves -> effect, standard error
and bias sd (:mod:`cina.effect`) -> result. Each stage is one small method or function; nothing
flows back.
"""

from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np

from ._threads import check_n_jobs
from ._validation import ValidatedData
from .balancing import resolve_bandwidth, standardize
from .balancing.relevance import fit_relevance
from .balancing.tuning import LAM_MIN, balance_guard, select_lam_rel
from .balancing.weights import check_options
from .base import EffectEstimator
from .diagnostics import max_abs_smd, propensity_overlap
from .effect import (
    OUTCOME_MODELS,
    VARIANCE_ESTIMATES,
    arm_imbalances,
    balancing_effect,
    bias_sd,
    fit_outcome_model,
)
from .errors import CInAValidationError, OverlapWarning
from .kernels import kernel_class, kernel_kinds, make_kernel, resolve_kernel_kind
from .results import EffectResult
from .rules import BALANCE_THRESHOLD
from .solvers import SOLVERS, BalancingProblem, SolverOptions, WeightSolver, solver_class

__all__ = ["CInA", "CINA_METHODS", "AUGMENT_MODELS", "METRICS", "AUTO_STACK_MAX_N"]

#: the registered weight solvers' names (``method=``)
CINA_METHODS = tuple(SOLVERS)
AUGMENT_MODELS = (None, "auto", *OUTCOME_MODELS)
#: the kernel's metric: covariates scaled by their learned relevance, or plain standardised
METRICS = ("relevance", "standardized")
#: ``augment="auto"`` uses the stacked outcome model up to this many units and plain weighting
#: beyond, where the outcome learners would cost far more than the weights (docs/accuracy.md)
AUTO_STACK_MAX_N = 100_000


class _StageClock:
    """Wall time of the fit's stages (``info["seconds_by_stage"]``): where the time goes."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


class CInA(EffectEstimator):
    """Causal Inference with Attention: optimal balancing weights and the effect they give.

    Parameters
    ----------
    method : "exact" solves the balancing QP exactly; "fit" runs Algorithm 1 (gradient descent on
        the balancing attention layer, torch); "zero-shot" uses the pretrained model shipped with
        the package (one forward pass).
    estimand : "ate" (average effect over the sample) or "att" (over the treated).
    balance : "target" (default) balances each arm to the estimand's population (the whole sample
        for the ATE, the treated for the ATT), which removes the estimand drift of the paper's
        formulation; "mutual" is the paper's problem (P), arms balanced to each other.
    lam_rel : ridge relative to the mean kernel diagonal; None picks it per dataset: the
        Gaussian-process marginal-likelihood rule (:func:`cina.balancing.tuning.select_lam_rel`);
        with ``metric="standardized"`` also the balance guard (lam divided by 3 while a
        covariate's |SMD| after weighting exceeds 0.1, down to 0.01); see
        docs/method_notes.md sections 2 and 14.
    metric : the kernel's keys. "relevance" (default) divides each standardised covariate by
        its length scale in a Gaussian process of the outcome (automatic relevance
        determination on <= 400 units, :mod:`cina.balancing.relevance`), so the weights balance
        what the outcome depends on and not the covariates it ignores; bandwidth 1.
        "standardized" is the paper's kernel on the standardised covariates (median bandwidth),
        with the balance guard. docs/method_notes.md section 14, docs/accuracy.md.
    bandwidth : kernel bandwidth (a squared length scale of the keys); None is 1 with
        ``metric="relevance"`` and the median heuristic otherwise; "median" the median
        heuristic, "sqrt_d"/"d" the fixed rules of the paper's setting.
    penalty : "squared_hinge" (ridge on the weights, docs/method_notes.md section 3) or "hinge"
        (the plain-hinge variant: weights capped at 1 / (lam_rel n_arm), no ridge; exact only).
    learn_kernel : Algorithm 1 only. False freezes the key map (exactly the QP); "linear" or "mlp"
        learns it by minimising the same loss, with the guards of :mod:`cina.solvers.attention_fit`.
    random_state : seed for every random choice (subsampling in rules, initialisations).
    dtype : "float64" (default, exact) or "float32" for Algorithm 1.
    max_iter, tol : stopping rule of the iterative methods; None is the method's default.
        "fit": Algorithm 1's iteration cap and relative tolerance (3000, 1e-6). "zero-shot": the
        cap on weight-tied refinement steps after the model's trained steps and their relative
        tolerance (100, 3e-4; ``max_iter=0`` runs the trained steps alone, fastest). Ignored by
        "exact", which solves to its KKT tolerance.
    variance : how the standard error estimates the outcome noise sigma^2(x_i) in
        se^2 = sum_i alpha_i^2 sigma^2(x_i): "kernel" (default) uses leave-one-out residuals of
        the per-arm kernel ridge fit with the same kernel and the GP ridge; "matching" uses
        Abadie-Imbens nearest-neighbour residuals (conservative in more than a few dimensions).
    n_neighbors_se : neighbours of the "matching" variance estimate.
    augment : the outcome model of the augmented (doubly robust) balancing estimate
        mean_T(m1 - m0) + sum_i alpha_i (2t_i - 1) (y_i - m_{t_i}(x_i)). "auto" (default) is
        "stack" up to 100,000 units and None beyond (:data:`AUTO_STACK_MAX_N`). "stack": per arm
        a non-negative combination, chosen on out-of-sample predictions, of a random forest,
        gradient boosting, ridge regression and the GP posterior mean with the balancing kernel
        (5-fold cross-fitted); "gbm": cross-fitted histogram gradient boosting; "kernel": the GP
        posterior mean alone; None: the plain weighting estimate sum_i alpha_i (2t_i - 1) y_i.
        The weights are the same; the se uses the outcome model's out-of-sample residuals.
    kernel : how the kernel operator is held (:mod:`cina.kernels`): "auto" (default) takes the
        dense n x n matrix while it fits the method's memory budget and N is below the method's
        low-rank threshold (exact: 4,000 units; zero-shot: its budget, 11,585), and the
        low-rank Nystrom factor beyond (m = 256 landmarks, fewer past 2 GiB; O(N m) memory and
        time per mat-vec; exact then solves the QP in its m-dimensional dual); "dense",
        "nystrom", "random-features" or "streamed" (O(N) memory, O(N^2) time) force one. See
        docs/method_notes.md section 12 for the low-rank operators and their accuracy.
    n_jobs : threads of the fit (BLAS, OpenMP, torch): None (default) follows the thread
        policy (``CINA_NUM_THREADS`` if set, else one thread up to 2,000 units and otherwise
        the cores not busy with other tasks at the fit's start, docs/method_notes.md section
        13); a positive count, or -1 for every available core, forces it.
    """

    _is_weighting = True

    def __init__(self, method: str = "exact", estimand: str = "ate", balance: str = "target",
                 lam_rel: float | None = None, bandwidth=None, penalty: str = "squared_hinge",
                 learn_kernel=False, random_state: int = 0, dtype: str = "float64",
                 max_iter: int | None = None, tol: float | None = None,
                 variance: str = "kernel",
                 n_neighbors_se: int = 3, augment: str | None = "auto", kernel: str = "auto",
                 n_jobs: int | None = None, metric: str = "relevance"):
        self.method = method
        self.estimand = estimand
        self.balance = balance
        self.lam_rel = lam_rel
        self.bandwidth = bandwidth
        self.penalty = penalty
        self.learn_kernel = learn_kernel
        self.random_state = random_state
        self.dtype = dtype
        self.max_iter = max_iter
        self.tol = tol
        self.variance = variance
        self.n_neighbors_se = n_neighbors_se
        self.augment = augment
        self.kernel = kernel
        self.n_jobs = n_jobs
        self.metric = metric

    @property
    def method_name(self) -> str:  # type: ignore[override]
        return self.method

    def _check_settings(self) -> None:
        if self.method not in SOLVERS:
            raise CInAValidationError(
                f"method must be one of {CINA_METHODS}; received {self.method!r}")
        check_options(self.balance, self.estimand, self.penalty)
        if self.augment not in AUGMENT_MODELS:
            raise CInAValidationError(
                f"augment must be one of {AUGMENT_MODELS}; received {self.augment!r}")
        if self.metric not in METRICS:
            raise CInAValidationError(
                f"metric must be one of {METRICS}; received {self.metric!r}")
        if self.variance not in VARIANCE_ESTIMATES:
            raise CInAValidationError(
                f"variance must be 'kernel' or 'matching'; received {self.variance!r}")
        if not isinstance(self.kernel, str) or self.kernel not in kernel_kinds():
            raise CInAValidationError(
                f"kernel must be one of {kernel_kinds()}; received {self.kernel!r}")
        if self.max_iter is not None and (isinstance(self.max_iter, bool) or
                                          not isinstance(self.max_iter, (int, np.integer)) or
                                          self.max_iter < 0):
            raise CInAValidationError(
                f"max_iter must be a non-negative integer or None; received {self.max_iter!r}")
        if self.tol is not None and (not isinstance(self.tol, (int, float, np.floating)) or
                                     not np.isfinite(self.tol) or self.tol < 0):
            raise CInAValidationError(
                f"tol must be a non-negative number or None; received {self.tol!r}")
        if self.lam_rel is not None and (not np.isfinite(self.lam_rel) or self.lam_rel <= 0):
            raise CInAValidationError(
                f"lam_rel must be a positive number or None; received {self.lam_rel!r}")
        check_n_jobs(self.n_jobs)

    def _prepare(self) -> float:
        """The solver's once-per-process setup (the zero-shot model's load), timed apart."""
        if self.method not in SOLVERS:  # the fit reports the unknown method
            return 0.0
        return solver_class(self.method).setup()

    # -- the stages of the fit -----------------------------------------------------------------
    def _kernel_kind(self, solver: type[WeightSolver], data: ValidatedData) -> str:
        """The kernel form for this solver and size, refused before any work when the solver
        cannot take this many units on it."""
        settings = solver.kernel_settings()
        kind = resolve_kernel_kind(self.kernel, data.n, data.d, dtype=settings["dtype"],
                                   dense_budget_bytes=settings["dense_budget_bytes"],
                                   lowrank_from=settings.get("lowrank_from"))
        limit = solver.size_limit(kernel_class(kind, settings["dtype"]))
        if limit is not None and data.n > limit:
            raise CInAValidationError(
                f"method={self.method!r} builds N x N matrices and is limited to {limit:,} units; "
                f"received {data.n:,}. Use method='zero-shot' (O(N) memory) or subsample")
        return kind

    def _keys(self, data: ValidatedData) -> tuple[np.ndarray, dict]:
        """The kernel's keys: the covariates standardised over the whole sample and, with
        ``metric="relevance"``, divided by their GP length scales (a covariate the outcome
        ignores gets a length scale of 1,000 and drops out of the kernel). The relevance fit
        falls back to the standardised keys when there is nothing to learn (a constant outcome)
        and says so in the info."""
        Z = standardize(data.X)[0]
        if self.metric == "standardized":
            return Z, {"metric": "standardized"}
        fit = fit_relevance(Z, data.t, data.y, seed=self.random_state)
        if fit is None:
            return Z, {"metric": "standardized (relevance fit unavailable)"}
        return fit.keys(Z), {"metric": "relevance", **fit.info(data.feature_names)}

    def _resolved_augment(self, n: int) -> str | None:
        if self.augment == "auto":
            return "stack" if n <= AUTO_STACK_MAX_N else None
        return self.augment

    def _lam_rule(self, Z: np.ndarray, data: ValidatedData, target: np.ndarray, bw: float
                  ) -> tuple[float, dict]:
        """The GP noise-to-signal ratio of ``target`` (the outcome, or an outcome model's
        residual): the data-driven lam, the ridge of the kernel fits and the arms' signal
        variances (computed on <= 1,000 units, whatever N)."""
        return select_lam_rel(Z, data.t, target, bandwidth=bw, balance=self.balance,
                              estimand=self.estimand, seed=self.random_state)

    def _weights(self, data: ValidatedData, Z: np.ndarray, bw: float, lam_rel: float,
                 solver: type[WeightSolver], kind: str, guard: bool
                 ) -> tuple[np.ndarray, float, dict, int]:
        """The dataset's kernel operator and the solver prepared on it (both freed on return),
        the weights, with ``guard`` the balance guard of the lam rule, and the kernel imbalance
        each arm keeps: (alpha, lam_rel used, solver info, guard steps)."""
        kernel = make_kernel(Z, bw, kind, **solver.kernel_settings(),
                             random_state=self.random_state)
        prepared = solver(kernel, BalancingProblem(data.t, self.balance, self.estimand,
                                                   self.penalty),
                          SolverOptions(max_iter=self.max_iter, tol=self.tol,
                                        random_state=self.random_state, dtype=self.dtype,
                                        learn_kernel=self.learn_kernel))
        if guard:  # the balance guard of the lam rule (docs/method_notes.md section 2)
            alpha, lam_rel, info, steps = balance_guard(
                prepared, lam_rel, lambda a: max_abs_smd(data.X, data.t, a, self.estimand),
                threshold=BALANCE_THRESHOLD, floor=LAM_MIN)
        else:
            (alpha, info), steps = prepared(lam_rel), 0
        info = {**info, "imbalance": arm_imbalances(kernel.matvec, alpha, data.t,
                                                     self.estimand)}
        return alpha, lam_rel, info, steps

    def _fit_validated(self, data: ValidatedData) -> EffectResult:
        self._check_settings()
        solver = solver_class(self.method)
        kind = self._kernel_kind(solver, data)
        augment = self._resolved_augment(data.n)
        clock = _StageClock()
        with clock("key_map"):
            Z, info = self._keys(data)
        with clock("bandwidth"):
            bw = resolve_bandwidth(Z, 1.0 if self.bandwidth is None and
                                   info["metric"] == "relevance" else self.bandwidth)
        with clock("lam_rule"):
            gp_lam, lam_info = self._lam_rule(Z, data, data.y, bw)
        info.update({"bandwidth": bw,
                     **(lam_info if self.lam_rel is None else {"lam_rule": "given"})})
        lam_rel = gp_lam if self.lam_rel is None else float(self.lam_rel)
        outcome = None
        if augment is not None:
            with clock("outcome_model"):
                outcome = fit_outcome_model(augment, data.X, Z, data.t, data.y, bandwidth=bw,
                                            ridge=gp_lam, seed=self.random_state)
            if self.lam_rel is None:
                # augmented, the weights balance the outcome model's residual, not the outcome:
                # lam is the GP noise-to-signal ratio of the out-of-sample residuals
                # (docs/method_notes.md section 14)
                with clock("lam_rule"):
                    lam_rel, resid_info = self._lam_rule(Z, data, outcome.resid, bw)
                info.update(lam_rule="gp-marginal-likelihood on the outcome model's residuals",
                            gp_noise_ratio_residual=resid_info.get("gp_noise_ratio"))
        # the guard forces every covariate's balance: right for the standardised key map, wrong
        # for the relevance map, whose point is to leave irrelevant covariates free
        guard = self.lam_rel is None and info["metric"] != "relevance"
        with clock("weights"):  # kernel and weights, balance guard included
            alpha, lam_rel, weight_info, guard_steps = self._weights(data, Z, bw, lam_rel,
                                                                     solver, kind, guard)
        if guard:
            info["lam_guard_steps"] = guard_steps
        info["lam_rel"] = lam_rel
        info["kernel"] = kind
        info.update(weight_info)
        with clock("standard_error" if outcome is None else "outcome_model"):
            effect = balancing_effect(alpha, Z=Z, t=data.t, y=data.y,
                                      estimand=self.estimand, bandwidth=bw, ridge=gp_lam,
                                      outcome=outcome, variance=self.variance,
                                      n_neighbors=self.n_neighbors_se, seed=self.random_state)
        info.update(effect.info)
        signal = {a: lam_info.get(f"signal_var_arm{a}", float("nan")) for a in (0, 1)}
        bias = bias_sd(signal, info["imbalance"]) if self.lam_rel is None else 0.0
        info["bias_sd"] = bias
        with clock("overlap_check"):
            overlap = propensity_overlap(data.X, data.t, self.estimand, seed=self.random_state)
        info["overlap_extreme_share"] = overlap["extreme_share"]
        if overlap["warning"]:
            warnings.warn(f"CInA: {overlap['warning']}", OverlapWarning, stacklevel=4)
        info["seconds_by_stage"] = clock.seconds
        return EffectResult(estimate=effect.estimate, se=effect.se, estimand=self.estimand,
                            method=self.method, n=data.n, n_treated=data.n_treated,
                            n_control=data.n_control, seconds=0.0, weights=alpha, t=data.t,
                            info=info, bias_sd=bias)
