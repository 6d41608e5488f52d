r"""Falsification of a causal graph by the conditional independences it implies.

In the spirit of DoWhy's ``gcm.falsify_graph`` (Eulig et al., 2023, "Toward falsifying causal
graphs using a permutation-based test"):

1. *Local Markov condition.* A DAG implies that each node is independent of its
   non-descendants given its parents. Every such statement ``x ⊥ y | pa(x)`` (``y`` a
   non-descendant of ``x`` outside ``pa(x)``; the same statement reached from both ends is
   tested once) is tested on the data with
   :func:`~pyrocausal.independence.conditional_independence_test`. p-values are
   Holm-adjusted over the graph's statements; the graph is *falsified* when any adjusted
   p-value is below ``alpha``.
2. *Permutation baseline.* The same counts are computed for graphs whose node labels are
   permuted at random (same shape, different variables): a graph that the data support
   should violate fewer of its implied independences (unadjusted ``p < alpha``) than most
   relabelings. The permutation p-value is the share of relabelings (the graph itself
   included) whose violation fraction is at most the graph's; below ``alpha`` the test is
   *informative*: the data single out this graph among its relabelings. Relabelings that
   imply exactly the graph's independences (the reversed chain) are left out and counted.
   With ``k`` nodes there are at most ``k! - 1`` others (5 for three nodes), so the p-value
   cannot go below ``1/k!``: below five nodes (24 relabelings for four, fewer after the
   equivalent ones) the test can rarely be informative at ``alpha = 0.05``.

Caps keep it affordable: at most ``max_rows`` rows (a random subset), ``num_permutations``
relabelings (all of them when there are fewer), and ``max_tests`` distinct tests over the
graph and its relabelings (a test reached by several graphs is computed once; relabelings
that would need more are left out, and the count used is reported).

Example:
    >>> import pyrocausal as pc
    >>> from pyrocausal.datasets import load_scm
    >>> data = load_scm("collider_linear").sample(300, seed=0)
    >>> chain = pc.CausalGraph({"x1": [], "x2": ["x1"], "x3": ["x2"]})
    >>> falsify_graph(chain, data).falsified            # x3 ⊥ x1 | x2 fails on a collider
    True
    >>> falsify_graph(load_scm("collider_linear").graph, data).falsified
    False
"""

from __future__ import annotations

__all__ = ["GraphFalsification", "falsify_graph", "local_markov_statements"]

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from pyrocausal.graph import CausalGraph
from pyrocausal.independence import KernelRidge, holm, residual_test

#: ``(x, y, given)``: the statement ``x ⊥ y | given``.
Statement = tuple[str, str, tuple[str, ...]]


def local_markov_statements(graph: CausalGraph) -> list[Statement]:
    """The independences of the local Markov condition, each once.

    Example:
        >>> import pyrocausal as pc
        >>> local_markov_statements(pc.CausalGraph({"a": [], "b": ["a"], "c": ["b"]}))
        [('c', 'a', ('b',))]
    """
    seen: set[tuple[frozenset[str], frozenset[str]]] = set()
    out: list[Statement] = []
    for node in graph.nodes:
        parents = graph.parents(node)
        excluded = graph.descendants(node) | set(parents) | {node}
        for other in graph.nodes:
            if other in excluded:
                continue
            key = (frozenset((node, other)), frozenset(parents))
            if key not in seen:
                seen.add(key)
                out.append((node, other, tuple(parents)))
    return out


@dataclass
class GraphFalsification:
    """Outcome of :func:`falsify_graph`.

    Attributes:
        tests: One row per implied independence ``node ⊥ other | given``: ``statistic``,
            ``p_value``, Holm-adjusted ``p_adjusted`` and ``passed``
            (``p_adjusted >= alpha``).
        permutations: One row per relabeled graph: its violation ``fraction`` (unadjusted
            ``p < alpha``) and ``num_tests``; the first row is the graph itself.
        fraction_violated: The graph's own violation fraction (unadjusted).
        p_value: Permutation p-value (share of relabelings at most as violated).
        falsified: Whether any implied independence is rejected after Holm's adjustment.
        informative: Whether ``p_value < alpha`` (the graph beats its relabelings).
        verdict: One sentence.
        alpha: The level used.
        num_equivalent: Relabelings left out because they imply exactly the graph's
            independences (a reversed chain): no data can tell them apart.
    """

    tests: pd.DataFrame
    permutations: pd.DataFrame
    fraction_violated: float
    p_value: float
    falsified: bool
    informative: bool
    verdict: str
    alpha: float
    num_equivalent: int = 0


def falsify_graph(
    graph: CausalGraph | dict,
    data: pd.DataFrame,
    *,
    alpha: float = 0.05,
    method: Literal["residual-hsic", "gcm"] = "residual-hsic",
    max_rows: int = 500,
    num_permutations: int = 50,
    max_tests: int = 500,
    transform: Literal["normal-scores", "none"] = "normal-scores",
    seed: int = 0,
) -> GraphFalsification:
    """Test the graph's local Markov independences on ``data`` against random relabelings.

    Arguments:
        graph: The DAG (a :class:`~pyrocausal.CausalGraph` or a ``node -> parents`` mapping).
        data: One column per node (extra columns are ignored); not modified.
        alpha: Level of each test and of the permutation comparison.
        method: The conditional independence test (see :mod:`pyrocausal.independence`).
        max_rows: Rows used (a random subset of larger data).
        num_permutations: Random relabelings (all ``k! - 1`` when there are fewer).
        max_tests: Cap on the distinct tests over the graph and its relabelings.
        transform: ``"normal-scores"`` replaces each column by the normal quantiles of its
            ranks first. Conditional independence is unchanged by monotone transforms of each
            variable, and the scores tame heavy tails and outliers that a kernel regression
            fits badly (on ``diamond_nonlinear`` the raw columns made the true graph fail);
            ``"none"`` tests the columns as they are.
        seed: Seed of the row subset and the relabelings.
    """
    from pyrocausal.validation import check_frame

    graph = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
    frame = check_frame(data, graph.nodes, allow_extra=True)
    rng = np.random.default_rng(seed)
    if len(frame) > max_rows:
        frame = frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]
    if transform == "normal-scores":
        columns = {n: _normal_scores(frame[n].to_numpy()) for n in graph.nodes}
    elif transform == "none":
        columns = {n: frame[n].to_numpy() for n in graph.nodes}
    else:
        raise ValueError(f"transform must be 'normal-scores' or 'none', got {transform!r}")
    cache: dict[tuple[frozenset[str], frozenset[str]], tuple[float, float]] = {}
    bases: dict[frozenset[str], KernelRidge] = {}
    residuals: dict[tuple[str, frozenset[str]], np.ndarray] = {}

    def residual(target: str, given: tuple[str, ...]) -> np.ndarray:
        """Leave-one-out residual of ``target`` on ``given``: one kernel basis per set."""
        key = (target, frozenset(given))
        if key not in residuals:
            if not given:
                residuals[key] = columns[target] - columns[target].mean()
            else:
                if key[1] not in bases:
                    z = np.column_stack([columns[g] for g in sorted(given)])
                    bases[key[1]] = KernelRidge(z)
                residuals[key] = bases[key[1]].fit(columns[target]).residuals.copy()
        return residuals[key]

    def run(statements: list[Statement]) -> list[tuple[float, float]]:
        out = []
        for x, y, given in statements:
            key = (frozenset((x, y)), frozenset(given))
            if key not in cache:
                r = residual_test(residual(x, given), residual(y, given), method=method)
                cache[key] = (r.statistic, r.p_value)
            out.append(cache[key])
        return out

    statements = local_markov_statements(graph)
    results = run(statements)
    p = np.array([r[1] for r in results])
    adjusted = holm(p) if len(p) else p
    tests = pd.DataFrame(
        {
            "node": [s[0] for s in statements],
            "other": [s[1] for s in statements],
            "given": [", ".join(s[2]) for s in statements],
            "statistic": [r[0] for r in results],
            "p_value": p,
            "p_adjusted": adjusted,
            "passed": adjusted >= alpha,
        }
    )
    own = float((p < alpha).mean()) if len(p) else 0.0
    nodes = list(graph.nodes)
    own_keys = {(frozenset((x, y)), frozenset(g)) for x, y, g in statements}
    equivalent = 0
    rows = [{"permutation": "identity", "num_tests": len(p), "fraction": own}]
    for perm in _relabelings(len(nodes), num_permutations, rng):
        mapping = {nodes[i]: nodes[j] for i, j in enumerate(perm)}
        relabeled = [
            (mapping[x], mapping[y], tuple(mapping[g] for g in given)) for x, y, given in statements
        ]
        keys = {(frozenset((x, y)), frozenset(g)) for x, y, g in relabeled}
        if keys == own_keys:  # implies the same independences: indistinguishable by design
            equivalent += 1
            continue
        if len(cache) + len(keys - cache.keys()) > max_tests:
            continue
        pr = np.array([r[1] for r in run(relabeled)])
        rows.append(
            {
                "permutation": " ".join(f"{a}->{b}" for a, b in mapping.items() if a != b),
                "num_tests": len(pr),
                "fraction": float((pr < alpha).mean()) if len(pr) else 0.0,
            }
        )
    permutations = pd.DataFrame(rows)
    p_perm = float((permutations["fraction"] <= own).mean())
    falsified = bool((~tests["passed"]).any())
    informative = p_perm < alpha
    if not statements:
        verdict = "nothing to test: the graph implies no conditional independence"
    elif falsified:
        verdict = (
            f"falsified: {int((~tests['passed']).sum())} of {len(tests)} implied independences "
            f"rejected (Holm, alpha={alpha:g})"
        )
    elif informative:
        ties = int((permutations["fraction"].iloc[1:] <= own).sum())
        verdict = (
            f"not falsified, and informative: {ties} of {len(permutations) - 1} relabelings "
            f"do as well (permutation p={p_perm:.3f})"
        )
    else:
        verdict = (
            f"not falsified, but not informative: relabelings fit as well (permutation "
            f"p={p_perm:.3f} over {len(permutations) - 1} relabelings)"
        )
    return GraphFalsification(
        tests, permutations, own, p_perm, falsified, informative, verdict, alpha, equivalent
    )


def _normal_scores(values: np.ndarray) -> np.ndarray:
    return stats.norm.ppf((stats.rankdata(values) - 0.5) / len(values))


def _relabelings(k: int, num: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``num`` distinct non-identity permutations of ``range(k)`` (all when fewer exist)."""
    identity = tuple(range(k))
    if math.factorial(k) - 1 <= num:
        return [p for p in itertools.permutations(range(k)) if p != identity]
    seen: set[tuple[int, ...]] = {identity}
    out = []
    while len(out) < num:
        p = tuple(int(i) for i in rng.permutation(k))
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out
