"""The effect within each group of a column, many groups at once (``cina estimate --by COL``).

:func:`estimate_by` returns one tidy row per group: its size and arms, the estimate, standard
error, the weighting bias's prior sd and the interval that combines both (as
:class:`cina.CInA`'s), the effective sample size of each arm, the largest |SMD| after weighting,
the rules' choices, a ``status`` and the group's warnings. A group that cannot be estimated (too
few units, an arm with fewer than 2 units, invalid for the method) gets its status and empty
numbers, never an exception.

The data are validated and encoded once for all groups (one-hot levels from the whole table, so
every group has the same covariate columns); each group is then exactly the dataset that
``CInA(...).fit`` would receive for its rows (a covariate constant within a group contributes
nothing to the kernel and its |SMD| is 0, as when the estimator drops it).

With ``method="zero-shot"`` the groups run through the pretrained model in padded batches (one
batched kernel and one forward pass per batch, :class:`cina.kernels.batched.KernelOps` with a
mask; groups sorted by size so that a batch pads little), each group with its own bandwidth and
lam (the per-group rules of the in-memory estimator: the median heuristic and the GP rule on at
most 1,000 units, computed per group) and its own balance guard (re-run in the batch for the
groups whose balance is still off). Weights and estimates equal a per-group
``CInA(method="zero-shot", metric="standardized", augment=None)`` fit (:data:`GROUP_PIPELINE`)
to float32 rounding (a padded batch sums zeros: the model's steps are per dataset). Other
methods run a per-group loop of the registry's estimator. With a Dask ``client`` the batches are
spread over the workers. Measured: benchmarks/groups.py.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings

import numpy as np
import pandas as pd

from ._progress import progress_bar, show_progress
from ._validation import ValidatedData, validate_inputs
from .errors import CInAError, CInAValidationError
from .rules import BALANCE_THRESHOLD, effective_sample_size, normalize_per_arm

__all__ = ["estimate_by", "GROUP_COLUMNS", "MIN_GROUP_UNITS", "STATUS_OK", "GROUP_PIPELINE"]

#: groups with fewer units are reported ("too few units"), not estimated
MIN_GROUP_UNITS = 10
STATUS_OK = "ok"
#: the columns of :func:`estimate_by`'s table, in order
GROUP_COLUMNS = ("group", "status", "n", "n_treated", "n_control", "estimate", "se", "bias_sd",
                 "ci_low", "ci_high", "ess_treated", "ess_control", "max_smd_after", "lam_rel",
                 "bandwidth", "warnings")
#: the padded batch's kernel (B x N x N float32) is kept within this many bytes
BATCH_BYTES = 256 * 2**20
DEFAULT_BATCH = 8
#: the pipeline of every group's fit (the batched model's, and the per-group loop's where the
#: estimator has these settings): the kernel on the standardised covariates (median bandwidth,
#: balance guard) and the plain weighting estimate with the kernel standard error. Not the
#: single fit's default (relevance keys, stacked outcome model): an outcome model per group
#: costs what a DML fit per group costs, and the relevance fit needs more units than many
#: groups have
GROUP_PIPELINE = {"metric": "standardized", "augment": None}


# --- one group's numbers ---------------------------------------------------------------------
def _row(group, status: str, n: int = 0, n1: int = 0, **values) -> dict:
    row = dict.fromkeys(GROUP_COLUMNS)
    row.update(group=group, status=status, n=n, n_treated=n1, n_control=n - n1, warnings="")
    row.update(values)
    return row


def _finish(group, data: ValidatedData, alpha: np.ndarray, se: float, estimand: str,
            alpha_level: float, extra: dict, notes: list[str], bias_sd: float = 0.0) -> dict:
    """The row of an estimated group; the interval is the estimator's: normal, with the
    sampling se and the weighting bias's sd combined (:class:`cina.results.EffectResult`)."""
    from .diagnostics import max_abs_smd
    from .results import normal_interval

    t, y = data.t, data.y
    estimate = float(np.sum(alpha * (2.0 * t - 1.0) * y))
    total = float(np.hypot(se, bias_sd or 0.0))
    lo, hi = normal_interval(estimate, total, alpha_level) if np.isfinite(total) \
        else (math.nan,) * 2
    return _row(group, STATUS_OK, data.n, data.n_treated, estimate=estimate, se=se,
                bias_sd=float(bias_sd or 0.0), ci_low=lo,
                ci_high=hi, ess_treated=effective_sample_size(alpha[t == 1]),
                ess_control=effective_sample_size(alpha[t == 0]),
                max_smd_after=max_abs_smd(data.X, t, alpha, estimand),
                warnings="; ".join(dict.fromkeys(notes)), **extra)


def _screen(group, data: ValidatedData, min_units: int) -> dict | None:
    """The row of a group that cannot be estimated, or None."""
    n, n1 = data.n, data.n_treated
    if n < min_units:
        return _row(group, f"too few units ({n} < {min_units})", n, n1)
    if n1 < 2 or n - n1 < 2:
        arm = "treated" if n1 < 2 else "control"
        k = n1 if n1 < 2 else n - n1
        return _row(group, f"{'empty' if k == 0 else 'too small'} {arm} arm ({k} unit"
                           f"{'' if k == 1 else 's'}; at least 2 needed)", n, n1)
    return None


# --- zero-shot in padded batches ---------------------------------------------------------------
class _GroupRules:
    """One group's keys, bandwidth, lam rule and residuals (the in-memory estimator's stages)."""

    def __init__(self, data: ValidatedData, *, bandwidth, lam_rel, balance, estimand, seed):
        from .balancing import resolve_bandwidth, standardize
        from .balancing.tuning import select_lam_rel

        self.data = data
        self.Z = standardize(data.X)[0]
        self.bw = float(resolve_bandwidth(self.Z, bandwidth))
        self.gp_lam, self.lam_info = select_lam_rel(self.Z, data.t, data.y, bandwidth=self.bw,
                                                    balance=balance, estimand=estimand,
                                                    seed=seed)
        self.lam = self.gp_lam if lam_rel is None else float(lam_rel)
        self.seed = seed

    def bias_sd(self, imbalance: dict) -> float:
        """The estimator's prior sd of the weighting bias (:func:`cina.effect.bias_sd`) from
        the lam rule's signal variances and the kernel imbalance the weights leave."""
        from .effect import bias_sd

        if not imbalance:
            return 0.0
        signal = {a: self.lam_info.get(f"signal_var_arm{a}", math.nan) for a in (0, 1)}
        return bias_sd(signal, imbalance)

    def se(self, alpha: np.ndarray) -> float:
        from .effect import kernel_loo_residuals, se_from_residual_variance

        resid = kernel_loo_residuals(self.Z, self.data.t, self.data.y, bandwidth=self.bw,
                                     ridge=self.gp_lam, seed=self.seed)
        return se_from_residual_variance(alpha, resid)


def _zero_shot_batch(items: list[tuple], settings: dict) -> list[dict]:
    """Rows of a batch of (group, ValidatedData) through the zero-shot model."""
    import torch

    from .balancing.tuning import GUARD_FACTOR, LAM_MIN
    from .diagnostics import max_abs_smd
    from .model.balancer import problem_index
    from .model.checkpoint import load_pretrained
    from .solvers.zero_shot import MIN_ARM, OVERLAP_MAX_FRACTION, overlap_fractions

    model, _ = load_pretrained()
    cfg = model.config
    estimand, balance = settings["estimand"], settings["balance"]
    rules = [_GroupRules(data, bandwidth=settings["bandwidth"], lam_rel=settings["lam_rel"],
                         balance=balance, estimand=estimand, seed=settings["random_state"])
             for _, data in items]
    B = len(items)
    N = max(r.data.n for r in rules)
    d = rules[0].Z.shape[1]
    z = torch.zeros(B, N, d)
    t = torch.zeros(B, N)
    mask = torch.zeros(B, N, dtype=torch.bool)
    for b, r in enumerate(rules):
        n = r.data.n
        z[b, :n] = torch.as_tensor(r.Z, dtype=torch.float32)
        t[b, :n] = torch.as_tensor(r.data.t, dtype=torch.float32)
        mask[b, :n] = True
    bw = torch.tensor([r.bw for r in rules], dtype=torch.float32)
    lo, hi = cfg.train_lam_rel_range
    lam = np.array([float(np.clip(r.lam, lo, hi)) for r in rules])
    problem = torch.tensor([problem_index(balance, estimand)] * B)
    guarding = np.full(B, settings["lam_rel"] is None)
    alphas: list[np.ndarray | None] = [None] * B
    imbalance: list[dict] = [{} for _ in range(B)]
    density = np.zeros((B, N, 2))
    todo = np.arange(B)
    with torch.inference_mode():
        while len(todo):
            # the batch (first pass) or the groups whose balance guard lowered lam: a kernel of
            # their own, so that a re-run costs only those groups' steps
            n_sub = max(rules[b].data.n for b in todo)
            sel = torch.as_tensor(todo)
            zs, ts, ms = z[sel, :n_sub], t[sel, :n_sub], mask[sel, :n_sub]
            ops = model.kernel_ops(zs, ms, bw[sel])
            out = model(zs, ts, ms, bw[sel], torch.tensor(lam[todo], dtype=torch.float32),
                        problem[sel], ops=ops, extra_steps=settings["max_iter"],
                        extra_tol=settings["tol"])
            raw = out["alpha"].double().numpy()
            redo = []
            for j, b in enumerate(todo):
                r = rules[b]
                n, tb = r.data.n, r.data.t
                if alphas[b] is None:  # the first pass's kernel densities (overlap check)
                    density[b, :n] = out["arm_density"][j, :n].double().numpy()
                a = raw[j, :n]
                if not np.all(np.isfinite(a)):
                    alphas[b] = a  # reported below
                    continue
                a = normalize_per_arm(np.maximum(a, 0.0), tb, empty="uniform", in_place=True)
                if balance == "target" and estimand == "att":
                    a[tb == 1] = 1.0 / int(tb.sum())
                alphas[b] = a
                if guarding[b] and lam[b] > LAM_MIN and \
                        max_abs_smd(r.data.X, tb, a, estimand) > BALANCE_THRESHOLD:
                    lam[b] = max(lam[b] / GUARD_FACTOR, LAM_MIN)
                    redo.append(b)
            _kernel_imbalances(ops, todo, rules, alphas, estimand, n_sub, imbalance)
            todo = np.array(redo, dtype=int)
    rows = []
    lo_n, hi_n = cfg.train_n_range
    for b, ((group, data), r) in enumerate(zip(items, rules, strict=True)):
        a = alphas[b]
        notes = []
        if not np.all(np.isfinite(a)):
            rows.append(_row(group, "failed: the model produced non-finite weights (use "
                                    "method='exact')", data.n, data.n_treated))
            continue
        if data.n > hi_n or data.n < lo_n:
            notes.append(f"N = {data.n} outside the model's training range {lo_n}-{hi_n}")
        small = [f"{nm} = {k}" for nm, k in (("treated", data.n_treated),
                                            ("control", data.n_control)) if k < MIN_ARM]
        if small:
            notes.append(f"fewer than {MIN_ARM} units in an arm ({', '.join(small)})")
        lonely = overlap_fractions(density[b, :data.n], data.t)
        if max(lonely) > OVERLAP_MAX_FRACTION:
            notes.append(f"near-total lack of overlap ({lonely[0]:.0%} of treated and "
                         f"{lonely[1]:.0%} of control units without a counterpart)")
        bias = r.bias_sd(imbalance[b]) if settings["lam_rel"] is None else 0.0
        rows.append(_finish(group, data, a, r.se(a), estimand, settings["alpha"],
                            {"lam_rel": float(lam[b]), "bandwidth": r.bw}, notes, bias))
    return rows


def _kernel_imbalances(ops, todo, rules, alphas, estimand: str, n_sub: int,
                       out: list[dict]) -> None:
    """Each group's squared kernel imbalance per arm, (alpha_a - m)' K (alpha_a - m)
    (:func:`cina.effect.arm_imbalances`), with the batch's kernel: one batched mat-vec."""
    import torch

    V = np.zeros((len(todo), n_sub, 2))
    for j, b in enumerate(todo):
        a, t = alphas[b], rules[b].data.t
        if a is None or not np.all(np.isfinite(a)):
            continue
        target = np.ones(len(t), bool) if estimand == "ate" else t == 1
        m = target / target.sum()
        for arm in (0, 1):
            V[j, :len(t), arm] = np.where(t == arm, a, 0.0) - m
    KV = ops.matvec(torch.as_tensor(V, dtype=torch.float32)).double().numpy()
    for j, b in enumerate(todo):
        out[b] = {arm: max(float(V[j, :, arm] @ KV[j, :, arm]), 0.0) for arm in (0, 1)}


def _estimator_group(item: tuple, settings: dict) -> dict:
    """One group through the registry's estimator (the per-group loop)."""
    from .registry import make_estimator

    group, data = item
    params = {k: settings[k] for k in ("estimand", "balance", "lam_rel", "bandwidth", "max_iter",
                                       "tol", "random_state") if settings.get(k) is not None}
    params.update(GROUP_PIPELINE)  # taken by the estimators that have these settings
    est = make_estimator(settings["method"], **_accepted(settings["method"], params))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit_validated(data)
        except (CInAError, ValueError, np.linalg.LinAlgError) as exc:
            return _row(group, f"failed: {exc}", data.n, data.n_treated)
    notes = [str(w.message) for w in caught
             if not issubclass(w.category, (DeprecationWarning, FutureWarning))]
    res = est.result_
    if res.weights is None:
        lo, hi = res.interval(settings["alpha"])
        return _row(group, STATUS_OK, data.n, data.n_treated, estimate=res.estimate, se=res.se,
                    bias_sd=float(getattr(res, "bias_sd", 0.0) or 0.0), ci_low=lo, ci_high=hi,
                    warnings="; ".join(dict.fromkeys(notes)))
    info = res.info
    return _finish(group, data, res.weights, res.se, res.estimand, settings["alpha"],
                   {"lam_rel": info.get("lam_rel"), "bandwidth": info.get("bandwidth")}, notes,
                   getattr(res, "bias_sd", 0.0))


def _accepted(method: str, params: dict) -> dict:
    import inspect

    from .registry import estimator_class

    names = set(inspect.signature(estimator_class(method).__init__).parameters)
    return {k: v for k, v in params.items() if k in names}


def _run_chunk(items: list[tuple], settings: dict) -> list[dict]:
    """A chunk of groups: one padded batch of the zero-shot model, or a per-group loop, under
    ``settings["threads"]`` threads (None: the caller's limit)."""
    from ._threads import thread_limits

    threads = settings.get("threads")
    with thread_limits(threads) if threads else contextlib.nullcontext():
        if settings["method"] == "zero-shot" and not settings["loop"]:
            try:
                return _zero_shot_batch(items, settings)
            except CInAValidationError:  # a group the batch cannot take: one by one
                pass
        return [_estimator_group(item, settings) for item in items]


def _batches(items: list[tuple], batch_size: int) -> list[list[tuple]]:
    """Groups sorted by size, cut into batches of at most ``batch_size`` whose padded kernel
    (B x N_max^2 float32) fits :data:`BATCH_BYTES`."""
    items = sorted(items, key=lambda it: it[1].n)
    out, cur = [], []
    for it in items:
        n_max = it[1].n  # sorted: the newest is the largest
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * n_max * n_max * 4 > BATCH_BYTES):
            out.append(cur)
            cur = []
        cur.append(it)
    if cur:
        out.append(cur)
    return out


def estimate_by(data: pd.DataFrame, by: str, treatment: str, outcome: str, covariates=None, *,
                method: str = "zero-shot", estimand: str = "ate", balance: str = "target",
                lam_rel: float | None = None, bandwidth=None, max_iter: int | None = None,
                tol: float | None = None, alpha: float = 0.05, treated_level=None,
                min_units: int = MIN_GROUP_UNITS, batch_size: int = DEFAULT_BATCH,
                per_group_loop: bool = False, client=None, progress: bool | None = None,
                random_state: int = 0) -> pd.DataFrame:
    """The effect within each group of column ``by``: one row per group (module doc).

    Parameters
    ----------
    data : DataFrame with the group column, the treatment, the outcome and the covariates.
    by : the group column (not a covariate); missing labels form no group (their rows are
        counted in ``frame.attrs["rows_without_group"]``).
    treatment, outcome, covariates, treated_level : as :func:`cina.io.select_columns` and
        ``validate_inputs`` (covariates None: every column but these three).
    method : "zero-shot" (batched through the pretrained model) or any registry method (a
        per-group loop); ``per_group_loop=True`` runs zero-shot one group at a time too.
    estimand, balance, lam_rel, bandwidth, max_iter, tol, random_state : as :class:`cina.CInA`.
    alpha : the intervals are (1 - alpha) intervals.
    min_units : smaller groups are reported as "too few units".
    batch_size : groups per padded batch (fewer when the batch's kernel would exceed 256 MiB).
    client : a ``distributed.Client``: the batches are spread over its workers.
    progress : a tqdm bar over the groups (None: on a terminal).

    Returns
    -------
    DataFrame with :data:`GROUP_COLUMNS`, one row per group in the order of the groups' labels;
    ``status`` is "ok" for an estimated group.
    """
    from .io import select_columns

    if not isinstance(data, pd.DataFrame):
        raise CInAValidationError(f"estimate_by needs a pandas DataFrame; received "
                                  f"{type(data).__name__}")
    if by not in data.columns:
        from .io import _unknown

        raise _unknown("group (--by)", by, list(data.columns))
    if by in (treatment, outcome):
        raise CInAValidationError(f"the group column {by!r} is also the treatment or the "
                                  "outcome; give another column")
    if covariates is None:
        covariates = [c for c in data.columns if c not in (by, treatment, outcome)]
    elif by in covariates:
        raise CInAValidationError(f"the group column {by!r} is also listed among the "
                                  "covariates; remove it from the covariates")
    from .balancing.weights import check_options

    check_options(balance, estimand, "squared_hinge")
    if not 0 < alpha < 1:
        raise CInAValidationError(f"alpha must be in (0, 1); received {alpha!r}")
    labels = data[by]
    keep = labels.notna().to_numpy()
    frame = data.loc[keep]
    X, t, y = select_columns(frame, treatment, outcome, covariates)
    full = validate_inputs(X, t, y, treated_level=treated_level, treatment_name=str(treatment),
                           outcome_name=str(outcome))
    codes, uniques = pd.factorize(frame[by], sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    rows: dict[int, dict] = {}
    todo: list[tuple] = []
    for g, label in enumerate(uniques):
        idx = np.sort(order[bounds[g]:bounds[g + 1]])
        sub = ValidatedData(X=full.X[idx], t=full.t[idx], y=full.y[idx],
                            feature_names=full.feature_names,
                            index=None if full.index is None else full.index[idx])
        screened = _screen(label, sub, min_units)
        if screened is not None:
            rows[g] = screened
        else:
            todo.append((g, sub))
    settings = {"method": method, "estimand": estimand, "balance": balance, "lam_rel": lam_rel,
                "bandwidth": bandwidth, "max_iter": max_iter, "tol": tol, "alpha": alpha,
                "random_state": random_state, "loop": per_group_loop}
    labelled = [(g, sub) for g, sub in todo]
    chunks = _batches(labelled, batch_size if method == "zero-shot" and not per_group_loop
                      else 16)
    show = show_progress(progress, len(todo) >= 20)
    start = time.perf_counter()
    # threads (docs/method_notes.md section 13): on workers one per task (a worker runs one task
    # per worker thread, and torch's and BLAS's own pools would each take every core of the
    # machine besides); in this process the thread policy for the whole table's units
    from ._threads import fit_threads

    with progress_bar(show, len(todo), f"groups ({method})", "group") as bar, \
            (contextlib.nullcontext() if client is not None
             else fit_threads(None, n_units=sum(sub.n for _, sub in todo))) as choice:
        if client is not None:
            from distributed import as_completed

            futures = client.map(_run_chunk, chunks, settings={**settings, "threads": 1},
                                 pure=False)
            for fut in as_completed(futures):
                for r in fut.result():
                    rows[r["group"]] = r
                    if bar is not None:
                        bar.update(1)
        else:
            for chunk in chunks:
                for r in _run_chunk(chunk, settings):
                    rows[r["group"]] = r
                    if bar is not None:
                        bar.update(1)
    table = pd.DataFrame([rows[g] for g in range(len(uniques))], columns=list(GROUP_COLUMNS))
    table["group"] = list(uniques)
    table.attrs["rows_without_group"] = int((~keep).sum())
    table.attrs["seconds"] = time.perf_counter() - start
    table.attrs["threads_rule"] = "1 per task on the cluster's workers" if choice is None \
        else f"{choice.threads} ({choice.rule})"
    table.attrs["method"] = method
    table.attrs["estimand"] = estimand
    table.attrs["alpha"] = alpha
    return table
