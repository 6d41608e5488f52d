"""Causal graphs: a named DAG over the variables of a structural causal model."""

from __future__ import annotations

__all__ = ["CausalGraph", "GraphError"]

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx


class GraphError(ValueError):
    """A causal graph that is not a valid DAG, or a query on a node it does not have."""


class CausalGraph:
    r"""A directed acyclic graph over named variables.

    Arguments:
        graph: Either a mapping ``node -> parents``, a :class:`networkx.DiGraph`, or a
            sequence of ``(parent, child)`` edges. Parents that are not keys of the mapping
            are added as root nodes.
        latent: Names of nodes that are never observed (for example a hidden confounder).

    The node order is a topological order that keeps the order in which nodes were
    declared wherever the edges allow it, so it is the same on every run.

    Example:
        >>> import pyrocausal as pc
        >>> g = pc.CausalGraph({"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]})
        >>> g.nodes
        ('x1', 'x2', 'x3')
        >>> g.parents("x3")
        ('x1', 'x2')
        >>> sorted(g.descendants("x1"))
        ['x2', 'x3']
        >>> pc.CausalGraph([("a", "b"), ("b", "a")])
        Traceback (most recent call last):
        ...
        pyrocausal.graph.GraphError: the graph has a cycle: a -> b -> a
    """

    def __init__(
        self,
        graph: Mapping[str, Iterable[str]] | nx.DiGraph | Sequence[tuple[str, str]] | CausalGraph,
        latent: Iterable[str] = (),
    ) -> None:
        if isinstance(graph, CausalGraph):
            latent = tuple(graph.latent) + tuple(latent)
            graph = graph.to_networkx()
        dag = nx.DiGraph()
        if isinstance(graph, nx.DiGraph):
            dag.add_nodes_from(graph.nodes)
            dag.add_edges_from(graph.edges)
        elif isinstance(graph, Mapping):
            for node, parents in graph.items():
                _check_name(node)
                if isinstance(parents, str):
                    raise GraphError(
                        f"parents of {node!r} must be a list of names, got the string {parents!r}"
                    )
                dag.add_node(node)
                for parent in parents:
                    _check_name(parent)
                    dag.add_edge(parent, node)
        elif isinstance(graph, Sequence) and not isinstance(graph, str):
            for edge in graph:
                if len(edge) != 2:
                    raise GraphError(f"an edge must be a (parent, child) pair, got {edge!r}")
                dag.add_edge(*edge)
        else:
            raise GraphError(
                "a causal graph is a mapping node -> parents, a networkx.DiGraph or a list of "
                f"(parent, child) edges, got {type(graph).__name__}"
            )
        for node in dag.nodes:
            _check_name(node)
        if dag.number_of_nodes() == 0:
            raise GraphError("the graph has no nodes")
        try:
            cycle = nx.find_cycle(dag)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle is not None:
            path = [u for u, _ in cycle] + [cycle[0][0]]
            raise GraphError("the graph has a cycle: " + " -> ".join(map(str, path)))

        rank = {node: i for i, node in enumerate(dag.nodes)}
        self._dag = dag
        self._order = tuple(nx.lexicographical_topological_sort(dag, key=rank.__getitem__))
        self._parents = {
            node: tuple(sorted(dag.predecessors(node), key=self._order.index))
            for node in self._order
        }
        latent = tuple(dict.fromkeys(latent))
        unknown = [u for u in latent if u not in rank]
        if unknown:
            raise GraphError(f"latent nodes {unknown} are not in the graph {list(self._order)}")
        self._latent = latent

    # ------------------------------------------------------------------ structure
    @property
    def nodes(self) -> tuple[str, ...]:
        """All nodes, in topological order."""
        return self._order

    @property
    def observed(self) -> tuple[str, ...]:
        """Nodes that appear in data, in topological order."""
        return tuple(n for n in self._order if n not in self._latent)

    @property
    def latent(self) -> tuple[str, ...]:
        """Nodes that are never observed."""
        return self._latent

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """All ``(parent, child)`` edges, children in topological order."""
        return tuple((p, c) for c in self._order for p in self._parents[c])

    def parents(self, node: str) -> tuple[str, ...]:
        """The parents of ``node``, in topological order."""
        return self._parents[self.check_node(node)]

    def children(self, node: str) -> tuple[str, ...]:
        """The children of ``node``, in topological order."""
        node = self.check_node(node)
        return tuple(c for c in self._order if node in self._parents[c])

    def ancestors(self, node: str) -> set[str]:
        """Every node with a directed path into ``node``."""
        return set(nx.ancestors(self._dag, self.check_node(node)))

    def descendants(self, node: str) -> set[str]:
        """Every node reachable from ``node`` along directed edges."""
        return set(nx.descendants(self._dag, self.check_node(node)))

    def roots(self) -> tuple[str, ...]:
        """Nodes without parents."""
        return tuple(n for n in self._order if not self._parents[n])

    def check_node(self, node: str, what: str = "node") -> str:
        """Return ``node`` if the graph has it, else raise a :class:`GraphError` naming it."""
        if node not in self._parents:
            raise GraphError(f"unknown {what} {node!r}; the graph has {list(self._order)}")
        return node

    def adjacency(self) -> Any:
        """Boolean adjacency matrix ``A`` with ``A[j, i] = True`` for an edge ``j -> i``."""
        import numpy as np

        index = {n: i for i, n in enumerate(self._order)}
        a = np.zeros((len(index), len(index)), dtype=bool)
        for p, c in self.edges:
            a[index[p], index[c]] = True
        return a

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, list[str]]:
        """The graph as a plain ``node -> parents`` mapping (JSON / YAML friendly)."""
        return {n: list(self._parents[n]) for n in self._order}

    def to_networkx(self) -> nx.DiGraph:
        """A copy of the graph as a :class:`networkx.DiGraph`."""
        dag = nx.DiGraph()
        dag.add_nodes_from(self._order)
        dag.add_edges_from(self.edges)
        return dag

    def do(self, nodes: Iterable[str]) -> CausalGraph:
        """The mutilated graph of an intervention: incoming edges of ``nodes`` removed."""
        cut = {self.check_node(n) for n in nodes}
        return CausalGraph(
            {n: [] if n in cut else list(self._parents[n]) for n in self._order},
            latent=self._latent,
        )

    def __contains__(self, node: object) -> bool:
        return node in self._parents

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self):  # noqa: ANN204
        return iter(self._order)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CausalGraph)
            and self.to_dict() == other.to_dict()
            and set(self._latent) == set(other._latent)
        )

    def __hash__(self) -> int:
        return hash((tuple(self.edges), self._order, self._latent))

    def __repr__(self) -> str:
        body = ", ".join(f"{n!r}: {list(p)}" for n, p in self._parents.items())
        latent = f", latent={list(self._latent)}" if self._latent else ""
        return f"CausalGraph({{{body}}}{latent})"


def _check_name(node: object) -> None:
    if not isinstance(node, str) or not node:
        raise GraphError(f"node names must be non-empty strings, got {node!r}")
