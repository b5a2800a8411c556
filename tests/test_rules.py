"""One definition of each shared rule (cina.rules) and the shared effect/cross-fitting rooms."""

from __future__ import annotations

import numpy as np
import pytest

from cina.errors import CInAValidationError
from cina.rules import (
    BALANCE_THRESHOLD,
    check_balance_estimand,
    effective_sample_fraction,
    effective_sample_size,
    normalize_per_arm,
    rescale_huge_columns,
    target_population,
)


def test_normalize_per_arm_modes():
    t = np.array([1, 1, 0, 0, 0])
    w = np.array([1.0, 3.0, 2.0, 2.0, 4.0])
    out = normalize_per_arm(w, t)
    np.testing.assert_allclose(out, [0.25, 0.75, 0.25, 0.25, 0.5])
    assert out is not w and w[0] == 1.0  # a copy by default
    same = normalize_per_arm(w, t, in_place=True)
    assert same is w and w[1] == 0.75
    zero = np.array([0.0, 0.0, 1.0, 1.0, 2.0])
    with pytest.raises(CInAValidationError, match="treated arm received zero total weight"):
        normalize_per_arm(zero, t)
    np.testing.assert_allclose(normalize_per_arm(zero, t, empty="uniform")[:2], [0.5, 0.5])


@pytest.mark.parametrize("seed", range(3))
def test_normalize_per_arm_block_by_block_equals_the_whole(seed):
    """The distributed path normalises each partition by the totals of all partitions: the
    blocks put together are the whole set normalised at once (to rounding)."""
    rng = np.random.default_rng(seed)
    n = 200
    w, t = rng.gamma(1.0, size=n), (rng.random(n) < 0.4).astype(int)
    cuts = np.sort(rng.choice(np.arange(1, n), size=3, replace=False))
    blocks = np.split(np.arange(n), cuts)
    totals = (w[t == 1].sum(), w[t == 0].sum())
    counts = (int((t == 1).sum()), int((t == 0).sum()))
    parts = [normalize_per_arm(w[b], t[b], totals=totals, counts=counts) for b in blocks]
    np.testing.assert_allclose(np.concatenate(parts), normalize_per_arm(w, t), rtol=1e-14)
    # an arm with zero total weight: uniform over the whole arm, not over the block
    zero = np.where(t == 1, 0.0, w)
    parts = [normalize_per_arm(zero[b], t[b], empty="uniform", totals=(0.0, totals[1]),
                               counts=counts) for b in blocks]
    np.testing.assert_allclose(np.concatenate(parts)[t == 1], 1.0 / counts[0])


def test_balance_summary_headline_and_worst():
    import pandas as pd

    from cina.diagnostics import N_WORST, balance_summary

    table = pd.DataFrame({"smd_before": [0.5, 0.05, 0.3, 0.2, 0.9, 0.4, 0.15],
                          "smd_after": [0.02, 0.01, 0.12, 0.03, 0.04, 0.2, 0.05]},
                         index=pd.Index(list("abcdefg"), name="covariate"))
    out = balance_summary(table)
    assert out["threshold"] == BALANCE_THRESHOLD
    assert (out["n_over_before"], out["n_over_after"]) == (6, 2)
    assert out["max_smd_after"] == 0.2 and out["n_covariates"] == 7
    assert [w["covariate"] for w in out["worst"]] == ["f", "c", "g", "e", "d"][:N_WORST]
    assert balance_summary(table, threshold=0.3)["n_over_before"] == 3


def test_effective_sample_size_count_and_fraction():
    assert effective_sample_size(np.ones(8)) == pytest.approx(8.0)
    assert effective_sample_fraction(np.ones(8)) == pytest.approx(1.0)
    w = np.array([1.0, 0, 0, 0])
    assert effective_sample_size(w) == pytest.approx(1.0)
    assert effective_sample_fraction(w) == pytest.approx(0.25)
    assert effective_sample_size(np.zeros(3)) == 0.0


def test_target_population_threshold_and_mutual_att():
    t = np.array([0, 1, 1, 0])
    assert target_population(t, "ate").all()
    np.testing.assert_array_equal(target_population(t, "att"), t == 1)
    assert BALANCE_THRESHOLD == 0.1
    check_balance_estimand("mutual", "ate")
    with pytest.raises(CInAValidationError, match="mutual.*ATT"):
        check_balance_estimand("mutual", "att")


def test_huge_columns_are_rescaled_exactly_and_others_kept():
    X = np.array([[1.0, 3e300], [2.0, -1e300], [3.0, 2e300]])
    out = rescale_huge_columns(X)
    assert np.array_equal(out[:, 0], X[:, 0])
    assert np.abs(out[:, 1]).max() <= 1.0
    ratio = X[:, 1] / out[:, 1]
    assert np.all(ratio == ratio[0]) and np.log2(ratio[0]) == int(np.log2(ratio[0]))
    small = np.arange(6.0).reshape(3, 2)
    assert rescale_huge_columns(small) is small


def test_se_from_residuals_survives_overflow_and_matches_the_plain_formula():
    from cina.effect import se_from_residual_variance

    rng = np.random.default_rng(0)
    alpha = rng.random(50)
    alpha /= alpha.sum()
    r = rng.normal(size=50)
    assert se_from_residual_variance(alpha, r) == float(np.sqrt(np.sum(alpha**2 * r**2)))
    with np.errstate(over="ignore"):
        big = se_from_residual_variance(alpha, r * 1e200)
    assert big == pytest.approx(se_from_residual_variance(alpha, r) * 1e200, rel=1e-12)


def test_cross_fitting_is_one_module_shared_by_cina_and_the_baselines():
    from cina import crossfit
    from cina.baselines import _common

    for name in ("cross_fit_folds", "cross_fit_outcomes", "cross_fit_nuisances",
                 "clip_propensity", "seeded_clone"):
        assert getattr(_common, name) is getattr(crossfit, name)
    t = np.array([0, 1] * 10)
    folds = crossfit.cross_fit_folds(t, 5, 0)
    tests = np.sort(np.concatenate([te for _, te in folds]))
    np.testing.assert_array_equal(tests, np.arange(20))
