"""Representation evaluation: counterfactual references, and the diffusion model end to end."""

import numpy as np
import pytest

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


def test_train_and_evaluate_causal_diffae(tmp_path):
    """The diffusion model through train_crl / evaluate_crl: metrics and the guidance grid."""
    import json

    pytest.importorskip("diffusers")
    from pyrocausal.inference.crl import evaluate_crl, train_crl
    from pyrocausal.models.causal_diffae import CausalDiffAE

    run = train_crl(
        "causal-diffae",
        "morpho",
        epochs=1,
        batch_size=32,
        missing_labels=0.5,
        out_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        dataset_options={"n_train": 64, "n_test": 16},
        progress=False,
        unet_channels=(8, 8, 8),
        encoder_channels=(8,),
        num_inference_steps=2,
    )
    assert isinstance(run.model, CausalDiffAE)
    assert run.model.metadata["missing_labels"] == 0.5
    metrics = evaluate_crl(
        tmp_path / "run" / "model.pt",
        tmp_path / "eval",
        oracle_size=64,
        oracle_epochs=1,
        cache_dir=tmp_path / "cache",
        progress=False,
        device="cpu",
    )
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["interventions"]["thickness"]["descendants"] == ["intensity"]
    for key in ("cf_image_mse", "composition", "reversibility", "reconstruction_mse"):
        assert 0.0 <= metrics[key] < 1.0, key
    for grid in ("counterfactuals.png", "interventions.png", "guidance.png"):
        assert (tmp_path / "eval" / grid).stat().st_size > 1000, grid
