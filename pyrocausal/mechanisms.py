"""Causal mechanisms: conditional distributions ``p(x_i | parents)`` as invertible flows.

A mechanism is a *specification* (a small frozen dataclass such as :class:`MAF`). Every node
gets its own conditioner network and its own univariate Zuko transform, so mechanisms are
independent; nodes that share a specification are *stacked*: their networks are evaluated in
one batched pass (:class:`StackedMechanism`), which is what makes fitting as fast as a single
masked flow. Each node's mechanism is a Zuko :class:`~zuko.distributions.NormalizingFlow`
whose transform maps the node's (standardized) value to its exogenous noise, so abduction is
``flow.transform(x)`` and prediction is ``flow.transform.inv(u)``. Inside the Pyro program
the flow's base enters through :class:`ZukoBase` (a :class:`pyro.contrib.zuko.ZukoToPyro`).
"""

from __future__ import annotations

__all__ = [
    "MAF",
    "AdditiveNoise",
    "Auto",
    "MECHANISMS",
    "NSF",
    "LinearGaussian",
    "Mechanism",
    "SharedKnotRQSTransform",
    "SinhArcsinhTransform",
    "StackedMechanism",
    "ZukoBase",
    "beats",
    "mechanism_from_config",
]

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pyro.contrib.zuko import ZukoToPyro
from torch import Size, Tensor, nn
from torch.distributions import AffineTransform, Transform, constraints
from zuko.distributions import DiagNormal, NormalizingFlow
from zuko.transforms import (
    ComposedTransform,
    DependentTransform,
    MonotonicAffineTransform,
    MonotonicRQSTransform,
)


class ZukoBase(ZukoToPyro):
    """:class:`~pyro.contrib.zuko.ZukoToPyro` that can also serve as the base of a
    :class:`pyro.distributions.TransformedDistribution` (it adds ``sample``/``rsample``).

    Example:
        >>> import torch, zuko
        >>> base = ZukoBase(zuko.distributions.DiagNormal(torch.zeros(1), torch.ones(1)))
        >>> base.expand((3,)).rsample().shape
        torch.Size([3, 1])
    """

    def rsample(self, sample_shape: Size = Size()) -> Tensor:  # noqa: B008
        return self.dist.rsample(sample_shape)

    def sample(self, sample_shape: Size = Size()) -> Tensor:  # noqa: B008
        return self.dist.sample(sample_shape)

    def expand(self, batch_shape: Sequence[int], _instance: object = None) -> ZukoBase:
        return ZukoBase(self.dist.expand(Size(batch_shape)))


class SharedKnotRQSTransform(MonotonicRQSTransform):
    """Zuko's :class:`~zuko.transforms.MonotonicRQSTransform` for knots shared by many values.

    Same spline, same formulas; only the knot lookup differs. Zuko gathers each value's
    bin from the knot tensors broadcast to the values' shape, whose backward pass builds a
    full-size gradient per row; a parent-free noise spline has one set of knots per node
    for all rows, so here each value's knots are read with one flat ``take`` (backward: a
    scatter into the few knots). Forward and backward of a 9-node spline on 512 rows:
    2.7 ms against zuko's 3.4 ms (one CPU thread).

    Example:
        >>> import torch
        >>> from zuko.transforms import MonotonicRQSTransform
        >>> w, h, d = torch.randn(3, 1, 8), torch.randn(3, 1, 8), torch.randn(3, 1, 7)
        >>> x = torch.randn(3, 100) * 3
        >>> a = SharedKnotRQSTransform(w, h, d).call_and_ladj(x)
        >>> b = MonotonicRQSTransform(w, h, d).call_and_ladj(x)
        >>> all(torch.allclose(u, v) for u, v in zip(a, b))
        True
    """

    def bin(self, k: Tensor) -> tuple[Tensor, ...]:
        mask = torch.logical_and(0 <= k, k < self.bins)
        k = k % self.bins
        batch = self.horizontal.shape[:-1]
        shape = torch.broadcast_shapes(batch, k.shape)
        knots = self.bins + 1
        rows = torch.arange(batch.numel(), device=k.device).reshape(batch)
        first = (rows * knots).expand(shape) + k.expand(shape)

        def pick(t: Tensor) -> tuple[Tensor, Tensor]:
            flat = t.expand(*batch, knots).reshape(-1)
            return flat.take(first), flat.take(first + 1)

        (x0, x1), (y0, y1), (d0, d1) = map(pick, (self.horizontal, self.vertical, self.derivatives))
        s = (y1 - y0) / (x1 - x0)
        return mask.expand(shape), x0, x1, y0, y1, d0, d1, s


class _SinhArcsinhCall(torch.autograd.Function):
    """Value and log-abs-det-Jacobian of :class:`SinhArcsinhTransform` with a hand-written
    backward: a third fewer operations than autograd's graph of the same expressions (whose
    backward was most of a training step's extra cost over a :class:`MAF`)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, skew: Tensor, log_tail: Tensor) -> tuple[Tensor, Tensor]:
        y, ladj, saved = _sinh_arcsinh_forward(x, skew, log_tail)
        ctx.save_for_backward(*saved)
        ctx.shapes = (x.shape, skew.shape, log_tail.shape)
        return y, ladj

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor, grad_ladj: Tensor) -> tuple[Tensor, ...]:
        x_shape, skew_shape, tail_shape = ctx.shapes
        grad_x, grad_skew, grad_tail = _sinh_arcsinh_backward(
            grad_y, grad_ladj, ctx.saved_tensors, skew_shape, tail_shape
        )
        return grad_x.sum_to_size(x_shape), grad_skew, grad_tail


LOG_TAIL_BOUND = 3.0
"""``|log_b|`` of :class:`SinhArcsinhTransform` is clamped to this bound."""


def _sinh_arcsinh_forward(
    x: Tensor, skew: Tensor, log_tail: Tensor
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """``y = sinh(exp(log_tail) asinh(x) - skew)``, its log-abs-det-Jacobian, and the tensors
    :func:`_sinh_arcsinh_backward` needs (``log_tail`` already clamped)."""
    tail = log_tail.exp()
    s = torch.asinh(x)
    z = torch.addcmul(-skew, tail, s)
    # log cosh(z) = |z| + log1p(exp(-2|z|)) - log 2; d/dx asinh(x) = 1 / sqrt(1 + x^2)
    a = z.abs()
    ladj = torch.exp(-2.0 * a).log1p_().add_(a).add_(log_tail - math.log(2.0))
    ladj = ladj.sub_(torch.log1p(x * x).mul_(0.5))
    return torch.sinh(z), ladj, (x, s, z, tail)


def _sinh_arcsinh_backward(
    grad_y: Tensor,
    grad_ladj: Tensor,
    saved: Sequence[Tensor],
    skew_shape: Sequence[int],
    tail_shape: Sequence[int],
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the loss with respect to ``x``, the skew and the (clamped) log tail
    weight, given those of ``y`` and of the ladj and the tensors :func:`_sinh_arcsinh_forward`
    saved; the parameters' gradients are summed to their shapes."""
    x, s, z, tail = saved
    grad_z = torch.addcmul(grad_y * torch.cosh(z), grad_ladj, torch.tanh(z))
    inv = (x * x).add_(1.0).reciprocal_()  # 1 / (1 + x^2)
    grad_x = (grad_z * tail).mul_(inv.sqrt()).sub_(grad_ladj * x * inv)
    grad_skew = -grad_z.sum_to_size(skew_shape)
    grad_tail = (grad_z * s).sum_to_size(tail_shape) * tail + grad_ladj.sum_to_size(tail_shape)
    return grad_x, grad_skew, grad_tail


class SinhArcsinhTransform(Transform):
    r"""The sinh-arcsinh transform ``y = sinh(b asinh(x) - a)`` (Jones and Pewsey, 2009).

    Two parameters shape a Gaussian's skewness (``a``) and tail weight (``b = exp(log_b)``,
    light tails below 1, heavy above); ``a = log_b = 0`` is the identity. A noise shape of
    a dozen element-wise operations, against about 180 small operations for a rational-
    quadratic spline. ``log_b`` is clamped to ``[-3, 3]``.

    Example:
        >>> import torch
        >>> t = SinhArcsinhTransform(torch.tensor(0.3), torch.tensor(-0.2))
        >>> x = torch.linspace(-3, 3, 7)
        >>> bool(torch.allclose(t.inv(t(x)), x, atol=1e-5))
        True
        >>> bool(torch.allclose(SinhArcsinhTransform(torch.tensor(0.0), torch.tensor(0.0))(x), x))
        True
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, skew: Tensor, log_tail: Tensor) -> None:
        super().__init__()
        self.skew = skew
        self.log_tail = log_tail.clamp(-LOG_TAIL_BOUND, LOG_TAIL_BOUND)

    def _call(self, x: Tensor) -> Tensor:
        return torch.sinh(self.log_tail.exp() * torch.asinh(x) - self.skew)

    def _inverse(self, y: Tensor) -> Tensor:
        return torch.sinh((torch.asinh(y) + self.skew) * torch.exp(-self.log_tail))

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        # dy/dx = cosh(z) b / sqrt(1 + x^2), z = b asinh(x) - a; log cosh(z) computed stably.
        z = (self.log_tail.exp() * torch.asinh(x) - self.skew).abs()
        log_cosh = z + torch.log1p(torch.exp(-2.0 * z)) - math.log(2.0)
        return log_cosh + self.log_tail - 0.5 * torch.log1p(x * x)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(self(x), self.log_abs_det_jacobian(x, self(x)))`` in one pass."""
        return _SinhArcsinhCall.apply(x, self.skew, self.log_tail)


@dataclass(frozen=True)
class Mechanism:
    """Base class of mechanism specifications.

    A specification says how a node's conditioner network is shaped (``hidden_features``)
    and which univariate Zuko transform its outputs parameterize (:meth:`univariate`).
    """

    name: ClassVar[str] = "mechanism"
    hidden_features: tuple[int, ...] = (16, 16)

    def shapes(self) -> list[Size]:
        """Shapes of the transform parameters the conditioner outputs per node."""
        raise NotImplementedError

    def free_shapes(self) -> list[Size]:
        """Shapes of the parameters that do not depend on the parents (those :meth:`noise`
        receives)."""
        return []

    def univariate(self, params: list[Tensor]) -> Transform:
        """The transform ``x -> u`` (standardized value to noise) for the given parameters."""
        raise NotImplementedError

    def noise(self, params: list[Tensor]) -> Transform | None:
        """The parent-free transform applied after :meth:`univariate` (the noise density's
        shape), from the parameters of :meth:`free_shapes`; ``None`` when there is none."""
        return None

    def value_shapes(self) -> list[Size]:
        """Shapes of the parent-free parameters of :meth:`value` (none by default)."""
        return []

    def value(self, params: list[Tensor]) -> Transform | None:
        """The parent-free transform applied to the value *before* the regression (a
        post-non-linearity's inverse); ``None`` when there is none."""
        return None

    @property
    def closed_form(self) -> bool:
        """Whether least squares alone is the maximum-likelihood fit (no network, no free
        noise parameters: the linear-Gaussian regressions)."""
        return not self.shapes() and not self.free_shapes() and not self.value_shapes()

    def build(self, parents: Sequence[Sequence[int]], num_features: int) -> StackedMechanism:
        """Stack this mechanism for nodes with the given parent columns."""
        return StackedMechanism(self, parents, num_features)

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly description, inverted by :func:`mechanism_from_config`."""
        config = dataclasses.asdict(self)
        config["hidden_features"] = list(self.hidden_features)
        return {"type": self.name, **config}


@dataclass(frozen=True)
class MAF(Mechanism):
    """Affine autoregressive flow mechanism (Zuko's ``MonotonicAffineTransform``).

    ``x = t(pa) + exp(s(pa)) * u`` with ``u ~ N(0, 1)``: a heteroscedastic additive-noise
    mechanism, what a one-feature :class:`zuko.flows.MAF` conditioned on the parents is.

    Arguments:
        hidden_features: Hidden layer sizes of the node's conditioner network.
        transforms: Number of composed affine transforms (one suffices for one feature).

    Example:
        >>> import torch
        >>> stack = MAF(hidden_features=(16, 16)).build([[], [0]], num_features=2)
        >>> flow = stack.flow(1, torch.randn(5, 1))
        >>> flow.log_prob(torch.randn(5, 1)).shape
        torch.Size([5])
    """

    name: ClassVar[str] = "maf"
    transforms: int = 1

    def shapes(self) -> list[Size]:
        return [Size(()), Size(())] * self.transforms

    def univariate(self, params: list[Tensor]) -> Transform:
        steps = [MonotonicAffineTransform(s, a) for s, a in zip(params[::2], params[1::2])]
        return steps[0] if len(steps) == 1 else ComposedTransform(*steps)


@dataclass(frozen=True)
class _SplineNoise(Mechanism):
    """Mechanisms whose noise has a parent-free shape: a monotonic spline of a Gaussian or a
    sinh-arcsinh transform of one (the fields ``bins``, ``bound`` and ``noise_shape`` and the
    :meth:`noise` transform they share)."""

    bins: int = 8
    bound: float = 5.0
    noise_shape: str = "spline"

    def __post_init__(self) -> None:
        if self.noise_shape not in ("spline", "sinh-arcsinh"):
            raise ValueError(
                f"noise_shape must be 'spline' or 'sinh-arcsinh', got {self.noise_shape!r}"
            )

    def free_shapes(self) -> list[Size]:
        if self.noise_shape == "sinh-arcsinh":
            return [Size(()), Size(())]
        b = self.bins
        return [Size((b,)), Size((b,)), Size((b - 1,))] if b else []

    def noise(self, params: list[Tensor]) -> Transform | None:
        if self.noise_shape == "sinh-arcsinh":
            return SinhArcsinhTransform(*params)
        return SharedKnotRQSTransform(*params, bound=self.bound) if self.bins else None


@dataclass(frozen=True)
class AdditiveNoise(_SplineNoise):
    """Additive-noise mechanism ``x = f(pa) + e`` with ``e`` independent of the parents.

    ``f`` is the node's network (plus the linear part every mechanism has); the noise
    density is a monotonic spline of a Gaussian whose parameters do *not* depend on the
    parents (``bins=0``: Gaussian noise). Most benchmark SCMs are additive-noise models,
    and for them this structure is what makes counterfactuals right: the abducted residual
    carries over unchanged to the counterfactual world.

    Arguments:
        hidden_features: Hidden layer sizes of the node's network ``f``.
        bins: Bins of the noise spline (0 for Gaussian noise).
        bound: Half-width of the spline's domain (standardized units).
        noise_shape: ``"spline"`` or ``"sinh-arcsinh"``, as in :class:`LocationScale`.

    Example:
        >>> import torch
        >>> stack = AdditiveNoise(hidden_features=(8,)).build([[], [0]], num_features=2)
        >>> stack.flow(1, torch.randn(5, 1)).sample().shape
        torch.Size([5, 1])
    """

    name: ClassVar[str] = "anm"

    def shapes(self) -> list[Size]:
        return [Size(())]

    def univariate(self, params: list[Tensor]) -> Transform:
        shift = params[0]
        return MonotonicAffineTransform(shift, torch.zeros_like(shift))


@dataclass(frozen=True)
class LocationScale(_SplineNoise):
    """Location-scale noise mechanism ``x = f(pa) + g(pa) * e``, ``e`` independent of the parents.

    Both the location ``f`` and the scale ``g`` come from the node's network (as in
    :class:`MAF`), and the noise ``e`` has a non-Gaussian density: a monotonic spline of a
    Gaussian whose parameters do *not* depend on the parents (as in :class:`AdditiveNoise`).
    Heteroscedastic, skewed or heavy-tailed noise (``x3 = ... + (0.5 + 0.25 x2) sinh(u3)``,
    multiplicative log-normal noise) is of this form; a Gaussian :class:`MAF` misfits its
    tails and an :class:`AdditiveNoise` mechanism its scale. Since the standardized noise is
    shared by every parent value, the abducted ``e`` carries over to the counterfactual world.

    Arguments:
        hidden_features: Hidden layer sizes of the node's network.
        bins: Bins of the noise spline (0: Gaussian noise, which is :class:`MAF`).
        bound: Half-width of the spline's domain (standardized units).
        noise_shape: ``"spline"`` (a monotonic rational-quadratic spline of ``bins`` bins)
            or ``"sinh-arcsinh"`` (:class:`SinhArcsinhTransform`: skewness and tail weight
            only, at a fraction of the spline's cost per step).

    Example:
        >>> import torch
        >>> stack = LocationScale(hidden_features=(8,)).build([[], [0]], num_features=2)
        >>> stack.flow(1, torch.randn(5, 1)).log_prob(torch.randn(5, 1)).shape
        torch.Size([5])
    """

    name: ClassVar[str] = "lsnm"

    def shapes(self) -> list[Size]:
        return [Size(()), Size(())]

    def univariate(self, params: list[Tensor]) -> Transform:
        return MonotonicAffineTransform(params[0], params[1])


@dataclass(frozen=True)
class PostNonlinear(LocationScale):
    """Post-non-linear mechanism ``x = h(f(pa) + g(pa) * e)``, ``h`` monotone and parent-free.

    The value first goes through a parent-free monotonic spline ``h^{-1}`` (identity to
    start with), then the location-scale regression of :class:`LocationScale` and its
    parent-free noise shape. Every node whose noise and parents mix through one monotone
    link (``softplus``, ``sinh``, ``exp`` of a parent function plus noise) is of this form;
    a location-scale mechanism cannot bend its quantiles and an :class:`NSF` lets the
    spline change with the parents. The link, the regression and the noise are shared by
    every parent value, so the abducted ``e`` carries over to the counterfactual world.

    Arguments:
        hidden_features: Hidden layer sizes of the node's network.
        bins: Bins of the noise spline (0: Gaussian noise).
        bound: Half-width of both splines' domains (standardized units).
        noise_shape: As in :class:`LocationScale`.
        link_bins: Bins of the value spline ``h^{-1}``.

    Example:
        >>> import torch
        >>> stack = PostNonlinear(hidden_features=(8,)).build([[], [0]], num_features=2)
        >>> flow = stack.flow(1, torch.randn(5, 1))
        >>> x = torch.randn(5, 1)
        >>> bool(torch.allclose(flow.transform.inv(flow.transform(x)), x, atol=1e-5))
        True
    """

    name: ClassVar[str] = "pnl"
    link_bins: int = 8

    def value_shapes(self) -> list[Size]:
        b = self.link_bins
        return [Size((b,)), Size((b,)), Size((b - 1,))]

    def value(self, params: list[Tensor]) -> Transform | None:
        return SharedKnotRQSTransform(*params, bound=self.bound)


@dataclass(frozen=True)
class NSF(Mechanism):
    """Monotonic rational-quadratic spline mechanism (Zuko's ``MonotonicRQSTransform``).

    Non-additive and non-Gaussian noise (mixtures, multiplicative noise) need a spline. The
    spline acts on ``[-bound, bound]`` of the standardized value and is linear outside.

    Arguments:
        hidden_features: Hidden layer sizes of the node's conditioner network.
        bins: Number of spline bins.
        transforms: Number of composed spline transforms.
        bound: Half-width of the spline's domain (standardized units).
        location_scale: Put a conditional location and scale (a :class:`MAF` step) before
            the spline, so that the spline's bins shape the noise instead of following a
            location and scale that change with the parents. As the refinement of
            :meth:`Auto.light` it gave the closest counterfactuals of every variant on the
            random tuning pool (19/20 SCMs at or below the best peer, worst ratio 1.09,
            against 14/20 and 1.25) and worse ones on two literature SCMs (VACA's non-additive
            triangle 0.94 -> 1.64 times the best peer, the non-linear chain 0.99 -> 1.32),
            so it is not the default (``bench/results/random_pool/TUNING.md``).

    Example:
        >>> import torch
        >>> stack = NSF(bins=4, hidden_features=(16,)).build([[]], num_features=1)
        >>> stack.flow(0, None).sample((3,)).shape
        torch.Size([3, 1])
    """

    name: ClassVar[str] = "nsf"
    bins: int = 8
    transforms: int = 1
    bound: float = 5.0
    location_scale: bool = False

    def shapes(self) -> list[Size]:
        b = self.bins
        first = [Size(()), Size(())] if self.location_scale else []
        return first + [Size((b,)), Size((b,)), Size((b - 1,))] * self.transforms

    def univariate(self, params: list[Tensor]) -> Transform:
        steps: list[Transform] = []
        if self.location_scale:  # a conditional location and scale before the spline
            steps.append(MonotonicAffineTransform(params[0], params[1]))
            params = params[2:]
        steps += [
            MonotonicRQSTransform(w, h, d, bound=self.bound)
            for w, h, d in zip(params[::3], params[1::3], params[2::3])
        ]
        return steps[0] if len(steps) == 1 else ComposedTransform(*steps)


@dataclass(frozen=True)
class LinearGaussian(Mechanism):
    """Linear-Gaussian (additive-noise) mechanism ``x = w . pa + b + sigma * u``, u ~ N(0, 1).

    The teaching mechanism; its parameters are regression coefficients in standardized
    units, fitted in closed form by least squares (its maximum likelihood).
    ``hidden_features`` is fixed to ``()`` (no hidden layer). ``degree=2`` adds the
    squares and pairwise products of the parents to the regression (``x = w . pa +
    sum_ij v_ij pa_i pa_j + b + sigma * u``): still linear in its coefficients and fitted
    by least squares, and it extrapolates interactions such as ``x3 = x1 * x2`` exactly
    where a network cannot.

    Arguments:
        degree: 1 (linear) or 2 (quadratic in the parents).

    Example:
        >>> import torch
        >>> stack = LinearGaussian().build([[0]], num_features=1)
        >>> d = stack.flow(0, torch.zeros(4, 1))    # starts at w = 0, b = 0, sigma = 1
        >>> torch.allclose(d.log_prob(torch.zeros(4, 1)), torch.full((4,), -0.9189), atol=1e-4)
        True
        >>> LinearGaussian(degree=2)
        LinearGaussian(hidden_features=(), degree=2)
    """

    name: ClassVar[str] = "linear"
    hidden_features: tuple[int, ...] = ()
    degree: int = 1

    def __post_init__(self) -> None:
        if tuple(self.hidden_features):
            raise ValueError("LinearGaussian has no hidden layers; use MAF for a non-linear mean")
        if self.degree not in (1, 2):
            raise ValueError(f"LinearGaussian degree must be 1 or 2, got {self.degree!r}")

    def shapes(self) -> list[Size]:
        return []  # the linear-Gaussian part of every stacked mechanism is all there is


MECHANISMS: dict[str, type[Mechanism]] = {
    m.name: m for m in (MAF, NSF, LinearGaussian, AdditiveNoise, LocationScale, PostNonlinear)
}


@dataclass(frozen=True)
class Auto:
    """Choose each node's mechanism by held-out log-likelihood.

    Every candidate is trained for every node at once (they have independent weights, so
    this is the same as training them one by one) for the first ``pilot_fraction`` of the
    epochs, on at most ``pilot_rows`` of the training rows; the validation rows take no
    part in it. Each node then keeps the *first* candidate, in the order given, whose
    held-out negative log-likelihood is within ``se_rule`` paired standard errors of the
    best one: a linear or additive mechanism is not lost to an oversized flow that fits the
    validation rows no better. The winners keep their weights and train for the remaining
    epochs (closed-form ones are refitted on every row and not trained).

    The default order is one of preference, not of size: the linear regression first, then
    the networks from the most constrained (additive noise) to the most flexible (location-
    scale with a noise spline), and the quadratic regression last. A quadratic extrapolates
    polynomially when an intervention moves the parents off the data, so it must *beat*
    every network, as it does where the true mechanism is a product of the parents;
    where it only ties with a network that is still training in the pilot, it would cost
    counterfactual accuracy (seen on a chain whose ``exp`` link it fits well in range).
    So it is judged after training, against each node's fully trained mechanism, and
    replaces it when its held-out NLL is lower by more than ``challenge_se_rule`` paired
    standard errors. A trained network that cannot beat a quadratic on held-out rows fits
    the data no better, and the quadratic extrapolates an interaction where the network
    cannot: on the benchmark's symmetric product it won by 1.0-2.1 standard errors on every
    seed (0.003-0.007 nats), and its counterfactuals were five to ten times closer. The
    two-SE rule of the pilot kept it out on two seeds of three; with no margin at all it
    took near-ties (0.06-0.24 SE) from networks still short of data (3,000 rows) and cost
    them accuracy (the non-linear fork's ATE error 0.125 against 0.036), hence half an SE.
    A negative ``challenge_se_rule`` lets the quadratic take near-ties too: it replaces the
    mechanism unless its NLL is *higher* by more than ``-challenge_se_rule`` standard errors
    (what :meth:`light` does, whose MAFs are large enough to tie a product of the parents).

    Arguments:
        candidates: Mechanisms in order of preference.
        pilot_fraction: Share of the epochs spent on the selection.
        pilot_rows: Training rows used for the selection (all when ``None``).
        se_rule: How many paired standard errors a later candidate must win by.
        challenge_se_rule: The same, for a closed-form candidate listed after a network
            against the node's trained mechanism (negative: the candidate wins unless it is
            worse by more than that many standard errors).
        nested_alpha: Where the node kept the linear regression, the quadratic one replaces
            it when the F-test (likelihood ratio of the nested least-squares fits on every
            row) rejects linearity at this level. A held-out likelihood cannot see the mild
            curvature that still moves counterfactuals: on the large backdoor SCM
            (``x3 = softplus(x1 + 1) + e``, uniform noise) the quadratic's held-out NLL was
            0.0005 nats lower, within one standard error, but the test statistic was
            14-176 on one degree of freedom (threshold 10.8), and the linear fit's
            counterfactuals were three times farther off; on the six linear SCMs of the
            benchmark it stayed below 8 on three degrees of freedom (threshold 16.3).
        scale_alpha: Where the pilot chose a regression (whose noise has one scale), the
            node gets its best network instead when White's test of the regression's squared
            residuals against the parents rejects a constant scale at this level (0: never).
            A multiplicative node ``g(pa) (c + u)`` can tie the linear regression on held-out
            likelihood early in the pilot and its counterfactuals are then wrong by the
            changing scale.
        specification_alpha: A regression that passes its specification tests at this
            level on every row (0: no test) is trusted over the networks: the linear one
            takes back a node that a network won, and no network is kept as its near-tie
            alternative (``SCM.alternatives``). The tests: an F-test of the regression
            against the full cubic polynomial in the parents (curvature, odd or even, that
            the regression misses), White's test of a constant noise scale and the
            Jarque-Bera test of Gaussian residuals (its noise is Gaussian). A network that
            wins such a node on held-out likelihood wins by chance: a 24x24 MAF won a
            linear-Gaussian node by two standard errors (0.002 nats) on one fit seed in
            three, and the posterior counterfactuals were then 2.1 times the finite-draw
            floor (``bench/posterior_fitted.py``).
        refinement: A network mechanism trained in the pilot with the candidates that may
            only *replace a chosen network*: it takes a node whose choice is a network when
            its held-out NLL is lower by more than ``se_rule`` paired standard errors, and
            never competes with a closed-form choice. Meant for a noise shape
            (``LocationScale(noise_shape="sinh-arcsinh")``) on top of the MAF: as a plain
            candidate its better fit of non-Gaussian noise beat the least-squares
            regressions of the large backdoor SCM (uniform noise) on every node, whose
            counterfactuals the networks' learned locations then made 2.3 times worse.
        refinements: Further refinements after :attr:`refinement`, in order of preference
            (together: :attr:`ladder`). Among a node's chosen network and its refinements
            the node keeps the first that the best of them does not beat by ``se_rule``
            paired standard errors (see :meth:`refine`).
        confirm: Refinements whose pilot win must hold after training: where the pilot
            gives a node one of them, the node's choice without it (its *shadow*) trains
            beside it for the remaining epochs, and takes the node unless the refinement
            still beats it by ``se_rule`` standard errors on the validation rows. The pilot
            favours the flexible mechanism that learns fastest: a conditional spline won a
            non-linear chain's additive node in the pilot by 0.06 nats and tied the MAF
            after training, with counterfactuals 1.3 times farther off. The shadows train in
            the model's training loop (their weights are their own, so their steps are as if
            apart), and the loss :meth:`SCM.fit <pyrocausal.SCM.fit>` reports, and on which it
            picks the best epoch, includes their negative log-likelihood.
        confirm_by: What the confirmation compares: ``"nll"`` (held-out log-likelihood) or
            ``"quantile"`` (the per-row quantile loss of the conditional distributions,
            :meth:`StackedMechanism.quantile_loss_all`).

    Example:
        >>> [type(c).__name__ for c in Auto().candidates]
        ['LinearGaussian', 'AdditiveNoise', 'MAF', 'LocationScale', 'LinearGaussian']
    """

    # NSF is left out on purpose: on the benchmark suite spline mechanisms chosen for their
    # better held-out likelihood gave far worse counterfactuals (VACA's non-additive
    # triangle: CF RMSE 0.46 against 0.07 for MAF; see bench/results): a spline whose shape
    # depends on the parents does not keep the unit's noise rank-equivalent across worlds.
    # Add it explicitly with Auto(candidates=(..., NSF())) when nothing else fits.
    # The networks are 32x32 (Auto.light(), the default, has 24x24 MAFs for its fit time):
    # over the benchmark's ten non-linear SCMs and 3 seeds, 32x32 candidates
    # gave closer counterfactuals where a steep link needs the capacity (triangle 0.077 vs
    # 0.122, fork 0.050 vs 0.062 CF RMSE) at 1.5-2x the time per step.
    candidates: tuple[Mechanism, ...] = (
        LinearGaussian(),
        AdditiveNoise(hidden_features=(32, 32)),
        MAF(hidden_features=(32, 32)),
        LocationScale(hidden_features=(32, 32)),
        LinearGaussian(degree=2),
    )
    pilot_fraction: float = 0.25
    pilot_rows: int | None = 4096
    se_rule: float = 2.0
    challenge_se_rule: float = 0.5
    nested_alpha: float = 1e-3
    refinement: Mechanism | None = None
    scale_alpha: float = 0.0
    specification_alpha: float = 0.0
    refinements: tuple[Mechanism, ...] = ()
    confirm: tuple[Mechanism, ...] = ()
    confirm_by: str = "nll"

    @classmethod
    def light(cls) -> Auto:
        """The default of :class:`~pyrocausal.SCM`: least squares where a node is linear, a
        24x24 :class:`MAF` otherwise, and the quadratic regression where it ties or beats
        the trained MAF on held-out rows (within half a standard error, see
        ``challenge_se_rule``) or where an F-test rejects the linear one (see
        ``nested_alpha``).

        No noise splines and one network size, so a fit costs little more than an all-MAF
        fit, less where nodes are closed-form; the pilot takes a tenth of the epochs (the
        chosen MAFs then train for the other nine tenths). On the benchmark
        (``bench/scm_suite.py``, 17 SCMs, 3 seeds) 24x24 MAFs gave closer counterfactuals
        than 16x16 ones where a link is steep or the noise is not additive (CF RMSE / best
        peer: non-linear triangle 0.78 against 1.07, multiplicative triangle 1.06 against
        1.20, VACA non-additive 1.09 against 1.18); a MAF of that size ties the quadratic
        on the symmetric product ``x1 x2``, where only the quadratic extrapolates, hence
        the quadratic wins near-ties. The F-test took the large backdoor from 2.5 to 1.1
        times DoWhy-gcm's error. The full :class:`Auto` (``"auto"``) adds additive- and
        location-scale-noise mechanisms with 32x32 networks: closer counterfactuals on the
        non-additive SCMs at 1.4 to 3 times the fitting time.

        A regression the pilot kept gives way to the node's best network where White's test
        rejects a constant noise scale (``scale_alpha=1e-3``): on random SCMs the defaults
        were never tuned on (:func:`pyrocausal.datasets.random_scm`) a multiplicative node
        ``g(pa) (c + u)`` tied the linear regression in the pilot, whose counterfactuals
        were then off by the scale (see README, "Random SCMs").

        Its refinement is a 24x24 :class:`LocationScale` with a sinh-arcsinh noise shape,
        which may replace a chosen MAF where it wins by two standard errors: on the full
        benchmark (2026-11-30) the default is <= the best peer's CF RMSE on 15/17 SCMs (12/17
        without it; VACA non-additive, multiplicative and non-linear fork gained), max ratio
        1.16, at 0.87-0.93x a CausalMAF fit at equal epochs (``bench/core_speed.py``).

        Example:
            >>> [type(c).__name__ for c in Auto.light().candidates]
            ['LinearGaussian', 'MAF', 'LinearGaussian']
        """
        return cls(
            candidates=(LinearGaussian(), MAF(hidden_features=(24, 24)), LinearGaussian(degree=2)),
            pilot_fraction=0.1,
            challenge_se_rule=-0.5,
            refinement=LocationScale(hidden_features=(24, 24), noise_shape="sinh-arcsinh"),
            scale_alpha=1e-3,
            specification_alpha=1e-3,
        )

    @classmethod
    def flexible(cls) -> Auto:
        """:meth:`light` with two more refinements for non-additive noise: a location-scale
        mechanism with a parent-free spline noise, then a conditional spline
        (:class:`NSF` with ``location_scale=True``) whose win in the pilot must hold after
        training (:attr:`confirm`).

        Not the default: on the random SCMs of :func:`pyrocausal.datasets.random_scm` it
        gives closer counterfactuals than :meth:`light` (tuning pool: 19/20 SCMs at or below
        the best peer against 14/20, median ratio 0.70 against 0.88), but on two of the 17
        literature SCMs it is worse, VACA's non-additive triangle above all (1.50 times the
        best peer against 0.94): a location-scale mechanism with a two-mode noise, which the
        conditional spline fits better and whose counterfactuals it moves across the gap
        between the modes. Measured in ``bench/results/random_pool/TUNING.md``. It trains
        more stacks, and splines, than :meth:`light`: about four times its fitting time at
        equal epochs (``bench/core_speed.py``).

        Example:
            >>> [type(r).__name__ for r in Auto.flexible().ladder]
            ['LocationScale', 'LocationScale', 'NSF']
        """
        conditional = NSF(hidden_features=(24, 24), location_scale=True)
        return dataclasses.replace(
            cls.light(),
            refinements=(LocationScale(hidden_features=(24, 24)), conditional),
            confirm=(conditional,),
        )

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("Auto needs at least one candidate mechanism")
        if not 0.0 < self.pilot_fraction <= 1.0:
            raise ValueError(f"pilot_fraction must be in (0, 1], got {self.pilot_fraction}")
        if not 0.0 <= self.nested_alpha < 1.0:
            raise ValueError(f"nested_alpha must be in [0, 1), got {self.nested_alpha}")
        if not 0.0 <= self.scale_alpha < 1.0:
            raise ValueError(f"scale_alpha must be in [0, 1), got {self.scale_alpha}")
        if not 0.0 <= self.specification_alpha < 1.0:
            raise ValueError(
                f"specification_alpha must be in [0, 1), got {self.specification_alpha}"
            )
        for spec in self.ladder:
            if spec.closed_form:
                raise ValueError(f"a refinement must be a network mechanism, got {spec}")
        if self.confirm_by not in ("nll", "quantile"):
            raise ValueError(f"confirm_by must be 'nll' or 'quantile', got {self.confirm_by!r}")
        for spec in self.confirm:
            if spec not in self.ladder:
                raise ValueError(f"confirm lists {spec}, which is not a refinement")

    @property
    def ladder(self) -> tuple[Mechanism, ...]:
        """The refinements in order of preference: :attr:`refinement`, then
        :attr:`refinements`."""
        first = () if self.refinement is None else (self.refinement,)
        return first + tuple(self.refinements)

    def refine(self, nll: Tensor, network: int, skip: Sequence[int] = ()) -> int:
        """The refinement step of :meth:`select` for a node whose choice is ``network``.

        ``nll`` holds ``(candidates + refinements, rows)`` held-out NLLs. Among the network
        and the refinements (rows ``len(candidates)`` on, ``skip`` left out) the node keeps
        the first, in order of preference, that the best of them does not beat by
        ``se_rule`` paired standard errors. With one refinement: it replaces the network
        when it wins by ``se_rule`` standard errors.

        Example:
            >>> import torch
            >>> rule = Auto(candidates=(MAF(),), refinement=LocationScale())
            >>> rule.refine(torch.tensor([[1.0, 1.2, 0.8], [0.0, 0.1, -0.1]]), 0)
            1
        """
        n = len(self.candidates)
        options = [network] + [n + k for k in range(len(self.ladder)) if n + k not in skip]
        best = min(options, key=lambda c: float(nll[c].mean()))
        return next((c for c in options if not beats(nll[best], nll[c], self.se_rule)), best)

    def select(self, nll: Tensor) -> int:
        """Index of the chosen candidate from held-out per-row NLLs ``(candidates, rows)``.

        With refinements (:attr:`ladder`), ``nll`` has one more row for each, and the index
        ``len(candidates) + k`` means the ``k``-th refinement (see :meth:`refine`).
        """
        n = len(self.candidates)
        base = nll[:n]
        best = int(base.mean(-1).argmin())
        chosen = next((c for c in range(n) if not beats(base[best], base[c], self.se_rule)), best)
        if self.ladder and not self.candidates[chosen].closed_form:
            return self.refine(nll, chosen)
        return chosen


class StackedMechanism(nn.Module):
    """The mechanisms of every node that uses one :class:`Mechanism`, run in one pass.

    Each node's transform (value -> noise) is ``u = inner((x - w.pa - b) / sigma)``: a
    linear-Gaussian regression on the parents (fitted in closed form by
    :meth:`initialize`, then trained), followed by the specification's univariate Zuko
    transform whose parameters come from the node's own conditioner network. The network's
    last layer starts at zero, so ``inner`` starts as the identity: every mechanism starts
    from the least-squares linear model and learns what it does not explain (non-linearity,
    heteroscedasticity, non-Gaussian noise). Linear parts thus extrapolate linearly when an
    intervention moves a parent off the data, and a :class:`LinearGaussian` node is just the
    regression (:attr:`closed_form`: least squares is its maximum likelihood).

    Node ``g`` owns its own weights (slice ``g`` of each stacked tensor) and reads only its
    parents' columns, so mechanisms stay independent; batched matrix products evaluate all
    of them at once. The regression and the conditioner's first layer share one masked
    input matrix (columns: mean, log standard deviation, first hidden layer), so a training
    step costs one batched product per layer.

    Arguments:
        spec: The mechanism specification shared by these nodes.
        parents: For each node, the column indices of its parents in the full data matrix.
        num_features: Number of columns of the full data matrix.
    """

    def __init__(
        self, spec: Mechanism, parents: Sequence[Sequence[int]], num_features: int
    ) -> None:
        super().__init__()
        self.spec = spec
        self.parents = [list(p) for p in parents]
        g = len(self.parents)
        self._shapes = spec.shapes()
        self._sizes = [s.numel() for s in self._shapes]
        self._free_shapes = spec.free_shapes()
        self._free_sizes = [s.numel() for s in self._free_shapes]
        widths = [num_features, *spec.hidden_features, sum(self._sizes)] if self._shapes else []
        first = widths[1] if widths else 0
        # Quadratic regressions read the squares and products of the columns too (rows
        # num_features.. of the input matrix, in the order of ``pairs``).
        pairs = (
            [(i, j) for i in range(num_features) for j in range(i, num_features)]
            if getattr(spec, "degree", 1) == 2
            else []
        )
        self.register_buffer("pair_index", torch.tensor(pairs, dtype=torch.long).view(-1, 2).T)
        self._pair_rows = {pair: num_features + r for r, pair in enumerate(pairs)}
        inputs = num_features + len(pairs)
        # Input layer: column 0 the regression mean w . pa + b, column 1 the log standard
        # deviation (bias only: its weights are masked out), then the conditioner's first layer.
        mask = torch.zeros(g, inputs, 2 + first, dtype=torch.bool)
        for i, pa in enumerate(self.parents):
            mask[i, pa] = True
            mask[i, [self._pair_rows[p] for p in self._parent_pairs(pa)], 0] = True
        mask[:, :, 1] = False
        self.register_buffer("mask", mask)
        self.register_buffer("base_loc", torch.zeros(1))
        self.register_buffer("base_scale", torch.ones(1))
        if spec.closed_form:  # the least-squares posterior (see draw_least_squares)
            self.register_buffer("ls_cov", torch.zeros(g, inputs + 1, inputs + 1))
            self.register_buffer("ls_rss", torch.zeros(g))
            self.register_buffer("ls_dof", torch.zeros(g))
        fan_in = torch.tensor([1 / math.sqrt(max(1, len(p))) for p in self.parents]).view(g, 1, 1)
        last = len(widths) == 2  # the first layer is the output layer
        weight = torch.zeros(g, inputs, 2 + first)
        bias = torch.zeros(g, 1, 2 + first)
        if first and not last:  # a zero last layer makes the inner transform the identity
            weight[..., 2:] = (torch.rand(g, num_features, first) * 2 - 1) * fan_in
            bias[..., 2:] = (torch.rand(g, 1, first) * 2 - 1) * fan_in
        self.weight_in = nn.Parameter(weight)
        self.bias_in = nn.Parameter(bias)
        # Parent-free transform parameters, zero: the identity transform to start with.
        self.free = nn.Parameter(torch.zeros(g, 1, sum(self._free_sizes)))
        self._value_shapes = spec.value_shapes()
        self._value_sizes = [s.numel() for s in self._value_shapes]
        if self._value_shapes:  # only then: older saved stacks have no such parameter
            self.value_free = nn.Parameter(torch.zeros(g, 1, sum(self._value_sizes)))
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        # Per-slot index tensors and (outside autograd) weight slices; see _slot_weight.
        self._slot_cache: dict[tuple, Any] = {}
        for layer, (a, b) in enumerate(zip(widths[1:-1], widths[2:]), start=1):
            scale = 0.0 if layer == len(widths) - 2 else a**-0.5
            self.weights.append(nn.Parameter((torch.rand(g, a, b) * 2 - 1) * scale))
            self.biases.append(nn.Parameter((torch.rand(g, 1, b) * 2 - 1) * scale))

    def __len__(self) -> int:
        return len(self.parents)

    def _parent_pairs(self, pa: Sequence[int]) -> list[tuple[int, int]]:
        """The (column, column) pairs of a node's quadratic terms (none when linear)."""
        if not self._pair_rows:
            return []
        return [(min(a, b), max(a, b)) for k, a in enumerate(pa) for b in pa[k:]]

    def _input_rows(self, pa: Sequence[int]) -> list[int]:
        """A node's rows of the input matrix: its parents' columns, then their pair terms."""
        return list(pa) + [self._pair_rows[p] for p in self._parent_pairs(pa)]

    def _features(self, x: Tensor) -> Tensor:
        """The input rows: the columns, then their products when the regression is quadratic."""
        if not self._pair_rows:
            return x
        return torch.cat([x, x[..., self.pair_index[0]] * x[..., self.pair_index[1]]], dim=-1)

    @property
    def closed_form(self) -> bool:
        """Whether least squares alone is the maximum-likelihood fit (linear-Gaussian nodes)."""
        return self.spec.closed_form

    @torch.no_grad()
    def initialize(self, x: Tensor, columns: Tensor) -> None:
        """Set each node's linear part to the least-squares fit on standardized rows ``x``."""
        features = self._features(x)
        for g, (pa, col) in enumerate(zip(self.parents, columns.tolist())):
            y = x[:, col]
            rows = self._input_rows(pa)
            design = torch.cat([features[:, rows], torch.ones_like(y)[:, None]], dim=1)
            coef = torch.linalg.lstsq(design.double(), y.double()[:, None]).solution[:, 0]
            resid = y.double() - design.double() @ coef
            self.weight_in[g, :, 0] = 0.0
            self.weight_in[g, rows, 0] = coef[:-1].to(x.dtype)
            self.bias_in[g, 0, 0] = float(coef[-1])
            self.bias_in[g, 0, 1] = math.log(max(float(resid.std()), 1e-3))
            if self.closed_form:
                index = torch.tensor([*rows, self.weight_in.shape[1]], device=x.device)
                gram = design.double().T @ design.double()
                self.ls_cov[g] = 0.0
                # Collinear terms (the square of a binary parent) get no variance: their
                # direction is not identified by the rows, and any draw along it is noise.
                cov = torch.linalg.pinv(gram, rtol=1e-9, hermitian=True)
                self.ls_cov[g][index[:, None], index] = cov.to(x.dtype)
                self.ls_rss[g] = float(resid.square().sum())
                self.ls_dof[g] = float(len(y) - design.shape[1])

    @torch.no_grad()
    def draw_least_squares(self, rng: np.random.Generator) -> None:
        """Replace each regression by a draw from its posterior given the rows of
        :meth:`initialize` (closed-form stacks only).

        The exact posterior of a linear-Gaussian regression under the flat prior on its
        coefficients and log standard deviation: ``sigma^2 = RSS / chi2(n - p)`` and the
        coefficients ``N(least squares, sigma^2 (X'X)^-1)``. Nodes without rows (a model
        saved before this was kept) keep their fit.
        """
        if not self.closed_form:
            raise ValueError(f"{self.spec} is not a least-squares regression")
        for g, pa in enumerate(self.parents):
            dof = float(self.ls_dof[g])
            if dof < 1:
                continue
            rows = self._input_rows(pa)
            index = torch.tensor([*rows, self.weight_in.shape[1]], device=self.ls_cov.device)
            cov = self.ls_cov[g][index[:, None], index].double()
            sigma2 = float(self.ls_rss[g]) / rng.chisquare(dof)
            # a square root of the covariance that tolerates collinear terms (a quadratic's)
            values, vectors = torch.linalg.eigh(cov)
            root = vectors * values.clamp_min(0.0).sqrt()
            z = torch.as_tensor(rng.standard_normal(len(index)), dtype=cov.dtype, device=cov.device)
            step = (math.sqrt(sigma2) * root @ z).to(self.weight_in.dtype)
            self.weight_in[g, rows, 0] += step[:-1]
            self.bias_in[g, 0, 0] += step[-1]
            self.bias_in[g, 0, 1] = 0.5 * math.log(max(sigma2, 1e-6))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # Models saved before the least-squares posterior was kept have no such buffers:
        # they load with none (zero degrees of freedom: draw_least_squares keeps the fit).
        for name in ("ls_cov", "ls_rss", "ls_dof"):
            if hasattr(self, name) and prefix + name not in state_dict:
                state_dict[prefix + name] = torch.zeros_like(getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, *args)

    @torch.no_grad()
    def copy_slot(self, source: StackedMechanism, src: int, dst: int) -> None:
        """Copy the weights of node ``src`` of ``source`` (same specification) into ``dst``."""
        if source.spec != self.spec or source.parents[src] != self.parents[dst]:
            raise ValueError("can only copy a node's weights between identical mechanisms")
        for mine, theirs in zip(self.parameters(), source.parameters()):
            mine[dst].copy_(theirs[src])

    # -------------------------------------------------------------- conditioner
    def _conditioner(self, pre: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
        """The conditioner's output from its first layer's pre-activations ``pre``."""
        h = pre
        for w, b in zip(weights, biases):
            # Stacked (G, a, b) weights in log_prob_all; one node's (a, b) weights in flow(),
            # whose context may carry any batch dimensions (draws, rows, enumeration).
            h = torch.relu(h)
            h = torch.baddbmm(b, h, w) if w.dim() == 3 else h @ w + b
        return h

    @staticmethod
    def _shaped(flat: Tensor, sizes: list[int], shapes: list[Size]) -> list[Tensor]:
        chunks = flat.split(sizes, dim=-1)
        return [c.reshape(c.shape[:-1] + (1,) + s) for c, s in zip(chunks, shapes)]

    def _noise(self, free: Tensor) -> Transform | None:
        """The parent-free noise transform from ``free`` (None when the spec has none)."""
        if not self._free_shapes:
            return None
        return self.spec.noise(self._shaped(free, self._free_sizes, self._free_shapes))

    def _value(self, slot: int | None = None) -> Transform | None:
        """The parent-free value transform of node ``slot`` (all nodes: ``None``)."""
        if not self._value_shapes:
            return None
        free = self.value_free if slot is None else self.value_free[slot]
        return self.spec.value(self._shaped(free, self._value_sizes, self._value_shapes))

    def log_prob_all(self, x: Tensor, columns: Tensor) -> Tensor:
        """Log densities of every stacked node for rows ``x`` (standardized, all columns).

        Arguments:
            x: Full standardized data matrix, shape ``(n, D)``.
            columns: Column of each stacked node in ``x``, shape ``(G,)``.

        Returns:
            Tensor of shape ``(G, n)``.
        """
        z, ladj = self._call_all(x, columns)
        return (ladj - 0.5 * z.square()).squeeze(-1) - 0.5 * math.log(2 * math.pi)

    def quantile_loss_all(self, x: Tensor, columns: Tensor, levels: int = 19) -> Tensor:
        """Per-row quantile loss ``(G, n)`` of every node's conditional distribution.

        The mean pinball loss of the node's conditional quantiles at the levels ``1 / (L +
        1), ..., L / (L + 1)`` given the row's parents: half the continuous ranked
        probability score (CRPS) up to the discretization. A counterfactual of a mechanism
        monotone in its one noise is the quantile map between two parent values, so what
        it gets wrong is the conditional quantiles, which this scores and a log-likelihood
        weighs only through the density.

        Example:
            >>> import torch
            >>> stack = MAF(hidden_features=(8,)).build([[], [0]], num_features=2)
            >>> stack.quantile_loss_all(torch.randn(5, 2), torch.tensor([0, 1])).shape
            torch.Size([2, 5])
        """
        tau = torch.arange(1, levels + 1, dtype=x.dtype, device=x.device) / (levels + 1)
        z = self.base_loc + self.base_scale * torch.special.ndtri(tau)
        n, out = x.shape[0], []
        for k, pa in enumerate(self.parents):
            if pa:
                context = x[:, pa].repeat(levels, 1)  # level-major: (L n, k)
                noise = z.repeat_interleave(n)[:, None]
            else:
                context, noise = None, z[:, None]
            q = self.flow(k, context).transform.inv(noise).reshape(levels, -1)  # (L, n | 1)
            diff = x[:, columns[k]] - q
            out.append(torch.maximum(tau[:, None] * diff, (tau[:, None] - 1) * diff).mean(0))
        return torch.stack(out)

    def noise_all(self, x: Tensor, columns: Tensor) -> Tensor:
        """The noise of every stacked node for rows ``x``: each node's flow transform at once.

        The same values as ``flow(slot, parents).transform(value)`` node by node, in one
        batched pass (what the exact abduction of fully observed rows needs).

        Returns:
            Tensor of shape ``(G, n)``.
        """
        return self._call_all(x, columns)[0].squeeze(-1)

    def _call_all(self, x: Tensor, columns: Tensor) -> tuple[Tensor, Tensor]:
        """Noise ``(G, n, 1)`` and log-abs-det-Jacobian ``(G, n, 1)`` of every stacked node."""
        value = x.T[columns].unsqueeze(-1)  # (G, n, 1)
        before = self._value()
        if before is not None:
            value, value_ladj = before.call_and_ladj(value)
        inputs = self._features(x)
        h = torch.baddbmm(
            self.bias_in, inputs.expand(len(self), *inputs.shape), self.weight_in * self.mask
        )
        # split, not slicing: one backward concatenation instead of a zero-filled full-size
        # gradient per slice (which cost a fifth of a 9-node step).
        mean, log_scale, pre = h.split([1, 1, h.shape[-1] - 2], dim=-1)
        ladj = -log_scale if before is None else value_ladj - log_scale
        z = (value - mean) * log_scale.neg().exp()
        if self._shapes:
            raw = self._conditioner(pre, list(self.weights), list(self.biases))
            params = self._shaped(raw, self._sizes, self._shapes)
            z, inner = self.spec.univariate(params).call_and_ladj(z)
            ladj = ladj + inner
        return self._shape_noise(z, ladj)

    def _shape_noise(self, z: Tensor, ladj: Tensor) -> tuple[Tensor, Tensor]:
        """The parent-free noise transform of every node applied to ``z`` (and its ladj)."""
        after = self._noise(self.free)  # free (G, 1, F) broadcasts over rows
        if after is not None:
            z, inner = after.call_and_ladj(z)
            ladj = ladj + inner
        return z, ladj

    def flow(self, slot: int, context: Tensor | None) -> NormalizingFlow:
        """The mechanism of stacked node ``slot`` given its parents' standardized values.

        Arguments:
            slot: Position of the node in this stack.
            context: Parents' values, shape ``(..., k)`` in parent order, or ``None``.

        Returns:
            A Zuko normalizing flow over one feature (event shape ``(1,)``).
        """
        transform, batch_shape = self.transform(slot, context)
        base = DiagNormal(self.base_loc, self.base_scale)
        if batch_shape:
            base = base.expand(batch_shape)
        return NormalizingFlow(transform, base)

    def _slot_pairs(self, slot: int) -> tuple[Tensor | None, Tensor | None]:
        """Positions in node ``slot``'s context of the factors of its quadratic terms.

        Fixed by the graph, so computed once per slot and device (``(None, None)`` when the
        node has no quadratic terms).
        """
        key = ("pairs", slot, self.mask.device)
        if key not in self._slot_cache:
            pa = self.parents[slot]
            pairs = self._parent_pairs(pa)
            if not pairs:
                self._slot_cache[key] = (None, None)
            else:
                where = {c: k for k, c in enumerate(pa)}
                index = torch.tensor(
                    [[where[i] for i, _ in pairs], [where[j] for _, j in pairs]],
                    device=self.mask.device,
                )
                self._slot_cache[key] = (index[0], index[1])
        return self._slot_cache[key]

    def _slot_weight(self, slot: int) -> Tensor:
        """Node ``slot``'s masked input weights over its own inputs (parents, then pairs).

        Outside autograd (queries), the slice is kept until the weights change: the key
        holds the tensors' storage and in-place version counters, which every optimizer
        step, ``load_state_dict`` and ``.to()`` move. Under autograd it is sliced afresh so
        that gradients reach ``weight_in``.
        """
        w, m = self.weight_in, self.mask
        rows_key = ("rows", slot, m.device)
        rows = self._slot_cache.get(rows_key)
        if rows is None:
            index = self._input_rows(self.parents[slot])
            rows = self._slot_cache[rows_key] = torch.tensor(index, device=m.device)
        if torch.is_grad_enabled() and w.requires_grad:
            return w[slot].index_select(0, rows) * m[slot].index_select(0, rows)
        version = (w.data_ptr(), w._version, m.data_ptr(), m._version, w.dtype, w.device)
        cached = self._slot_cache.get(("weight", slot))
        if cached is None or cached[0] != version:
            weight = (w[slot].index_select(0, rows) * m[slot].index_select(0, rows)).detach()
            # The aliases keep the keyed storages alive, so no other tensor can reuse
            # their addresses while the entry stands.
            cached = (version, weight, w.detach(), m)
            self._slot_cache[("weight", slot)] = cached
        return cached[1]

    def transform(self, slot: int, context: Tensor | None) -> tuple[Transform, Size]:
        """The transform (standardized value -> noise) of :meth:`flow` and its batch shape.

        The batch shape is the one its parameters carry (the context's, ``()`` for a root).
        """
        pa = self.parents[slot]
        if pa and (context is None or context.shape[-1] != len(pa)):
            raise ValueError(f"expected a context of {len(pa)} parent value(s)")
        if pa:
            a, b = self._slot_pairs(slot)
            if a is not None:  # quadratic terms, from the parents' positions in the context
                context = torch.cat(
                    [context, context.index_select(-1, a) * context.index_select(-1, b)], dim=-1
                )
            h = context @ self._slot_weight(slot) + self.bias_in[slot, 0]
        else:
            h = self.bias_in[slot]  # (1, K): a dummy batch dimension, dropped below
        mean, inv_scale = h[..., :1], torch.exp(-h[..., 1:2])
        before = self._value(slot)
        steps: list[Transform] = [] if before is None else [before]
        steps.append(AffineTransform(-mean * inv_scale, inv_scale))
        if self._shapes:
            weights = [w[slot] for w in self.weights]
            raw = self._conditioner(h[..., 2:], weights, [b[slot, 0] for b in self.biases])
            params = self._shaped(raw, self._sizes, self._shapes)
            steps.append(self.spec.univariate(params))
        after = self._noise(self.free[slot])
        if after is not None:
            steps.append(after)
        if not pa:  # unconditional: drop the dummy batch dimension
            steps = [_squeeze_transform(t) for t in steps]
        transform = DependentTransform(ComposedTransform(*steps), 1)
        return transform, (mean.shape[:-1] if pa else Size())


def beats(challenger: Tensor, incumbent: Tensor, se_rule: float) -> bool:
    """Whether per-row held-out NLLs ``challenger`` beat ``incumbent`` by more than ``se_rule``
    paired standard errors (a negative ``se_rule``: whether they are worse by less).

    Example:
        >>> import torch
        >>> beats(torch.tensor([1.0, 1.1, 0.9]), torch.tensor([2.0, 2.1, 1.9]), 2.0)
        True
    """
    diff = incumbent - challenger
    se = diff.std() / math.sqrt(diff.numel()) if diff.numel() > 1 else diff.new_zeros(())
    return float(diff.mean()) > se_rule * float(se) + 1e-9


def _squeeze_transform(t: Transform) -> Transform:
    """The same transform with the leading size-1 batch dimension of its parameters removed."""
    if isinstance(t, AffineTransform):
        return AffineTransform(t.loc.squeeze(0), t.scale.squeeze(0))
    return t


def mechanism_from_config(config: dict[str, Any] | str | Mechanism) -> Mechanism:
    """Rebuild a mechanism specification from :meth:`Mechanism.to_config` or a name.

    Example:
        >>> mechanism_from_config({"type": "nsf", "bins": 4})
        NSF(hidden_features=(16, 16), bins=4, transforms=1, bound=5.0, location_scale=False)
        >>> mechanism_from_config("linear")
        LinearGaussian(hidden_features=(), degree=1)
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
