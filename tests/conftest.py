"""Hermetic tests: fixed seeds, a clean Pyro parameter store, validation on, one thread."""

import os
import tempfile

import numpy as np
import pyro
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# Image data sets are built once per test session into a private cache, never the user's.
os.environ.setdefault("PYROCAUSAL_CACHE_DIR", tempfile.mkdtemp(prefix="pyrocausal-test-cache-"))
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _hermetic():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    np.random.seed(0)
    yield
    pyro.clear_param_store()
