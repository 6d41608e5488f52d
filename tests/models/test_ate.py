"""SCM.ate and SCMEnsemble.ate: a float with a standard error and an interval."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import pyrocausal as pc
from pyrocausal.results import ATEResult


@pytest.fixture(scope="module")
def linear():
    """b = 2 a + noise: a linear SCM fitted to 400 rows (true ATE 2 per unit of a)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    data = pd.DataFrame({"a": a, "b": 2.0 * a + rng.normal(size=400)})
    scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
    scm.fit(data, epochs=30, progress=False, seed=0)
    return scm, data


def test_ate_is_a_float_with_its_monte_carlo_error(linear):
    scm, _ = linear
    ate = scm.ate("b", {"a": 1.0}, {"a": 0.0}, num_samples=2000, seed=0, fit_uncertainty="none")
    assert isinstance(ate, ATEResult) and isinstance(ate, float)
    assert f"{ate:.4f}" == f"{ate.estimate:.4f}" and json.loads(json.dumps(ate)) == ate.estimate
    assert pickle.loads(pickle.dumps(ate)).se == ate.se
    assert ate.members is None and ate.num_samples == 2000
    # A linear mechanism: the paired difference is the slope in every draw, no MC error.
    assert ate.se < 1e-6 and ate == pytest.approx(2.0, abs=0.15)


def test_ate_carries_the_slope_uncertainty_by_default(linear):
    scm, data = linear
    ate = scm.ate("b", {"a": 1.0}, {"a": 0.0}, num_samples=2000, seed=0)
    assert len(ate.members) == 10  # draws of the regression's posterior
    a, b = data["a"].to_numpy(), data["b"].to_numpy()
    slope, intercept = np.polyfit(a, b, 1)
    se = np.std(b - slope * a - intercept, ddof=2) / np.sqrt(((a - a.mean()) ** 2).sum())
    assert 0.5 * se < ate.se < 2 * se  # ~0.05: the slope's standard error
    assert ate == pytest.approx(slope, abs=2 * se)
    low, high = ate.interval(0.99)
    assert low < 2.0 < high


def test_monte_carlo_se_matches_the_spread_over_seeds():
    # y = t + (1 + t) e: the effect of t differs per unit (1 + e), so the MC error is real
    scm = pc.SCM(
        {"t": [], "y": ["t"]},
        mechanisms={
            "t": pc.HandWritten(lambda pa, e: e, lambda pa, x: x),
            "y": pc.HandWritten(
                lambda pa, e: pa["t"] + (1 + pa["t"]) * e,
                lambda pa, x: (x - pa["t"]) / (1 + pa["t"]),
            ),
        },
    )
    estimates, ses = [], []
    for seed in range(30):
        ate = scm.ate("y", {"t": 1.0}, {"t": 0.0}, num_samples=400, seed=seed)
        estimates.append(float(ate))
        ses.append(ate.se)
    # the paired difference is 1 + e: true ATE 1, true se 1 / sqrt(400) = 0.05
    assert np.mean(ses) == pytest.approx(0.05, rel=0.1)  # each se is off by ~ 1/sqrt(800)
    assert np.mean(estimates) == pytest.approx(1.0, abs=3 * 0.05 / np.sqrt(30))
    # the spread seen over 30 seeds (its own relative sd ~ 13%): within a factor 1.4
    assert 1 / 1.4 < np.std(estimates, ddof=1) / np.mean(ses) < 1.4
    lo, hi = ATEResult(1.0, se=0.5, num_samples=10).interval(0.8)
    assert (hi - lo) == pytest.approx(2 * norm.ppf(0.9) * 0.5)
    with pytest.raises(ValueError, match="prob"):
        ate.interval(1.0)
    with pytest.raises(ValueError, match="num_samples"):
        scm.ate("y", {"t": 1.0}, {"t": 0.0}, num_samples=1)


def test_ensemble_ate_carries_the_uncertainty_of_the_fit(linear):
    scm, data = linear
    small = data.head(60)
    ensemble = pc.SCMEnsemble.bootstrap(scm, small, num_models=8, seed=0, epochs=30)
    ate = ensemble.ate("b", {"a": 1.0}, {"a": 0.0}, num_samples=500, seed=0)
    assert len(ate.members) == 8 and ate.estimate == pytest.approx(ate.members.mean())
    assert ate.se == pytest.approx(ate.members.std(ddof=1))
    # A linear SCM's ATE per unit is its fitted slope: the bootstrap se should be the OLS
    # standard error of the slope on these 60 rows (0.13 here), far above one member's zero
    # Monte Carlo error. 8 members estimate an sd to ~ 25%: within a factor 2.
    slope, _ = np.polyfit(small["a"], small["b"], 1)
    resid = small["b"] - slope * small["a"]
    ols_se = resid.std(ddof=2) / (small["a"].std(ddof=0) * np.sqrt(len(small)))
    assert 0.5 < ate.se / ols_se < 2.0
    lo, hi = ate.interval(0.9)
    assert lo < slope < hi  # centred near the single fit on all 60 rows
    assert "members=8" in repr(ate)
    with pytest.raises(ValueError, match="two members"):
        pc.SCMEnsemble(ensemble.members[:1]).ate("b", {"a": 1.0}, {"a": 0.0})
