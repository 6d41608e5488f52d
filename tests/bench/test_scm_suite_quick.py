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
