"""Plots for causal questions: graphs, interventional densities, factual vs counterfactual."""

from __future__ import annotations

__all__ = [
    "NODE_RADIUS",
    "edge_bends",
    "layered_layout",
    "plot_counterfactuals",
    "plot_graph",
    "plot_interventional",
    "render_scm",
]

import os
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from pyrocausal.graph import CausalGraph


def _axes(ax, ncols: int = 1, size: tuple[float, float] = (4.0, 3.5)):  # noqa: ANN001, ANN202
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, np.atleast_1d(ax)
    fig, axes = plt.subplots(1, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)
    return fig, axes[0]


NODE_RADIUS = 0.28
"""Radius of a node in :func:`plot_graph`, in units of the layout's spacing (one between
layers and between neighbours of a layer)."""

_SWEEPS = 12  # barycenter sweeps (down and up); the ordering with the fewest crossings is kept
_BENDS = (0.0, 0.15, 0.25, 0.35, 0.5, 0.65, 0.8, 1.0)  # |rad| tried, straightest first


def layered_layout(graph: Any) -> dict[str, tuple[float, float]]:
    """Node positions in layers: roots on top, each node one layer below its deepest parent.

    Edges that skip layers pass through placeholder slots in the layers between, so the
    ordering keeps room for them. Nodes within a layer are ordered by barycenter sweeps (the
    mean position of their neighbours in the adjacent layer), keeping the order with the
    fewest edge crossings, then moved towards their neighbours' mean position, one apart.

    Arguments:
        graph: A :class:`~pyrocausal.CausalGraph`, anything with a ``graph`` attribute that is
            one (an :class:`~pyrocausal.SCM`), or anything :class:`~pyrocausal.CausalGraph`
            accepts.

    Returns:
        ``{node: (x, y)}``; layer ``k`` is at ``y = -k``.

    Example:
        >>> pos = layered_layout({"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]})
        >>> [pos[n][1] for n in ("x1", "x2", "x3")]        # three layers
        [0.0, -1.0, -2.0]
        >>> pos["x2"][0] != pos["x3"][0]                   # x2 steps aside for x1 -> x3
        True
    """
    graph = _as_graph(graph)
    depth: dict[Any, int] = {}
    for k, generation in enumerate(nx.topological_generations(graph.to_networkx())):
        depth.update(dict.fromkeys(generation, k))
    levels: list[list[Any]] = [[] for _ in range(max(depth.values()) + 1)]
    for node in graph.nodes:
        levels[depth[node]].append(node)
    up: dict[Any, list[Any]] = {n: [] for n in graph.nodes}
    down: dict[Any, list[Any]] = {n: [] for n in graph.nodes}
    for u, v in graph.edges:
        chain = [u] + [("slot", u, v, k) for k in range(depth[u] + 1, depth[v])] + [v]
        for k, slot in enumerate(chain[1:-1], start=depth[u] + 1):
            levels[k].append(slot)
            up[slot], down[slot] = [], []
        for a, b in zip(chain[:-1], chain[1:]):
            down[a].append(b)
            up[b].append(a)

    def crossings(order: list[list[Any]]) -> int:
        total = 0
        for upper, lower in zip(order[:-1], order[1:]):
            iu, il = {n: i for i, n in enumerate(upper)}, {n: i for i, n in enumerate(lower)}
            edges = [(iu[a], il[b]) for a in upper for b in down[a]]
            total += sum((a1 - a2) * (b1 - b2) < 0 for a1, b1 in edges for a2, b2 in edges)
        return total // 2

    best, fewest = [list(level) for level in levels], crossings(levels)
    for sweep in range(_SWEEPS):
        rows = range(1, len(levels)) if sweep % 2 == 0 else range(len(levels) - 2, -1, -1)
        for k in rows:
            ref = levels[k - 1] if sweep % 2 == 0 else levels[k + 1]
            index = {n: i for i, n in enumerate(ref)}
            nbrs = up if sweep % 2 == 0 else down

            def key(item: tuple[int, Any], index: dict = index, nbrs: dict = nbrs) -> float:
                i, n = item
                return np.mean([index[m] for m in nbrs[n]]) if nbrs[n] else i

            levels[k] = [n for _, n in sorted(enumerate(levels[k]), key=key)]
        count = crossings(levels)
        if count < fewest:
            best, fewest = [list(level) for level in levels], count

    x = {n: i - (len(level) - 1) / 2 for level in best for i, n in enumerate(level)}
    for _ in range(4):  # pull nodes towards their neighbours, keeping the order, one apart
        for level in best:
            want = [np.mean([x[m] for m in up[n] + down[n]]) if up[n] + down[n] else x[n]
                    for n in level]  # fmt: skip
            left, right = list(want), list(want)
            for i in range(1, len(level)):
                left[i] = max(left[i], left[i - 1] + 1.0)
            for i in range(len(level) - 2, -1, -1):
                right[i] = min(right[i], right[i + 1] - 1.0)
            for n, a, b in zip(level, left, right):
                x[n] = (a + b) / 2
    shift = np.mean([x[n] for n in graph.nodes])
    return {n: (float(x[n] - shift), float(-depth[n])) for n in graph.nodes}


def edge_bends(
    pos: Mapping[str, tuple[float, float]],
    edges: Sequence[tuple[str, str]],
    radius: float = NODE_RADIUS,
) -> dict[tuple[str, str], float]:
    """For each edge, the ``arc3`` bend (``rad``) of the straightest arc that keeps clear of
    every other node: at least ``1.3 * radius`` from its center (the widest clearance found
    when no tried bend reaches that).

    The arc is matplotlib's ``arc3`` quadratic Bezier curve: control point at the chord's
    midpoint plus ``rad`` times the chord turned clockwise; the same curve in data units when
    the axes have an equal aspect.

    Example:
        >>> pos = {"a": (0.0, 0.0), "b": (0.0, -1.0), "c": (0.0, -2.0)}
        >>> bends = edge_bends(pos, [("a", "b"), ("a", "c")])
        >>> bends[("a", "b")], abs(bends[("a", "c")]) > 0
        (0.0, True)
    """
    centers = {n: np.asarray(p, dtype=float) for n, p in pos.items()}
    bends = {}
    for u, v in edges:
        others = np.array([c for n, c in centers.items() if n not in (u, v)]).reshape(-1, 2)
        tried = [
            (_clearance(centers[u], centers[v], s * m, others), s * m)
            for m in _BENDS
            for s in ((1.0, -1.0) if m else (1.0,))
        ]
        good = [(c, rad) for c, rad in tried if c >= 1.3 * radius]
        if good:  # the straightest bend that clears; of its two directions the clearer
            least = min(abs(rad) for _, rad in good)
            bends[(u, v)] = max((c, rad) for c, rad in good if abs(rad) == least)[1]
        else:
            bends[(u, v)] = max(tried)[1]
    return bends


def _clearance(a: np.ndarray, b: np.ndarray, rad: float, others: np.ndarray) -> float:
    """Least distance from the ``arc3`` curve from ``a`` to ``b`` to the points ``others``."""
    if len(others) == 0:
        return np.inf
    t = np.linspace(0.0, 1.0, 61)[:, None]
    control = (a + b) / 2 + rad * np.array([b[1] - a[1], a[0] - b[0]])
    curve = (1 - t) ** 2 * a + 2 * t * (1 - t) * control + t**2 * b
    return float(np.linalg.norm(curve[:, None] - others[None], axis=-1).min())


def plot_graph(graph: Any, ax=None):  # noqa: ANN001, ANN201
    """Draw the causal graph in layers, every edge visible.

    Roots are on top and every node sits one layer below its deepest parent
    (:func:`layered_layout`). An edge is a straight arrow unless that would pass a third node;
    then it is the straightest arc that keeps clear of every other node (:func:`edge_bends`).
    Observed nodes are blue circles; latent nodes and their edges are grey and dashed. Every
    node is a :class:`~matplotlib.patches.Circle` with ``gid`` ``"node:<name>"`` and every edge
    a :class:`~matplotlib.patches.FancyArrowPatch` with ``gid`` ``"edge:<parent>-><child>"``
    (the ids of the SVG's elements).

    Arguments:
        graph: A :class:`~pyrocausal.CausalGraph`, an :class:`~pyrocausal.SCM` (its graph) or
            anything :class:`~pyrocausal.CausalGraph` accepts.
        ax: Axes to draw into (a new figure sized to the graph when ``None``).

    Returns:
        The matplotlib axes.

    Example:
        >>> import pyrocausal as pc
        >>> ax = plot_graph(pc.CausalGraph({"a": [], "b": ["a"]}))
        >>> sorted(t.get_text() for t in ax.texts)
        ['a', 'b']
        >>> [p.get_gid() for p in ax.patches if p.get_gid().startswith("edge")]
        ['edge:a->b']
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyArrowPatch

    graph = _as_graph(graph)
    pos = layered_layout(graph)
    r = NODE_RADIUS
    bends = edge_bends(pos, graph.edges, r)
    xy = np.array(list(pos.values()))
    lo, hi = xy.min(axis=0) - (r + 0.35), xy.max(axis=0) + (r + 0.35)
    if ax is None:
        longest = max(len(line) for n in graph.nodes for line in _label(n).split("\n"))
        scale = 1.1 * float(np.clip(longest / 5, 1.0, 2.0))  # inches per layout unit
        width, height = np.clip((hi - lo) * scale, [2.0, 1.6], [14.0, 12.0])
        fig, ax = plt.subplots(figsize=(width, height))
        fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=1.0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.apply_aspect()
    pixels = ax.transData.transform([(0.0, 0.0), (1.0, 0.0)])
    points_per_unit = (pixels[1, 0] - pixels[0, 0]) * 72.0 / ax.figure.dpi
    latent = set(graph.latent)
    circles = {}
    for node, (x, y) in pos.items():
        hidden = node in latent
        circles[node] = Circle(
            (x, y), r, facecolor="#eeeeee" if hidden else "#9ecae1",
            edgecolor="#777777" if hidden else "#2b6a99", linestyle="--" if hidden else "-",
            linewidth=1.3, zorder=2, gid=f"node:{node}",
        )  # fmt: skip
        ax.add_patch(circles[node])
        label = _label(node)
        chars = max(len(line) for line in label.split("\n"))
        fits = 1.7 * r * points_per_unit / (0.62 * max(chars, 1))  # average glyph width
        ax.text(x, y, label, ha="center", va="center", zorder=3, color="#222222",
                fontsize=float(np.clip(fits, 6.0, 11.0)))  # fmt: skip
    for u, v in graph.edges:
        hidden = u in latent
        ax.add_patch(
            FancyArrowPatch(
                pos[u], pos[v], patchA=circles[u], patchB=circles[v],
                connectionstyle=f"arc3,rad={bends[(u, v)]}", arrowstyle="-|>",
                mutation_scale=13, linewidth=1.2, color="#777777" if hidden else "#333333",
                linestyle="--" if hidden else "-", shrinkA=0.0, shrinkB=1.0, zorder=1,
                gid=f"edge:{u}->{v}",
            )
        )  # fmt: skip
    return ax


_INSTALL = (
    "pip install graphviz (the Python package) and the Graphviz 'dot' program: "
    "apt-get install graphviz, brew install graphviz or conda install graphviz; or draw the "
    "graph without them with pyrocausal.plotting.plot_graph(scm)"
)


def render_scm(
    scm: Any,
    filename: str | os.PathLike | None = None,
    *,
    num_rows: int = 1,
    render_distributions: bool = False,
    render_params: bool = False,
) -> Any:
    """The SCM's Pyro program drawn by :func:`pyro.render_model` (Graphviz).

    Every node is a sample site inside the ``rows`` plate; observed nodes are shaded (the
    program is run conditioned on one simulated row, so the edges are the dependencies Pyro
    traces through the mechanisms, not a copy of the declared graph); latent nodes are not.

    Arguments:
        scm: An :class:`~pyrocausal.SCM` (fitted or not).
        filename: Also write the drawing there; the suffix names the format (``.svg``,
            ``.png``, ``.pdf``, ...).
        num_rows: Rows the program is traced with.
        render_distributions: Add each site's distribution.
        render_params: Add the program's Pyro parameters.

    Returns:
        The :class:`graphviz.Digraph` (shown as SVG in a notebook).

    Raises:
        ImportError: the ``graphviz`` Python package or the Graphviz ``dot`` program is
            missing (there is no silent fallback: the message says what to install, and
            :func:`plot_graph` draws the graph with matplotlib alone).
        ValueError: ``filename`` has no suffix or one Graphviz does not write.
    """
    import pyro
    import torch

    graphviz = _require_graphviz()
    if filename is not None:
        suffix = os.path.splitext(os.fspath(filename))[1][1:].lower()
        if suffix not in graphviz.FORMATS:
            raise ValueError(
                f"cannot tell the format of filename {os.fspath(filename)!r} from its suffix; "
                "use one such as .svg, .png or .pdf"
            )
    observed = set(scm.graph.observed)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone
        row = scm.model(num_rows=num_rows)
    data = {n: v.detach() for n, v in row.items() if n in observed}
    return pyro.render_model(
        scm.model,
        model_kwargs={"data": data, "num_rows": num_rows},
        filename=None if filename is None else os.fspath(filename),
        render_distributions=render_distributions,
        render_params=render_params,
    )


def _require_graphviz():  # noqa: ANN202
    """The ``graphviz`` module, once the package and its ``dot`` program are both found."""
    try:
        import graphviz
    except ImportError as error:
        raise ImportError(f"rendering the Pyro program needs Graphviz: {_INSTALL}") from error
    try:
        graphviz.version()
    except (graphviz.ExecutableNotFound, OSError) as error:
        raise ImportError(
            f"the Graphviz 'dot' program was not found on PATH ({error}); {_INSTALL}"
        ) from error
    return graphviz


def _label(node: str, width: int = 6) -> str:
    """A long name broken in two at the separator (``_``, space, ``-``) nearest its middle."""
    cuts = [i for i, c in enumerate(node) if c in "_ -"]
    if len(node) <= width or not cuts:
        return node
    cut = min(cuts, key=lambda i: abs(2 * i - len(node)))
    return node[:cut] + "\n" + node[cut + 1 :]


def _as_graph(graph: Any) -> CausalGraph:
    """The causal graph of a graph, an SCM-like object (``.graph``) or a graph spec."""
    if isinstance(graph, CausalGraph):
        return graph
    inner = getattr(graph, "graph", None)
    if isinstance(inner, CausalGraph):
        return inner
    return CausalGraph(graph)


def plot_interventional(
    observational: pd.DataFrame,
    interventional: pd.DataFrame,
    variables: Sequence[str] | None = None,
    label: str = "do(...)",
    ax=None,  # noqa: ANN001
):  # noqa: ANN201
    """Histogram of each variable under the intervention against its observational one."""
    variables = list(variables or interventional.columns)
    fig, axes = _axes(ax, ncols=len(variables))
    for a, var in zip(axes, variables):
        bins = np.histogram_bin_edges(
            np.concatenate([observational[var], interventional[var]]), bins=40
        )
        a.hist(observational[var], bins=bins, alpha=0.5, density=True, label="observational")
        a.hist(interventional[var], bins=bins, alpha=0.5, density=True, label=label)
        a.set_xlabel(var)
    axes[0].legend()
    fig.tight_layout()
    return axes


def plot_counterfactuals(
    factual: pd.DataFrame,
    counterfactual: pd.DataFrame,
    truth: pd.DataFrame | None = None,
    variables: Sequence[str] | None = None,
    title: str | None = None,
    ax=None,  # noqa: ANN001
):  # noqa: ANN201
    """Scatter of each variable's factual value against its counterfactual value.

    With ``truth`` (ground-truth counterfactuals, e.g. from a synthetic SCM) a second panel
    row shows the predicted against the true counterfactual, with the identity line.

    Example:
        >>> import pandas as pd
        >>> f = pd.DataFrame({"y": [0.0, 1.0, 2.0]})
        >>> axes = plot_counterfactuals(f, f + 1, truth=f + 1.1)
        >>> len(axes)
        2
    """
    import matplotlib.pyplot as plt

    variables = list(variables or counterfactual.columns)
    rows = 1 if truth is None else 2
    if ax is None:
        fig, grid = plt.subplots(
            rows, len(variables), figsize=(3.6 * len(variables), 3.3 * rows), squeeze=False
        )
    else:
        grid = np.atleast_2d(ax)
        fig = grid.flat[0].figure
    for j, var in enumerate(variables):
        a = grid[0, j]
        a.scatter(factual[var], counterfactual[var], s=6, alpha=0.6)
        lims = [min(factual[var].min(), counterfactual[var].min()),
                max(factual[var].max(), counterfactual[var].max())]  # fmt: skip
        a.plot(lims, lims, color="grey", lw=0.8, ls="--")
        a.set_xlabel(f"factual {var}")
        a.set_ylabel(f"counterfactual {var}")
        if truth is not None:
            b = grid[1, j]
            b.scatter(truth[var], counterfactual[var], s=6, alpha=0.6, color="C2")
            lims = [truth[var].min(), truth[var].max()]
            b.plot(lims, lims, color="grey", lw=0.8, ls="--")
            rmse = float(np.sqrt(np.mean((truth[var] - counterfactual[var]) ** 2)))
            b.set_title(f"RMSE {rmse:.3f}", fontsize=9)
            b.set_xlabel(f"true counterfactual {var}")
            b.set_ylabel(f"predicted {var}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return grid.ravel() if rows == 1 else grid[:, 0]
