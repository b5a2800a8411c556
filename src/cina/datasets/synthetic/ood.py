"""Out-of-distribution presets: the default prior with one axis pushed out of its
training range."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ._common import OOD_KINDS, _fail
from .prior import SCMPrior, default_prior

_OOD_CHANGES: dict[str, dict[str, Any]] = {
    # denser graphs: ER edge probability 0.5-0.9 (default 0-0.4)
    "dense": {"density_range": (0.5, 0.9)},
    # mechanism types never seen in pretraining: periodic sin and multiplicative interactions
    "mechanism": {"mechanisms": ("sine", "interaction")},
    # much weaker overlap: logit sd 3-5 (default 0.1-2), propensities clipped only at 0.001
    "overlap": {"logit_scale_range": (3.0, 5.0), "propensity_clip": 0.001},
    # wide tables: d 51-100 columns (default 2-50)
    "wide": {"d_range": (51, 100)},
    # large datasets: N 2,001-10,000 (default 100-2,000)
    "large": {"n_range": (2001, 10000)},
}


def ood_prior(kind: str, base: SCMPrior | None = None) -> SCMPrior:
    """An out-of-distribution prior: ``base`` (default: :func:`default_prior`) with one axis moved.

    * ``"dense"``: ER edge probability 0.5-0.9 instead of 0-0.4.
    * ``"mechanism"``: only mechanisms absent from pretraining (``sine``: sums of sin waves of the
      parents; ``interaction``: products of random projections of the parents).
    * ``"overlap"``: logit sd 3-5 instead of 0.1-2 and a clip of 0.001 instead of 0.01, so many
      propensities lie near 0 or 1.
    * ``"wide"``: d 51-100 columns instead of 2-50.
    * ``"large"``: N 2,001-10,000 instead of 100-2,000.
    """
    if kind not in _OOD_CHANGES:
        _fail(f"unknown OOD kind {kind!r}; expected one of {OOD_KINDS}")
    return replace(base if base is not None else default_prior(), **_OOD_CHANGES[kind])
