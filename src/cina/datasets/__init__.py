"""Benchmark data: real datasets shipped with the package and synthetic generators.

Real data (``real.py``) and the synthetic prior (``synthetic.py``) both return
:class:`CausalDataset` objects. This package never imports the model or the estimators.
"""

from ._base import CausalDataset

__all__ = ["CausalDataset"]

try:  # filled in by the loaders module
    from .real import *  # noqa: F401,F403
    from .real import __all__ as _real_all

    __all__ += list(_real_all)
except ImportError:  # pragma: no cover - during development only
    pass

try:
    from .synthetic import *  # noqa: F401,F403
    from .synthetic import __all__ as _syn_all

    __all__ += list(_syn_all)
except ImportError:  # pragma: no cover
    pass
