"""Realistic semi-synthetic data (RealCause-style): flexible treatment and outcome models fitted
to a real covariate table, sampled with known individual effects.

:func:`fit_realistic` fits a :class:`RealisticGenerator` to any table; :func:`realistic_generator`
and :func:`sample_realistic` use the tables shipped with the package (LaLonde PSID and CPS,
Twins, IHDP, ACIC 2016). docs/realistic.md describes the design, the fitted models and the checks
that the simulated data look like the real data.
"""

from .generator import OUTCOME_KINDS, ArmModel, RealisticGenerator, fit_realistic
from .tables import (
           REALISTIC_BASES,
           REALISTIC_TABLES,
           generator_name,
           realistic_generator,
           sample_realistic,
)

__all__ = ["ArmModel", "RealisticGenerator", "fit_realistic", "OUTCOME_KINDS",
           "REALISTIC_TABLES", "REALISTIC_BASES", "realistic_generator", "sample_realistic",
           "generator_name"]
