"""Tests of the synthetic generators (the pretraining prior and the test families)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cina.datasets._base import CausalDataset
from cina.datasets.synthetic import (
    OOD_KINDS,
    SCM_MARGINALS,
    SCM_TRAIN_MECHANISMS,
    SCMPrior,
    dataset_rng,
    default_prior,
    ood_prior,
    sample_scm_arrays,
    sample_scm_dataset,
    semi_synthetic,
    simulation_a,
    stream_datasets,
)
from cina.errors import CInAValidationError

SMALL = SCMPrior(n_range=(100, 300), d_range=(2, 20))


def _same_arrays(a: tuple, b: tuple) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a[:5], b[:5], strict=True))


def _kurtosis(x: np.ndarray) -> float:
    z = (x - x.mean()) / x.std()
    return float(np.mean(z**4) - 3.0)


def _skew(x: np.ndarray) -> float:
    z = (x - x.mean()) / x.std()
    return float(np.mean(z**3))


# ---------------------------------------------------------------------------- determinism


def test_same_seed_identical_arrays():
    a = sample_scm_arrays(11, SMALL)
    b = sample_scm_arrays(11, SMALL)
    assert _same_arrays(a, b)
    assert a[5]["true_effect"] == b[5]["true_effect"]
    assert a[5]["columns"] == b[5]["columns"]
    c = sample_scm_arrays(np.random.default_rng(11), SMALL)
    assert _same_arrays(a, c)


def test_different_seeds_differ():
    a = sample_scm_arrays(1, SMALL)
    b = sample_scm_arrays(2, SMALL)
    assert a[0].shape != b[0].shape or not np.array_equal(a[0], b[0])


def test_dataset_matches_arrays():
    X, t, y, mu0, mu1, meta = sample_scm_arrays(5, SMALL, dtype=np.float64)
    ds = sample_scm_dataset(5, SMALL)
    assert isinstance(ds, CausalDataset)
    np.testing.assert_array_equal(ds.X.to_numpy(), X)
    np.testing.assert_array_equal(ds.t, t)
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_array_equal(ds.mu0, mu0)
    np.testing.assert_array_equal(ds.mu1, mu1)
    assert ds.true_effect == meta["true_effect"]
    assert ds.name == "scm-5"
    X32 = sample_scm_arrays(5, SMALL)[0]
    np.testing.assert_array_equal(X32, X.astype(np.float32))


def test_simulation_a_and_semi_synthetic_deterministic():
    a, b = simulation_a(3, n=200, shift=0.3), simulation_a(3, n=200, shift=0.3)
    pd.testing.assert_frame_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    rng = np.random.default_rng(0)
    table = rng.normal(size=(150, 4))
    c, d = semi_synthetic(table, 9, n=100), semi_synthetic(table, 9, n=100)
    pd.testing.assert_frame_equal(c.X, d.X)
    np.testing.assert_array_equal(c.t, d.t)
    np.testing.assert_array_equal(c.y, d.y)


# ---------------------------------------------------------------------------- streams


def test_stream_slicing_equivalence():
    full = list(stream_datasets(SMALL, seed=4, n=7))
    assert [ds.meta["index"] for ds in full] == list(range(7))
    world = 3
    sliced = {}
    for rank in range(world):
        for ds in stream_datasets(SMALL, seed=4, n=7, start=rank, step=world):
            assert ds.meta["index"] not in sliced
            sliced[ds.meta["index"]] = ds
    assert sorted(sliced) == list(range(7))
    for k, ds in enumerate(full):
        other = sliced[k]
        assert ds.name == other.name == f"scm-s4-{k}"
        pd.testing.assert_frame_equal(ds.X, other.X)
        np.testing.assert_array_equal(ds.t, other.t)
        np.testing.assert_array_equal(ds.y, other.y)
    # dataset k does not depend on earlier ones being drawn
    late = next(iter(stream_datasets(SMALL, seed=4, start=5)))
    pd.testing.assert_frame_equal(late.X, full[5].X)


def test_stream_is_infinite_and_arrays_path_matches():
    it = stream_datasets(SMALL, seed=2, arrays=True)
    items = [next(it) for _ in range(4)]
    assert [item[5]["index"] for item in items] == [0, 1, 2, 3]
    ds = list(stream_datasets(SMALL, seed=2, n=4))
    for item, d in zip(items, ds, strict=True):
        assert item[0].dtype == np.float32
        np.testing.assert_array_equal(item[0], d.X.to_numpy().astype(np.float32))
        np.testing.assert_array_equal(item[2], d.y)


def test_dataset_rng_is_the_spawned_child():
    child = np.random.SeedSequence(8).spawn(4)[3]
    a = sample_scm_arrays(np.random.default_rng(child), SMALL)
    b = sample_scm_arrays(dataset_rng(8, 3), SMALL)
    assert _same_arrays(a, b)
    c = next(iter(stream_datasets(SMALL, seed=8, start=3, arrays=True)))
    assert _same_arrays(a, c)


# ---------------------------------------------------------------------------- shapes, arms


def test_shapes_and_dtypes():
    prior = SCMPrior(n_range=(50, 400), d_range=(1, 30))
    for seed in range(20):
        X, t, y, mu0, mu1, meta = sample_scm_arrays(seed, prior)
        n, d = X.shape
        assert 50 <= n <= 400 and 1 <= d <= 30
        assert X.dtype == np.float32 and X.flags.c_contiguous
        assert t.dtype == np.int64 and t.shape == (n,)
        for v in (y, mu0, mu1, meta["propensity"]):
            assert v.dtype == np.float64 and v.shape == (n,)
        assert set(np.unique(t)) <= {0, 1}
        assert np.isfinite(X).all() and np.isfinite(y).all()
        assert len(meta["columns"]) == len(set(meta["columns"])) == d
        assert len(meta["column_family"]) == d
    ds = sample_scm_dataset(3, prior)
    assert isinstance(ds.X, pd.DataFrame)
    assert all(dt == np.float64 for dt in ds.X.dtypes)
    assert ds.t.dtype == np.int64 and ds.y.dtype == np.float64
    assert ds.estimand == "ate"


def test_both_arms_present_even_when_tiny_or_extreme():
    prior = SCMPrior(n_range=(4, 40), d_range=(1, 4), logit_scale_range=(4.0, 6.0),
                     treated_fraction_range=(0.02, 0.05), propensity_clip=0.0)
    for seed in range(200):
        _, t, *_ = sample_scm_arrays(seed, prior)
        n = t.size
        need = max(2, min(5, int(np.ceil(0.05 * n))))
        assert need <= t.sum() <= n - need, (seed, n, t.sum())


def test_propensities_respect_clip_and_meta():
    for seed in range(20):
        *_, meta = sample_scm_arrays(seed, SMALL)
        e, c = meta["propensity"], meta["propensity_clip"]
        assert c == 0.01
        assert e.min() >= c and e.max() <= 1 - c
        assert 0 <= meta["propensity_min"] <= meta["propensity_max"] <= 1
        assert 0 <= meta["frac_clipped"] <= 1
        assert len(meta["confounders"]) >= 1


def test_no_constant_columns_in_default_prior():
    prior = replace(default_prior(), n_range=(100, 500))
    for seed in range(30):
        X = sample_scm_arrays(seed, prior)[0]
        assert (X.std(axis=0) > 0).all()


# ---------------------------------------------------------------------------- marginals


def _columns_of(family: str, seeds=range(8), n: int = 1500) -> list[np.ndarray]:
    prior = SCMPrior(n_range=(n, n), d_range=(6, 12), marginals=(family,))
    cols = []
    for seed in seeds:
        X, *_, meta = sample_scm_arrays(seed, prior, dtype=np.float64)
        assert set(meta["column_family"]) == {family}
        cols.extend(X[:, j] for j in range(X.shape[1]))
    return cols


def test_binary_columns_are_zero_one_with_both_values():
    for x in _columns_of("binary"):
        assert set(np.unique(x)) == {0.0, 1.0}


def test_count_columns_are_nonnegative_integers():
    for x in _columns_of("poisson"):
        assert x.min() >= 0 and np.array_equal(x, np.round(x)) and x.max() > x.min()


def test_categorical_one_hot_blocks_sum_to_one():
    prior = SCMPrior(n_range=(300, 300), d_range=(8, 15), marginals=("categorical", "gaussian"),
                     n_categories_range=(3, 5))
    n_blocks = 0
    for seed in range(10):
        X, *_, meta = sample_scm_arrays(seed, prior, dtype=np.float64)
        for block in meta["categorical_blocks"]:
            B = X[:, block]
            assert len(block) >= 2
            assert set(np.unique(B)) == {0.0, 1.0}
            np.testing.assert_array_equal(B.sum(axis=1), 1.0)
            assert (B.sum(axis=0) > 0).all()  # every level is used
            n_blocks += 1
        cat_cols = [j for j, f in enumerate(meta["column_family"]) if f == "categorical"]
        assert cat_cols == sorted(j for b in meta["categorical_blocks"] for j in b)
    assert n_blocks > 0


def test_categorical_only_prior_fills_exactly_d_columns():
    prior = SCMPrior(n_range=(50, 50), d_range=(2, 9), marginals=("categorical",))
    for seed in range(20):
        X, *_, meta = sample_scm_arrays(seed, prior)
        assert sum(len(b) for b in meta["categorical_blocks"]) == X.shape[1]
        np.testing.assert_array_equal(X.sum(axis=1), len(meta["categorical_blocks"]))


def test_continuous_families_have_their_shape():
    gauss = np.median([_kurtosis(x) for x in _columns_of("gaussian")])
    heavy = np.median([_kurtosis(x) for x in _columns_of("student_t")])
    assert abs(gauss) < 0.3 and heavy > 1.0
    for fam in ("lognormal", "exponential"):
        cols = _columns_of(fam)
        assert all(x.min() > 0 for x in cols)
        assert np.median([_skew(x) for x in cols]) > 1.0
    for x in _columns_of("uniform"):
        assert 0 < x.min() and x.max() < 1
        assert abs(_kurtosis(x) + 1.2) < 0.2  # the uniform's excess kurtosis


def test_default_prior_covers_every_family():
    seen = set()
    prior = replace(default_prior(), n_range=(100, 100))
    for seed in range(40):
        seen.update(sample_scm_arrays(seed, prior)[5]["column_family"])
    assert seen == set(SCM_MARGINALS)


# ---------------------------------------------------------------------------- effects


def test_true_effect_is_sample_mean_of_mu1_minus_mu0():
    for seed in range(10):
        ds = sample_scm_dataset(seed, SMALL)
        assert ds.true_effect == pytest.approx(float(np.mean(ds.mu1 - ds.mu0)), abs=1e-12)
        assert ds.sample_effect() == pytest.approx(ds.true_effect, abs=1e-12)


def test_att_is_mean_over_treated():
    prior = replace(SMALL, estimand="att", heterogeneity_range=(0.5, 1.0))
    for seed in range(10):
        ds = sample_scm_dataset(seed, prior)
        assert ds.estimand == "att"
        tau = ds.mu1 - ds.mu0
        assert ds.true_effect == pytest.approx(float(tau[ds.t == 1].mean()), abs=1e-12)
        assert ds.sample_effect() == pytest.approx(ds.true_effect, abs=1e-12)


def test_effect_heterogeneity_when_configured():
    het = SCMPrior(n_range=(500, 500), d_range=(3, 10), mechanisms=("linear",),
                   heterogeneity_range=(1.0, 1.0))
    const = replace(het, heterogeneity_range=(0.0, 0.0))
    for seed in range(5):
        X, t, y, mu0, mu1, meta = sample_scm_arrays(seed, het)
        assert np.std(mu1 - mu0) == pytest.approx(1.0, rel=1e-6)
        assert meta["effect_sd"] == pytest.approx(1.0, rel=1e-6)
        _, _, _, mu0c, mu1c, _ = sample_scm_arrays(seed, const)
        assert np.ptp(mu1c - mu0c) < 1e-12


def test_outcome_is_mu_t_plus_noise():
    prior = replace(SMALL, outcome_noise_range=(0.0, 0.0))
    X, t, y, mu0, mu1, meta = sample_scm_arrays(4, prior)
    np.testing.assert_allclose(y, np.where(t == 1, mu1, mu0))


def test_overlap_strength_moves_propensities():
    def spread(lo, hi):
        prior = SCMPrior(n_range=(500, 500), d_range=(5, 10), logit_scale_range=(lo, hi),
                         propensity_clip=0.0)
        return np.mean([np.std(sample_scm_arrays(s, prior)[5]["propensity"]) for s in range(10)])

    assert spread(0.0, 0.0) < 1e-6  # randomised: one propensity for all units
    assert spread(0.3, 0.3) < spread(3.0, 3.0)


# ---------------------------------------------------------------------------- OOD presets


def test_ood_presets_differ_in_the_stated_way():
    base = default_prior()
    dense = ood_prior("dense")
    assert dense.density_range[0] > base.density_range[1]
    assert replace(dense, density_range=base.density_range) == base
    mech = ood_prior("mechanism")
    assert set(mech.mechanisms).isdisjoint(base.mechanisms)
    assert set(base.mechanisms) == set(SCM_TRAIN_MECHANISMS)
    overlap = ood_prior("overlap")
    assert overlap.logit_scale_range[0] > base.logit_scale_range[1]
    assert overlap.propensity_clip < base.propensity_clip
    wide = ood_prior("wide")
    assert wide.d_range[0] > base.d_range[1] and wide.d_range[1] == 100
    large = ood_prior("large")
    assert large.n_range[0] > base.n_range[1] and large.n_range[1] == 10_000
    assert set(OOD_KINDS) == {"dense", "mechanism", "overlap", "wide", "large"}


def test_ood_samples_show_the_shift():
    small_n = (200, 200)
    for seed in range(3):
        m = sample_scm_arrays(seed, ood_prior("dense", replace(default_prior(), n_range=small_n)))
        assert m[5]["density"] >= 0.5
        m = sample_scm_arrays(seed, ood_prior("mechanism", replace(default_prior(),
                                                                   n_range=small_n)))[5]
        kinds = {k for k in m["node_mechanism"] if k is not None}
        kinds |= {m["treatment_mechanism"], m["outcome_mechanism"], m["effect_mechanism"]}
        assert kinds <= {"sine", "interaction"}
        X = sample_scm_arrays(seed, ood_prior("wide", replace(default_prior(), n_range=small_n)))[0]
        assert 51 <= X.shape[1] <= 100
    X = sample_scm_arrays(0, ood_prior("large", replace(default_prior(), d_range=(2, 5))))[0]
    assert 2001 <= X.shape[0] <= 10_000
    base = replace(default_prior(), n_range=(500, 500))
    clipped_base = np.mean([sample_scm_arrays(s, base)[5]["frac_clipped"] for s in range(10)])
    weak = ood_prior("overlap", base)
    clipped_weak = np.mean([sample_scm_arrays(s, weak)[5]["frac_clipped"] for s in range(10)])
    assert clipped_weak > clipped_base


# ---------------------------------------------------------------------------- Simulation A


def test_simulation_a_one_graph_shifted_coefficients():
    a, b = simulation_a(1, n=300, shift=0.0), simulation_a(2, n=300, shift=0.0)
    assert a.d == b.d == 10
    assert a.meta["parents"] == b.meta["parents"]
    assert a.meta["node_family"] == b.meta["node_family"]
    assert a.meta["coef_shift_rms"] == 0.0
    assert not np.array_equal(a.X.to_numpy(), b.X.to_numpy())  # new sample, same SCM
    moves = [np.mean([simulation_a(s, n=100, shift=sh).meta["coef_shift_rms"] for s in range(5)])
             for sh in (0.1, 0.5)]
    assert 0 < moves[0] < moves[1]
    big = simulation_a(3, n=300, shift=0.5)
    assert big.meta["parents"] == a.meta["parents"]
    assert a.true_effect == pytest.approx(float(np.mean(a.mu1 - a.mu0)))
    assert min(a.t.sum(), a.n - a.t.sum()) >= 5
    att = simulation_a(1, n=300, estimand="att")
    assert att.true_effect == pytest.approx(float(np.mean((att.mu1 - att.mu0)[att.t == 1])))


# ---------------------------------------------------------------------------- semi-synthetic


def test_semi_synthetic_resamples_real_rows():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({
        "age": rng.integers(18, 80, 120).astype(float),
        "income": rng.lognormal(10, 1, 120),
        "group": rng.choice(["a", "b", "c"], 120),
        "flag": rng.random(120) < 0.3,
    })
    table.loc[5, "income"] = np.nan
    ds = semi_synthetic(table, 4, n=80)
    assert ds.n == 80
    assert list(ds.X.columns) == ["age", "income", "group=a", "group=b", "group=c", "flag"]
    rows = ds.meta["rows"]
    assert len(set(rows.tolist())) == 80  # without replacement
    np.testing.assert_array_equal(ds.X["age"].to_numpy(), table["age"].to_numpy()[rows])
    np.testing.assert_array_equal(ds.X[["group=a", "group=b", "group=c"]].sum(axis=1), 1.0)
    assert ds.meta["missing_filled"] == 1 and not ds.X.isna().any().any()
    assert ds.true_effect == pytest.approx(float(np.mean(ds.mu1 - ds.mu0)))
    assert min(ds.t.sum(), ds.n - ds.t.sum()) >= 4
    boot = semi_synthetic(table.to_numpy()[:, :2].astype(float), 2, n=500)
    assert boot.n == 500 and boot.meta["replace"] and boot.d == 2
    full = semi_synthetic(table[["age"]], 2)
    assert full.n == 120


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_range": (2, 10)}, r"n_range must lie in \[4"),
        ({"n_range": (500, 100)}, r"n_range must have min <= max"),
        ({"d_range": (0, 5)}, r"d_range must lie in \[1"),
        ({"density_range": (0.2, 1.5)}, r"density_range must lie in \[0.0, 1.0\]"),
        ({"density_range": (-0.1, 0.5)}, r"density_range"),
        ({"mechanisms": ("linear", "foo")}, r"unknown mechanism 'foo'"),
        ({"mechanisms": ()}, r"mechanisms must name at least one"),
        ({"marginals": ("weird",)}, r"unknown marginal 'weird'"),
        ({"estimand": "ato"}, r"estimand must be one of"),
        ({"propensity_clip": 0.7}, r"propensity_clip must lie in \[0, 0.5\)"),
        ({"treated_fraction_range": (0.0, 0.5)}, r"treated_fraction_range"),
        ({"n_range": 5}, r"n_range must be a \(min, max\) pair"),
        ({"marginals": ("categorical",), "d_range": (1, 5)}, r"only categorical"),
    ],
)
def test_bad_prior_configs_raise(kwargs, match):
    with pytest.raises(CInAValidationError, match=match):
        SCMPrior(**kwargs)


def test_validation_error_is_a_value_error():
    with pytest.raises(ValueError, match="n_range"):
        SCMPrior(n_range=(1, 3))


def test_bad_calls_raise():
    with pytest.raises(CInAValidationError, match="unknown OOD kind 'bogus'"):
        ood_prior("bogus")
    with pytest.raises(CInAValidationError, match="non-negative integer"):
        sample_scm_arrays(-1, SMALL)
    with pytest.raises(CInAValidationError, match="prior must be an SCMPrior"):
        sample_scm_arrays(0, {"n_range": (10, 20)})
    with pytest.raises(CInAValidationError, match="step must be an integer >= 1"):
        stream_datasets(SMALL, seed=0, step=0)
    with pytest.raises(CInAValidationError, match="stream seed"):
        stream_datasets(SMALL, seed=-3)
    with pytest.raises(CInAValidationError, match="simulation_a n must be"):
        simulation_a(0, n=2)
    with pytest.raises(CInAValidationError, match="shift must be"):
        simulation_a(0, shift=-1.0)
    with pytest.raises(CInAValidationError, match="exceeds the table"):
        semi_synthetic(np.zeros((10, 2)), 0, n=20, replace=False)
    with pytest.raises(CInAValidationError, match="2-dimensional"):
        semi_synthetic(np.zeros(10), 0)
    with pytest.raises(CInAValidationError, match="at least 4 rows"):
        semi_synthetic(np.zeros((3, 2)), 0)


def test_package_layout_keeps_every_public_name():
    """synthetic is a package (one module per family); its public names are importable from
    cina.datasets.synthetic and cina.datasets, and each lives in its family's module."""
    import cina.datasets as datasets
    import cina.datasets.synthetic as synthetic

    for name in synthetic.__all__:
        assert getattr(datasets, name) is getattr(synthetic, name)
    assert synthetic.simulation_a.__module__ == "cina.datasets.synthetic.simulation"
    assert synthetic.semi_synthetic.__module__ == "cina.datasets.synthetic.semisynthetic"
    assert synthetic.ood_prior.__module__ == "cina.datasets.synthetic.ood"
    assert synthetic.sample_scm_arrays.__module__ == "cina.datasets.synthetic.scm"
