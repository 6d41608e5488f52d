"""The counterfactual-image benchmark runs on Pendulum at a tiny size (VAEs only, ~10 s)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import counterfactual_images  # noqa: E402

from pyrocausal.datasets.pendulum import Pendulum  # noqa: E402


def test_pendulum_image_size_is_a_box_average_of_the_full_render():
    small, full = Pendulum(image_size=32), Pendulum()
    factors = small.sample_factors(3, seed=1)
    pixels = small.render_uint8(factors)
    assert pixels.shape == (3, 4, 32, 32) and small.image_shape == (4, 32, 32)
    boxes = full.render_uint8(factors).reshape(3, 4, 32, 3, 32, 3).mean(axis=(3, 5))
    assert np.abs(pixels - boxes).max() <= 0.5
    assert small.cache_key() != full.cache_key() == "pendulum-v1"
    with pytest.raises(ValueError, match="divide"):
        Pendulum(image_size=40)


def test_pendulum_smoke(tmp_path):
    out = tmp_path / "bench"
    args = ["--dataset", "pendulum", "--preset", "smoke", "--models", "icm-vae", "cvae"]
    assert counterfactual_images.main([*args, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset_options"] == {"image_size": 32}
    rows = results["rows"]
    assert {r["intervened"] for r in rows} == {"pendulum_angle", "shadow_length"}
    assert {r["model"] for r in rows} == {"no change", "rendered truth", "icm-vae", "cvae"}
    truth = [r for r in rows if r["model"] == "rendered truth"]
    assert all(r["CF img MSE"] == 0.0 and r["CF img SSIM"] == pytest.approx(1.0) for r in truth)
    leaf = next(r for r in rows if r["model"] == "cvae" and r["intervened"] == "shadow_length")
    assert np.isnan(leaf["eff. descendants (norm.)"]) and leaf["MAE pendulum_angle"] >= 0
    table = (out / "table.md").read_text()
    assert table.startswith("# Counterfactual images on Pendulum")
    assert "## do(shadow_length)" in table and "MAE light_angle" in table
    assert (out / "grid.png").stat().st_size > 0
