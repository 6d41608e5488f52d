"""Discrete mechanisms: categorical and binary nodes as Gumbel-max structural equations.

``x = argmax_k(logits_k(pa) + g_k)``, ``g_k ~ Gumbel(0, 1)`` (Oberst and Sontag, 2019). The
logits are hand-written, or learned from data with one of three designs:

* ``"linear"``: multinomial logistic regression on the parents' (standardized) values;
* ``"table"``: one set of logits for every configuration of the discrete parents, each a
  logistic regression on the continuous parents: a full conditional probability table when
  every parent is discrete, and every interaction of a discrete parent with the others;
* ``"network"``: a multilayer perceptron of the one-hot discrete parents and the
  standardized continuous ones.

The default, ``design="auto"``, chooses per node by 5-fold cross-validated log-likelihood
(the simplest design within two paired standard errors of the best, as :class:`Auto
<pyrocausal.mechanisms.Auto>` does for continuous nodes), so that a node whose parents
interact gets a table or a network and a node whose logit is linear keeps the regression.
Abduction samples the Gumbel noise from its exact posterior given the observed category
(:class:`GumbelMaxPosterior`, the top-down construction).

Example:
    >>> import numpy as np, pandas as pd
    >>> import pyrocausal as pc
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    >>> c = (rng.random(2000) < np.where(a == b, 0.9, 0.1)).astype(float)   # XOR-like
    >>> data = pd.DataFrame({"a": a, "b": b, "c": c}).astype(float)
    >>> scm = pc.SCM({"a": [], "b": [], "c": ["a", "b"]},
    ...              mechanisms={n: pc.Bernoulli() for n in "abc"})
    >>> _ = scm.fit(data, epochs=5, progress=False, seed=0)
    >>> scm.stacks[0].design(2)                      # a linear logit cannot express XOR
    'table'
"""

from __future__ import annotations

__all__ = [
    "ArgmaxTransform",
    "Bernoulli",
    "Categorical",
    "DESIGNS",
    "GumbelMax",
    "GumbelMaxPosterior",
]

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Size, Tensor, nn
from torch.distributions import Distribution, Transform

from pyrocausal.custom import CustomMechanism, Parents, _freeze, _theta, fit_slot
from pyrocausal.mechanisms import MECHANISMS

#: The learned designs of the logits, in the order of their complexity (index = slot.choice).
DESIGNS = ("linear", "table", "network")
#: A table has one row per configuration of the discrete parents; beyond this, no table.
MAX_CONFIGURATIONS = 1024
#: Hidden layers of the network design when ``hidden_features`` is empty.
DEFAULT_HIDDEN = (32, 32)


@dataclass(frozen=True)
class Categorical(CustomMechanism):
    r"""A categorical node as a Gumbel-max structural equation.

    ``x = argmax_k (logits_k(pa) + g_k)`` with ``g_k ~ Gumbel(0, 1)`` i.i.d., so that
    ``P(x = k | pa) = softmax(logits(pa))_k``. Counterfactuals replay the Gumbel noise, whose
    posterior given an observed category is sampled exactly (Oberst and Sontag, 2019).

    Arguments:
        num_categories: Number of categories ``K`` (values ``0, ..., K - 1``).
        logits: Hand-written ``logits(pa[, theta]) -> Tensor (..., K)``; ``None`` learns them.
        params: Initial values of free parameters of a hand-written ``logits``.
        design: How learned logits depend on the parents (see :mod:`pyrocausal.discrete`):
            ``"linear"``, ``"table"``, ``"network"`` or ``"auto"`` (default: chosen per node
            by 5-fold cross-validated likelihood when the model is fitted).
        hidden_features: Hidden layers of the ``"network"`` design (default ``(32, 32)``).
        se_rule: ``"auto"`` keeps the simplest design whose cross-validated NLL is within
            this many paired standard errors of the best.

    Example:
        >>> import torch
        >>> def logits(pa):
        ...     return torch.stack([pa["a"], 0 * pa["a"], -pa["a"]], -1)
        >>> spec = Categorical(3, logits=logits)
        >>> stack = spec.build([[0]], num_features=2)
        >>> d = stack.distribution(0, {"a": torch.tensor([0.0])}, torch.Size([1]))
        >>> d.log_prob(torch.tensor([2.0])).exp()         # uniform when a = 0
        tensor([0.3333])
    """

    name: ClassVar[str] = "categorical"
    discrete: ClassVar[bool] = True
    num_categories: int = 2
    logits: Callable[..., Tensor] | None = None
    params: tuple[tuple[str, float], ...] = field(default=())
    design: str = "auto"
    se_rule: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(self.params))
        object.__setattr__(self, "hidden_features", tuple(self.hidden_features))
        if int(self.num_categories) < 2:
            raise ValueError(
                f"a categorical node needs at least 2 categories, got {self.num_categories}"
            )
        if self.params and self.logits is None:
            raise ValueError("params go with a hand-written logits function")
        if self.design not in (*DESIGNS, "auto"):
            raise ValueError(f"design must be one of {[*DESIGNS, 'auto']}, got {self.design!r}")

    def to_config(self) -> dict[str, Any]:
        if self.logits is not None:
            raise TypeError(
                "a hand-written logits function is Python code and cannot be written to a "
                "file; rebuild the SCM in code and restore its weights with load_state_dict"
            )
        return {
            "type": self.name,
            "num_categories": self.num_categories,
            "hidden_features": list(self.hidden_features),
            "design": self.design,
            "se_rule": self.se_rule,
        }

    # ------------------------------------------------------------ parameters of one node
    def make_slot(self, num_parents: int, categories: Sequence[int | None] = ()) -> nn.Module:
        slot = nn.Module()
        if self.logits is not None:
            if self.params:
                slot.theta = nn.ParameterDict(
                    {k: nn.Parameter(torch.tensor(v)) for k, v in self.params}
                )
            return slot
        categories = list(categories) or [None] * num_parents
        if len(categories) != num_parents:
            raise ValueError(f"{len(categories)} parent categories for {num_parents} parents")
        out = self._outputs()
        discrete = [i for i, k in enumerate(categories) if k is not None]
        continuous = [i for i, k in enumerate(categories) if k is None]
        configurations = math.prod(int(categories[i]) for i in discrete)  # type: ignore[arg-type]
        designs = [self.design] if self.design != "auto" else list(DESIGNS)
        if not discrete or configurations > MAX_CONFIGURATIONS or not num_parents:
            if self.design == "table" and num_parents:
                raise ValueError(
                    "design='table' needs discrete parents with at most "
                    f"{MAX_CONFIGURATIONS} configurations; this node's parents have "
                    f"categories {categories}"
                )
            designs = [d for d in designs if d != "table"]
        if not num_parents:
            designs = ["linear"]  # no parents: the logits are a constant in every design
        slot.categories = categories
        slot.discrete_index = discrete
        slot.continuous_index = continuous
        strides = [
            math.prod(int(categories[j]) for j in discrete[i + 1 :]) for i in range(len(discrete))
        ]
        slot.register_buffer("strides", torch.tensor(strides, dtype=torch.long))
        slot.register_buffer("loc", torch.zeros(num_parents))
        slot.register_buffer("scale", torch.ones(num_parents))
        slot.register_buffer("choice", torch.tensor(DESIGNS.index(designs[0])))
        slot.register_buffer("cv_nll", torch.full((len(DESIGNS),), math.nan))
        if "linear" in designs:
            slot.net = nn.Linear(num_parents, out) if num_parents else _Constant(out)
            _zero(slot.net)
        if "table" in designs:
            slot.table = nn.Parameter(torch.zeros(configurations, out, 1 + len(continuous)))
        if "network" in designs:
            width = sum(int(categories[i]) for i in discrete) + len(continuous)  # type: ignore[arg-type]
            widths = [width, *(self.hidden_features or DEFAULT_HIDDEN), out]
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
                layers.append(nn.Linear(a, b))
                if i < len(widths) - 2:
                    layers.append(nn.ReLU())
            _zero(layers[-1])  # start from uniform (or 1/2) probabilities
            slot.network = nn.Sequential(*layers)
        return slot

    def _outputs(self) -> int:
        return int(self.num_categories)

    def _raw_logits(self, slot: nn.Module, parents: Parents) -> Tensor:
        if self.logits is not None:
            theta = _theta(slot)
            return self.logits(parents, *(() if theta is None else (theta,)))
        return _learned_logits(slot, parents, DESIGNS[int(slot.choice)])

    def category_logits(self, slot: nn.Module, parents: Parents) -> Tensor:
        """Logits of the ``K`` categories, shape ``(..., K)``."""
        return self._categories(self._raw_logits(slot, parents), self.logits is None)

    def category_logits_of(self, slot: nn.Module, parents: Parents, design: str) -> Tensor:
        """Logits ``(..., K)`` of one learned design, whichever the node has chosen."""
        return self._categories(_learned_logits(slot, parents, design), True)

    def _categories(self, raw: Tensor, learned: bool) -> Tensor:
        return raw

    def design_of(self, slot: nn.Module) -> str:
        """The design of a node's learned logits (``"hand-written"`` when given)."""
        return "hand-written" if self.logits is not None else DESIGNS[int(slot.choice)]

    def distribution(self, slot: nn.Module, parents: Parents, batch_shape: Size) -> Distribution:
        logits = self.category_logits(slot, parents)
        batch = torch.broadcast_shapes(batch_shape, logits.shape[:-1])
        return GumbelMax(logits.expand(batch + logits.shape[-1:]))

    def abduction(self, slot: nn.Module, parents: Parents, value: Tensor) -> Distribution:
        logits = self.category_logits(slot, parents)
        batch = torch.broadcast_shapes(value.shape, logits.shape[:-1])
        return GumbelMaxPosterior(logits.expand(batch + logits.shape[-1:]), value.expand(batch))

    # ------------------------------------------------------------ fitting one node
    def initialize_slot(self, slot: nn.Module, parents: Parents, value: Tensor) -> None:
        """Maximum likelihood of the node's logits; with ``design="auto"`` the design too.

        Every design that applies is fitted by L-BFGS on four fifths of the rows and scored
        on the fifth left out, five times over (the same folds for every design); the node
        keeps the simplest design whose mean held-out NLL is within :attr:`se_rule` paired
        standard errors of the best, refitted on every row. The held-out NLLs per design
        are kept in ``slot.cv_nll``.
        """
        if self.logits is not None:
            fit_slot(self, slot, parents, value)
            return
        if parents:
            x = torch.stack(torch.broadcast_tensors(*parents.values()), -1).to(slot.loc.dtype)
            with torch.no_grad():
                slot.loc.copy_(x.mean(0))
                slot.scale.copy_(x.std(0).clamp_min(1e-6) if len(x) > 1 else slot.scale)
        designs = [d for d in DESIGNS if _has(slot, d)]
        if len(designs) > 1 and len(value) >= 50:
            scores = _cross_validate(self, slot, parents, value, designs)
            best = scores.mean(-1).argmin()
            keep = next(
                i
                for i in range(len(designs))
                if i == best or not _beats(scores[best], scores[i], self.se_rule)
            )
            with torch.no_grad():
                for i, d in enumerate(designs):
                    slot.cv_nll[DESIGNS.index(d)] = scores[i].mean()
                slot.choice.fill_(DESIGNS.index(designs[keep]))
        _fit_design(self, slot, parents, value, DESIGNS[int(slot.choice)])


class _Constant(nn.Module):
    """The logits of a node without parents: one learned vector."""

    def __init__(self, out: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(out))

    def forward(self, x: Tensor) -> Tensor:
        return self.bias.expand(*x.shape[:-1], -1)


def _zero(layer: nn.Module) -> None:
    for p in layer.parameters():
        nn.init.zeros_(p)


def _has(slot: nn.Module, design: str) -> bool:
    return hasattr(slot, {"linear": "net", "table": "table", "network": "network"}[design])


def _learned_logits(slot: nn.Module, parents: Parents, design: str) -> Tensor:
    """The raw outputs ``(..., out)`` of one learned design."""
    weight = slot.loc
    if not parents:
        return slot.net(weight.new_zeros(1, 0)).squeeze(0)
    values = torch.broadcast_tensors(*parents.values())
    x = torch.stack([v.to(weight.dtype) for v in values], dim=-1)
    z = (x - slot.loc) / slot.scale
    if design == "linear":
        return slot.net(z)
    continuous = z[..., slot.continuous_index]
    if design == "table":
        codes = [
            x[..., i].round().clamp(0, int(slot.categories[i]) - 1).long()
            for i in slot.discrete_index
        ]
        index = sum(c * int(s) for c, s in zip(codes, slot.strides))
        rows = slot.table[index]  # (..., out, 1 + continuous)
        design_row = torch.cat([z.new_ones(*z.shape[:-1], 1), continuous], -1)
        return (rows * design_row.unsqueeze(-2)).sum(-1)
    one_hot = [
        nn.functional.one_hot(
            x[..., i].round().clamp(0, int(slot.categories[i]) - 1).long(),
            int(slot.categories[i]),
        ).to(weight.dtype)
        for i in slot.discrete_index
    ]
    return slot.network(torch.cat([*one_hot, continuous], -1))


def _design_params(slot: nn.Module, design: str) -> list[nn.Parameter]:
    module = {"linear": "net", "table": "table", "network": "network"}[design]
    part = getattr(slot, module)
    return [part] if isinstance(part, nn.Parameter) else list(part.parameters())


def _fit_design(
    spec: Categorical, slot: nn.Module, parents: Parents, value: Tensor, design: str
) -> None:
    """L-BFGS on one design's parameters (a weak N(0, 10^2) prior keeps separable
    configurations finite)."""
    params = _design_params(slot, design)
    n = len(value)

    def loss() -> Tensor:
        logits = spec.category_logits_of(slot, parents, design)
        nll = -GumbelMax(logits).log_prob(value).mean()
        return nll + sum((p**2).sum() for p in params) / (2 * 100.0 * n)

    fit_slot(spec, slot, parents, value, params, max_iter=200, loss=loss)


def _cross_validate(
    spec: Categorical, slot: nn.Module, parents: Parents, value: Tensor, designs: list[str]
) -> Tensor:
    """Held-out NLL per row ``(len(designs), n)`` over 5 folds (a fixed permutation)."""
    n = len(value)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(value.device)
    folds = order.chunk(5)
    scores = value.new_zeros(len(designs), n)
    start = {k: v.detach().clone() for k, v in slot.state_dict().items()}
    for fold in folds:
        train = torch.ones(n, dtype=torch.bool, device=value.device)
        train[fold] = False
        for i, design in enumerate(designs):
            slot.load_state_dict(start)
            fit_parents = {k: v[train] for k, v in parents.items()}
            _fit_design(spec, slot, fit_parents, value[train], design)
            with torch.no_grad():
                held = {k: v[fold] for k, v in parents.items()}
                logits = spec.category_logits_of(slot, held, design)
                scores[i, fold] = -GumbelMax(logits).log_prob(value[fold])
    slot.load_state_dict(start)
    return scores


def _beats(challenger: Tensor, incumbent: Tensor, se_rule: float) -> bool:
    diff = incumbent - challenger
    se = diff.std() / math.sqrt(diff.numel())
    return bool(diff.mean() > se_rule * se + 1e-9)


@dataclass(frozen=True)
class Bernoulli(Categorical):
    r"""A binary node ``x in {0, 1}`` as a Gumbel-max structural equation.

    ``P(x = 1 | pa) = sigmoid(logit(pa))``; written as a two-category
    :class:`Categorical` with logits ``(0, logit)``.

    Arguments:
        logits: Hand-written ``logit(pa[, theta]) -> Tensor (...)``, the log-odds of ``x = 1``;
            ``None`` learns them (see :class:`Categorical` for ``design``, ``hidden_features``
            and ``se_rule``).
        params: Initial values of free parameters of a hand-written ``logits``.

    Example:
        >>> import torch
        >>> stack = Bernoulli(logits=lambda pa: 2.0 * pa["a"]).build([[0]], num_features=2)
        >>> d = stack.distribution(0, {"a": torch.tensor([0.5])}, torch.Size([1]))
        >>> d.log_prob(torch.tensor([1.0])).exp()         # sigmoid(1)
        tensor([0.7311])
    """

    name: ClassVar[str] = "bernoulli"
    num_categories: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_categories != 2:
            raise ValueError("a Bernoulli node has 2 categories; use Categorical for more")

    def to_config(self) -> dict[str, Any]:
        config = super().to_config()
        config.pop("num_categories")
        return config

    def _outputs(self) -> int:
        return 1

    def _categories(self, raw: Tensor, learned: bool) -> Tensor:
        logit = torch.as_tensor(raw.squeeze(-1) if learned else raw)
        return torch.stack([torch.zeros_like(logit), logit], dim=-1)


# ---------------------------------------------------------------- distributions
class ArgmaxTransform(Transform):
    """Gumbel noise ``g (..., K)`` -> category ``argmax_k(logits_k + g_k)`` (as a float).

    Not invertible: the posterior of ``g`` given the category is
    :class:`GumbelMaxPosterior`.
    """

    domain = constraints.independent(constraints.real, 1)
    bijective = False

    def __init__(self, logits: Tensor) -> None:
        super().__init__(cache_size=0)
        self.logits = logits

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.integer_interval(0, self.logits.shape[-1] - 1)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def forward_shape(self, shape: Size) -> Size:
        return Size(shape[:-1])

    def inverse_shape(self, shape: Size) -> Size:
        return Size(shape) + self.logits.shape[-1:]

    def _call(self, g: Tensor) -> Tensor:
        return (self.logits + g).argmax(-1).to(self.logits.dtype)

    def _inverse(self, x: Tensor) -> Tensor:
        raise NotImplementedError(
            "a category does not determine its Gumbel noise; sample GumbelMaxPosterior"
        )


class GumbelMax(dist.TransformedDistribution):
    r"""``Categorical(logits)`` written as ``argmax(logits + g)``, ``g ~ Gumbel(0, 1)^K``.

    Its values are floats ``0., 1., ...`` (they enter the children's mechanisms as numbers).
    It supports enumeration, so Pyro can sum a hidden discrete node out exactly.

    Example:
        >>> import torch
        >>> d = GumbelMax(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
        >>> d.batch_shape, d.event_shape
        (torch.Size([2]), torch.Size([]))
        >>> d.log_prob(torch.tensor([1.0, 0.0])).exp()
        tensor([0.7311, 0.8808])
    """

    arg_constraints = {"logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, logits: Tensor, validate_args: bool | None = None) -> None:
        self.logits = logits
        zero = logits.new_zeros(())
        base = dist.Gumbel(zero, zero + 1.0).expand(logits.shape).to_event(1)
        super().__init__(base, [ArgmaxTransform(logits)], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.logits.shape[-1] - 1)

    @property
    def probs(self) -> Tensor:
        return self.logits.softmax(-1)

    def expand(self, batch_shape: Sequence[int], _instance: object = None) -> GumbelMax:
        batch_shape = Size(batch_shape)
        return GumbelMax(self.logits.expand(batch_shape + self.logits.shape[-1:]))

    def sample(self, sample_shape: Size = Size()) -> Tensor:  # noqa: B008
        with torch.no_grad():
            g = self.base_dist.sample(sample_shape)
            return self.transforms[0](g)

    def rsample(self, sample_shape: Size = Size()) -> Tensor:  # noqa: B008
        return self.sample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        index = value.round().long().unsqueeze(-1)
        log_pmf = self.logits.log_softmax(-1)
        index, log_pmf = torch.broadcast_tensors(index, log_pmf)
        return log_pmf.gather(-1, index[..., :1]).squeeze(-1)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        k = self.logits.shape[-1]
        values = torch.arange(k, dtype=self.logits.dtype, device=self.logits.device)
        values = values.view((-1,) + (1,) * len(self.batch_shape))
        return values.expand((-1, *self.batch_shape)) if expand else values

    @property
    def mean(self) -> Tensor:
        k = self.logits.shape[-1]
        return (self.probs * torch.arange(k, dtype=self.logits.dtype)).sum(-1)


class GumbelMaxPosterior(dist.TorchDistribution):
    r"""The posterior of the Gumbel noise ``g`` of a Gumbel-max node given its category.

    Given ``argmax_k(logits_k + g_k) = x``, the maximum ``M`` of the perturbed logits is
    ``Gumbel(logsumexp(logits))`` independently of ``x``; the winner has ``g_x = M - logits_x``
    and every other ``logits_k + g_k`` is a ``Gumbel(logits_k)`` truncated below ``M``
    (Oberst and Sontag, 2019; Maddison et al., 2014). Event shape ``(K,)``.

    Arguments:
        logits: Category logits, shape ``(..., K)``.
        value: Observed category, shape ``(...)`` (float or integer).

    Example:
        >>> import torch
        >>> post = GumbelMaxPosterior(torch.tensor([0.0, 1.0, -1.0]), torch.tensor(2.0))
        >>> g = post.sample((1000,))
        >>> bool(((torch.tensor([0.0, 1.0, -1.0]) + g).argmax(-1) == 2).all())
        True
    """

    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, logits: Tensor, value: Tensor, validate_args: bool | None = None) -> None:
        batch = torch.broadcast_shapes(logits.shape[:-1], value.shape)
        self.logits = logits.expand(batch + logits.shape[-1:])
        self.category = value.expand(batch).round().long()
        super().__init__(batch, logits.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: object = None) -> GumbelMaxPosterior:
        batch_shape = Size(batch_shape)
        return GumbelMaxPosterior(
            self.logits.expand(batch_shape + self.logits.shape[-1:]),
            self.category.expand(batch_shape),
        )

    def sample(self, sample_shape: Size = Size()) -> Tensor:  # noqa: B008
        with torch.no_grad():
            shape = Size(sample_shape) + self.logits.shape
            k = self.logits.shape[-1]
            tiny = torch.finfo(self.logits.dtype).tiny
            uniform = torch.rand(
                shape[:-1] + (k + 1,), dtype=self.logits.dtype, device=self.logits.device
            )
            gumbel = -torch.log(-torch.log(uniform.clamp(tiny, 1.0 - 1e-7)))
            top = self.logits.logsumexp(-1, keepdim=True) + gumbel[..., k:]  # max ~ Gumbel(lse)
            perturbed = self.logits + gumbel[..., :k]  # Gumbel(logits_k), truncated below ``top``:
            truncated = -torch.logaddexp(-top, -perturbed)
            one_hot = nn.functional.one_hot(self.category, self.logits.shape[-1]).bool()
            winner = torch.where(one_hot, top.expand_as(truncated), truncated)
            return winner - self.logits

    def log_prob(self, g: Tensor) -> Tensor:
        # prior density of g restricted to {argmax = category}, divided by P(category).
        prior = (-g - torch.exp(-g)).sum(-1)
        log_pmf = self.logits.log_softmax(-1)
        index = self.category.unsqueeze(-1)
        log_p = log_pmf.gather(-1, index).squeeze(-1)
        ok = (self.logits + g).argmax(-1) == self.category
        return torch.where(ok, prior - log_p, torch.full_like(prior, -math.inf))


MECHANISMS.update({m.name: m for m in (Categorical, Bernoulli)})
