"""Data sets with known causal ground truth: tabular SCMs and renderable image data sets."""

from pyrocausal.datasets.images import (
    DATASETS,
    ImageData,
    ImageDataset,
    default_cache_dir,
    get_dataset,
    load_dataset,
)
from pyrocausal.datasets.morpho import MorphoDigits
from pyrocausal.datasets.pendulum import Pendulum
from pyrocausal.datasets.tabular import SCMS, SyntheticSCM, list_scms, load_scm
from pyrocausal.datasets.waterflow import WaterFlow

__all__ = [
    "DATASETS",
    "SCMS",
    "ImageData",
    "ImageDataset",
    "MorphoDigits",
    "Pendulum",
    "SyntheticSCM",
    "WaterFlow",
    "default_cache_dir",
    "get_dataset",
    "list_scms",
    "load_dataset",
    "load_scm",
]
