"""Tests of the synthetic tabular SCM suite (pyrocausal.datasets.tabular)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from pyrocausal.datasets.tabular import SCMS, SyntheticSCM, list_scms, load_scm
from pyrocausal.graph import CausalGraph

N = 400
ALL = sorted(SCMS)
REQUIRED = [
    "chain_linear",
    "chain4_linear",
    "chain5_linear",
    "triangle_linear",
    "collider_linear",
    "fork_linear",
    "chain_nonlinear",
    "triangle_nonlinear",
    "fork_nonlinear",
    "diamond_nonlinear",
    "simpson_nonlinear",
    "simpson_symprod",
    "large_backdoor",
    "vaca_triangle_linear",
    "vaca_triangle_nonlinear",
    "vaca_triangle_nonadditive",
]
INTERVENED = [(name, node) for name in ALL for node in SCMS[name].intervened]


def _softplus(a: float) -> float:
    return math.log1p(math.exp(a))


def _row(scm: SyntheticSCM, **u: float) -> pd.DataFrame:
    return pd.DataFrame({n: [u[n]] for n in scm.graph.nodes})


# ------------------------------------------------------------------ registry
def test_registry_has_required_scms_and_kinds() -> None:
    assert set(REQUIRED) <= set(SCMS)
    assert list_scms() == list(SCMS)
    nonadditive = list_scms("nonadditive")
    assert "vaca_triangle_nonadditive" in nonadditive
    assert len(nonadditive) >= 2  # VACA's plus at least one of our own
    assert set(list_scms("linear")) == {
        "chain_linear",
        "chain4_linear",
        "chain5_linear",
        "triangle_linear",
        "collider_linear",
        "fork_linear",
        "vaca_triangle_linear",
    }
    assert set(list_scms("linear")).isdisjoint(list_scms("nonlinear"))
    assert set(list_scms("linear")) | set(list_scms("nonlinear")) == set(SCMS)
    assert set(nonadditive) <= set(list_scms("nonlinear"))
    for name in list_scms("linear"):
        assert SCMS[name].additive
    with pytest.raises(ValueError, match="unknown kind"):
        list_scms("quadratic")


def test_load_scm_and_typo() -> None:
    assert load_scm("triangle_nonlinear") is SCMS["triangle_nonlinear"]
    with pytest.raises(ValueError, match="triangle_nonlinear") as info:
        load_scm("triangle_nonlinaer")
    assert "chain_linear" in str(info.value)  # lists the valid names


def test_scm_is_frozen() -> None:
    scm = load_scm("chain_linear")
    with pytest.raises(dataclasses.FrozenInstanceError):
        scm.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        scm.equations["x1"] = lambda pa, u: u  # type: ignore[index]


@pytest.mark.parametrize("name", ALL)
def test_metadata(name: str) -> None:
    scm = SCMS[name]
    assert scm.name == name
    nodes = scm.graph.nodes
    assert nodes == tuple(f"x{i + 1}" for i in range(len(nodes)))
    assert scm.intervened and set(scm.intervened) <= set(nodes)
    assert isinstance(scm.description, str) and "x1" in scm.description
    assert scm.invertible


def test_graphs_match_the_reference() -> None:
    assert load_scm("large_backdoor").graph.to_dict() == {
        "x1": [],
        "x2": ["x1"],
        "x3": ["x1"],
        "x4": ["x2"],
        "x5": ["x3"],
        "x6": ["x4"],
        "x7": ["x5"],
        "x8": ["x6"],
        "x9": ["x7", "x8"],
    }
    assert load_scm("simpson_symprod").graph.parents("x4") == ("x1",)
    assert load_scm("simpson_nonlinear").graph.parents("x4") == ("x3",)
    assert load_scm("diamond_nonlinear").graph.parents("x4") == ("x2", "x3")
    assert load_scm("fork_nonlinear").graph.roots() == ("x1", "x2")
    assert load_scm("large_backdoor").intervened == ("x1", "x2", "x3", "x5")


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("name", ALL)
def test_shapes_columns_and_seeding(name: str) -> None:
    scm = SCMS[name]
    data, noise = scm.sample_with_noise(N, seed=3)
    nodes = list(scm.graph.nodes)
    for frame in (data, noise):
        assert frame.shape == (N, len(nodes))
        assert list(frame.columns) == nodes
        assert all(dtype == np.float64 for dtype in frame.dtypes)
        assert np.isfinite(frame.to_numpy()).all()
    pd.testing.assert_frame_equal(scm.compute(scm.sample_noise(N, seed=3)), scm.sample(N, seed=3))
    pd.testing.assert_frame_equal(scm.sample(N, seed=3), data)
    pd.testing.assert_frame_equal(scm.sample_noise(N, seed=3), noise)
    assert not np.allclose(scm.sample(N, seed=4).to_numpy(), data.to_numpy())
    assert scm.sample(0, seed=0).shape == (0, len(nodes))


@pytest.mark.parametrize("name", ALL)
def test_counterfactual_without_intervention_reproduces_data(name: str) -> None:
    scm = SCMS[name]
    data, noise = scm.sample_with_noise(N, seed=0)
    pd.testing.assert_frame_equal(scm.counterfactual(noise, {}), data, check_exact=True)
    pd.testing.assert_frame_equal(scm.compute(noise, None), data, check_exact=True)


@pytest.mark.parametrize("name", ALL)
def test_abduct_recovers_noise(name: str) -> None:
    scm = SCMS[name]
    data, noise = scm.sample_with_noise(2000, seed=1)
    data.index = data.index + 100
    recovered = scm.abduct(data)
    assert list(recovered.columns) == list(scm.graph.nodes)
    assert recovered.index.equals(data.index)
    np.testing.assert_allclose(recovered.to_numpy(), noise.to_numpy(), rtol=1e-8, atol=1e-8)
    # abducted noise gives back the data, and the same counterfactuals as the true noise
    np.testing.assert_allclose(scm.compute(recovered).to_numpy(), data.to_numpy(), atol=1e-8)


@pytest.mark.parametrize(("name", "node"), INTERVENED)
def test_intervention_sets_value_and_keeps_non_descendants(name: str, node: str) -> None:
    scm = SCMS[name]
    data, noise = scm.sample_with_noise(N, seed=2)
    noise_before = noise.copy()
    value = scm.intervention_values(node, n=5000)[2]
    cf = scm.counterfactual(noise, {node: value})
    pd.testing.assert_frame_equal(noise, noise_before)  # inputs untouched
    assert (cf[node] == value).all()
    descendants = scm.graph.descendants(node)
    for other in scm.graph.nodes:
        if other != node and other not in descendants:
            assert (cf[other] == data[other]).all(), other
    for child in scm.graph.children(node):
        assert (cf[child] != data[child]).mean() > 0.5, child

    # per-row values
    values = np.linspace(-1.0, 1.0, N)
    kept = values.copy()
    cf_rows = scm.counterfactual(noise, {node: values})
    np.testing.assert_array_equal(cf_rows[node].to_numpy(), kept)
    np.testing.assert_array_equal(values, kept)
    cf_rows[node] = 0.0  # the returned frame does not alias the input array
    np.testing.assert_array_equal(values, kept)


@pytest.mark.parametrize(("name", "node"), INTERVENED)
def test_do_cuts_incoming_edges(name: str, node: str) -> None:
    scm = SCMS[name]
    obs = scm.sample(N, seed=5)
    low, high = scm.intervention_values(node, quantiles=(0.1, 0.9), n=5000)
    for value in (low, high):
        do = scm.interventional({node: value}, N, seed=5)
        for ancestor in scm.graph.ancestors(node):
            pd.testing.assert_series_equal(do[ancestor], obs[ancestor])
            assert abs(do[ancestor].mean() - obs[ancestor].mean()) < 1e-12
    # the intervened node no longer responds to its parents: other noise, other parents,
    # same value; without the intervention it does respond
    do_a = scm.interventional({node: low}, N, seed=5)
    do_b = scm.interventional({node: low}, N, seed=6)
    assert (do_a[node] == low).all() and (do_b[node] == low).all()
    if scm.graph.parents(node):
        assert not np.allclose(
            do_a[list(scm.graph.parents(node))], do_b[list(scm.graph.parents(node))]
        )
        assert obs[node].nunique() > N // 2


def test_do_differs_from_conditioning() -> None:
    scm = load_scm("triangle_linear")
    obs = scm.sample(20_000, seed=0)
    do = scm.interventional({"x2": 20.0}, 20_000, seed=0)
    assert abs(do["x1"].mean() - 1.0) < 0.05  # x1's marginal is untouched by do(x2)
    assert obs.loc[obs["x2"] > 15, "x1"].mean() > 1.4  # conditioning would shift it


def test_intervention_value_errors() -> None:
    scm = load_scm("triangle_linear")
    noise = scm.sample_noise(5, seed=0)
    with pytest.raises(ValueError, match="'x7'"):
        scm.compute(noise, {"x7": 1.0})
    with pytest.raises(ValueError, match="'x7'"):
        scm.interventional({"x7": 1.0}, 5, seed=0)
    with pytest.raises(ValueError, match="shape"):
        scm.compute(noise, {"x1": [1.0, 2.0]})
    with pytest.raises(ValueError, match="x3"):
        scm.compute(noise.drop(columns="x3"))
    with pytest.raises(ValueError, match="x3"):
        scm.abduct(noise.drop(columns="x3"))
    with pytest.raises(ValueError, match="'y'"):
        scm.ate("y", {"x1": 1.0}, {"x1": 0.0}, n=10)
    with pytest.raises(ValueError, match="'y'"):
        scm.intervention_values("y")
    with pytest.raises(TypeError):
        scm.compute(noise.to_numpy())  # type: ignore[arg-type]


def test_abduct_raises_for_non_invertible_mechanism() -> None:
    scm = SyntheticSCM(
        name="squared_noise",
        graph=CausalGraph({"x1": [], "x2": ["x1"]}),
        intervened=("x1",),
        additive=False,
        linear=False,
        description="x1 = u1; x2 = x1 + u2^2",
        equations={"x1": lambda pa, u: u, "x2": lambda pa, u: pa["x1"] + u**2},
        noise={
            "x1": lambda rng, n: rng.standard_normal(n),
            "x2": lambda rng, n: rng.normal(size=n),
        },
        inverses={"x1": lambda pa, x: x},
    )
    assert not scm.invertible
    data = scm.sample(10, seed=0)
    with pytest.raises(NotImplementedError, match="'x2'"):
        scm.abduct(data)
    with pytest.raises(ValueError, match="missing"):
        SyntheticSCM(
            name="broken",
            graph=CausalGraph({"x1": [], "x2": ["x1"]}),
            intervened=("x1",),
            additive=True,
            linear=True,
            description="",
            equations={"x1": lambda pa, u: u},
            noise={
                "x1": lambda rng, n: rng.normal(size=n),
                "x2": lambda rng, n: rng.normal(size=n),
            },
        )


# ------------------------------------------------------------------ equations by hand
def test_triangle_nonlinear_equations_by_hand() -> None:
    scm = load_scm("triangle_nonlinear")
    x = scm.compute(_row(scm, x1=0.5, x2=-0.3, x3=0.2)).iloc[0]
    x2 = 2 * 0.5**2 - 0.3
    assert x["x1"] == pytest.approx(0.5)
    assert x["x2"] == pytest.approx(x2)
    assert x["x3"] == pytest.approx(20 / (1 + math.exp(-(x2**2) + 0.5)) + 0.2, rel=1e-12)


def test_linear_equations_by_hand() -> None:
    tri = load_scm("triangle_linear")
    assert tri.compute(_row(tri, x1=0.5, x2=2.0, x3=-1.0)).iloc[0].tolist() == pytest.approx(
        [1.5, 13.0, 0.5 * 13.0 + 1.5 - 1.0]
    )
    c4 = load_scm("chain4_linear")
    assert c4.compute(_row(c4, x1=1.0, x2=1.0, x3=2.0, x4=0.5)).iloc[0].tolist() == pytest.approx(
        [1.0, 4.0, -2.0 - 3.0, -5.0 + 0.5]
    )
    c5 = load_scm("chain5_linear")
    x = c5.compute(_row(c5, x1=1.0, x2=2.0, x3=1.0, x4=-1.0, x5=0.5)).iloc[0]
    assert x.tolist() == pytest.approx([1.0, 8.0, 4.0, 3.0, -2.5])


def test_nonlinear_equations_by_hand() -> None:
    chain = load_scm("chain_nonlinear")
    x = chain.compute(_row(chain, x1=1.0, x2=-2.0, x3=0.5)).iloc[0]
    x2 = math.exp(0.5) - 0.5
    assert x.tolist() == pytest.approx([1.0, x2, (x2 - 5) ** 3 / 15 + 0.5])

    fork = load_scm("fork_nonlinear")
    x = fork.compute(_row(fork, x1=0.3, x2=-0.7, x3=1.0, x4=-0.5)).iloc[0]
    x3 = 4 / (1 + math.exp(-0.3 + 0.7)) - 0.49 + 0.5
    assert x["x3"] == pytest.approx(x3)
    assert x["x4"] == pytest.approx(20 / (1 + math.exp(x3**2 / 2 - x3)) - 0.5)

    diamond = load_scm("diamond_nonlinear")
    x = diamond.compute(_row(diamond, x1=1.0, x2=0.4, x3=-0.6, x4=2.0)).iloc[0]
    x2 = 1.0 + 0.2
    x3 = x2**2 - 2 / (1 + math.exp(-1.0)) - 0.3
    assert x.tolist() == pytest.approx([1.0, x2, x3, x3 / (abs(x2 + 2) + x3 + 0.5) + 0.2])

    simpson = load_scm("simpson_nonlinear")
    x = simpson.compute(_row(simpson, x1=0.2, x2=1.0, x3=0.3, x4=-1.0)).iloc[0]
    x2 = _softplus(0.8) + math.sqrt(3 / 20)
    x3 = math.tanh(2 * x2) + 0.3 - 1 + math.tanh(0.3)
    assert x.tolist() == pytest.approx([0.2, x2, x3, (x3 - 4) / 5 + 3 - 1 / math.sqrt(10)])

    symprod = load_scm("simpson_symprod")
    x = symprod.compute(_row(symprod, x1=0.5, x2=1.0, x3=-1.0, x4=2.0)).iloc[0]
    x2 = 2 * math.tanh(1.0) + 1 / math.sqrt(10)
    assert x.tolist() == pytest.approx(
        [0.5, x2, 0.25 * x2 - 1 / math.sqrt(2), math.tanh(0.75) + 2 * math.sqrt(0.3)]
    )


def test_large_backdoor_by_hand() -> None:
    scm = load_scm("large_backdoor")
    u = dict(x1=0.5, x2=0.2, x3=0.9, x4=0.1, x5=0.3, x6=0.7, x7=0.4, x8=0.6, x9=0.8)
    x = scm.compute(_row(scm, **u)).iloc[0]

    def layer(a: float, b: float) -> float:
        return _softplus(a + 1) + _softplus(0.5 + b) - 3

    x1 = _softplus(0.9) - 1
    x2 = 0.25 * 0.2 + 1.5 * layer(x1, 0.0)
    x3 = layer(x1, 0.9)
    x4 = layer(x2, 0.1)
    x5 = layer(x3, 0.3)
    x6 = layer(x4, 0.7)
    x7 = layer(x5, 0.4)
    x8 = 0.3 * 0.6 + _softplus(x6 + 1) - 1
    loc = 2 - _softplus((1.3 * x7 + x8) / 3 + 1)
    x9 = loc - 0.6 * math.log(2 * (1 - 0.8))  # Laplace quantile above the median
    assert x.tolist() == pytest.approx([x1, x2, x3, x4, x5, x6, x7, x8, x9], rel=1e-12)
    low = scm.compute(_row(scm, **{**u, "x9": 0.1})).iloc[0]["x9"]
    assert low == pytest.approx(loc + 0.6 * math.log(0.2))
    assert scm.compute(_row(scm, **{**u, "x9": 0.5})).iloc[0]["x9"] == pytest.approx(loc)


def test_vaca_triangles_by_hand() -> None:
    lin = load_scm("vaca_triangle_linear")
    assert lin.compute(_row(lin, x1=2.0, x2=0.5, x3=-1.0)).iloc[0].tolist() == pytest.approx(
        [2.0, -1.5, 2.0 - 0.375 - 1.0]
    )
    nl = load_scm("vaca_triangle_nonlinear")
    x2 = -1 + 3 / (1 + math.exp(-2.0)) + 0.1
    assert nl.compute(_row(nl, x1=1.0, x2=0.1, x3=0.2)).iloc[0].tolist() == pytest.approx(
        [1.0, x2, 1.0 + 0.25 * x2**2 + 0.2]
    )
    na = load_scm("vaca_triangle_nonadditive")
    x = na.compute(_row(na, x1=2.0, x2=-0.5, x3=0.1)).iloc[0]
    x2 = 0.25 * -1 * 4.0 * 1.25
    assert x.tolist() == pytest.approx([2.0, x2, -1 + 0.1 * (4.0 + x2**2) + 0.1])
    x = na.compute(_row(na, x1=2.0, x2=0.5, x3=-0.1)).iloc[0]
    assert x["x3"] == pytest.approx(-1 - 0.1 * (4.0 + 1.25**2) - 0.1)


def test_vaca_noise_uses_variances() -> None:
    u = load_scm("vaca_triangle_nonlinear").sample_noise(40_000, seed=0)
    assert u["x1"].mean() == pytest.approx(-0.25, abs=0.05)  # 0.5 (-2) + 0.5 (1.5)
    assert u["x1"].var() == pytest.approx(0.5 * 5.5 + 0.5 * 3.25 - 0.0625, rel=0.03)
    assert u["x2"].var() == pytest.approx(0.1, rel=0.03)
    assert u["x3"].var() == pytest.approx(1.0, rel=0.03)
    u = load_scm("vaca_triangle_nonadditive").sample_noise(40_000, seed=0)
    assert u["x1"].var() == pytest.approx(2.5**2 + 1, rel=0.03)
    assert u["x2"].var() == pytest.approx(0.25, rel=0.03)
    assert u["x3"].var() == pytest.approx(0.0625, rel=0.03)
    u = load_scm("large_backdoor").sample_noise(10_000, seed=0)
    assert u.to_numpy().min() >= 1e-6 and u.to_numpy().max() < 1.0
    assert u.mean().to_numpy() == pytest.approx(np.full(9, 0.5), abs=0.02)


def test_triangle_multiplicative_is_non_additive() -> None:
    scm = load_scm("triangle_multiplicative")
    assert not scm.additive and not scm.linear
    data, noise = scm.sample_with_noise(2000, seed=0)
    assert (data["x2"] > 0).all()
    x2 = _softplus(0.5 + 1) * math.exp(0.5 * -0.4)
    x = scm.compute(_row(scm, x1=0.5, x2=-0.4, x3=1.0)).iloc[0]
    assert x.tolist() == pytest.approx(
        [0.5, x2, 0.5 + 0.125 * x2 + (0.5 + 0.25 * x2) * math.sinh(1.0)]
    )
    # the counterfactual spread of x3 scales with the intervened x2 (not an additive model)
    for v in (0.5, 4.0):
        cf = scm.counterfactual(noise, {"x2": v})
        residual = cf["x3"] - data["x1"] - 0.25 * data["x1"] * v
        np.testing.assert_allclose(residual, (0.5 + 0.25 * v) * np.sinh(noise["x3"]))
    # the effect of x1 on x2 is multiplicative: log x2 - log softplus(x1 + 1) does not move
    cf = scm.counterfactual(noise, {"x1": 1.0})
    np.testing.assert_allclose(
        np.log(cf["x2"]) - np.log(_softplus(2.0)),
        np.log(data["x2"]) - np.log(np.logaddexp(0, data["x1"] + 1)),
    )


# ------------------------------------------------------------------ ground truth
@pytest.mark.parametrize(("name", "node"), INTERVENED)
def test_intervention_values_increase(name: str, node: str) -> None:
    scm = SCMS[name]
    values = scm.intervention_values(node, n=5000)
    assert len(values) == 3 and all(isinstance(v, float) for v in values)
    assert values[0] < values[1] < values[2]
    assert values == scm.intervention_values(node, n=5000)  # deterministic
    obs = scm.sample(5000, seed=0)[node]
    assert values[1] == pytest.approx(float(obs.median()))


@pytest.mark.parametrize(
    ("name", "target", "node", "slope"),
    [
        ("triangle_linear", "x3", "x1", 6.0),  # 0.5 * 10 + 1
        ("triangle_linear", "x3", "x2", 0.5),
        ("triangle_linear", "x2", "x1", 10.0),
        ("chain_linear", "x3", "x1", 2.5),
        ("chain4_linear", "x4", "x1", -2.5),
        ("chain5_linear", "x5", "x2", -0.25),
        ("collider_linear", "x3", "x2", 0.25),
        ("fork_linear", "x4", "x2", 0.25),
        ("vaca_triangle_linear", "x3", "x1", 0.75),  # 1 - 0.25
        ("triangle_nonlinear", "x1", "x2", 0.0),  # no effect on a parent
    ],
)
def test_ate_matches_analytic_value(name: str, target: str, node: str, slope: float) -> None:
    scm = SCMS[name]
    ate = scm.ate(target, {node: 3.0}, {node: 1.0}, n=2000, seed=0)
    assert ate == pytest.approx(2 * slope, abs=1e-9)


def test_ate_of_nonlinear_mechanism() -> None:
    tri = load_scm("triangle_nonlinear")
    assert tri.ate("x2", {"x1": 1.0}, {"x1": 0.0}, n=1000) == pytest.approx(2.0)
    # E[x3 | do(x1 = a)] = E[20 expit(x2^2 - a)] with x2 = 2 a^2 + u2: check by hand
    u2 = tri.sample_noise(1000, seed=0)["x2"].to_numpy()
    expected = np.mean(20 * expit((2 + u2) ** 2 - 1) - 20 * expit(u2**2))
    assert tri.ate("x3", {"x1": 1.0}, {"x1": 0.0}, n=1000, seed=0) == pytest.approx(expected)
