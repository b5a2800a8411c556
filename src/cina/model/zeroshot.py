"""The zero-shot balancing model (Algorithm 2, METHOD section 6) as a pure ``nn.Module``.

An amortised, unrolled solver of the balancing QP whose only access to the covariates is the
fixed attention-induced kernel of METHOD section 4 (keys = standardised covariates, scores
s_ij = z_i . z_j / bandwidth; the keys never see the treatment, METHOD section 9 items 4 and 6).

Kernel identity used throughout. With log h_i = logsumexp_j s_ij and the normalising constant c
(log of the mean kernel diagonal), log k_ij = s_ij - log h_i - log h_j - c. Writing the key bias
kb_j = -log h_j, the row ``i`` of the kernel is

    k_ij = (K 1)_i * softmax_j(s_ij + kb_j),     (K 1)_i = exp(logsumexp_j(s_ij + kb_j) - log h_i - c)

so a kernel mat-vec ``K V`` is ONE attention call with queries ``[z_i / sqrt(b), 1]``, keys
``[z_j / sqrt(b), kb_j]`` (the bias folded into an extra key dimension, so no N x N mask is ever
built), values ``V`` and the output scaled per row by the kernel density (K 1)_i. Padded units get
kb_j = -1e9: they drop out of every key, sum, softmax and normaliser. Two paths give the same
numbers (tested): a dense path that materialises the (B, N, N) kernel once (small N, training)
and an O(N)-memory path with ``scaled_dot_product_attention`` and row-chunked logsumexps
(large N, inference).

Architecture (one model serves all three balancing problems, METHOD sections 2 and 7):

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
2. runs ``n_steps`` refinement steps: weights = softmax of the logits within each arm (METHOD 9
   item 2), exact QP gradient through one kernel mat-vec (two value channels), and a learned
   mirror-descent update of the logits from per-unit features [logit, gradient standardised
   within arm, log(alpha n_a), unit embedding];
3. reads off alpha (the balancing attention's weights) and the QP objective at alpha, whose log
   is the training loss (METHOD 9 item 1).

The network accepts any number of covariates because covariates only enter through the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ZeroShotConfig", "ZeroShotBalancer", "KernelOps", "PROBLEMS", "problem_index"]

#: problem index -> (balance, estimand)
PROBLEMS = (("target", "ate"), ("target", "att"), ("mutual", "ate"))
_NEG = -1.0e9  # key bias of padded units


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
    # training range, checked by cina.zeroshot (out-of-range warnings)
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


class KernelOps:
    """The fixed normalised attention kernel of a padded batch of datasets (no parameters).

    z (B, N, D) standardised covariates (zeros on padding), mask (B, N) True on real units,
    bandwidth (B,). ``path``: "dense" materialises K (B, N, N); "sdpa" keeps O(N) memory.
    """

    MATVEC_ROWS = 64  # row block of the dense mat-vec at large N (inference)
    MATVEC_BLOCKED_FROM = 3000  # below, one product is faster (measured at N = 1,000-4,000)

    def __init__(self, z: torch.Tensor, mask: torch.Tensor, bandwidth: torch.Tensor,
                 path: str = "dense", chunk_size: int = 1024,
                 progress: Callable[[], None] | None = None):
        if path not in ("dense", "sdpa"):
            raise ValueError(f"path must be 'dense' or 'sdpa'; received {path!r}")
        self.path = path
        self.chunk = int(chunk_size)
        self._progress = progress  # called once per row chunk of the "sdpa" path's passes
        self.mask = mask
        self._density: tuple[torch.Tensor, torch.Tensor] | None = None  # see arm_density
        with torch.no_grad():
            qs = z / torch.sqrt(bandwidth)[:, None, None]  # (B, N, D)
            qs = qs * mask[..., None]
            N = qs.shape[1]
            colbias = torch.where(mask, 0.0, _NEG).to(z.dtype)  # (B, N)
            n = mask.sum(1).to(z.dtype)  # (B,)
            self.n = n
            if path == "dense":
                # the scores are the only N x N buffer; everything below is in place in it:
                # E_ij = exp(s_ij - max_j s_ij) over the real columns, and
                # log h_i = max_j s_ij + log sum_j E_ij
                S = qs @ qs.transpose(1, 2)  # (B, N, N)
                if not bool(mask.all()):
                    S.masked_fill_(~mask[:, None, :], -math.inf)  # padded units in no sum
                rowmax = S.amax(-1, keepdim=True)  # (B, N, 1), finite: every row has a real unit
                S.sub_(rowmax)
                S.exp_()
                rowsum = S.sum(-1)  # (B, N)
                log_h = rowmax[..., 0] + torch.log(rowsum)  # (B, N)
            else:
                kt = qs.transpose(1, 2)
                log_h = self._chunked_lse(lambda a, b: qs[:, a:b] @ kt, N, colbias)
            sq = (qs * qs).sum(-1)  # (B, N)
            logdiag = sq - 2.0 * log_h  # log k_ii before normalisation
            logdiag_m = torch.where(mask, logdiag, -math.inf)
            c = torch.logsumexp(logdiag_m, dim=1) - torch.log(n)  # (B,) log mean diagonal
            self.keybias = colbias - log_h  # (B, N)
            self.row_shift = log_h + c[:, None]  # (B, N): log k_ij = s_ij + kb_j - shift_i
            self.log_kdiag = logdiag - c[:, None]  # (B, N) log k_ii (normalised)
            if path == "dense":
                # k_ij = M_ij exp(-shift_j) with M_ij = exp(s_ij - log h_i) = E_ij / sum_j E_ij
                # (s symmetric): one scaling pass; padded rows and columns are exact zeros, and
                # the per-unit factor exp(-shift_j) is applied to the mat-vec's output
                S.mul_((mask / rowsum)[..., None])
                self._M = S  # (B, N, N)
                self._out_scale = torch.where(mask, torch.exp(-self.row_shift), 0.0)  # (B, N)
                self.log_rowsum = (torch.log(S.sum(1).clamp_min(1e-30)) - self.row_shift)
            else:
                self._M = None
                self.log_rowsum = self._chunked_lse(lambda a, b: qs[:, a:b] @ kt, N,
                                                    self.keybias) - self.row_shift
                # queries [qs, 1], keys [qs, kb]: q_i . k_j = s_ij + kb_j
                ones = torch.ones_like(qs[..., :1])
                self._q = torch.cat([qs, ones], -1)  # (B, N, D+1)
                self._k = torch.cat([qs, self.keybias[..., None]], -1)  # (B, N, D+1)
            self.log_rowsum = torch.where(mask, self.log_rowsum, 0.0)

    def _chunked_lse(self, scores, N: int, colbias: torch.Tensor) -> torch.Tensor:
        """logsumexp_j (scores_ij + colbias_j) for rows in chunks (O(N * chunk) temporaries);
        ``scores(a, b)`` gives rows a:b of the scores, (B, b - a, N)."""
        out = []
        for a in range(0, N, self.chunk):
            out.append(torch.logsumexp(scores(a, a + self.chunk) + colbias[:, None, :], dim=-1))
            if self._progress is not None:
                self._progress()
        return torch.cat(out, 1)

    @staticmethod
    def n_progress_chunks(N: int, path: str, chunk_size: int) -> int:
        """How many times ``progress`` is called while building the kernel of N units."""
        return 2 * math.ceil(N / chunk_size) if path == "sdpa" else 0

    def arm_density(self, t: torch.Tensor, mk: torch.Tensor) -> torch.Tensor:
        """(K 1_T, K 1_C) (B, N, 2) for treatment t, cached: the same kernel serves several
        lam (the estimator's balance guard) without recomputing it."""
        cached = self._density
        if cached is not None and cached[0].shape == t.shape and torch.equal(cached[0], t):
            return cached[1]
        with torch.no_grad():
            KA = self.matvec(torch.stack([t * mk, (1 - t) * mk], -1))
        self._density = (t.detach().clone(), KA)
        return KA

    def matvec(self, V: torch.Tensor) -> torch.Tensor:
        """K V for V (B, N, m); differentiable in V."""
        if self.path == "dense":  # (K V)_j = exp(-shift_j) sum_i M_ij V_i: (V' M)' is ~5x
            # faster than M' V for thin V
            Vt = V.transpose(1, 2)  # (B, m, N)
            N = Vt.shape[-1]
            if N < self.MATVEC_BLOCKED_FROM or torch.is_grad_enabled():
                out = Vt @ self._M
            else:  # blocks of rows: a block stays in cache for every value column (a single
                # (m, N) x (N, N) product streams the matrix from memory once per value column
                # once it outgrows the cache: ~25% faster at N = 10,000)
                out = torch.zeros(Vt.shape[0], Vt.shape[1], N, dtype=V.dtype, device=V.device)
                for a in range(0, N, self.MATVEC_ROWS):
                    out.baddbmm_(Vt[..., a:a + self.MATVEC_ROWS], self._M[:, a:a + self.MATVEC_ROWS])
            return out.transpose(1, 2) * self._out_scale[..., None]
        B, N, m = V.shape
        D1 = self._q.shape[-1]
        width = max(D1, m)  # the fused CPU kernel wants equal head dims: pad q, k and v
        q = F.pad(self._q, (0, width - D1))
        k = F.pad(self._k, (0, width - D1))
        v = F.pad(V, (0, width - m))
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)
        return torch.exp(self.log_rowsum)[..., None] * out[:, 0, :, :m]


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
