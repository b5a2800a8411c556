"""Pure ``nn.Module`` models: the balancing attention layer (Algorithm 1, trained per dataset)
and the zero-shot balancer (a learned, unrolled mirror-descent solver of the balancing QP whose
every step is one kernel mat-vec; docs/method_notes.md section 9). Nothing here imports the
estimator, the solvers or the CLI; the kernel comes from :mod:`cina.kernels`."""

from .attention import BalancingAttention, KeyMap, log_attention_kernel

__all__ = ["BalancingAttention", "KeyMap", "log_attention_kernel"]
