"""Graph drawing: every edge drawn, none through a third node; SCM.render via pyro.render_model."""

import itertools
import re
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import Circle, FancyArrowPatch

import pyrocausal as pc
from pyrocausal.datasets import list_scms, load_scm
from pyrocausal.plotting import NODE_RADIUS, edge_bends, layered_layout, plot_graph

GRAPHS = {
    "triangle": pc.CausalGraph({"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]}),
    "diamond": pc.CausalGraph({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}),
    # nine nodes, a latent confounder, edges that skip one to four layers
    "nine": pc.CausalGraph(
        {
            "u": [],
            "z1": [],
            "z2": ["z1"],
            "x1": ["u", "z1"],
            "x2": ["x1", "z2"],
            "m": ["x1"],
            "y": ["m", "x2", "u", "z1"],
            "w": ["y"],
            "v": ["z1", "w"],
        },
        latent=["u"],
    ),
}


def _drawn(ax):
    """Node centers and radii, and each edge's points along its drawn curve (data units)."""
    ax.figure.canvas.draw()  # arrows are clipped to the node circles at draw time
    nodes = {
        p.get_gid().removeprefix("node:"): (np.asarray(p.center), p.radius)
        for p in ax.patches
        if isinstance(p, Circle)
    }
    edges = {}
    for p in ax.patches:
        if isinstance(p, FancyArrowPatch):
            path = p.get_path()  # data coordinates
            t = np.linspace(0.0, 1.0, 50)
            points = np.concatenate([seg(t) for seg, _ in path.iter_bezier()])
            edges[p.get_gid()] = points
    return nodes, edges


@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_edge_is_drawn_and_clear_of_other_nodes(name):
    graph = GRAPHS[name]
    ax = plot_graph(graph)
    nodes, edges = _drawn(ax)
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(graph.edges)
    assert sorted(edges) == sorted(f"edge:{u}->{v}" for u, v in graph.edges)
    assert sorted(nodes) == sorted(graph.nodes)
    for u, v in graph.edges:
        points = edges[f"edge:{u}->{v}"]
        # starts on the parent's circle (clipped there) and reaches the child's circle
        # (its arrow head tip, 1 pt short); 0.05 layout units is about 4 pt at this size
        assert abs(np.linalg.norm(points[0] - nodes[u][0]) - nodes[u][1]) < 0.05
        assert np.linalg.norm(points - nodes[v][0], axis=1).min() < nodes[v][1] + 0.05
        for w, (center, radius) in nodes.items():
            if w not in (u, v):  # the property the one-row layout broke (x1 -> x3 behind x2)
                gap = np.linalg.norm(points - center, axis=1).min()
                assert gap > radius, f"{u}->{v} passes {w} at {gap:.3f} < {radius}"
    centers = [c for c, _ in nodes.values()]
    for a, b in itertools.combinations(centers, 2):  # distinct, non-overlapping circles
        assert np.linalg.norm(a - b) >= 2 * NODE_RADIUS
    plt.close(ax.figure)


@pytest.mark.parametrize("name", list_scms())
def test_benchmark_graphs_draw_clear(name):
    """The same property on every shipped SCM's graph, through the SCM-like object."""
    truth = load_scm(name)
    ax = plot_graph(truth)
    nodes, edges = _drawn(ax)
    assert len(edges) == len(truth.graph.edges)
    for gid, points in edges.items():
        u, v = gid.removeprefix("edge:").split("->")
        for w, (center, radius) in nodes.items():
            if w not in (u, v):
                assert np.linalg.norm(points - center, axis=1).min() > radius, (gid, w)
    plt.close(ax.figure)


def test_layout_layers_and_crossings():
    pos = layered_layout(GRAPHS["nine"])
    assert len(set(pos.values())) == len(pos)
    graph = GRAPHS["nine"]
    for u, v in graph.edges:  # a child sits below every parent
        assert pos[v][1] < pos[u][1]
    assert pos["v"][1] == -5.0  # u/z1 -> x1 -> x2 -> y -> w -> v: six layers
    # K_{2,2} drawn without a crossing: in a diamond the two middle nodes straddle the axis
    d = layered_layout(GRAPHS["diamond"])
    assert d["b"][0] * d["c"][0] < 0 and d["a"][0] == pytest.approx(d["d"][0])


def test_collinear_edge_bends_around_the_middle_node():
    pos = {"a": (0.0, 0.0), "b": (0.0, -1.0), "c": (0.0, -2.0)}
    bends = edge_bends(pos, [("a", "b"), ("b", "c"), ("a", "c")])
    assert bends[("a", "b")] == bends[("b", "c")] == 0.0
    # the arc's bulge is rad * chord / 2 = 1.0 * rad; it must clear 1.3 node radii
    assert abs(bends[("a", "c")]) >= 1.3 * NODE_RADIUS


def test_latent_nodes_and_their_edges_are_dashed():
    ax = plot_graph(GRAPHS["nine"])
    style = {p.get_gid(): p.get_linestyle() for p in ax.patches}
    assert style["node:u"] == "--" and style["node:x1"] == "-"
    assert style["edge:u->x1"] == "--" and style["edge:z1->x1"] == "-"
    plt.close(ax.figure)


def test_draws_an_scm_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    scm = pc.SCM(GRAPHS["triangle"])
    out = plot_graph(scm, ax=axes[1])
    assert out is axes[1] and len(axes[0].patches) == 0
    assert sorted(t.get_text() for t in out.texts) == ["x1", "x2", "x3"]
    plt.close(fig)


def _graphviz_missing() -> str | None:
    """Why SCM.render cannot run here, or None."""
    try:
        import graphviz
    except ImportError:
        return "the graphviz Python package is not installed (pip install graphviz)"
    try:
        graphviz.version()
    except (graphviz.ExecutableNotFound, OSError):
        return "the Graphviz 'dot' program is not on PATH (apt-get install graphviz)"
    return None


needs_graphviz = pytest.mark.skipif(
    _graphviz_missing() is not None, reason=str(_graphviz_missing())
)
RENDERED = pc.CausalGraph({"u": [], "x1": [], "x2": ["x1", "u"], "x3": ["x1", "x2"]}, latent=["u"])


@needs_graphviz
@pytest.mark.parametrize("mechanisms", [None, pc.LinearGaussian(), pc.NSF()], ids=str)
def test_render_shows_every_site_and_edge(tmp_path, mechanisms):
    scm = pc.SCM(RENDERED, mechanisms=mechanisms)
    rng = torch.get_rng_state()
    digraph = scm.render(tmp_path / "scm.svg", render_distributions=True)
    assert torch.equal(rng, torch.get_rng_state())  # the traced row leaves the RNG alone
    source = digraph.source
    # edges found by Pyro's provenance tracking through the flows: exactly the graph's
    edges = set(re.findall(r"^\s*(\w+) -> (\w+)", source, flags=re.M))
    assert edges == set(RENDERED.edges)
    fill = dict(re.findall(r"^\s*(\w+) \[label=\w+ fillcolor=(\w+)", source, flags=re.M))
    assert fill == {"u": "white", "x1": "gray", "x2": "gray", "x3": "gray"}  # observed shaded
    assert "cluster_rows" in source and "x3 ~ TransformedDistribution" in source
    svg = (tmp_path / "scm.svg").read_text()
    assert svg.startswith("<?xml") and all(f">{n}</text>" in svg for n in RENDERED.nodes)


@needs_graphviz
def test_render_needs_a_known_format():
    with pytest.raises(ValueError, match="format of filename 'scm'"):
        pc.SCM(RENDERED).render("scm")


def test_render_without_the_graphviz_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    with pytest.raises(ImportError, match="pip install graphviz .*apt-get install graphviz"):
        pc.SCM(RENDERED).render()


def test_render_without_dot_says_what_to_install(monkeypatch, tmp_path):
    pytest.importorskip("graphviz", reason="the graphviz Python package is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no dot
    with pytest.raises(ImportError, match="'dot' program was not found.*plot_graph"):
        pc.SCM(RENDERED).render()
