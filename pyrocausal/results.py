"""One result object for interventional and counterfactual answers given as draws.

:class:`CausalQueryResult` holds the draws of a posterior query as pandas frames indexed by
``(row, draw)``, turns them into ArviZ :class:`~arviz.InferenceData` (the answer in
``posterior``, where ``az.summary`` and ``az.plot_posterior`` look by default, the other worlds
in ``factual`` and ``interventional``, the evidence in ``observed_data`` and the inference's
diagnostics in ``sample_stats``, all with a ``row`` coordinate), summarizes them (mean, sd and
highest-density interval per variable and row) and plots them. :class:`ATEResult` is an
average treatment effect that is a ``float`` and carries its standard error and interval.
"""

from __future__ import annotations

__all__ = ["ATEResult", "CausalQueryResult"]

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

Kind = Literal["counterfactual", "interventional"]


class ATEResult(float):
    """An average treatment effect: a ``float`` (the estimate) with its uncertainty.

    Returned by :meth:`SCM.ate <pyrocausal.models.SCM.ate>` and
    :meth:`SCMEnsemble.ate <pyrocausal.models.SCMEnsemble.ate>`. It is the estimate itself
    (``f"{ate:.4f}"``, ``round(ate, 3)``, arithmetic and comparisons work as on a float), with:

    * :attr:`se`: for one SCM, the Monte Carlo standard error of the estimate (the SCM's
      mechanisms taken as known: it shrinks as ``1/sqrt(num_samples)``); for an ensemble,
      the bootstrap standard error, the standard deviation of the members' estimates (the
      uncertainty of the fit, which more draws do not remove).
    * :meth:`interval`: the normal interval ``estimate +- z * se``.
    * :attr:`members`: the members' estimates (an ensemble), else ``None``.

    Arguments:
        estimate: The point estimate.
        se: Its standard error.
        num_samples: Monte Carlo draws per world (per member for an ensemble).
        members: The members' estimates of an ensemble.

    Example:
        >>> ate = ATEResult(2.0, se=0.1, num_samples=1000)
        >>> f"{ate:.4f}", ate + 1.0, ate.estimate
        ('2.0000', 3.0, 2.0)
        >>> [round(x, 3) for x in ate.interval(0.95)]
        [1.804, 2.196]
        >>> ate
        ATEResult(2, se=0.1, 90% interval [1.836, 2.164], num_samples=1000)
    """

    se: float
    num_samples: int
    members: np.ndarray | None

    def __new__(
        cls,
        estimate: float,
        se: float,
        num_samples: int,
        members: Sequence[float] | None = None,
    ) -> ATEResult:
        self = super().__new__(cls, estimate)
        self.se = float(se)
        self.num_samples = int(num_samples)
        self.members = None if members is None else np.asarray(members, dtype=np.float64)
        return self

    @property
    def estimate(self) -> float:
        """The point estimate as a plain float."""
        return float(self)

    def interval(self, prob: float = 0.9) -> tuple[float, float]:
        """The central normal interval ``estimate +- z * se`` holding ``prob``.

        Arguments:
            prob: Coverage of the interval, in (0, 1).

        Returns:
            ``(low, high)``.

        Example:
            >>> [round(x, 3) for x in ATEResult(1.0, se=0.5, num_samples=100).interval(0.5)]
            [0.663, 1.337]
        """
        from scipy.stats import norm

        if not 0.0 < prob < 1.0:
            raise ValueError(f"prob must be in (0, 1), got {prob}")
        half = float(norm.ppf(0.5 + prob / 2)) * self.se
        return self.estimate - half, self.estimate + half

    def __reduce__(self) -> tuple[Any, ...]:
        members = None if self.members is None else self.members.tolist()
        return (ATEResult, (self.estimate, self.se, self.num_samples, members))

    def __str__(self) -> str:
        return float.__repr__(self)

    def __repr__(self) -> str:
        lo, hi = self.interval(0.9)
        extra = f", members={len(self.members)}" if self.members is not None else ""
        return (
            f"ATEResult({self.estimate:.4g}, se={self.se:.2g}, 90% interval [{lo:.4g}, "
            f"{hi:.4g}], num_samples={self.num_samples}{extra})"
        )


class CausalQueryResult:
    r"""Draws that answer an interventional or counterfactual query.

    Made by ``scm.counterfactual(evidence, intervention, num_samples=...)`` and
    ``scm.do(intervention).query(num_samples=...)``.

    Attributes:
        kind: ``"counterfactual"`` or ``"interventional"``.
        samples: The answer: a DataFrame with one column per variable and a
            ``(row, draw)`` MultiIndex (``row`` is the evidence's index; an interventional
            query has the single row ``0``).
        factual: Draws of the factual world in the same layout: the posterior of every
            variable given the row's evidence (observed entries are constant); for an
            interventional query, draws of the observational distribution.
        interventional: For a counterfactual query, the evidence-ignoring answer: draws of
            the intervened model per row (the scale against which the evidence's effect shows).
        evidence: The factual rows as given (NaN where not observed).
        intervention: The intervention.
        diagnostics: Per-row diagnostics of the inference: ``ess`` (the effective sample
            size of the importance weights), ``hidden`` (which variables were hidden),
            ``pattern`` (the row's missingness pattern, numbered in the order abduction met
            them) and, with NUTS, ``r_hat`` and ``ess_bulk`` of the chain (the worst hidden
            coordinate of the row); an ensemble's have a ``member`` column.
        stats: Diagnostics that are not per row, as ``{name: (dims, values)}``: ``elbo``
            ``(missingness_pattern, abduction_step)``, the ELBO trace of SVI abduction per
            missingness pattern (NaN-padded), and ``diverging`` ``(draw,)``, NUTS divergences.
        discrete: The discrete variables.
        info: Method, run time and fit statistics.

    Example:
        >>> import pandas as pd
        >>> index = pd.MultiIndex.from_product([[0, 1], range(4)], names=["row", "draw"])
        >>> draws = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]}, index=index)
        >>> result = CausalQueryResult("interventional", draws)
        >>> result.summary(hdi_prob=0.5)[["mean", "sd"]].round(3)
                  mean     sd
        variable row
        y        0    2.5  1.118
                 1    0.0  0.000
        >>> result.to_inference_data().posterior["y"].dims
        ('chain', 'draw', 'row')
        >>> result.mean()
             y
        row
        0    2.5
        1    0.0
    """

    def __init__(
        self,
        kind: Kind,
        samples: pd.DataFrame,
        *,
        factual: pd.DataFrame | None = None,
        interventional: pd.DataFrame | None = None,
        evidence: pd.DataFrame | None = None,
        intervention: Mapping[str, Any] | None = None,
        diagnostics: pd.DataFrame | None = None,
        stats: Mapping[str, tuple[tuple[str, ...], np.ndarray]] | None = None,
        discrete: Sequence[str] = (),
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if kind not in ("counterfactual", "interventional"):
            raise ValueError(f"kind must be 'counterfactual' or 'interventional', got {kind!r}")
        if not isinstance(samples.index, pd.MultiIndex) or samples.index.nlevels != 2:
            raise ValueError("samples need a (row, draw) MultiIndex")
        self.kind = kind
        self.samples = samples.rename_axis(["row", "draw"])
        self.factual = None if factual is None else factual.rename_axis(["row", "draw"])
        self.interventional = (
            None if interventional is None else interventional.rename_axis(["row", "draw"])
        )
        self.evidence = evidence
        self.intervention = dict(intervention or {})
        self.diagnostics = diagnostics
        self.stats = dict(stats or {})
        self.discrete = tuple(discrete)
        self.info = dict(info or {})

    # ------------------------------------------------------------------ shape
    @property
    def rows(self) -> pd.Index:
        """The row labels (the evidence's index)."""
        return self.samples.index.get_level_values("row").unique()

    @property
    def num_draws(self) -> int:
        """Draws per row."""
        return len(self.samples) // max(1, len(self.rows))

    @property
    def variables(self) -> list[str]:
        """The variables (columns of :attr:`samples`)."""
        return list(self.samples.columns)

    def groups(self) -> dict[str, pd.DataFrame]:
        """The draws by ArviZ group name (the answer under :attr:`kind`).

        Example:
            >>> import pandas as pd
            >>> index = pd.MultiIndex.from_product([[0], range(2)], names=["row", "draw"])
            >>> draws = pd.DataFrame({"y": [1.0, 2.0]}, index=index)
            >>> list(CausalQueryResult("interventional", draws, factual=draws).groups())
            ['interventional', 'factual']
        """
        out = {self.kind: self.samples}
        if self.factual is not None:
            out["factual"] = self.factual
        if self.interventional is not None:
            out["interventional"] = self.interventional
        return out

    def mean(self) -> pd.DataFrame:
        """Posterior mean of every variable per row (probabilities of 1 for binary ones).

        Example:
            >>> import pandas as pd
            >>> index = pd.MultiIndex.from_product([["a", "b"], range(2)], names=["row", "draw"])
            >>> draws = pd.DataFrame({"y": [1.0, 3.0, 0.0, 1.0]}, index=index)
            >>> CausalQueryResult("counterfactual", draws).mean()
                   y
            row
            a    2.0
            b    0.5
        """
        return self.samples.groupby(level="row", sort=False).mean()

    def __repr__(self) -> str:
        iv = ", ".join(f"{k}={v!r}" for k, v in self.intervention.items() if not callable(v))
        return (
            f"CausalQueryResult({self.kind}, do({iv}), {len(self.rows)} row(s) x "
            f"{self.num_draws} draws, variables={self.variables})"
        )

    # ------------------------------------------------------------------ ArviZ
    def _array(self, frame: pd.DataFrame, variable: str) -> np.ndarray:
        wide = frame[variable].unstack("row")  # (draw, row)
        wide = wide.reindex(columns=self.rows)
        return wide.to_numpy(dtype=np.float64)[None]  # (chain, draw, row)

    def to_inference_data(self) -> Any:
        """ArviZ InferenceData of the answer, the other worlds and the diagnostics.

        Every draw variable has dims ``(chain, draw, row)`` (one chain; ``row`` is the
        evidence's index). Groups:

        * ``posterior``: the answer (counterfactual or interventional draws) of every
          variable that varies over the draws in at least one row, so that
          ``az.summary(idata)`` and ``az.plot_posterior(idata)`` show it with no arguments.
          Variables held constant in every row (intervened on, or observed and not changed)
          are left out here: they have no posterior spread, and ArviZ's diagnostics divide
          by it.
        * ``counterfactual`` or ``interventional`` (after :attr:`kind`): the answer with
          every variable, the same draws.
        * ``factual``: posterior draws of the factual world (observational draws for an
          interventional query).
        * ``interventional`` beside a counterfactual answer: the evidence-ignoring answer.
        * ``observed_data``: the evidence, NaN where not observed (dim ``row``).
        * ``sample_stats``: the per-row :attr:`diagnostics` (``ess``, ``pattern``,
          ``hidden`` ...; dim ``row``, with a leading ``member`` dim for an ensemble) and
          :attr:`stats` (``elbo`` ``(missingness_pattern, abduction_step)``, ``diverging`` ``(chain,
          draw)``).

        Example:
            >>> import pandas as pd
            >>> import arviz as az
            >>> index = pd.MultiIndex.from_product([["a", "b"], range(3)], names=["row", "draw"])
            >>> draws = pd.DataFrame({"t": 1.0, "y": [0.0, 1.0, 2.0, 5.0, 5.0, 5.0]}, index=index)
            >>> idata = CausalQueryResult("interventional", draws).to_inference_data()
            >>> idata.groups()
            ['posterior', 'interventional']
            >>> list(idata.posterior.data_vars), dict(idata.posterior.sizes)
            (['y'], {'chain': 1, 'draw': 3, 'row': 2})
            >>> az.summary(idata, kind="stats")["mean"].to_dict()
            {'y[a]': 1.0, 'y[b]': 5.0}
        """
        import arviz as az
        import xarray as xr

        coords = {"chain": [0], "draw": np.arange(self.num_draws), "row": np.asarray(self.rows)}
        attrs = {"intervention": repr(self.intervention), "kind": self.kind}

        def dataset(frame: pd.DataFrame, names: Sequence[str]) -> Any:
            return xr.Dataset(
                {v: (("chain", "draw", "row"), self._array(frame, v)) for v in names},
                coords=coords,
                attrs=attrs,
            )

        varying = [v for v in self.variables if self._varies(self.samples, v)]
        groups = {"posterior": dataset(self.samples, varying)}
        for name, frame in self.groups().items():
            groups[name] = dataset(frame, list(frame.columns))
        if self.evidence is not None:
            groups["observed_data"] = xr.Dataset(
                {v: (("row",), self.evidence[v].to_numpy(np.float64)) for v in self.evidence},
                coords={"row": np.asarray(self.evidence.index)},
            )
        stats = self._sample_stats()
        if stats is not None:
            groups["sample_stats"] = stats
        return az.InferenceData(**groups)

    @staticmethod
    def _varies(frame: pd.DataFrame, variable: str) -> bool:
        spread = frame[variable].groupby(level="row", sort=False).agg(lambda x: x.max() - x.min())
        return bool((spread > 0).any())

    def _sample_stats(self) -> Any:
        import xarray as xr

        variables: dict[str, Any] = {}
        coords: dict[str, Any] = {"chain": [0], "draw": np.arange(self.num_draws)}
        if self.diagnostics is not None:
            table = self.diagnostics
            coords["row"] = np.asarray(self.rows)
            if "member" in table:
                members = np.unique(table["member"].to_numpy())
                coords["member"] = members
                long = table.rename_axis("row").reset_index()
                for column in table.columns.drop("member"):
                    wide = long.pivot(index="member", columns="row", values=column)
                    wide = wide.reindex(index=members, columns=self.rows).to_numpy()
                    variables[column] = (("member", "row"), _plain(wide))
            else:
                table = table.reindex(self.rows)
                for column in table.columns:
                    variables[column] = (("row",), _plain(table[column].to_numpy()))
        for name, (dims, values) in self.stats.items():
            values = np.asarray(values)
            if dims and dims[0] == "draw":  # per-draw statistics get ArviZ's chain dim
                dims, values = ("chain", *dims), values[None]
            variables[name] = (dims, values)
        if not variables:
            return None
        used = {d for dims, _ in variables.values() for d in dims}
        coords = {k: v for k, v in coords.items() if k in used}
        return xr.Dataset(
            variables, coords=coords, attrs={"method": str(self.info.get("method", ""))}
        )

    def summary(
        self,
        hdi_prob: float = 0.9,
        group: str | None = None,
        variables: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Mean, sd and highest-density interval per variable and row.

        Arguments:
            hdi_prob: Probability mass of the interval.
            group: ``"counterfactual"``, ``"factual"`` or ``"interventional"`` (default:
                the answer, :attr:`kind`).
            variables: Variables to include (default: all).

        Returns:
            A DataFrame indexed by ``(variable, row)`` with columns ``mean``, ``sd``,
            ``hdi_<lo>%`` and ``hdi_<hi>%``, plus ``factual`` (the observed value, NaN where
            not observed) for counterfactual answers.

        Example:
            >>> import numpy as np, pandas as pd
            >>> index = pd.MultiIndex.from_product([["a"], range(10)], names=["row", "draw"])
            >>> draws = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 30]}, index=index)
            >>> evidence = pd.DataFrame({"y": [0.5]}, index=["a"])
            >>> result = CausalQueryResult("counterfactual", draws, evidence=evidence)
            >>> result.summary(hdi_prob=0.8)   # the shortest interval with 8 of the 10 draws
                          mean        sd  hdi_10%  hdi_90%  factual
            variable row
            y        a     7.5  7.889867      1.0      9.0      0.5
        """
        import arviz as az

        if not 0.0 < hdi_prob < 1.0:
            raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob}")
        group = group or self.kind
        frames = self.groups()
        if group not in frames:
            raise ValueError(f"no group {group!r}; this result has {sorted(frames)}")
        frame = frames[group]
        names = list(variables) if variables is not None else list(frame.columns)
        lo, hi = (1 - hdi_prob) / 2 * 100, (1 + hdi_prob) / 2 * 100
        pieces = []
        for v in names:
            draws = self._array(frame, v)[0]  # (draw, row)
            interval = az.hdi(draws[None], hdi_prob=hdi_prob)  # (row, 2)
            table = pd.DataFrame(
                {
                    "mean": draws.mean(0),
                    "sd": draws.std(0),
                    f"hdi_{lo:g}%": interval[:, 0],
                    f"hdi_{hi:g}%": interval[:, 1],
                },
                index=pd.Index(self.rows, name="row"),
            )
            if group == "counterfactual" and self.evidence is not None and v in self.evidence:
                table["factual"] = self.evidence[v].reindex(self.rows).to_numpy(np.float64)
            table.insert(0, "variable", v)
            pieces.append(table.reset_index())
        return pd.concat(pieces).set_index(["variable", "row"])

    # ------------------------------------------------------------------ plots
    def _outcome(self) -> str:
        for v in reversed(self.variables):
            if v not in self.intervention:
                return v
        return self.variables[-1]

    def plot(
        self, variable: str | None = None, rows: Sequence[Any] | None = None, max_rows: int = 6
    ) -> np.ndarray:
        """Plot the answer.

        A counterfactual result: one panel per row with the counterfactual distribution of
        ``variable`` (histograms scaled to a peak of 1; one far narrower than the
        evidence-ignoring answer as its 90% band), the factual value (a line; dashed and
        from the posterior mean where it was not observed) and the evidence-ignoring
        interventional distribution in grey. An
        interventional result: one panel per variable, interventional against observational
        density.

        Arguments:
            variable: The variable of a counterfactual plot (default: the last variable that
                is not intervened on, usually the outcome).
            rows: Rows to plot (default: the first ``max_rows``).
            max_rows: Number of rows when ``rows`` is not given.

        Returns:
            The array of matplotlib axes.

        Example:
            >>> import matplotlib.pyplot as plt
            >>> import pyrocausal as pc
            >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
            >>> axes = scm.do({"a": 2.0}).query(num_samples=200, seed=0).plot()
            >>> [ax.get_title() for ax in axes]    # b, against its observational density
            ['b']
            >>> plt.close("all")
        """
        import matplotlib.pyplot as plt

        if self.kind == "interventional":
            names = [v for v in self.variables if v not in self.intervention] or self.variables
            fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
            for ax, v in zip(axes[0], names):
                self._density(ax, self.samples[v], v, "interventional", "C1")
                if self.factual is not None:
                    self._density(ax, self.factual[v], v, "observational", "0.5")
                ax.set_title(v)
            axes[0, 0].legend(fontsize=8)
            fig.suptitle(f"do({self._iv_label()})")
            fig.tight_layout()
            return axes[0]
        variable = variable or self._outcome()
        chosen = list(rows) if rows is not None else list(self.rows[:max_rows])
        cols = min(3, len(chosen))
        nrows = -(-len(chosen) // cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 2.6 * nrows), squeeze=False)
        for ax, row in zip(axes.flat, chosen):
            naive = None
            if self.interventional is not None:
                naive = self.interventional.xs(row, level="row")[variable]
            self._density(
                ax,
                self.samples.xs(row, level="row")[variable],
                variable,
                "counterfactual",
                "C1",
                within=None if naive is None else float(np.ptp(naive.to_numpy(np.float64))),
                scaled=True,
            )
            if naive is not None:
                self._density(ax, naive, variable, "ignoring evidence", "0.6", scaled=True)
            seen = None
            if self.evidence is not None and variable in self.evidence:
                seen = self.evidence.loc[row, variable]
            if seen is not None and np.isfinite(seen):
                ax.axvline(seen, color="k", lw=1.5, label="factual (observed)")
            elif self.factual is not None:
                guess = float(self.factual.xs(row, level="row")[variable].mean())
                ax.axvline(guess, color="k", lw=1.2, ls="--", label="factual (posterior mean)")
            ax.set_title(f"row {row}", fontsize=9)
        for ax in axes.flat[len(chosen) :]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"{variable} under do({self._iv_label()})")
        fig.tight_layout()
        return axes

    def _iv_label(self) -> str:
        parts = []
        for k, v in self.intervention.items():
            if callable(v):
                parts.append(f"{k}=f({k})")
            elif np.ndim(v) == 0:
                parts.append(f"{k}={float(v):g}")
            else:
                parts.append(f"{k}=per row")
        return ", ".join(parts)

    def _density(
        self,
        ax: Any,
        draws: pd.Series,
        variable: str,
        label: str,
        color: str,
        within: float | None = None,
        scaled: bool = False,
    ) -> None:
        """Draws of ``variable`` on ``ax``; ``within``: the range of the other distribution
        in the panel, beside which a far narrower one is drawn as its 90% band; ``scaled``:
        a histogram whose highest bar is 1 (a narrow answer beside a wide one stays
        readable, its peak does not flatten the other)."""
        values = draws.to_numpy(np.float64)
        if variable in self.discrete:
            levels, counts = np.unique(values, return_counts=True)
            width = 0.35
            shift = -width / 2 if color == "C1" else width / 2
            ax.bar(levels + shift, counts / counts.sum(), width=width, color=color, label=label)
            ax.set_xticks(levels)
            ax.set_ylabel("probability")
        elif np.ptp(values) <= 1e-9 * max(1.0, float(np.abs(values).max())):
            # A single value (e.g. a counterfactual with every variable observed): a
            # histogram of it is a sliver whose height flattens everything else in the panel.
            ax.axvline(values[0], color=color, lw=2.5, label=f"{label} (one value)")
        elif within is not None and np.ptp(values) < 0.02 * within:
            # Nearly one value (every variable observed, only the fit's uncertainty left):
            # its histogram would be a spike that flattens the other one; its 90% band.
            low, mid, high = np.quantile(values, [0.05, 0.5, 0.95])
            ax.axvspan(low, high, color=color, alpha=0.5)
            ax.axvline(mid, color=color, lw=2.5, label=f"{label} (narrow: 90% band)")
        elif scaled:
            heights, edges = np.histogram(values, bins=40, density=True)
            ax.stairs(heights / heights.max(), edges, fill=True, alpha=0.35, color=color,
                      label=label)  # fmt: skip
            ax.set_ylabel("density (peak = 1)")
        else:
            ax.hist(
                values,
                bins=40,
                density=True,
                histtype="stepfilled",
                alpha=0.35,
                color=color,
                label=label,
            )
            ax.set_ylabel("density")
        ax.set_xlabel(variable)


def _plain(values: np.ndarray) -> np.ndarray:
    """Object columns (strings) as fixed-width strings, numbers as they are (for xarray)."""
    if values.dtype == object:
        return values.astype(str)
    return values
