"""Counterfactual prediction: abduction -> action -> prediction as Pyro effect handlers.

* **Abduction** is a trace of the model's guide: it holds a value for every exogenous noise
  site (``"<node>_base"``).
* **Action** is :func:`pyrocausal.handlers.intervene` (``pyro.do`` for values, a soft-do
  handler for callables).
* **Prediction** is :func:`pyro.poutine.replay` of the abducted noise through the intervened
  program, whose observable sites are reparameterized onto their noise with
  :class:`pyro.infer.reparam.TransformReparam`.
"""

from __future__ import annotations

__all__ = ["noise_site", "reparam_noise", "replay_counterfactual"]

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyro import poutine
from pyro.infer.reparam import TransformReparam
from pyro.poutine import Trace

from pyrocausal.handlers import intervene


def noise_site(node: str) -> str:
    """Name of the Pyro site that holds the exogenous noise of ``node``.

    Example:
        >>> noise_site("x2")
        'x2_base'
    """
    return f"{node}_base"


def reparam_noise(model: Callable, nodes: Iterable[str]) -> Callable:
    """Expose the noise of each node in ``nodes`` as its own sample site ``<node>_base``.

    The node's site must carry a :class:`pyro.distributions.TransformedDistribution`. Apply
    this *outside* of :func:`pyro.do` (the other order trips an assertion in Pyro).
    """
    reparam = TransformReparam()
    names = frozenset(nodes)
    return poutine.reparam(model, config=lambda msg: reparam if msg["name"] in names else None)


def replay_counterfactual(
    model: Callable,
    noise: Trace,
    intervention: Mapping[str, Any],
    nodes: Iterable[str],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Run ``model`` under ``intervention`` with its noise replayed from ``noise``.

    Arguments:
        model: The Pyro program (sites named by node).
        noise: A trace holding the ``<node>_base`` sites, typically ``trace(guide)``.
        intervention: ``{node: value or callable}``; an empty mapping replays the facts.
        nodes: The nodes whose noise is replayed.
        *args: Passed to ``model``.
        **kwargs: Passed to ``model``.

    Returns:
        Whatever ``model`` returns in the counterfactual world.
    """
    acted = intervene(model, intervention) if intervention else model
    return poutine.replay(reparam_noise(acted, nodes), trace=noise)(*args, **kwargs)
