import networkx as nx
import pytest

import pyrocausal as pc
from pyrocausal.graph import GraphError

TRIANGLE = {"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]}


@pytest.mark.parametrize(
    "spec",
    [
        TRIANGLE,
        nx.DiGraph([("x1", "x2"), ("x1", "x3"), ("x2", "x3")]),
        [("x1", "x2"), ("x1", "x3"), ("x2", "x3")],
    ],
    ids=["mapping", "networkx", "edges"],
)
def test_every_input_form_gives_the_same_graph(spec):
    g = pc.CausalGraph(spec)
    assert g.nodes == ("x1", "x2", "x3")
    assert g.parents("x3") == ("x1", "x2")
    assert g == pc.CausalGraph(TRIANGLE)


def test_topological_order_keeps_declaration_order_where_free():
    g = pc.CausalGraph({"b": ["a"], "z": [], "a": []})
    assert g.nodes.index("a") < g.nodes.index("b")
    assert g.roots() == ("z", "a") or set(g.roots()) == {"z", "a"}


def test_parents_not_declared_become_roots():
    g = pc.CausalGraph({"y": ["x"]})
    assert g.nodes == ("x", "y")
    assert g.parents("x") == ()


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"a": ["b"], "b": ["a"]}, "cycle"),
        ({"a": ["a"]}, "cycle"),
        ({"a": "b"}, "list of names"),
        ({}, "no nodes"),
        (42, "causal graph is"),
        ([("a", "b", "c")], "pair"),
    ],
)
def test_bad_graphs_are_rejected_with_a_clear_message(spec, message):
    with pytest.raises(GraphError, match=message):
        pc.CausalGraph(spec)


def test_unknown_node_is_named():
    g = pc.CausalGraph(TRIANGLE)
    with pytest.raises(GraphError, match="'x9'"):
        g.parents("x9")


def test_descendants_ancestors_children():
    g = pc.CausalGraph({"a": [], "b": ["a"], "c": ["b"], "d": []})
    assert g.descendants("a") == {"b", "c"}
    assert g.ancestors("c") == {"a", "b"}
    assert g.children("a") == ("b",)
    assert g.descendants("d") == set()


def test_do_cuts_incoming_edges_only():
    g = pc.CausalGraph(TRIANGLE).do(["x2"])
    assert g.parents("x2") == ()
    assert g.parents("x3") == ("x1", "x2")


def test_adjacency_and_round_trip():
    g = pc.CausalGraph(TRIANGLE)
    a = g.adjacency()
    assert a[0, 1] and a[0, 2] and a[1, 2] and not a[1, 0]
    assert pc.CausalGraph(g.to_dict()) == g
    assert pc.CausalGraph(g.to_networkx()) == g


def test_latent_nodes_must_exist():
    with pytest.raises(GraphError, match="latent"):
        pc.CausalGraph(TRIANGLE, latent=["u"])
    g = pc.CausalGraph({"u": [], "x": ["u"]}, latent=["u"])
    assert g.observed == ("x",)
