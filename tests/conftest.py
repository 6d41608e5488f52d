"""Hermetic tests: fixed seeds, a clean Pyro parameter store, validation on, one thread."""

import os

import numpy as np
import pyro
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _hermetic():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    np.random.seed(0)
    yield
    pyro.clear_param_store()
