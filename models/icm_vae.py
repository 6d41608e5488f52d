r"""ICM-VAE: causal mechanisms as autoregressive flows and a causally factorized prior.

Komanduri et al., "Learning Causally Disentangled Representations via the Principle of
Independent Causal Mechanisms", IJCAI 2024.
With a known DAG over ``n`` factors and a ``k``-dimensional latent block per factor:

* each mechanism is a diffeomorphism ``z_i = f_i(eps_i; z_pa(i))``: a Zuko conditional
  autoregressive flow over the block, conditioned on the parents' blocks (affine MAF by
  default, ``z_i = exp(s(z_pa)) * eps_i + t(z_pa)`` autoregressively; ``flow="nsf"`` for
  monotonic rational-quadratic splines). Roots get an unconditional flow. The affine scales
  are kept in ``[min_slope, 1 / min_slope]`` (see :class:`ICMVAE`);
* causally factorized prior ``p(z | y) = prod_i p(z_i | z_pa(i), y_i)``, each a Gaussian of
  scale ``lambda_2`` (0.1 by default, 1 in the reference code; see
  :class:`~pyrocausal.models.crl_base.CRLModel`) whose mean is an affine flow of the label
  conditioned on the parents, ``exp(s'(z_pa)) * y_i + t'(z_pa)`` (the reference form).
  ``s'`` is squashed into ``[-max_log_scale, max_log_scale]`` and centred over the block
  (``exp(s')`` has unit geometric mean), so that the label term can be neither scaled away,
  which would switch the supervision off, nor shrunk with the whole block (changes from the
  reference code; see :class:`ICMVAE`);
* loss ``-log p(x | z) + alpha KL(q(z | x) || p(z)) + beta sum_i KL(N(z_i, I) || p(z_i |
  z_pa(i), y_i))``, where the mechanisms' prior over the latents has the log-determinant
  term of the change of variables, ``log p(z) = sum_i log N(eps_i; 0, I) + log|det
  deps_i/dz_i|`` with ``eps_i = f_i^{-1}(z_i; z_pa(i))``. ``alpha`` is annealed to 0.1 and
  ``beta`` to 1.2 linearly, starting above zero, over the first quarter of the epochs (the
  reference code ramps over 94 of 100 epochs; see ``warmup_fraction`` of :class:`ICMVAE`).

  The encoder infers the latent blocks, ``q(z | x)``, and abduction is the exact flow
  inverse of them (``abduction="latent"``, see :class:`~pyrocausal.models.crl_base.CRLModel`).
  The reference code encodes the noise instead, ``q(eps | x)``, with the loss
  ``alpha (KL(q(eps | x) || N(0, I)) - log|det dz/deps|)``; that is ``abduction="noise"``.
  Its extra ``-log|det dz/deps|`` (the KL is already invariant under the mechanisms)
  rewards large flow scales, and a mechanism can only take over a child's variation if the
  encoder moves the child's noise the opposite way at the same time: at the benchmark's
  budget the mechanisms moved the shadow blocks a quarter of the way a change of the
  pendulum asks for, and the counterfactuals kept the factual shadows. Measured on Pendulum
  (whole splits, 20 epochs, lr 2e-3, seeds 0 / 1): descendant effectiveness 0.040 / 0.044
  and counterfactual image MSE 0.00079 / 0.00102 with ``"latent"``; 0.342 and 0.0141 (means
  of the same seeds) with ``"noise"``.

Interventions overwrite a block inside the flow loop (through :func:`pyro.do` on the
factor's site), so descendants are recomputed from their own abducted noise.

Example:
    >>> import torch
    >>> from pyrocausal.models.icm_vae import ICMVAE
    >>> model = ICMVAE({"a": [], "b": ["a"]}, (1, 16, 16), latent_dim=2)
    >>> out = model.counterfactual(torch.rand(4, 1, 16, 16), {"a": 0.5})
    >>> out.images.shape, out.latents["b"].shape
    (torch.Size([4, 1, 16, 16]), torch.Size([4, 2]))
"""

from __future__ import annotations

__all__ = ["FLOWS", "ICMVAE"]

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
import zuko
from torch import Tensor, nn
from zuko.transforms import MonotonicAffineTransform

from pyrocausal.inference.svi import LinearWarmup
from pyrocausal.models.crl_base import CRLModel

#: Flow families for the mechanisms: ``name -> constructor(features, context, **kwargs)``.
FLOWS: dict[str, Callable[..., zuko.flows.LazyDistribution]] = {
    "maf": zuko.flows.MAF,
    "nsf": zuko.flows.NSF,
}


class _AffineLabelPrior(nn.Module):
    """``(a, b) = (exp(s'), t')`` of the prior mean ``a * y + b``, from the parents' blocks."""

    def __init__(
        self, features: int, context: int, hidden_features: int, max_log_scale: float
    ) -> None:
        super().__init__()
        self.features = features
        self.max_log_scale = max_log_scale
        if context:
            self.net = nn.Sequential(
                nn.Linear(context, hidden_features),
                nn.ELU(),
                nn.Linear(hidden_features, 2 * features),
            )
        else:
            self.net = None
            self.raw = nn.Parameter(torch.zeros(2 * features))

    def forward(self, context: Tensor | None) -> tuple[Tensor, Tensor]:
        raw = self.raw if self.net is None else self.net(context)
        log_scale, shift = raw.split(self.features, dim=-1)
        bound = self.max_log_scale
        log_scale = bound * torch.tanh(log_scale / bound)
        # Unit geometric mean: the block's overall scale is the label's own. Left free, the
        # supervision KL (absolute squared error at the fixed scale lambda_2) is cheapest
        # with every latent shrunk, and the scale sat at its lower bound (see ICMVAE).
        log_scale = log_scale - log_scale.mean(-1, keepdim=True)
        return torch.exp(log_scale), shift


class ICMVAE(CRLModel):
    """ICM-VAE (see the module docstring).

    Arguments:
        graph: Causal graph over the factors.
        image_shape: ``(C, H, W)``.
        flow: ``"maf"`` (affine, default) or ``"nsf"`` (splines): the mechanisms' flow family.
        flow_transforms: Number of autoregressive transforms per mechanism.
        hidden_features: Hidden layers of each flow's conditioner.
        prior_hidden_features: Width of the prior's ``(s', t')`` network.
        max_log_scale: Bound on ``|s'|`` of the prior mean, before ``s'`` is centred over
            the block. The centring fixes the block's overall scale to the label's: with a
            free scale the supervision KL (a squared error at the fixed scale ``lambda_2``)
            is cheapest with every latent shrunk, and on Pendulum the scale sat at its lower
            bound ``exp(-1)`` for the children, the latent blocks shrank to a fraction of the
            labels' spread and the abducted noise cost next to nothing under ``N(0, I)``.
            Measured (2,048 images, 20 epochs, lr 2e-3, seed 0, ramp over 94% of the epochs):
            MCC 0.85 and DCI-D 0.79 without the centring, 0.96 and 0.91 with it. The
            children's mechanisms still depend only weakly on the parents at that budget
            (shifting the parents moves a child block by about a tenth of its spread).
        min_slope: The affine mechanisms' scales ``exp(s)`` are kept in
            ``[min_slope, 1 / min_slope]`` (Zuko's soft bound). With ``abduction="noise"``
            the reference loss's ``-alpha log|det|`` term rewards large scales without limit
            otherwise: the flows then amplify an ever
            smaller abducted noise, and training became unstable on Pendulum (a loss spike
            from 2,474 to 8,310 nats at epoch 14 of 20 with Zuko's default bound 1e-3).
        warmup_fraction: Fraction of the epochs over which alpha and beta ramp up (0.94
            reproduces the reference code's schedule). Default 0.25: at the budgets of the
            benchmark (20 epochs) a ramp over 94% of the run keeps the supervision at half
            strength or less for half of it, and the decoder learns to read the factors
            from directions that the labels do not control. Measured on Pendulum (2,048
            images, 20 epochs, lr 2e-3, seed 0, with the centred label scale): intervened
            root's oracle error 0.37 with 0.94 and 0.29 with 0.25 (label units), descendants'
            0.41 and 0.36, MCC 0.96 and 0.98.
        **kwargs: See :class:`~pyrocausal.models.crl_base.CRLModel` (``abduction``: default
            ``"latent"``, see the module docstring).
    """

    default_kl_weight = 0.1
    default_supervision_weight = 1.2
    default_abduction = "latent"

    def __init__(
        self,
        graph: Any,
        image_shape: tuple[int, int, int],
        *,
        flow: str = "maf",
        flow_transforms: int = 1,
        hidden_features: Sequence[int] = (64, 64),
        prior_hidden_features: int = 32,
        max_log_scale: float = 1.0,
        min_slope: float = 0.05,
        warmup_fraction: float = 0.25,
        **kwargs: Any,
    ) -> None:
        super().__init__(graph, image_shape, **kwargs)
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}; choose one of {sorted(FLOWS)}")
        if not 0.0 < min_slope < 1.0:
            raise ValueError(f"min_slope must be in (0, 1), got {min_slope}")
        k = self.latent_dim
        extra: dict[str, Any] = {}
        if flow == "maf":
            extra["univariate"] = partial(MonotonicAffineTransform, slope=min_slope)
        self.flows = nn.ModuleDict()
        self.priors = nn.ModuleDict()
        for name in self.graph.nodes:
            context = k * len(self.graph.parents(name))
            self.flows[name] = FLOWS[flow](
                features=k,
                context=context,
                transforms=flow_transforms,
                hidden_features=tuple(hidden_features),
                **extra,
            )
            self.priors[name] = _AffineLabelPrior(k, context, prior_hidden_features, max_log_scale)
        self.warmup_fraction = float(warmup_fraction)
        self._config.update(
            flow=flow,
            flow_transforms=int(flow_transforms),
            hidden_features=[int(h) for h in hidden_features],
            prior_hidden_features=int(prior_hidden_features),
            max_log_scale=float(max_log_scale),
            min_slope=float(min_slope),
            warmup_fraction=self.warmup_fraction,
        )

    def default_schedules(self, epochs: int) -> dict[str, Any]:
        warmup = max(1, round(self.warmup_fraction * epochs))
        return {
            "kl_weight": LinearWarmup(self.kl_weight, warmup),
            "supervision_weight": LinearWarmup(self.supervision_weight, warmup),
        }

    def _context(self, name: str, latents: Mapping[str, Tensor]) -> Tensor | None:
        parents = self.graph.parents(name)
        if not parents:
            return None
        return torch.cat([latents[p] for p in parents], dim=-1)

    def _mechanism(
        self, name: str, noise: Tensor, parents: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        # Zuko's transform maps z -> eps; its inverse is the mechanism eps -> z.
        return self._noise_transform(name, parents).inv.call_and_ladj(noise)

    def _noise_transform(self, name: str, parents: Mapping[str, Tensor]) -> Any:
        context = self._context(name, parents)
        flow = self.flows[name]
        return (flow() if context is None else flow(context)).transform

    def _label_map(self, name: str, latents: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.priors[name](self._context(name, latents))
