"""Speed of the core against causalflows' CausalMAF, side by side in one run.

* fit wall time of ``pc.SCM(...).fit`` against one joint ``causalflows.flows.CausalMAF`` fit
  (same standardized data, epochs, batch size, learning rate, hardware; repeated and
  interleaved, median reported), for the default mechanisms (``Auto.light()``), an all-MAF
  model (the previous default), ``"auto"`` and ``"flexible"``;
* wall time of ``scm.counterfactual`` on 100,000 factual rows (abduction, pyro.do, replay).

Run: ``.venv-bench/bin/python bench/core_speed.py [--rows 20000] [--epochs 50] [--repeats 3]``.
Writes ``--out`` (default ``bench/results/core_speed.json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

import pyrocausal as pc
from pyrocausal.datasets import load_scm


def fit_causal_maf(data: pd.DataFrame, graph: pc.CausalGraph, epochs: int, batch_size: int,
                   lr: float, seed: int) -> float:  # fmt: skip
    """Train one causalflows CausalMAF on the standardized data; returns seconds."""
    from causalflows.flows import CausalMAF

    torch.manual_seed(seed)
    x = torch.tensor(data.to_numpy(), dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    adjacency = torch.tensor(graph.adjacency().T) | torch.eye(len(graph), dtype=torch.bool)
    start = time.perf_counter()
    flow = CausalMAF(x.shape[1], adjacency=adjacency)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            loss = -flow().log_prob(x[order[i : i + batch_size]]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def fit_pyrocausal(data: pd.DataFrame, graph: pc.CausalGraph, mechanisms: object, epochs: int,
                   batch_size: int, lr: float, seed: int) -> tuple[float, pc.SCM]:  # fmt: skip
    scm = pc.SCM(graph, mechanisms=mechanisms)
    start = time.perf_counter()
    # Equal epochs: no early stopping; the default and "auto" choose on validation rows.
    chooses = scm.auto is not None
    scm.fit(data, epochs=epochs, batch_size=batch_size, lr=lr, progress=False, seed=seed,
            device="cpu", val_fraction=0.1 if chooses else 0.0, patience=None)  # fmt: skip
    return time.perf_counter() - start, scm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scms", default="triangle_nonlinear,simpson_nonlinear,large_backdoor")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for CausalMAF")
    parser.add_argument("--out", default="bench/results/core_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # pay torch's one-off import here

    rows = []
    for name in args.scms.split(","):
        truth = load_scm(name)
        data = truth.sample(args.rows, seed=0)
        times: dict[str, list[float]] = {"causalflows CausalMAF": [], "pyrocausal default": [],
                                         "pyrocausal MAF": [], "pyrocausal auto": [],
                                         "pyrocausal flexible": []}  # fmt: skip
        scm = None
        for r in range(args.repeats):
            common = (args.epochs, args.batch_size, args.lr, r)
            times["causalflows CausalMAF"].append(fit_causal_maf(data, truth.graph, *common))
            t, scm = fit_pyrocausal(data, truth.graph, None, *common)
            times["pyrocausal default"].append(t)
            times["pyrocausal MAF"].append(fit_pyrocausal(data, truth.graph, pc.MAF(), *common)[0])
            times["pyrocausal auto"].append(fit_pyrocausal(data, truth.graph, "auto", *common)[0])
            flexible = fit_pyrocausal(data, truth.graph, "flexible", *common)[0]
            times["pyrocausal flexible"].append(flexible)
        big = pd.concat([data] * (100_000 // len(data) + 1), ignore_index=True).head(100_000)
        node = truth.intervened[0]
        value = truth.intervention_values(node)[1]
        scm.counterfactual(big.head(1000), {node: value})  # warm-up
        cf = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scm.counterfactual(big, {node: value})
            cf.append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["causalflows CausalMAF"]
        rows.append(
            {
                "scm": name,
                "nodes": len(truth.graph),
                "causalmaf_fit_s": base,
                "pyrocausal_default_fit_s": med["pyrocausal default"],
                "pyrocausal_maf_fit_s": med["pyrocausal MAF"],
                "pyrocausal_auto_fit_s": med["pyrocausal auto"],
                "pyrocausal_flexible_fit_s": med["pyrocausal flexible"],
                "default_fit_ratio": med["pyrocausal default"] / base,
                "maf_fit_ratio": med["pyrocausal MAF"] / base,
                "auto_fit_ratio": med["pyrocausal auto"] / base,
                "flexible_fit_ratio": med["pyrocausal flexible"] / base,
                "cf_100k_s": statistics.median(cf),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"rows": args.rows, "epochs": args.epochs, "batch_size": args.batch_size,
            "repeats": args.repeats, "threads": args.threads, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    table = pd.DataFrame(rows).set_index("scm")
    print(table.to_markdown(floatfmt=".3f") if _has_tabulate() else table.to_string())


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
