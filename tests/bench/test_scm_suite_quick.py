"""The benchmark harness runs end to end on one small SCM and writes sane results."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_suite():
    path = ROOT / "bench" / "scm_suite.py"
    spec = importlib.util.spec_from_file_location("scm_suite", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("scm_suite", module)
    spec.loader.exec_module(module)
    return module


suite = _load_suite()


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_mmd_rbf_separates_shifted_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    assert suite.mmd_rbf(a, a) == pytest.approx(0.0, abs=1e-6)
    same, shifted = suite.mmd_rbf(a, b), suite.mmd_rbf(a, b + 0.5)
    assert 0.0 < same < 0.1 < shifted


def test_quick_run_on_chain_linear(tmp_path):
    result = suite.main(
        [
            "--quick",
            "--scms",
            "chain_linear",
            "--epochs",
            "15",
            "--n-samples",
            "2000",
            "--libraries",
            "pyrocausal,causalflows-maf",
            "--out",
            str(tmp_path),
        ]
    )
    written = json.loads((tmp_path / "scm_suite_quick.json").read_text())
    assert written["config"] == result["config"]
    assert (tmp_path / "scm_suite_quick.md").read_text().startswith("# SCM suite benchmark")
    assert (tmp_path / "scm_suite_quick_cf_rmse.png").stat().st_size > 1000
    assert set(written["protocol"]) >= set(suite.METRICS)

    # pyrocausal always runs; causalflows runs where it is installed, else a note says why.
    libs = written["libraries"]
    assert "pyrocausal" in libs
    if _have("causalflows"):
        assert "causalflows-maf" in libs
    else:
        assert "causalflows-maf" not in libs
        assert any("causalflows" in note for note in written["notes"])

    cell = written["table"]["chain_linear"]["pyrocausal"]
    for metric in suite.METRICS:
        assert cell[metric]["n"] == 1
        assert math.isfinite(cell[metric]["mean"]), metric
    # A linear chain is easy: the counterfactuals must be close to the truth.
    assert cell["cf_rmse"]["mean"] < 0.25
    assert cell["ate_rmse"]["mean"] < 0.25
    assert 0.0 <= cell["obs_mmd"]["mean"] < 0.3
    # True entropy of chain_linear: 3 * 0.5 * log(2 pi e) + log 2 = 4.95 nats per row.
    assert -6.0 < cell["loglik"]["mean"] < -4.5

    # Every (intervened node, percentile) query is scored.
    (run,) = [r for r in written["runs"] if r["library"] == "pyrocausal"]
    queries = run["metrics"]["queries"]
    assert {(q["node"], q["quantile"]) for q in queries} == {
        (n, q) for n in ("x1", "x2") for q in (0.25, 0.5, 0.75)
    }
    assert all(q["cf_rmse"] is not None and math.isfinite(q["cf_rmse"]) for q in queries)

    (summary,) = written["summary"]
    if "causalflows-maf" in libs:
        assert summary["cf_rmse_le_best_peer_count"] == "{}/1".format(
            int(summary["cf_rmse_le_best_peer_fraction"])
        )
        assert summary["fit_time_ratio_vs_causalflows_maf_geomean"] > 0.0

    chirho = written["chirho"]["chain_linear"]
    if _have("chirho"):
        # ChiRho's own counterfactual handlers on pyrocausal's program must agree with it.
        assert chirho["status"] == "ok", chirho
        assert chirho["max_abs_diff"] < 1e-3
    else:
        assert chirho["status"] == "skipped"


@pytest.mark.parametrize(
    "family", ["linear", "additive", "heteroscedastic", "nonadditive", "multiplicative"]
)
def test_two_random_scms_of_each_family_run_through_the_harness(tmp_path, family):
    from pyrocausal.datasets import random_scm

    result = suite.main(
        [
            "--quick",
            "--pool",
            "random-tune",
            "--count",
            "2",
            "--families",
            family,
            "--nodes",
            "3",
            "--epochs",
            "4",
            "--n-samples",
            "800",
            "--n-eval",
            "150",
            "--n-ate",
            "300",
            "--libraries",
            "pyrocausal",
            "--no-chirho",
            "--no-plot",
            "--out",
            str(tmp_path),
        ]
    )
    written = json.loads((tmp_path / "scm_suite_random_tune_quick.json").read_text())
    assert written["config"]["pool"] == "random-tune" and written["config"]["families"] == [family]
    assert written["config"]["scms"] == ["random-0", "random-1"] == list(written["table"])
    for name, families in written["scm_families"].items():
        assert {f for f in families.values() if f != "root"} == {family}
        truth = random_scm(int(name.split("-")[1]), nodes=3, families=[family])
        (run,) = [r for r in written["runs"] if r["scm"] == name]
        assert "error" not in run, run.get("error")
        for query in run["metrics"]["queries"]:
            desc = truth.graph.descendants(query["node"])
            assert set(query["cf_rmse_per_target"]) == desc
            # standardized units: a fitted model is far closer than the spread of the data
            assert all(0.0 <= e < 1.0 for e in query["cf_rmse_per_target"].values()), query
    assert result["families"] == {"pyrocausal": {}}  # no peer ran: nothing to compare with


def test_family_breakdown_and_ratio_distribution():
    def run(scm, lib, errors):
        queries = [{"cf_rmse_per_target": errors}]
        return {"scm": scm, "seed": 0, "library": lib, "metrics": {"queries": queries}}

    class Truth:
        def __init__(self, families):
            self.families = families

    truths = {"a": Truth({"x2": "additive", "x3": "linear"}), "b": Truth({"x2": "additive"})}
    runs = [
        run("a", "pyrocausal", {"x2": 0.2, "x3": 0.1}),
        run("a", "dowhy-gcm", {"x2": 0.1, "x3": 0.1}),
        run("a", "causalflows-maf", {"x2": 0.4, "x3": 0.4}),
        run("b", "pyrocausal", {"x2": 0.05}),
        run("b", "causalflows-maf", {"x2": 0.1}),
    ]
    for r in runs:
        errors = list(r["metrics"]["queries"][0]["cf_rmse_per_target"].values())
        r["metrics"]["cf_rmse"] = float(np.mean(errors))
    out = suite.family_breakdown(runs, truths, "pyrocausal")
    # a: best peer dowhy (0.1 mean) -> x2 ratio 2.0, x3 ratio 1.0; b: x2 ratio 0.5
    assert out["additive"]["n"] == 2 and out["additive"]["median_ratio"] == pytest.approx(1.25)
    assert out["additive"]["loss_fraction"] == pytest.approx(0.5)
    assert out["linear"] == {"n": 1, "median_ratio": 1.0, "p90_ratio": 1.0, "loss_fraction": 0.0}

    table = {
        s: {"pyrocausal": {"cf_rmse": {"mean": m}}, "dowhy-gcm": {"cf_rmse": {"mean": 1.0}}}
        for s, m in (("a", 0.5), ("b", 0.9), ("c", 1.5))
    }
    summary = suite.summarize(table)
    assert summary["cf_rmse_le_best_peer_count"] == "2/3"
    assert summary["median_cf_ratio_vs_best_peer"] == pytest.approx(0.9)
    assert summary["max_cf_ratio_vs_best_peer"] == pytest.approx(1.5)
    assert summary["p90_cf_ratio_vs_best_peer"] == pytest.approx(1.38)


def test_peers_from_a_previous_run_are_reused_only_with_the_same_budget(tmp_path):
    args = ["--quick", "--pool", "random-eval", "--count", "1", "--nodes", "3", "--epochs", "3"]
    args += ["--n-samples", "600", "--n-eval", "100", "--n-ate", "200", "--no-chirho"]
    args += ["--no-plot", "--libraries", "pyrocausal"]
    first = suite.main([*args, "--out", str(tmp_path / "a")])
    # stand-in for a peer run (causalflows and DoWhy are not installed everywhere)
    (run,) = first["runs"]
    previous = dict(first, runs=[dict(run, library="dowhy-gcm")])
    path = tmp_path / "previous.json"
    path.write_text(json.dumps(previous, default=str))
    second = suite.main([*args, "--peers-from", str(path), "--out", str(tmp_path / "b")])
    assert second["libraries"] == ["pyrocausal", "dowhy-gcm"]
    peer = second["table"]["random-1000"]["dowhy-gcm"]["cf_rmse"]["mean"]
    assert peer == run["metrics"]["cf_rmse"]
    (summary,) = second["summary"]
    assert summary["cf_rmse_le_best_peer_count"] in ("0/1", "1/1")
    assert summary["fit_time_ratio_vs_causalflows_maf_geomean"] is None
    assert any("reused" in note for note in second["notes"])
    with pytest.raises(SystemExit, match="differs in \\['epochs'\\]"):
        longer = [*args, "--epochs", "4"]  # the last --epochs wins
        suite.main([*longer, "--peers-from", str(path), "--out", str(tmp_path / "c")])
