"""Synthetic tabular structural causal models with known ground truth.

The standard counterfactual-accuracy suite of the causal normalizing-flow literature
(Javaloy, Sanchez-Martin and Valera, NeurIPS 2023; Sanchez-Martin et al., VACA, AAAI 2022),
written as plain numpy structural equations, plus non-additive SCMs of our own where the
noise enters multiplicatively or through a non-linearity.

Every SCM knows its exogenous noise distribution, its structural equations and (where the
mechanism is invertible in its noise) their inverses, so it gives exact observational,
interventional and counterfactual samples, the true noise of observed data, and true
average treatment effects.

Example:
    >>> from pyrocausal.datasets.tabular import load_scm
    >>> scm = load_scm("triangle_linear")
    >>> scm.graph.nodes
    ('x1', 'x2', 'x3')
    >>> data, noise = scm.sample_with_noise(4, seed=0)
    >>> cf = scm.counterfactual(noise, {"x1": 0.0})
    >>> cf["x1"].tolist()
    [0.0, 0.0, 0.0, 0.0]
    >>> round(scm.ate("x3", {"x1": 1.0}, {"x1": 0.0}, n=1000), 6)
    6.0
"""

from __future__ import annotations

__all__ = ["SyntheticSCM", "SCMS", "load_scm", "list_scms"]

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit

from pyrocausal.graph import CausalGraph

FloatArray = npt.NDArray[np.float64]
#: ``f(parents, u) -> x``: a structural equation; ``parents`` maps each parent name to its values.
Equation = Callable[[Mapping[str, FloatArray], FloatArray], FloatArray]
#: ``g(parents, x) -> u``: the inverse of an equation in its noise argument.
Inverse = Callable[[Mapping[str, FloatArray], FloatArray], FloatArray]
#: ``sample(rng, n) -> u``: draws ``n`` values of one exogenous variable.
NoiseSampler = Callable[[np.random.Generator, int], FloatArray]
#: A scalar (same value for every row) or one value per row.
InterventionValue = npt.ArrayLike

_KINDS = (None, "linear", "nonlinear", "nonadditive")


@dataclass(frozen=True, eq=False)
class SyntheticSCM:
    r"""A structural causal model with numpy structural equations and known noise.

    Arguments:
        name: Registry name, e.g. ``"triangle_nonlinear"``.
        graph: The causal graph; nodes are named ``"x1"``, ``"x2"``, ...
        intervened: The nodes the reference papers intervene on.
        additive: ``True`` when every mechanism is ``x = f(pa) + g(u)``.
        linear: ``True`` when every mechanism is linear in parents and noise.
        description: The structural equations and noise distributions, as text.
        equations: ``node -> f(parents, u)``; ``parents`` holds only the node's parents.
        noise: ``node -> sample(rng, n)``, the exogenous distribution of each node.
        inverses: ``node -> g(parents, x)`` returning ``u``, for the nodes whose mechanism is
            invertible in its noise; a missing node makes :meth:`abduct` raise.

    Noise is always drawn node by node in topological order from one
    ``np.random.default_rng(seed)``, so equal seeds give equal noise for every method.

    Example:
        >>> import numpy as np
        >>> from pyrocausal.graph import CausalGraph
        >>> scm = SyntheticSCM(
        ...     name="toy",
        ...     graph=CausalGraph({"x1": [], "x2": ["x1"]}),
        ...     intervened=("x1",),
        ...     additive=True,
        ...     linear=True,
        ...     description="x1 = u1; x2 = 2 x1 + u2; u ~ N(0, I)",
        ...     equations={"x1": lambda pa, u: u, "x2": lambda pa, u: 2 * pa["x1"] + u},
        ...     noise={"x1": lambda rng, n: rng.standard_normal(n),
        ...            "x2": lambda rng, n: rng.standard_normal(n)},
        ...     inverses={"x1": lambda pa, x: x, "x2": lambda pa, x: x - 2 * pa["x1"]},
        ... )
        >>> scm
        SyntheticSCM('toy', nodes=('x1', 'x2'), intervened=('x1',), additive=True, linear=True)
        >>> scm.interventional({"x1": 1.0}, n=3, seed=0)["x1"].tolist()
        [1.0, 1.0, 1.0]
    """

    name: str
    graph: CausalGraph
    intervened: tuple[str, ...]
    additive: bool
    linear: bool
    description: str
    equations: Mapping[str, Equation] = field(repr=False)
    noise: Mapping[str, NoiseSampler] = field(repr=False)
    inverses: Mapping[str, Inverse] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        nodes = set(self.graph.nodes)
        for what, mapping in (("equations", self.equations), ("noise", self.noise)):
            if set(mapping) != nodes:
                missing = sorted(nodes - set(mapping))
                extra = sorted(set(mapping) - nodes)
                raise ValueError(
                    f"SCM {self.name!r}: {what} must have exactly one entry per node; "
                    f"missing {missing}, unknown {extra}"
                )
        extra = sorted(set(self.inverses) - nodes)
        if extra:
            raise ValueError(f"SCM {self.name!r}: inverses for unknown nodes {extra}")
        intervened = tuple(self.intervened)
        for node in intervened:
            self._check_node(node, "intervened node")
        if self.linear and not self.additive:
            raise ValueError(f"SCM {self.name!r}: a linear SCM is additive")
        object.__setattr__(self, "intervened", intervened)
        object.__setattr__(self, "equations", MappingProxyType(dict(self.equations)))
        object.__setattr__(self, "noise", MappingProxyType(dict(self.noise)))
        object.__setattr__(self, "inverses", MappingProxyType(dict(self.inverses)))

    # ------------------------------------------------------------------ helpers
    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes in topological order (the column order of every returned frame)."""
        return self.graph.nodes

    @property
    def invertible(self) -> bool:
        """Whether :meth:`abduct` recovers the noise of every node."""
        return all(node in self.inverses for node in self.nodes)

    def __repr__(self) -> str:
        return (
            f"SyntheticSCM({self.name!r}, nodes={self.nodes}, intervened={self.intervened}, "
            f"additive={self.additive}, linear={self.linear})"
        )

    def _check_node(self, node: str, what: str = "node") -> str:
        if node not in self.graph:
            raise ValueError(
                f"unknown {what} {node!r} for SCM {self.name!r}; nodes: {list(self.nodes)}"
            )
        return node

    def _columns(self, frame: pd.DataFrame, what: str) -> dict[str, FloatArray]:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
        missing = [n for n in self.nodes if n not in frame.columns]
        if missing:
            raise ValueError(
                f"{what} lacks columns {missing} of SCM {self.name!r}; nodes: {list(self.nodes)}"
            )
        return {n: frame[n].to_numpy(dtype=np.float64, copy=True) for n in self.nodes}

    def _intervention(
        self, intervention: Mapping[str, InterventionValue] | None, n: int
    ) -> dict[str, FloatArray]:
        values: dict[str, FloatArray] = {}
        for node, value in (intervention or {}).items():
            self._check_node(node, "intervened node")
            arr = np.asarray(value, dtype=np.float64)
            if arr.ndim == 0:
                arr = np.full(n, float(arr))
            elif arr.shape != (n,):
                raise ValueError(
                    f"the value of do({node}) must be a scalar or have shape ({n},), "
                    f"got shape {arr.shape}"
                )
            values[node] = arr.copy()
        return values

    # ------------------------------------------------------------------ sampling
    def sample_noise(self, n: int, seed: int | None = None) -> pd.DataFrame:
        """Draw ``n`` rows of exogenous noise ``u``, one column per node.

        Example:
            >>> scm = load_scm("large_backdoor")
            >>> u = scm.sample_noise(1000, seed=0)
            >>> u.shape, bool(u.min().min() > 0), bool(u.max().max() < 1)
            ((1000, 9), True, True)
        """
        if int(n) < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        rng = np.random.default_rng(seed)
        data = {
            node: np.asarray(self.noise[node](rng, int(n)), dtype=np.float64) for node in self.nodes
        }
        return pd.DataFrame(data, columns=list(self.nodes))

    def compute(
        self,
        noise: pd.DataFrame,
        intervention: Mapping[str, InterventionValue] | None = None,
    ) -> pd.DataFrame:
        """Run the structural equations on ``noise``, optionally under ``do(intervention)``.

        An intervened node takes the given value (a scalar or one value per row) instead of
        its equation, and its descendants are recomputed from it; every other node keeps
        the value its equation gives on ``noise``. Inputs are not modified; the result has
        the index of ``noise`` and the nodes as columns, in topological order.

        Example:
            >>> import pandas as pd
            >>> scm = load_scm("triangle_linear")
            >>> u = pd.DataFrame({"x1": [0.0], "x2": [1.0], "x3": [0.5]})
            >>> scm.compute(u).round(6).values.tolist()
            [[1.0, 9.0, 6.0]]
            >>> scm.compute(u, {"x2": 0.0}).round(6).values.tolist()
            [[1.0, 0.0, 1.5]]
        """
        u = self._columns(noise, "noise")
        n = len(noise)
        do = self._intervention(intervention, n)
        x: dict[str, FloatArray] = {}
        for node in self.nodes:
            if node in do:
                x[node] = do[node]
                continue
            parents = {p: x[p] for p in self.graph.parents(node)}
            value = np.asarray(self.equations[node](parents, u[node]), dtype=np.float64)
            x[node] = np.broadcast_to(value, (n,)).copy()
        return pd.DataFrame(x, index=noise.index.copy(), columns=list(self.nodes))

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        """Draw ``n`` observational samples.

        Example:
            >>> load_scm("chain5_linear").sample(3, seed=0).shape
            (3, 5)
        """
        return self.compute(self.sample_noise(n, seed))

    def sample_with_noise(
        self, n: int, seed: int | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Draw ``n`` observational samples together with the noise that produced them.

        Example:
            >>> data, noise = load_scm("fork_linear").sample_with_noise(5, seed=1)
            >>> list(data.columns) == list(noise.columns) == ["x1", "x2", "x3", "x4"]
            True
        """
        noise = self.sample_noise(n, seed)
        return self.compute(noise), noise

    def interventional(
        self, intervention: Mapping[str, InterventionValue], n: int, seed: int | None = None
    ) -> pd.DataFrame:
        """Draw ``n`` samples of ``do(intervention)``.

        With the same ``seed`` as :meth:`sample`, the rows share their noise with the
        observational samples (common random numbers).

        Example:
            >>> scm = load_scm("collider_linear")
            >>> obs = scm.sample(5, seed=0)
            >>> do = scm.interventional({"x2": 3.0}, 5, seed=0)
            >>> bool((do["x1"] == obs["x1"]).all()), do["x2"].unique().tolist()
            (True, [3.0])
        """
        return self.compute(self.sample_noise(n, seed), intervention)

    def counterfactual(
        self, noise: pd.DataFrame, intervention: Mapping[str, InterventionValue]
    ) -> pd.DataFrame:
        """Ground-truth counterfactuals of the units with exogenous ``noise`` under ``do(...)``.

        Use :meth:`abduct` to obtain the noise of observed data.

        Example:
            >>> scm = load_scm("chain_linear")
            >>> data, u = scm.sample_with_noise(3, seed=0)
            >>> cf = scm.counterfactual(u, {"x2": 4.0})
            >>> bool((cf["x1"] == data["x1"]).all()), (cf["x3"] - 2 * u["x3"]).round(6).tolist()
            (True, [1.0, 1.0, 1.0])
        """
        return self.compute(noise, intervention)

    def abduct(self, data: pd.DataFrame) -> pd.DataFrame:
        """The exogenous noise that produced ``data`` (exact inversion of each mechanism).

        Raises :class:`NotImplementedError` naming the first node whose mechanism is not
        invertible in its noise. Rows where an inverse is undefined (for example ``x2 <= 0``
        in ``triangle_multiplicative``) come back as NaN.

        Example:
            >>> import numpy as np
            >>> scm = load_scm("simpson_nonlinear")
            >>> data, u = scm.sample_with_noise(100, seed=0)
            >>> bool(np.allclose(scm.abduct(data), u))
            True
        """
        x = self._columns(data, "data")
        u: dict[str, FloatArray] = {}
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for node in self.nodes:
                inverse = self.inverses.get(node)
                if inverse is None:
                    raise NotImplementedError(
                        f"SCM {self.name!r}: the mechanism of {node!r} is not invertible in its "
                        "noise, so its noise cannot be abducted from data"
                    )
                parents = {p: x[p] for p in self.graph.parents(node)}
                value = np.asarray(inverse(parents, x[node]), dtype=np.float64)
                u[node] = np.broadcast_to(value, (len(data),)).copy()
        return pd.DataFrame(u, index=data.index.copy(), columns=list(self.nodes))

    # ------------------------------------------------------------------ ground truth
    def intervention_values(
        self,
        node: str,
        quantiles: Sequence[float] = (0.25, 0.5, 0.75),
        n: int = 100_000,
        seed: int = 0,
    ) -> list[float]:
        """Quantiles of the observational marginal of ``node`` (the usual intervention values).

        Example:
            >>> a, b, c = load_scm("triangle_nonlinear").intervention_values("x1")
            >>> bool(a < b < c)
            True
        """
        self._check_node(node)
        q = np.asarray(quantiles, dtype=np.float64)
        if q.ndim != 1 or np.any((q < 0) | (q > 1)):
            raise ValueError(f"quantiles must be a list of numbers in [0, 1], got {quantiles!r}")
        values = self.sample(n, seed)[node].to_numpy()
        return [float(v) for v in np.quantile(values, q)]

    def ate(
        self,
        target: str,
        treatment: Mapping[str, InterventionValue],
        control: Mapping[str, InterventionValue],
        n: int = 100_000,
        seed: int = 0,
    ) -> float:
        """Ground-truth ``E[target | do(treatment)] - E[target | do(control)]``.

        Both arms use the same noise (common random numbers), so the Monte Carlo error is
        that of the effect alone; it is exact for effects that do not depend on the noise.

        Example:
            >>> scm = load_scm("triangle_linear")
            >>> round(scm.ate("x3", {"x2": 1.0}, {"x2": 0.0}, n=100), 6)
            0.5
        """
        self._check_node(target, "target node")
        noise = self.sample_noise(n, seed)
        treated = self.compute(noise, treatment)[target].to_numpy()
        controlled = self.compute(noise, control)[target].to_numpy()
        return float(np.mean(treated - controlled))


# ---------------------------------------------------------------------- math helpers
def _softplus(a: Any) -> FloatArray:
    return np.logaddexp(0.0, a)


def _inv_softplus(y: Any) -> FloatArray:
    """``log(exp(y) - 1)`` computed stably for ``y > 0``."""
    y = np.asarray(y, dtype=np.float64)
    return y + np.log(-np.expm1(-y))


def _laplace_icdf(loc: Any, scale: float, p: Any) -> FloatArray:
    p = np.asarray(p, dtype=np.float64)
    lower = p < 0.5
    safe_low = np.where(lower, p, 0.25)
    safe_high = np.where(lower, 0.75, p)
    return np.where(
        lower, loc + scale * np.log(2.0 * safe_low), loc - scale * np.log(2.0 * (1.0 - safe_high))
    )


def _laplace_cdf(loc: Any, scale: float, x: Any) -> FloatArray:
    z = (np.asarray(x, dtype=np.float64) - loc) / scale
    below = z < 0
    return np.where(
        below, 0.5 * np.exp(np.where(below, z, 0.0)), 1.0 - 0.5 * np.exp(-np.where(below, 0.0, z))
    )


# ---------------------------------------------------------------------- noise samplers
def _normal(std: float = 1.0) -> NoiseSampler:
    def sample(rng: np.random.Generator, n: int) -> FloatArray:
        return std * rng.standard_normal(n)

    return sample


def _uniform(low: float, high: float) -> NoiseSampler:
    def sample(rng: np.random.Generator, n: int) -> FloatArray:
        return rng.uniform(low, high, size=n)

    return sample


def _gaussian_mixture(
    weights: Sequence[float], means: Sequence[float], variances: Sequence[float]
) -> NoiseSampler:
    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    sd = np.sqrt(np.asarray(variances, dtype=np.float64))

    def sample(rng: np.random.Generator, n: int) -> FloatArray:
        component = rng.choice(len(w), size=n, p=w / w.sum())
        return mu[component] + sd[component] * rng.standard_normal(n)

    return sample


# ---------------------------------------------------------------------- registry
SCMS: dict[str, SyntheticSCM] = {}

_Node = tuple[Sequence[str], Equation, Inverse | None, NoiseSampler]


def _register(
    name: str,
    nodes: Mapping[str, _Node],
    intervened: Sequence[str],
    description: str,
    additive: bool = True,
    linear: bool = False,
) -> None:
    graph = CausalGraph({node: list(spec[0]) for node, spec in nodes.items()})
    SCMS[name] = SyntheticSCM(
        name=name,
        graph=graph,
        intervened=tuple(intervened),
        additive=additive,
        linear=linear,
        description=description,
        equations={node: spec[1] for node, spec in nodes.items()},
        noise={node: spec[3] for node, spec in nodes.items()},
        inverses={node: spec[2] for node, spec in nodes.items() if spec[2] is not None},
    )


def _root(std: float = 1.0, shift: float = 0.0) -> _Node:
    """``x = u + shift`` with ``u ~ N(0, std^2)``."""
    return (
        (),
        lambda pa, u: u + shift,
        lambda pa, x: x - shift,
        _normal(std),
    )


_N01 = _normal()

# --- linear (Causal NF) ------------------------------------------------------------
_register(
    "chain_linear",
    {
        "x1": _root(),
        "x2": (["x1"], lambda pa, u: 10 * pa["x1"] - u, lambda pa, x: 10 * pa["x1"] - x, _N01),
        "x3": (
            ["x2"],
            lambda pa, u: 0.25 * pa["x2"] + 2 * u,
            lambda pa, x: (x - 0.25 * pa["x2"]) / 2,
            _N01,
        ),
    },
    intervened=("x1", "x2"),
    description="x1 = u1; x2 = 10 x1 - u2; x3 = 0.25 x2 + 2 u3; u ~ N(0, I)",
    linear=True,
)
_register(
    "chain4_linear",
    {
        "x1": _root(),
        "x2": (["x1"], lambda pa, u: 5 * pa["x1"] - u, lambda pa, x: 5 * pa["x1"] - x, _N01),
        "x3": (
            ["x2"],
            lambda pa, u: -0.5 * pa["x2"] - 1.5 * u,
            lambda pa, x: (-0.5 * pa["x2"] - x) / 1.5,
            _N01,
        ),
        "x4": (["x3"], lambda pa, u: pa["x3"] + u, lambda pa, x: x - pa["x3"], _N01),
    },
    intervened=("x1", "x2", "x3"),
    description="x1 = u1; x2 = 5 x1 - u2; x3 = -0.5 x2 - 1.5 u3; x4 = x3 + u4; u ~ N(0, I)",
    linear=True,
)
_register(
    "chain5_linear",
    {
        "x1": _root(),
        "x2": (["x1"], lambda pa, u: 10 * pa["x1"] - u, lambda pa, x: 10 * pa["x1"] - x, _N01),
        "x3": (
            ["x2"],
            lambda pa, u: 0.25 * pa["x2"] + 2 * u,
            lambda pa, x: (x - 0.25 * pa["x2"]) / 2,
            _N01,
        ),
        "x4": (["x3"], lambda pa, u: pa["x3"] + u, lambda pa, x: x - pa["x3"], _N01),
        "x5": (["x4"], lambda pa, u: -pa["x4"] + u, lambda pa, x: x + pa["x4"], _N01),
    },
    intervened=("x1", "x2", "x3"),
    description=(
        "x1 = u1; x2 = 10 x1 - u2; x3 = 0.25 x2 + 2 u3; x4 = x3 + u4; x5 = -x4 + u5; u ~ N(0, I)"
    ),
    linear=True,
)
_register(
    "triangle_linear",
    {
        "x1": _root(shift=1.0),
        "x2": (["x1"], lambda pa, u: 10 * pa["x1"] - u, lambda pa, x: 10 * pa["x1"] - x, _N01),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: 0.5 * pa["x2"] + pa["x1"] + u,
            lambda pa, x: x - 0.5 * pa["x2"] - pa["x1"],
            _N01,
        ),
    },
    intervened=("x1", "x2"),
    description="x1 = u1 + 1; x2 = 10 x1 - u2; x3 = 0.5 x2 + x1 + u3; u ~ N(0, I)",
    linear=True,
)
_register(
    "collider_linear",
    {
        "x1": _root(),
        "x2": ([], lambda pa, u: 2.0 - u, lambda pa, x: 2.0 - x, _N01),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: 0.25 * pa["x2"] - 0.5 * pa["x1"] + 0.5 * u,
            lambda pa, x: (x - 0.25 * pa["x2"] + 0.5 * pa["x1"]) / 0.5,
            _N01,
        ),
    },
    intervened=("x2",),
    description="x1 = u1; x2 = 2 - u2; x3 = 0.25 x2 - 0.5 x1 + 0.5 u3; u ~ N(0, I)",
    linear=True,
)
_register(
    "fork_linear",
    {
        "x1": _root(),
        "x2": ([], lambda pa, u: 2.0 - u, lambda pa, x: 2.0 - x, _N01),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: 0.25 * pa["x2"] - 1.5 * pa["x1"] + 0.5 * u,
            lambda pa, x: (x - 0.25 * pa["x2"] + 1.5 * pa["x1"]) / 0.5,
            _N01,
        ),
        "x4": (
            ["x3"],
            lambda pa, u: pa["x3"] + 0.25 * u,
            lambda pa, x: (x - pa["x3"]) / 0.25,
            _N01,
        ),
    },
    intervened=("x2", "x3"),
    description=(
        "x1 = u1; x2 = 2 - u2; x3 = 0.25 x2 - 1.5 x1 + 0.5 u3; x4 = x3 + 0.25 u4; u ~ N(0, I)"
    ),
    linear=True,
)

# --- non-linear, additive noise (Causal NF) -----------------------------------------
_register(
    "chain_nonlinear",
    {
        "x1": _root(),
        "x2": (
            ["x1"],
            lambda pa, u: np.exp(pa["x1"] / 2) + u / 4,
            lambda pa, x: 4 * (x - np.exp(pa["x1"] / 2)),
            _N01,
        ),
        "x3": (
            ["x2"],
            lambda pa, u: (pa["x2"] - 5) ** 3 / 15 + u,
            lambda pa, x: x - (pa["x2"] - 5) ** 3 / 15,
            _N01,
        ),
    },
    intervened=("x1", "x2"),
    description="x1 = u1; x2 = exp(x1 / 2) + u2 / 4; x3 = (x2 - 5)^3 / 15 + u3; u ~ N(0, I)",
)


def _triangle_nl_x3(pa: Mapping[str, FloatArray]) -> FloatArray:
    # 20 / (1 + exp(-x2^2 + x1)), written with a logistic that cannot overflow
    return 20 * expit(pa["x2"] ** 2 - pa["x1"])


_register(
    "triangle_nonlinear",
    {
        "x1": _root(),
        "x2": (
            ["x1"],
            lambda pa, u: 2 * pa["x1"] ** 2 + u,
            lambda pa, x: x - 2 * pa["x1"] ** 2,
            _N01,
        ),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: _triangle_nl_x3(pa) + u,
            lambda pa, x: x - _triangle_nl_x3(pa),
            _N01,
        ),
    },
    intervened=("x1", "x2"),
    description="x1 = u1; x2 = 2 x1^2 + u2; x3 = 20 / (1 + exp(-x2^2 + x1)) + u3; u ~ N(0, I)",
)


def _fork_x3(pa: Mapping[str, FloatArray]) -> FloatArray:
    # 4 / (1 + exp(-x1 - x2)) - x2^2
    return 4 * expit(pa["x1"] + pa["x2"]) - pa["x2"] ** 2


def _fork_x4(pa: Mapping[str, FloatArray]) -> FloatArray:
    # 20 / (1 + exp(x3^2 / 2 - x3))
    return 20 * expit(pa["x3"] - pa["x3"] ** 2 / 2)


_register(
    "fork_nonlinear",
    {
        "x1": _root(),
        "x2": _root(),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: _fork_x3(pa) + u / 2,
            lambda pa, x: 2 * (x - _fork_x3(pa)),
            _N01,
        ),
        "x4": (["x3"], lambda pa, u: _fork_x4(pa) + u, lambda pa, x: x - _fork_x4(pa), _N01),
    },
    intervened=("x2", "x3"),
    description=(
        "x1 = u1; x2 = u2; x3 = 4 / (1 + exp(-x1 - x2)) - x2^2 + u3 / 2; "
        "x4 = 20 / (1 + exp(x3^2 / 2 - x3)) + u4; u ~ N(0, I)"
    ),
)


def _diamond_x3(pa: Mapping[str, FloatArray]) -> FloatArray:
    # x2^2 - 2 / (1 + exp(-x1))
    return pa["x2"] ** 2 - 2 * expit(pa["x1"])


def _diamond_x4(pa: Mapping[str, FloatArray]) -> FloatArray:
    return pa["x3"] / (np.abs(pa["x2"] + 2) + pa["x3"] + 0.5)


_register(
    "diamond_nonlinear",
    {
        "x1": _root(),
        "x2": (
            ["x1"],
            lambda pa, u: pa["x1"] ** 2 + u / 2,
            lambda pa, x: 2 * (x - pa["x1"] ** 2),
            _N01,
        ),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: _diamond_x3(pa) + u / 2,
            lambda pa, x: 2 * (x - _diamond_x3(pa)),
            _N01,
        ),
        "x4": (
            ["x2", "x3"],
            lambda pa, u: _diamond_x4(pa) + u / 10,
            lambda pa, x: 10 * (x - _diamond_x4(pa)),
            _N01,
        ),
    },
    intervened=("x1", "x2", "x3"),
    description=(
        "x1 = u1; x2 = x1^2 + u2 / 2; x3 = x2^2 - 2 / (1 + exp(-x1)) + u3 / 2; "
        "x4 = x3 / (|x2 + 2| + x3 + 0.5) + u4 / 10; u ~ N(0, I)"
    ),
)


def _simpson_x3(pa: Mapping[str, FloatArray]) -> FloatArray:
    return np.tanh(2 * pa["x2"]) + 1.5 * pa["x1"] - 1


_SQ_3_20 = float(np.sqrt(3 / 20))
_SQ_10 = float(np.sqrt(10))
_SQ_2 = float(np.sqrt(2))
_SQ_3_10 = float(np.sqrt(3 / 10))

_register(
    "simpson_nonlinear",
    {
        "x1": _root(),
        "x2": (
            ["x1"],
            lambda pa, u: _softplus(1 - pa["x1"]) + _SQ_3_20 * u,
            lambda pa, x: (x - _softplus(1 - pa["x1"])) / _SQ_3_20,
            _N01,
        ),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: _simpson_x3(pa) + np.tanh(u),
            lambda pa, x: np.arctanh(x - _simpson_x3(pa)),
            _N01,
        ),
        "x4": (
            ["x3"],
            lambda pa, u: (pa["x3"] - 4) / 5 + 3 + u / _SQ_10,
            lambda pa, x: _SQ_10 * (x - (pa["x3"] - 4) / 5 - 3),
            _N01,
        ),
    },
    intervened=("x1", "x2", "x3"),
    description=(
        "x1 = u1; x2 = softplus(1 - x1) + sqrt(3/20) u2; x3 = tanh(2 x2) + 1.5 x1 - 1 + tanh(u3); "
        "x4 = (x3 - 4) / 5 + 3 + u4 / sqrt(10); u ~ N(0, I)"
    ),
)
_register(
    "simpson_symprod",
    {
        "x1": _root(),
        "x2": (
            ["x1"],
            lambda pa, u: 2 * np.tanh(2 * pa["x1"]) + u / _SQ_10,
            lambda pa, x: _SQ_10 * (x - 2 * np.tanh(2 * pa["x1"])),
            _N01,
        ),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: 0.5 * pa["x1"] * pa["x2"] + u / _SQ_2,
            lambda pa, x: _SQ_2 * (x - 0.5 * pa["x1"] * pa["x2"]),
            _N01,
        ),
        "x4": (
            ["x1"],
            lambda pa, u: np.tanh(1.5 * pa["x1"]) + _SQ_3_10 * u,
            lambda pa, x: (x - np.tanh(1.5 * pa["x1"])) / _SQ_3_10,
            _N01,
        ),
    },
    intervened=("x1", "x2", "x3"),
    description=(
        "x1 = u1; x2 = 2 tanh(2 x1) + u2 / sqrt(10); x3 = 0.5 x1 x2 + u3 / sqrt(2); "
        "x4 = tanh(1.5 x1) + sqrt(3/10) u4; u ~ N(0, I)"
    ),
)


# --- large backdoor (Causal NF; 9 nodes, uniform noise) -------------------------------
def _layer(a: Any, b: Any) -> FloatArray:
    """``L(a, b) = softplus(a + 1) + softplus(0.5 + b) - 3``."""
    return _softplus(a + 1) + _softplus(0.5 + b) - 3


def _inv_layer(a: Any, y: Any) -> FloatArray:
    """The ``b`` with ``L(a, b) = y``."""
    return _inv_softplus(y + 3 - _softplus(a + 1)) - 0.5


def _layer_node(parent: str) -> _Node:
    return (
        [parent],
        lambda pa, u: _layer(pa[parent], u),
        lambda pa, x: _inv_layer(pa[parent], x),
        _uniform(1e-6, 1.0),
    )


def _backdoor_x9_loc(pa: Mapping[str, FloatArray]) -> FloatArray:
    return 2 - _softplus((1.3 * pa["x7"] + pa["x8"]) / 3 + 1)


_U = _uniform(1e-6, 1.0)
_register(
    "large_backdoor",
    {
        "x1": (
            [],
            lambda pa, u: _softplus(1.8 * u) - 1,
            lambda pa, x: _inv_softplus(x + 1) / 1.8,
            _U,
        ),
        "x2": (
            ["x1"],
            lambda pa, u: 0.25 * u + 1.5 * _layer(pa["x1"], 0.0),
            lambda pa, x: 4 * (x - 1.5 * _layer(pa["x1"], 0.0)),
            _U,
        ),
        "x3": _layer_node("x1"),
        "x4": _layer_node("x2"),
        "x5": _layer_node("x3"),
        "x6": _layer_node("x4"),
        "x7": _layer_node("x5"),
        "x8": (
            ["x6"],
            lambda pa, u: 0.3 * u + _softplus(pa["x6"] + 1) - 1,
            lambda pa, x: (x - _softplus(pa["x6"] + 1) + 1) / 0.3,
            _U,
        ),
        "x9": (
            ["x7", "x8"],
            lambda pa, u: _laplace_icdf(_backdoor_x9_loc(pa), 0.6, u),
            lambda pa, x: _laplace_cdf(_backdoor_x9_loc(pa), 0.6, x),
            _U,
        ),
    },
    intervened=("x1", "x2", "x3", "x5"),
    description=(
        "L(a, b) = softplus(a + 1) + softplus(0.5 + b) - 3; x1 = softplus(1.8 u1) - 1; "
        "x2 = 0.25 u2 + 1.5 L(x1, 0); x3 = L(x1, u3); x4 = L(x2, u4); x5 = L(x3, u5); "
        "x6 = L(x4, u6); x7 = L(x5, u7); x8 = 0.3 u8 + softplus(x6 + 1) - 1; "
        "x9 = Laplace(loc = 2 - softplus((1.3 x7 + x8) / 3 + 1), scale = 0.6).icdf(u9); "
        "u ~ Uniform(1e-6, 1)^9"
    ),
)

# --- VACA triangles (variances, not standard deviations) ------------------------------
_register(
    "vaca_triangle_linear",
    {
        "x1": (
            [],
            lambda pa, u: u,
            lambda pa, x: x,
            _gaussian_mixture([0.5, 0.5], [-2, 1.5], [1.5, 1]),
        ),
        "x2": (["x1"], lambda pa, u: -pa["x1"] + u, lambda pa, x: x + pa["x1"], _N01),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: pa["x1"] + 0.25 * pa["x2"] + u,
            lambda pa, x: x - pa["x1"] - 0.25 * pa["x2"],
            _N01,
        ),
    },
    intervened=("x1", "x2"),
    description=(
        "x1 = u1; x2 = -x1 + u2; x3 = x1 + 0.25 x2 + u3; "
        "u1 ~ 0.5 N(-2, var 1.5) + 0.5 N(1.5, var 1); u2, u3 ~ N(0, 1)"
    ),
    linear=True,
)


def _vaca_nl_x2(pa: Mapping[str, FloatArray]) -> FloatArray:
    # -1 + 3 / (1 + exp(-2 x1))
    return -1 + 3 * expit(2 * pa["x1"])


_register(
    "vaca_triangle_nonlinear",
    {
        "x1": (
            [],
            lambda pa, u: u,
            lambda pa, x: x,
            _gaussian_mixture([0.5, 0.5], [-2, 1.5], [1.5, 1]),
        ),
        "x2": (
            ["x1"],
            lambda pa, u: _vaca_nl_x2(pa) + u,
            lambda pa, x: x - _vaca_nl_x2(pa),
            _normal(float(np.sqrt(0.1))),
        ),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: pa["x1"] + 0.25 * pa["x2"] ** 2 + u,
            lambda pa, x: x - pa["x1"] - 0.25 * pa["x2"] ** 2,
            _N01,
        ),
    },
    intervened=("x1", "x2"),
    description=(
        "x1 = u1; x2 = -1 + 3 / (1 + exp(-2 x1)) + u2; x3 = x1 + 0.25 x2^2 + u3; "
        "u1 ~ 0.5 N(-2, var 1.5) + 0.5 N(1.5, var 1); u2 ~ N(0, var 0.1); u3 ~ N(0, 1)"
    ),
)


def _vaca_na_x2_inverse(pa: Mapping[str, FloatArray], x: FloatArray) -> FloatArray:
    # x2 = 0.25 sign(u2) x1^2 (1 + u2^2): sign(u2) = sign(x2), |u2| = sqrt(4 |x2| / x1^2 - 1)
    ratio = 4 * np.abs(x) / pa["x1"] ** 2 - 1
    return np.sign(x) * np.sqrt(np.maximum(ratio, 0.0))


def _vaca_na_x3_inverse(pa: Mapping[str, FloatArray], x: FloatArray) -> FloatArray:
    # x3 + 1 = sign(u3) s + u3 with s >= 0: x3 + 1 > 0 exactly when u3 > 0
    s = 0.1 * (pa["x1"] ** 2 + pa["x2"] ** 2)
    y = x + 1
    return np.where(y > 0, y - s, np.where(y < 0, y + s, 0.0))


_register(
    "vaca_triangle_nonadditive",
    {
        "x1": (
            [],
            lambda pa, u: u,
            lambda pa, x: x,
            _gaussian_mixture([0.5, 0.5], [-2.5, 2.5], [1, 1]),
        ),
        "x2": (
            ["x1"],
            lambda pa, u: 0.25 * np.sign(u) * pa["x1"] ** 2 * (1 + u**2),
            _vaca_na_x2_inverse,
            _normal(0.5),
        ),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: -1 + 0.1 * np.sign(u) * (pa["x1"] ** 2 + pa["x2"] ** 2) + u,
            _vaca_na_x3_inverse,
            _normal(0.25),
        ),
    },
    intervened=("x1", "x2"),
    description=(
        "x1 = u1; x2 = 0.25 sign(u2) x1^2 (1 + u2^2); x3 = -1 + 0.1 sign(u3) (x1^2 + x2^2) + u3; "
        "u1 ~ 0.5 N(-2.5, var 1) + 0.5 N(2.5, var 1); u2 ~ N(0, var 0.25); u3 ~ N(0, var 0.0625)"
    ),
    additive=False,
)


# --- non-additive SCM of this library ---------------------------------------------------
def _mult_x3_loc(pa: Mapping[str, FloatArray]) -> FloatArray:
    return pa["x1"] + 0.25 * pa["x1"] * pa["x2"]


def _mult_x3_scale(pa: Mapping[str, FloatArray]) -> FloatArray:
    return 0.5 + 0.25 * pa["x2"]


_register(
    "triangle_multiplicative",
    {
        "x1": _root(),
        "x2": (
            ["x1"],
            lambda pa, u: _softplus(pa["x1"] + 1) * np.exp(0.5 * u),
            lambda pa, x: 2 * (np.log(x) - np.log(_softplus(pa["x1"] + 1))),
            _N01,
        ),
        "x3": (
            ["x1", "x2"],
            lambda pa, u: _mult_x3_loc(pa) + _mult_x3_scale(pa) * np.sinh(u),
            lambda pa, x: np.arcsinh((x - _mult_x3_loc(pa)) / _mult_x3_scale(pa)),
            _N01,
        ),
    },
    intervened=("x1", "x2"),
    description=(
        "x1 = u1; x2 = softplus(x1 + 1) exp(0.5 u2) (log-normal multiplicative noise); "
        "x3 = x1 + 0.25 x1 x2 + (0.5 + 0.25 x2) sinh(u3) (heteroscedastic, heavy-tailed); "
        "u ~ N(0, I)"
    ),
    additive=False,
)


# ---------------------------------------------------------------------- public lookup
def load_scm(name: str) -> SyntheticSCM:
    """The registered SCM called ``name``, or ``"random-<seed>"`` for :func:`random_scm(seed)`.

    Example:
        >>> load_scm("triangle_nonlinear").graph.nodes
        ('x1', 'x2', 'x3')
        >>> load_scm("triangle_nonlinaer")
        Traceback (most recent call last):
        ...
        ValueError: unknown SCM 'triangle_nonlinaer'; did you mean 'triangle_nonlinear'? ...
    """
    if isinstance(name, str) and name.startswith("random-") and name[7:].isdigit():
        from pyrocausal.datasets.random_scm import random_scm

        return random_scm(int(name[7:]))
    try:
        return SCMS[name]
    except (KeyError, TypeError):
        import difflib

        close = difflib.get_close_matches(str(name), list(SCMS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown SCM {name!r}; {hint}valid names: {sorted(SCMS)}") from None


def list_scms(kind: str | None = None) -> list[str]:
    """Names of the registered SCMs, optionally of one ``kind``.

    ``kind`` is ``"linear"``, ``"nonlinear"`` (every SCM that is not linear, non-additive
    ones included) or ``"nonadditive"`` (noise not additive in at least one mechanism).

    Example:
        >>> list_scms("nonadditive")
        ['vaca_triangle_nonadditive', 'triangle_multiplicative']
        >>> "triangle_linear" in list_scms("linear")
        True
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {list(_KINDS)}")
    keep: dict[str | None, Callable[[SyntheticSCM], bool]] = {
        None: lambda s: True,
        "linear": lambda s: s.linear,
        "nonlinear": lambda s: not s.linear,
        "nonadditive": lambda s: not s.additive,
    }
    return [name for name, scm in SCMS.items() if keep[kind](scm)]
