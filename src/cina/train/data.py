"""Training and validation datasets for the zero-shot model, as padded batches.

Dataset ``k`` of a stream is a pure function of ``(seed, k)``: the covariates come from
:func:`cina.datasets.synthetic.sample_scm_arrays` with ``dataset_rng(seed, k)``, and the balancing
problem, lam_rel and bandwidth jitter from a second generator seeded ``(seed, k, 1)``. So the
data-stream position is one integer, ranks take disjoint slices (k = rank, rank + world, ...), and
a resumed run sees exactly the datasets it would have seen.

No real covariate table is used (IHDP, Twins, LaLonde and ACIC are test suites).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..balancing.kernel import median_bandwidth, standardize
from .config import DataConfig

__all__ = ["Problem", "make_problem", "collate", "microbatches"]


@dataclass
class Problem:
    Z: np.ndarray  # (N, d) standardised covariates
    t: np.ndarray  # (N,) int 0/1
    y: np.ndarray  # (N,)
    tau: float  # true effect of the problem's estimand (SATE, or SATT for problem 1)
    bandwidth: float
    lam_rel: float
    problem: int  # index into cina.model.balancer.PROBLEMS
    index: int


def _gaussian(rng: np.random.Generator, n_range, d_range):
    """A tiny Gaussian/binary generator (fast; used by the smoke tests)."""
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    d = int(rng.integers(d_range[0], d_range[1] + 1))
    X = rng.standard_normal((n, d))
    nb = int(rng.integers(0, d + 1))
    X[:, :nb] = (X[:, :nb] > 0).astype(float)
    beta = rng.standard_normal(d) / np.sqrt(d)
    logit = X @ beta * rng.uniform(0.2, 2.0) + rng.uniform(-1, 1)
    t = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    if t.sum() < 5 or (1 - t).sum() < 5:  # keep both arms populated
        t[:5] = 1
        t[5:10] = 0
    mu0 = X @ rng.standard_normal(d) / np.sqrt(d)
    tau_i = 1.0 + 0.5 * X[:, 0]
    y = mu0 + t * tau_i + 0.3 * rng.standard_normal(n)
    return X, t, y, mu0, mu0 + tau_i


def make_problem(seed: int, k: int, cfg: DataConfig, *, n_range=None) -> Problem:
    """Dataset ``k`` of the stream seeded ``seed`` as a balancing problem."""
    n_range = tuple(n_range or cfg.n_range)
    if cfg.generator == "scm":
        from ..datasets.synthetic import dataset_rng, default_prior, sample_scm_arrays

        prior = replace(default_prior(), n_range=n_range, d_range=tuple(cfg.d_range))
        X, t, y, mu0, mu1, _ = sample_scm_arrays(dataset_rng(seed, k), prior, dtype=np.float64)
    elif cfg.generator == "gaussian":
        rng0 = np.random.default_rng([seed, k, 0])
        X, t, y, mu0, mu1 = _gaussian(rng0, n_range, cfg.d_range)
    else:
        raise ValueError(f"unknown generator {cfg.generator!r}")
    rng = np.random.default_rng([seed, k, 1])
    Z, _, _ = standardize(X)
    bw = median_bandwidth(Z, max_units=500, seed=k)
    if rng.random() < cfg.bandwidth_jitter_prob:
        lo, hi = np.log(cfg.bandwidth_jitter_range)
        bw *= float(np.exp(rng.uniform(lo, hi)))
    lo, hi = np.log(cfg.lam_rel_range)
    lam = float(np.exp(rng.uniform(lo, hi)))
    p = np.asarray(cfg.problem_probs, float)
    problem = int(rng.choice(3, p=p / p.sum()))
    t = np.asarray(t, np.int64)
    ite = np.asarray(mu1) - np.asarray(mu0)
    tau = float(ite[t == 1].mean()) if problem == 1 else float(ite.mean())
    return Problem(Z=Z, t=t, y=np.asarray(y, float), tau=tau, bandwidth=float(bw), lam_rel=lam,
                   problem=problem, index=k)


def collate(problems: list[Problem], dtype=torch.float32) -> dict:
    """Pad a list of problems to one batch: z (B, N, D), t, mask (B, N), y, scalars (B,)."""
    B = len(problems)
    N = max(p.Z.shape[0] for p in problems)
    D = max(p.Z.shape[1] for p in problems)
    z = torch.zeros(B, N, D, dtype=dtype)
    t = torch.zeros(B, N, dtype=dtype)
    y = torch.zeros(B, N, dtype=dtype)
    mask = torch.zeros(B, N, dtype=torch.bool)
    for b, p in enumerate(problems):
        n, d = p.Z.shape
        z[b, :n, :d] = torch.as_tensor(p.Z, dtype=dtype)  # zero columns leave z_i . z_j unchanged
        t[b, :n] = torch.as_tensor(p.t, dtype=dtype)
        y[b, :n] = torch.as_tensor(p.y, dtype=dtype)
        mask[b, :n] = True
    return {
        "z": z, "t": t, "y": y, "mask": mask,
        "bandwidth": torch.tensor([p.bandwidth for p in problems], dtype=dtype),
        "lam": torch.tensor([p.lam_rel for p in problems], dtype=dtype),
        "problem": torch.tensor([p.problem for p in problems], dtype=torch.long),
        "tau": torch.tensor([p.tau for p in problems], dtype=dtype),
    }


def microbatches(problems: list[Problem], max_cells: int) -> list[list[Problem]]:
    """Group problems of similar N (sorted) so that len(group) * N_max^2 <= max_cells."""
    order = sorted(problems, key=lambda p: p.Z.shape[0])
    groups: list[list[Problem]] = []
    cur: list[Problem] = []
    for p in order:
        n = p.Z.shape[0]
        if cur and (len(cur) + 1) * n * n > max_cells:
            groups.append(cur)
            cur = []
        cur.append(p)
    if cur:
        groups.append(cur)
    return groups
