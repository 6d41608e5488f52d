"""Causal mechanisms: conditional distributions ``p(x_i | parents)`` as invertible flows.

A mechanism is a *specification* (a small frozen dataclass such as :class:`MAF`) whose
:meth:`Mechanism.build` makes a Zuko lazy flow ``flow(context) -> NormalizingFlow``. The flow's
transform maps the node's (standardized) value to its exogenous noise, so abduction is
``flow(pa).transform(x)`` and prediction is ``flow(pa).transform.inv(u)``. Inside the Pyro
program the flow's base enters through :class:`pyro.contrib.zuko.ZukoToPyro`.
"""

from __future__ import annotations

__all__ = [
    "MAF",
    "MECHANISMS",
    "NSF",
    "LinearGaussian",
    "Mechanism",
    "ZukoBase",
    "mechanism_from_config",
]

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import zuko
from pyro.contrib.zuko import ZukoToPyro
from torch import Tensor, nn
from torch.distributions import AffineTransform
from zuko.distributions import DiagNormal
from zuko.lazy import Flow, LazyTransform, UnconditionalDistribution
from zuko.transforms import DependentTransform


class ZukoBase(ZukoToPyro):
    """:class:`~pyro.contrib.zuko.ZukoToPyro` that can also serve as the base of a
    :class:`pyro.distributions.TransformedDistribution` (it adds ``sample``/``rsample``).

    Example:
        >>> import torch, zuko
        >>> base = ZukoBase(zuko.distributions.DiagNormal(torch.zeros(1), torch.ones(1)))
        >>> base.expand((3,)).rsample().shape
        torch.Size([3, 1])
    """

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        return self.dist.rsample(sample_shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        return self.dist.sample(sample_shape)

    def expand(self, batch_shape, _instance=None) -> ZukoBase:  # noqa: ANN001
        return ZukoBase(self.dist.expand(torch.Size(batch_shape)))


@dataclass(frozen=True)
class Mechanism:
    """Base class of mechanism specifications.

    Subclasses set ``name`` (used in saved models and on the command line) and implement
    :meth:`build`. ``context`` is the number of parents of the node.
    """

    name: ClassVar[str] = "mechanism"

    def build(self, context: int) -> Flow:
        """Make the lazy conditional flow of a node with ``context`` parents."""
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly description, inverted by :func:`mechanism_from_config`."""
        return {"type": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class MAF(Mechanism):
    """Affine masked autoregressive flow (Zuko :class:`zuko.flows.MAF`) for one node.

    With one feature, each transform is ``x = t(pa) + exp(s(pa)) * u``: a heteroscedastic
    additive-noise mechanism. Stacking transforms adds nothing for one feature, so the
    default is one.

    Arguments:
        transforms: Number of stacked autoregressive transforms.
        hidden_features: Hidden layer sizes of the conditioner network.

    Example:
        >>> import torch
        >>> flow = MAF(hidden_features=(16, 16)).build(context=2)
        >>> d = flow(torch.randn(5, 2))
        >>> d.log_prob(torch.randn(5, 1)).shape
        torch.Size([5])
    """

    name: ClassVar[str] = "maf"
    transforms: int = 1
    hidden_features: tuple[int, ...] = (64, 64)

    def build(self, context: int) -> Flow:
        return zuko.flows.MAF(
            features=1,
            context=context,
            transforms=self.transforms,
            hidden_features=tuple(self.hidden_features),
        )


@dataclass(frozen=True)
class NSF(Mechanism):
    """Monotonic rational-quadratic spline flow (Zuko :class:`zuko.flows.NSF`) for one node.

    Non-additive and non-Gaussian noise (mixtures, multiplicative noise) need a spline.
    The spline acts on ``[-bound, bound]`` of the standardized value and is linear outside.

    Arguments:
        bins: Number of spline bins.
        transforms: Number of stacked spline transforms.
        hidden_features: Hidden layer sizes of the conditioner network.

    Example:
        >>> import torch
        >>> flow = NSF(bins=4, hidden_features=(16,)).build(context=0)
        >>> flow().sample((3,)).shape
        torch.Size([3, 1])
    """

    name: ClassVar[str] = "nsf"
    bins: int = 8
    transforms: int = 1
    hidden_features: tuple[int, ...] = (64, 64)

    def build(self, context: int) -> Flow:
        return zuko.flows.NSF(
            features=1,
            context=context,
            bins=self.bins,
            transforms=self.transforms,
            hidden_features=tuple(self.hidden_features),
        )


class _LinearShiftTransform(LazyTransform):
    """``x -> u = (x - w.pa - b) / sigma``: the transform of a linear-Gaussian mechanism."""

    def __init__(self, context: int) -> None:
        super().__init__()
        self.linear = nn.Linear(context, 1, bias=False) if context else None
        self.bias = nn.Parameter(torch.zeros(1))
        self.log_scale = nn.Parameter(torch.zeros(1))

    def forward(self, c: Tensor | None = None) -> DependentTransform:
        mean = self.bias if c is None or self.linear is None else self.linear(c) + self.bias
        inv_scale = torch.exp(-self.log_scale).expand_as(mean)
        return DependentTransform(AffineTransform(-mean * inv_scale, inv_scale), 1)


@dataclass(frozen=True)
class LinearGaussian(Mechanism):
    """Linear-Gaussian (additive-noise) mechanism ``x = w . pa + b + sigma * u``, u ~ N(0, 1).

    The teaching mechanism: its parameters are the regression coefficients (in standardized
    units).

    Example:
        >>> import torch
        >>> flow = LinearGaussian().build(context=1)
        >>> d = flow(torch.zeros(4, 1))
        >>> torch.allclose(d.log_prob(torch.zeros(4, 1)), torch.full((4,), -0.9189), atol=1e-4)
        True
    """

    name: ClassVar[str] = "linear"

    def build(self, context: int) -> Flow:
        base = UnconditionalDistribution(DiagNormal, torch.zeros(1), torch.ones(1), buffer=True)
        return Flow(_LinearShiftTransform(context), base)


MECHANISMS: dict[str, type[Mechanism]] = {m.name: m for m in (MAF, NSF, LinearGaussian)}


def mechanism_from_config(config: dict[str, Any] | str | Mechanism) -> Mechanism:
    """Rebuild a mechanism specification from :meth:`Mechanism.to_config` or a name.

    Example:
        >>> mechanism_from_config({"type": "nsf", "bins": 4})
        NSF(bins=4, transforms=1, hidden_features=(64, 64))
        >>> mechanism_from_config("linear")
        LinearGaussian()
    """
    if isinstance(config, Mechanism):
        return config
    if isinstance(config, str):
        config = {"type": config}
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in MECHANISMS:
        raise ValueError(f"unknown mechanism type {kind!r}; choose one of {sorted(MECHANISMS)}")
    if "hidden_features" in config:
        config["hidden_features"] = tuple(config["hidden_features"])
    return MECHANISMS[kind](**config)
