"""Generative models built on the pyrocausal core (shipped as ``pyrocausal.models``)."""

from pyrocausal.models.flow_scm import SCM, InterventionalSCM

__all__ = ["SCM", "InterventionalSCM"]
