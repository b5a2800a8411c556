"""The user-facing estimator :class:`CInA`.

Data flow: validated inputs -> standardised covariates z -> kernel (bandwidth rule) -> lam rule ->
weights (exact QP | Algorithm 1 | zero-shot model) -> tau_hat = sum alpha w y -> standard error
-> results and diagnostics. Nothing flows back.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings

import numpy as np

from ._threads import blas_threads_for
from ._validation import ValidatedData
from .balancing import resolve_bandwidth, solve_balancing_weights, standardize
from .balancing.kernel import attention_kernel
from .balancing.outcome import gp_loo_residuals, gp_outcome_fit
from .balancing.tuning import LAM_MIN, select_lam_rel
from .balancing.weights import check_options
from .base import EffectEstimator
from .diagnostics import balance_table
from .errors import CInAValidationError, CInAWarning
from .inference import weighting_se
from .results import EffectResult

__all__ = ["CInA", "CINA_METHODS"]

CINA_METHODS = ("exact", "fit", "zero-shot")
# exact and fit hold N x N float64 matrices (the kernel, and the QP's Hessian or the Cholesky
# factor): 20,000 units is 3.2 GB each; beyond that use the zero-shot model (O(N) memory).
MAX_N_DENSE = {"exact": 20_000, "fit": 10_000}


FIT_MAX_ITER, FIT_TOL = 3000, 1e-6  # Algorithm 1's default stopping rule

AUGMENT_MODELS = (None, "gbm", "kernel")
SMD_GUARD = 0.1  # the customary threshold of good balance


def _max_smd(X: np.ndarray, t: np.ndarray, alpha: np.ndarray, estimand: str) -> float:
    return float(balance_table(X, t, alpha, estimand=estimand)["smd_after"].max())


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
        Gaussian-process marginal-likelihood rule (:func:`cina.balancing.tuning.select_lam_rel`)
        with a balance guard (lam divided by 3 while a covariate's |SMD| after weighting exceeds
        0.1, down to 0.01); see docs/method_notes.md section 2.
    bandwidth : kernel bandwidth (a squared length scale of the standardised covariates); None or
        "median" is the median heuristic, "sqrt_d"/"d" the fixed rules of the paper's setting.
    penalty : "squared_hinge" (ridge on the weights, METHOD section 3) or "hinge" (the plain-hinge
        variant: weights capped at 1 / (lam_rel n_arm), no ridge).
    learn_kernel : Algorithm 1 only. False freezes the key map (exactly the QP); "linear" or "mlp"
        learns it by minimising the same loss, with the guards of :mod:`cina.fit`.
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
    augment : None (default) estimates sum_i alpha_i (2t_i - 1) y_i; "gbm" or "kernel" gives the
        augmented (doubly robust) balancing estimate mean_T(m1 - m0) + sum_i alpha_i (2t_i - 1)
        (y_i - m_{t_i}(x_i)) with per-arm outcome models m_a: 5-fold cross-fitted histogram
        gradient boosting ("gbm") or the GP posterior mean with the balancing kernel ("kernel").
        The weights are the same; the se uses the outcome model's out-of-sample residuals.
    """

    _is_weighting = True

    def __init__(self, method: str = "exact", estimand: str = "ate", balance: str = "target",
                 lam_rel: float | None = None, bandwidth=None, penalty: str = "squared_hinge",
                 learn_kernel=False, random_state: int = 0, dtype: str = "float64",
                 max_iter: int | None = None, tol: float | None = None,
                 variance: str = "kernel",
                 n_neighbors_se: int = 3, augment: str | None = None):
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

    @property
    def method_name(self) -> str:  # type: ignore[override]
        return self.method

    def _check_settings(self) -> None:
        if self.method not in CINA_METHODS:
            raise CInAValidationError(
                f"method must be one of {CINA_METHODS}; received {self.method!r}")
        check_options(self.balance, self.estimand, self.penalty)
        if self.augment not in AUGMENT_MODELS:
            raise CInAValidationError(
                f"augment must be one of {AUGMENT_MODELS}; received {self.augment!r}")
        if self.variance not in ("kernel", "matching"):
            raise CInAValidationError(
                f"variance must be 'kernel' or 'matching'; received {self.variance!r}")
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

    def _weights(self, Z: np.ndarray, t: np.ndarray, K, bw: float,
                 lam_rel: float) -> tuple[np.ndarray, dict]:
        """Balancing weights for one lam by the chosen method, and what the method reports.
        ``K``: the kernel matrix (exact), the prepared zero-shot model (zero-shot) or None."""
        if self.method == "zero-shot":
            return K(lam_rel, extra_steps=self.max_iter, extra_tol=self.tol)
        if self.method == "exact":
            with blas_threads_for(len(t)):
                sol = solve_balancing_weights(K, t, lam_rel, balance=self.balance,
                                              estimand=self.estimand, penalty=self.penalty)
            return sol.alpha, {"objective": sol.objective, "mmd2": sol.mmd2,
                               "kkt_residual": sol.kkt_residual}
        from .fit import fit_balancing_attention

        res = fit_balancing_attention(
            Z, t, bandwidth=bw, lam_rel=lam_rel, balance=self.balance, estimand=self.estimand,
            learn_kernel=self.learn_kernel, dtype=self.dtype,
            max_iter=FIT_MAX_ITER if self.max_iter is None else self.max_iter,
            tol=FIT_TOL if self.tol is None else self.tol, seed=self.random_state)
        return res.alpha, res.info

    def _augmented(self, data: ValidatedData, Z: np.ndarray, bw: float, gp_lam: float,
                   alpha: np.ndarray) -> tuple[float, float, dict]:
        """Augmented balancing estimate (docs/method_notes.md, section 8) and its se."""
        t, y = data.t, data.y
        if self.augment == "kernel":
            m0, m1, resid = gp_outcome_fit(Z, t, y, bandwidth=bw, ridge=gp_lam,
                                           seed=self.random_state)
        else:  # "gbm": cross-fitted gradient boosting per arm
            from sklearn.ensemble import HistGradientBoostingRegressor

            from .baselines._common import cross_fit_folds, cross_fit_outcomes

            folds = cross_fit_folds(t, min(5, data.n_treated, data.n_control),
                                    self.random_state)
            m0, m1 = cross_fit_outcomes(data.X, t, y, folds, HistGradientBoostingRegressor(),
                                        self.random_state)
            resid = y - np.where(t == 1, m1, m0)
        target = np.ones(data.n, bool) if self.estimand == "ate" else t == 1
        w = 2.0 * t - 1.0
        fitted = np.where(t == 1, m1, m0)
        estimate = float(np.mean(m1[target] - m0[target]) + np.sum(alpha * w * (y - fitted)))
        se = float(np.sqrt(np.sum(alpha**2 * resid**2)))
        return estimate, se, {"augment": self.augment,
                              "outcome_model_effect": float(np.mean(m1[target] - m0[target]))}

    def _guarded_weights(self, data: ValidatedData, Z: np.ndarray, bw: float, lam_rel: float
                         ) -> tuple[np.ndarray, float, dict, int]:
        """The weights by the chosen method (its kernel built once), after the balance guard
        of the lam rule when lam is data-driven: (alpha, lam_rel used, method info, guard
        steps)."""
        if self.method == "exact":
            K = attention_kernel(Z, bw)
        elif self.method == "zero-shot":  # the model with this dataset's kernel, built once
            from .zeroshot import ZeroShotBalancing

            K = ZeroShotBalancing(Z, data.t, estimand=self.estimand, balance=self.balance,
                                  bandwidth=bw)
        else:
            K = None
        alpha, weight_info = self._weights(Z, data.t, K, bw, lam_rel)
        steps = 0
        if self.lam_rel is None:
            # balance guard of the lam rule (docs/method_notes.md, section 2): the GP ratio
            # absorbs outcome-model misfit as noise; where its lam leaves a covariate visibly
            # imbalanced (|SMD| > 0.1), lam is divided by 3 until balance is reached or LAM_MIN
            while lam_rel > LAM_MIN and _max_smd(data.X, data.t, alpha, self.estimand) > \
                    SMD_GUARD:
                lam_rel = max(lam_rel / 3.0, LAM_MIN)
                with warnings.catch_warnings():  # the first call already warned about the input
                    warnings.simplefilter("ignore", CInAWarning)
                    alpha, weight_info = self._weights(Z, data.t, K, bw, lam_rel)
                steps += 1
        return alpha, lam_rel, weight_info, steps

    def _prepare(self) -> float:
        if self.method != "zero-shot":
            return 0.0
        loaded = sys.modules.get("cina.model.checkpoint")  # without importing torch
        if loaded is not None and loaded.is_pretrained_loaded():
            return 0.0
        start = time.perf_counter()
        from .model.checkpoint import load_pretrained

        load_pretrained()  # imports torch and reads the shipped model (cached afterwards)
        return time.perf_counter() - start

    def _fit_validated(self, data: ValidatedData) -> EffectResult:
        self._check_settings()
        limit = MAX_N_DENSE.get(self.method)
        if limit is not None and data.n > limit:
            raise CInAValidationError(
                f"method={self.method!r} builds N x N matrices and is limited to {limit:,} units; "
                f"received {data.n:,}. Use method='zero-shot' (O(N) memory) or subsample")
        clock = _StageClock()
        with clock("bandwidth"):
            Z, _, _ = standardize(data.X)
            bw = resolve_bandwidth(Z, self.bandwidth)
        # the GP noise-to-signal ratio: the data-driven lam, and the ridge of the residual model
        # behind the standard error (computed on <= 1,000 units, whatever N)
        with clock("lam_rule"):
            gp_lam, lam_info = select_lam_rel(Z, data.t, data.y, bandwidth=bw,
                                              balance=self.balance, estimand=self.estimand,
                                              seed=self.random_state)
        lam_rel = gp_lam if self.lam_rel is None else float(self.lam_rel)
        info: dict = {"bandwidth": bw,
                      **(lam_info if self.lam_rel is None else {"lam_rule": "given"})}
        with clock("weights"):  # kernel and weights, balance guard included
            alpha, lam_rel, weight_info, guard_steps = self._guarded_weights(data, Z, bw,
                                                                             lam_rel)
        if self.lam_rel is None:
            info["lam_guard_steps"] = guard_steps
        info["lam_rel"] = lam_rel
        info.update(weight_info)
        with clock("standard_error" if self.augment is None else "outcome_model"):
            w = 2.0 * data.t - 1.0
            if self.augment is None:
                estimate = float(np.sum(alpha * w * data.y))
                if self.variance == "kernel":
                    resid = gp_loo_residuals(Z, data.t, data.y, bandwidth=bw, ridge=gp_lam,
                                             seed=self.random_state)
                    se = float(np.sqrt(np.sum(alpha**2 * resid**2)))
                else:
                    se = weighting_se(Z, data.t, data.y, alpha, self.n_neighbors_se)
            else:
                estimate, se, aug_info = self._augmented(data, Z, bw, gp_lam, alpha)
                info.update(aug_info)
        info["seconds_by_stage"] = clock.seconds
        return EffectResult(estimate=estimate, se=se, estimand=self.estimand,
                            method=self.method, n=data.n, n_treated=data.n_treated,
                            n_control=data.n_control, seconds=0.0, weights=alpha, t=data.t,
                            info=info)
