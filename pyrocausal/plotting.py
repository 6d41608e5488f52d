"""Plots for causal questions: graphs, interventional densities, factual vs counterfactual."""

from __future__ import annotations

__all__ = ["plot_counterfactuals", "plot_graph", "plot_interventional"]

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pyrocausal.graph import CausalGraph


def _axes(ax, ncols: int = 1, size: tuple[float, float] = (4.0, 3.5)):  # noqa: ANN001, ANN202
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, np.atleast_1d(ax)
    fig, axes = plt.subplots(1, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)
    return fig, axes[0]


def plot_graph(graph: CausalGraph, ax=None):  # noqa: ANN001, ANN201
    """Draw the causal graph with nodes laid out by topological generation.

    Example:
        >>> import pyrocausal as pc
        >>> ax = plot_graph(pc.CausalGraph({"a": [], "b": ["a"]}))
        >>> sorted(t.get_text() for t in ax.texts)
        ['a', 'b']
    """
    import networkx as nx

    fig, axes = _axes(ax)
    dag = graph.to_networkx()
    for layer, nodes in enumerate(nx.topological_generations(dag)):
        for node in nodes:
            dag.nodes[node]["layer"] = layer
    pos = nx.multipartite_layout(dag, subset_key="layer")
    colors = ["#bbbbbb" if n in graph.latent else "#9ecae1" for n in dag.nodes]
    nx.draw_networkx(dag, pos=pos, ax=axes[0], node_color=colors, node_size=900, arrowsize=16)
    axes[0].set_axis_off()
    return axes[0]


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
