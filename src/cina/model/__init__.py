"""Pure ``nn.Module`` models: the balancing attention layer (Algorithm 1) and the zero-shot
balancing transformer (Algorithm 2). Nothing here imports the estimator or the CLI."""

from .attention import BalancingAttention, KeyMap, log_attention_kernel

__all__ = ["BalancingAttention", "KeyMap", "log_attention_kernel"]
