"""Training, abduction and counterfactual inference (shipped as ``pyrocausal.inference``)."""

from pyrocausal.inference.counterfactual import noise_site, reparam_noise, replay_counterfactual
from pyrocausal.inference.devices import resolve_device
from pyrocausal.inference.errors import TrainingDivergedError
from pyrocausal.inference.training import History, train_mle

__all__ = [
    "History",
    "TrainingDivergedError",
    "noise_site",
    "reparam_noise",
    "replay_counterfactual",
    "resolve_device",
    "train_mle",
]
