"""The representation benchmark harness runs end to end at a tiny size and reuses its runs."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # spawned workers import the harness by name

import representation  # noqa: E402

TINY = "--datasets pendulum --seeds 0 --epochs 1 --train-size 64 --test-size 32".split()
TINY += "--oracle-size 64 --oracle-epochs 1 --no-progress".split()


def test_two_runs_at_once_then_reused(tmp_path, capsys):
    out = tmp_path / "bench"
    args = [*TINY, "--models", "icm-vae", "cvae", "--out", str(out)]
    assert representation.main([*args, "--jobs", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results] == ["icm-vae", "cvae"]  # the order asked for
    for r in results:
        assert 0.0 < r["cf_image_mse"] < 1.0 and r["train_seconds"] > 0
        assert r["model_config"]["abduction"] == ("latent" if r["model"] == "icm-vae" else "noise")
        assert (out / "pendulum" / r["model"] / "seed0" / "model.pt").exists()
    table = (out / "table.md").read_text()
    assert "## The papers' claims at this budget" in table and "icm-vae" in table
    capsys.readouterr()
    # A second call with the same budget and defaults trains nothing and writes the same table.
    assert representation.main(args) == 0
    assert capsys.readouterr().out.count("reusing") == 2
    assert json.loads((out / "results.json").read_text()) == results
