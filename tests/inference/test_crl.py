"""Counterfactual references of the representation evaluation (no model involved)."""

import numpy as np

from pyrocausal.datasets.images import get_dataset
from pyrocausal.inference.crl import counterfactual_references
from pyrocausal.metrics import train_oracle


def test_references_bracket_the_counterfactual_metrics():
    oracle = train_oracle(get_dataset("morpho"), n=256, epochs=2, seed=0, device="cpu",
                          progress=False)  # fmt: skip
    table = counterfactual_references(
        "morpho", oracle, test_size=48, seed=0, device="cpu", progress=False
    ).set_index("reference")
    assert list(table.index) == ["no change", "rendered truth"]
    assert (table["dataset"] == "morpho").all()
    numbers = table.drop(columns="dataset").to_numpy(dtype=float)
    assert np.isfinite(numbers).all() and (numbers >= 0).all()
    # The rendered truth is the answer itself; the factual image differs from it wherever
    # the intervention moved thickness (and through it intensity).
    assert table.loc["rendered truth", "CF img MSE"] == 0.0
    assert table.loc["no change", "CF img MSE"] > 1e-4
    # Same data and seed: the same interventions, so the same numbers.
    again = counterfactual_references(
        "morpho", oracle, test_size=48, seed=0, device="cpu", progress=False
    ).set_index("reference")
    assert again.equals(table)
