"""Latent confounders: warnings, the copula sensitivity model and its exactness."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import pyrocausal as pc
from pyrocausal.inference.sensitivity import (
    Confounding,
    UnidentifiedQueryWarning,
    bivariate_normal_cdf,
    confounder_pair,
    latent_dependence,
)


def _confounded_data(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    h = rng.normal(size=n)
    t = (rng.logistic(size=n) + 2 * h > 0).astype(float)
    y = 2 * t + h + t * h + 0.5 * rng.normal(size=n)
    return pd.DataFrame({"t": t, "y": y}), y + (1 - 2 * t) * (2 + h)


@pytest.fixture(scope="module")
def confounded():
    rng = np.random.default_rng(0)
    data, _ = _confounded_data(3000, rng)
    graph = pc.CausalGraph({"h": [], "t": ["h"], "y": ["t", "h"]}, latent=["h"])
    scm = pc.SCM(graph, mechanisms={"t": pc.Bernoulli()})
    scm.fit(data, epochs=30, progress=False, seed=0)
    return scm


def test_bivariate_normal_cdf_matches_scipy():
    rng = np.random.default_rng(0)
    for h, k, rho in zip(
        rng.normal(size=8) * 1.5, rng.normal(size=8) * 1.5, rng.uniform(-0.9, 0.9, 8)
    ):
        want = multivariate_normal(cov=[[1, rho], [rho, 1]]).cdf([h, k])
        assert abs(float(bivariate_normal_cdf(h, k, rho)) - want) < 1e-6


def test_structure_rules():
    g = pc.CausalGraph({"h": [], "t": ["h"], "y": ["t", "h"]}, latent=["h"])
    scm = pc.SCM(g, mechanisms={"t": pc.Bernoulli()})
    assert confounder_pair(scm, "h") == ("t", "y")
    assert latent_dependence(scm, ["y"], ["t"], "counterfactual") == ["h"]
    assert latent_dependence(scm, ["y"], ["t"], "interventional") == ["h"]
    # a latent cause of the outcome alone confounds nothing interventional
    g2 = pc.CausalGraph({"h": [], "t": [], "y": ["t", "h"]}, latent=["h"])
    scm2 = pc.SCM(g2, mechanisms={"t": pc.Bernoulli()})
    assert latent_dependence(scm2, ["y"], ["t"], "interventional") == []
    assert latent_dependence(scm2, ["y"], ["t"], "counterfactual") == ["h"]
    assert confounder_pair(scm2, "h") is None  # one child only
    with pytest.raises(ValueError, match="rho must lie"):
        Confounding(rho=(0.5, 0.2))


def test_default_answer_warns_and_covers_the_truth(confounded):
    rng = np.random.default_rng(1)
    rows, truth = _confounded_data(300, rng)
    with pytest.warns(UnidentifiedQueryWarning, match=r"latent node\(s\) \['h'\]"):
        result = confounded.counterfactual(rows, {"t": 1 - rows["t"].to_numpy()}, num_samples=200)
    draws = result.samples["y"].unstack("draw").reindex(result.rows).to_numpy()
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=1)
    coverage = float(((truth >= lo) & (truth <= hi)).mean())
    assert coverage > 0.8  # the fitted latent model alone covered 0 of them
    assert float((hi - lo).mean()) > 1.0  # honest width: the answer is not identified
    assert result.info["method"] == "Confounding"


def test_stated_range_narrows_the_answer_without_warning(confounded):
    rows, truth = _confounded_data(200, np.random.default_rng(2))
    iv = {"t": 1 - rows["t"].to_numpy()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnidentifiedQueryWarning)
        wide = confounded.counterfactual(rows, iv, num_samples=100, confounding=Confounding())
        narrow = confounded.counterfactual(
            rows, iv, num_samples=100, confounding=Confounding(rho=(0.5, 0.9))
        )

    def width(r):
        d = r.samples["y"].unstack("draw").to_numpy()
        return float(np.ptp(d, axis=1).mean())

    assert width(narrow) < 0.6 * width(wide)


def test_rho_zero_is_the_marginal_models_counterfactual(confounded):
    rows, _ = _confounded_data(50, np.random.default_rng(3))
    iv = {"t": 1 - rows["t"].to_numpy()}
    result = confounded.counterfactual(rows, iv, num_samples=4, confounding=Confounding(rho=0.0))
    # Binary treatment, rho = 0: the outcome keeps its quantile within the other arm.
    got = result.samples["y"].unstack("draw").to_numpy()[:, 0]
    # replaying the abducted noise through the other arm's flow is the rho = 0 answer
    replay = confounded.marginal.counterfactual(rows, {"t": iv["t"]})["y"].to_numpy()
    np.testing.assert_allclose(got, replay, atol=1e-4)


def test_partial_evidence_or_other_structures_warn_and_keep_the_latent_model(confounded):
    rows, _ = _confounded_data(20, np.random.default_rng(4))
    rows.loc[rows.index[:5], "y"] = np.nan
    with pytest.warns(UnidentifiedQueryWarning, match="the fitted model's"):
        result = confounded.counterfactual(rows, {"t": 1.0}, num_samples=20, seed=0)
    assert result.info["method"] == "SVIAbduction"
    with pytest.raises(ValueError, match="confounding= is the sensitivity model"):
        confounded.counterfactual(rows, {"t": 1.0}, num_samples=20, confounding=Confounding())


def test_ate_and_interventional_query_show_the_range(confounded):
    with pytest.warns(UnidentifiedQueryWarning, match="the ATE on 'y'"):
        ate = confounded.ate("y", {"t": 1.0}, {"t": 0.0}, num_samples=4000, seed=0)
    assert ate.members is not None and len(ate.members) == 21
    assert ate.members.min() < 2.0 < ate.members.max()  # the true ATE, E[2 + h] = 2
    with pytest.warns(UnidentifiedQueryWarning, match="under do"):
        query = confounded.do({"t": 1.0}).query(num_samples=500, seed=0)
    assert query.info["method"] == "Confounding"
    assert (query.samples["t"] == 1.0).all()


def test_save_and_load_keep_the_marginal_model(confounded, tmp_path):
    confounded.save(tmp_path / "m.pt")
    again = pc.SCM.load(tmp_path / "m.pt")
    rows, _ = _confounded_data(30, np.random.default_rng(5))
    pd.testing.assert_series_equal(
        confounded.marginal.log_prob(rows), again.marginal.log_prob(rows)
    )


def test_save_and_load_keep_the_marginal_models_near_tie_alternatives(tmp_path):
    # the CLI's small fit: the marginal model of (t, y) has a near-tied mechanism for y
    rng = np.random.default_rng(0)
    data, _ = _confounded_data(800, rng)
    graph = pc.CausalGraph({"h": [], "t": ["h"], "y": ["t", "h"]}, latent=["h"])
    scm = pc.SCM(graph, {"t": pc.Bernoulli()})
    scm.fit(data, epochs=3, progress=False, seed=0)
    assert len(scm.marginal.alternatives) >= 1  # the path under test
    scm.save(tmp_path / "m.pt")
    again = pc.SCM.load(tmp_path / "m.pt")
    assert [a.mechanisms for a in again.marginal.alternatives] == [
        a.mechanisms for a in scm.marginal.alternatives
    ]
    assert again.marginal.alternative_weights.tolist() == scm.marginal.alternative_weights.tolist()
    rows = data.head(20)
    for mine, theirs in zip(scm.marginal.alternatives, again.marginal.alternatives):
        pd.testing.assert_series_equal(mine.log_prob(rows), theirs.log_prob(rows))
