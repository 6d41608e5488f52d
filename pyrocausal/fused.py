"""Training several mechanism stacks as one.

A training step costs about as much per *stack* as per node (each stack runs its own
batched products, element-wise operations and optimizer update; see README, "Random SCMs",
speed). The default's trained nodes sit in two stacks whose conditioners have the same shape:
the :class:`~pyrocausal.mechanisms.MAF` nodes and those of its refinement, a
:class:`~pyrocausal.mechanisms.LocationScale` with a sinh-arcsinh noise shape. A MAF is that
location-scale mechanism with the identity noise shape (both noise parameters zero), so the
two train as one stack of the location-scale kind whose MAF slots skip the noise shape: the
same model, one stack's cost per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pyrocausal.mechanisms import (
    LOG_TAIL_BOUND,
    MAF,
    LocationScale,
    Mechanism,
    StackedMechanism,
    _sinh_arcsinh_backward,
    _sinh_arcsinh_forward,
)

__all__ = ["fuse_stacks"]


class _FusedStack(StackedMechanism):
    """A location-scale stack whose first ``plain`` slots (MAF nodes) have no noise shape.

    Their noise parameters take no part in the computation, so they get zero gradients and
    stay at zero, and their densities are the MAF's to the last bit.
    """

    def __init__(
        self, spec: Mechanism, parents: Sequence[Sequence[int]], num_features: int, plain: int
    ) -> None:
        super().__init__(spec, parents, num_features)
        self.plain = plain

    def _shape_noise(self, z: Tensor, ladj: Tensor) -> tuple[Tensor, Tensor]:
        return _ShapedTail.apply(z, ladj, self.free, self.plain)


class _ShapedTail(torch.autograd.Function):
    """The sinh-arcsinh noise shape (:class:`~pyrocausal.mechanisms.SinhArcsinhTransform`)
    of the slots from ``plain`` on, the first ``plain`` slots passed through, in one
    operation with a hand-written backward.

    The same values as splitting ``z`` and ``ladj``, shaping the tail and concatenating
    again (which autograd recorded as about twenty small operations, most of the fused
    stack's extra cost per step over a MAF stack); ``free`` is the stack's ``(G, 1, 2)``
    noise parameters (skewness, log tail weight clamped to ``LOG_TAIL_BOUND``), whose first
    ``plain`` rows get zero gradients.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, ladj: Tensor, free: Tensor, plain: int) -> tuple[Tensor, ...]:
        x, skew, raw = z[plain:], free[plain:, :, :1], free[plain:, :, 1:2]
        bound = LOG_TAIL_BOUND
        y, inner, saved = _sinh_arcsinh_forward(x, skew, raw.clamp(-bound, bound))
        ctx.save_for_backward(*saved, raw.abs() <= bound)
        ctx.plain = plain
        ladj_out = ladj.clone()
        ladj_out[plain:] += inner
        return torch.cat([z[:plain], y]), ladj_out

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor, grad_ladj: Tensor) -> tuple[Tensor | None, ...]:
        *saved, inside = ctx.saved_tensors
        plain = ctx.plain
        grad_x, grad_skew, grad_tail = _sinh_arcsinh_backward(
            grad_y[plain:], grad_ladj[plain:], saved, inside.shape, inside.shape
        )
        grad_free = torch.zeros(len(grad_y), 1, 2, dtype=grad_y.dtype, device=grad_y.device)
        grad_free[plain:, :, :1] = grad_skew
        grad_free[plain:, :, 1:2] = grad_tail * inside
        return torch.cat([grad_y[:plain], grad_x]), grad_ladj, grad_free, None


def _key(stack: nn.Module) -> tuple | None:
    """What must agree for two stacks to share one conditioner shape (None: never fused)."""
    if type(stack) is not StackedMechanism or stack.closed_form or stack._value_shapes:
        return None
    spec = stack.spec
    if type(spec) is MAF and spec.transforms == 1:
        kind = "maf"
    elif type(spec) is LocationScale and spec.noise_shape == "sinh-arcsinh":
        kind = "shaped"
    else:
        return None
    if stack.pair_index.numel():
        return None
    return kind, tuple(spec.hidden_features), stack.weight_in.shape[1]


def fuse_stacks(
    stacks: Sequence[nn.Module], groups: Sequence[tuple[Mechanism, list[str]]]
) -> tuple[list[nn.Module], list[tuple[Mechanism, list[str]]], Callable[[], None]]:
    """Stacks (and their groups) to train in place of ``stacks``, and a write-back function.

    A :class:`MAF` stack and a sinh-arcsinh :class:`LocationScale` stack with the same
    hidden layers train as one location-scale stack (see the module docstring); every other
    stack is returned as it is. Call the returned function after training (also after a
    failed one) to copy the trained weights back into the original stacks.

    Example:
        >>> import torch
        >>> from pyrocausal.mechanisms import MAF, LocationScale
        >>> maf = MAF(hidden_features=(8,)).build([[], [0]], num_features=3)
        >>> shaped = LocationScale(hidden_features=(8,), noise_shape="sinh-arcsinh")
        >>> ls = shaped.build([[0, 1]], num_features=3)
        >>> stacks, groups, write_back = fuse_stacks(
        ...     [maf, ls], [(maf.spec, ["a", "b"]), (ls.spec, ["c"])]
        ... )
        >>> len(stacks), groups[0][1]
        (1, ['a', 'b', 'c'])
        >>> x = torch.randn(4, 3)
        >>> fused = stacks[0].log_prob_all(x, torch.tensor([0, 1, 2]))
        >>> bool(torch.allclose(fused[:2], maf.log_prob_all(x, torch.tensor([0, 1])), atol=1e-5))
        True
        >>> write_back()
    """
    keys = [_key(s) for s in stacks]
    mafs = {k[1:]: i for i, k in enumerate(keys) if k is not None and k[0] == "maf"}
    pairs = []
    for i, k in enumerate(keys):
        if k is not None and k[0] == "shaped" and k[1:] in mafs:
            pairs.append((mafs.pop(k[1:]), i))  # each MAF stack joins one stack at most
    if not pairs:
        return list(stacks), list(groups), lambda: None
    used = {i for pair in pairs for i in pair}
    out_stacks = [s for i, s in enumerate(stacks) if i not in used]
    out_groups = [g for i, g in enumerate(groups) if i not in used]
    copies: list[tuple[StackedMechanism, StackedMechanism, int]] = []  # (original, fused, offset)
    for m, s in pairs:
        maf, shaped = stacks[m], stacks[s]
        fused = _FusedStack(
            shaped.spec, maf.parents + shaped.parents, maf.weight_in.shape[1], len(maf)
        ).to(device=maf.weight_in.device, dtype=maf.weight_in.dtype)
        for original, offset in ((maf, 0), (shaped, len(maf))):
            _copy(original, fused, offset, to_fused=True)
            copies.append((original, fused, offset))
        out_stacks.append(fused)
        out_groups.append((shaped.spec, [*groups[m][1], *groups[s][1]]))

    def write_back() -> None:
        for original, fused, offset in copies:
            _copy(original, fused, offset, to_fused=False)

    return out_stacks, out_groups, write_back


@torch.no_grad()
def _copy(original: StackedMechanism, fused: StackedMechanism, offset: int, to_fused: bool) -> None:
    """Copy ``original``'s slots to ``fused``'s from ``offset`` on (or back)."""
    names = dict(fused.named_parameters())
    for name, mine in original.named_parameters():
        theirs = names[name][offset : offset + len(original)]
        if mine.shape[1:] != theirs.shape[1:]:  # the MAF's empty noise parameters
            continue
        if to_fused:
            theirs.copy_(mine)
        else:
            mine.copy_(theirs)
