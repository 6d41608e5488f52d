"""Random structural causal models with exact ground truth, in two disjoint pools.

A benchmark of seventeen hand-written SCMs is small enough to tune defaults on by accident.
:func:`random_scm` draws an unlimited supply of SCMs of the kinds the literature's suites
mix: random DAGs of 3 to 10 nodes, and per node a random mechanism family and noise
distribution. Every mechanism is strictly increasing in its noise, so the noise of observed
data is recovered exactly (:meth:`~pyrocausal.datasets.SyntheticSCM.abduct`) and every
counterfactual is identified and exact.

Two pools of seeds keep development and evaluation apart (:data:`POOLS`): defaults are tuned
on ``random-tune`` (seeds 0-49) and reported on ``random-eval`` (seeds 1000 and up), which no
default was tuned on.

Families (:data:`FAMILIES`), each written in the standardized parents ``pa``:

* ``linear``: ``x = w . pa + s u``.
* ``additive``: ``x = f(pa) + s u`` with ``f`` a random one-hidden-layer tanh network or a
  sum of random basis functions (sines, squares, ``tanh``) of each parent.
* ``heteroscedastic``: ``x = f(pa) + s(pa) u`` with ``s(pa) = s0 (0.3 + softplus(v . pa))``.
* ``nonadditive``: ``x = h(f(pa) + s u)`` with ``h`` one of ``softplus``, ``sinh`` or
  ``exp``, so the noise and the parents do not separate.
* ``multiplicative``: ``x = g(pa) (c + s u)`` with ``g(pa) = 0.3 + softplus(v . pa)`` and
  ``c`` in ``[1, 2]``.

Noises (:data:`NOISES`), all of mean 0 and variance 1: ``normal``, ``laplace``, ``uniform``,
``bimodal`` (a two-component Gaussian mixture) and ``skewed`` (a standardized Gumbel). Roots
draw from all five, so many roots are non-Gaussian or multimodal.

Each node is rescaled to mean 0 and standard deviation 1 (on 20,000 draws made from the
SCM's own seed), so the parents of every mechanism are on one scale, no variable overflows
down a long chain, and metrics in standardized units are comparable across SCMs.

Example:
    >>> import numpy as np
    >>> from pyrocausal.datasets import random_scm
    >>> scm = random_scm(1000)
    >>> scm.name, 3 <= len(scm.nodes) <= 10
    ('random-1000', True)
    >>> data, u = scm.sample_with_noise(500, seed=0)
    >>> bool(np.allclose(scm.abduct(data), u))
    True
    >>> set(scm.families.values()) <= {"root", *FAMILIES}
    True
"""

from __future__ import annotations

__all__ = [
    "FAMILIES",
    "NOISES",
    "POOLS",
    "RandomSCM",
    "random_pool",
    "random_scm",
]

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from pyrocausal.datasets.tabular import Equation, Inverse, NoiseSampler, SyntheticSCM
from pyrocausal.graph import CausalGraph

FloatArray = npt.NDArray[np.float64]

#: The mechanism families of non-root nodes.
FAMILIES: tuple[str, ...] = (
    "linear",
    "additive",
    "heteroscedastic",
    "nonadditive",
    "multiplicative",
)
#: The noise distributions (each of mean 0 and variance 1).
NOISES: tuple[str, ...] = ("normal", "laplace", "uniform", "bimodal", "skewed")
#: ``pool -> (first seed, number of seeds)``: disjoint seed ranges for tuning and evaluation.
POOLS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"random-tune": (0, 50), "random-eval": (1000, 1000)}
)
_MAX_PARENTS = 4  # in-degree cap: the harder node of a 10-node DAG still has 4 inputs
_PILOT = 20_000  # draws that fix each node's standardization
_EULER = 0.5772156649015329


@dataclass(frozen=True, eq=False)
class RandomSCM(SyntheticSCM):
    """A :class:`~pyrocausal.datasets.SyntheticSCM` drawn by :func:`random_scm`.

    Arguments:
        seed: The seed it was drawn from (its name is ``"random-<seed>"``).
        families: ``node -> family`` (``"root"`` for a root, else one of :data:`FAMILIES`).
        noises: ``node -> noise`` (one of :data:`NOISES`).

    Example:
        >>> scm = random_scm(3, nodes=4)
        >>> scm.seed, len(scm.families), len(scm.noises)
        (3, 4, 4)
    """

    seed: int = 0
    families: Mapping[str, str] = field(default_factory=dict, repr=False)
    noises: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (
            f"RandomSCM({self.name!r}, nodes={self.nodes}, intervened={self.intervened}, "
            f"families={dict(self.families)})"
        )


# ------------------------------------------------------------------------- noise
def _noise(kind: str, rng: np.random.Generator) -> NoiseSampler:
    """A sampler of mean 0 and variance 1 of the given kind (its shape drawn from ``rng``)."""
    if kind == "normal":
        return lambda g, n: g.standard_normal(n)
    if kind == "laplace":
        return lambda g, n: g.laplace(0.0, 1.0 / np.sqrt(2.0), size=n)
    if kind == "uniform":
        return lambda g, n: g.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=n)
    if kind == "bimodal":
        w = float(rng.uniform(0.3, 0.7))
        d = float(rng.uniform(1.2, 2.5))  # distance between the modes, in component sds
        sd = 1.0 / np.sqrt(1.0 + w * (1 - w) * d**2)  # total variance 1
        mu0, mu1 = -(1 - w) * d * sd, w * d * sd  # mean 0

        def bimodal(g: np.random.Generator, n: int) -> FloatArray:
            first = g.random(n) < w
            return np.where(first, mu0, mu1) + sd * g.standard_normal(n)

        return bimodal
    if kind == "skewed":
        sign = float(rng.choice([-1.0, 1.0]))
        scale = np.sqrt(6.0) / np.pi  # Gumbel variance pi^2 beta^2 / 6 = 1
        return lambda g, n: sign * (g.gumbel(0.0, scale, size=n) - _EULER * scale)
    raise ValueError(f"unknown noise {kind!r}; expected one of {list(NOISES)}")


# ------------------------------------------------------------------------- functions of parents
Function = Callable[[Mapping[str, FloatArray]], FloatArray]


def _stack(pa: Mapping[str, FloatArray], names: Sequence[str]) -> FloatArray:
    return np.stack([np.asarray(pa[p], dtype=np.float64) for p in names], axis=-1)


def _soft(pa: Mapping[str, FloatArray], names: Sequence[str]) -> FloatArray:
    """The parents soft-clipped by ``3 tanh(x / 3)``: the identity within about 1.5 sd, bounded
    beyond, so a heavy tail upstream is not compounded by a square, sinh or exp downstream."""
    return 3.0 * np.tanh(_stack(pa, names) / 3.0)


def _softplus(a: Any) -> FloatArray:
    return np.logaddexp(0.0, a)


def _inv_softplus(y: Any) -> FloatArray:
    y = np.asarray(y, dtype=np.float64)
    return y + np.log(-np.expm1(-y))


def _weights(rng: np.random.Generator, k: int) -> FloatArray:
    """Parent weights of magnitude 0.5 to 1.5 and random sign."""
    return rng.uniform(0.5, 1.5, size=k) * rng.choice([-1.0, 1.0], size=k)


def _linear(
    rng: np.random.Generator, names: Sequence[str], clip: bool = False
) -> tuple[Function, str]:
    """``w . pa``; with ``clip``, of the soft-clipped parents (see :func:`_soft`)."""
    w = _weights(rng, len(names))
    text = " + ".join(f"{a:+.2f} {'clip ' if clip else ''}{p}" for a, p in zip(w, names))
    columns = _soft if clip else _stack
    return (lambda pa: columns(pa, names) @ w), f"({text})"


def _nonlinear(rng: np.random.Generator, names: Sequence[str]) -> tuple[Function, str]:
    """A random smooth non-linear function: a tanh network or a sum of basis functions."""
    k = len(names)
    if rng.random() < 0.5:
        hidden = int(rng.integers(6, 17))
        w1 = rng.normal(0.0, 1.5 / np.sqrt(k), size=(k, hidden))
        b1 = rng.normal(0.0, 1.0, size=hidden)
        w2 = rng.normal(0.0, 1.0, size=hidden)
        return (lambda pa: np.tanh(_soft(pa, names) @ w1 + b1) @ w2), f"mlp{hidden}({names})"
    terms: list[tuple[int, str, float, float, float]] = []
    for i in range(k):
        for _ in range(int(rng.integers(1, 3))):
            basis = str(rng.choice(["sin", "square", "tanh"]))
            terms.append(
                (i, basis, float(rng.normal()), float(rng.uniform(0.7, 2.0)), rng.normal(0, 0.7))
            )

    def basis_sum(pa: Mapping[str, FloatArray]) -> FloatArray:
        x = _soft(pa, names)
        out = np.zeros(x.shape[:-1])
        for i, basis, a, omega, shift in terms:
            z = omega * x[..., i] + shift
            out = out + a * (
                np.sin(z) if basis == "sin" else z**2 / 4 if basis == "square" else np.tanh(z)
            )
        return out

    used = sorted({b for _, b, *_ in terms})
    return basis_sum, f"basis[{'+'.join(used)}]({names})"


def _any_function(rng: np.random.Generator, names: Sequence[str]) -> tuple[Function, str]:
    """A random non-linear function or (half the time) a linear one of the clipped parents."""
    return _nonlinear(rng, names) if rng.random() < 0.5 else _linear(rng, names, True)


def _positive(
    rng: np.random.Generator, names: Sequence[str], pilot: Mapping[str, FloatArray]
) -> tuple[Function, float]:
    """``0.3 + softplus(v . clip(pa))`` with random ``v``, and its mean on the pilot parents."""
    v = _weights(rng, len(names))

    def positive(pa: Mapping[str, FloatArray]) -> FloatArray:
        return 0.3 + _softplus(_soft(pa, names) @ v)

    return positive, float(np.mean(positive(pilot)))


def _standardized(f: Function, pilot: Mapping[str, FloatArray]) -> Function:
    """``f`` rescaled to mean 0 and standard deviation 1 on the pilot parents."""
    values = f(pilot)
    loc, scale = float(np.mean(values)), float(np.std(values)) or 1.0
    return lambda pa: (f(pa) - loc) / scale


# ------------------------------------------------------------------------- mechanisms
_Mechanism = tuple[Equation, Inverse, str]


def _mechanism(
    family: str, rng: np.random.Generator, names: Sequence[str], pilot: Mapping[str, FloatArray]
) -> _Mechanism:
    """``(raw equation, raw inverse, text)`` of one family, before the node's rescaling."""
    s = float(rng.uniform(0.3, 1.0))  # noise scale relative to a unit-variance signal
    if family in ("linear", "additive"):
        f, text = (_linear if family == "linear" else _nonlinear)(rng, names)
        f = _standardized(f, pilot)
        return (
            lambda pa, u: f(pa) + s * u,
            lambda pa, x: (x - f(pa)) / s,
            f"{text} + {s:.2f} u",
        )
    if family == "heteroscedastic":
        f, text = _any_function(rng, names)
        f = _standardized(f, pilot)
        positive, norm = _positive(rng, names, pilot)

        def scale(pa: Mapping[str, FloatArray]) -> FloatArray:
            return s * positive(pa) / norm

        return (
            lambda pa, u: f(pa) + scale(pa) * u,
            lambda pa, x: (x - f(pa)) / scale(pa),
            f"{text} + {s:.2f} (0.3 + softplus(v . pa)) u",
        )
    if family == "nonadditive":
        f, text = _any_function(rng, names)
        g = _standardized(f, pilot)

        def f(pa: Mapping[str, FloatArray]) -> FloatArray:  # bounded: a skewed g (a square)
            return 3.0 * np.tanh(g(pa) / 3.0)  # must not feed exp a long tail

        link = str(rng.choice(["softplus", "sinh", "exp"]))
        # curvature h(c a) / c. For sinh and exp, c s <= 0.3 keeps the fourth moment finite
        # under Laplace and Gumbel noise (tails exp(-1.41 t) and exp(-1.28 t)), so no node is
        # a handful of outliers; the parents' part is bounded, so only the noise makes a tail.
        c = float(
            rng.uniform(*{"softplus": (0.8, 2.0), "sinh": (0.5, 1.0), "exp": (0.4, 0.8)}[link])
        )
        if link != "softplus":
            s = min(s, 0.3 / c)
        forward: Callable[[Any], FloatArray]
        backward: Callable[[Any], FloatArray]
        if link == "softplus":
            forward, backward = _softplus, _inv_softplus
        elif link == "sinh":
            forward, backward = np.sinh, np.arcsinh
        else:
            forward, backward = np.exp, np.log
        return (
            lambda pa, u: forward(c * (f(pa) + s * u)) / c,
            lambda pa, x: (backward(c * x) / c - f(pa)) / s,
            f"{link}({c:.2f} ({text} + {s:.2f} u)) / {c:.2f}",
        )
    if family == "multiplicative":
        positive, norm = _positive(rng, names, pilot)
        centre = float(rng.uniform(1.0, 2.0))

        def gain(pa: Mapping[str, FloatArray]) -> FloatArray:
            return positive(pa) / norm

        return (
            lambda pa, u: gain(pa) * (centre + s * u),
            lambda pa, x: (x / gain(pa) - centre) / s,
            f"(0.3 + softplus(v . pa)) ({centre:.2f} + {s:.2f} u)",
        )
    raise ValueError(f"unknown family {family!r}; expected one of {list(FAMILIES)}")


def _rescaled(
    equation: Equation, inverse: Inverse, loc: float, scale: float
) -> tuple[Equation, Inverse]:
    return (
        lambda pa, u: (equation(pa, u) - loc) / scale,
        lambda pa, x: inverse(pa, np.asarray(x, dtype=np.float64) * scale + loc),
    )


# ------------------------------------------------------------------------- DAG
def _dag(rng: np.random.Generator, n: int, density: float) -> dict[str, list[str]]:
    """A random DAG on ``x1..xn`` (topological order), in-degree <= 4, no isolated node
    (it may fall into several components, each a valid SCM of its own)."""
    names = [f"x{i + 1}" for i in range(n)]
    parents: dict[str, list[str]] = {names[0]: []}
    for j in range(1, n):
        chosen = [names[i] for i in range(j) if rng.random() < density]
        if len(chosen) > _MAX_PARENTS:
            chosen = sorted(
                rng.choice(chosen, size=_MAX_PARENTS, replace=False).tolist(), key=names.index
            )
        parents[names[j]] = chosen
    # connect every isolated node to a random earlier node (or the next one)
    for j, node in enumerate(names):
        has_child = any(node in ps for ps in parents.values())
        if not parents[node] and not has_child:
            if j > 0:
                parents[node] = [names[int(rng.integers(0, j))]]
            else:
                later = names[1 + int(rng.integers(0, n - 1))]
                if len(parents[later]) >= _MAX_PARENTS:
                    later = names[1]  # x2 can only have had x1 as a parent: it has none
                parents[later] = sorted([*parents[later], node], key=names.index)
    return parents


# ------------------------------------------------------------------------- public
def random_scm(
    seed: int,
    nodes: int | tuple[int, int] = (3, 10),
    density: float | None = None,
    families: Sequence[str] | None = None,
    noises: Sequence[str] | None = None,
) -> RandomSCM:
    r"""Draw a random SCM with exact, identified counterfactuals.

    Arguments:
        seed: Fixes everything: graph, families, noises, coefficients.
        nodes: The number of nodes, or an inclusive ``(low, high)`` range to draw it from.
        density: The probability of each forward edge; default drawn from ``[0.3, 0.6]``.
        families: The families non-root nodes draw from (default :data:`FAMILIES`).
        noises: The noise distributions nodes draw from (default :data:`NOISES`).

    The intervened nodes (those a benchmark queries) are up to three nodes with
    descendants, drawn from the seed.

    Example:
        >>> scm = random_scm(7, nodes=5, families=["nonadditive"])
        >>> len(scm.nodes), {f for f in scm.families.values() if f != "root"}
        (5, {'nonadditive'})
        >>> data = scm.sample(20_000, seed=1)
        >>> bool(abs(data.std() - 1).max() < 0.1)
        True
        >>> random_scm(1, families=["cubic"])
        Traceback (most recent call last):
        ...
        ValueError: unknown family 'cubic'; expected one of ['linear', 'additive', ...
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    families = tuple(FAMILIES if families is None else families)
    noises = tuple(NOISES if noises is None else noises)
    for what, chosen, valid in (("family", families, FAMILIES), ("noise", noises, NOISES)):
        if not chosen:
            raise ValueError(f"give at least one {what}")
        for item in chosen:
            if item not in valid:
                raise ValueError(f"unknown {what} {item!r}; expected one of {list(valid)}")
    low, high = (nodes, nodes) if isinstance(nodes, (int, np.integer)) else tuple(nodes)
    if not 2 <= int(low) <= int(high):
        raise ValueError(f"nodes must be at least 2 (and low <= high), got {nodes!r}")
    if density is not None and not 0.0 < float(density) <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density!r}")

    rng = np.random.default_rng([int(seed), 20261207])
    n = int(rng.integers(int(low), int(high) + 1))
    parents = _dag(rng, n, float(density) if density is not None else float(rng.uniform(0.3, 0.6)))
    pilot_rng = np.random.default_rng([int(seed), 1])
    pilot: dict[str, FloatArray] = {}
    equations: dict[str, Equation] = {}
    inverses: dict[str, Inverse] = {}
    samplers: dict[str, NoiseSampler] = {}
    node_family: dict[str, str] = {}
    node_noise: dict[str, str] = {}
    lines: list[str] = []
    for node, pa_names in parents.items():
        kind = str(rng.choice(noises))
        samplers[node] = _noise(kind, rng)
        node_noise[node] = kind
        if not pa_names:
            equation, inverse, text, family = (lambda pa, u: u), (lambda pa, x: x), "u", "root"
        else:
            family = str(rng.choice(families))
            equation, inverse, text = _mechanism(
                family, rng, pa_names, {p: pilot[p] for p in pa_names}
            )
        u = samplers[node](pilot_rng, _PILOT)
        raw = equation({p: pilot[p] for p in pa_names}, u)
        loc, scale = float(np.mean(raw)), float(np.std(raw))
        equations[node], inverses[node] = _rescaled(equation, inverse, loc, scale)
        pilot[node] = (raw - loc) / scale
        node_family[node] = family
        lines.append(f"{node} = std[{text}], u ~ {kind}")

    graph = CausalGraph(parents)
    with_children = [v for v in graph.nodes if graph.children(v)]
    count = min(3, len(with_children))
    intervened = sorted(
        rng.choice(with_children, size=count, replace=False).tolist(), key=graph.nodes.index
    )
    linear = all(f in ("root", "linear") for f in node_family.values())
    additive = all(f in ("root", "linear", "additive") for f in node_family.values())
    return RandomSCM(
        name=f"random-{int(seed)}",
        graph=graph,
        intervened=tuple(intervened),
        additive=additive,
        linear=linear,
        description="; ".join(lines),
        equations=equations,
        noise=samplers,
        inverses=inverses,
        seed=int(seed),
        families=MappingProxyType(node_family),
        noises=MappingProxyType(node_noise),
    )


def random_pool(pool: str, count: int | None = None, **kwargs: Any) -> list[RandomSCM]:
    """The first ``count`` SCMs of a pool (default: all; ``kwargs`` go to :func:`random_scm`).

    Example:
        >>> [s.name for s in random_pool("random-eval", 2)]
        ['random-1000', 'random-1001']
        >>> random_pool("random-tune", 51)
        Traceback (most recent call last):
        ...
        ValueError: pool 'random-tune' has 50 SCMs (seeds 0-49), asked for 51
    """
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {list(POOLS)}")
    first, size = POOLS[pool]
    count = size if count is None else int(count)
    if not 0 < count <= size:
        raise ValueError(
            f"pool {pool!r} has {size} SCMs (seeds {first}-{first + size - 1}), asked for {count}"
        )
    return [random_scm(seed, **kwargs) for seed in range(first, first + count)]
