"""Several seeds of ``bench/counterfactual_images.py``: mean and spread, and the claims per seed.

Reads the ``results.json`` of runs that differ only in ``--seed`` (same preset, data set,
learning rate, latent size and device, else refused; the label fractions and models may differ,
and each row of the summary says how many seeds it has; two folders of one seed at different
label fractions count as one run), and writes ``OUT/seeds.md`` and ``OUT/seeds.json``:

* per intervened factor, model and label fraction, the mean and standard deviation over seeds
  of effectiveness (own units), descendants' and non-descendants' error (normalized), image
  MSE / SSIM against the rendered truth, reversibility and composition;
* for each seed, whether each claim of the paper holds (CausalDiffAE at label fraction 1, the
  root intervention of the data set): sharper than every VAE (image MSE below theirs; SSIM
  above theirs), at least as effective on the intervened factor as the best VAE, descendants
  following better than the DiffAE ablation, and a guidance curve whose intervened-factor error
  falls as ``w`` grows.

Usage:
    python bench/image_seeds.py bench/results/counterfactual_images \
        bench/results/counterfactual_images_seed1 bench/results/counterfactual_images_seed2 \
        --out bench/results/counterfactual_images_seeds
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from counterfactual_images import METRICS as SCORED
from counterfactual_images import VAES, markdown

# The bench's scored columns but the normalized effectiveness and the time per image.
SKIPPED = ("eff. intervened (norm.)", "s per 1k CF")
METRICS = [m for m in SCORED if m not in SKIPPED]
ROOT = {"morpho": "thickness", "pendulum": "pendulum_angle"}
NOT_MODELS = ("no change", "rendered truth")  # reference rows of every run


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The runs' results, checked to differ in their seed only."""
    runs = [json.loads((p / "results.json").read_text()) for p in paths]
    # The label fractions may differ (a seed run at label fraction 1 only): every row says how
    # many seeds it has.
    keys = ("preset", "lr", "latent_dim", "dataset", "device")
    defaults = {"dataset": "morpho"}  # runs from before --dataset existed were Morpho runs

    def arg(run: dict[str, Any], key: str) -> Any:
        return run["args"].get(key, defaults.get(key))

    first = runs[0]
    for path, run in zip(paths, runs):
        differ = [k for k in keys if arg(run, k) != arg(first, k)] + [
            k for k in ("preset",) if run["preset"] != first["preset"]
        ]
        if differ:
            raise SystemExit(f"{path}: differs from {paths[0]} in {sorted(set(differ))}")
    # Folders of one seed at different label fractions (a seed run at 1.0, then one at 0.5
    # and 0.1) are one run: their model rows are joined; a label fraction twice is refused.
    merged: dict[int, dict[str, Any]] = {}
    for path, run in zip(paths, runs):
        seed = run["args"]["seed"]
        if seed not in merged:
            merged[seed] = {**run, "rows": list(run["rows"]), "guidance": run.get("guidance", [])}
            continue
        first = merged[seed]
        rows = [r for r in run["rows"] if r["model"] not in NOT_MODELS]
        have = {r["label fraction"] for r in first["rows"] if r["model"] not in NOT_MODELS}
        both = have & {r["label fraction"] for r in rows}
        if both:
            raise SystemExit(f"{path}: seed {seed} has label fraction(s) {sorted(both)} twice")
        first["rows"] += rows
        first["guidance"] = first["guidance"] + run.get("guidance", [])
    return list(merged.values())


def frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Every run's model rows, with its seed."""
    rows = []
    for run in runs:
        for row in run["rows"]:
            if row["model"] in NOT_MODELS:
                continue
            rows.append({"seed": run["args"]["seed"], **row})
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per intervened factor, model, label fraction."""
    keys = ["intervened", "model", "label fraction"]
    metrics = [m for m in METRICS if m in rows.columns]
    grouped = rows.groupby(keys, sort=False)[metrics]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame(index=mean.index)
    for m in metrics:
        out[m] = [
            "" if math.isnan(a) else f"{a:.4g}" if math.isnan(s) else f"{a:.4g} ± {s:.2g}"
            for a, s in zip(mean[m], std[m])
        ]  # one seed: no spread
    out["seeds"] = grouped.size()
    return out.reset_index()


def claims(run: dict[str, Any], root: str) -> dict[str, Any]:
    """Which of the paper's claims hold in one run (label fraction 1, do(root))."""
    rows = pd.DataFrame(run["rows"])
    at = rows[(rows["intervened"] == root) & (rows["label fraction"] == 1.0)].set_index("model")
    out: dict[str, Any] = {"seed": run["args"]["seed"]}
    missing = [m for m in ("causal-diffae", *VAES) if m not in at.index]
    if missing:  # an unfinished run: no verdict rather than a wrong one
        raise SystemExit(f"seed {out['seed']}: no rows for {missing} at label fraction 1")
    ours = at.loc["causal-diffae"]
    vaes = at.loc[list(VAES)]
    out["sharper: CF MSE below every VAE"] = bool(ours["CF img MSE"] < vaes["CF img MSE"].min())
    out["sharper: CF SSIM above every VAE"] = bool(ours["CF img SSIM"] > vaes["CF img SSIM"].max())
    out["as effective as the best VAE"] = bool(
        ours["eff. intervened"] <= vaes["eff. intervened"].min()
    )
    if "diffae" in at.index:
        out["descendants follow better than DiffAE"] = bool(
            ours["eff. descendants (norm.)"] < at.loc["diffae", "eff. descendants (norm.)"]
        )
    curve = pd.DataFrame(run.get("guidance", []))
    if not curve.empty:
        curve = curve[curve["intervened"] == root].sort_values("w")
        errors = curve["eff. intervened"].to_numpy()
        out["guidance: error falls as w grows"] = bool(np.all(np.diff(errors) <= 0))
        out["guidance error by w"] = {
            f"{w:g}": round(float(e), 4) for w, e in zip(curve["w"], errors)
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Summarize the runs given on the command line; returns what ``seeds.json`` holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="result folders of one seed each")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = load(args.runs)
    dataset = runs[0]["args"].get("dataset", "morpho")
    root = ROOT[dataset]
    table = summary(frame(runs))
    verdicts = [claims(run, root) for run in runs]
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "dataset": dataset,
        "preset": runs[0]["preset"],
        "seeds": [run["args"]["seed"] for run in runs],
        "runs": [str(p) for p in args.runs],
        "summary": table.to_dict(orient="records"),
        "claims": verdicts,
    }
    (args.out / "seeds.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Counterfactual images on {dataset}: {len(runs)} seeds",
        "",
        f"Runs: {', '.join(f'`{p}`' for p in args.runs)} (seeds {result['seeds']}; budget "
        f"{json.dumps(runs[0]['preset'])}). Mean ± standard deviation over seeds.",
        "",
        "## Metrics",
        "",
        markdown(table),
        "",
        f"## The paper's claims per seed (label fraction 1, do({root}))",
        "",
        markdown(pd.DataFrame(verdicts).drop(columns=["guidance error by w"], errors="ignore")),
        "",
        "Guidance curve (intervened-factor error by w): "
        + "; ".join(f"seed {v['seed']}: {v.get('guidance error by w')}" for v in verdicts),
        "",
    ]  # fmt: skip
    (args.out / "seeds.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
