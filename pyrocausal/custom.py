"""Hand-written and discrete mechanisms, in original units.

A flow mechanism (:class:`~pyrocausal.mechanisms.MAF`, ...) is learned from data on
standardized values. The mechanisms here are written down instead, or are discrete:

* :class:`HandWritten` -- ``x = f(pa, u)`` with ``u`` from a chosen noise distribution, given
  as an explicit forward / inverse pair or as a :mod:`torch.distributions` transform built
  from the parents. Free parameters (``params``) are fitted by :meth:`SCM.fit
  <pyrocausal.models.SCM.fit>` like any other mechanism; without them the mechanism is fully
  known (teaching, and checking inference against known mechanisms).
* :class:`~pyrocausal.discrete.Categorical` and :class:`~pyrocausal.discrete.Bernoulli`
  (in :mod:`pyrocausal.discrete`, importable from here too) -- discrete nodes written as
  Gumbel-max structural equations ``x = argmax_k(logits_k(pa) + g_k)``,
  ``g_k ~ Gumbel(0, 1)`` (Oberst and Sontag, 2019), with hand-written logits or learned ones
  (a regression, a table per configuration of the discrete parents, or a network, chosen by
  cross-validation). Abduction samples the noise from its exact posterior given the
  observed category, so counterfactuals on discrete nodes are distributions, and continuous
  children of discrete parents keep exact abduction.

Inside the Pyro program every such node is a
:class:`pyro.distributions.TransformedDistribution` of its noise, so
:class:`pyro.infer.reparam.TransformReparam` exposes the noise as ``"<node>_base"`` exactly
as for flow mechanisms, and every query (``do``, counterfactuals, posterior queries) works
unchanged. These mechanisms take and return values in original units, with parents passed
by name.

Example:
    >>> import torch
    >>> import pyrocausal as pc
    >>> scm = pc.SCM(
    ...     {"x1": [], "x2": [], "x3": ["x1", "x2"]},
    ...     mechanisms={
    ...         "x1": pc.HandWritten(lambda pa, u: u, lambda pa, x: x),
    ...         "x2": pc.HandWritten(lambda pa, u: u, lambda pa, x: x),
    ...         "x3": pc.HandWritten(
    ...             lambda pa, u: pa["x1"] + pa["x2"] + pa["x1"] * pa["x2"] + 0.3 * u,
    ...             lambda pa, x: (x - pa["x1"] - pa["x2"] - pa["x1"] * pa["x2"]) / 0.3,
    ...         ),
    ...     },
    ... )
    >>> import pandas as pd
    >>> cf = scm.counterfactual(pd.DataFrame({"x1": [1.0], "x2": [2.0], "x3": [5.3]}), {"x1": 0.0})
    >>> round(float(cf["x3"].iloc[0]), 4)      # noise 0.3 * u = 0.3 is kept: 0 + 2 + 0 + 0.3
    2.3
"""

from __future__ import annotations

__all__ = [
    "CustomMechanism",
    "CustomStack",
    "HandWritten",
    "MechanismTransform",
    "fit_slot",
]

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Size, Tensor, nn
from torch.distributions import Distribution, Transform
from torch.distributions.transforms import ReshapeTransform

from pyrocausal.mechanisms import Mechanism

Parents = Mapping[str, Tensor]


# ---------------------------------------------------------------- specifications
@dataclass(frozen=True)
class CustomMechanism(Mechanism):
    """Base of mechanisms that work in original units and are not flows.

    The SCM asks their stack for the node's Pyro distribution given the parents' values by
    name (:meth:`CustomStack.distribution`) and for the posterior of the noise given an
    observed value (:meth:`CustomStack.abduction`).
    """

    name: ClassVar[str] = "custom"
    #: Tells :class:`~pyrocausal.models.SCM` that values are in original units, not standardized.
    raw_units: ClassVar[bool] = True
    #: Whether the node takes values in ``{0, ..., K - 1}``.
    discrete: ClassVar[bool] = False
    hidden_features: tuple[int, ...] = field(default=(), kw_only=True)

    def shapes(self) -> list[Size]:
        return []

    def build(
        self,
        parents: Sequence[Sequence[int]],
        num_features: int,
        categories: Sequence[Sequence[int | None]] | None = None,
    ) -> CustomStack:
        return CustomStack(self, parents, categories)

    # per-slot pieces, overridden by the subclasses
    def make_slot(self, num_parents: int, categories: Sequence[int | None] = ()) -> nn.Module:
        """The learnable parameters of one node (an empty module when there are none).

        ``categories`` holds, per parent, its number of categories (``None``: continuous).
        """
        return nn.Module()

    def distribution(self, slot: nn.Module, parents: Parents, batch_shape: Size) -> Distribution:
        raise NotImplementedError

    def abduction(self, slot: nn.Module, parents: Parents, value: Tensor) -> Distribution:
        raise NotImplementedError

    def initialize_slot(self, slot: nn.Module, parents: Parents, value: Tensor) -> None:
        """Start the node's free parameters at its maximum likelihood on these rows."""
        fit_slot(self, slot, parents, value)


def fit_slot(
    spec: CustomMechanism,
    slot: nn.Module,
    parents: Parents,
    value: Tensor,
    params: Sequence[nn.Parameter] | None = None,
    max_iter: int = 100,
    loss: Callable[[], Tensor] | None = None,
) -> bool:
    """Maximum likelihood of one node's parameters by L-BFGS; ``False`` (and the start kept)
    when it fails or leaves non-finite values.

    Arguments:
        spec: The mechanism (its :meth:`~CustomMechanism.distribution` gives the likelihood).
        slot: The node's parameters.
        parents: The parents' values by name.
        value: The node's values.
        params: The parameters to fit (default: every trainable one of ``slot``).
        max_iter: L-BFGS iterations.
        loss: The objective (default: the mean negative log-likelihood of ``value``).
    """
    params = [p for p in slot.parameters() if p.requires_grad] if params is None else params
    if not params:
        return True
    optimizer = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn="strong_wolfe")

    def nll() -> Tensor:
        return -spec.distribution(slot, parents, value.shape).log_prob(value).mean()

    objective = loss if loss is not None else nll

    def closure() -> Tensor:
        optimizer.zero_grad()
        total = objective()
        total.backward()
        return total

    start = {k: v.detach().clone() for k, v in slot.state_dict().items()}
    with torch.enable_grad():
        try:
            optimizer.step(closure)
            ok = all(bool(torch.isfinite(p).all()) for p in params)
        except (RuntimeError, ValueError):
            ok = False
    if not ok:  # keep the given start; the joint fit takes it from there
        slot.load_state_dict(start)
    return ok


def _freeze(params: Mapping[str, float] | Sequence[tuple[str, float]]) -> tuple:
    items = params.items() if isinstance(params, Mapping) else params
    return tuple((str(k), float(v)) for k, v in items)


def _theta(slot: nn.Module) -> dict[str, Tensor] | None:
    values = getattr(slot, "theta", None)
    return dict(values.items()) if values is not None else None


@dataclass(frozen=True)
class HandWritten(CustomMechanism):
    r"""A mechanism written by hand: ``x = forward(pa, u)``, ``u ~ noise``.

    Give either an explicit pair ``forward(pa, u) -> x`` and ``inverse(pa, x) -> u``
    (strictly monotonic in ``u``), or ``transform(pa) -> Transform``: a
    :mod:`torch.distributions` transform that maps the noise to the value. ``pa`` maps each
    parent's name to its values (original units); with ``params`` every callable takes a third
    argument, the mapping of parameter name to its current (learnable) value.

    The log-density's Jacobian comes from the transform, or by automatic differentiation of
    ``forward`` in ``u``.

    Arguments:
        forward: ``forward(pa, u[, theta]) -> x``, elementwise in ``u``.
        inverse: ``inverse(pa, x[, theta]) -> u``.
        transform: ``transform(pa[, theta]) -> torch.distributions.Transform`` (noise -> value);
            an alternative to ``forward`` / ``inverse``.
        noise: Distribution of the scalar noise ``u``, e.g. ``dist.Normal(0., 1.)``,
            ``dist.Uniform(0., 1.)``, ``dist.Logistic``... Default: standard normal.
        params: Initial values of free parameters ``{name: value}``, fitted by ``SCM.fit``.

    Example:
        >>> import torch
        >>> from torch.distributions import AffineTransform
        >>> spec = HandWritten(transform=lambda pa: AffineTransform(2.0 * pa["a"], 0.5))
        >>> stack = spec.build([[0]], num_features=2)
        >>> d = stack.distribution(0, {"a": torch.tensor([1.0, -1.0])}, torch.Size([2]))
        >>> d.log_prob(torch.tensor([2.0, -2.0]))          # N(2a, 0.5^2) at its mean
        tensor([-0.2258, -0.2258])
    """

    name: ClassVar[str] = "handwritten"
    forward: Callable[..., Tensor] | None = None
    inverse: Callable[..., Tensor] | None = None
    transform: Callable[..., Transform] | None = None
    noise: Distribution | None = None
    params: tuple[tuple[str, float], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(self.params))
        if self.transform is None and (self.forward is None or self.inverse is None):
            raise ValueError("HandWritten needs forward and inverse, or transform")
        if self.transform is not None and (self.forward is not None or self.inverse is not None):
            raise ValueError("give HandWritten either forward / inverse or transform, not both")
        if self.noise is not None:
            if self.noise.batch_shape or self.noise.event_shape:
                raise ValueError(
                    "the noise of a hand-written mechanism is one scalar distribution, got "
                    f"batch shape {tuple(self.noise.batch_shape)} and event shape "
                    f"{tuple(self.noise.event_shape)}"
                )

    def to_config(self) -> dict[str, Any]:
        raise TypeError(
            "a hand-written mechanism is Python code and cannot be written to a file; "
            "rebuild the SCM in code and restore its weights with load_state_dict"
        )

    def make_slot(self, num_parents: int, categories: Sequence[int | None] = ()) -> nn.Module:
        slot = nn.Module()
        if self.params:
            slot.theta = nn.ParameterDict(
                {k: nn.Parameter(torch.tensor(v)) for k, v in self.params}
            )
        return slot

    def _noise(self, like: Tensor) -> Distribution:
        if self.noise is None:
            zero = like.new_zeros(())
            return dist.Normal(zero, zero + 1.0)
        return self.noise

    def mechanism_transform(self, slot: nn.Module, parents: Parents) -> MechanismTransform:
        """The transform noise -> value (event shape ``(1,)``) given the parents."""
        theta = _theta(slot)
        extra = () if theta is None else (theta,)
        noise = self.noise
        if self.transform is not None:
            t = self.transform(parents, *extra)
            return MechanismTransform(t, t.inv, t.log_abs_det_jacobian, noise)
        fwd, inv = self.forward, self.inverse
        return MechanismTransform(
            lambda u: fwd(parents, u, *extra), lambda x: inv(parents, x, *extra), None, noise
        )

    def distribution(self, slot: nn.Module, parents: Parents, batch_shape: Size) -> Distribution:
        shapes = [batch_shape, *(p.shape for p in parents.values())]
        batch = torch.broadcast_shapes(*shapes)
        like = next(iter(slot.parameters()), None)
        like = like if like is not None else _like(parents)
        noise = self._noise(like).expand(batch + (1,))
        base = dist.Independent(noise, 1)
        return dist.TransformedDistribution(
            base,
            [self.mechanism_transform(slot, parents), ReshapeTransform(Size([1]), Size([]))],
        )

    def abduction(self, slot: nn.Module, parents: Parents, value: Tensor) -> Distribution:
        t = self.mechanism_transform(slot, parents)
        return dist.Delta(t.inv(value.unsqueeze(-1)), event_dim=1)


def _like(parents: Parents) -> Tensor:
    for value in parents.values():
        if torch.is_floating_point(value):
            return value
    return torch.zeros(())


# ---------------------------------------------------------------- the stack
class CustomStack(nn.Module):
    """The nodes that share one :class:`CustomMechanism`, each with its own parameters.

    It offers what :class:`~pyrocausal.models.SCM` needs from a mechanism that works in
    original units: :meth:`distribution` (the node's Pyro distribution given its parents by
    name) and :meth:`abduction` (the posterior of its noise given its value).

    Arguments:
        spec: The mechanism specification.
        parents: For each node, the column indices of its parents.
    """

    raw_units: ClassVar[bool] = True

    def __init__(
        self,
        spec: CustomMechanism,
        parents: Sequence[Sequence[int]],
        categories: Sequence[Sequence[int | None]] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.parents = [list(p) for p in parents]
        if categories is None:
            categories = [[None] * len(p) for p in self.parents]
        self.categories = [list(c) for c in categories]
        self.slots = nn.ModuleList(
            spec.make_slot(len(p), c) for p, c in zip(self.parents, self.categories)
        )

    @property
    def discrete(self) -> bool:
        """Whether the nodes of this stack are discrete."""
        return self.spec.discrete

    @property
    def closed_form(self) -> bool:
        """Whether fitting is final at :meth:`initialize` (learned discrete logits: their
        maximum likelihood by L-BFGS), so the SCM fits it on every row and freezes it."""
        return bool(self.spec.discrete and getattr(self.spec, "logits", None) is None)

    def __len__(self) -> int:
        return len(self.parents)

    def initialize(
        self,
        x: Tensor,
        columns: Tensor,
        names: Sequence[str] | None = None,
        max_rows: int = 20_000,
    ) -> None:
        """Start free parameters at each node's own maximum likelihood (L-BFGS).

        In a fully observed fit each mechanism's likelihood is a separate term, so this is
        the node's fit, done in a few dozen quasi-Newton steps instead of many Adam epochs
        (the joint fit then only polishes it). Mechanisms without free parameters are left
        as they are.

        Arguments:
            x: Rows in original units, all columns, shape ``(n, D)``.
            columns: Column of each stacked node in ``x``.
            names: Name of every column (parents are passed to hand-written code by name).
            max_rows: Rows used at most.
        """
        rows = x[:max_rows]
        names = list(names) if names is not None else [str(i) for i in range(x.shape[-1])]
        for slot, pa, col in zip(self.slots, self.parents, columns.tolist()):
            params = [p for p in slot.parameters() if p.requires_grad]
            if not params:
                continue
            value = rows[:, col]
            if self.spec.discrete:
                k = int(self.spec.num_categories)
                if bool(((value < 0) | (value > k - 1) | (value != value.round())).any()):
                    raise ValueError(
                        f"a {self.spec.name} node takes the values 0, ..., {k - 1}; its column "
                        f"{names[col]!r} holds {sorted(set(value.tolist()))[:6]}"
                    )
                value = value.round()
            parents = {names[i]: rows[:, i] for i in pa}
            self.spec.initialize_slot(slot, parents, value)

    def log_prob_all(self, x: Tensor, columns: Tensor) -> Tensor:
        raise NotImplementedError(
            "mechanisms in original units are evaluated through SCM.distribution, not on "
            "standardized rows"
        )

    @torch.no_grad()
    def copy_slot(self, source: CustomStack, src: int, dst: int) -> None:
        """Copy the parameters of node ``src`` of ``source`` into node ``dst``."""
        self.slots[dst].load_state_dict(source.slots[src].state_dict())

    def distribution(self, slot: int, parents: Parents, batch_shape: Size) -> Distribution:
        """The node's distribution given its parents' values ``{name: tensor}``."""
        return self.spec.distribution(self.slots[slot], parents, Size(batch_shape))

    def abduction(self, slot: int, parents: Parents, value: Tensor) -> Distribution:
        """The posterior of the node's noise (event shape ``(1,)`` or ``(K,)``) given its value."""
        return self.spec.abduction(self.slots[slot], parents, value)

    def design(self, slot: int) -> str:
        """How node ``slot``'s mechanism is written: a discrete node's chosen design of its
        logits (see :mod:`pyrocausal.discrete`), else the mechanism's name."""
        design_of = getattr(self.spec, "design_of", None)
        return design_of(self.slots[slot]) if design_of else self.spec.name

    def logits(self, slot: int, parents: Parents) -> Tensor:
        """Category logits of a discrete node, shape ``(..., K)``."""
        return self.spec.category_logits(self.slots[slot], parents)


# ---------------------------------------------------------------- transforms and distributions
class MechanismTransform(Transform):
    """Noise ``(..., 1)`` -> value ``(..., 1)`` of one hand-written mechanism.

    Arguments:
        forward: Elementwise ``u -> x``.
        inverse: Elementwise ``x -> u``.
        log_abs_det_jacobian: ``(u, x) -> log|dx/du|`` elementwise, or ``None`` to
            differentiate ``forward`` automatically.
        noise: The noise distribution (for the domain's support); ``None``: the real line.
    """

    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(
        self,
        forward: Callable[[Tensor], Tensor],
        inverse: Callable[[Tensor], Tensor],
        log_abs_det_jacobian: Callable[[Tensor, Tensor], Tensor] | None = None,
        noise: Distribution | None = None,
    ) -> None:
        super().__init__(cache_size=0)
        self.forward_fn, self.inverse_fn, self.ladj_fn = forward, inverse, log_abs_det_jacobian
        support = constraints.real if noise is None else noise.support
        self._domain = constraints.independent(support, 1)

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        return self._domain

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def _call(self, u: Tensor) -> Tensor:
        return torch.as_tensor(self.forward_fn(u[..., 0])).unsqueeze(-1)

    def _inverse(self, x: Tensor) -> Tensor:
        return torch.as_tensor(self.inverse_fn(x[..., 0])).unsqueeze(-1)

    def log_abs_det_jacobian(self, u: Tensor, x: Tensor) -> Tensor:
        if self.ladj_fn is not None:
            ladj = torch.as_tensor(self.ladj_fn(u[..., 0], x[..., 0]))
            return ladj.expand(torch.broadcast_shapes(ladj.shape, u.shape[:-1]))
        grad_enabled = torch.is_grad_enabled()
        with torch.enable_grad():
            v = u[..., 0]
            if not v.requires_grad:
                v = v.detach().requires_grad_(True)
            y = torch.as_tensor(self.forward_fn(v))
            (dy,) = torch.autograd.grad(y.sum(), v, create_graph=grad_enabled)
        ladj = dy.abs().log()
        return ladj if grad_enabled else ladj.detach()


# The discrete mechanisms live in their own module; importable from here as before.
from pyrocausal.discrete import (  # noqa: E402, F401
    ArgmaxTransform,
    Bernoulli,
    Categorical,
    GumbelMax,
    GumbelMaxPosterior,
)
