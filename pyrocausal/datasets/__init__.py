"""Datasets with known causal ground truth."""

from pyrocausal.datasets.tabular import SCMS, SyntheticSCM, list_scms, load_scm

__all__ = ["SyntheticSCM", "SCMS", "load_scm", "list_scms"]
