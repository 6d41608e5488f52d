r"""Latent confounders: say when a query is not identified, and answer under stated assumptions.

A latent node that drives both a treatment ``t`` and an outcome ``y`` (``h -> t``, ``h -> y``,
``t -> y``) cannot be pinned down by data on ``(t, y)``: many models fit the observed rows
equally well and give different interventional and counterfactual answers. A model fitted
with the latent node (:func:`~pyrocausal.inference.posterior.fit_latent`) returns the answer
of whichever split of the variation between ``h`` and ``y``'s own noise the fit happened to
find, often a near point mass away from the truth. So pyrocausal

1. **warns** (:class:`UnidentifiedQueryWarning`, naming the latent node and the query)
   whenever a query's answer depends on a latent node whose mechanisms were learned from data
   (see :func:`latent_dependence`);
2. answers a latent confounder of one treatment and one outcome under a stated **sensitivity
   model** instead of the arbitrary fit (:class:`Confounding`): a Gaussian copula between the
   treatment's latent index and the outcome's noise with correlation ``rho``, which keeps the
   fitted observational distribution exactly for every ``rho``. Stating a range of ``rho``
   gives answers whose width shows the ambiguity; the default range is wide
   (``(-0.9, 0.9)``), the honest answer when nothing is stated;
3. leaves users who state **mechanism families** (hand-written mechanisms of the latent's
   children, :class:`~pyrocausal.HandWritten`) with the latent model, whose answer is then
   calibrated to those families.

The sensitivity model (Rosenbaum-Rubin style, in the copula form of e.g. Zheng, D'Amour and
Franks, 2021). In the SCM fitted without the latent node (:attr:`SCM.marginal`), ``t``'s
mechanism gives ``P(t | pa_t)`` and ``y``'s flow gives ``F(y | t, pa_y) = Phi(e)`` with
``e`` its abducted standard-normal noise. The latent model is
``u_t ~ N(0, 1)``, ``t = 1[u_t > Phi^{-1}(1 - P(t=1 | pa_t))]`` (binary) or
``u_t = Phi^{-1}(F(t | pa_t))`` (continuous), ``v ~ N(0, 1)`` with ``corr(u_t, v) = rho``,
and ``y = F^{-1}(G_t(v) | t, pa_y)`` where ``G_t`` is the CDF of ``v`` given the observed
``t``. A unit's counterfactual under ``do(t = t')`` is then
``e' = Phi^{-1}(G_{t'}(G_t^{-1}(Phi(e))))`` pushed through ``y``'s flow at ``t'``; for a
continuous treatment ``e' = e + rho / sqrt(1 - rho^2) (u_t - u_{t'})``. ``rho = 0`` is the
unconfounded (rank-preserving) answer of the marginal model.

Example:
    >>> from pyrocausal.inference.sensitivity import Confounding, bivariate_normal_cdf
    >>> Confounding(rho=0.5).grid(3)
    array([0.5, 0.5, 0.5])
    >>> round(float(bivariate_normal_cdf(0.0, 0.0, 0.5)), 4)    # 1/4 + asin(0.5) / (2 pi)
    0.3333
"""

from __future__ import annotations

__all__ = [
    "Confounding",
    "UnidentifiedQueryWarning",
    "bivariate_normal_cdf",
    "confounded_ate",
    "confounded_counterfactual",
    "confounded_interventional",
    "marginal_structure",
    "confounder_pair",
    "latent_confounding",
    "latent_dependence",
    "warn_unidentified",
]

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from scipy import special

if TYPE_CHECKING:
    from pyrocausal.models.flow_scm import SCM


class UnidentifiedQueryWarning(UserWarning):
    """A query's answer depends on a latent node that the data cannot pin down."""


@dataclass(frozen=True)
class Confounding:
    """A stated assumption on a latent confounder: the copula correlation ``rho``.

    Arguments:
        rho: The correlation between the treatment's latent index and the outcome's noise
            (how strongly the hidden confounder pushes both): a number, or a range
            ``(low, high)`` over which the answer's draws are spread evenly (an interval
            assumption; its width is the ambiguity left). ``0``: no confounding.

    Example:
        >>> Confounding(rho=(0.0, 0.6)).grid(4)
        array([0.075, 0.225, 0.375, 0.525])
    """

    rho: float | tuple[float, float] = (-0.9, 0.9)

    def __post_init__(self) -> None:
        low, high = self.bounds
        if not -1.0 < low <= high < 1.0:
            raise ValueError(f"rho must lie in (-1, 1) with low <= high, got {self.rho!r}")

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of the stated ``rho``."""
        if isinstance(self.rho, Iterable):
            low, high = (float(r) for r in self.rho)  # type: ignore[union-attr]
            return low, high
        return float(self.rho), float(self.rho)

    def grid(self, num: int) -> np.ndarray:
        """``num`` values of ``rho`` spread evenly over the range (midpoints of equal cells)."""
        low, high = self.bounds
        return low + (high - low) * (np.arange(num) + 0.5) / num

    def draws(self, num: int) -> np.ndarray:
        """The ``rho`` of each of ``num`` draws of an answer: a quarter at each end of the
        range, half evenly between.

        A range of ``rho`` is a set assumption, and the answer a set, not a posterior: with
        a quarter of the draws at each end, every central interval of level 50% or more
        spans the answers at both ends (their bounds, where the answer moves monotonically
        with ``rho``). Spread evenly, the central 50% interval of the default range covered
        the true counterfactual in 1% of rows (it sat near ``rho = 0.7``).

        Example:
            >>> Confounding(rho=(0.0, 0.8)).draws(8)
            array([0. , 0. , 0.1, 0.3, 0.5, 0.7, 0.8, 0.8])
        """
        low, high = self.bounds
        if low == high or num < 4:
            return self.grid(num)
        ends = num // 4
        inner = num - 2 * ends
        middle = low + (high - low) * (np.arange(inner) + 0.5) / inner
        return np.concatenate([np.full(ends, low), middle, np.full(ends, high)])


# ---------------------------------------------------------------- structure
def _learned(scm: SCM, node: str) -> bool:
    """Whether ``node``'s mechanism was learned from data (not written down by the user)."""
    spec = scm.mechanisms[node]
    # Hand-written mechanisms (and logits) are the user's stated families, free parameters
    # or not: the answer is then calibrated to them, and no warning is due.
    return not (getattr(spec, "logits", None) is not None or type(spec).__name__ == "HandWritten")


def latent_dependence(
    scm: SCM, targets: Iterable[str], intervened: Iterable[str], kind: str
) -> list[str]:
    """Latent nodes the query's answer depends on, whose mechanisms were learned from data.

    A counterfactual depends on every latent ancestor of a variable that changes (the model's
    split of that variable's variation between the latent and its own noise is arbitrary);
    an interventional query on a latent common ancestor of an intervened node and a target
    (a confounder: not removable by adjustment for observed variables, a conservative rule).
    Only latent nodes one of whose own or children's mechanisms was learned count: with
    every mechanism around it written down (hand-written families, free parameters or not),
    the answer follows from the user's stated assumptions.

    Example:
        >>> import pyrocausal as pc
        >>> g = pc.CausalGraph({"h": [], "t": ["h"], "y": ["t", "h"]}, latent=["h"])
        >>> scm = pc.SCM(g, mechanisms={"t": pc.Bernoulli()})
        >>> latent_dependence(scm, ["y"], ["t"], "counterfactual")
        ['h']
    """
    targets, intervened = list(targets), list(intervened)
    graph = scm.graph
    found = []
    for h in graph.latent:
        below = graph.descendants(h)
        if kind == "counterfactual":
            hit = any(t in below for t in targets)
        else:
            hit = any(t in below for t in targets) and any(i in below for i in intervened)
        family = [h, *graph.children(h)]
        if hit and any(_learned(scm, n) for n in family):
            found.append(h)
    return found


def warn_unidentified(latent: list[str], query: str, supported: bool) -> None:
    """Raise :class:`UnidentifiedQueryWarning` for ``latent`` nodes and the ``query``."""
    how = (
        "answered under the sensitivity model Confounding(rho=...) (pass confounding= to "
        "state the range of rho you believe; the default range is wide on purpose)"
        if supported
        else "the answer is the fitted model's, one of many that fit the data equally well"
    )
    warnings.warn(
        f"{query} depends on latent node(s) {latent}, which the data cannot pin down: "
        f"{how}. State assumptions to narrow it: hand-written mechanism families for "
        f"{latent}'s children (pc.HandWritten), or a sensitivity range "
        "(pc.Confounding); see README, 'Latent confounders'.",
        UnidentifiedQueryWarning,
        stacklevel=3,
    )


def confounder_pair(scm: SCM, latent: str) -> tuple[str, str] | None:
    """``(treatment, outcome)`` when ``latent`` is a root whose only children are an observed
    treatment and an observed continuous outcome with ``treatment -> outcome``; else ``None``
    (the structures :class:`Confounding` supports)."""
    graph = scm.graph
    if graph.parents(latent) or getattr(scm, "marginal", None) is None:
        return None
    children = [c for c in graph.children(latent)]
    if len(children) != 2 or any(c in graph.latent for c in children):
        return None
    a, b = children
    t, y = (a, b) if a in graph.parents(b) else (b, a) if b in graph.parents(a) else (None, None)
    if t is None or scm._discrete(y):
        return None
    for node in (t, y):  # continuous nodes: flows, or hand-written with standard-normal noise
        spec = scm.mechanisms[node]
        if type(spec).__name__ == "HandWritten" and spec.noise is not None:
            return None
    if scm._discrete(t) and int(scm.mechanisms[t].num_categories) != 2:
        return None
    return t, y


def latent_confounding(
    scm: SCM, targets: Iterable[str], intervened: Iterable[str], kind: str
) -> tuple[list[str], tuple[str, str] | None]:
    """The learned latent nodes a query depends on (:func:`latent_dependence`), and the
    ``(treatment, outcome)`` pair of :func:`confounder_pair` when there is one such node and
    the query intervenes on that treatment alone (the case :class:`Confounding` answers)."""
    intervened = set(intervened)
    latent = latent_dependence(scm, targets, intervened, kind)
    pair = confounder_pair(scm, latent[0]) if len(latent) == 1 else None
    return latent, pair if pair is not None and intervened == {pair[0]} else None


def marginal_structure(graph: Any, mechanisms: Any) -> tuple[dict[str, list[str]], Any]:
    """The graph and mechanisms of the observed nodes alone (latent nodes removed).

    Given mechanisms of observed nodes carry over, except hand-written ones of a latent
    node's children (their code reads the latent): a learned ``Bernoulli`` / ``Categorical``
    for a discrete node, the default otherwise.
    """
    parents = {n: [p for p in graph.parents(n) if p not in graph.latent] for n in graph.observed}
    if not isinstance(mechanisms, Mapping):
        if getattr(mechanisms, "raw_units", False):
            mechanisms = {n: mechanisms for n in graph.nodes}
        else:
            return parents, mechanisms
    specs: dict[str, Any] = {}
    for n in graph.observed:
        spec = mechanisms.get(n)
        reads_latent = any(p in graph.latent for p in graph.parents(n))
        if reads_latent and getattr(spec, "raw_units", False):
            if getattr(spec, "discrete", False):
                from pyrocausal.discrete import Bernoulli, Categorical

                k = int(spec.num_categories)
                spec = Bernoulli() if type(spec).__name__ == "Bernoulli" else Categorical(k)
            else:
                spec = None
        specs[n] = spec
    return parents, specs


# ---------------------------------------------------------------- the copula
def bivariate_normal_cdf(h: Any, k: Any, rho: Any) -> np.ndarray:
    """``P(X <= h, Y <= k)`` for standard normals with correlation ``rho`` (Owen's T)."""
    h, k, rho = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (h, k, rho)))
    h = np.where(np.abs(h) < 1e-10, 1e-10, h)
    k = np.where(np.abs(k) < 1e-10, 1e-10, k)
    s = np.sqrt(1.0 - rho**2)
    a_h = (k - rho * h) / (h * s)
    a_k = (h - rho * k) / (k * s)
    beta = np.where(h * k > 0, 0.0, 0.5)
    out = 0.5 * special.ndtr(h) + 0.5 * special.ndtr(k)
    out = out - special.owens_t(h, a_h) - special.owens_t(k, a_k) - beta
    return np.clip(out, 0.0, 1.0)


def _g_binary(v: np.ndarray, t: np.ndarray, c: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """CDF of ``v`` given the observed binary ``t`` (``t = 1[u_t > c]``)."""
    joint = bivariate_normal_cdf(v, c, rho)  # P(v <= ., u_t <= c)
    p0 = special.ndtr(c)
    below = joint / np.maximum(p0, 1e-300)
    above = (special.ndtr(v) - joint) / np.maximum(1.0 - p0, 1e-300)
    return np.where(t > 0.5, above, below)


def _g_binary_inverse(q: np.ndarray, t: np.ndarray, c: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Solve ``G_t(v) = q`` for ``v`` by bisection (``G_t`` is increasing)."""
    low, high = np.full(q.shape, -12.0), np.full(q.shape, 12.0)
    for _ in range(60):
        mid = 0.5 * (low + high)
        smaller = _g_binary(mid, t, c, rho) < q
        low, high = np.where(smaller, mid, low), np.where(smaller, high, mid)
    return 0.5 * (low + high)


def _tensors(scm: SCM, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
    return {
        c: torch.tensor(frame[c].to_numpy(np.float64), dtype=scm.dtype, device=scm.device)
        for c in frame.columns
    }


def _noise(scm: SCM, node: str, values: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Standard-normal noise of a continuous node's flow given complete values."""
    parents = {p: values[p] for p in scm.graph.parents(node)}
    with torch.no_grad():
        d = scm.distribution(node, parents, values[node].shape)
        u = values[node]
        for t in reversed(d.transforms):
            u = t.inv(u)
    return np.asarray(u.reshape(values[node].shape).double().cpu())


def _value(
    scm: SCM, node: str, values: Mapping[str, torch.Tensor], noise: np.ndarray
) -> np.ndarray:
    """A continuous node's value from its standard-normal noise and its parents' values."""
    parents = {p: values[p] for p in scm.graph.parents(node)}
    u = torch.as_tensor(noise, dtype=scm.dtype, device=scm.device)
    shape = torch.broadcast_shapes(u.shape, *(p.shape for p in parents.values()))
    with torch.no_grad():
        d = scm.distribution(node, parents, shape)
        x = u.expand(shape).unsqueeze(-1)
        for t in d.transforms:
            x = t(x)
    return np.asarray(x.reshape(shape).double().cpu())


def _treatment_index(scm: SCM, t: str, values: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Binary ``t``: the threshold ``c`` with ``P(t = 1 | pa) = 1 - Phi(c)``; continuous:
    its latent index ``u_t`` (the flow's noise)."""
    if scm._discrete(t):
        parents = {p: values[p] for p in scm.graph.parents(t)}
        g, k = scm._slot[t]
        with torch.no_grad():
            logits = scm.stacks[g].logits(k, parents)
        p1 = torch.as_tensor(logits).softmax(-1)[..., 1].double().cpu().numpy()
        return special.ndtri(np.clip(1.0 - p1, 1e-12, 1 - 1e-12))
    return _noise(scm, t, values)


def _cf_noise(
    e: np.ndarray,
    t: np.ndarray,
    t_cf: np.ndarray,
    index: np.ndarray,
    index_cf: np.ndarray,
    rho: np.ndarray,
    binary: bool,
) -> np.ndarray:
    """The outcome's counterfactual flow noise ``e'`` (arrays broadcast ``(R, n)``)."""
    if not binary:
        return e + rho / np.sqrt(1.0 - rho**2) * (index - index_cf)
    q = np.clip(special.ndtr(e), 1e-15, 1 - 1e-15)
    v = _g_binary_inverse(q, t, index, rho)
    return special.ndtri(np.clip(_g_binary(v, t_cf, index_cf, rho), 1e-15, 1 - 1e-15))


def confounded_counterfactual(
    scm: SCM,
    frame: pd.DataFrame,
    intervention: Mapping[str, Any],
    treatment: str,
    outcome: str,
    confounding: Confounding,
    num_samples: int,
    grid: int = 41,
) -> dict[str, np.ndarray]:
    """Counterfactual draws ``(num_samples, n)`` per node under the sensitivity model.

    ``scm`` is the SCM fitted without the latent node (:attr:`SCM.marginal`); ``frame`` holds
    complete observed rows; the intervention sets ``treatment`` only. The answer is exact for
    each ``rho``; the draws spread over ``confounding``'s range (``grid`` values of ``rho``,
    each draw taking the answer at its own ``rho`` (:meth:`Confounding.draws`) by linear
    interpolation).
    """
    values = _tensors(scm, frame)
    n = len(frame)
    t_cf = np.broadcast_to(np.asarray(intervention[treatment], dtype=np.float64), (n,))
    cf_values = dict(values)
    cf_values[treatment] = torch.as_tensor(t_cf.copy(), dtype=scm.dtype, device=scm.device)
    binary = scm._discrete(treatment)
    t = frame[treatment].to_numpy(np.float64)
    index = _treatment_index(scm, treatment, values)
    index_cf = _treatment_index(scm, treatment, cf_values)
    e = _noise(scm, outcome, values)
    rho_grid = np.unique(confounding.grid(grid))  # one value for a single rho
    e_cf = _cf_noise(
        e[None], t[None], t_cf[None], index[None], index_cf[None], rho_grid[:, None], binary
    )  # (R, n)
    answers = np.stack([_value(scm, outcome, cf_values, row) for row in e_cf])  # (R, n)
    position = np.interp(confounding.draws(num_samples), rho_grid, np.arange(len(rho_grid)))
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, len(rho_grid) - 1)
    w = (position - lo)[:, None]
    y_cf = (1 - w) * answers[lo] + w * answers[hi]
    out = {c: np.broadcast_to(frame[c].to_numpy(np.float64), (num_samples, n)) for c in frame}
    out[treatment] = np.broadcast_to(t_cf, (num_samples, n))
    out[outcome] = np.asarray(y_cf)
    return out


def confounded_interventional(
    scm: SCM,
    treatment: str,
    outcome: str,
    level: float,
    confounding: Confounding,
    num_samples: int,
    seed: int | None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Draws of the marginal model under ``do(treatment = level)`` and the sensitivity model.

    ``y(t') = F^{-1}(G_{t'}(v) | t', pa_y)`` with ``v ~ N(0, 1)``; the outcome's other parents
    come from the marginal model's observational draws (common random numbers across calls
    with the same seed), draw ``j`` at the ``j``-th value of ``confounding.draws``. Returns
    the draws and the ``rho`` of each.
    """
    below = scm.graph.descendants(outcome)
    if below:
        raise ValueError(
            f"the sensitivity model answers for an outcome without descendants; {outcome!r} "
            f"has {sorted(below)}"
        )
    rows = scm.sample(num_samples, seed=seed).assign(**{treatment: float(level)})
    v = np.random.default_rng(seed).standard_normal(num_samples)
    rho = confounding.draws(num_samples)
    values = _tensors(scm, rows)
    index = _treatment_index(scm, treatment, values)
    if scm._discrete(treatment):
        q = _g_binary(v, np.full(num_samples, float(level)), index, rho)
        e = special.ndtri(np.clip(q, 1e-15, 1 - 1e-15))
    else:  # G_t(v) = Phi((v - rho u_t) / sqrt(1 - rho^2)), so e = its argument
        e = (v - rho * index) / np.sqrt(1.0 - rho**2)
    rows[outcome] = _value(scm, outcome, values, e)
    return rows, rho


def confounded_ate(
    scm: SCM,
    treatment: str,
    outcome: str,
    treated: float,
    control: float,
    confounding: Confounding,
    num_samples: int,
    seed: int | None,
    grid: int = 21,
) -> tuple[np.ndarray, np.ndarray]:
    """``E[y | do(t = treated)] - E[y | do(t = control)]`` at each ``rho`` of a grid.

    Each ``rho`` uses the same ``num_samples`` draws of ``v`` and of ``y``'s other parents
    (common random numbers). Returns ``(rhos, ates)``.
    """
    rhos = np.unique(confounding.grid(grid))  # one value for a single rho
    ates = []
    for rho in rhos:
        fixed = Confounding(rho=float(rho))
        means = [
            confounded_interventional(scm, treatment, outcome, level, fixed, num_samples, seed)[0][
                outcome
            ].mean()
            for level in (treated, control)
        ]
        ates.append(means[0] - means[1])
    return rhos, np.asarray(ates)
