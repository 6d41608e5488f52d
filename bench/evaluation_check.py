"""How often ``pc.evaluate`` and ``falsify_graph`` flag correctly, on built-in SCMs.

For each SCM and seed: 2,000 training rows, 500 held-out rows (other seeds).

* Graph falsification (``falsify_graph`` on the held-out rows): the true graph, and wrong
  graphs whose implied independences the data violate (a missing edge, a chain for a
  collider, ...). Reported: the share of seeds where the graph is *falsified* (true graph:
  false alarms; wrong graphs: power) and where the true graph is *informative*.
* The other checks of ``pc.evaluate`` for two models: ``pc.LinearGaussian()`` (correct on
  a linear SCM, misspecified on a non-linear one) and the default ``pc.SCM(graph)``
  (``Auto.light()``, ``--epochs`` epochs). Reported: the share of seeds where a check flags
  at least one node (or pair, or edge).

Run: ``.venv/bin/python bench/evaluation_check.py [--seeds 0,1,2] [--epochs 100]``
(about three minutes of CPU for the default: 4 SCMs, 3 seeds). Writes ``--out`` (default
``bench/results/evaluation_check.json``) and prints two tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

import pyrocausal as pc
from pyrocausal.datasets import load_scm
from pyrocausal.falsification import falsify_graph

#: SCM -> wrong graphs (name -> node -> parents) whose implied independences are false.
WRONG = {
    "collider_linear": {
        "chain x1->x2->x3": {"x1": [], "x2": ["x1"], "x3": ["x2"]},
        "missing x2->x3": {"x1": [], "x2": [], "x3": ["x1"]},
    },
    "chain_nonlinear": {
        "collider x1->x2<-x3": {"x1": [], "x3": [], "x2": ["x1", "x3"]},
        "missing x2->x3": {"x1": [], "x2": ["x1"], "x3": []},
    },
    "fork_nonlinear": {
        "missing x1->x3": {"x1": [], "x2": [], "x3": ["x2"], "x4": ["x3"]},
        "x4 child of x1": {"x1": [], "x2": [], "x3": ["x1", "x2"], "x4": ["x1"]},
    },
    "simpson_nonlinear": {
        "missing x1->x3": {"x1": [], "x2": ["x1"], "x3": ["x2"], "x4": ["x3"]},
        "chain x1->x3->x2->x4": {
            "x1": [], "x3": ["x1"], "x2": ["x3"], "x4": ["x2"]
        },
    },
}  # fmt: skip

CHECKS = ("log_likelihood", "marginal", "dependence", "joint", "interventional",
          "noise_independence")  # fmt: skip


def run(scms: list[str], seeds: list[int], epochs: int) -> dict:
    falsification, checks = [], []
    for name in scms:
        truth = load_scm(name)
        for seed in seeds:
            train = truth.sample(2000, seed=seed)
            test = truth.sample(500, seed=1000 + seed)
            graphs = {"true": truth.graph, **WRONG[name]}
            for label, graph in graphs.items():
                start = time.perf_counter()
                result = falsify_graph(graph, test, seed=seed)
                falsification.append({
                    "scm": name, "seed": seed, "graph": label, "falsified": result.falsified,
                    "informative": result.informative, "p_value": result.p_value,
                    "seconds": time.perf_counter() - start,
                })  # fmt: skip
            for model, mechanisms in (("linear", pc.LinearGaussian()), ("default", None)):
                scm = pc.SCM(truth.graph, mechanisms=mechanisms)
                scm.fit(train, epochs=epochs, progress=False, seed=seed)
                start = time.perf_counter()
                report = pc.evaluate(scm, test, num_samples=1000, falsify=False, seed=seed)
                flagged = report.to_frame().groupby("check")["passed"].all()
                checks.append({
                    "scm": name, "seed": seed, "model": model,
                    "seconds": time.perf_counter() - start,
                    **{c: not bool(flagged.get(c, True)) for c in CHECKS},
                    "noise_flagged_nodes": ",".join(
                        report.noise_independence.index[~report.noise_independence["passed"]]
                    ),
                })  # fmt: skip
            print(f"{name} seed {seed} done", flush=True)
    return {"falsification": falsification, "checks": checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scms", default=",".join(WRONG))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", default="bench/results/evaluation_check.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = run(args.scms.split(","), seeds, args.epochs)
    seconds = time.perf_counter() - start
    fals = pd.DataFrame(results["falsification"])
    table = fals.groupby(["scm", "graph"], sort=False).agg(
        falsified=("falsified", "mean"), informative=("informative", "mean"),
        seconds=("seconds", "mean"),
    )  # fmt: skip
    checks = pd.DataFrame(results["checks"])
    flags = checks.groupby(["scm", "model"], sort=False)[[*CHECKS, "seconds"]].mean()
    print(f"\n### Graph falsification: share of {len(seeds)} seeds falsified (500 rows)\n")
    print(table.to_string(float_format="{:.2f}".format))
    print(f"\n### pc.evaluate: share of {len(seeds)} seeds where a check flags\n")
    print(flags.to_string(float_format="{:.2f}".format))
    print(f"\ntotal {seconds:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {"config": vars(args), "seconds": seconds, **results}, indent=1, default=float
        ) + "\n"
    )  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
