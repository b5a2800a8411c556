"""The benchmark suites: named lists of datasets, each dataset a lazy (name, loader) pair.

Listing a suite reads no data: :func:`suite_datasets` returns :class:`DatasetSpec` objects whose
``load()`` builds the :class:`~cina.datasets.CausalDataset` on demand, so a resumed run that has
every result of a dataset cached never loads it.

Real suites (the test data of the CInA paper; protocols chosen so that exact kernel balancing,
which needs an N x N kernel, fits in memory and time):

* ``ihdp``: realizations 1..50, all 747 units.
* ``acic2016``: settings 1..77 (replicate 1), each subsampled to 1,000 units (stratified by arm,
  seed 0), the CInA paper's protocol; the true effect is the SATE of the subsample.
* ``lalonde-cps``: ATT; all 185 NSW treated + 4,000 of the 15,992 CPS-1 controls drawn without
  replacement, seeds 0, 1, 2 (3 datasets). Reference effect: the NSW experimental 1794.34.
* ``lalonde-psid``: ATT; all 2,675 units (185 treated + 2,490 PSID-1 controls). Reference 1794.34.
* ``twins``: 2,000 of the 11,984 pairs (stratified by arm), seeds 0..4; the truth is recomputed
  on each subsample from the observed y0 / y1 (as the anchors table did for kernel balancing).

Synthetic suites (true effects known exactly; every dataset has N <= 1,500):

* ``scm-prior``: 40 datasets of the pretraining prior (:func:`~cina.datasets.default_prior`)
  with N restricted to 100..1,500, drawn from the stream seeded :data:`SYNTHETIC_SEED` (a seed
  reserved for evaluation, not a pretraining stream).
* ``simulation-a``: 20 datasets of Simulation A (N = 1,000, shift 0.2), seeds 1..20.
* ``semi-synthetic``: 20 datasets on the LaLonde NSW-DW *experimental* covariate table (445
  rows, 8 columns; not one of the test suites), resampled with replacement to N = 1,000, with
  treatment and outcome simulated by the default prior's mechanisms; seeds 1..20.
* ``ood-dense``, ``ood-mechanism``, ``ood-overlap``, ``ood-wide``: 20 datasets each of
  :func:`~cina.datasets.ood_prior` with N restricted to 100..1,500 (streams seeded
  ``SYNTHETIC_SEED + 1..4``). The ``large`` OOD kind (N > 2,000) is not a suite here.

Realistic suites (RealCause-style: treatment and outcome models fitted to a real table, then
sampled with known individual effects; :mod:`cina.datasets.realistic`, docs/realistic.md). Every
dataset keeps the table's full N; the truth is the sample mean of the known ``mu1 - mu0`` over
the estimand's population (ATE: all units; ATT: the sampled treated):

* ``realistic-psid`` / ``realistic-psid-att``: LaLonde PSID (2,675 units), ATE seeds 1..20,
  ATT seeds 21..40.
* ``realistic-cps`` / ``realistic-cps-att``: LaLonde CPS (16,177 units), ATE seeds 1..20, ATT
  seeds 21..40.
* ``realistic-twins``: Twins (11,984 pairs), ATE, seeds 1..20.
* ``realistic-ihdp``: IHDP (747 units), ATE; generators fitted to NPCI realizations 1..4,
  seeds 1..5 each.
* ``realistic-acic``: ACIC 2016 covariates (4,802 units), ATE; generators fitted to settings 4,
  28, 44, 71, seeds 1..5 each.

Literature suites (published simulation designs of the balancing / doubly robust literature,
N = 1,000, ATE, true effects known; :mod:`cina.datasets.literature`, docs/realistic.md section 6):

* ``literature-kang-schafer``: Kang & Schafer (2007), misspecified (transformed) covariates,
  seeds 1..20.
* ``literature-hainmueller``: Hainmueller (2012), overlap poor / medium / good x outcome designs
  1 / 2 / 3, seeds 1..2 each (18 datasets).
* ``literature-lunceford-davidian``: Lunceford & Davidian (2004), strong and moderate
  association, seeds 1..10 each.
* ``literature-nie-wager``: Nie & Wager (2021) setups A and C (d = 6), seeds 1..10 each.

Groups: ``real``, ``synthetic``, ``ood``, ``all`` (these three), ``realistic``, ``literature``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from ..datasets import CausalDataset
from ..datasets.real import LALONDE_ATE
from ..errors import CInAValidationError

__all__ = ["DatasetSpec", "SuiteSpec", "SUITES", "GROUPS", "SYNTHETIC_SEED", "N_MAX_SYNTHETIC",
           "available_suites", "resolve_suites", "suite_datasets", "register_suite"]

SYNTHETIC_SEED = 20_260_001
"""Stream seed of the synthetic evaluation suites (kept apart from any pretraining seed)."""

N_MAX_SYNTHETIC = 1500
"""Largest N of a synthetic benchmark dataset (the exact QP and Algorithm 1 are O(N^2))."""

LALONDE_CPS_CONTROLS = 4000
ACIC_N = 1000
TWINS_N = 2000


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a suite: a unique name and a zero-argument loader (nothing loaded yet)."""

    name: str
    loader: Callable[[], CausalDataset]
    note: str = ""

    def load(self) -> CausalDataset:
        return self.loader()


@dataclass(frozen=True)
class SuiteSpec:
    """A named suite: ``kind`` is "real", "synthetic" or "ood"; ``make`` lists its datasets."""

    name: str
    kind: str
    description: str
    make: Callable[[], list[DatasetSpec]] = field(repr=False)


# --- loaders ---------------------------------------------------------------------------------
def _lalonde_cps(seed: int) -> CausalDataset:
    """All 185 treated + 4,000 CPS-1 controls drawn without replacement (reference unchanged)."""
    from ..datasets import load_lalonde

    ds = load_lalonde("cps")
    rng = np.random.default_rng(seed)
    treated = np.flatnonzero(ds.t == 1)
    control = np.flatnonzero(ds.t == 0)
    rows = np.sort(np.concatenate([
        treated, rng.choice(control, min(LALONDE_CPS_CONTROLS, len(control)), replace=False)]))
    meta = dict(ds.meta, subsample=f"all {len(treated)} treated + {LALONDE_CPS_CONTROLS} "
                                   f"controls, seed {seed}", n_control=int(len(rows) - len(treated)))
    return replace(ds, X=ds.X.iloc[rows].reset_index(drop=True), t=ds.t[rows], y=ds.y[rows],
                   name=f"lalonde-cps-c{LALONDE_CPS_CONTROLS}s{seed}", meta=meta)


def _bounded(prior):
    lo, hi = prior.n_range
    return replace(prior, n_range=(min(lo, N_MAX_SYNTHETIC), min(hi, N_MAX_SYNTHETIC)))


def _scm(k: int, stream: int, kind: str | None, name: str) -> CausalDataset:
    from ..datasets import default_prior, ood_prior, sample_scm_dataset
    from ..datasets.synthetic import dataset_rng

    prior = _bounded(default_prior() if kind is None else ood_prior(kind))
    return sample_scm_dataset(dataset_rng(stream, k), prior, name=name)


def _simulation_a(seed: int) -> CausalDataset:
    from ..datasets import simulation_a

    return simulation_a(seed, n=1000, shift=0.2)


def _semi(seed: int) -> CausalDataset:
    from ..datasets import load_lalonde, semi_synthetic

    table = load_lalonde("experimental").X
    return semi_synthetic(table, seed, n=1000, replace=True, name=f"semi-nsw-s{seed}")


# --- suites ----------------------------------------------------------------------------------
def _ihdp() -> list[DatasetSpec]:
    from ..datasets import load_ihdp

    return [DatasetSpec(f"ihdp-{r}", partial(load_ihdp, r)) for r in range(1, 51)]


def _acic() -> list[DatasetSpec]:
    from ..datasets import load_acic2016

    return [DatasetSpec(f"acic2016-{s}", partial(load_acic2016, s, n=ACIC_N, seed=0),
                        f"subsample {ACIC_N}, seed 0") for s in range(1, 78)]


def _cps() -> list[DatasetSpec]:
    return [DatasetSpec(f"lalonde-cps-s{s}", partial(_lalonde_cps, s)) for s in range(3)]


def _psid() -> list[DatasetSpec]:
    from ..datasets import load_lalonde

    return [DatasetSpec("lalonde-psid", partial(load_lalonde, "psid"))]


def _twins() -> list[DatasetSpec]:
    from ..datasets import load_twins

    return [DatasetSpec(f"twins-s{s}", partial(load_twins, n=TWINS_N, seed=s))
            for s in range(5)]


def _scm_suite(prefix: str, kind: str | None, stream: int, count: int):
    def make() -> list[DatasetSpec]:
        return [DatasetSpec(f"{prefix}-{k}", partial(_scm, k, stream, kind, f"{prefix}-{k}"))
                for k in range(count)]
    return make


def _sim_a() -> list[DatasetSpec]:
    return [DatasetSpec(f"simA-s{s}", partial(_simulation_a, s)) for s in range(1, 21)]


def _semi_suite() -> list[DatasetSpec]:
    return [DatasetSpec(f"semi-nsw-s{s}", partial(_semi, s)) for s in range(1, 21)]


REALISTIC_SEEDS = range(1, 21)
"""Seeds of the realistic ATE suites with one generator (the ATT suites use 21..40)."""
REALISTIC_ATT_SEEDS = range(21, 41)
REALISTIC_BASE_SEEDS = range(1, 6)
"""Seeds per generator of the realistic suites with several (IHDP, ACIC: 4 x 5 datasets)."""


def _realistic(table: str, seed: int, estimand: str, base: int | None) -> CausalDataset:
    from ..datasets import sample_realistic

    return sample_realistic(table, seed, estimand, base=base)


def _realistic_suite(table: str, estimand: str = "ate"):
    def make() -> list[DatasetSpec]:
        from ..datasets import REALISTIC_BASES, generator_name

        bases = REALISTIC_BASES.get(table)
        plan = ([(None, s) for s in (REALISTIC_ATT_SEEDS if estimand == "att"
                                      else REALISTIC_SEEDS)] if bases is None
                else [(b, s) for b in bases for s in REALISTIC_BASE_SEEDS])
        suffix = "-att" if estimand == "att" else ""
        return [DatasetSpec(f"realistic-{generator_name(table, b)}{suffix}-s{s}",
                            partial(_realistic, table, s, estimand, b),
                            f"{table} generator{'' if b is None else f' base {b}'}, seed {s}")
                for b, s in plan]
    return make


LITERATURE_N = 1000


def _literature(design: str, seed: int, kwargs: tuple) -> CausalDataset:
    from ..datasets import LITERATURE_DESIGNS

    return LITERATURE_DESIGNS[design](seed, n=LITERATURE_N, **dict(kwargs))


def _ks_suite() -> list[DatasetSpec]:
    return [DatasetSpec(f"ks-s{s}", partial(_literature, "kang-schafer", s, ()))
            for s in range(1, 21)]


def _hainmueller_suite() -> list[DatasetSpec]:
    return [DatasetSpec(f"hainmueller-{ov}-y{o}-s{s}",
                        partial(_literature, "hainmueller", s,
                                (("overlap", ov), ("outcome", o))))
            for ov in ("poor", "medium", "good") for o in (1, 2, 3) for s in (1, 2)]


def _ld_suite() -> list[DatasetSpec]:
    return [DatasetSpec(f"ld-{a}-s{s}", partial(_literature, "lunceford-davidian", s,
                                                 (("association", a),)))
            for a in ("strong", "moderate") for s in range(1, 11)]


def _nw_suite() -> list[DatasetSpec]:
    return [DatasetSpec(f"nw-{k}-s{s}", partial(_literature, "nie-wager", s, (("setup", k),)))
            for k in ("A", "C") for s in range(1, 11)]


SUITES: dict[str, SuiteSpec] = {}
"""Suite name -> :class:`SuiteSpec`, in report order."""


def register_suite(spec: SuiteSpec) -> None:
    """Add (or replace) a suite; tests register small or deliberately broken ones."""
    if spec.kind not in ("real", "synthetic", "ood", "realistic", "literature", "test"):
        raise CInAValidationError(f"suite kind must be real, synthetic, ood, realistic, "
                                  f"literature or test; received {spec.kind!r}")
    SUITES[spec.name] = spec


for _spec in (
    SuiteSpec("ihdp", "real", "IHDP realizations 1-50, N = 747, ATE", _ihdp),
    SuiteSpec("acic2016", "real",
              "ACIC 2016 settings 1-77 (replicate 1), subsampled to N = 1,000 (seed 0), SATE",
              _acic),
    SuiteSpec("lalonde-cps", "real",
              f"LaLonde NSW treated (185) + 4,000 CPS-1 controls, seeds 0-2, ATT vs {LALONDE_ATE}",
              _cps),
    SuiteSpec("lalonde-psid", "real",
              f"LaLonde NSW treated (185) + PSID-1 controls (2,490), N = 2,675, ATT vs {LALONDE_ATE}",
              _psid),
    SuiteSpec("twins", "real",
              "Twins, 2,000 of 11,984 pairs, seeds 0-4, ATE recomputed on each subsample",
              _twins),
    SuiteSpec("scm-prior", "synthetic",
              f"default SCM prior, N 100-{N_MAX_SYNTHETIC:,}, 40 datasets",
              _scm_suite("scm", None, SYNTHETIC_SEED, 40)),
    SuiteSpec("simulation-a", "synthetic", "Simulation A, N = 1,000, shift 0.2, seeds 1-20",
              _sim_a),
    SuiteSpec("semi-synthetic", "synthetic",
              "NSW-DW experimental covariates resampled to N = 1,000, simulated t and y, "
              "seeds 1-20", _semi_suite),
    SuiteSpec("ood-dense", "ood", "OOD prior 'dense' (ER density 0.5-0.9), 20 datasets",
              _scm_suite("ood-dense", "dense", SYNTHETIC_SEED + 1, 20)),
    SuiteSpec("ood-mechanism", "ood",
              "OOD prior 'mechanism' (sine / interaction only), 20 datasets",
              _scm_suite("ood-mechanism", "mechanism", SYNTHETIC_SEED + 2, 20)),
    SuiteSpec("ood-overlap", "ood", "OOD prior 'overlap' (logit sd 3-5), 20 datasets",
              _scm_suite("ood-overlap", "overlap", SYNTHETIC_SEED + 3, 20)),
    SuiteSpec("ood-wide", "ood", "OOD prior 'wide' (d 51-100), 20 datasets",
              _scm_suite("ood-wide", "wide", SYNTHETIC_SEED + 4, 20)),
):
    register_suite(_spec)

GROUPS: dict[str, tuple[str, ...]] = {
    "real": ("ihdp", "acic2016", "lalonde-cps", "lalonde-psid", "twins"),
    "synthetic": ("scm-prior", "simulation-a", "semi-synthetic"),
    "ood": ("ood-dense", "ood-mechanism", "ood-overlap", "ood-wide"),
}
GROUPS["all"] = GROUPS["real"] + GROUPS["synthetic"] + GROUPS["ood"]

for _spec in (
    SuiteSpec("realistic-psid", "realistic",
              "LaLonde PSID generator (fitted t and re78 models), N = 2,675, ATE, seeds 1-20",
              _realistic_suite("lalonde-psid")),
    SuiteSpec("realistic-psid-att", "realistic",
              "LaLonde PSID generator, N = 2,675, ATT, seeds 21-40",
              _realistic_suite("lalonde-psid", "att")),
    SuiteSpec("realistic-cps", "realistic",
              "LaLonde CPS generator (fitted t and re78 models), N = 16,177, ATE, seeds 1-20",
              _realistic_suite("lalonde-cps")),
    SuiteSpec("realistic-cps-att", "realistic",
              "LaLonde CPS generator, N = 16,177, ATT, seeds 21-40",
              _realistic_suite("lalonde-cps", "att")),
    SuiteSpec("realistic-twins", "realistic",
              "Twins generator (fitted t, binary mortality per arm), N = 11,984, ATE, seeds 1-20",
              _realistic_suite("twins")),
    SuiteSpec("realistic-ihdp", "realistic",
              "IHDP generators fitted to NPCI realizations 1-4, N = 747, ATE, seeds 1-5 each",
              _realistic_suite("ihdp")),
    SuiteSpec("realistic-acic", "realistic",
              "ACIC 2016 generators fitted to settings 4, 28, 44, 71, N = 4,802, ATE, seeds 1-5 "
              "each", _realistic_suite("acic2016")),
):
    register_suite(_spec)
GROUPS["realistic"] = ("realistic-psid", "realistic-psid-att", "realistic-cps",
                       "realistic-cps-att", "realistic-twins", "realistic-ihdp", "realistic-acic")

for _spec in (
    SuiteSpec("literature-kang-schafer", "literature",
              "Kang & Schafer (2007), transformed covariates, N = 1,000, ATE 10, seeds 1-20",
              _ks_suite),
    SuiteSpec("literature-hainmueller", "literature",
              "Hainmueller (2012), 3 overlap x 3 outcome designs, N = 1,000, ATE, seeds 1-2",
              _hainmueller_suite),
    SuiteSpec("literature-lunceford-davidian", "literature",
              "Lunceford & Davidian (2004), strong / moderate, N = 1,000, ATE 2, seeds 1-10",
              _ld_suite),
    SuiteSpec("literature-nie-wager", "literature",
              "Nie & Wager (2021) setups A and C, d = 6, N = 1,000, ATE, seeds 1-10",
              _nw_suite),
):
    register_suite(_spec)
GROUPS["literature"] = ("literature-kang-schafer", "literature-hainmueller",
                        "literature-lunceford-davidian", "literature-nie-wager")


def available_suites() -> list[str]:
    """Suite names, then group names."""
    return list(SUITES) + list(GROUPS)


def resolve_suites(text: str | list[str]) -> list[str]:
    """Comma-separated suite and group names -> suite names (deduplicated, in order).

    Raises :class:`~cina.errors.CInAValidationError` naming the unknown ones and listing the
    valid suites and groups.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip().lower() for p in parts if p and p.strip()]
    if not names:
        raise CInAValidationError(
            f"no suite given; valid suites: {', '.join(SUITES)}; groups: {', '.join(GROUPS)}")
    unknown = [n for n in names if n not in SUITES and n not in GROUPS]
    if unknown:
        raise CInAValidationError(
            f"unknown suite(s) {', '.join(repr(u) for u in unknown)}; valid suites: "
            f"{', '.join(SUITES)}; groups: {', '.join(GROUPS)}")
    out: list[str] = []
    for n in names:
        for s in GROUPS.get(n, (n,)):
            if s not in out:
                out.append(s)
    return out


def suite_datasets(name: str) -> list[DatasetSpec]:
    """The dataset specs of suite ``name`` (no data read)."""
    if name not in SUITES:
        raise CInAValidationError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    return list(SUITES[name].make())
