r"""Posterior abduction: counterfactual and interventional queries under partial evidence.

With every variable observed, the noise of a flow SCM is a function of the data and abduction
is exact (:meth:`SCM.guide <pyrocausal.models.SCM.guide>`). When a row leaves variables
unobserved (NaN), or the graph has latent nodes, the posterior over the exogenous noise is no
longer a point. It factorizes as

.. math::

    p(u \mid x_O) = \int p(u \mid x_O, x_H)\, p(x_H \mid x_O)\, dx_H ,

where :math:`x_H` are the hidden (unobserved or latent) variables. Given a complete row the
noise posterior :math:`p(u \mid x)` is exact: a point for continuous mechanisms, the
Gumbel-max posterior for discrete ones. So a posterior query here

1. draws the hidden variables from :math:`p(x_H \mid x_O)` -- in the space of their noise
   for continuous nodes (whose prior is simple there), with hidden discrete nodes summed out
   exactly by Pyro's parallel enumeration;
2. abducts the noise of each completed row exactly (:meth:`SCM.guide`);
3. replays that noise through the intervened program (:func:`replay_counterfactual`).

Step 1 is done per missingness pattern by one of:

* :class:`SVIAbduction` (default): a guide over the hidden noise fitted by stochastic
  variational inference to the query batch, a per-row Gaussian (:class:`RowNormal`, started
  at likelihood-weighted prior moments) or a conditional flow amortized over the rows
  (:class:`AmortizedFlow`). Its draws are then importance-resampled against the exact joint
  density (``resample=True``), from a defensive mixture of the guide (moved to its
  importance-weighted moments after the fit) and the prior, which keeps the answer calibrated
  where the ELBO's Gaussian is too narrow (curved or multimodal posteriors). The effective
  sample size of the weights is reported per row in ``result.diagnostics``.
* :class:`ImportanceAbduction`: the prior as the proposal (no fitting); right for small
  problems and to check a guide.
* :class:`NUTSAbduction`: Pyro's NUTS on the hidden noise of every row at once; exact in the
  limit, for small problems.

The same program (:func:`log_joint`) serves :func:`fit_latent`, which fits an SCM with latent
nodes by maximizing the evidence lower bound with an amortized encoder (as CEVAE does).
"""

from __future__ import annotations

__all__ = [
    "AmortizedFlow",
    "AmortizedNormal",
    "Abduction",
    "Guide",
    "ImportanceAbduction",
    "LowESSWarning",
    "NUTSAbduction",
    "RowNormal",
    "SVIAbduction",
    "counterfactual_query",
    "fit_latent",
    "interventional_query",
    "log_joint",
]

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyro
import torch
import zuko
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer import config_enumerate
from torch import Tensor, nn
from torch.distributions import Distribution, biject_to

from pyrocausal.handlers import intervene
from pyrocausal.inference.counterfactual import noise_site, reparam_noise, replay_counterfactual
from pyrocausal.inference.devices import resolve_device
from pyrocausal.inference.sensitivity import (
    Confounding,
    confounded_counterfactual,
    confounded_interventional,
    latent_confounding,
    warn_unidentified,
)
from pyrocausal.inference.training import History, split_holdout, train_mle
from pyrocausal.results import CausalQueryResult
from pyrocausal.validation import Intervention, check_frame, check_intervention

if TYPE_CHECKING:
    from pyrocausal.models.flow_scm import SCM

#: Plates of the posterior program: rows at -1, draws (particles) at -2, enumeration left of it.
_FIRST_ENUM_DIM = -3
#: Rows x draws evaluated at once when drawing (bounds the memory of one pass).
_MAX_ELEMENTS = 2**18


# ---------------------------------------------------------------- the posterior program
def _is_discrete(scm: SCM, node: str) -> bool:
    g, _ = scm._slot[node]
    return bool(getattr(scm.stacks[g], "discrete", False))


def _program(
    scm: SCM, data: Mapping[str, Tensor], hidden_continuous: Sequence[str], enumerate: bool
) -> Callable:
    """``scm.model`` conditioned on ``data``, hidden continuous nodes exposed through their noise.

    ``data`` holds observed node values and the ``"<node>_base"`` noise of hidden continuous
    nodes; hidden discrete nodes are enumerated in parallel when ``enumerate``.
    """
    model = reparam_noise(scm.model, hidden_continuous)
    model = poutine.condition(model, data=dict(data))
    if enumerate:
        model = poutine.enum(
            config_enumerate(model, default="parallel", expand=False),
            first_available_dim=_FIRST_ENUM_DIM,
        )
    return model


def _trace(
    scm: SCM,
    data: Mapping[str, Tensor],
    hidden_continuous: Sequence[str],
    num_draws: int,
    num_rows: int,
    enumerate: bool,
) -> poutine.Trace:
    model = _program(scm, data, hidden_continuous, enumerate)
    with pyro.plate("draws", num_draws, dim=-2):
        return poutine.trace(model).get_trace(num_rows=num_rows)


def _log_density(trace: poutine.Trace, num_draws: int, num_rows: int) -> Tensor:
    """Sum of every site's log density, shape ``(E, draws, rows)`` (``E`` enumerated configs)."""
    trace.compute_log_prob()
    total: Tensor | float = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample":
            total = total + site["log_prob"]
    total = torch.as_tensor(total)
    shape = torch.broadcast_shapes(total.shape, (num_draws, num_rows))
    return total.expand(shape).reshape(-1, num_draws, num_rows)


def log_joint(
    scm: SCM,
    observed: Mapping[str, Tensor],
    noise: Mapping[str, Tensor],
    hidden_discrete: Sequence[str] = (),
) -> Tensor:
    r"""Per-row ``log p(x_O, u_C)``, with hidden discrete nodes summed out exactly.

    Arguments:
        scm: The model.
        observed: Observed node values, each of shape ``(rows,)``.
        noise: Noise of the hidden continuous nodes, each of shape ``(draws, rows, 1)``.
        hidden_discrete: Hidden discrete nodes (enumerated).

    Returns:
        Tensor of shape ``(draws, rows)``.
    """
    num_rows = _rows(observed, noise)
    num_draws = next((int(u.shape[0]) for u in noise.values()), 1)
    data = {**observed, **{noise_site(n): u for n, u in noise.items()}}
    trace = _trace(scm, data, list(noise), num_draws, num_rows, bool(hidden_discrete))
    return _log_density(trace, num_draws, num_rows).logsumexp(0)


def _rows(observed: Mapping[str, Tensor], noise: Mapping[str, Tensor]) -> int:
    for value in observed.values():
        return int(value.shape[-1])
    for value in noise.values():
        return int(value.shape[-2])
    raise ValueError("nothing observed and nothing hidden")


def _noise_priors(scm: SCM, nodes: Sequence[str]) -> dict[str, Distribution]:
    """The prior of each node's noise site (batch shape ``(1,)``, event shape ``(1,)``)."""
    if not nodes:
        return {}
    with torch.no_grad():
        trace = poutine.trace(reparam_noise(scm.model, nodes)).get_trace(num_rows=1)
    return {n: trace.nodes[noise_site(n)]["fn"] for n in nodes}


def _support(prior: Distribution) -> constraints.Constraint:
    """The support of a noise prior; Zuko bases (flows) do not declare one: the real line."""
    try:
        return prior.support
    except NotImplementedError:
        return constraints.independent(constraints.real, 1)


# ---------------------------------------------------------------- guides
class Guide(nn.Module):
    """A variational family over the unconstrained hidden noise of each row.

    Arguments:
        context: Standardized observed values of the rows, shape ``(rows, c)``.
        dim: Number of hidden continuous nodes.
    """

    #: Adam learning rate that suits this family.
    lr: float = 0.05

    def __init__(self, context: Tensor, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def distribution(self, rows: Tensor) -> Distribution:
        """``q(z | row)`` for the given row positions: batch ``(len(rows),)``, event ``(dim,)``."""
        raise NotImplementedError


class RowNormal(Guide):
    """A full-covariance Gaussian per row (local parameters), started at the prior.

    Exact when the posterior over the hidden noise is Gaussian (e.g. a hidden node that
    enters an observed child linearly with Gaussian noise); the importance resampling of
    :class:`SVIAbduction` corrects it elsewhere.
    """

    lr = 0.05

    def __init__(self, context: Tensor, dim: int) -> None:
        super().__init__(context, dim)
        n = context.shape[0]
        self.loc = nn.Parameter(context.new_zeros(n, dim))
        self.tril = nn.Parameter(context.new_zeros(n, dim, dim))

    @torch.no_grad()
    def initialize(self, problem: _Problem, num_particles: int = 256) -> None:
        """Start at the moments of prior draws weighted by the likelihood (one IS pass)."""
        rows = torch.arange(problem.num_rows, device=self.loc.device)
        self._match(problem, *_prior_sample(problem, rows, num_particles))

    @torch.no_grad()
    def adapt(self, problem: _Problem, alpha: float, num_particles: int = 512) -> None:
        """Move to the importance-weighted moments of draws from ``(1 - alpha) q + alpha prior``.

        One step of moment-matching adaptive importance sampling after the fit: the ELBO's
        Gaussian is mode-seeking and can be narrower than a curved posterior; the weighted
        moments cover its mass, which is what a proposal needs.
        """
        rows = torch.arange(problem.num_rows, device=self.loc.device)
        self._match(problem, *_mixture_sample(problem, self, rows, num_particles, alpha))

    def _match(self, problem: _Problem, noise: dict[str, Tensor], log_q: Tensor) -> None:
        log_w = log_joint(problem.scm, problem.observed, noise, problem.hidden_discrete) - log_q
        w = log_w.softmax(0).unsqueeze(-1)  # (P, n, 1)
        z = torch.cat(
            [t.inv(noise[k]) for k, t in zip(problem.hidden_continuous, problem.bijections())],
            dim=-1,
        )  # (P, n, d)
        mean = (w * z).sum(0)
        centred = z - mean
        cov = torch.einsum("pn,pni,pnj->nij", w.squeeze(-1), centred, centred)
        cov = cov + 1e-2 * torch.eye(self.dim, dtype=cov.dtype, device=cov.device)
        tril = torch.linalg.cholesky(cov)
        diag = tril.diagonal(dim1=-2, dim2=-1)
        self.loc.copy_(mean)
        raw = tril.tril(-1) + torch.diag_embed(torch.log(torch.expm1(diag - 1e-4)) - 0.5413)
        self.tril.copy_(raw)

    def distribution(self, rows: Tensor) -> Distribution:
        raw = self.tril[rows]
        diag = nn.functional.softplus(raw.diagonal(dim1=-2, dim2=-1) + 0.5413) + 1e-4
        scale_tril = raw.tril(-1) + torch.diag_embed(diag)  # softplus(0.5413) = 1
        return pyro.distributions.MultivariateNormal(self.loc[rows], scale_tril=scale_tril)


class AmortizedFlow(Guide):
    """A conditional neural spline flow ``q(z | x_O)`` shared by the rows (amortized).

    One network for the whole query batch: its size does not grow with the number of rows,
    and it can represent skewed and multimodal posteriors.

    Arguments:
        context: Standardized observed values of the rows.
        dim: Number of hidden continuous nodes.
        transforms: Number of spline transforms.
        hidden_features: Hidden layers of the conditioner.
    """

    lr = 5e-3

    def __init__(
        self,
        context: Tensor,
        dim: int,
        transforms: int = 3,
        hidden_features: tuple[int, ...] = (64, 64),
    ) -> None:
        super().__init__(context, dim)
        self.register_buffer("context", context)
        self.flow = zuko.flows.NSF(
            features=dim,
            context=context.shape[-1],
            transforms=transforms,
            hidden_features=hidden_features,
        ).to(dtype=context.dtype, device=context.device)

    def distribution(self, rows: Tensor) -> Distribution:
        context = self.context[rows]
        if context.shape[-1] == 0:
            return self.flow().expand(context.shape[:1])
        return self.flow(context)


class AmortizedNormal(nn.Module):
    """A diagonal Gaussian ``q(z | x_O)`` from a small network of the observed values.

    The encoder of :func:`fit_latent` (as in CEVAE).

    Arguments:
        context_features: Number of observed variables.
        dim: Number of hidden continuous nodes.
        hidden_features: Hidden layers of the encoder.
    """

    def __init__(
        self, context_features: int, dim: int, hidden_features: tuple[int, ...] = (64, 64)
    ) -> None:
        super().__init__()
        widths = [context_features, *hidden_features, 2 * dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        nn.init.zeros_(layers[-1].weight)  # starts at the prior N(0, 1)
        nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def forward(self, context: Tensor) -> Distribution:
        loc, raw = self.net(context).chunk(2, dim=-1)
        scale = nn.functional.softplus(raw + 0.5413) + 1e-4
        return pyro.distributions.Normal(loc, scale).to_event(1)


# ---------------------------------------------------------------- abduction methods
@dataclass(frozen=True)
class Abduction:
    """Base of the posterior abduction methods (how hidden variables are drawn)."""

    def propose(
        self,
        problem: _Problem,
        num_samples: int,
    ) -> _Proposal:
        raise NotImplementedError


@dataclass(frozen=True)
class SVIAbduction(Abduction):
    """Fit a guide to the query batch by SVI, draw from it, importance-resample.

    The defaults were chosen on ``bench/posterior_calibration.py``: with resampling, the 1-D
    Wasserstein distance to the exact posterior counterfactual stays within 2x of the floor
    of exact i.i.d. draws on every pattern there; the guide's own draws
    (``resample=False``) keep about 0.1 posterior sd of optimization noise in their location.

    Arguments:
        guide: The guide's constructor, called as ``guide(context, dim)``:
            :class:`RowNormal` (default) or :class:`AmortizedFlow` (or a ``partial`` of it).
        num_steps: Adam steps.
        num_particles: Draws per row and step in the ELBO estimate.
        lr: Adam learning rate (``None``: the guide's :attr:`Guide.lr`).
        resample: Importance-resample the guide's draws against the exact joint density
            (sampling-importance-resampling) instead of returning them as they are.
        oversample: Proposal draws per returned draw when resampling.
        defensive: Share of the proposal drawn from the prior when resampling (defensive
            importance sampling: the weights stay bounded where the guide is too narrow,
            e.g. on a curved or multimodal posterior).
        reuse: A dictionary in which the guides fitted for the parameter draws of one model
            (``fit_uncertainty="parameters"``) are kept per missingness pattern: the later
            draws propose from the first one's fitted and adapted guide instead of fitting
            their own (set by the query; only with ``resample``, which corrects the proposal
            to each draw's exact posterior).
    """

    guide: Callable[[Tensor, int], Guide] = RowNormal
    num_steps: int = 200
    num_particles: int = 8
    lr: float | None = None
    resample: bool = True
    oversample: int = 8
    defensive: float = 0.25
    reuse: dict | None = field(default=None, compare=False, repr=False)

    def propose(self, problem: _Problem, num_samples: int) -> _Proposal:
        base = problem.scm.__dict__.get("_parameter_base")
        key = None
        if self.reuse is not None and base is not None and self.resample:
            key = (base, problem.hidden_continuous, problem.hidden_discrete, problem.num_rows,
                   tuple(problem.observed))  # fmt: skip
        if key is not None and key in self.reuse:
            guide, losses = self.reuse[key], []  # fitted and adapted: only sampled from
        else:
            guide = self.guide(problem.context, len(problem.hidden_continuous))
            guide.to(dtype=problem.context.dtype, device=problem.context.device)
            lr = self.lr if self.lr is not None else getattr(guide, "lr", Guide.lr)
            if hasattr(guide, "initialize"):
                guide.initialize(problem)
            losses = _fit_guide(problem, guide, self.num_steps, self.num_particles, lr)
            if self.resample and hasattr(guide, "adapt"):
                guide.adapt(problem, max(self.defensive, 0.05))
            if key is not None:
                self.reuse[key] = guide
        draws = num_samples * (self.oversample if self.resample else 1)
        alpha = self.defensive if self.resample else 0.0
        return _Proposal(
            lambda rows, p: _mixture_sample(problem, guide, rows, p, alpha),
            draws,
            self.resample,
            info={"elbo": -losses[-1] if losses else float("nan")},
            trace={"elbo": -np.asarray(losses, dtype=np.float64)},
        )


@dataclass(frozen=True)
class ImportanceAbduction(Abduction):
    """Importance sampling with the prior of the hidden noise as the proposal.

    No fitting and no approximation beyond the finite number of particles: the reference to
    check a guide against on small problems. Its effective sample size collapses when the
    evidence is informative.

    Arguments:
        num_particles: Prior draws per row; ``num_samples`` of them are resampled.
    """

    num_particles: int = 10_000

    def propose(self, problem: _Problem, num_samples: int) -> _Proposal:
        return _Proposal(
            lambda rows, p: _prior_sample(problem, rows, p),
            max(self.num_particles, num_samples),
            True,
        )


@dataclass(frozen=True)
class NUTSAbduction(Abduction):
    """Hamiltonian Monte Carlo (Pyro's NUTS) on the hidden noise of all rows at once.

    Exact in the limit; one chain, a diagonal mass matrix adapted in the warm-up. Hidden
    discrete nodes are summed out in the potential and drawn afterwards from their exact
    conditional. Meant for small problems (tens of rows).

    Arguments:
        warmup_steps: Adaptation steps.
        max_tree_depth: NUTS tree depth limit.
    """

    warmup_steps: int = 300
    max_tree_depth: int = 8

    def propose(self, problem: _Problem, num_samples: int) -> _Proposal:
        z, diverging = _nuts(problem, num_samples, self.warmup_steps, self.max_tree_depth)

        def sample(rows: Tensor, p: int) -> tuple[dict[str, Tensor], Tensor]:
            noise, log_det = problem.constrain(z[:p, rows])
            return noise, -log_det  # weights unused: the chain's draws are the posterior

        from pyro.ops.stats import effective_sample_size, split_gelman_rubin

        chain = z.unsqueeze(0).double().cpu()  # (1, S, n, d): one chain
        r_hat = split_gelman_rubin(chain, chain_dim=0, sample_dim=1)  # (n, d)
        ess = effective_sample_size(chain, chain_dim=0, sample_dim=1)
        return _Proposal(
            sample,
            num_samples,
            False,
            weighted=False,
            row_stats={
                "r_hat": r_hat.amax(-1).numpy(),  # the worst hidden coordinate of each row
                "ess_bulk": ess.amin(-1).numpy(),
            },
            draw_stats={"diverging": diverging},
        )


# ---------------------------------------------------------------- problem and proposals
@dataclass
class _Problem:
    """The rows of one missingness pattern and what is hidden in them."""

    scm: SCM
    observed: dict[str, Tensor]  # node -> (n,)
    hidden_continuous: tuple[str, ...]
    hidden_discrete: tuple[str, ...]
    context: Tensor  # (n, c) standardized observed values
    priors: dict[str, Distribution] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return int(self.context.shape[0])

    def bijections(self) -> list[torch.distributions.Transform]:
        return [biject_to(_support(self.priors[n])) for n in self.hidden_continuous]

    def constrain(self, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Unconstrained ``z (..., d)`` -> noise per node ``(..., 1)`` and ``log|det|``."""
        noise, log_det = {}, z.new_zeros(z.shape[:-1])
        for i, (node, t) in enumerate(zip(self.hidden_continuous, self.bijections())):
            zi = z[..., i : i + 1]
            u = t(zi)
            log_det = log_det + t.log_abs_det_jacobian(zi, u)
            noise[node] = u
        return noise, log_det

    def select(self, rows: Tensor) -> dict[str, Tensor]:
        return {k: v[rows] for k, v in self.observed.items()}


@dataclass
class _Proposal:
    #: ``sample(rows, p) -> (noise {node: (p, len(rows), 1)}, log q (p, len(rows)))``
    sample: Callable[[Tensor, int], tuple[dict[str, Tensor], Tensor]]
    num_draws: int
    resample: bool
    info: dict[str, float] = field(default_factory=dict)
    #: Per-step traces of the fit (e.g. ``elbo``), each ``(steps,)``.
    trace: dict[str, np.ndarray] = field(default_factory=dict)
    #: Per-row statistics over the problem's rows (e.g. NUTS ``r_hat``), each ``(n,)``.
    row_stats: dict[str, np.ndarray] = field(default_factory=dict)
    #: Per-draw statistics (e.g. NUTS ``diverging``), each ``(num_draws,)``.
    draw_stats: dict[str, np.ndarray] = field(default_factory=dict)
    #: Whether the draws carry importance weights, so that their effective sample size
    #: means something (not for a Markov chain's draws).
    weighted: bool = True


def _guide_sample(
    problem: _Problem, guide: Guide, rows: Tensor, p: int
) -> tuple[dict[str, Tensor], Tensor]:
    q = guide.distribution(rows)
    z = q.rsample((p,))  # (p, n, d)
    noise, log_det = problem.constrain(z)
    return noise, q.log_prob(z) - log_det


def _mixture_sample(
    problem: _Problem, guide: Guide, rows: Tensor, p: int, alpha: float
) -> tuple[dict[str, Tensor], Tensor]:
    """Draws from ``(1 - alpha) q + alpha prior`` and their log density under the mixture."""
    n_prior = int(round(alpha * p))
    if n_prior == 0:
        return _guide_sample(problem, guide, rows, p)
    guided, _ = _guide_sample(problem, guide, rows, p - n_prior)
    prior, _ = _prior_sample(problem, rows, n_prior)
    noise = {k: torch.cat([guided[k], prior[k]]) for k in problem.hidden_continuous}
    z = torch.cat(
        [t.inv(noise[k]) for k, t in zip(problem.hidden_continuous, problem.bijections())], -1
    )
    _, log_det = problem.constrain(z)
    log_guide = guide.distribution(rows).log_prob(z) - log_det
    log_prior = sum(problem.priors[k].log_prob(noise[k]) for k in problem.hidden_continuous)
    log_q = torch.logaddexp(log_guide + math.log1p(-alpha), log_prior + math.log(alpha))
    return noise, log_q


def _prior_sample(problem: _Problem, rows: Tensor, p: int) -> tuple[dict[str, Tensor], Tensor]:
    noise, log_q = {}, None
    for node in problem.hidden_continuous:
        prior = problem.priors[node].expand((p, len(rows)))
        u = prior.sample()
        noise[node] = u
        lp = prior.log_prob(u)
        log_q = lp if log_q is None else log_q + lp
    if log_q is None:
        log_q = torch.zeros(p, len(rows), dtype=problem.context.dtype)
    return noise, log_q


def _fit_guide(
    problem: _Problem, guide: Guide, num_steps: int, num_particles: int, lr: float
) -> list[float]:
    """Maximize the ELBO of every row (their sum) over the guide's parameters."""
    rows = torch.arange(problem.num_rows, device=problem.context.device)
    optimizer = torch.optim.Adam(guide.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_steps, lr * 0.05)
    losses = []
    with torch.enable_grad():
        for _ in range(num_steps):
            noise, log_q = _guide_sample(problem, guide, rows, num_particles)
            lj = log_joint(problem.scm, problem.observed, noise, problem.hidden_discrete)
            loss = -(lj - log_q).mean(0).sum() / problem.num_rows
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
    guide.requires_grad_(False)
    return losses


def _nuts(
    problem: _Problem, num_samples: int, warmup_steps: int, max_tree_depth: int
) -> tuple[Tensor, np.ndarray]:
    """The chain's draws of the unconstrained hidden noise ``(S, n, d)`` and which diverged."""
    from pyro.infer.mcmc import MCMC, NUTS

    n, d = problem.num_rows, len(problem.hidden_continuous)

    def potential(params: dict[str, Tensor]) -> Tensor:
        z = params["z"].unsqueeze(0)  # (1, n, d)
        noise, log_det = problem.constrain(z)
        lj = log_joint(problem.scm, problem.observed, noise, problem.hidden_discrete)
        return -(lj + log_det).sum()

    kernel = NUTS(potential_fn=potential, max_tree_depth=max_tree_depth, full_mass=False)
    mcmc = MCMC(
        kernel,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        initial_params={"z": problem.context.new_zeros(n, d)},
        disable_progbar=True,
    )
    with torch.enable_grad():
        mcmc.run()
    diverging = np.zeros(num_samples, dtype=bool)
    diverging[list(mcmc.diagnostics()["divergences"]["chain 0"])] = True
    return mcmc.get_samples()["z"].detach(), diverging


# ---------------------------------------------------------------- drawing complete rows
def _complete(
    problem: _Problem, proposal: _Proposal, rows: Tensor, num_samples: int
) -> tuple[dict[str, Tensor], Tensor]:
    """Draw the hidden variables of ``rows``: complete values ``(S, n)`` and the ESS ``(n,)``."""
    scm, n, s = problem.scm, len(rows), num_samples
    observed = problem.select(rows)
    hc, hd = problem.hidden_continuous, problem.hidden_discrete
    if not hc and not hd:
        values = {k: v.expand(s, n) for k, v in observed.items()}
        return values, torch.full((n,), float(s))
    p = proposal.num_draws if hc else 1
    noise, log_q = proposal.sample(rows, p) if hc else ({}, problem.context.new_zeros(1, n))
    data = {**observed, **{noise_site(k): u for k, u in noise.items()}}
    trace = _trace(scm, data, hc, p, n, bool(hd))
    table = _log_density(trace, p, n)  # (E, p, n)
    log_w = table.logsumexp(0) - log_q
    weights = log_w.softmax(0)
    ess = 1.0 / weights.square().sum(0)
    if not hc:  # only discrete variables hidden: the table is the exact posterior
        index = torch.zeros(s, n, dtype=torch.long, device=log_w.device)
        ess = torch.full((n,), float(s), device=log_w.device)  # independent exact draws
    elif proposal.resample:
        index = torch.multinomial(weights.T, s, replacement=True).T  # (S, n)
    else:
        index = torch.arange(s, device=log_w.device).unsqueeze(-1).expand(s, n)
    chosen = {k: u.gather(0, index.unsqueeze(-1)) for k, u in noise.items()}
    data = {**observed, **{noise_site(k): u for k, u in chosen.items()}}
    if hd:  # each hidden discrete node from its exact conditional given the chosen draw
        e = table.shape[0]
        conditional = table.gather(1, index.unsqueeze(0).expand(e, s, n))  # (E, S, n)
        config = torch.distributions.Categorical(logits=conditional.permute(1, 2, 0)).sample()
        full = trace.nodes["_RETURN"]["value"]
        enum_shape = torch.broadcast_shapes(*(full[d].shape for d in hd), (p, n))
        for d in hd:
            flat = full[d].expand(enum_shape).reshape(e, p, n)
            picked = flat.gather(1, index.unsqueeze(0).expand(e, s, n))  # (E, S, n)
            data[d] = picked.gather(0, config.unsqueeze(0)).squeeze(0)
    with torch.no_grad():
        final = _trace(scm, data, hc, s, n, False)
    values = final.nodes["_RETURN"]["value"]
    return {k: v.expand(s, n) for k, v in values.items()}, ess


# ---------------------------------------------------------------- queries
def _standardized(scm: SCM, observed: Mapping[str, Tensor], n: int) -> Tensor:
    columns = [scm._standardize(k, v) for k, v in observed.items()]
    if not columns:
        return scm.loc.new_zeros(n, 0)
    return torch.stack(columns, dim=-1)


def _row_chunks(n: int, num_draws: int) -> list[slice]:
    size = max(1, _MAX_ELEMENTS // max(1, num_draws))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _subset_intervention(iv: Mapping[str, Any], rows: np.ndarray, n: int) -> dict[str, Any]:
    out = {}
    index = torch.as_tensor(rows)
    for k, v in iv.items():
        if isinstance(v, Tensor) and v.dim() == 1 and v.shape[0] == n and n > 1:
            out[k] = v[index.to(v.device)]
        else:
            out[k] = v
    return out


def counterfactual_query(
    scm: SCM,
    evidence: pd.DataFrame,
    intervention: Intervention,
    num_samples: int,
    *,
    abduction: Abduction | None = None,
    seed: int | None = None,
    confounding: Confounding | None = None,
) -> CausalQueryResult:
    """Posterior counterfactual draws for every row of ``evidence`` (NaN = not observed).

    See :meth:`SCM.counterfactual <pyrocausal.models.SCM.counterfactual>`; a query that
    depends on a learned latent node warns, and a latent confounder of one treatment and one
    outcome is answered under ``confounding`` (see :mod:`pyrocausal.inference.sensitivity`).
    """
    from pyrocausal.models.flow_scm import _seeded

    scm._check_fitted()
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    latent_given = [c for c in getattr(evidence, "columns", []) if c in scm.graph.latent]
    if latent_given:
        raise ValueError(
            f"latent node(s) {latent_given} are never observed; drop their column(s) from the "
            "evidence"
        )
    frame = check_frame(evidence, scm.graph.observed, what="evidence", allow_nan=True)
    if not frame.index.is_unique:
        raise ValueError("the evidence's index labels the rows of the answer: make it unique")
    n = len(frame)
    iv = check_intervention(intervention, scm.graph, n, dtype=scm.dtype, device=scm.device)
    abduction = abduction if abduction is not None else SVIAbduction()
    nodes = scm.graph.nodes
    changed = set(iv).union(*(scm.graph.descendants(k) for k in iv))
    confounded = _confounded(scm, frame, iv, changed, confounding)
    if confounded is not None:
        return _confounded_result(scm, frame, intervention, iv, num_samples, *confounded)
    shape = (num_samples, n)
    factual = {k: np.empty(shape) for k in nodes}
    counterfactual = {k: np.empty(shape) for k in nodes}
    naive = {k: np.empty(shape) for k in nodes}
    ess = np.empty(n)
    pattern_of_row = np.empty(n, dtype=np.int64)
    info: dict[str, list[float]] = {}
    traces: dict[str, dict[int, np.ndarray]] = {}
    row_stats: dict[str, np.ndarray] = {}
    draw_stats: dict[str, np.ndarray] = {}
    observed_mask = frame.notna().to_numpy()
    patterns, inverse = np.unique(observed_mask, axis=0, return_inverse=True)
    start = time.perf_counter()
    with _seeded(seed), torch.no_grad():
        for g, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse.reshape(-1) == g)
            seen = [c for c, o in zip(frame.columns, pattern) if o]
            hidden = [k for k in nodes if k not in seen]
            values = {
                c: torch.as_tensor(frame[c].to_numpy()[rows], dtype=scm.dtype, device=scm.device)
                for c in seen
            }
            problem = _Problem(
                scm,
                values,
                tuple(k for k in hidden if not _is_discrete(scm, k)),
                tuple(k for k in hidden if _is_discrete(scm, k)),
                _standardized(scm, values, len(rows)),
            )
            problem.priors = _noise_priors(scm, problem.hidden_continuous)
            proposal = (
                abduction.propose(problem, num_samples) if problem.hidden_continuous else None
            )
            pattern_of_row[rows] = g
            for key, value in (proposal.info if proposal else {}).items():
                info.setdefault(key, []).append(value)
            if proposal is not None:
                for key, curve in proposal.trace.items():
                    traces.setdefault(key, {})[g] = curve
                for key, per_row in proposal.row_stats.items():
                    row_stats.setdefault(key, np.full(n, np.nan))[rows] = per_row
                for key, per_draw in proposal.draw_stats.items():
                    seen_draws = draw_stats.setdefault(key, np.zeros(num_samples, per_draw.dtype))
                    seen_draws |= per_draw[:num_samples]  # any pattern's chain at that draw
            group_iv = _subset_intervention(iv, rows, n)
            for chunk in _row_chunks(len(rows), proposal.num_draws if proposal else num_samples):
                local = torch.arange(len(rows))[chunk]
                complete, chunk_ess = _complete(
                    problem, proposal or _Proposal(None, 1, False), local, num_samples
                )
                chunk_iv = _subset_intervention(group_iv, local.numpy(), len(rows))
                cf = _replay(scm, complete, chunk_iv, num_samples, len(local))
                prior = _interventional(scm, chunk_iv, num_samples, len(local))
                target = rows[chunk]
                weighted = proposal is None or proposal.weighted
                ess[target] = chunk_ess.cpu().numpy() if weighted else np.nan
                for k in nodes:
                    if k in seen:  # observed: the evidence itself, not its float32 round trip
                        factual[k][:, target] = frame[k].to_numpy()[target]
                    else:
                        factual[k][:, target] = complete[k].cpu().numpy()
                    counterfactual[k][:, target] = (
                        cf[k].cpu().numpy() if k in changed else factual[k][:, target]
                    )
                    naive[k][:, target] = prior[k].cpu().numpy()
    seconds = time.perf_counter() - start
    index = pd.MultiIndex.from_product([frame.index, range(num_samples)], names=["row", "draw"])
    _check_ess(ess, num_samples, type(abduction).__name__)

    def framed(draws: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({k: v.T.reshape(-1) for k, v in draws.items()}, index=index)

    diagnostics = pd.DataFrame(
        {
            "hidden": [
                ",".join(k for k in nodes if not (k in frame and pd.notna(frame[k].iloc[i])))
                for i in range(n)
            ],
            "ess": ess,
            "pattern": pattern_of_row,
            **row_stats,
        },
        index=frame.index.rename("row"),
    )
    stats: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        k: (("draw",), v) for k, v in draw_stats.items()
    }
    for key, curves in traces.items():  # (pattern, step), NaN-padded
        table = np.full((len(patterns), max(len(c) for c in curves.values())), np.nan)
        for g, curve in curves.items():
            table[g, : len(curve)] = curve
        stats[key] = (("missingness_pattern", "abduction_step"), table)
    return CausalQueryResult(
        "counterfactual",
        framed(counterfactual),
        factual=framed(factual),
        interventional=framed(naive),
        evidence=frame,
        intervention=dict(intervention),
        diagnostics=diagnostics,
        stats=stats,
        discrete=tuple(k for k in nodes if _is_discrete(scm, k)),
        info={
            "method": type(abduction).__name__,
            "seconds": seconds,
            **{k: float(np.mean(v)) for k, v in info.items()},
        },
    )


class LowESSWarning(UserWarning):
    """Importance weights of a posterior query collapsed on some rows (few effective draws)."""


def _check_ess(ess: np.ndarray, num_samples: int, method: str) -> None:
    """Warn when a row's draws rest on fewer than ``min(100, num_samples / 10)`` effective
    importance draws (the answer there is a handful of distinct values)."""
    floor = min(100.0, num_samples / 10)
    low = np.flatnonzero(np.isfinite(ess) & (ess < floor))
    if low.size:
        warnings.warn(
            f"{method}: {low.size} row(s) have fewer than {floor:.0f} effective draws "
            f"(minimum {np.nanmin(ess):.1f}; see result.diagnostics['ess']); their answers "
            "rest on a few distinct values. "
            + (
                "Use SVIAbduction (the default) or more particles."
                if method == "ImportanceAbduction"
                else "More proposal draws (oversample=) or guide steps (num_steps=) help."
            ),
            LowESSWarning,
            stacklevel=4,
        )


def _confounded(
    scm: SCM,
    frame: pd.DataFrame,
    iv: Mapping[str, Any],
    changed: set[str],
    confounding: Confounding | None,
) -> tuple[str, str, Confounding] | None:
    """Warn when a counterfactual depends on a learned latent node; ``(treatment, outcome,
    assumption)`` when the sensitivity model answers it (see :mod:`.sensitivity`)."""
    targets = sorted(k for k in changed if k not in iv)
    latent, pair = latent_confounding(scm, targets, iv, "counterfactual")
    complete = bool(frame.notna().to_numpy().all())
    supported = pair is not None and complete
    if confounding is not None and not supported:
        raise ValueError(
            "confounding= is the sensitivity model of a latent confounder of one treatment "
            "and one continuous outcome (a latent root whose only children are t and y, "
            "t -> y), with the treatment intervened on and every observed column of every "
            f"row given; this query depends on latent node(s) {latent}"
            + ("" if complete else " and the evidence has missing values")
        )
    if latent and confounding is None:
        query = f"the counterfactual of {targets} under do({', '.join(iv)})"
        warn_unidentified(latent, query, supported)
    if not supported:
        return None
    assert pair is not None
    return pair[0], pair[1], confounding if confounding is not None else Confounding()


def _confounded_result(
    scm: SCM,
    frame: pd.DataFrame,
    intervention: Intervention,
    iv: Mapping[str, Any],
    num_samples: int,
    treatment: str,
    outcome: str,
    confounding: Confounding,
) -> CausalQueryResult:
    start = time.perf_counter()
    marginal = scm.marginal
    assert marginal is not None
    level = iv[treatment]
    level = level.detach().cpu().numpy() if isinstance(level, Tensor) else np.asarray(level)
    draws = confounded_counterfactual(
        marginal, frame, {treatment: level}, treatment, outcome, confounding, num_samples
    )
    index = pd.MultiIndex.from_product([frame.index, range(num_samples)], names=["row", "draw"])

    def framed(values: Mapping[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({k: np.asarray(v).T.reshape(-1) for k, v in values.items()}, index)

    factual = {c: np.broadcast_to(frame[c].to_numpy(np.float64), draws[c].shape) for c in frame}
    rho = confounding.draws(num_samples)
    return CausalQueryResult(
        "counterfactual",
        framed(draws),
        factual=framed(factual),
        evidence=frame,
        intervention=dict(intervention),
        stats={"rho": (("draw",), rho)},
        discrete=tuple(k for k in marginal.graph.nodes if _is_discrete(marginal, k)),
        info={
            "method": "Confounding",
            "rho": confounding.bounds,
            "seconds": time.perf_counter() - start,
            "distinct_rho": int(np.unique(rho).size),
        },
    )


def _replay(
    scm: SCM, complete: Mapping[str, Tensor], iv: Mapping[str, Any], s: int, n: int
) -> dict[str, Tensor]:
    """Exact abduction of complete rows ``(S, n)``, then replay under ``iv``."""
    with pyro.plate("draws", s, dim=-2):
        trace = poutine.trace(scm.guide).get_trace(dict(complete))
        values = replay_counterfactual(scm.model, trace, iv, scm.graph.nodes, num_rows=n)
    return {k: v.expand(s, n) for k, v in values.items()}


def _interventional(scm: SCM, iv: Mapping[str, Any], s: int, n: int) -> dict[str, Tensor]:
    """Draws of the intervened model for ``n`` rows, ignoring their evidence."""
    model = intervene(scm.model, iv) if iv else scm.model
    with pyro.plate("draws", s, dim=-2):
        values = model(num_rows=n)
    return {k: v.expand(s, n) for k, v in values.items()}


def interventional_query(
    scm: SCM, intervention: Intervention, num_samples: int, *, seed: int | None = None
) -> CausalQueryResult:
    """Interventional draws beside observational ones (common random numbers).

    See :meth:`InterventionalSCM.query <pyrocausal.models.InterventionalSCM.query>`.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    iv = check_intervention(intervention, scm.graph)
    targets = sorted(set().union(*(scm.graph.descendants(k) for k in iv)) - set(iv))
    latent, pair = latent_confounding(scm, targets, iv, "interventional")
    supported = pair is not None and not callable(iv[pair[0]])
    if latent:
        warn_unidentified(latent, f"the distribution of {targets} under do({', '.join(iv)})",
                          supported)  # fmt: skip
    model, info = scm, {}
    if supported and pair is not None and scm.marginal is not None:
        model, info = scm.marginal, {"method": "Confounding", "rho": Confounding().bounds}
        doing, _ = confounded_interventional(
            model, pair[0], pair[1], float(iv[pair[0]]), Confounding(), num_samples, seed
        )
    else:
        doing = scm.do(intervention).sample(num_samples, seed=seed)
    seeing = model.sample(num_samples, seed=seed)
    index = pd.MultiIndex.from_product([[0], range(num_samples)], names=["row", "draw"])
    return CausalQueryResult(
        "interventional",
        doing.set_axis(index),
        factual=seeing.set_axis(index),
        intervention=dict(intervention),
        discrete=tuple(k for k in model.graph.nodes if _is_discrete(model, k)),
        info=info,
    )


# ---------------------------------------------------------------- fitting with latent nodes
def fit_latent(
    scm: SCM,
    frame: pd.DataFrame,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    device: str | torch.device,
    progress: bool,
    val_fraction: float,
    patience: int | None,
    weight_decay: float,
    cosine: bool,
    seed: int | None,
    hidden_features: tuple[int, ...] = (64, 64),
) -> History:
    """Fit an SCM with latent nodes by SVI with an amortized Gaussian encoder (as CEVAE).

    The loss is the negative evidence lower bound of each row,
    ``-E_q[log p(x_O, u_L) - log q(u_L | x_O)]``: continuous latent nodes through their
    noise (one reparameterized draw per row and step), discrete latent nodes summed out
    exactly. Observed columns are standardized as in :meth:`SCM.fit`; latent nodes keep
    location 0 and scale 1, so their mechanisms set their scale. Called by
    :meth:`SCM.fit` when the graph has latent nodes.

    Returns:
        The :class:`~pyrocausal.inference.History` of the negative ELBO per row.
    """
    dev = resolve_device(device)
    if seed is not None:
        torch.manual_seed(seed)
    scm._reset_parameters()
    scm.to(dev)
    nodes = scm.graph.nodes
    observed = list(scm.graph.observed)
    latent = list(scm.graph.latent)
    columns = torch.tensor([scm._index[k] for k in observed], device=dev)
    x = torch.tensor(frame[observed].to_numpy(), dtype=scm.dtype, device=dev)
    with torch.no_grad():
        scm.loc.zero_()
        scm.scale.fill_(1.0)
        scm.loc[columns] = x.mean(0)
        scm.scale[columns] = x.std(0)
        scm.fitted.fill_(True)
    z = (x - scm.loc[columns]) / scm.scale[columns]
    generator = torch.Generator().manual_seed(
        seed if seed is not None else int(torch.randint(2**31, ()))
    )
    # Least-squares start of the flows, with independent N(0, 1) draws in the latent columns.
    full = torch.randn(len(z), len(nodes), generator=generator).to(device=dev, dtype=scm.dtype)
    full[:, columns] = z
    # (Hand-written and discrete mechanisms keep their given start: fitted alone on random
    # latent values they would set their latent effects to zero, a saddle of the ELBO.)
    for stack, (_, group) in zip(scm.stacks, scm._groups):
        if not getattr(stack, "raw_units", False):
            stack.initialize(full, torch.tensor([scm._index[k] for k in group], device=dev))
    hidden_continuous = [k for k in latent if not _is_discrete(scm, k)]
    hidden_discrete = [k for k in latent if _is_discrete(scm, k)]
    encoder = AmortizedNormal(len(observed), max(1, len(hidden_continuous)), hidden_features)
    encoder.to(device=dev, dtype=scm.dtype)
    priors = _noise_priors(scm, hidden_continuous)
    bijections = [biject_to(_support(priors[k])) for k in hidden_continuous]
    loc, scale = scm.loc[columns], scm.scale[columns]

    def nll(batch: Tensor) -> Tensor:
        values = batch * scale + loc
        obs = {k: values[:, i] for i, k in enumerate(observed)}
        noise: dict[str, Tensor] = {}
        log_q = batch.new_zeros(1, len(batch))
        if hidden_continuous:
            q = encoder(batch)
            draw = q.rsample((1,))  # (1, b, d)
            log_q = q.log_prob(draw)
            for i, (k, t) in enumerate(zip(hidden_continuous, bijections)):
                zi = draw[..., i : i + 1]
                u = t(zi)
                log_q = log_q - t.log_abs_det_jacobian(zi, u)
                noise[k] = u
        lj = log_joint(scm, obs, noise, hidden_discrete)
        return -(lj - log_q).mean()

    train, val = split_holdout(z, val_fraction, generator)
    modules = nn.ModuleList([scm.stacks, encoder])
    return train_mle(
        modules,
        nll,
        train,
        val_data=val,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        cosine=cosine,
        seed=seed,
        progress=progress,
        description="SCM.fit (latent nodes, SVI)",
    )
