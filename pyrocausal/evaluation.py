r"""Evaluation of a fitted SCM on held-out rows, in the spirit of DoWhy's ``evaluate_causal_model``.

:func:`evaluate` runs five checks and returns an :class:`EvaluationReport` of tidy tables:

1. **Held-out log-likelihood** per node: the mechanism's log density of each node given its
   parents, in original units, with its standard error, beside a linear-Gaussian
   regression on the parents (the node's marginal Gaussian for a root), cross-fitted on the
   same rows (5 folds) so that it is itself held out. A mechanism should not be worse than
   this trivial model; ``passed`` is ``difference > -2 SE`` (paired over rows).
2. **Observational consistency**: ``num_samples`` model draws against the rows. Per node,
   the two-sample Kolmogorov-Smirnov test and the Wasserstein distance in units of the
   node's sd; per pair of nodes, the Pearson correlation of the draws against that of the
   data (a z test of equal correlations whose variances come from the samples' fourth
   moments, so it holds for non-normal data); and the joint MMD (Gaussian kernel on
   standardized columns, median bandwidth, permutation p-value).
3. **Interventional consistency without interventional data**: for every edge ``x -> y``
   and a few quantiles ``v`` of ``x``, the model's ``E[y | do(x = v)]`` (``num_samples``
   draws) against the back-door estimate from the data, ``mean_i m(v, pa_i(x))`` with ``m``
   a kernel-ridge regression of ``y`` on ``x`` and ``pa(x)`` and the average over the data's
   rows (its SE from the smoother's weights and leave-one-out residuals, plus the spread
   over rows; the regression's bias is not in it). *Assumes* the model's graph (``pa(x)``
   blocks every back-door path only when the graph is right and no variable is hidden) and
   positivity: ``v`` must be plausible given each row's ``pa(x)``, or the regression
   extrapolates. The ``overlap`` column is the share of rows where ``v`` lies within two
   residual sd of the regression of ``x`` on ``pa(x)``; below ``min_overlap`` the row is
   reported but not tested (``tested`` False), which in practice leaves mostly the edges
   out of roots and weakly determined parents. It tests whether the fitted mechanisms,
   composed, reproduce an effect that the data identify; a model can pass it with a wrong
   graph. ``passed`` unless the row is tested and its difference is both significant (Holm
   over the table) and larger than ``effect_tolerance`` sd of ``y`` (default 0.25). The
   tolerance is there because the SE leaves out the choice of the regression's bandwidth
   and its smoothing bias: on correct models of three built-in SCMs (500 rows) the back-door
   estimate's error was 1.3 of its SE in sd, up to 0.27 sd of ``y``, so this check finds
   gross errors of a mechanism's effect, not small ones.
4. **Noise independence**: the abducted noise of each node (:meth:`SCM.abduct
   <pyrocausal.models.SCM.abduct>`) against its parents, by HSIC (gamma approximation;
   :func:`~pyrocausal.independence.hsic_test`). The mechanism of a node is a valid
   counterfactual model only if its noise is independent of its parents; a mechanism too
   simple for the data (a linear fit of a curved or heteroscedastic relation) leaves the
   parents' signal in its noise. Holm-adjusted over the nodes.
5. **Graph falsification**: the local Markov independences of the model's graph tested on
   the rows, with the permutation baseline of DoWhy's ``falsify_graph``
   (:func:`~pyrocausal.falsification.falsify_graph`).

Every check should run on rows the model was not fitted on; on its training rows the
likelihood and the noise test are optimistic. Each table has a ``passed`` column;
:meth:`EvaluationReport.to_frame` stacks them into one long table.

Example:
    >>> import pyrocausal as pc
    >>> from pyrocausal.datasets import load_scm
    >>> truth = load_scm("chain_linear")
    >>> scm = pc.SCM(truth.graph, mechanisms=pc.LinearGaussian())
    >>> _ = scm.fit(truth.sample(1000, seed=0), epochs=5, progress=False, seed=0)
    >>> report = pc.evaluate(scm, truth.sample(300, seed=2), num_samples=500, falsify=False)
    >>> report.noise_independence["passed"].all()
    np.True_
    >>> report.to_frame().columns.tolist()
    ['check', 'node', 'other', 'statistic', 'p_value', 'passed', 'detail']
"""

from __future__ import annotations

__all__ = ["EvaluationReport", "evaluate"]

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from pyrocausal.falsification import GraphFalsification, falsify_graph
from pyrocausal.independence import KernelRidge, holm, hsic_test, mmd_test

if TYPE_CHECKING:
    from pyrocausal.models import SCM

_CHECKS = (
    "log_likelihood",
    "marginals",
    "dependence",
    "joint",
    "interventional",
    "noise_independence",
    "falsification",
)


@dataclass
class EvaluationReport:
    """Tables of :func:`evaluate`; each has a boolean ``passed`` column.

    Attributes:
        log_likelihood: Per node: ``log_lik`` (mean held-out log density of the mechanism)
            and ``se``, the cross-fitted linear-Gaussian ``baseline`` and its ``baseline_se``,
            ``difference`` (model minus baseline) with its paired ``difference_se``.
        marginals: Per node: ``ks`` statistic, ``p_value``, Holm ``p_adjusted``,
            ``wasserstein`` (in sd of the data), ``passed``.
        dependence: Per pair of nodes: ``corr_data``, ``corr_model``, ``z``,
            ``p_value``, ``p_adjusted``, ``passed``.
        joint: One row: ``mmd`` (squared, biased) between model draws and the rows and its
            permutation ``p_value``.
        interventional: Per edge ``x -> y`` and quantile: ``value`` of ``do(x = value)``,
            ``model`` and ``model_se``, back-door ``data`` and ``data_se``, ``difference`` in
            sd of ``y``, ``p_value``, ``adjustment`` (the set ``pa(x)``), ``overlap``,
            ``p_adjusted``, ``tested``, ``passed``.
        noise_independence: Per node with parents: HSIC ``statistic``, ``p_value``,
            ``p_adjusted``, ``passed``.
        falsification: The graph's :class:`~pyrocausal.falsification.GraphFalsification`
            (``None`` when ``falsify=False``).
        alpha: Level of every test.
        num_rows: Rows evaluated.
        nodes: The model's nodes.

    Example:
        >>> import numpy as np, pandas as pd
        >>> import pyrocausal as pc
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=700)
        >>> rows = pd.DataFrame({"a": a, "b": a**2 + 0.5 * rng.normal(size=700)})
        >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms=pc.LinearGaussian())  # too simple
        >>> _ = scm.fit(rows[:500], epochs=1, progress=False, seed=0)
        >>> report = pc.evaluate(scm, rows[500:], num_samples=500, falsify=False)
        >>> report.passed
        False
        >>> bool(report.noise_independence.loc["b", "passed"])  # a line leaves a^2 in b's noise
        False
        >>> sorted(report.to_frame().query("not passed")["check"].unique())
        ['interventional', 'joint', 'marginal', 'noise_independence']
        >>> len(report.plot().axes)
        6
    """

    log_likelihood: pd.DataFrame
    marginals: pd.DataFrame
    dependence: pd.DataFrame
    joint: pd.DataFrame
    interventional: pd.DataFrame
    noise_independence: pd.DataFrame
    falsification: GraphFalsification | None
    alpha: float
    num_rows: int
    nodes: tuple[str, ...] = field(default=())

    # ---------------------------------------------------------------- tables
    def to_frame(self) -> pd.DataFrame:
        """One long table: one row per check and node (or pair, edge, implied independence).

        Columns: ``check``, ``node``, ``other`` (the partner node, the intervened parent,
        or the independence's partner), ``statistic``, ``p_value`` (adjusted where the
        check adjusts), ``passed`` and ``detail``.
        """
        rows: list[dict[str, Any]] = []
        for node, r in self.log_likelihood.iterrows():
            rows.append(
                _row(
                    "log_likelihood", node, "", r["difference"], np.nan, r["passed"],
                    f"{r['log_lik']:.3f} ± {r['se']:.3f} vs linear-Gaussian "
                    f"{r['baseline']:.3f} (difference {r['difference']:+.3f} "
                    f"± {r['difference_se']:.3f})",
                )
            )  # fmt: skip
        for node, r in self.marginals.iterrows():
            rows.append(
                _row("marginal", node, "", r["ks"], r["p_adjusted"], r["passed"],
                     f"KS {r['ks']:.3f}, Wasserstein {r['wasserstein']:.3f} sd")
            )  # fmt: skip
        for _, r in self.dependence.iterrows():
            rows.append(
                _row("dependence", r["node"], r["other"], r["z"], r["p_adjusted"], r["passed"],
                     f"corr data {r['corr_data']:+.3f}, model {r['corr_model']:+.3f}")
            )  # fmt: skip
        for _, r in self.joint.iterrows():
            rows.append(
                _row("joint", "all", "", r["mmd"], r["p_value"], r["passed"], "MMD, permutation")
            )
        for _, r in self.interventional.iterrows():
            rows.append(
                _row("interventional", r["node"], r["parent"], r["difference"], r["p_adjusted"],
                     r["passed"],
                     f"E[{r['node']} | do({r['parent']}={r['value']:.3g})]: model "
                     f"{r['model']:.3f}, back-door {r['data']:.3f} ± {r['data_se']:.3f}"
                     + ("" if r["tested"] else f"; not tested: overlap {r['overlap']:.2f}"))
            )  # fmt: skip
        for node, r in self.noise_independence.iterrows():
            rows.append(
                _row("noise_independence", node, r["parents"], r["statistic"], r["p_adjusted"],
                     r["passed"], f"HSIC of the abducted noise and ({r['parents']})")
            )  # fmt: skip
        if self.falsification is not None:
            for _, r in self.falsification.tests.iterrows():
                given = f" | {r['given']}" if r["given"] else ""
                rows.append(
                    _row("falsification", r["node"], r["other"], r["statistic"], r["p_adjusted"],
                         r["passed"], f"{r['node']} ⊥ {r['other']}{given}")
                )  # fmt: skip
            f = self.falsification
            rows.append(
                _row("falsification", "graph", "", f.fraction_violated, f.p_value,
                     not f.falsified, f.verdict)
            )  # fmt: skip
        return pd.DataFrame(rows, columns=list(_row("", "", "", 0.0, 0.0, True, "")))

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return bool(self.to_frame()["passed"].all())

    def summary(self) -> str:
        """A few lines: each check's passes, and what failed."""
        table = self.to_frame()
        lines = [
            f"EvaluationReport: {self.num_rows} rows, {len(self.nodes)} nodes, alpha={self.alpha:g}"
        ]
        for check, group in table.groupby("check", sort=False):
            failed = group[~group["passed"].astype(bool)]
            line = f"  {check:19s} {len(group) - len(failed)}/{len(group)} passed"
            if len(failed):
                names = [
                    f"{n}~{o}" if o else str(n) for n, o in zip(failed["node"], failed["other"])
                ]
                line += "; failed: " + ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
            lines.append(line)
        if self.falsification is not None:
            lines.append(f"  graph: {self.falsification.verdict}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    # ---------------------------------------------------------------- plot
    def plot(self, figsize: tuple[float, float] = (13.0, 7.5)):  # noqa: ANN201
        """A figure of six panels: likelihood, marginals, dependence, interventions, noise, graph.

        Returns the :class:`matplotlib.figure.Figure`.
        """
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 3, figsize=figsize)
        ax = axes[0, 0]
        ll = self.log_likelihood
        x = np.arange(len(ll))
        ax.bar(x - 0.2, ll["log_lik"], 0.4, yerr=2 * ll["se"], label="mechanism")
        ax.bar(x + 0.2, ll["baseline"], 0.4, yerr=2 * ll["baseline_se"], label="linear-Gaussian")
        ax.set_xticks(x, ll.index)
        ax.set_ylabel("held-out log-likelihood per row")
        ax.set_title("1. log-likelihood (±2 SE)")
        ax.legend(fontsize=8)

        ax = axes[0, 1]
        m = self.marginals
        ax.bar(m.index, m["wasserstein"], color=_colors(m["passed"]))
        ax.set_ylabel("Wasserstein distance (data sd)")
        ax.set_title("2. marginals: model draws vs data")

        ax = axes[0, 2]
        d = self.dependence
        ax.scatter(d["corr_data"], d["corr_model"], c=_colors(d["passed"]))
        for _, r in d.iterrows():
            ax.annotate(f"{r['node']},{r['other']}", (r["corr_data"], r["corr_model"]), fontsize=7)
        ax.plot([-1, 1], [-1, 1], color="grey", lw=0.8)
        ax.set_xlabel("correlation in the data")
        ax.set_ylabel("correlation of model draws")
        ax.set_title("2. pairwise dependence")

        ax = axes[1, 0]
        iv = self.interventional
        if len(iv):
            ax.errorbar(iv["data"], iv["model"], xerr=2 * iv["data_se"], fmt="none", ecolor="grey")
            ax.scatter(iv["data"], iv["model"], c=_colors(iv["passed"]), zorder=3)
            lo = float(min(iv["data"].min(), iv["model"].min()))
            hi = float(max(iv["data"].max(), iv["model"].max()))
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        else:
            ax.text(0.5, 0.5, "no edges", ha="center", transform=ax.transAxes)
        ax.set_xlabel("back-door estimate from the data")
        ax.set_ylabel("model E[y | do(x)]")
        ax.set_title("3. interventional means, per edge")

        ax = axes[1, 1]
        ni = self.noise_independence
        if len(ni):
            score = -np.log10(np.clip(ni["p_adjusted"].astype(float), 1e-16, 1))
            ax.bar(ni.index, score, color=_colors(ni["passed"]))
        else:
            ax.text(0.5, 0.5, "no node has parents", ha="center", transform=ax.transAxes)
        ax.axhline(-np.log10(self.alpha), color="k", ls="--", lw=0.8, label=f"alpha={self.alpha:g}")
        ax.set_ylabel("-log10 p (Holm)")
        ax.set_title("4. noise ⊥ parents (HSIC)")
        ax.legend(fontsize=8)

        ax = axes[1, 2]
        f = self.falsification
        if f is not None and len(f.tests) and len(f.permutations) > 1:
            ax.hist(f.permutations["fraction"].iloc[1:], bins=np.linspace(0, 1, 11), color="grey",
                    label="relabeled graphs")  # fmt: skip
            ax.axvline(f.fraction_violated, color="C3", lw=2, label="this graph")
            ax.set_xlabel("share of implied independences violated")
            ax.set_ylabel("graphs")
            ax.legend(fontsize=8)
        else:
            text = "not run" if f is None else f.verdict
            ax.text(0.5, 0.5, text, ha="center", wrap=True, transform=ax.transAxes, fontsize=8)
        ax.set_title("5. graph falsification")
        fig.tight_layout()
        return fig


def _row(
    check: str, node: Any, other: Any, statistic: Any, p: Any, passed: Any, detail: str
) -> dict:
    return {
        "check": check,
        "node": str(node),
        "other": str(other),
        "statistic": float(statistic),
        "p_value": float(p),
        "passed": bool(passed),
        "detail": detail,
    }


def _colors(passed: pd.Series) -> list[str]:
    return ["C0" if p else "C3" for p in passed]


# -------------------------------------------------------------------- evaluate
def evaluate(
    scm: SCM,
    data: pd.DataFrame,
    *,
    alpha: float = 0.05,
    num_samples: int = 2000,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    effect_tolerance: float = 0.25,
    min_overlap: float = 0.9,
    max_rows: int = 500,
    max_edges: int = 20,
    falsify: bool = True,
    falsify_options: dict[str, Any] | None = None,
    seed: int = 0,
) -> EvaluationReport:
    """Evaluate a fitted SCM on held-out rows (see the module docstring for each check).

    Arguments:
        scm: A fitted :class:`~pyrocausal.SCM` without latent nodes.
        data: Held-out rows, one column per node; never modified.
        alpha: Level of every test (Holm-adjusted within each table).
        num_samples: Model draws for the observational and interventional checks.
        quantiles: Quantiles of each parent at which ``do(parent = value)`` is compared.
        effect_tolerance: Smallest interventional difference, in sd of the child, that
            fails the check (with significance; see the module docstring for why 0.25).
        min_overlap: Share of rows whose ``pa(x)`` make ``x = value`` plausible (within two
            residual sd of the regression of ``x`` on ``pa(x)``) below which an
            interventional comparison is reported but not tested (``tested`` is False): the
            back-door estimate would extrapolate.
        max_rows: Rows used by the kernel tests and regressions (a random subset of larger
            data; the likelihood and the marginals use every row).
        max_edges: Edges checked interventionally (the first in graph order).
        falsify: Run the graph falsification (the slowest part on large graphs).
        falsify_options: Keyword arguments of
            :func:`~pyrocausal.falsification.falsify_graph` (``num_permutations``,
            ``max_tests``, ``max_rows``, ``method``, ...).
        seed: Seed of every draw, subset, permutation and bootstrap.

    Raises:
        RuntimeError: the SCM is not fitted.
        ValueError: a node's column is missing, has NaN or is not numeric (named), the
            graph has latent nodes, or there are fewer than 20 rows.

    Example:
        >>> import pyrocausal as pc
        >>> from pyrocausal.datasets import load_scm
        >>> truth = load_scm("collider_linear")
        >>> scm = pc.SCM(truth.graph, mechanisms=pc.LinearGaussian())
        >>> _ = scm.fit(truth.sample(1000, seed=0), epochs=5, progress=False, seed=0)
        >>> report = pc.evaluate(scm, truth.sample(300, seed=1), num_samples=500)
        >>> report.log_likelihood.index.tolist()
        ['x1', 'x2', 'x3']
        >>> report.falsification.falsified
        False
    """
    from pyrocausal.validation import check_frame

    if not bool(getattr(scm, "fitted", False)):
        raise RuntimeError("this SCM has not been fitted yet; call scm.fit(data) first")
    if scm.graph.latent:
        raise ValueError(
            f"evaluate needs every node observed; the graph has latent node(s) "
            f"{list(scm.graph.latent)}"
        )
    frame = check_frame(data, scm.graph.nodes, what="data")
    if len(frame) < 20:
        raise ValueError(f"evaluate needs at least 20 rows, got {len(frame)}")
    rng = np.random.default_rng(seed)
    sub = frame
    if len(frame) > max_rows:
        sub = frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]
    draws = scm.sample(num_samples, seed=seed)
    marginals, dependence, joint = _observational(frame, draws, alpha, max_rows, rng)
    falsification = None
    if falsify:
        falsification = falsify_graph(
            scm.graph, sub, **{"alpha": alpha, "seed": seed, **(falsify_options or {})}
        )
    return EvaluationReport(
        log_likelihood=_log_likelihood(scm, frame),
        marginals=marginals,
        dependence=dependence,
        joint=joint,
        interventional=_interventional(
            scm, sub, alpha, num_samples, quantiles, effect_tolerance, min_overlap, max_edges, seed
        ),
        noise_independence=_noise_independence(scm, sub, alpha),
        falsification=falsification,
        alpha=alpha,
        num_rows=len(frame),
        nodes=tuple(scm.graph.nodes),
    )


# -------------------------------------------------------------------- the checks
def _log_likelihood(scm: SCM, frame: pd.DataFrame) -> pd.DataFrame:
    import torch
    from pyro import poutine

    values = {
        n: torch.as_tensor(frame[n].to_numpy(copy=True), dtype=scm.dtype, device=scm.device)
        for n in scm.graph.nodes
    }
    with torch.no_grad():
        trace = poutine.trace(scm.model).get_trace(values)
        per_node = {
            n: trace.nodes[n]["fn"].log_prob(values[n]).expand(len(frame)).double().cpu().numpy()
            for n in scm.graph.nodes
        }
    n = len(frame)
    folds = np.arange(n) % 5
    np.random.default_rng(0).shuffle(folds)
    rows = []
    for node in scm.graph.nodes:
        lp = per_node[node]
        discrete = bool(getattr(scm.mechanisms.get(node), "discrete", False))
        base = np.full(n, np.nan) if discrete else _gaussian_regression(frame, scm, node, folds)
        diff = lp - base
        rows.append(
            {
                "node": node,
                "log_lik": lp.mean(),
                "se": lp.std(ddof=1) / np.sqrt(n),
                "baseline": base.mean(),
                "baseline_se": base.std(ddof=1) / np.sqrt(n),
                "difference": diff.mean(),
                "difference_se": diff.std(ddof=1) / np.sqrt(n),
            }
        )
    table = pd.DataFrame(rows).set_index("node")
    # Discrete nodes have a probability mass, the baseline a density: nothing to compare.
    table["passed"] = ~(table["difference"] < -2 * table["difference_se"])
    return table


def _gaussian_regression(frame: pd.DataFrame, scm: SCM, node: str, folds: np.ndarray) -> np.ndarray:
    """Cross-fitted log density of a linear-Gaussian regression of ``node`` on its parents."""
    y = frame[node].to_numpy()
    design = np.column_stack(
        [np.ones(len(y))] + [frame[p].to_numpy() for p in scm.graph.parents(node)]
    )
    out = np.empty(len(y))
    for k in np.unique(folds):
        test = folds == k
        coef, *_ = np.linalg.lstsq(design[~test], y[~test], rcond=None)
        resid = y[~test] - design[~test] @ coef
        sd = max(float(resid.std(ddof=design.shape[1])), 1e-12)
        out[test] = stats.norm.logpdf(y[test], design[test] @ coef, sd)
    return out


def _observational(
    frame: pd.DataFrame, draws: pd.DataFrame, alpha: float, max_rows: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    nodes = list(frame.columns)
    rows = []
    for node in nodes:
        a, b = frame[node].to_numpy(), draws[node].to_numpy()
        ks = stats.ks_2samp(a, b)
        sd = a.std() if a.std() > 0 else 1.0
        rows.append(
            {"node": node, "ks": ks.statistic, "p_value": ks.pvalue,
             "wasserstein": stats.wasserstein_distance(a, b) / sd}
        )  # fmt: skip
    marginals = pd.DataFrame(rows).set_index("node")
    marginals["p_adjusted"] = holm(marginals["p_value"])
    marginals["passed"] = marginals["p_adjusted"] >= alpha

    n1, n2 = len(frame), len(draws)
    pairs = []
    for i, u in enumerate(nodes):
        for v in nodes[i + 1 :]:
            r1, t1 = _corr(frame[u].to_numpy(), frame[v].to_numpy())
            r2, t2 = _corr(draws[u].to_numpy(), draws[v].to_numpy())
            z = (r1 - r2) / np.sqrt(t1 / n1 + t2 / n2)
            pairs.append({"node": u, "other": v, "corr_data": r1, "corr_model": r2, "z": z,
                          "p_value": 2 * stats.norm.sf(abs(z))})  # fmt: skip
    dependence = pd.DataFrame(
        pairs, columns=["node", "other", "corr_data", "corr_model", "z", "p_value"]
    )
    dependence["p_adjusted"] = holm(dependence["p_value"]) if len(pairs) else []
    dependence["passed"] = dependence["p_adjusted"] >= alpha

    m = min(max_rows // 2, n1, n2)
    a = frame.to_numpy()[rng.choice(n1, m, replace=False)]
    b = draws[nodes].to_numpy()[rng.choice(n2, m, replace=False)]
    mmd = mmd_test(a, b, seed=int(rng.integers(2**31)))
    joint = pd.DataFrame(
        [{"mmd": mmd.statistic, "p_value": mmd.p_value, "passed": mmd.p_value >= alpha}]
    )
    return marginals, dependence, joint


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pearson correlation and its asymptotic variance times n, without assuming normality.

    ``tau^2 = m22 (1 + r^2 / 2) - r (m31 + m13) + r^2 (m40 + m04) / 4`` with ``m_ij`` the
    moments of the standardized variables (the delta method; ``(1 - r^2)^2`` when normal).
    """
    if a.std() == 0 or b.std() == 0:
        return 0.0, 1.0
    sa, sb = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    r = float(np.clip((sa * sb).mean(), -0.999999, 0.999999))
    m22, m31, m13 = (sa**2 * sb**2).mean(), (sa**3 * sb).mean(), (sa * sb**3).mean()
    m40, m04 = (sa**4).mean(), (sb**4).mean()
    tau2 = m22 * (1 + r**2 / 2) - r * (m31 + m13) + r**2 * (m40 + m04) / 4
    return r, float(max(tau2, 1e-12))


def _interventional(
    scm: SCM,
    frame: pd.DataFrame,
    alpha: float,
    num_samples: int,
    quantiles: Sequence[float],
    tolerance: float,
    min_overlap: float,
    max_edges: int,
    seed: int,
) -> pd.DataFrame:
    rows = []
    for parent, child in list(scm.graph.edges)[:max_edges]:
        adjust = list(scm.graph.parents(parent))
        design = frame[[parent, *adjust]].to_numpy()
        x, y = frame[parent].to_numpy(), frame[child].to_numpy()
        sd_y = y.std() if y.std() > 0 else 1.0
        reg = KernelRidge(design).fit(y)
        if adjust:  # where the data have x near v given each row's pa(x)
            propensity = KernelRidge(frame[adjust].to_numpy()).fit(x)
            centre, spread = x - propensity.residuals, 2.0 * propensity.residuals.std()
        for q in quantiles:
            value = float(np.quantile(x, q))
            at = design.copy()
            at[:, 0] = value
            estimate, data_se = reg.mean_prediction(at)
            overlap = float((np.abs(value - centre) <= spread).mean()) if adjust else 1.0
            draws = scm.do({parent: value}).sample(num_samples, seed=seed)[child].to_numpy()
            model, model_se = float(draws.mean()), float(draws.std(ddof=1) / np.sqrt(num_samples))
            se = np.sqrt(data_se**2 + model_se**2)
            z = (model - estimate) / se if se > 0 else 0.0
            rows.append(
                {"node": child, "parent": parent, "quantile": q, "value": value, "model": model,
                 "model_se": model_se, "data": estimate, "data_se": data_se,
                 "difference": (model - estimate) / sd_y, "p_value": 2 * stats.norm.sf(abs(z)),
                 "adjustment": ", ".join(adjust), "overlap": overlap}
            )  # fmt: skip
    columns = ["node", "parent", "quantile", "value", "model", "model_se", "data", "data_se",
               "difference", "p_value", "adjustment", "overlap"]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    table["p_adjusted"] = holm(table["p_value"]) if len(rows) else []
    table["tested"] = table["overlap"] >= min_overlap
    wrong = (table["p_adjusted"] < alpha) & (table["difference"].abs() > tolerance)
    table["passed"] = ~(wrong & table["tested"])
    return table


def _noise_independence(scm: SCM, frame: pd.DataFrame, alpha: float) -> pd.DataFrame:
    noise = scm.abduct(frame)
    rows = []
    for node in scm.graph.nodes:
        parents = list(scm.graph.parents(node))
        if not parents:
            continue
        r = hsic_test(noise[node].to_numpy(), frame[parents].to_numpy())
        rows.append({"node": node, "parents": ", ".join(parents), "statistic": r.statistic,
                     "p_value": r.p_value})  # fmt: skip
    table = pd.DataFrame(rows, columns=["node", "parents", "statistic", "p_value"]).set_index(
        "node"
    )
    table["p_adjusted"] = holm(table["p_value"]) if len(rows) else []
    table["passed"] = table["p_adjusted"] >= alpha
    return table
