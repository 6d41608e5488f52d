"""Hand-written and discrete (Gumbel-max) mechanisms: semantics, abduction, fitting, every query."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from pyro import poutine
from scipy import stats
from scipy.special import expit
from torch.distributions import AffineTransform, ComposeTransform, ExpTransform

import pyrocausal as pc
from pyrocausal.custom import GumbelMax, GumbelMaxPosterior
from pyrocausal.inference import noise_site


def _interaction_scm(**x3_params):
    """x1, x2 ~ N(0, 1); x3 = x1 + x2 + x1 x2 + 0.3 u: the true mechanisms, written by hand."""

    def f3(pa):
        return pa["x1"] + pa["x2"] + pa["x1"] * pa["x2"]

    return pc.SCM(
        {"x1": [], "x2": [], "x3": ["x1", "x2"]},
        mechanisms={
            "x1": pc.HandWritten(lambda pa, u: u, lambda pa, x: x),
            "x2": pc.HandWritten(transform=lambda pa: AffineTransform(0.0, 1.0)),
            "x3": pc.HandWritten(lambda pa, u: f3(pa) + 0.3 * u, lambda pa, x: (x - f3(pa)) / 0.3),
        },
    )


def _interaction_rows(n, seed):
    rng = np.random.default_rng(seed)
    x1, x2, u3 = rng.normal(size=(3, n))
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x1 + x2 + x1 * x2 + 0.3 * u3}), u3


# ---------------------------------------------------------------- hand-written
def test_hand_written_scm_is_complete_and_its_counterfactuals_are_the_true_ones():
    scm = _interaction_scm()
    assert bool(scm.fitted)  # nothing to fit: every mechanism is written down
    rows, u3 = _interaction_rows(200, seed=0)
    cf = scm.counterfactual(rows, {"x1": 1.0})
    truth = 1.0 + rows["x2"] + rows["x2"] + 0.3 * u3  # x1 := 1, same x2 and u3
    np.testing.assert_allclose(cf["x3"], truth, atol=1e-5)
    np.testing.assert_allclose(scm.abduct(rows)["x3"], u3, atol=1e-4)
    # log density = N(x1) N(x2) N(x3; f, 0.3^2)
    f = rows["x1"] + rows["x2"] + rows["x1"] * rows["x2"]
    expected = (
        stats.norm.logpdf(rows["x1"])
        + stats.norm.logpdf(rows["x2"])
        + stats.norm.logpdf(rows["x3"], f, 0.3)
    )
    np.testing.assert_allclose(scm.log_prob(rows), expected, rtol=1e-5)


def test_hand_written_transform_with_a_constrained_noise():
    """x = exp(a + u) with u ~ Uniform(0, 1): a transform and a noise distribution of choice."""
    scm = pc.SCM(
        {"a": [], "x": ["a"]},
        mechanisms={
            "a": pc.HandWritten(lambda pa, u: u, lambda pa, x: x),
            "x": pc.HandWritten(
                transform=lambda pa: ComposeTransform(
                    [AffineTransform(pa["a"], 1.0), ExpTransform()]
                ),
                noise=torch.distributions.Uniform(0.0, 1.0),
            ),
        },
    )
    draws = scm.sample(4000, seed=0)
    u = np.log(draws["x"]) - draws["a"]
    assert u.min() >= 0.0 and u.max() <= 1.0  # the noise is uniform on [0, 1]
    assert abs(u.mean() - 0.5) < 0.02
    # density of x given a: 1 / x on [e^a, e^(a+1)]
    lp = scm.log_prob(draws.head(5))
    expected = stats.norm.logpdf(draws["a"].head(5)) - np.log(draws["x"].head(5))
    np.testing.assert_allclose(lp, expected, rtol=1e-5)


def test_free_parameters_of_a_hand_written_family_are_fitted():
    rng = np.random.default_rng(0)
    a = rng.normal(size=3000)
    data = pd.DataFrame({"a": a, "b": 1.5 * a - 0.5 + 0.4 * rng.normal(size=3000)})
    scm = pc.SCM(
        {"a": [], "b": ["a"]},
        mechanisms={
            "a": pc.HandWritten(lambda pa, u: u, lambda pa, x: x),
            "b": pc.HandWritten(
                lambda pa, u, th: th["w"] * pa["a"] + th["c"] + th["s"].exp() * u,
                lambda pa, x, th: (x - th["w"] * pa["a"] - th["c"]) / th["s"].exp(),
                params={"w": 0.0, "c": 0.0, "s": 0.0},
            ),
        },
    )
    assert not bool(scm.fitted)
    scm.fit(data, epochs=60, lr=0.05, progress=False, seed=0)
    theta = dict(scm.stacks[scm._slot["b"][0]].slots[0].theta.items())
    # maximum likelihood on 3000 rows: standard errors about 0.01 (w, c) and 0.013 (log s)
    assert abs(theta["w"].item() - 1.5) < 0.05
    assert abs(theta["c"].item() + 0.5) < 0.05
    assert abs(theta["s"].exp().item() - 0.4) < 0.03


def test_hand_written_specifications_reject_bad_arguments():
    with pytest.raises(ValueError, match="forward and inverse, or transform"):
        pc.HandWritten(lambda pa, u: u)
    with pytest.raises(ValueError, match="not both"):
        pc.HandWritten(lambda pa, u: u, lambda pa, x: x, transform=lambda pa: ExpTransform())
    with pytest.raises(ValueError, match="one scalar distribution"):
        pc.HandWritten(
            lambda pa, u: u,
            lambda pa, x: x,
            noise=torch.distributions.Normal(torch.zeros(2), torch.ones(2)),
        )
    with pytest.raises(TypeError, match="cannot be written to a file"):
        pc.HandWritten(lambda pa, u: u, lambda pa, x: x).to_config()


# ---------------------------------------------------------------- Gumbel-max
def test_gumbel_max_distribution_is_the_categorical():
    logits = torch.tensor([[0.3, -1.0, 1.2], [0.0, 0.0, 0.0]])
    d = GumbelMax(logits)
    draws = d.sample((20_000,))
    freq = torch.stack([(draws == k).double().mean(0) for k in range(3)], -1)
    # 20,000 draws: binomial standard error below 0.0036
    torch.testing.assert_close(freq, logits.softmax(-1).double(), atol=0.015, rtol=0)
    assert d.enumerate_support(expand=False).shape == (3, 1)
    np.testing.assert_allclose(
        d.log_prob(torch.tensor([2.0, 1.0])),
        [logits.log_softmax(-1)[0, 2], math.log(1 / 3)],
        rtol=1e-6,
    )


def test_gumbel_max_posterior_is_consistent_and_averages_to_the_prior():
    """Sampling a category, then the noise given it, must give i.i.d. Gumbel(0, 1) noise."""
    logits = torch.tensor([0.5, -0.5, 1.5])
    category = GumbelMax(logits).sample((40_000,))
    g = GumbelMaxPosterior(logits.expand(40_000, 3), category).sample()
    assert bool(((logits + g).argmax(-1) == category.long()).all())
    for k in range(3):  # Kolmogorov-Smirnov against Gumbel(0, 1), each component
        assert stats.kstest(g[:, k].numpy(), stats.gumbel_r.cdf).pvalue > 1e-3
    lp = GumbelMaxPosterior(logits, torch.tensor(2.0)).log_prob(g[category == 2][:5])
    assert torch.isfinite(lp).all()
    assert GumbelMaxPosterior(logits, torch.tensor(0.0)).log_prob(g[category == 2][:1]) == -math.inf


def _discrete_scm():
    """z ~ N(0, 1); t ~ Bernoulli(sigmoid(2 z)); y ~ Categorical(3) with logits of (z, t)."""
    return pc.SCM(
        {"z": [], "t": ["z"], "y": ["z", "t"]},
        mechanisms={
            "z": pc.HandWritten(lambda pa, u: u, lambda pa, x: x),
            "t": pc.Bernoulli(logits=lambda pa: 2.0 * pa["z"]),
            "y": pc.Categorical(
                3,
                logits=lambda pa: torch.stack(
                    [0 * pa["z"], pa["z"] + pa["t"], 2.0 * pa["t"] - pa["z"]], -1
                ),
            ),
        },
    )


def test_discrete_nodes_in_the_program_and_the_exact_paths():
    scm = _discrete_scm()
    draws = scm.sample(20_000, seed=0)
    assert set(np.unique(draws["t"])) == {0.0, 1.0} and set(np.unique(draws["y"])) == {
        0.0,
        1.0,
        2.0,
    }
    p_t = expit(2 * draws["z"]).mean()
    assert abs(draws["t"].mean() - p_t) < 0.015  # binomial standard error 0.0035
    doing = scm.do({"t": 1.0}).sample(20_000, seed=0)
    assert (doing["t"] == 1.0).all()
    rows = draws.head(50)
    trace = poutine.trace(scm.guide).get_trace(
        {k: torch.tensor(v.to_numpy(), dtype=torch.float32) for k, v in rows.items()}
    )
    g = trace.nodes[noise_site("y")]["value"]
    assert g.shape == (50, 3)
    # the exact path keeps working where discrete nodes do not change ...
    cf = scm.counterfactual(rows, {"y": 2.0})
    pd.testing.assert_frame_equal(cf, rows.assign(y=2.0))
    # ... and refuses where their counterfactual is a distribution
    with pytest.raises(ValueError, match=r"discrete variable\(s\) \['y'\].*num_samples"):
        scm.counterfactual(rows, {"t": 1.0})


def test_counterfactual_of_the_factual_value_is_the_identity_for_categorical_nodes():
    scm = _discrete_scm()
    rows = scm.sample(40, seed=1)
    result = scm.counterfactual(rows, {"t": rows["t"].to_numpy()}, num_samples=50, seed=0)
    for node in ("z", "t", "y"):
        cf = result.samples[node].unstack("draw").to_numpy()
        np.testing.assert_array_equal(cf, np.repeat(rows[[node]].to_numpy(), 50, axis=1))


def test_counterfactual_stability_of_gumbel_max():
    """A shift of every logit by the same amount cannot change the category (Oberst & Sontag)."""
    scm = pc.SCM(
        {"a": [], "y": ["a"]},
        mechanisms={
            "a": pc.HandWritten(lambda pa, u: u, lambda pa, x: x),
            "y": pc.Categorical(
                3, logits=lambda pa: torch.stack([pa["a"], pa["a"] + 0.5, pa["a"] - 1.0], -1)
            ),
        },
    )
    rows = scm.sample(30, seed=0)
    result = scm.counterfactual(rows, {"a": 3.0}, num_samples=40, seed=0)
    cf = result.samples["y"].unstack("draw").to_numpy()
    np.testing.assert_array_equal(cf, np.repeat(rows[["y"]].to_numpy(), 40, axis=1))
    axes = result.plot(variable="y", max_rows=2)  # discrete variables are drawn as bars
    assert len(axes.flat[0].patches) >= 2
    import matplotlib.pyplot as plt

    plt.close("all")


def test_learned_bernoulli_is_a_logistic_regression_and_saves():
    rng = np.random.default_rng(0)
    z = rng.normal(size=4000)
    t = (rng.random(4000) < expit(-0.5 + 1.5 * z)).astype(float)
    y = z + 2 * t + 0.5 * rng.normal(size=4000)
    data = pd.DataFrame({"z": z, "t": t, "y": y})
    scm = pc.SCM(
        {"z": [], "t": ["z"], "y": ["z", "t"]},
        mechanisms={"z": pc.LinearGaussian(), "t": pc.Bernoulli(), "y": pc.LinearGaussian()},
    )
    scm.fit(data, epochs=40, progress=False, seed=0)
    g, k = scm._slot["t"]
    assert scm.stacks[g].design(k) == "linear"  # the network does not beat it on held-out rows
    logit = scm.stacks[g].logits(k, {"z": torch.tensor([0.0, 1.0])})[:, 1]
    # maximum likelihood on 4000 rows: standard errors about 0.05
    assert abs(float(logit[1] - logit[0]) - 1.5) < 0.2 and abs(float(logit[0]) + 0.5) < 0.2
    ate = scm.ate("y", {"t": 1.0}, {"t": 0.0}, num_samples=5000, seed=0)
    assert abs(ate - 2.0) < 0.1
    assert scm.mechanisms["t"].to_config() == {
        "type": "bernoulli",
        "hidden_features": [],
        "design": "auto",
        "se_rule": 2.0,
    }


def test_discrete_scm_round_trips_through_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=500)
    data = pd.DataFrame({"z": z, "t": (rng.random(500) < expit(z)).astype(float)})
    scm = pc.SCM({"z": [], "t": ["z"]}, mechanisms={"z": "linear", "t": pc.Categorical(2)})
    scm.fit(data, epochs=5, progress=False, seed=0)
    scm.save(tmp_path / "m.pt")
    again = pc.SCM.load(tmp_path / "m.pt")
    pd.testing.assert_series_equal(scm.log_prob(data.head(20)), again.log_prob(data.head(20)))
