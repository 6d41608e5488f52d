"""The random-SCM generator: exact, identified ground truth; reproducible; disjoint pools."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from pyrocausal.datasets import (
    FAMILIES,
    NOISES,
    POOLS,
    RandomSCM,
    load_scm,
    random_pool,
    random_scm,
)

SEEDS = [*range(0, 50, 5), *range(1000, 1050, 5)]  # both pools


def test_same_seed_same_scm_and_data():
    a, b = random_scm(1003), random_scm(1003)
    assert a.description == b.description
    pd.testing.assert_frame_equal(a.sample(200, seed=4), b.sample(200, seed=4))
    assert random_scm(1004).description != a.description
    assert load_scm("random-1003").description == a.description


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_is_recovered_exactly_and_no_intervention_reproduces_data(seed):
    scm = random_scm(seed)
    data, u = scm.sample_with_noise(2000, seed=1)
    assert np.isfinite(data.to_numpy()).all()
    np.testing.assert_allclose(scm.abduct(data), u, rtol=0, atol=1e-8)
    pd.testing.assert_frame_equal(scm.counterfactual(scm.abduct(data), {}), data, atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_mechanism_is_strictly_increasing_in_its_noise(seed):
    scm = random_scm(seed)
    u = scm.sample_noise(500, seed=2)
    base = scm.compute(u)
    for node in scm.nodes:
        bumped = u.copy()
        bumped[node] = bumped[node] + 1e-3
        # the node's own value rises on every row; its non-descendants do not move
        assert (scm.compute(bumped)[node] > base[node]).all(), (node, scm.families[node])
        others = [v for v in scm.nodes if v != node and v not in scm.graph.descendants(node)]
        pd.testing.assert_frame_equal(scm.compute(bumped)[others], base[others])


@pytest.mark.parametrize("seed", SEEDS)
def test_graph_sizes_degrees_standardization_and_queries(seed):
    scm = random_scm(seed)
    assert isinstance(scm, RandomSCM) and scm.name == f"random-{seed}"
    assert 3 <= len(scm.nodes) <= 10
    g = scm.graph.to_networkx()
    assert nx.is_directed_acyclic_graph(g)
    assert all(g.degree(v) > 0 for v in g)  # no isolated node (components may be several)
    assert max(len(scm.graph.parents(v)) for v in scm.nodes) <= 4
    assert 1 <= len(scm.intervened) <= 3
    assert all(scm.graph.descendants(v) for v in scm.intervened)
    for node in scm.nodes:
        assert (scm.families[node] == "root") == (not scm.graph.parents(node))
        assert scm.noises[node] in NOISES
    data = scm.sample(20_000, seed=3)
    assert np.abs(data.mean()).max() < 0.1
    assert np.abs(data.std() - 1).max() < 0.15


def test_the_pools_mix_every_family_and_noise_and_do_not_overlap():
    tune = random_pool("random-tune")
    evaluation = random_pool("random-eval", 50)
    assert len(tune) == 50 and POOLS["random-tune"] == (0, 50)
    assert not {s.name for s in tune} & {s.name for s in evaluation}
    for pool in (tune, evaluation):
        families = {f for s in pool for f in s.families.values()}
        noises = {n for s in pool for n in s.noises.values()}
        assert families == {"root", *FAMILIES}
        assert noises == set(NOISES)
        assert {len(s.nodes) for s in pool} >= {3, 10}
        assert not all(s.additive for s in pool)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_forced_family_is_used_by_every_non_root(family):
    scm = random_scm(11, nodes=6, families=[family], noises=["normal"])
    assert {f for f in scm.families.values() if f != "root"} == {family}
    assert set(scm.noises.values()) == {"normal"}
    assert scm.linear == (family == "linear")
    assert scm.additive == (family in ("linear", "additive"))


def test_nonadditive_families_are_not_additive_in_the_noise():
    # x = f(pa) + g(u) would make x(pa, u + d) - x(pa, u) independent of pa
    for family in ("heteroscedastic", "nonadditive", "multiplicative"):
        scm = random_scm(5, nodes=2, families=[family], noises=["normal"])
        child = scm.nodes[1]
        u = scm.sample_noise(400, seed=0)
        shifted = u.copy()
        shifted[child] += 0.5
        effect = scm.compute(shifted)[child] - scm.compute(u)[child]
        assert effect.std() > 0.01 * effect.abs().mean(), family


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"families": ["cubic"]}, "unknown family 'cubic'"),
        ({"noises": ["cauchy"]}, "unknown noise 'cauchy'"),
        ({"families": []}, "at least one family"),
        ({"nodes": 1}, "nodes must be at least 2"),
        ({"nodes": (6, 4)}, "nodes must be at least 2"),
        ({"density": 0.0}, "density must be in"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        random_scm(0, **kwargs)


def test_bad_seed_and_pool():
    with pytest.raises(ValueError, match="non-negative integer"):
        random_scm(-1)
    with pytest.raises(ValueError, match="unknown pool 'random-test'"):
        random_pool("random-test")
    with pytest.raises(ValueError, match="has 50 SCMs"):
        random_pool("random-tune", 51)
