"""CausalQueryResult: layout, ArviZ groups and coordinates, summaries, plots, command line."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

import pyrocausal as pc
from pyrocausal.cli import main
from pyrocausal.inference.posterior import ImportanceAbduction, NUTSAbduction, SVIAbduction

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
        evidence,
        {"x1": 1.0},
        num_samples=300,
        abduction=SVIAbduction(num_steps=100),
        seed=0,
        fit_uncertainty="none",  # one model: its diagnostics per row (members: tested below)
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
    # the answer is also the posterior (ArviZ's default group), without the intervened x1,
    # which is the constant 1.0 in every draw
    assert idata.groups()[0] == "posterior" and list(idata.posterior.data_vars) == ["x2", "x3"]
    np.testing.assert_array_equal(idata.posterior["x3"].values, idata.counterfactual["x3"].values)
    stats = idata.sample_stats
    np.testing.assert_array_equal(stats["ess"].values, result.diagnostics["ess"].to_numpy())
    assert stats["ess"].dims == ("row",) and list(stats["hidden"].values) == ["", "x2", "", ""]
    assert stats["elbo"].dims == ("missingness_pattern", "abduction_step")
    assert stats.sizes["abduction_step"] == 100  # SVIAbduction(num_steps=100)
    # two patterns (all seen; x2 hidden): only the second has anything to abduct, so only
    # its row of the ELBO trace is filled in
    assert stats.sizes["missingness_pattern"] == 2
    hidden_pattern = int(stats["pattern"].sel(row="b"))
    assert set(stats["pattern"].values) == {0, 1}
    assert np.isfinite(stats["elbo"].values[hidden_pattern]).all()
    assert np.isnan(stats["elbo"].values[1 - hidden_pattern]).all()


@pytest.fixture(scope="module")
def hidden_causes(fitted):
    """Rows where only x3 is seen: every answer variable has a posterior spread."""
    scm, data, _, _ = fitted
    evidence = data.head(3).copy()
    evidence.index = ["a", "b", "c"]
    evidence[["x1", "x2"]] = np.nan
    return scm, evidence


def test_arviz_defaults_read_the_answer(hidden_causes):
    import arviz as az

    scm, evidence = hidden_causes
    result = scm.counterfactual(
        evidence, {"x2": 1.0}, num_samples=200, abduction=SVIAbduction(num_steps=30), seed=0
    )
    idata = result.to_inference_data()
    table = az.summary(idata)  # no group, no var_names
    assert list(table.index) == [f"{v}[{r}]" for v in ("x1", "x3") for r in "abc"]
    means = result.mean()
    assert table.loc["x3[b]", "mean"] == pytest.approx(means.loc["b", "x3"], abs=1e-3)
    assert (table["sd"] > 0.05).all()  # x1 and x3 are unobserved causes / their effect
    assert (table["ess_bulk"] > 50).all()  # importance-resampled draws, not one repeated


# ArviZ 0.23's plot_posterior passes a dict to matplotlib's normalize_kwargs, deprecated in
# matplotlib 3.11: a third-party warning, nothing to change on our side.
@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping")
def test_plot_posterior_draws_every_answer_variable_and_row(hidden_causes):
    import arviz as az
    import matplotlib.pyplot as plt

    scm, evidence = hidden_causes
    result = scm.counterfactual(
        evidence,
        {"x2": 1.0},
        num_samples=200,
        abduction=ImportanceAbduction(2000),
        seed=0,
        fit_uncertainty="none",  # one model: the ESS per row
    )
    idata = result.to_inference_data()
    axes = np.asarray(az.plot_posterior(idata))
    assert axes.size == 2 * 3  # (x1, x3) x rows a, b, c
    titles = sorted(ax.get_title() for ax in axes.flat)
    assert titles[0].startswith("x1") and titles[-1].startswith("x3")
    assert all(ax.lines for ax in axes.flat)  # a density line in every panel
    # importance abduction: the ESS of its weights per row, in sample_stats
    ess = idata.sample_stats["ess"]
    assert ess.dims == ("row",) and ((ess > 1) & (ess <= 2000)).all()
    plt.close("all")


def test_nuts_divergences_and_r_hat_in_sample_stats(hidden_causes):
    scm, evidence = hidden_causes
    result = scm.counterfactual(
        evidence.head(2),
        {"x2": 1.0},
        num_samples=60,
        abduction=NUTSAbduction(20),
        seed=0,
        fit_uncertainty="none",  # one chain (each parameter draw would run its own)
    )
    stats = result.to_inference_data().sample_stats
    assert stats["diverging"].dims == ("chain", "draw") and stats["diverging"].dtype == bool
    assert stats["diverging"].shape == (1, 60)
    assert stats["r_hat"].dims == ("row",) and np.isfinite(stats["r_hat"].values).all()
    assert (stats["ess_bulk"] > 0).all()


def test_ensemble_sample_stats_have_a_member_dim(fitted, hidden_causes):
    scm, data, _, _ = fitted
    _, evidence = hidden_causes
    ensemble = pc.SCMEnsemble.bootstrap(scm, data, num_models=2, seed=0, epochs=2)
    result = ensemble.counterfactual(
        evidence, {"x2": 1.0}, num_samples=40, abduction=SVIAbduction(num_steps=10), seed=0
    )
    stats = result.to_inference_data().sample_stats
    assert stats["ess"].dims == ("member", "row") and stats["ess"].shape == (2, 3)
    assert stats["elbo"].dims == ("member", "missingness_pattern", "abduction_step")
    for m in (0, 1):
        part = result.diagnostics[result.diagnostics["member"] == m]
        np.testing.assert_array_equal(stats["ess"].sel(member=m).values, part["ess"].to_numpy())


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
    scm, _, evidence, result = fitted
    doing = scm.do({"x2": 2.0}).query(num_samples=500, seed=0)
    assert doing.kind == "interventional" and list(doing.rows) == [0]
    alone = scm.do({"x2": 2.0}).query(num_samples=500, seed=0, fit_uncertainty="none")
    pd.testing.assert_frame_equal(
        alone.samples.reset_index(drop=True), scm.do({"x2": 2.0}).sample(500, seed=0)
    )
    assert set(doing.to_inference_data().groups()) == {"posterior", "interventional", "factual"}
    assert list(doing.to_inference_data().posterior.data_vars) == ["x1", "x3"]
    assert doing.summary().loc[("x2", 0), "sd"] < 1e-9
    axes = doing.plot()
    assert len(axes) == 2  # x1 and x3 (x2 is intervened on)
    axes = result.plot(max_rows=4)
    assert axes.size >= 4 and axes.flat[0].get_title() == "row a"
    assert any("one value" in line.get_label() for line in axes.flat[0].lines)  # row a
    # by default the regressions' parameter uncertainty remains where every variable is
    # observed, far narrower than the evidence-ignoring answer: a band, not a spike
    pooled = scm.counterfactual(evidence, {"x1": 1.0}, num_samples=300, seed=0)
    assert pooled.info["fit_uncertainty"] == "parameters" and pooled.info["members"] == 10
    assert 0 < float(pooled.samples["x3"].xs("a", level="row").std()) < 0.1
    assert pooled.diagnostics["member"].nunique() == 10
    axes = pooled.plot(max_rows=4)
    assert any("narrow" in line.get_label() for line in axes.flat[0].lines)
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
