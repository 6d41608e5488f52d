"""Choosing each node's mechanism while an :class:`~pyrocausal.SCM` fits (its
:class:`~pyrocausal.mechanisms.Auto` rule).

:class:`MechanismSelection` holds the steps :meth:`SCM.fit <pyrocausal.SCM.fit>` runs around
its training: the pilot that trains every candidate and keeps each node's choice
(``_select_mechanisms``), the confirmation of refinements against their trained shadows
(``_confirm``), the after-training challenge of the closed-form candidates and the near-tie
alternatives (``_challenge``), and the statistical tests behind them (the F-test of the
quadratic, White's constant-scale test and the specification tests of a regression).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import chi2, jarque_bera
from torch import Tensor, nn

from pyrocausal.mechanisms import Auto, LinearGaussian, Mechanism, StackedMechanism, beats

if TYPE_CHECKING:
    from pyrocausal.models.flow_scm import SCM

__all__ = ["MechanismSelection"]


class MechanismSelection:
    """The mechanism-selection steps of :class:`~pyrocausal.SCM` (a mixin: they use the
    model's stacks, groups and training helpers)."""

    def _select_mechanisms(
        self, train: Tensor, val: Tensor, epochs: int, **options: Any
    ) -> tuple[list[nn.Module], list[tuple[Mechanism, list[str]]]]:
        """Train every candidate on every node of :attr:`auto_nodes`, keep each node's choice
        (see :class:`Auto`); nodes whose mechanism was given start at their own fit.

        Returns the shadows' stacks and groups (see :attr:`Auto.confirm`), to train beside
        the model and settle in :meth:`_confirm`."""
        assert self.auto is not None
        nodes = list(self.auto_nodes)
        parents = [self._parent_index[n] for n in nodes]
        late = _late_candidates(self.auto)
        pilot = [spec for spec in self.auto.candidates if spec not in late]
        rule = dataclasses.replace(self.auto, candidates=tuple(pilot))
        pilot.extend(self.auto.ladder)  # the last rows of the NLLs (see Auto.select)
        groups = [(spec, nodes) for spec in pilot]
        columns = self._columns(nodes)
        # The validation rows judge the candidates, so they take no part in training them
        # (not even in picking the best epoch: that biased the choice toward the flexible
        # candidates, a flow won a Gaussian root node by 0.001 nats). Judging also on the
        # training rows beyond ``pilot_rows`` (more power) was measured and made the
        # benchmark worse: it gave mildly curved nodes a network where the regression (and
        # the F-test's quadratic) extrapolate better (large backdoor CF RMSE 0.013 -> 0.018).
        all_train, rows = train, self.auto.pilot_rows
        if rows is not None and len(train) > rows:
            generator = torch.Generator().manual_seed(int(options.get("seed") or 0))
            train = train[torch.randperm(len(train), generator=generator)[:rows].to(train.device)]
        judged = val
        candidates = nn.ModuleList(spec.build(parents, len(self.graph)) for spec in pilot).to(
            device=self.device, dtype=self.dtype
        )
        self._initialize(candidates, groups, train)
        self._freeze_closed_form(candidates, groups, train)
        trainable = self._split_frozen(candidates, groups)[0]
        if trainable[0]:  # (closed-form candidates are fitted already)
            self._train(
                trainable,
                train,
                val_data=None,
                epochs=epochs,
                description="SCM.fit (choosing mechanisms)",
                **options,
            )
        with torch.no_grad():
            nll = -torch.stack([c.log_prob_all(judged, columns) for c in candidates])  # (C,G,n)
        chosen = {n: rule.select(nll[:, i]) for i, n in enumerate(nodes)}
        # A regression's noise must not change scale with the parents (Auto.scale_alpha):
        # where the test rejects that on every training row, the node gets its best network.
        scale_p: dict[str, float] = {}
        network = next((c for c, spec in enumerate(rule.candidates) if not spec.closed_form), None)
        if self.auto.scale_alpha > 0 and network is not None:
            for i, node in enumerate(nodes):
                if not pilot[chosen[node]].closed_form or not self._parent_index[node]:
                    continue
                scale_p[node] = _constant_scale_p_value(
                    all_train, self._index[node], self._parent_index[node]
                )
                if scale_p[node] < self.auto.scale_alpha:
                    chosen[node] = rule.refine(nll[:, i], network) if rule.ladder else network
        # A refinement listed in Auto.confirm keeps a node only if it still wins after
        # training: the node's choice without it (its shadow) trains beside it.
        confirm = [c for c, spec in enumerate(pilot) if c >= len(rule.candidates)
                   and spec in self.auto.confirm]  # fmt: skip
        shadow: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if chosen[node] in confirm:
                base = min(  # a refinement was chosen, so there is a network candidate
                    (c for c in range(len(rule.candidates)) if not pilot[c].closed_form),
                    key=lambda c: float(nll[c, i].mean()),
                )
                shadow[node] = rule.refine(nll[:, i], base, skip=confirm)
        self.mechanisms = {**self.mechanisms, **{n: pilot[chosen[n]] for n in nodes}}
        self.stacks = self._build_stacks().to(device=self.device, dtype=self.dtype)
        # Given mechanisms start from their own fit, as without selection; then the chosen
        # candidates' pilot weights go into their slots.
        given = [
            (stack, group)
            for stack, group in zip(self.stacks, self._groups)
            if any(n not in chosen for n in group[1])
        ]
        if given:
            self._initialize(*map(list, zip(*given)), all_train)
        for i, node in enumerate(nodes):
            g, k = self._slot[node]
            stack: StackedMechanism = self.stacks[g]
            stack.copy_slot(candidates[chosen[node]], i, k)
        names = [_describe(spec) for spec in pilot]
        table = pd.DataFrame(np.nan, index=list(self.graph.nodes), columns=names)
        table.loc[nodes, names] = nll.mean(-1).T.cpu().numpy()
        table["chosen"] = [
            names[chosen[n]] if n in chosen else f"{_describe(self.mechanisms[n])} (given)"
            for n in self.graph.nodes
        ]
        if self.auto.scale_alpha > 0:
            table["constant scale p"] = [scale_p.get(n, np.nan) for n in self.graph.nodes]
        table.index.name = "node"
        self.selection = table
        # The shadows: stacks of the refinements' alternatives, from their pilot weights.
        shadow_groups: dict[int, list[str]] = {}
        for node, c in shadow.items():
            shadow_groups.setdefault(c, []).append(node)
        shadow_stacks, groups = [], []
        for c, group in shadow_groups.items():
            stack = self._build(pilot[c], group).to(device=self.device, dtype=self.dtype)
            for k, node in enumerate(group):
                stack.copy_slot(candidates[c], nodes.index(node), k)
            shadow_stacks.append(stack)
            groups.append((pilot[c], group))
        return shadow_stacks, groups

    def _confirm(
        self,
        stacks: list[nn.Module],
        groups: list[tuple[Mechanism, list[str]]],
        val: Tensor,
        rows: Tensor,
    ) -> None:
        """Settle the refinements of :attr:`Auto.confirm` after training.

        A node the pilot gave such a refinement keeps it only where its trained NLL on the
        validation rows beats its trained shadow (the node's choice without that refinement)
        by ``se_rule`` paired standard errors; else the shadow, with its trained weights,
        takes the node. The pilot favours the flexible mechanism that learns fastest (a
        conditional spline won a non-linear chain's additive node in the pilot by 0.06 nats,
        and tied the MAF after training).
        """
        if not stacks:
            return
        assert self.auto is not None and self.selection is not None
        shadowed = {n for _, group in groups for n in group}

        def score(stack: nn.Module, group: list[str]) -> Tensor:
            if self.auto.confirm_by == "quantile":
                return stack.quantile_loss_all(val, self._columns(group))
            return -stack.log_prob_all(val, self._columns(group))

        with torch.no_grad():
            trained: dict[str, Tensor] = {}
            for stack, (_, group) in zip(self.stacks, self._groups):
                if any(n in shadowed for n in group):
                    trained.update(zip(group, score(stack, group)))
            mechanisms, source = dict(self.mechanisms), {}
            for stack, (spec, group) in zip(stacks, groups):
                theirs = score(stack, group)
                for k, node in enumerate(group):
                    kept = beats(trained[node], theirs[k], self.auto.se_rule)
                    self.selection.loc[node, "shadow"] = _describe(spec)
                    self.selection.loc[node, "shadow (trained)"] = float(theirs[k].mean())
                    self.selection.loc[node, "confirmed"] = kept
                    if not kept:
                        mechanisms[node], source[node] = spec, (stack, k)
                        self.selection.loc[node, "chosen"] = _describe(spec)
        if source:
            self._restack(mechanisms, rows, source)

    def _restack(
        self,
        mechanisms: dict[str, Mechanism],
        rows: Tensor,
        source: Mapping[str, tuple[nn.Module, int]] | None = None,
    ) -> None:
        """Rebuild the stacks for new ``mechanisms``, keeping the trained weights.

        Groups whose nodes and mechanism did not change keep their stacks; every network
        node of a changed group gets its weights from ``source`` (a stack and slot) or else
        from its current slot; closed-form stacks are refitted by least squares on ``rows``.
        """
        source = source or {}
        old_stacks, old_groups, old_slot = self.stacks, self._groups, self._slot
        self.mechanisms = mechanisms
        self.stacks = self._build_stacks().to(device=self.device, dtype=self.dtype)
        for g, group in enumerate(self._groups):
            if group in old_groups:  # untouched (every given mechanism's group): kept
                self.stacks[g] = old_stacks[old_groups.index(group)]
                continue
            for k, node in enumerate(group[1]):
                if mechanisms[node].closed_form:
                    continue
                if node in source:
                    src, j = source[node]
                else:
                    g_old, j = old_slot[node]
                    src = old_stacks[g_old]
                self.stacks[g].copy_slot(src, j, k)
        self._freeze_closed_form(self.stacks, self._groups, rows)

    def _challenge(self, train: Tensor, val: Tensor, rows: Tensor) -> None:
        """Let the late closed-form candidates of :class:`Auto` challenge the trained nodes.

        A closed-form candidate listed after a network (the quadratic regression) is judged
        against each node's *fully trained* mechanism, not against a network still early in
        its training: it replaces the node's mechanism only when its held-out NLL beats it by
        ``challenge_se_rule`` paired standard errors. Nodes are independent factors of the
        likelihood, so the others keep their trained weights.

        The rows are the validation rows, on which the trained network's best epoch was
        picked (a small bias in its favour). Judging on rows it never saw instead (half of
        the validation rows, the other half picking the epoch) was measured and made the
        choices worse: on 250 rows the non-linear chain's x3 went to the quadratic (CF RMSE
        0.032 -> 0.048) and the interaction SCM's quadratic node to a network on one fit
        seed in three.
        """
        assert self.auto is not None and self.selection is not None
        if not _late_candidates(self.auto):
            return
        # The regressions listed before the networks (linear) challenge a node the pilot gave
        # a network too: a pilot network that won by chance does not stay (a 24x24 MAF won a
        # linear-Gaussian node on one fit seed in three by 0.002 nats, and was 0.001 nats
        # worse on 200,000 fresh rows).
        late = [c for c in self.auto.candidates if c.closed_form]  # linear, then quadratic
        early = late[: len(late) - len(_late_candidates(self.auto))]
        nodes = list(self.auto_nodes)
        columns = self._columns(nodes)
        with torch.no_grad():
            trained: dict[str, Tensor] = {}
            for stack, (_, group) in zip(self.stacks, self._groups):
                if any(n in self.auto_nodes for n in group):
                    trained.update(zip(group, -stack.log_prob_all(val, self._columns(group))))
            current = torch.stack([trained[n] for n in nodes])
            challengers = []
            for spec in late:
                stack = spec.build([self._parent_index[n] for n in nodes], len(self.graph))
                stack.to(device=self.device, dtype=self.dtype).initialize(train, columns)
                challengers.append(-stack.log_prob_all(val, columns))
        self.selection.loc[nodes, "trained"] = current.mean(-1).cpu().numpy()
        mechanisms = dict(self.mechanisms)
        scale_p = self.selection.get("constant scale p")  # NaN where not tested
        rejected = set() if scale_p is None else set(scale_p.index[scale_p < self.auto.scale_alpha])
        specification: dict[tuple[str, int], float] = {}

        def specified(node: str, spec: Mechanism) -> bool:
            """Whether ``spec``, a regression, passes its specification tests on every row
            (see Auto.specification_alpha)."""
            if self.auto.specification_alpha <= 0 or not isinstance(spec, LinearGaussian):
                return False
            key = (node, spec.degree)
            if key not in specification:
                specification[key] = _specification_p_value(
                    rows, self._index[node], self._parent_index[node], spec.degree
                )
            return specification[key] >= self.auto.specification_alpha

        for i, node in enumerate(nodes):
            for spec, nll in zip(late, challengers):
                if spec == mechanisms[node] or (spec in early and mechanisms[node].closed_form):
                    continue  # an early regression challenges networks only
                if node in rejected:
                    continue  # a regression's constant noise scale was rejected (scale_alpha)
                if _nests(mechanisms[node], spec):
                    # Two least-squares regressions, one nested in the other: the F-test's
                    # likelihood ratio on every row decides (see Auto.nested_alpha).
                    p_value = _linearity_p_value(rows, self._index[node], self._parent_index[node])
                    self.selection.loc[node, "linearity p"] = p_value
                    if p_value < self.auto.nested_alpha:
                        mechanisms[node], current[i] = spec, nll[i]
                    continue
                if spec in early and specified(node, spec):
                    # the regression describes the node: the network won it by chance
                    mechanisms[node], current[i] = spec, nll[i]
                    continue
                if beats(nll[i], current[i], self.auto.challenge_se_rule):
                    mechanisms[node], current[i] = spec, nll[i]
            self.selection.loc[node, "chosen"] = _describe(mechanisms[node])
        for spec, nll in zip(late, challengers):
            self.selection.loc[nodes, f"{_describe(spec)} (after training)"] = (
                nll.mean(-1).cpu().numpy()
            )
        # Near-ties: the best other mechanism each node has weights for (a closed-form
        # challenger, or the trained network a challenger replaced) that the final choice
        # does not beat by ``se_rule`` paired standard errors on the validation rows; its
        # weight is the pseudo-BMA weight exp(-total held-out NLL) against the choice.
        runner_up: dict[str, Mechanism] = {}
        gap: dict[str, float] = {}
        for i, node in enumerate(nodes):
            final = mechanisms[node]
            if specified(node, final):
                continue  # a regression that passes its tests keeps no network beside it
            options = [(s, nll[i]) for s, nll in zip(late, challengers) if s != final]
            if self.mechanisms[node] != final:
                options.append((self.mechanisms[node], trained[node]))
            ties = [
                (float(nll.mean()), k)
                for k, (spec, nll) in enumerate(options)
                if not _nests(final, spec)
                and not _nests(spec, final)
                and not beats(current[i], nll, self.auto.se_rule)
            ]
            if ties:
                spec, nll = options[min(ties)[1]]
                runner_up[node] = spec
                gap[node] = float((nll - current[i]).sum())
        if specification:
            self.selection["specification p"] = [
                specification.get((n, getattr(mechanisms.get(n), "degree", 0)), np.nan)
                for n in self.graph.nodes
            ]
        self.selection["near tie"] = [
            _describe(runner_up[n]) if n in runner_up else "" for n in self.graph.nodes
        ]
        old_stacks, old_slot = self.stacks, self._slot  # the alternatives copy from these
        if mechanisms != self.mechanisms:
            self._restack(mechanisms, rows)
        weights = {n: math.exp(-gap[n]) for n in runner_up}
        total = 1.0 + sum(weights.values())
        kept = [n for n in runner_up if weights[n] / total >= 0.05]  # others: too few draws
        total = 1.0 + sum(weights[n] for n in kept)
        self.alternatives = nn.ModuleList(
            self._alternative_model({n: runner_up[n]}, old_stacks, old_slot, rows) for n in kept
        )
        self.alternative_weights = torch.tensor(
            [1.0 / total, *(weights[n] / total for n in kept)], device=self.device
        )

    def _alternative_model(
        self,
        runner_up: Mapping[str, Mechanism],
        old_stacks: nn.ModuleList,
        old_slot: Mapping[str, tuple[int, int]],
        rows: Tensor,
    ) -> SCM:
        """This SCM with ``runner_up`` mechanisms: their networks' trained weights (from the
        stacks before the challenge) or their least-squares fits, every other node's weights
        copied."""
        alt = type(self)(self.graph, {**self.mechanisms, **runner_up})
        alt.to(device=self.device, dtype=self.dtype)
        with torch.no_grad():
            for name in ("loc", "scale", "fitted"):
                getattr(alt, name).copy_(getattr(self, name))
        refit = []
        for g, (_, group) in enumerate(alt._groups):
            if getattr(alt.stacks[g], "closed_form", False) and not getattr(
                alt.stacks[g], "raw_units", False
            ):
                refit.append(g)  # least squares on every row: the same fit as this model's
                continue
            for k, node in enumerate(group):
                source, slot = (old_stacks, old_slot) if node in runner_up else (
                    self.stacks, self._slot
                )  # fmt: skip
                g_src, k_src = slot[node]
                alt.stacks[g].copy_slot(source[g_src], k_src, k)
        alt._freeze_closed_form(
            [alt.stacks[g] for g in refit], [alt._groups[g] for g in refit], rows
        )
        for stack in alt.stacks:
            if getattr(stack, "closed_form", False):
                stack.requires_grad_(False)
        return alt


def _nests(current: Mechanism, challenger: Mechanism) -> bool:
    """Whether both are least-squares regressions and ``challenger`` adds quadratic terms."""
    return (
        isinstance(current, LinearGaussian)
        and isinstance(challenger, LinearGaussian)
        and current.degree == 1
        and challenger.degree == 2
    )


def _linearity_p_value(rows: Tensor, column: int, parents: Sequence[int]) -> float:
    """p-value of "the parents' squares and products add nothing" for ``column``.

    The likelihood-ratio (F-) test of the nested least-squares regressions on ``rows``:
    ``n log(RSS_linear / RSS_quadratic)`` against a chi-square with one degree of freedom
    per added term (1.0 for a root).
    """
    if not parents:
        return 1.0
    y, linear, quadratic = _regression_designs(rows, column, parents)

    def rss(design: Tensor) -> float:
        return float(_residuals(design, y).square().sum())

    statistic = len(y) * math.log(rss(linear) / max(rss(quadratic), 1e-300))
    return float(chi2.sf(max(statistic, 0.0), quadratic.shape[1] - linear.shape[1]))


def _regression_designs(
    rows: Tensor, column: int, parents: Sequence[int]
) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, linear, quadratic)`` in float64: ``column`` of ``rows``, the design of its linear
    regression on the parents (their columns, then an intercept), and that design followed
    by the parents' squares and pairwise products."""
    z = rows.double()
    y = z[:, column]
    linear = torch.cat([z[:, list(parents)], torch.ones_like(y)[:, None]], dim=1)
    terms = [z[:, a] * z[:, b] for k, a in enumerate(parents) for b in parents[k:]]
    return y, linear, torch.cat([linear, torch.stack(terms, dim=1)], dim=1)


def _residuals(design: Tensor, y: Tensor) -> Tensor:
    """Residuals of the least-squares regression of ``y`` on ``design``."""
    return y - (design @ torch.linalg.lstsq(design, y[:, None]).solution)[:, 0]


def _specification_p_value(rows: Tensor, column: int, parents: Sequence[int], degree: int) -> float:
    """The smallest p-value of three specification tests of the least-squares regression of
    ``column`` on ``parents`` of ``degree`` (1 or 2), on ``rows``.

    The likelihood-ratio (F-) test against the full cubic polynomial in the parents
    (curvature the regression misses, odd or even), White's test of a constant noise scale
    (:func:`_constant_scale_p_value`) and the Jarque-Bera test of Gaussian residuals. A root
    gets the Jarque-Bera test alone.
    """
    z = rows.double()
    if not parents:
        y = z[:, column]
        return float(jarque_bera((y - y.mean()).cpu().numpy()).pvalue)
    y, linear, quadratic = _regression_designs(rows, column, parents)
    design = linear if degree == 1 else quadratic
    cubes = [
        z[:, a] * z[:, b] * z[:, c]
        for i, a in enumerate(parents)
        for j, b in enumerate(parents[i:], i)
        for c in parents[j:]
    ]
    cubic = torch.cat([quadratic, torch.stack(cubes, dim=1)], dim=1)
    residuals = _residuals(design, y)
    rss = float(residuals.square().sum())
    statistic = len(y) * math.log(rss / max(float(_residuals(cubic, y).square().sum()), 1e-300))
    return min(
        float(chi2.sf(max(statistic, 0.0), cubic.shape[1] - design.shape[1])),
        _constant_scale_p_value(rows, column, parents),
        float(jarque_bera(residuals.cpu().numpy()).pvalue),
    )


def _constant_scale_p_value(rows: Tensor, column: int, parents: Sequence[int]) -> float:
    """p-value of "the noise of a regression has one scale for all parent values".

    White's test (Koenker's studentized form, robust to non-Gaussian noise) on ``rows``:
    the squared residuals of the quadratic least-squares regression (so that a mean which is
    merely curved does not count as a changing scale) regressed on the parents and their
    squares; ``n R^2`` against a chi-square with ``2 k`` degrees of freedom.
    """
    y, linear, quadratic = _regression_designs(rows, column, parents)
    r2 = _residuals(quadratic, y).square()
    pa = linear[:, :-1]
    aux = torch.cat([linear[:, -1:], pa, pa.square()], dim=1)
    total = float((r2 - r2.mean()).square().sum())
    r_squared = 1.0 - float(_residuals(aux, r2).square().sum()) / max(total, 1e-300)
    return float(chi2.sf(max(len(y) * r_squared, 0.0), 2 * len(parents)))


def _late_candidates(auto: Auto) -> list[Mechanism]:
    """Closed-form candidates listed after a network: judged after training (see _challenge)."""
    first_network = next(
        (i for i, c in enumerate(auto.candidates) if not c.closed_form), len(auto.candidates)
    )
    return [c for c in auto.candidates[first_network:] if c.closed_form]


def _describe(spec: Mechanism) -> str:
    hidden = "x".join(map(str, spec.hidden_features))
    name = "quadratic" if getattr(spec, "degree", 1) == 2 else spec.name
    if getattr(spec, "noise_shape", "spline") != "spline":
        name = f"{name}-{spec.noise_shape}"
    return f"{name}({hidden})" if hidden else name
