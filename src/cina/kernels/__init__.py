"""Kernel operators: one dataset's normalised attention kernel behind one small interface.

=====================  ==========================  ===========================================
kind                   class (dtype)               memory, cost of one mat-vec
=====================  ==========================  ===========================================
``"dense"``            :class:`DenseKernel`         8 n^2 bytes (float64, numpy); O(n^2)
                       (float64),
                       :class:`TorchDenseKernel`    4 n^2 bytes (torch); O(n^2)
                       (float32)
``"nystrom"``          :class:`NystromKernel`       n m floats (m = 256 landmarks, fewer beyond
                                                    the budget); O(n m)
``"random-features"``  :class:`RandomFeatureKernel` n m floats; O(n m) (less accurate than
                                                    Nystrom at every m: kept for comparison)
``"streamed"``         :class:`StreamedKernel`      O(n d) bytes; O(n^2 d) (fused attention)
=====================  ==========================  ===========================================

:func:`make_kernel` builds one; ``kind="auto"`` takes the dense form while its matrix fits the
caller's memory budget (``dense_budget_bytes``; each weight solver states its own, see
:mod:`cina.solvers`) and n is below the solver's ``lowrank_from``, and the low-rank Nystrom
form beyond (docs/method_notes.md section 12, with the measurements behind both thresholds).
A new kind (a distributed operator) is one module with a :class:`KernelOperator` subclass per
dtype, registered with :func:`register_kernel`.
"""

from __future__ import annotations

import numpy as np

from .base import KernelOperator, OperatorBatchOps
from .dense import DenseKernel
from .lowrank import LowRankKernel
from .nystrom import NystromKernel
from .random_features import RandomFeatureKernel
from .torch_kernel import StreamedKernel, TorchDenseKernel, TorchKernel

__all__ = ["KernelOperator", "OperatorBatchOps", "DenseKernel", "TorchKernel",
           "TorchDenseKernel", "StreamedKernel", "LowRankKernel", "NystromKernel",
           "RandomFeatureKernel", "make_kernel", "kernel_class",
           "resolve_kernel_kind", "register_kernel", "kernel_kinds", "KERNEL_DTYPES",
           "DEFAULT_DENSE_BUDGET_BYTES", "LOWRANK_KIND", "LOWRANK_BUDGET_BYTES"]

KERNEL_DTYPES = ("float64", "float32")
#: the default memory budget of ``kind="auto"``: the dense form while its matrix fits 512 MiB
DEFAULT_DENSE_BUDGET_BYTES = 512 * 2**20
#: the form ``kind="auto"`` takes beyond the dense form (docs/method_notes.md section 12)
LOWRANK_KIND = "nystrom"
#: the most memory a low-rank factor holds by default (and at most the solver's own budget):
#: its rank m is lowered beyond (the exact solver keeps m = 256 at N = 1,000,000 in float64; the
#: zero-shot model's 512 MiB budget gives m = 130 there in float32)
LOWRANK_BUDGET_BYTES = 2 * 2**30

# kind -> {dtype: operator class}
_KINDS: dict[str, dict[str, type[KernelOperator]]] = {}


def register_kernel(kind: str, classes: dict[str, type[KernelOperator]]) -> None:
    """Make ``kind`` selectable (``CInA(kernel=kind)``, :func:`make_kernel`): one operator class
    per dtype ("float64" and/or "float32"), each built as ``cls(keys, bandwidth, **options)``."""
    if kind == "auto":
        raise ValueError("'auto' is the budget rule, not a kind")
    _KINDS[kind] = dict(classes)


register_kernel("dense", {"float64": DenseKernel, "float32": TorchDenseKernel})
register_kernel("streamed", {"float64": StreamedKernel, "float32": StreamedKernel})
register_kernel("nystrom", {"float64": NystromKernel, "float32": NystromKernel})
register_kernel("random-features", {"float64": RandomFeatureKernel,
                                    "float32": RandomFeatureKernel})


def kernel_kinds() -> tuple[str, ...]:
    """The accepted ``kernel=`` settings: "auto" and every registered kind."""
    return ("auto", *_KINDS)


def _itemsize(dtype: str) -> int:
    return 8 if dtype == "float64" else 4


def resolve_kernel_kind(kind: str, n: int, d: int, *, dtype: str = "float64",
                        dense_budget_bytes: int = DEFAULT_DENSE_BUDGET_BYTES,
                        lowrank_from: int | None = None) -> str:
    """The kind ``make_kernel`` builds: ``kind`` itself, or for "auto" the dense form while
    :meth:`~KernelOperator.bytes_needed` of its matrix fits ``dense_budget_bytes`` and n is
    below ``lowrank_from`` (a solver's size from which the low-rank form is both accurate
    enough and faster; None: only the budget decides), else the low-rank form
    (:data:`LOWRANK_KIND`)."""
    from ..errors import CInAValidationError

    if kind == "auto":
        dense = kernel_class("dense", dtype)
        fits = dense.bytes_needed(n, d, _itemsize(dtype)) <= dense_budget_bytes
        small = lowrank_from is None or n < lowrank_from
        return "dense" if fits and small else LOWRANK_KIND
    if kind not in _KINDS:
        raise CInAValidationError(f"kernel must be one of {kernel_kinds()}; received {kind!r}")
    return kind


def kernel_class(kind: str, dtype: str = "float64") -> type[KernelOperator]:
    """The operator class of a registered kind in a dtype."""
    from ..errors import CInAValidationError

    if kind not in _KINDS:
        raise CInAValidationError(f"kernel must be one of {kernel_kinds()}; received {kind!r}")
    classes = _KINDS[kind]
    if dtype not in classes:
        raise CInAValidationError(f"kernel {kind!r} has no {dtype} form; it has "
                                  f"{sorted(classes)}")
    return classes[dtype]


def make_kernel(keys: np.ndarray, bandwidth: float, kind: str = "auto", *,
                dtype: str = "float64", dense_budget_bytes: int = DEFAULT_DENSE_BUDGET_BYTES,
                lowrank_from: int | None = None, random_state: int = 0,
                **options) -> KernelOperator:
    """The kernel operator of keys (n, d) at ``bandwidth``; ``options`` go to the class
    (``chunk_size``, ``progress``, ``progress_desc`` for the torch forms; ``rank`` for the
    low-rank forms, which also get ``random_state`` and the memory budget for their factor)."""
    n, d = np.shape(keys)
    kind = resolve_kernel_kind(kind, n, d, dtype=dtype, dense_budget_bytes=dense_budget_bytes,
                               lowrank_from=lowrank_from)
    cls = kernel_class(kind, dtype)
    if cls is DenseKernel:
        return DenseKernel(keys, bandwidth)
    if getattr(cls, "seeded", False):
        options.setdefault("budget_bytes", min(dense_budget_bytes, LOWRANK_BUDGET_BYTES))
        options.setdefault("random_state", random_state)
    return cls(keys, bandwidth, dtype=dtype, **options)
