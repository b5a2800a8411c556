"""Synthetic causal datasets: the pretraining prior of the zero-shot model, and test families.

Four families, all seeded and reproducible (same seed -> identical arrays):

* **SCM prior** (:class:`SCMPrior`, :func:`sample_scm_arrays`, :func:`sample_scm_dataset`,
  :func:`stream_datasets`): a random structural causal model per dataset. Covariates are the nodes
  of an Erdos-Renyi DAG (topological order = node index); roots are drawn from their marginal
  family, every other node is a random mechanism of its parents plus noise, pushed through its
  marginal family by a rank (quantile) transform. Families: Gaussian, heavy-tailed Student-t,
  skewed log-normal and exponential, uniform rank features, binary, categorical (one-hot encoded,
  every level kept) and Poisson counts. Mechanisms: linear, small random MLPs (tanh or relu),
  polynomials up to degree 3, step functions. A treatment node after all covariates has a logit
  built from a random subset of covariates (overlap is set by the logit's standard deviation);
  the outcome has a nonlinear ``mu0(x)`` and ``mu1 = mu0 + tau(x)`` with a heterogeneous
  ``tau``; ``y = mu_t + noise``. Treatment and outcome depend on the *observed* columns only, so
  the effect is identified from ``X`` (no hidden confounding).
* **Simulation A** (:func:`simulation_a`): one fixed causal graph over 10 covariates whose
  mechanism coefficients move around fixed values by ``shift`` from dataset to dataset.
* **Semi-synthetic** (:func:`semi_synthetic`): rows of any real covariate table, resampled, with
  treatment and outcome simulated by the prior's mechanisms on the standardised covariates.
* **Out-of-distribution presets** (:func:`ood_prior`): the default prior with one axis pushed out
  of its training range (denser graphs, unseen mechanisms, weak overlap, wide d, large N).

Speed: the covariates take one topological pass over the nodes, each node a few matrix products
over all units at once; see ``benchmarks/results/generators.md`` (well over 100 datasets of
N = 1,000 per second on one core for the array fast path).

Seeding of streams: dataset ``k`` of a stream seeded ``s`` is drawn from
``np.random.default_rng(np.random.SeedSequence(s, spawn_key=(k,)))``, which is exactly the ``k``-th
child of ``np.random.SeedSequence(s).spawn(...)``. It does not depend on which other datasets of
the stream were drawn, so workers can take disjoint slices (``start=rank, step=world_size``).

Layout: one module per family (:mod:`.scm` with :mod:`.prior`, :mod:`.simulation`,
:mod:`.semisynthetic`, :mod:`.ood`) on shared parts (:mod:`.mechanisms`, :mod:`.structure`,
:mod:`._common`); everything public is importable from ``cina.datasets.synthetic`` and
``cina.datasets``.
"""

from ._common import OOD_KINDS, SCM_MARGINALS, SCM_MECHANISMS, SCM_TRAIN_MECHANISMS
from .ood import ood_prior
from .prior import SCMPrior, default_prior
from .scm import dataset_rng, sample_scm_arrays, sample_scm_dataset, stream_datasets
from .semisynthetic import semi_synthetic
from .simulation import simulation_a

__all__ = [
    "SCM_MECHANISMS",
    "SCM_TRAIN_MECHANISMS",
    "SCM_MARGINALS",
    "OOD_KINDS",
    "SCMPrior",
    "default_prior",
    "ood_prior",
    "dataset_rng",
    "sample_scm_arrays",
    "sample_scm_dataset",
    "stream_datasets",
    "simulation_a",
    "semi_synthetic",
]
