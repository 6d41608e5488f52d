"""The command line end to end on a tiny built-in data set."""

import json

import numpy as np
import pandas as pd
import pytest

import pyrocausal as pc
from pyrocausal.cli import main, parse_assignments


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, graph, model = root / "data.csv", root / "graph.json", root / "model.pt"
    assert main(["generate", "triangle_linear", "-n", "800", "-o", str(data),
                 "--graph-output", str(graph)]) == 0  # fmt: skip
    assert main(["fit", str(data), "--graph", str(graph), "-o", str(model), "--epochs", "5",
                 "--quiet", "--seed", "0", "--mechanisms", "linear"]) == 0  # fmt: skip
    return root, data, graph, model


def test_generate_writes_data_and_graph(fitted):
    root, data, graph, _ = fitted
    frame = pd.read_csv(data)
    assert list(frame.columns) == ["x1", "x2", "x3"] and len(frame) == 800
    assert json.loads(graph.read_text()) == {"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]}


def test_yaml_graph_works(fitted, tmp_path):
    _, data, _, _ = fitted
    graph = tmp_path / "g.yaml"
    graph.write_text("x1: []\nx2: [x1]\nx3: [x1, x2]\n")
    out = tmp_path / "m.pt"
    assert main(["fit", str(data), "--graph", str(graph), "-o", str(out), "--epochs", "2",
                 "--quiet", "--mechanisms", "linear"]) == 0  # fmt: skip
    assert out.exists()


def test_sample_do_counterfactual_ate(fitted, capsys, tmp_path):
    root, data, _, model = fitted
    assert main(["sample", str(model), "-n", "50", "-o", str(tmp_path / "s.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) == 50
    capsys.readouterr()
    assert main(["do", str(model), "--set", "x2=1.5", "-n", "200", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "do(x2=1.5)" in out and "interventional mean" in out
    rows = pd.read_csv(data).head(5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    cf_path = tmp_path / "cf.csv"
    assert main(["counterfactual", str(model), "--factual", str(tmp_path / "rows.csv"),
                 "--set", "x2=1.5", "-o", str(cf_path)]) == 0  # fmt: skip
    cf = pd.read_csv(cf_path)  # written without the index: read back as it was written
    assert list(cf.columns) == ["x1", "x2", "x3"]
    assert (cf["x2"] == 1.5).all() and len(cf) == 5
    assert (cf["x1"] == rows["x1"]).all()
    capsys.readouterr()
    assert main(["ate", str(model), "--target", "x3", "--treatment", "x1=1",
                 "--control", "x1=0", "-n", "2000", "--seed", "0"]) == 0  # fmt: skip
    ate = float(capsys.readouterr().out.split(":")[-1])
    assert abs(ate - 6.0) < 1.0  # x3 = 0.5 (10 x1 - u2) + x1 + u3: slope 6


def test_errors_are_reported_not_raised(fitted, capsys):
    _, _, _, model = fitted
    assert main(["do", str(model), "--set", "x9=1"]) == 2
    assert "unknown variable 'x9'" in capsys.readouterr().err
    assert main(["do", str(model), "--set", "x2"]) == 2


def test_parse_assignments():
    assert parse_assignments(["a=1", "b=-0.5"]) == {"a": 1.0, "b": -0.5}
    with pytest.raises(ValueError, match="not a number"):
        parse_assignments(["a=x"])


def test_demo_runs_end_to_end(tmp_path, capsys):
    args = ["--rows", "600", "--epochs", "4", "--mechanisms", "linear", "--device", "cpu"]
    assert main(["demo", "--scm", "chain_linear", "--out", str(tmp_path), *args]) == 0
    out = capsys.readouterr().out
    assert "seeing vs doing" in out and "imagining" in out and "ATE" in out
    assert (tmp_path / "counterfactuals.png").stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["scm"] == "chain_linear"


def test_train_and_evaluate_a_representation_model(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--device", "cpu", "--seed", "0"]
    assert main(["train", "cvae", "--dataset", "morpho", "--epochs", "1", "--train-size", "128",
                 "--out", str(out), *common]) == 0  # fmt: skip
    assert (out / "model.pt").exists() and (out / "checkpoint.pt").exists()
    from pyrocausal.models.crl_base import CRLModel

    metadata = CRLModel.load(out / "model.pt").metadata
    assert metadata["spike_rollback"] == 1.5 and metadata["rollbacks"] == 0  # one epoch
    assert main(["evaluate", str(out / "model.pt"), "--test-size", "32", "--oracle-size", "128",
                 "--oracle-epochs", "1", *common]) == 0  # fmt: skip
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert 0.0 <= metrics["cf_image_mse"] < 1.0
    assert (out / "evaluation" / "counterfactuals.png").stat().st_size > 1000


def test_train_passes_the_abduction_option(tmp_path):
    from pyrocausal.models.crl_base import CRLModel

    out = tmp_path / "icm"
    assert main(["train", "icm-vae", "--dataset", "morpho", "--epochs", "1", "--train-size", "64",
                 "--abduction", "noise", "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    assert CRLModel.load(out / "model.pt").abduction == "noise"


def test_one_command_output_feeds_another(fitted, tmp_path):
    _, _, _, model = fitted
    rows, cf = tmp_path / "rows.csv", tmp_path / "cf.csv"
    assert main(["sample", str(model), "-n", "7", "--seed", "0", "-o", str(rows)]) == 0
    assert list(pd.read_csv(rows).columns) == ["x1", "x2", "x3"]  # no 'Unnamed: 0'
    assert main(["counterfactual", str(model), "--factual", str(rows), "--set", "x1=0",
                 "-o", str(cf)]) == 0  # fmt: skip
    assert main(["counterfactual", str(model), "--factual", str(cf), "--set", "x1=1"]) == 0
    draws = tmp_path / "draws.csv"
    assert main(["counterfactual", str(model), "--factual", str(rows), "--set", "x1=0",
                 "--samples", "3", "-o", str(draws)]) == 0  # fmt: skip
    frame = pd.read_csv(draws)
    assert list(frame.columns) == ["row", "draw", "x1", "x2", "x3"] and len(frame) == 21


def test_one_default_everywhere():
    from pyrocausal.cli import build_parser

    parser = build_parser()
    fit = parser.parse_args(["fit", "d.csv", "--graph", "g.json"])
    demo = parser.parse_args(["demo"])
    assert fit.mechanisms == demo.mechanisms == "default"
    assert fit.device == demo.device == "auto"
    for command in (["sample", "m.pt"], ["do", "m.pt", "--set", "a=1"], ["train", "cvae"]):
        assert parser.parse_args(command).device == "auto"


def test_graph_file_declares_latent_nodes_and_per_node_mechanisms(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    severity = rng.normal(size=600)
    treated = (rng.random(600) < 1 / (1 + np.exp(-severity))).astype(float)
    days = 2 + severity + 2 * treated + 0.3 * rng.normal(size=600)
    data = tmp_path / "d.csv"
    pd.DataFrame({"severity": severity, "treated": treated, "days": days}).to_csv(data, index=False)
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "parents: {severity: [], treated: [severity], days: [severity, treated]}\n"
        "mechanisms: {treated: bernoulli}\n"
    )
    model = tmp_path / "m.pt"
    assert main(["fit", str(data), "--graph", str(graph), "-o", str(model), "--epochs", "4",
                 "--quiet", "--seed", "0", "--device", "cpu"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "bernoulli (given)" in out  # the others went through the default's selection
    from pyrocausal.models import SCM

    scm = SCM.load(model)
    assert type(scm.mechanisms["treated"]).__name__ == "Bernoulli"
    latent = tmp_path / "latent.yaml"
    latent.write_text("parents: {h: [], t: [h], y: [h, t]}\nlatent: [h]\n")
    rows = pd.DataFrame({"t": rng.normal(size=300)})
    rows["y"] = rows["t"] + rng.normal(size=300)
    rows.to_csv(tmp_path / "ty.csv", index=False)
    assert main(["fit", str(tmp_path / "ty.csv"), "--graph", str(latent), "-o", str(model),
                 "--epochs", "2", "--quiet", "--seed", "0", "--device", "cpu",
                 "--mechanism", "t=linear", "--mechanism", "y=linear"]) == 0  # fmt: skip
    assert SCM.load(model).graph.latent == ("h",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: []\nlatent: [a]\n")
    assert main(["fit", str(data), "--graph", str(bad), "--quiet"]) == 2
    assert "under 'parents'" in capsys.readouterr().err


def test_counterfactual_takes_a_sensitivity_range_and_fit_uncertainty(tmp_path, capsys):
    rng = np.random.default_rng(0)
    h = rng.normal(size=800)
    t = (rng.logistic(size=800) + 2 * h > 0).astype(float)
    data = pd.DataFrame({"t": t, "y": 2 * t + h + t * h + 0.5 * rng.normal(size=800)})
    graph = pc.CausalGraph({"h": [], "t": ["h"], "y": ["t", "h"]}, latent=["h"])
    scm = pc.SCM(graph, {"t": pc.Bernoulli()})
    scm.fit(data, epochs=3, progress=False, seed=0)
    scm.save(tmp_path / "c.pt")
    pd.DataFrame({"t": [1.0], "y": [3.0]}).to_csv(tmp_path / "rows.csv", index=False)
    base = ["counterfactual", str(tmp_path / "c.pt"), "--factual", str(tmp_path / "rows.csv"),
            "--set", "t=0", "--samples", "100"]  # fmt: skip
    out = tmp_path / "draws.csv"
    assert main([*base, "--rho", "0.5", "0.9", "--fit-uncertainty", "none", "-o", str(out)]) == 0
    narrow = pd.read_csv(out)["y"]
    with pytest.warns(pc.UnidentifiedQueryWarning):
        assert main([*base, "-o", str(out)]) == 0
    wide = pd.read_csv(out)["y"]
    assert np.ptp(narrow) < 0.6 * np.ptp(wide)
    with pytest.raises(SystemExit, match="--rho takes one value or a range"):
        main([*base, "--rho", "0.1", "0.2", "0.3"])
