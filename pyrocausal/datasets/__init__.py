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
from pyrocausal.datasets.random_scm import (
    FAMILIES,
    NOISES,
    POOLS,
    RandomSCM,
    random_pool,
    random_scm,
)
from pyrocausal.datasets.tabular import SCMS, SyntheticSCM, list_scms, load_scm
from pyrocausal.datasets.waterflow import WaterFlow

__all__ = [
    "DATASETS",
    "FAMILIES",
    "NOISES",
    "POOLS",
    "SCMS",
    "ImageData",
    "ImageDataset",
    "MorphoDigits",
    "Pendulum",
    "RandomSCM",
    "SyntheticSCM",
    "WaterFlow",
    "default_cache_dir",
    "get_dataset",
    "list_scms",
    "load_dataset",
    "load_scm",
    "random_pool",
    "random_scm",
]
