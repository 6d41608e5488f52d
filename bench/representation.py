"""Benchmark: SCM-VAE, ICM-VAE, β-VAE and a label-conditional VAE on Pendulum and Flow.

Every model is trained with the same budget (epochs, training units, batch size, learning
rate, encoder/decoder, seeds) by :func:`pyrocausal.inference.crl.train_crl` and evaluated by
:func:`pyrocausal.inference.crl.evaluate_crl` against one oracle per data set. Writes

    OUT/results.json                 every metric of every run
    OUT/table.md                     the headline table (means over seeds) and a claims check
    OUT/<dataset>/<model>/seed<s>/   model.pt, checkpoint.pt, history.json, metrics.json,
                                     counterfactuals.png, interventions.png
    OUT/oracles/<dataset>.pt         the oracles (reused when present)

Encoder/decoder: the default small convolutional preset (``--networks conv``); the papers'
MLPs (``--networks paper-mlp``, about 190M parameters) take minutes per epoch on a CPU,
which does not fit the two-hour budget for 8 models.

Usage:
    python bench/representation.py --quick            # minutes on a laptop CPU
    python bench/representation.py --seeds 0 1 --jobs 2
        # the full run: 16 runs, two at a time on a 2-core machine (8 of them took 36 min
        # this way: 5-9 min of training each, plus the evaluation)
    python bench/representation.py --device cuda --out out/bench-gpu

Finished runs are reused when their budget and model config are unchanged (``--rerun``
retrains them).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pyrocausal.inference.crl import (
    CRL_MODELS,
    counterfactual_references,
    evaluate_crl,
    summarize,
    train_crl,
)
from pyrocausal.inference.devices import resolve_device
from pyrocausal.metrics import Oracle, train_oracle

MODELS = ("scm-vae", "icm-vae", "beta-vae", "cvae")
CAUSAL = ("scm-vae", "icm-vae")
BASELINES = ("beta-vae", "cvae")
DATASETS = ("pendulum", "flow")

PRESETS = {
    # The whole training split, 20 epochs: about 25-30 s per epoch per model on one CPU
    # thread, so 8 models fit in about two hours with the oracles and the evaluation.
    "full": dict(epochs=20, train_size=None, test_size=None, oracle_size=8192, oracle_epochs=10),
    # A smoke run of the whole pipeline (a few minutes); too short for the models to learn
    # the pendulum's details, so its numbers say little about the claims.
    "quick": dict(epochs=3, train_size=768, test_size=256, oracle_size=1024, oracle_epochs=3),
}

# Column -> True when higher is better.
HIGHER_IS_BETTER = {
    "MCC": True,
    "DCI-D": True,
    "DCI-C": True,
    "DCI-I": True,
    "MIC": True,
    "TIC": True,
    "eff. desc.": False,
    "eff. int.": False,
    "composition": False,
    "reversibility": False,
    "CF img MSE": False,
    "CF factor MAE": False,
    "recon MSE": False,
    "s/epoch": False,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small budget: minutes on a CPU")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default="out/bench-representation", help="output directory")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--train-size", type=int, help="override the preset's training units")
    parser.add_argument("--test-size", type=int, help="override the preset's test units")
    parser.add_argument("--oracle-size", type=int, help="override the oracle's training renders")
    parser.add_argument("--oracle-epochs", type=int, help="override the oracle's epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--latent-dim", type=int, default=4)
    parser.add_argument("--networks", default="conv", help="encoder/decoder preset")
    parser.add_argument("--missing-labels", type=float, default=0.0)
    parser.add_argument("--prior-scale", type=float, help="lambda_2 of the supervised priors")
    parser.add_argument("--grad-clip", type=float, help="clip the gradient norm")
    parser.add_argument(
        "--spike-rollback",
        type=float,
        default=1.5,
        help="undo an epoch whose loss jumps by this factor, halve the rate (0: off)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at once, each in its own process (2 on a 2-core machine)",
    )
    parser.add_argument(
        "--rerun", action="store_true", help="retrain runs whose metrics.json already exists"
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def get_oracle(dataset: str, out: Path, settings: dict, device: torch.device, seed: int) -> Oracle:
    path = out / "oracles" / f"{dataset}-{settings['oracle_size']}-{settings['oracle_epochs']}.pt"
    if path.exists():
        return Oracle.load(path).to(device)
    from pyrocausal.datasets.images import get_dataset

    start = time.perf_counter()
    oracle = train_oracle(
        get_dataset(dataset),
        n=settings["oracle_size"],
        epochs=settings["oracle_epochs"],
        seed=seed,
        device=device,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    oracle.save(path)
    print(
        f"oracle {dataset}: {time.perf_counter() - start:.0f} s, validation MAE "
        + ", ".join(f"{k} {v:.3g}" for k, v in oracle.validation_mae.items()),
        flush=True,
    )
    return oracle


def markdown_table(frame: pd.DataFrame) -> str:
    columns = list(frame.columns)
    header = [
        c + (" ↑" if HIGHER_IS_BETTER.get(c) else " ↓" if c in HIGHER_IS_BETTER else "")
        for c in columns
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            cells.append(f"{v:.3g}" if isinstance(v, float | np.floating) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Relative difference below which a comparison is reported as a tie.
TIE = 0.02


def claims(table: pd.DataFrame, references: pd.DataFrame | None = None) -> list[str]:
    """Check the papers' qualitative claims on the mean table.

    With ``references`` (:func:`counterfactual_references`), also say how far each model's
    descendant effectiveness goes from the no-change answer (0%) to the oracle's floor
    on rendered truth (100%).
    """
    lines = []
    for dataset, rows in table.groupby("dataset"):
        by = rows.set_index("model")
        present = set(by.index)
        if references is not None and dataset in set(references["dataset"]):
            ref = references[references["dataset"] == dataset].set_index("reference")
            none, floor = (
                ref.loc["no change", "eff. desc."],
                ref.loc["rendered truth", "eff. desc."],
            )
            if none - floor < 0.1 * abs(none):
                lines.append(
                    f"- {dataset}: the oracle scores the no-change answer ({none:.4g}) about as "
                    f"well as the rendered truth ({floor:.4g}): effectiveness says nothing here"
                )
            else:
                for m in by.index:
                    value = by.loc[m, "eff. desc."]
                    share = (none - value) / (none - floor)
                    lines.append(
                        f"- {dataset}: {m} eff. desc. {value:.4g}: {share:.0%} of the way from "
                        f"the no-change answer ({none:.4g}) to the oracle floor ({floor:.4g})"
                    )
        causal = [m for m in CAUSAL if m in present]
        base = [m for m in BASELINES if m in present]
        for metric in ("eff. desc.", "CF img MSE"):
            if not causal or not base:
                continue
            best_base = min(by.loc[m, metric] for m in base)
            for m in causal:
                value = by.loc[m, metric]
                if abs(value - best_base) <= TIE * abs(best_base):
                    verdict = f"tie (within {TIE:.0%}): not shown"
                else:
                    verdict = "holds" if value < best_base else "DOES NOT HOLD"
                lines.append(
                    f"- {dataset}: {m} {metric} {value:.4g} vs best baseline "
                    f"{best_base:.4g}: {verdict}"
                )
        if {"icm-vae", "scm-vae"} <= present:
            for metric in ("MCC", "DCI-D"):
                icm, scm = by.loc["icm-vae", metric], by.loc["scm-vae", metric]
                ok = icm >= scm
                lines.append(
                    f"- {dataset}: ICM-VAE {metric} {icm:.4g} >= SCM-VAE {scm:.4g}: "
                    f"{'holds' if ok else 'DOES NOT HOLD'}"
                )
    return lines


def _model_config(
    model: str, dataset: str, args: argparse.Namespace, model_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The constructor arguments ``train_crl`` would give the model now (JSON round trip)."""
    from pyrocausal.datasets.images import get_dataset

    net = CRL_MODELS[model].from_dataset(
        get_dataset(dataset),
        latent_dim=args.latent_dim,
        networks=args.networks,
        **model_kwargs,
    )
    return json.loads(json.dumps(net.config(), default=float))


def _run_config(metrics: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """The model config of a finished run, in the current format: from its metrics, or from
    its saved ``model.pt`` for runs whose metrics predate the field."""
    from pyrocausal.models.crl_base import CRLModel

    config = metrics.get("model_config")
    if config is None:
        saved = run_dir / "model.pt"
        if not saved.exists():
            return None
        config = torch.load(saved, map_location="cpu", weights_only=True)["config"]
    return json.loads(json.dumps(CRLModel.upgrade_config(config), default=float))


def train_and_evaluate(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (model, data set, seed) run, writing its run folder; returns its
    metrics. Runs in a worker process when ``--jobs`` is above 1."""
    torch.set_num_threads(job["threads"])
    settings, device = job["settings"], torch.device(job["device"])
    budget, run_dir = job["budget"], Path(job["run_dir"])
    oracle = get_oracle(job["dataset"], Path(job["out"]), settings, device, seed=0)
    start = time.perf_counter()
    run = train_crl(
        job["model"],
        job["dataset"],
        epochs=settings["epochs"],
        batch_size=budget["batch_size"],
        lr=budget["lr"],
        latent_dim=budget["latent_dim"],
        networks=budget["networks"],
        missing_labels=budget["missing_labels"],
        train_size=settings["train_size"],
        seed=job["seed"],
        device=job["device"],
        grad_clip=budget["grad_clip"],
        spike_rollback=budget["spike_rollback"],
        out_dir=run_dir,
        progress=job["progress"],
        **job["model_kwargs"],
    )
    trained = time.perf_counter() - start
    metrics = evaluate_crl(
        run.model,
        run_dir,
        test_size=settings["test_size"],
        oracle=oracle,
        seed=job["seed"],
        device=job["device"],
        progress=job["progress"],
    )
    metrics["seed"] = job["seed"]
    metrics["train_seconds"] = trained
    metrics["budget"] = budget
    metrics["model_config"] = run.model.config()
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    print(
        f"{job['dataset']} {job['model']} seed {job['seed']}: {trained:.0f} s training, "
        f"{run.seconds_per_epoch:.1f} s/epoch, MCC {metrics['mcc']:.3f}, "
        f"eff. desc. {metrics['effectiveness_descendants']:.3f}, "
        f"CF MSE {metrics['cf_image_mse']:.4f}",
        flush=True,
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = dict(PRESETS["quick" if args.quick else "full"])
    for key in ("epochs", "train_size", "test_size", "oracle_size", "oracle_epochs"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    print(f"settings: {settings}, device {device}, networks {args.networks}", flush=True)

    budget = {
        **settings,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "latent_dim": args.latent_dim,
        "networks": args.networks,
        "missing_labels": args.missing_labels,
        "prior_scale": args.prior_scale,
        "grad_clip": args.grad_clip,
        "spike_rollback": args.spike_rollback or None,
    }
    model_kwargs = {} if args.prior_scale is None else {"prior_scale": args.prior_scale}
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    results: list[dict[str, Any] | None] = []
    pending: list[tuple[int, dict[str, Any]]] = []
    for dataset in args.datasets:
        get_oracle(dataset, out, settings, device, seed=0)  # trained once, before any run
        for model in args.models:
            expected = _model_config(model, dataset, args, model_kwargs)
            for seed in args.seeds:
                run_dir = out / dataset / model / f"seed{seed}"
                done = run_dir / "metrics.json"
                if done.exists() and not args.rerun:
                    previous = json.loads(done.read_text())
                    # Same settings and the same model (a changed default, e.g. a loss
                    # weight, changes the config): reuse the run.
                    same_model = _run_config(previous, run_dir) == expected
                    if previous.get("budget") == budget and same_model:
                        print(f"{dataset} {model} seed {seed}: reusing {done}", flush=True)
                        results.append(previous)
                        continue
                job = {
                    "model": model,
                    "dataset": dataset,
                    "seed": seed,
                    "run_dir": str(run_dir),
                    "out": str(out),
                    "settings": settings,
                    "budget": budget,
                    "model_kwargs": model_kwargs,
                    "device": str(device),
                    "threads": args.threads,
                    "progress": progress and args.jobs == 1,
                }
                pending.append((len(results), job))
                results.append(None)

    def finished(index: int, metrics: dict[str, Any]) -> None:
        results[index] = metrics
        done = [r for r in results if r is not None]
        (out / "results.json").write_text(json.dumps(done, indent=1, default=float))

    if args.jobs > 1 and len(pending) > 1:
        # One process per run (spawned: no forked torch thread pools); each writes its run
        # folder, and the table waits for all of them.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(args.jobs, len(pending)), mp_context=context) as pool:
            futures = [(i, pool.submit(train_and_evaluate, job)) for i, job in pending]
            for i, future in futures:
                finished(i, future.result())
    else:
        for i, job in pending:
            finished(i, train_and_evaluate(job))
    # Again at the end: reused runs join it too, so it always matches table.md.
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))

    references = pd.concat(
        [
            counterfactual_references(
                dataset,
                get_oracle(dataset, out, settings, device, seed=0),
                test_size=settings["test_size"],
                seed=seed,
                device=str(device),
                progress=progress,
            ).assign(seed=seed)
            for dataset in args.datasets
            for seed in args.seeds
        ]
    )
    references = references.groupby(["dataset", "reference"], sort=False).mean().reset_index()
    (out / "references.json").write_text(references.to_json(orient="records", indent=1))
    table = summarize(results)
    mean = table.groupby(["dataset", "model"], sort=False).mean(numeric_only=True).reset_index()
    text = [
        "# Causal representation benchmark",
        "",
        f"Settings: {settings}, batch {args.batch_size}, lr {args.lr}, latent blocks "
        f"{args.latent_dim}, networks `{args.networks}`, missing labels {args.missing_labels}, "
        f"seeds {args.seeds}, device {device}, torch threads {args.threads}.",
        "",
        "MCC: single latent dimensions; DCI: gradient-boosted trees on all latents; MIC/TIC: "
        "factor vs its own block mean. eff. desc. / eff. int.: oracle MAE of the descendants / "
        "the intervened root under do(root), divided by the factor's label scale; CF factor "
        "MAE: the same over all factors; CF img MSE: against the rendered ground truth; "
        "composition / reversibility: mean absolute pixel difference.",
        "",
        markdown_table(mean),
        "",
        "## References: the same interventions answered without a model",
        "",
        "`no change`: the factual image (a model that ignores the intervention); `rendered "
        "truth`: the ground-truth image (the oracle's own error, the floor of the "
        "effectiveness metrics).",
        "",
        markdown_table(references.drop(columns="seed")),
        "",
        "## The papers' claims at this budget",
        "",
        *claims(mean, references),
        "",
    ]
    if len(args.seeds) > 1:
        std = table.groupby(["dataset", "model"], sort=False).std(numeric_only=True)
        text += ["## Standard deviation over seeds", "", markdown_table(std.reset_index()), ""]
    (out / "table.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
