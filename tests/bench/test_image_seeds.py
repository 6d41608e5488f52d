"""bench/image_seeds.py: mean and spread over seeds, the claims per seed, refused mixes."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import image_seeds  # noqa: E402

MODELS = {  # eff. intervened, eff. descendants (norm.), CF img MSE, CF img SSIM
    "causal-diffae": (0.35, 0.24, 0.019, 0.83),
    "diffae": (0.47, 0.34, 0.017, 0.80),
    "icm-vae": (0.12, 0.17, 0.014, 0.78),
    "scm-vae": (0.07, 0.13, 0.025, 0.61),
    "cvae": (0.14, 0.16, 0.025, 0.61),
}


def _run(folder: Path, seed: int, diffae_mse: float, preset: dict | None = None) -> Path:
    rows = [{"model": "no change", "label fraction": float("nan"), "intervened": "thickness",
             "eff. intervened": 0.8, "CF img MSE": 0.02}]  # fmt: skip
    for model, (eff, desc, mse, ssim) in MODELS.items():
        if model == "causal-diffae":
            mse = diffae_mse
        rows.append({"model": model, "label fraction": 1.0, "intervened": "thickness",
                     "eff. intervened": eff + 0.01 * seed, "eff. descendants (norm.)": desc,
                     "CF img MSE": mse, "CF img SSIM": ssim, "reversibility": 0.05})  # fmt: skip
    guidance = [{"w": w, "intervened": "thickness", "eff. intervened": e}
                for w, e in [(0.0, 0.9), (1.0, 0.4), (2.0, 0.3 + 0.2 * seed)]]  # fmt: skip
    folder.mkdir()
    result = {"preset": preset or {"train_size": 3000}, "rows": rows, "guidance": guidance,
              "args": {"seed": seed, "preset": "cpu", "dataset": "morpho"}}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(result))
    return folder


def test_seeds_are_summarized_and_each_claim_is_judged_per_seed(tmp_path):
    a = _run(tmp_path / "a", 0, diffae_mse=0.019)  # not sharper than ICM-VAE (0.014)
    b = _run(tmp_path / "b", 1, diffae_mse=0.010)  # sharper
    result = image_seeds.main([str(a), str(b), "--out", str(tmp_path / "out")])
    assert result["seeds"] == [0, 1]
    row = next(r for r in result["summary"] if r["model"] == "causal-diffae")
    assert row["eff. intervened"] == "0.355 ± 0.0071" and row["seeds"] == 2
    assert row["CF img MSE"] == "0.0145 ± 0.0064"
    first, second = result["claims"]
    sharper = "sharper: CF MSE below every VAE"
    assert not first[sharper] and second[sharper]
    assert first["sharper: CF SSIM above every VAE"] and second["sharper: CF SSIM above every VAE"]
    assert not first["as effective as the best VAE"]
    assert first["descendants follow better than DiffAE"]
    assert first["guidance: error falls as w grows"]
    assert not second["guidance: error falls as w grows"]  # 0.4 -> 0.5 at w = 2
    text = (tmp_path / "out" / "seeds.md").read_text()
    assert "| thickness | causal-diffae | 1 | 0.355 ± 0.0071 |" in text


def test_runs_that_differ_in_more_than_the_seed_are_refused(tmp_path):
    a = _run(tmp_path / "a", 0, 0.02)
    with pytest.raises(SystemExit, match=r"seed 0 has label fraction\(s\) \[1.0\] twice"):
        image_seeds.main([str(a), str(a), "--out", str(tmp_path / "out")])
    c = _run(tmp_path / "c", 2, 0.02, preset={"train_size": 500})
    with pytest.raises(SystemExit, match="preset"):
        image_seeds.main([str(a), str(c), "--out", str(tmp_path / "out")])
    # An unfinished run (the VAEs not yet scored) gets no verdict.
    d = _run(tmp_path / "d", 3, 0.02)
    result = json.loads((d / "results.json").read_text())
    result["rows"] = [r for r in result["rows"] if r["model"] != "cvae"]
    (d / "results.json").write_text(json.dumps(result))
    with pytest.raises(SystemExit, match="no rows for \\['cvae'\\]"):
        image_seeds.main([str(a), str(d), "--out", str(tmp_path / "out")])


def test_a_seed_run_at_other_label_fractions_joins_its_seed(tmp_path):
    a = _run(tmp_path / "a", 0, diffae_mse=0.019)
    b = _run(tmp_path / "b", 1, diffae_mse=0.010)
    late = _run(tmp_path / "late", 1, diffae_mse=0.030)  # seed 1 again, at label fraction 0.5
    result = json.loads((late / "results.json").read_text())
    for row in result["rows"]:
        if row["model"] != "no change":
            row["label fraction"] = 0.5
    result["guidance"] = []  # the curve is drawn at label fraction 1 only
    (late / "results.json").write_text(json.dumps(result))
    out = image_seeds.main([str(a), str(b), str(late), "--out", str(tmp_path / "out")])
    assert out["seeds"] == [0, 1]
    rows = {(r["model"], r["label fraction"]): r for r in out["summary"]}
    assert rows[("causal-diffae", 1.0)]["seeds"] == 2
    assert rows[("causal-diffae", 0.5)]["seeds"] == 1
    assert rows[("causal-diffae", 0.5)]["CF img MSE"] == "0.03"
    # the claims stay those of label fraction 1: seed 1 is sharper there (0.010)
    assert out["claims"][1]["sharper: CF MSE below every VAE"]
