"""Learned discrete mechanisms: the designs of the logits and their choice by cross-validation."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit, softmax

import pyrocausal as pc
from pyrocausal.discrete import DESIGNS


def _design(scm: pc.SCM, node: str) -> str:
    g, k = scm._slot[node]
    return scm.stacks[g].design(k)


def _probs(scm: pc.SCM, node: str, parents: dict[str, list[float]]) -> np.ndarray:
    g, k = scm._slot[node]
    values = {p: torch.tensor(v) for p, v in parents.items()}
    return scm.stacks[g].logits(k, values).softmax(-1).detach().numpy()


def test_xor_of_two_binary_parents_gets_a_table():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 3000), rng.integers(0, 2, 3000)
    c = (rng.random(3000) < np.where(a == b, 0.9, 0.1)).astype(int)
    data = pd.DataFrame({"a": a, "b": b, "c": c}).astype(float)
    scm = pc.SCM({"a": [], "b": [], "c": ["a", "b"]}, {n: pc.Bernoulli() for n in "abc"})
    scm.fit(data, epochs=5, progress=False, seed=0)
    assert _design(scm, "c") == "table"
    assert _design(scm, "a") == "linear"  # no parents: a constant in every design
    p = _probs(scm, "c", {"a": [0.0, 0.0, 1.0, 1.0], "b": [0.0, 1.0, 0.0, 1.0]})[:, 1]
    np.testing.assert_allclose(p, [0.9, 0.1, 0.1, 0.9], atol=0.04)
    g, k = scm._slot["c"]
    cv = scm.stacks[g].slots[k].cv_nll
    assert cv[DESIGNS.index("table")] < cv[DESIGNS.index("linear")] - 0.2  # nats per row


def test_a_linear_logit_keeps_the_regression():
    rng = np.random.default_rng(1)
    z = rng.normal(size=3000)
    t = (rng.random(3000) < expit(0.3 + 1.2 * z)).astype(float)
    scm = pc.SCM({"z": [], "t": ["z"]}, {"z": "linear", "t": pc.Bernoulli()})
    scm.fit(pd.DataFrame({"z": z, "t": t}), epochs=5, progress=False, seed=0)
    assert _design(scm, "t") == "linear"


def test_interaction_of_a_binary_and_a_continuous_parent_gets_a_table():
    """y's logit is -0.5 + 2 t + z + 1.5 t z: one logistic regression in z per arm."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=5000)
    t = (rng.random(5000) < expit(1.5 * z)).astype(float)
    y = (rng.random(5000) < expit(-0.5 + 2 * t + z + 1.5 * t * z)).astype(float)
    scm = pc.SCM(
        {"z": [], "t": ["z"], "y": ["z", "t"]},
        {"z": "linear", "t": pc.Bernoulli(), "y": pc.Bernoulli()},
    )
    scm.fit(pd.DataFrame({"z": z, "t": t, "y": y}), epochs=5, progress=False, seed=0)
    assert _design(scm, "y") == "table"
    grid = np.array([-1.5, 0.0, 1.5])
    for arm in (0.0, 1.0):
        p = _probs(scm, "y", {"z": grid.tolist(), "t": [arm] * 3})[:, 1]
        np.testing.assert_allclose(p, expit(-0.5 + 2 * arm + grid + 1.5 * arm * grid), atol=0.06)


def test_all_categorical_table_matches_the_true_conditional():
    rng = np.random.default_rng(3)
    n = 6000
    logit_y = np.array([[[0.0, 1.5, -1.0], [0.0, -1.0, 1.0]], [[0.0, -1.0, 1.5], [0.0, 2.0, -0.5]]])
    a = rng.integers(0, 2, n)
    x = rng.integers(0, 2, n)
    y = (logit_y[a, x] + rng.gumbel(size=(n, 3))).argmax(1)
    data = pd.DataFrame({"a": a, "x": x, "y": y}).astype(float)
    scm = pc.SCM(
        {"a": [], "x": ["a"], "y": ["a", "x"]},
        {"a": pc.Bernoulli(), "x": pc.Bernoulli(), "y": pc.Categorical(3)},
    )
    scm.fit(data, epochs=5, progress=False, seed=0)
    assert _design(scm, "y") == "table"
    got = _probs(scm, "y", {"a": [0.0, 0.0, 1.0, 1.0], "x": [0.0, 1.0, 0.0, 1.0]})
    want = softmax(logit_y.reshape(4, 3), -1)
    np.testing.assert_allclose(got, want, atol=0.05)
    forced = pc.SCM(scm.graph, {**dict(scm.mechanisms), "y": pc.Categorical(3, design="linear")})
    forced.fit(data, epochs=5, progress=False, seed=0)
    worse = _probs(forced, "y", {"a": [0.0, 0.0, 1.0, 1.0], "x": [0.0, 1.0, 0.0, 1.0]})
    assert np.abs(worse - want).max() > 3 * np.abs(got - want).max()


def test_design_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 2, 1000), rng.integers(0, 3, 1000)
    c = (rng.random(1000) < np.where((a == 1) & (b == 2), 0.9, 0.2)).astype(int)
    data = pd.DataFrame({"a": a, "b": b, "c": c}).astype(float)
    mechanisms = {"a": pc.Bernoulli(), "b": pc.Categorical(3), "c": pc.Bernoulli()}
    scm = pc.SCM({"a": [], "b": [], "c": ["a", "b"]}, mechanisms)
    scm.fit(data, epochs=5, progress=False, seed=0)
    scm.save(tmp_path / "m.pt")
    again = pc.SCM.load(tmp_path / "m.pt")
    assert _design(again, "c") == _design(scm, "c") == "table"
    pd.testing.assert_series_equal(scm.log_prob(data.head(50)), again.log_prob(data.head(50)))


def test_bad_designs_are_refused():
    with pytest.raises(ValueError, match="design must be one of"):
        pc.Bernoulli(design="tree")
    with pytest.raises(ValueError, match="design='table' needs discrete parents"):
        pc.SCM({"z": [], "t": ["z"]}, {"z": "linear", "t": pc.Bernoulli(design="table")})


def test_fitting_leaves_learned_discrete_nodes_at_their_maximum_likelihood():
    """The design's L-BFGS fit on every row is final: Adam does not move it afterwards."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2, 2000)
    b = (rng.random(2000) < np.where(a == 1, 0.8, 0.3)).astype(int)
    data = pd.DataFrame({"a": a, "b": b}).astype(float)
    mechanisms = {"a": pc.Bernoulli(), "b": pc.Bernoulli()}
    short = pc.SCM({"a": [], "b": ["a"]}, mechanisms)
    short.fit(data, epochs=1, progress=False, seed=0)
    long = pc.SCM({"a": [], "b": ["a"]}, mechanisms)
    long.fit(data, epochs=50, progress=False, seed=1)
    p = _probs(long, "b", {"a": [0.0, 1.0]})[:, 1]
    np.testing.assert_allclose(p, _probs(short, "b", {"a": [0.0, 1.0]})[:, 1], atol=1e-5)
    # the empirical frequencies are the maximum likelihood of a full table
    want = [b[a == 0].mean(), b[a == 1].mean()]
    np.testing.assert_allclose(p, want, atol=2e-3)
