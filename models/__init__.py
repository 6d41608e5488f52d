"""Generative models built on the pyrocausal core (shipped as ``pyrocausal.models``)."""

from pyrocausal.models.baselines import BetaVAE, ConditionalVAE
from pyrocausal.models.causal_diffae import CausalDiffAE, DiffAE
from pyrocausal.models.crl_base import CRLModel, CRLQuery, mask_labels
from pyrocausal.models.ensemble import SCMEnsemble
from pyrocausal.models.flow_scm import SCM, InterventionalSCM
from pyrocausal.models.icm_vae import ICMVAE
from pyrocausal.models.networks import NETWORK_PRESETS, conv_networks, paper_mlp_networks
from pyrocausal.models.scm_vae import SCMVAE

__all__ = [
    "ICMVAE",
    "NETWORK_PRESETS",
    "SCM",
    "SCMVAE",
    "BetaVAE",
    "CausalDiffAE",
    "CRLModel",
    "CRLQuery",
    "ConditionalVAE",
    "DiffAE",
    "InterventionalSCM",
    "SCMEnsemble",
    "conv_networks",
    "mask_labels",
    "paper_mlp_networks",
]
