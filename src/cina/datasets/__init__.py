"""Benchmark data: real datasets shipped with the package and synthetic generators.

Real data (``real.py``) and the synthetic prior (``synthetic.py``) both return
:class:`CausalDataset` objects. This package never imports the model or the estimators.
"""

from . import literature, real, realistic, synthetic
from ._base import CausalDataset
from .literature import *  # noqa: F401,F403
from .real import *  # noqa: F401,F403
from .realistic import *  # noqa: F401,F403
from .synthetic import *  # noqa: F401,F403

__all__ = ["CausalDataset", *real.__all__, *synthetic.__all__, *realistic.__all__,
           *literature.__all__]
