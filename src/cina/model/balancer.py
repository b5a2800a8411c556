"""The zero-shot balancing model as a pure ``nn.Module``: a learned, unrolled mirror-descent
solver of the balancing QP.

What it is. Given one dataset's fixed attention-induced kernel (keys = standardised covariates,
scores s_ij = z_i . z_j / bandwidth; the keys never see the treatment), the model predicts the
solution alpha of the balancing QP (docs/method_notes.md sections 3-4) by a fixed number of
refinement steps. Every step is one kernel mat-vec K [r_T, r_C] (the QP's exact gradient), a
learned per-unit update of the logits, and a softmax within each arm (the weights of a balancing
attention). It is not a transformer whose last attention layer outputs the weights: it never
learns the kernel, and its learned parts only choose the steps. Where it follows the paper's
Algorithm 2 and where it departs, with the measurements: docs/method_notes.md section 9.

Its only access to the covariates is the kernel, through ``ops`` (a
:class:`cina.kernels.batched.KernelOps` for batches, or any kernel operator's
:meth:`~cina.kernels.KernelOperator.batch_ops`): ``matvec``, ``arm_density`` and ``log_kdiag``.
So the model accepts any number of covariates and any kernel representation.

One model serves all three balancing problems:

* problem 0 = ``balance="target", estimand="ate"``: each arm balanced to the whole sample;
* problem 1 = ``balance="target", estimand="att"``: treated fixed uniform, controls balanced to
  the treated;
* problem 2 = ``balance="mutual"``: the paper's (P), arms balanced to each other.

In every case arm ``a`` has a residual r_a = alpha * 1_a - m_a (m_a = 1/N for the ATE, 1_T/n_1 for
the ATT, the other arm's weights for mutual) and the QP gradient on unit i of arm a is
g_i = (K r_a)_i + lam alpha_i. The model

1. computes dimension-agnostic unit features through the kernel (log kernel densities of each arm
   and of the sample, log k_ii, arm, arm shares, log N, log lam_rel, problem one-hot), plus
   DeepSets context (masked means per arm), and encodes them with an MLP into initial logits;
2. runs ``n_steps`` refinement steps: weights = softmax of the logits within each arm, exact QP
   gradient through one kernel mat-vec (two value channels), and a learned mirror-descent update
   of the logits from per-unit features [logit, gradient standardised within arm,
   log(alpha n_a), unit embedding], followed by an exact line search (monotone descent);
3. at inference, up to ``extra_steps`` weight-tied steps more, until the objective stalls;
4. reads off alpha and the QP objective at alpha, whose log is the training loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.batched import KernelOps

__all__ = ["ZeroShotConfig", "ZeroShotBalancer", "KernelOps", "PROBLEMS", "problem_index"]

#: problem index -> (balance, estimand)
PROBLEMS = (("target", "ate"), ("target", "att"), ("mutual", "ate"))


def problem_index(balance: str, estimand: str) -> int:
    key = (balance, "ate" if balance == "mutual" else estimand)
    if key not in PROBLEMS:
        raise ValueError(f"unknown balancing problem balance={balance!r}, estimand={estimand!r}")
    return PROBLEMS.index(key)


@dataclass
class ZeroShotConfig:
    hidden: int = 64  # width of unit embeddings
    n_encoder_layers: int = 2  # residual MLP blocks of the unit encoder
    step_hidden: int = 64  # width of the refinement MLP
    n_steps: int = 6  # unrolled refinement steps (speed/accuracy knob)
    line_search: bool = True  # exact line search towards each step's proposal (monotone descent)
    # "auto" path: the dense kernel while the (B, N, N) float32 buffer fits in this many bytes
    # (512 MiB: N <= 11,585 for one dataset, a batch of 16 at N = 2,896), else O(N)-memory SDPA
    dense_max_bytes: int = 512 * 2**20
    # inference (eval mode): after the n_steps trained steps, up to extra_steps more steps that
    # reuse the last step's parameters (weight-tied), each dataset stopping once its QP
    # objective has fallen by at most extra_tol (relative) per step on average over the last
    # ZeroShotBalancer.STOP_WINDOW steps; the exact line search keeps every step monotone.
    # Training runs tied steps only when asked (cina.train: optim.train_extra_steps)
    extra_steps: int = 100
    extra_tol: float = 3e-4
    chunk_size: int = 1024  # rows per chunk of the O(N)-memory logsumexps
    # training range, checked by cina.solvers.zero_shot (out-of-range warnings)
    train_n_range: tuple[int, int] = (100, 2000)
    train_d_range: tuple[int, int] = (1, 50)
    train_lam_rel_range: tuple[float, float] = (0.01, 3.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ZeroShotConfig:
        d = dict(d)
        d.pop("dense_max_n", None)  # zeroshot-v1's header: an inference setting, now a budget
        for k in ("train_n_range", "train_d_range", "train_lam_rel_range"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


N_UNIT_FEATURES = 15  # see KernelOps.unit_features


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, N, F) over units where m (B, N) is 1 -> (B, F)."""
    w = m / m.sum(1, keepdim=True).clamp_min(1.0)
    return torch.einsum("bn,bnf->bf", w, x)


def _arm_softmax(logits: torch.Tensor, sel: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Softmax of logits (B, N) within each arm; zero on padding. -> alpha (B, N).
    ``sel``: the arms' unit selections (:attr:`_BatchProblem.sel`)."""
    out = torch.zeros_like(logits)
    for s in sel:
        lg = torch.where(s, logits, -math.inf)
        p = torch.softmax(lg, dim=1)
        p = torch.nan_to_num(p, nan=0.0)  # an empty arm (never in valid data) stays zero
        out = out + torch.where(s, p, 0.0)
    return out


class _BatchProblem:
    """What a forward pass uses on every refinement step and that depends only on (t, mask,
    problem): computed once per forward instead of once per step (the same values, so the
    same results; at N = 1,000 the per-step small tensor ops are a third of the model's time).
    """

    def __init__(self, t: torch.Tensor, mask: torch.Tensor, problem: torch.Tensor):
        self.t, self.mask = t, mask
        self.omt = 1.0 - t
        mk = mask.to(t.dtype)
        n = mk.sum(1, keepdim=True)
        n1 = (t * mk).sum(1, keepdim=True).clamp_min(1.0)
        ate = mk / n
        att = t * mk / n1
        p = problem[:, None]
        self.mutual = p == 2  # (B, 1): the arms are balanced to each other
        self.any_mutual = bool(self.mutual.any())
        self.m_ate_att = torch.where(p == 1, att, ate)  # target measure of the other problems
        self.treated = t > 0.5
        self.sel = (self.treated & mask, (self.omt > 0.5) & mask)  # arm selections
        self.is_ate, self.is_att = problem == 0, problem == 1
        # step features: arm indicators (B, N, 2), arm sizes (B, 2, 1), real units (B, N, 1)
        self.A = torch.stack([t * mk, (1 - t) * mk], -1)
        self.cnt = self.A.sum(1).clamp_min(1.0)[..., None]
        self.in_arm = self.A.sum(-1, keepdim=True) > 0
        self.t_mk = t * mk

    def targets(self, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.any_mutual:  # torch.where would select m_ate_att everywhere
            return self.m_ate_att, self.m_ate_att
        mT = torch.where(self.mutual, alpha * self.omt, self.m_ate_att)
        mC = torch.where(self.mutual, alpha * self.t, self.m_ate_att)
        return mT, mC


class _MLP(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int, n_layers: int = 2):
        super().__init__()
        self.inp = nn.Linear(d_in, d_hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d_hidden), nn.Linear(d_hidden, d_hidden), nn.GELU(),
                          nn.Linear(d_hidden, d_hidden)) for _ in range(n_layers))
        self.out = nn.Sequential(nn.LayerNorm(d_hidden), nn.Linear(d_hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


class ZeroShotBalancer(nn.Module):
    """Predicts balancing weights for a padded batch of datasets in one forward pass."""

    N_STEP_FEATURES = 7
    STOP_WINDOW = 5  # steps over which the tied steps' progress is measured

    def __init__(self, config: ZeroShotConfig):
        super().__init__()
        self.config = config
        H = config.hidden
        # unit encoder: [unit features, context(treated), context(control)] -> embedding
        self.encoder = _MLP(3 * N_UNIT_FEATURES, H, H, config.n_encoder_layers)
        self.init_head = nn.Linear(H, 1)
        self.step_in = nn.Linear(H, config.step_hidden)
        self.step_mlp = nn.ModuleList(
            nn.Sequential(nn.Linear(self.N_STEP_FEATURES + config.step_hidden, config.step_hidden),
                          nn.GELU(), nn.Linear(config.step_hidden, config.step_hidden), nn.GELU(),
                          nn.Linear(config.step_hidden, 1)) for _ in range(config.n_steps))
        # learned mirror-descent step size per refinement step (plus the MLP correction)
        self.log_eta = nn.Parameter(torch.full((config.n_steps,), math.log(0.5)))
        with torch.no_grad():
            for m in self.step_mlp:
                m[-1].weight.mul_(0.1)
                m[-1].bias.zero_()
            self.init_head.weight.mul_(0.1)
            self.init_head.bias.zero_()

    # ------------------------------------------------------------------------------------------
    def choose_path(self, N: int, path: str = "auto", B: int = 1, itemsize: int = 4) -> str:
        """The kernel path ("dense" or "sdpa") for B datasets padded to N units of itemsize
        bytes: dense while the (B, N, N) buffer fits ``config.dense_max_bytes``."""
        if path == "auto":
            return "dense" if B * N * N * itemsize <= self.config.dense_max_bytes else "sdpa"
        return path

    @staticmethod
    def targets(alpha: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, problem: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Target measures (m_T, m_C) (B, N) of each arm's residual r_a = alpha 1_a - m_a."""
        return _BatchProblem(t, mask, problem).targets(alpha)

    def residual_matvec(self, ops: KernelOps, alpha: torch.Tensor, t: torch.Tensor,
                        mask: torch.Tensor, problem: torch.Tensor,
                        bp: _BatchProblem | None = None) -> torch.Tensor:
        """K [r_T, r_C] (B, N, 2) for the arm residuals at alpha: one attention call.
        ``bp``: the batch's :class:`_BatchProblem`, if already built."""
        bp = _BatchProblem(t, mask, problem) if bp is None else bp
        mT, mC = bp.targets(alpha)
        return ops.matvec(torch.stack([alpha * bp.t - mT, alpha * bp.omt - mC], -1))

    def qp_from(self, alpha: torch.Tensor, KR: torch.Tensor, t: torch.Tensor,
                mask: torch.Tensor, lam: torch.Tensor, problem: torch.Tensor,
                bp: _BatchProblem | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(gradient g (B, N) of the QP on each unit (halved), objective (B,)) given KR."""
        bp = _BatchProblem(t, mask, problem) if bp is None else bp
        mT, mC = bp.targets(alpha)
        rT = alpha * bp.t - mT
        rC = alpha * bp.omt - mC
        g = torch.where(bp.treated, KR[..., 0], KR[..., 1]) + lam[:, None] * alpha
        quadT = (rT * KR[..., 0]).sum(1)
        quadC = (rC * KR[..., 1]).sum(1)
        ridgeT = lam * (alpha * alpha * bp.t).sum(1)
        ridgeC = lam * (alpha * alpha * bp.omt).sum(1)
        obj = torch.where(bp.is_ate, quadT + quadC + ridgeT + ridgeC,
                          torch.where(bp.is_att, quadC + ridgeC, quadT + ridgeT + ridgeC))
        return g * bp.mask, obj

    def qp_terms(self, ops: KernelOps, alpha: torch.Tensor, t: torch.Tensor,
                 mask: torch.Tensor, lam: torch.Tensor, problem: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(gradient g (B, N) of the QP on each unit (halved), objective (B,))."""
        bp = _BatchProblem(t, mask, problem)
        KR = self.residual_matvec(ops, alpha, t, mask, problem, bp)
        return self.qp_from(alpha, KR, t, mask, lam, problem, bp)

    def unit_features(self, ops: KernelOps, t: torch.Tensor, mask: torch.Tensor,
                      lam: torch.Tensor, problem: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Dimension-agnostic per-unit features (B, N, N_UNIT_FEATURES) and the arm kernel
        densities (K 1_T, K 1_C) (B, N, 2)."""
        mk = mask.to(t.dtype)
        n = mk.sum(1, keepdim=True)
        n1 = (t * mk).sum(1, keepdim=True).clamp_min(1.0)
        n0 = ((1 - t) * mk).sum(1, keepdim=True).clamp_min(1.0)
        KA = ops.arm_density(t, mk)  # (B, N, 2)
        ldT = torch.log(KA[..., 0].clamp_min(1e-30) / n1)  # log mean kernel to treated
        ldC = torch.log(KA[..., 1].clamp_min(1e-30) / n0)
        ldA = torch.log((KA[..., 0] + KA[..., 1]).clamp_min(1e-30) / n)
        ldiag = ops.log_kdiag
        own = torch.where(t > 0.5, ldT, ldC)
        other = torch.where(t > 0.5, ldC, ldT)

        def centre(x):
            return x - (_masked_mean(x[..., None], mk)[:, 0])[:, None]

        ones = torch.ones_like(t)
        share = n1 / n
        feats = [
            ldA - ldiag, own - ldiag, other - ldiag,  # densities relative to self-similarity
            centre(own - ldA), centre(other - ldA), centre(own - other),
            ldiag / 10.0, t, ones * share, ones * torch.log(n) / 8.0,
            ones * torch.log(lam)[:, None] / 3.0,
            (problem[:, None] == 0).to(t.dtype) * ones, (problem[:, None] == 1).to(t.dtype) * ones,
            (problem[:, None] == 2).to(t.dtype) * ones, ones * torch.log(n1 / n0) / 3.0,
        ]
        x = torch.stack(feats, -1)
        return torch.nan_to_num(x.clamp(-30.0, 30.0)) * mk[..., None], KA

    def kernel_ops(self, z: torch.Tensor, mask: torch.Tensor, bandwidth: torch.Tensor,
                   path: str = "auto", progress: Callable[[], None] | None = None) -> KernelOps:
        """The fixed kernel of a padded batch (no parameters; reusable across lam and calls).
        ``progress``: called once per row chunk on the O(N)-memory path (see KernelOps)."""
        B, N, _ = z.shape
        return KernelOps(z, mask, bandwidth.to(z.dtype),
                         self.choose_path(N, path, B, z.element_size()), self.config.chunk_size,
                         progress)

    # ------------------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor,
                bandwidth: torch.Tensor, lam: torch.Tensor, problem: torch.Tensor,
                path: str = "auto", return_trace: bool = False,
                extra_steps: int | None = None, extra_tol: float | None = None,
                ops: KernelOps | None = None,
                on_step: Callable[[int], None] | None = None) -> dict:
        """z (B, N, D), t (B, N) in {0,1}, mask (B, N) bool, bandwidth (B,), lam (B,) = lam_rel,
        problem (B,) long in {0,1,2}. Returns dict(alpha (B, N), arm_density (B, N, 2) = (K 1_T,
        K 1_C), objective (B,) at alpha, steps (B,) (refinement steps run per dataset), and with
        ``return_trace`` the objectives before each step and at the end, a list of (B,)).

        ``extra_steps`` / ``extra_tol`` (default: the config's) run weight-tied steps after the
        trained ones (see :class:`ZeroShotConfig`); in training mode there are none unless
        ``extra_steps`` is given, and then exactly that many (no stopping rule). ``ops``: the
        kernel of (z, mask, bandwidth) from :meth:`kernel_ops`, to reuse it across calls.
        ``on_step(k)``: called after the k-th refinement step (for a progress display)."""
        t = t.to(z.dtype) * mask
        if ops is None:
            ops = self.kernel_ops(z, mask, bandwidth, path)
        lam = lam.to(z.dtype)
        mk = mask.to(z.dtype)
        x, arm_density = self.unit_features(ops, t, mask, lam, problem)  # (B, N, F), (B, N, 2)
        ctxT = _masked_mean(x, t * mk)
        ctxC = _masked_mean(x, (1 - t) * mk)
        own_ctx = torch.where(t[..., None] > 0.5, ctxT[:, None], ctxC[:, None])
        oth_ctx = torch.where(t[..., None] > 0.5, ctxC[:, None], ctxT[:, None])
        h = self.encoder(torch.cat([x, own_ctx.expand_as(x), oth_ctx.expand_as(x)], -1))
        logits = self.init_head(h)[..., 0]  # (B, N)
        hs = self.step_in(h)  # (B, N, step_hidden)
        fixed = (problem[:, None] == 1) & (t > 0.5)  # ATT: treated weights stay uniform
        logits = torch.where(fixed, 0.0, logits)
        nT = (t * mk).sum(1, keepdim=True).clamp_min(1.0)
        nC = ((1 - t) * mk).sum(1, keepdim=True).clamp_min(1.0)
        n_arm = torch.where(t > 0.5, nT, nC)
        trace = []
        bp = _BatchProblem(t, mask, problem)  # the per-step constants, built once
        alpha = _arm_softmax(logits, bp.sel)
        KR = self.residual_matvec(ops, alpha, t, mask, problem, bp)
        g, obj = self.qp_from(alpha, KR, t, mask, lam, problem, bp)
        prev = torch.zeros_like(logits)
        n_trained = self.config.n_steps
        if self.training:  # tied steps only when asked for, and then exactly that many (so that
            # fine-tuning with tied steps backpropagates through a fixed unroll)
            extra = 0 if extra_steps is None else int(extra_steps)
            tol = -math.inf
        else:
            extra = int(self.config.extra_steps if extra_steps is None else extra_steps)
            tol = float(self.config.extra_tol if extra_tol is None else extra_tol)
        # per dataset: still moving? A dataset stops (its weights freeze) once its objective has
        # fallen by at most tol per step on average over the last STOP_WINDOW steps (a window,
        # because single steps can stall; checked from the end of the trained steps on, so a
        # problem the trained steps already solved takes no tied step); per dataset, so padding
        # a batch with other datasets never changes a dataset's weights
        active = torch.ones_like(obj, dtype=torch.bool)
        steps_run = torch.zeros_like(obj, dtype=torch.long)
        history: list[torch.Tensor] = []
        unit_part: dict[int, torch.Tensor] = {}
        for s in range(n_trained + extra):
            if s >= n_trained and len(history) >= self.STOP_WINDOW:
                old = history[-self.STOP_WINDOW]
                drop = (old - obj) / (self.STOP_WINDOW * old.abs().clamp_min(1e-30))
                active = active & (drop > tol)
                if not bool(active.any()):
                    break
            history.append(obj)
            steps_run += active
            if return_trace:
                trace.append(obj)
            k = min(s, n_trained - 1)  # beyond the trained steps: the last step's parameters
            feats = self._step_features(logits, g, alpha, mk, n_arm, prev, bp)
            upd = self._step_update(k, feats, hs, unit_part)
            cand_logits = logits - torch.exp(self.log_eta[k]) * feats[..., 1] + upd
            cand_logits = torch.where(fixed, 0.0, cand_logits)
            cand = _arm_softmax(cand_logits, bp.sel)
            KR_c = self.residual_matvec(ops, cand, t, mask, problem, bp)
            if not self.config.line_search:
                keep = ~active[:, None]
                cand_logits = torch.where(keep, logits, cand_logits)
                cand = torch.where(keep, alpha, cand)
                KR_c = torch.where(keep[..., None], KR, KR_c)
                prev = cand_logits - logits
                alpha, logits, KR = cand, cand_logits, KR_c
                g, obj = self.qp_from(alpha, KR, t, mask, lam, problem, bp)
                if on_step is not None:
                    on_step(s + 1)
                continue
            # exact line search on alpha + gamma (cand - alpha), gamma in [0, 1]: the residuals
            # are affine in alpha, so K r along the line interpolates and costs no extra mat-vec
            _, obj_c = self.qp_from(cand, KR_c, t, mask, lam, problem, bp)
            slope = 2.0 * (g * (cand - alpha)).sum(1)  # f'(0)
            curv = obj_c - obj - slope  # f(1) - f(0) - f'(0) = quadratic coefficient
            convex = curv > 1e-12 * obj.abs()
            safe = torch.where(convex, curv, torch.ones_like(curv))  # no inf/NaN in either branch
            gamma = torch.where(convex, -slope / (2.0 * safe), (obj_c < obj).to(obj.dtype))
            gamma = (gamma.clamp(0.0, 1.0) * active)[:, None]  # stopped datasets stay put
            alpha = alpha + gamma * (cand - alpha)
            KR = KR + gamma[..., None] * (KR_c - KR)
            new_logits = torch.where(mask, torch.log(alpha.clamp_min(1e-30)), 0.0)
            new_logits = torch.where(fixed, 0.0, new_logits)
            prev, logits = new_logits - logits, new_logits  # last move: a learned momentum
            g, obj = self.qp_from(alpha, KR, t, mask, lam, problem, bp)
            if on_step is not None:
                on_step(s + 1)
        out = {"alpha": alpha, "arm_density": arm_density, "objective": obj, "steps": steps_run}
        if return_trace:
            trace.append(obj)
            out["trace"] = trace
        return out

    @staticmethod
    def _step_features(logits, g, alpha, mk, n_arm, prev, bp: _BatchProblem):
        """Per-unit refinement features (B, N, 7): logit, gradient and last move standardised
        within each arm (mean and standard deviation over the arm's units), log(alpha n_a),
        alpha n_a, arm, mask. ``bp``: the batch's per-step constants."""
        X = torch.stack([logits, g, prev], -1)  # (B, N, 3)
        A, cnt = bp.A, bp.cnt  # (B, N, 2) arm indicators, (B, 2, 1) arm sizes
        mu = torch.einsum("bna,bnf->baf", A, X) / cnt  # (B, 2, 3) arm means
        centred = X - torch.einsum("bna,baf->bnf", A, mu)
        sd = torch.sqrt(torch.einsum("bna,bnf->baf", A, centred ** 2) / cnt + 1e-20)
        scale = torch.einsum("bna,baf->bnf", A, sd + 1e-12 + 1e-6 * mu.abs())
        in_arm = bp.in_arm  # False on padding
        xs = torch.where(in_arm, centred / torch.where(in_arm, scale, 1.0), 0.0)
        am = alpha * n_arm
        rest = torch.stack([torch.log(am.clamp_min(1e-12)) / 5.0, am.clamp_max(20.0) / 5.0,
                            bp.t_mk, mk], -1)
        return torch.cat([xs, rest], -1) * mk[..., None]

    def _step_update(self, k: int, feats: torch.Tensor, hs: torch.Tensor,
                     unit_part: dict) -> torch.Tensor:
        """step_mlp[k]([feats, hs]) (B, N), with the first layer split so that its hs part,
        constant over the steps, is computed once per step MLP (the tied steps reuse it)."""
        mlp = self.step_mlp[k]
        first = mlp[0]
        nf = self.N_STEP_FEATURES
        if k not in unit_part:
            unit_part[k] = F.linear(hs, first.weight[:, nf:], first.bias)
        h = F.linear(feats, first.weight[:, :nf]) + unit_part[k]
        for layer in list(mlp)[1:]:
            h = layer(h)
        return h[..., 0]
