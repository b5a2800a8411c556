"""Realistic generators fitted to the real tables shipped with the package.

=============  =====================================  ==========================================
table          rows x columns, treatment              outcome the arms are fitted to
=============  =====================================  ==========================================
lalonde-psid   2,675 x 8: 185 NSW treated + 2,490     re78 (1978 earnings; hurdle: 24% / 11%
               PSID-1 controls, the real assignment   zeros in the treated / control arm)
lalonde-cps    16,177 x 8: 185 NSW treated + 15,992   re78, as above; the CPS controls' earnings
               CPS-1 controls, the real assignment    are top-coded (26% at 25,564.67)
twins          11,984 x 75: the published (simulated, both potential outcomes, one-year
               confounded) heavier-twin assignment    mortality of the lighter (y0) and heavier
               of the source file                     (y1) twin, observed for every pair
ihdp           747 x 25: the real IHDP treatment      the factual outcome of NPCI realization
                                                      ``base`` (1-4; simulated by Hill 2011,
                                                      the real outcome is not public)
acic2016       4,802 x 82 (58 covariates, 3 one-hot   the outcome of ACIC 2016 setting ``base``
               encoded): the assignment of ACIC 2016  (simulated by the competition's DGP; the
               setting ``base``                       real covariates come without a real
                                                      outcome or treatment)
=============  =====================================  ==========================================

For ACIC the bases are the settings 4, 28, 44 and 71, chosen among the full-overlap settings
(the "one-term" settings exclude a region from treatment on purpose, which leaves an ATE that
no method can identify) to span the DGP's treatment models (polynomial, step), treated shares
(0.35, 0.65), response models (exponential, step) and heterogeneity (medium, high).

A generator is fitted once per process (:func:`realistic_generator` is cached) and is
deterministic; :func:`sample_realistic` draws datasets from it.
"""

from __future__ import annotations

from functools import lru_cache
from numbers import Integral

import numpy as np

from ...errors import CInAValidationError
from .._base import CausalDataset
from .generator import RealisticGenerator, fit_realistic

__all__ = ["REALISTIC_TABLES", "REALISTIC_BASES", "realistic_generator", "sample_realistic",
           "generator_name"]

REALISTIC_TABLES = ("lalonde-psid", "lalonde-cps", "twins", "ihdp", "acic2016")
REALISTIC_BASES: dict[str, tuple[int, ...]] = {
    "ihdp": (1, 2, 3, 4),
    "acic2016": (4, 28, 44, 71),
}
"""Tables whose outcome is a published simulation: the realization / setting it is fitted to."""

_SHORT = {"lalonde-psid": "psid", "lalonde-cps": "cps", "twins": "twins", "ihdp": "ihdp",
          "acic2016": "acic"}


def _check(table, base) -> int | None:
    if table not in REALISTIC_TABLES:
        raise CInAValidationError(
            f"unknown realistic table {table!r}; valid tables: {', '.join(REALISTIC_TABLES)}")
    bases = REALISTIC_BASES.get(table)
    if bases is None:
        if base is not None:
            raise CInAValidationError(f"table {table!r} takes no base; received base={base!r}")
        return None
    if base is None:
        return bases[0]
    if isinstance(base, bool) or not isinstance(base, Integral) or int(base) not in bases:
        raise CInAValidationError(
            f"base of table {table!r} must be one of {list(bases)}; received {base!r}")
    return int(base)


def generator_name(table: str, base: int | None = None) -> str:
    """Short name of a table's generator: ``psid``, ``cps``, ``twins``, ``ihdp-r1``,
    ``acic-s4`` (dataset names are ``realistic-<this>[-att]-s<seed>``)."""
    base = _check(table, base)
    short = _SHORT[table]
    if table == "ihdp":
        return f"{short}-r{base}"
    if table == "acic2016":
        return f"{short}-s{base}"
    return short


def _freeze(gen: RealisticGenerator) -> RealisticGenerator:
    """Mark the cached arrays read-only (every sample copies what it returns)."""
    for arr in (gen.propensity, gen.t_real, gen.y_real):
        arr.flags.writeable = False
    for arm in gen.arms:
        for arr in (arm.mean, arm.prob, arm.log_mean, arm.scale, arm.pool, arm.prob_top):
            if arr is not None:
                arr.flags.writeable = False
    return gen


@lru_cache(maxsize=16)
def _fitted(table: str, base: int | None) -> RealisticGenerator:
    from ..real import load_acic2016, load_ihdp, load_lalonde, load_twins

    name = generator_name(table, base)
    if table in ("lalonde-psid", "lalonde-cps"):
        ds = load_lalonde(table.split("-")[1])
        gen = fit_realistic(ds.X, ds.t, ds.y, outcome="nonnegative", name=name)
    elif table == "twins":
        ds = load_twins()
        gen = fit_realistic(ds.X, ds.t, ds.y, outcome="binary",
                            potential_outcomes=(ds.mu0, ds.mu1), name=name)
    elif table == "ihdp":
        ds = load_ihdp(base)
        gen = fit_realistic(ds.X, ds.t, ds.y, outcome="continuous", name=name)
    else:
        ds = load_acic2016(base)
        gen = fit_realistic(ds.X, ds.t, ds.y, outcome="continuous", name=name)
    gen.info.update(table=table, base=base, source=ds.meta.get("source", ""),
                    source_effect=float(ds.true_effect), source_estimand=ds.estimand)
    if ds.mu0 is not None and ds.mu1 is not None:
        gen.info["source_tau_sd"] = float(np.std(ds.mu1 - ds.mu0))
    return _freeze(gen)


def realistic_generator(table: str, base: int | None = None) -> RealisticGenerator:
    """The generator fitted to a shipped table (fitted on first use, then cached).

    ``table``: one of :data:`REALISTIC_TABLES`; ``base``: for ``ihdp`` the NPCI realization
    and for ``acic2016`` the setting whose outcome (and, for ACIC, treatment) it is fitted to
    (:data:`REALISTIC_BASES`; default the first). ``info`` records the chosen learners, their
    cross-validated losses and R^2, and the source's own effect (``source_effect``).
    """
    return _fitted(table, _check(table, base))


def sample_realistic(table: str, seed: int, estimand: str = "ate", *, base: int | None = None,
                     overlap: float = 1.0, heterogeneity: float = 1.0, noise: float = 1.0,
                     name: str | None = None) -> CausalDataset:
    """One dataset of the realistic generator of ``table`` (see
    :meth:`RealisticGenerator.sample`): the table's full N, known ``mu0``/``mu1``."""
    return realistic_generator(table, base).sample(
        seed, estimand, overlap=overlap, heterogeneity=heterogeneity, noise=noise, name=name)
