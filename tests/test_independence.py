"""Kernel independence tests and graph falsification: calibration, power, exactness."""

import numpy as np
import pytest

import pyrocausal as pc
from pyrocausal.datasets import load_scm
from pyrocausal.falsification import falsify_graph, local_markov_statements
from pyrocausal.independence import (
    KernelRidge,
    conditional_independence_test,
    holm,
    hsic_test,
)


@pytest.mark.parametrize("method", ["gamma", "permutation"])
def test_hsic_level_and_power(method):
    rng = np.random.default_rng(0)
    # Level: 60 independent pairs (heavy-tailed y), rejection rate near 0.05. With 60 draws the
    # rate's SE is 0.028, so 0.15 is more than 3 SE above the nominal level.
    options = {"method": method, "num_permutations": 100}
    p = [hsic_test(rng.normal(size=150), rng.standard_t(3, size=150), **options).p_value
         for _ in range(60)]  # fmt: skip
    assert np.mean(np.array(p) < 0.05) <= 0.15
    # Power: dependent but uncorrelated (x and |x|).
    x = rng.normal(size=150)
    assert hsic_test(x, np.abs(x) + 0.3 * rng.normal(size=150), **options).p_value < 0.01


def test_hsic_errors_name_the_input():
    with pytest.raises(ValueError, match="x has 10 rows but y has 9"):
        hsic_test(np.zeros(10), np.zeros(9))
    with pytest.raises(ValueError, match="y has NaN"):
        hsic_test(np.zeros(10), np.full(10, np.nan))


def test_kernel_ridge_residuals_are_exact_leave_one_out():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 2))
    y = np.sin(z[:, 0]) + z[:, 1] ** 2 + 0.1 * rng.normal(size=40)
    fit = KernelRidge(z).fit(y)
    explicit = []
    for i in range(40):  # refit without row i at the chosen bandwidth and ridge
        keep = np.arange(40) != i
        zs = (z - fit._mean) / fit._sd
        d = ((zs[keep, None, :] - zs[None, keep, :]) ** 2).sum(-1)
        k = np.exp(-d / (2 * fit._sigma2))
        yc = y - y.mean()  # the fit centres on the full-data mean
        alpha = np.linalg.solve(k + fit._ridge * np.eye(39), yc[keep])
        ki = np.exp(-((zs[keep] - zs[i]) ** 2).sum(-1) / (2 * fit._sigma2))
        explicit.append(yc[i] - ki @ alpha)
    np.testing.assert_allclose(fit.residuals, explicit, rtol=1e-6, atol=1e-8)


def test_conditional_test_rejects_dependence_through_no_path():
    rng = np.random.default_rng(1)
    z = rng.normal(size=300)
    x = np.tanh(z) + 0.3 * rng.normal(size=300)
    y = z**2 + x + 0.3 * rng.normal(size=300)  # y depends on x beyond z
    for method in ("residual-hsic", "gcm"):
        assert conditional_independence_test(x, y, z, method=method).p_value < 1e-4


def test_holm_is_step_down_and_monotone():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    adjusted = holm(p)
    np.testing.assert_allclose(adjusted[[0, 2, 1, 4]], [0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adjusted[3])


def test_local_markov_statements_of_a_fork():
    g = pc.CausalGraph({"x1": [], "x2": [], "x3": ["x1", "x2"], "x4": ["x3"]})
    assert local_markov_statements(g) == [
        ("x1", "x2", ()),
        ("x4", "x1", ("x3",)),
        ("x4", "x2", ("x3",)),
    ]


def test_falsification_informative_on_five_node_chain_and_caps_tests():
    data = load_scm("chain5_linear").sample(500, seed=0)
    result = falsify_graph(load_scm("chain5_linear").graph, data)
    assert not result.falsified
    assert result.informative  # 50 random relabelings, none at most as violated
    assert len(result.permutations) == 51 and result.p_value == pytest.approx(2 / 51)
    capped = falsify_graph(load_scm("chain5_linear").graph, data, max_tests=12)
    assert len(capped.permutations) < 51 and not capped.informative
    with pytest.raises(ValueError, match=r"missing column\(s\) \['x5'\]"):
        falsify_graph(load_scm("chain5_linear").graph, data.drop(columns="x5"))
