"""cina in the py-why ecosystem: the DoWhy estimator (extra ``cina[dowhy]``) with DoWhy's
refuters, and the EconML / DoubleML vocabulary of the results.

The DoWhy tests (marked ``dowhy``) need DoWhy, which pins scipy <= 1.15.3 on Python < 3.13, so it
is an optional extra rather than part of the dev environment (docs/report.md, "DoWhy"):
``scripts/test.sh`` runs them in their own environment (``.venv-dowhy``) and deselects them in
the main one; elsewhere they skip, saying why. The vocabulary tests need no extra.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import norm

import cina
from cina.errors import CInAValidationError, MissingDependencyError, NotFittedError
from cina.integrations import to_doubleml_style, to_econml_style


def frame(seed: int = 0, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, 3))
    t = rng.random(n) < expit(0.8 * W[:, 0] - 0.5 * W[:, 1])
    y = W[:, 0] + 0.5 * W[:, 1] ** 2 + 0.3 * W[:, 2] + 2.0 * t + rng.normal(size=n)
    return pd.DataFrame({"W0": W[:, 0], "W1": W[:, 1], "W2": W[:, 2], "v0": t, "y": y})


# --- the missing extra -----------------------------------------------------------------------

def test_missing_dowhy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dowhy", None)  # import dowhy now raises ImportError
    monkeypatch.setitem(sys.modules, "dowhy.causal_estimator", None)
    monkeypatch.delitem(sys.modules, "cina.integrations.dowhy", raising=False)
    with pytest.raises(MissingDependencyError, match=r"cina\[dowhy\]"):
        importlib.import_module("cina.integrations.dowhy")
    monkeypatch.delitem(sys.modules, "cina.integrations.dowhy", raising=False)


# --- DoWhy -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dowhy_model():
    pytest.importorskip(
        "dowhy", reason="DoWhy is an optional extra (pip install 'cina[dowhy]'); dowhy 0.14 pins "
                        "scipy <= 1.15.3 on Python < 3.13, so the dev environment omits it")
    from dowhy import CausalModel

    df = frame()
    model = CausalModel(data=df, treatment="v0", outcome="y", common_causes=["W0", "W1", "W2"])
    return df, model, model.identify_effect(proceed_when_unidentifiable=True)


@pytest.mark.dowhy
@pytest.mark.parametrize("target_units", ["ate", "att"])
def test_dowhy_estimate_is_cinas_fit(dowhy_model, target_units):
    from cina.integrations.dowhy import METHOD_NAME

    df, model, identified = dowhy_model
    estimate = model.estimate_effect(identified, method_name=METHOD_NAME,
                                     target_units=target_units, confidence_intervals=True,
                                     method_params={"init_params": {"lam_rel": 0.3}})
    direct = cina.CInA(estimand=target_units, lam_rel=0.3).fit(
        df[["W0", "W1", "W2"]], df["v0"].astype(int), df["y"])
    assert estimate.value == direct.effect_
    fitted = estimate.estimator.cina_estimator_
    assert fitted.result_.estimand == target_units
    lo, hi = np.asarray(estimate.get_confidence_intervals()).ravel()
    assert (lo, hi) == direct.effect_interval(0.05)
    assert estimate.get_standard_error() == direct.se_
    assert abs(estimate.value - 2.0) < 4 * direct.se_  # the simulated effect is 2
    assert "cina" in str(estimate)


@pytest.mark.dowhy
def test_dowhy_other_registry_methods(dowhy_model):
    from cina.integrations.dowhy import METHOD_NAME

    _, model, identified = dowhy_model
    estimate = model.estimate_effect(identified, method_name=METHOD_NAME,
                                     method_params={"init_params": {"method": "ipw"}})
    assert type(estimate.estimator.cina_estimator_).__name__ == "IPW"
    with pytest.raises(CInAValidationError, match="target_units"):
        model.estimate_effect(identified, method_name=METHOD_NAME,
                              method_params={"init_params": {"estimand": "att"}})
    with pytest.raises(CInAValidationError, match="does not accept"):
        model.estimate_effect(identified, method_name=METHOD_NAME,
                              method_params={"init_params": {"no_such_setting": 1}})
    with pytest.raises(CInAValidationError, match="'ate' or 'att'"):
        model.estimate_effect(identified, method_name=METHOD_NAME, target_units="atc")


@pytest.mark.dowhy
def test_dowhy_refuters_run_on_cina(dowhy_model):
    from cina.integrations.dowhy import METHOD_NAME

    _, model, identified = dowhy_model
    estimate = model.estimate_effect(identified, method_name=METHOD_NAME,
                                     method_params={"init_params": {"lam_rel": 0.3}})
    se = estimate.estimator.cina_estimator_.se_
    placebo = model.refute_estimate(identified, estimate, method_name="placebo_treatment_refuter",
                                    placebo_type="permute", num_simulations=5, random_seed=1)
    # a permuted treatment has no effect: the placebo estimate is noise around 0
    assert abs(placebo.new_effect) < 4 * se
    common = model.refute_estimate(identified, estimate, method_name="random_common_cause",
                                   num_simulations=5, random_seed=1)
    # an independent extra covariate barely moves the balancing estimate
    assert abs(common.new_effect - estimate.value) < se
    subset = model.refute_estimate(identified, estimate, method_name="data_subset_refuter",
                                   subset_fraction=0.8, num_simulations=5, random_seed=1)
    assert abs(subset.new_effect - estimate.value) < 2 * se


# --- EconML / DoubleML vocabulary ---------------------------------------------------------

@pytest.fixture(scope="module")
def fitted():
    df = frame(1)
    return cina.CInA(lam_rel=0.3).fit(df[["W0", "W1", "W2"]], df["v0"], df["y"])


def test_summary_frame_has_z_and_p(fitted):
    row = fitted.summary_frame(alpha=0.1).loc["ate"]
    assert row["zstat"] == pytest.approx(row["estimate"] / row["se"])
    assert row["pvalue"] == pytest.approx(2 * norm.sf(abs(row["zstat"])))
    lo, hi = fitted.ate_interval(alpha=0.1)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
    assert hi - lo == pytest.approx(2 * norm.ppf(0.95) * fitted.se_)


def test_econml_style(fitted):
    out = to_econml_style(fitted, alpha=0.1)
    assert list(out.columns) == ["mean_point", "stderr_mean", "zstat", "pvalue", "ci_mean_lower",
                                 "ci_mean_upper"]
    row = out.iloc[0]
    assert row["mean_point"] == fitted.ate_ and row["stderr_mean"] == fitted.se_
    assert (row["ci_mean_lower"], row["ci_mean_upper"]) == fitted.ate_interval(alpha=0.1)


def test_doubleml_style_matches_doubleml_columns(fitted):
    dml = pytest.importorskip("doubleml")
    from sklearn.linear_model import LinearRegression, LogisticRegression

    df = frame(1)
    data = dml.DoubleMLData(df.assign(v0=df["v0"].astype(int)), y_col="y", d_cols="v0",
                            x_cols=["W0", "W1", "W2"])
    ref = dml.DoubleMLIRM(data, ml_g=LinearRegression(), ml_m=LogisticRegression(),
                          n_folds=3).fit()
    ours = to_doubleml_style(fitted, treatment_name="v0")
    assert list(ours.columns) == list(ref.summary.columns)
    assert list(ours.index) == list(ref.summary.index)
    row = ours.loc["v0"]
    assert row["t"] == pytest.approx(row["coef"] / row["std err"])
    assert (row["2.5 %"], row["97.5 %"]) == fitted.effect_interval(0.05)
    # two estimators of the same effect: the weighting estimate lies within the DML interval's
    # reach (both have se ~0.1 here; the simulated effect is 2)
    assert abs(row["coef"] - ref.summary.loc["v0", "coef"]) < 3 * row["std err"]
    assert list(to_doubleml_style(fitted, alpha=0.1).columns)[-2:] == ["5.0 %", "95.0 %"]


def test_vocabulary_needs_a_fit():
    with pytest.raises(NotFittedError):
        to_econml_style(cina.CInA())
