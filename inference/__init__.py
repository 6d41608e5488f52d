"""Training, abduction and counterfactual inference (shipped as ``pyrocausal.inference``)."""

from pyrocausal.inference.counterfactual import noise_site, reparam_noise, replay_counterfactual

# Last: crl imports pyrocausal.models, which imports this package.
from pyrocausal.inference.crl import (  # noqa: E402
    CRL_MODELS,
    counterfactual_references,
    evaluate_crl,
    train_crl,
)
from pyrocausal.inference.devices import resolve_device
from pyrocausal.inference.errors import TrainingDivergedError
from pyrocausal.inference.svi import Constant, LinearWarmup, SVIHistory, SVITrainer
from pyrocausal.inference.training import History, train_mle

__all__ = [
    "CRL_MODELS",
    "Constant",
    "History",
    "LinearWarmup",
    "SVIHistory",
    "SVITrainer",
    "counterfactual_references",
    "evaluate_crl",
    "train_crl",
    "TrainingDivergedError",
    "noise_site",
    "reparam_noise",
    "replay_counterfactual",
    "resolve_device",
    "train_mle",
]
