"""Pyro effect handlers for interventions that :func:`pyro.do` does not take.

:func:`pyro.do` accepts numbers and tensors. Shift and other soft interventions
(``x := f(x)``, where ``x`` is the value the mechanism would have produced) are handled here
the same way :class:`pyro.poutine.do_messenger.DoMessenger` handles hard ones: the site is
split, its natural value computed by the rest of the handler stack (so replayed noise is
used), and the program continues with ``f(natural value)``.
"""

from __future__ import annotations

__all__ = ["SoftDoMessenger", "intervene", "soft_do"]

from collections.abc import Callable, Mapping
from typing import Any

import pyro
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import apply_stack
from torch import Tensor


class SoftDoMessenger(Messenger):
    """Replace each named site's value ``x`` by ``fn(x)`` for the rest of the program.

    Arguments:
        data: Mapping from site name to a callable of the site's natural value.

    Example:
        >>> import pyro, pyro.distributions as dist, torch
        >>> def model():
        ...     x = pyro.sample("x", dist.Normal(0.0, 1.0))
        ...     return x, pyro.sample("y", dist.Normal(x, 0.1))
        >>> pyro.set_rng_seed(0)
        >>> natural, _ = model()
        >>> pyro.set_rng_seed(0)
        >>> shifted, _ = soft_do(model, {"x": lambda x: x + 1.0})()
        >>> bool(torch.isclose(shifted, natural + 1.0))
        True
    """

    def __init__(self, data: Mapping[str, Callable[[Tensor], Tensor]]) -> None:
        super().__init__()
        self.data = dict(data)
        self._intervener_id = str(id(self))

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        name = msg["name"]
        if msg.get("_soft_intervener_id") == self._intervener_id or name not in self.data:
            return
        msg["_soft_intervener_id"] = self._intervener_id
        natural = msg.copy()
        natural["cond_indep_stack"] = ()  # the plates already saw this message
        apply_stack(natural)
        value = self.data[name](natural["value"])
        if not isinstance(value, Tensor):
            value = torch.as_tensor(
                value, dtype=natural["value"].dtype, device=natural["value"].device
            )
        msg["name"] = name + "__CF"
        msg["value"] = value
        msg["is_observed"] = True
        msg["stop"] = True


def soft_do(fn: Callable | None = None, data: Mapping[str, Callable] | None = None):  # noqa: ANN201
    """Handler form of :class:`SoftDoMessenger` (usable like :func:`pyro.do`)."""
    msngr = SoftDoMessenger(data or {})
    return msngr(fn) if fn is not None else msngr


def intervene(
    model: Callable, intervention: Mapping[str, Tensor | float | Callable[[Tensor], Tensor]]
) -> Callable:
    """Apply an intervention to a Pyro program.

    Numbers and tensors go through :func:`pyro.do`; callables (shift / soft interventions)
    through :class:`SoftDoMessenger`. Several variables may be intervened on at once.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> def model():
        ...     return pyro.sample("x", dist.Normal(0.0, 1.0))
        >>> float(intervene(model, {"x": 2.0})())
        2.0
    """
    hard = {k: v for k, v in intervention.items() if not callable(v)}
    soft = {k: v for k, v in intervention.items() if callable(v)}
    if soft:
        model = soft_do(model, soft)
    if hard:
        model = pyro.do(model, data=hard)
    return model
