"""CausalQueryResult: layout, ArviZ groups and coordinates, summaries, plots, command line."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

import pyrocausal as pc
from pyrocausal.cli import main
from pyrocausal.inference.posterior import SVIAbduction

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fitted():
    """A linear SCM on the triangle data, and a partially observed query on it."""
    from pyrocausal.datasets import load_scm

    truth = load_scm("triangle_linear")
    data = truth.sample(1000, seed=0)
    scm = pc.SCM(truth.graph, mechanisms="linear")
    scm.fit(data, epochs=10, progress=False, seed=0)
    evidence = data.head(4).copy()
    evidence.index = ["a", "b", "c", "d"]
    evidence.loc["b", "x2"] = np.nan
    result = scm.counterfactual(
        evidence, {"x1": 1.0}, num_samples=300, abduction=SVIAbduction(num_steps=100), seed=0
    )
    return scm, data, evidence, result


def test_samples_are_indexed_by_row_and_draw(fitted):
    _, _, evidence, result = fitted
    assert result.kind == "counterfactual"
    assert result.samples.index.names == ["row", "draw"]
    assert list(result.rows) == ["a", "b", "c", "d"] and result.num_draws == 300
    assert list(result.samples.columns) == ["x1", "x2", "x3"]
    assert result.samples.shape == (4 * 300, 3)
    assert (result.samples["x1"] == 1.0).all()
    pd.testing.assert_frame_equal(result.evidence, evidence)
    assert "CausalQueryResult(counterfactual, do(x1=1.0), 4 row(s) x 300 draws" in repr(result)


def test_inference_data_has_the_three_worlds_with_row_coordinates(fitted):
    _, _, evidence, result = fitted
    idata = result.to_inference_data()
    assert {"factual", "counterfactual", "interventional", "observed_data"} <= set(idata.groups())
    for group in ("factual", "counterfactual", "interventional"):
        ds = idata[group]
        assert ds["x3"].dims == ("chain", "draw", "row")
        assert ds.sizes == {"chain": 1, "draw": 300, "row": 4}
        assert list(ds["row"].values) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(
        idata.counterfactual["x3"].sel(row="c").values.ravel(),
        result.samples["x3"].xs("c", level="row").to_numpy(),
    )
    assert np.isnan(idata.observed_data["x2"].sel(row="b"))
    assert idata.observed_data["x3"].sel(row="a") == evidence.loc["a", "x3"]


def test_summary_gives_mean_sd_and_hdi_per_variable_and_row(fitted):
    _, _, evidence, result = fitted
    table = result.summary(hdi_prob=0.9)
    assert list(table.columns) == ["mean", "sd", "hdi_5%", "hdi_95%", "factual"]
    assert table.index.names == ["variable", "row"] and len(table) == 3 * 4
    draws = result.samples["x2"].xs("b", level="row").to_numpy()  # x2 was not observed in b
    row = table.loc[("x2", "b")]
    assert row["mean"] == pytest.approx(draws.mean()) and row["sd"] == pytest.approx(draws.std())
    inside = ((draws >= row["hdi_5%"]) & (draws <= row["hdi_95%"])).mean()
    assert 0.89 <= inside <= 0.92  # the shortest interval holding 90% of the draws
    ordered = np.sort(draws)  # the shortest interval spanning floor(0.9 n) draws
    k = int(np.floor(0.9 * len(ordered)))
    shortest = (ordered[k:] - ordered[: len(ordered) - k]).min()
    assert row["hdi_95%"] - row["hdi_5%"] == pytest.approx(shortest)
    assert table.loc[("x3", "a"), "factual"] == evidence.loc["a", "x3"]
    assert np.isnan(table.loc[("x2", "b"), "factual"])
    half = result.summary(hdi_prob=0.5, group="factual", variables=["x2"])
    assert list(half.columns) == ["mean", "sd", "hdi_25%", "hdi_75%"]
    assert half.loc[("x2", "a"), "sd"] < 1e-9 and half.loc[("x2", "b"), "sd"] > 0.1
    with pytest.raises(ValueError, match="hdi_prob"):
        result.summary(hdi_prob=1.5)
    with pytest.raises(ValueError, match="no group 'nope'"):
        result.summary(group="nope")


def test_interventional_query_and_plots(fitted):
    scm, _, _, result = fitted
    doing = scm.do({"x2": 2.0}).query(num_samples=500, seed=0)
    assert doing.kind == "interventional" and list(doing.rows) == [0]
    pd.testing.assert_frame_equal(
        doing.samples.reset_index(drop=True), scm.do({"x2": 2.0}).sample(500, seed=0)
    )
    assert set(doing.to_inference_data().groups()) == {"interventional", "factual"}
    assert doing.summary().loc[("x2", 0), "sd"] < 1e-9
    axes = doing.plot()
    assert len(axes) == 2  # x1 and x3 (x2 is intervened on)
    axes = result.plot(max_rows=4)
    assert axes.size >= 4 and axes.flat[0].get_title() == "row a"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_command_line_prints_the_summary(fitted, tmp_path, capsys):
    scm, data, evidence, _ = fitted
    model = tmp_path / "model.pt"
    scm.save(model)
    evidence.to_csv(tmp_path / "rows.csv", index=False)
    assert (
        main(
            [
                "counterfactual",
                str(model),
                "--factual",
                str(tmp_path / "rows.csv"),
                "--set",
                "x1=1",
                "--samples",
                "200",
                "--hdi",
                "0.8",
                "--seed",
                "0",
                "-o",
                str(tmp_path / "cf.csv"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "200 draws per row" in out and "hdi_10%" in out and "hdi_90%" in out
    draws = pd.read_csv(tmp_path / "cf.csv")
    assert list(draws.columns[:2]) == ["row", "draw"] and len(draws) == 4 * 200
    assert main(["do", str(model), "--set", "x2=1.5", "--samples", "300", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "-- interventional" in out and "-- observational" in out and "hdi_95%" in out
    # without --samples the exact one-row answer is kept, and NaN asks for --samples
    assert (
        main(
            ["counterfactual", str(model), "--factual", str(tmp_path / "rows.csv"), "--set", "x1=1"]
        )
        == 2
    )
    assert "num_samples" in capsys.readouterr().err
