"""The ``pyrocausal`` command line.

Subcommands: ``demo`` (the main job, on a built-in data set), ``generate`` (data from a
built-in SCM), ``fit``, ``sample``, ``do``, ``counterfactual``, ``ate``, ``check`` (the
evaluation report of a fitted SCM on held-out rows), ``scms``.

``fit`` and ``train`` train on several processes or GPUs with ``--devices N`` (spawned from
this command), or under ``torchrun --nproc-per-node N -m pyrocausal ...`` (each process joins
the launcher's group; only rank 0 prints and writes files).
"""

from __future__ import annotations

__all__ = ["build_parser", "main", "parse_assignments", "read_graph"]

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def parse_assignments(items: Sequence[str]) -> dict[str, float]:
    """Parse ``["x2=1.5", "x1=0"]`` into ``{"x2": 1.5, "x1": 0.0}``.

    Example:
        >>> parse_assignments(["x2=1.5", "x1 = -2"])
        {'x2': 1.5, 'x1': -2.0}
        >>> parse_assignments(["x2"])
        Traceback (most recent call last):
        ...
        ValueError: expected NAME=VALUE, got 'x2'
    """
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError as exc:
            raise ValueError(f"value of {name.strip()!r} is not a number: {value!r}") from exc
    return out


GRAPH_KEYS = ("parents", "latent", "mechanisms")


def read_graph(path: str) -> tuple[dict[str, list[str]], list[str], dict[str, str]]:
    r"""Read a graph file: ``(parents, latent, mechanisms)``.

    A YAML or JSON file that maps each node to its list of parents, or one with the keys
    ``parents`` (that mapping), ``latent`` (unobserved nodes) and ``mechanisms``
    (``node -> name``, e.g. ``treated: bernoulli``; nodes left out get the default).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "g.yaml"
        >>> _ = f.write_text("parents: {h: [], t: [h], y: [h, t]}\nlatent: [h]\n"
        ...                  "mechanisms: {t: bernoulli}\n")
        >>> read_graph(str(f))
        ({'h': [], 't': ['h'], 'y': ['h', 't']}, ['h'], {'t': 'bernoulli'})
    """
    import yaml

    text = Path(path).read_text()
    graph = yaml.safe_load(text)  # YAML is a superset of JSON
    if not isinstance(graph, dict):
        raise ValueError(f"{path}: a graph file maps each node to its list of parents")
    latent: list[str] = []
    mechanisms: dict[str, str] = {}
    if "parents" in graph and set(graph) <= set(GRAPH_KEYS):
        latent = [str(n) for n in graph.get("latent") or []]
        mechanisms = {str(k): str(v) for k, v in (graph.get("mechanisms") or {}).items()}
        graph = graph["parents"]
        if not isinstance(graph, dict):
            raise ValueError(f"{path}: 'parents' maps each node to its list of parents")
    elif any(k in graph for k in ("latent", "mechanisms")):
        raise ValueError(
            f"{path}: to declare latent nodes or mechanisms, put the node -> parents mapping "
            f"under 'parents' (keys allowed: {list(GRAPH_KEYS)})"
        )
    parents = {str(k): [str(p) for p in (v or [])] for k, v in graph.items()}
    return parents, latent, mechanisms


def _write(frame: pd.DataFrame, out: str | None, label: str) -> None:
    if out:
        # Draws keep their (row, draw) labels as columns; plain rows are written without the
        # index, so the file is read back as it was written (and fed to another command).
        draws = isinstance(frame.index, pd.MultiIndex)
        (frame.reset_index() if draws else frame).to_csv(out, index=False)
        print(f"wrote {label} to {out}")
    else:
        with pd.option_context("display.max_rows", 40, "display.width", 120):
            print(frame)


def _load(path: str, device: str):  # noqa: ANN202
    from pyrocausal.models import SCM

    return SCM.load(path, device=device)


def _parallel(args: argparse.Namespace) -> dict[str, object]:
    """The trainers' ``strategy`` and ``devices``: DDP under a launcher (torchrun) or when
    ``--devices N`` asks for several processes; one process otherwise."""
    from pyrocausal.inference.distributed import processes

    launched = all(v in os.environ for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))
    strategy = "ddp" if launched or (args.devices or 1) > 1 else None
    processes(strategy, args.devices)  # a clear error for a bad --devices, before any work
    return {"strategy": strategy, "devices": args.devices}


def _main_process() -> bool:
    from pyrocausal.inference.distributed import is_main_process

    return is_main_process()


# ---------------------------------------------------------------- subcommands
def cmd_fit(args: argparse.Namespace) -> None:
    from pyrocausal.graph import CausalGraph
    from pyrocausal.models import SCM

    data = pd.read_csv(args.data)
    parents, latent, per_node = read_graph(args.graph)
    per_node.update(_parse_names(args.mechanism))
    mechanisms = {n: per_node.get(n, args.mechanisms) for n in parents} if per_node else None
    scm = SCM(CausalGraph(parents, latent=latent), mechanisms=mechanisms or args.mechanisms)
    history = scm.fit(
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        progress=not args.quiet,
        seed=args.seed,
        **_parallel(args),
    )
    if not _main_process():
        return
    scm.save(args.output)
    best = history.val_loss[history.best_epoch] if history.val_loss else history.loss[-1]
    print(f"fitted {len(history)} epochs in {history.seconds:.1f} s, held-out NLL {best:.4f}")
    if scm.selection is not None:
        print(scm.selection.to_string())
    print(f"saved to {args.output}")


def _parse_names(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"expected NODE=MECHANISM, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def cmd_sample(args: argparse.Namespace) -> None:
    scm = _load(args.model, args.device)
    _write(scm.sample(args.num, seed=args.seed), args.output, "samples")


def cmd_do(args: argparse.Namespace) -> None:
    scm = _load(args.model, args.device)
    intervention = parse_assignments(args.set)
    if args.samples is not None:  # a CausalQueryResult: summary with highest-density intervals
        result = scm.do(intervention).query(
            num_samples=args.samples, seed=args.seed, fit_uncertainty=args.fit_uncertainty
        )
        if args.output:
            _write(result.samples, args.output, "interventional samples")
        print(f"do({', '.join(args.set)}), {args.samples} draws, {args.hdi:g} HDI")
        _print_summary(result.summary(hdi_prob=args.hdi), "interventional")
        _print_summary(result.summary(hdi_prob=args.hdi, group="factual"), "observational")
        return
    samples = scm.do(intervention).sample(args.num, seed=args.seed)
    if args.output:
        _write(samples, args.output, "interventional samples")
    observational = scm.sample(args.num, seed=args.seed)
    summary = pd.DataFrame(
        {
            "observational mean": observational.mean(),
            "interventional mean": samples.mean(),
            "interventional sd": samples.std(),
        }
    )
    print(f"do({', '.join(args.set)}), {args.num} draws")
    print(summary.to_string(float_format="{:.4f}".format))


def cmd_counterfactual(args: argparse.Namespace) -> None:
    scm = _load(args.model, args.device)
    factual = pd.read_csv(args.factual)
    if args.samples is not None:  # posterior draws; empty cells are unobserved
        from pyrocausal.inference.sensitivity import Confounding

        rho = args.rho
        if rho is not None and len(rho) > 2:
            raise SystemExit(f"--rho takes one value or a range LOW HIGH, got {rho}")
        confounding = (
            None if rho is None else Confounding(rho=rho[0] if len(rho) == 1 else tuple(rho))
        )
        result = scm.counterfactual(
            factual,
            parse_assignments(args.set),
            num_samples=args.samples,
            seed=args.seed,
            confounding=confounding,
            fit_uncertainty=args.fit_uncertainty,
        )
        if args.output:
            _write(result.samples, args.output, "counterfactual samples")
        print(f"counterfactual do({', '.join(args.set)}), {args.samples} draws per row")
        _print_summary(result.summary(hdi_prob=args.hdi), f"{args.hdi:g} HDI")
        return
    cf = scm.counterfactual(factual, parse_assignments(args.set))
    _write(cf, args.output, "counterfactuals")


def _print_summary(table: pd.DataFrame, title: str) -> None:
    print(f"-- {title}")
    with pd.option_context("display.max_rows", 200, "display.width", 120):
        print(table.to_string(float_format="{:.4f}".format))


def cmd_ate(args: argparse.Namespace) -> None:
    scm = _load(args.model, args.device)
    ate = scm.ate(
        args.target,
        parse_assignments(args.treatment),
        parse_assignments(args.control),
        num_samples=args.num,
        seed=args.seed,
    )
    print(f"ATE on {args.target}: {ate:.4f}")


def cmd_check(args: argparse.Namespace) -> None:
    from pyrocausal.evaluation import evaluate

    scm = _load(args.model, args.device)
    report = evaluate(
        scm, pd.read_csv(args.data), num_samples=args.num, falsify=not args.no_falsify,
        alpha=args.alpha, seed=args.seed,
    )  # fmt: skip
    print(report.summary())
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report.to_frame().to_csv(out / "evaluation.csv", index=False)
        report.plot().savefig(out / "evaluation.png", dpi=110)
        print(f"wrote {out / 'evaluation.csv'} and {out / 'evaluation.png'}")


def cmd_generate(args: argparse.Namespace) -> None:
    from pyrocausal.datasets import load_scm

    truth = load_scm(args.scm)
    truth.sample(args.num, seed=args.seed).to_csv(args.output, index=False)
    print(f"wrote {args.num} rows of {args.scm} to {args.output}")
    if args.graph_output:
        Path(args.graph_output).write_text(json.dumps(truth.graph.to_dict(), indent=2) + "\n")
        print(f"wrote its graph to {args.graph_output}")


def cmd_train(args: argparse.Namespace) -> None:
    from pyrocausal.inference.crl import train_crl

    extra: dict = {} if args.abduction is None else {"abduction": args.abduction}
    if args.p_uncond is not None:
        extra["p_uncond"] = args.p_uncond
    if args.num_inference_steps is not None:
        extra["num_inference_steps"] = args.num_inference_steps
    missing = args.missing_labels if args.label_fraction is None else 1.0 - args.label_fraction
    run = train_crl(
        args.model,
        args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        latent_dim=args.latent_dim,
        networks=args.networks,
        missing_labels=missing,
        train_size=args.train_size,
        seed=args.seed,
        device=args.device,
        spike_rollback=args.spike_rollback or None,
        out_dir=args.out or f"out/{args.model}-{args.dataset}",
        resume=args.resume,
        **_parallel(args),
        **extra,
    )
    if not _main_process():
        return
    print(f"trained {args.model} on {args.dataset}: {run.seconds_per_epoch:.1f} s/epoch")
    print(f"wrote {run.out_dir}/model.pt, checkpoint.pt and history.json")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pyrocausal.inference.crl import evaluate_crl
    from pyrocausal.models.crl_base import CRLModel

    out = args.out or str(Path(args.checkpoint).parent / "evaluation")
    model = CRLModel.load(args.checkpoint)
    if args.num_inference_steps is not None and hasattr(model, "num_inference_steps"):
        model.num_inference_steps = args.num_inference_steps
    metrics = evaluate_crl(
        model, out, test_size=args.test_size, oracle=args.oracle, seed=args.seed,
        device=args.device, oracle_size=args.oracle_size, oracle_epochs=args.oracle_epochs,
    )  # fmt: skip
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    print(json.dumps(flat, indent=2))
    print(f"wrote {out}/metrics.json, counterfactuals.png and interventions.png (and guidance.png)")


def cmd_scms(args: argparse.Namespace) -> None:
    from pyrocausal.datasets import SCMS

    for name, scm in SCMS.items():
        kind = "linear" if scm.linear else ("additive" if scm.additive else "non-additive")
        print(f"{name:28s} {kind:13s} {' '.join(scm.graph.nodes)}")


def cmd_demo(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from pyrocausal.datasets import load_scm
    from pyrocausal.models import SCM
    from pyrocausal.plotting import plot_counterfactuals

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = load_scm(args.scm)
    print(f"== built-in SCM '{truth.name}': {truth.description}")
    data = truth.sample(args.rows, seed=0)
    test, noise = truth.sample_with_noise(200, seed=1)
    scm = SCM(truth.graph, mechanisms=args.mechanisms)
    history = scm.fit(data, epochs=args.epochs, device=args.device, seed=0, progress=True)
    print(f"fitted {len(history)} epochs in {history.seconds:.1f} s")
    if scm.selection is not None:
        print("mechanism chosen per node (held-out NLL per candidate):")
        print(scm.selection.to_string(float_format="{:.3f}".format))

    node = truth.intervened[-1]
    lo, mid, hi = truth.intervention_values(node)
    sink = truth.graph.nodes[-1]
    print(f"\n== seeing vs doing: the distribution of {sink}")
    seeing = scm.sample(5000, seed=2)
    doing = scm.do({node: hi}).sample(5000, seed=2)
    doing_true = truth.interventional({node: hi}, 5000, seed=2)
    table = pd.DataFrame(
        {
            "observational (model)": seeing.mean(),
            "observational (truth)": data.mean(),
            f"do({node}={hi:.2f}) (model)": doing.mean(),
            f"do({node}={hi:.2f}) (truth)": doing_true.mean(),
        }
    )
    print(table.to_string(float_format="{:.3f}".format))

    print(f"\n== imagining: counterfactual {sink} had {node} been {mid:.2f}")
    cf = scm.counterfactual(test, {node: mid})
    cf_true = truth.counterfactual(noise, {node: mid})
    rows = pd.DataFrame(
        {
            f"factual {node}": test[node],
            f"factual {sink}": test[sink],
            f"counterfactual {sink}": cf[sink],
            "ground truth": cf_true[sink],
        }
    ).head(8)
    print(rows.to_string(float_format="{:.3f}".format))
    rmse = {v: float(np.sqrt(((cf[v] - cf_true[v]) ** 2).mean())) for v in truth.graph.nodes}
    print("counterfactual RMSE vs ground truth:", {k: round(v, 4) for k, v in rmse.items()})

    ate = scm.ate(sink, {node: hi}, {node: lo}, num_samples=20_000, seed=0)
    ate_true = truth.ate(sink, {node: hi}, {node: lo})
    print(f"\n== ATE of {node}: {lo:.2f} -> {hi:.2f} on {sink}: {ate:.3f} (truth {ate_true:.3f})")

    axes = plot_counterfactuals(
        test, cf, truth=cf_true, variables=[sink], title=f"do({node}={mid:.2f}) on {truth.name}"
    )
    path = out / "counterfactuals.png"
    axes[0].figure.savefig(path, dpi=110)
    scm.save(out / "model.pt")
    (out / "results.json").write_text(
        json.dumps({"scm": truth.name, "cf_rmse": rmse, "ate": ate, "ate_true": ate_true}, indent=2)
        + "\n"
    )
    print(f"\nwrote {path}, {out / 'model.pt'} and {out / 'results.json'}")


# ---------------------------------------------------------------- parser
MECHANISMS_HELP = (
    "default (Auto.light(), as in Python), auto (the full selection), flexible "
    "(Auto.flexible(): splines for non-additive noise), maf, nsf, anm, lsnm, pnl, linear, "
    "bernoulli or categorical"
)
DEVICE_HELP = "auto (CUDA when present, the default), cpu or cuda"


def _query_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="answer with N posterior draws (per row) and print mean, sd and HDI",
    )
    p.add_argument(
        "--hdi", type=float, default=0.9, help="probability of the summary's HDI (default 0.9)"
    )
    p.add_argument(
        "--fit-uncertainty",
        choices=("parameters", "mechanisms", "none"),
        default="parameters",
        help="average over near-tied mechanism choices and the regressions' parameter "
        "posterior (default), over the near-ties only, or use the chosen model alone (a saved "
        "model has no training rows for 'bootstrap')",
    )


def _devices_option(p: argparse.ArgumentParser, units: str) -> None:
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        metavar="N",
        help=f"train on N processes (GPUs with --device cuda) with DDP, each taking "
        f"--batch-size {units} a step; under torchrun leave it out",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pyrocausal`` command."""
    parser = argparse.ArgumentParser(
        prog="pyrocausal", description="Causal generative models with Pyro and Zuko flows."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, seed: bool = True) -> None:
        p.add_argument("--device", default="auto", help=DEVICE_HELP)
        if seed:
            p.add_argument("--seed", type=int, default=None, help="random seed")

    p = sub.add_parser("demo", help="the main job: fit, intervene and imagine on built-in data")
    p.add_argument("--scm", default="triangle_nonlinear", help="built-in SCM (see `scms`)")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--mechanisms", default="default", help=MECHANISMS_HELP)
    p.add_argument("--out", default="out/demo", help="folder for the plot and the model")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", help="fit an SCM to a CSV file")
    p.add_argument("data", help="CSV with one numeric column per node")
    p.add_argument(
        "--graph",
        required=True,
        help="YAML or JSON file: node -> list of parents, or the keys parents / latent / "
        "mechanisms (see read_graph)",
    )
    p.add_argument("-o", "--output", default="model.pt")
    p.add_argument("--mechanisms", default="default", help=MECHANISMS_HELP)
    p.add_argument(
        "--mechanism",
        action="append",
        metavar="NODE=NAME",
        help="one node's mechanism (e.g. treated=bernoulli); repeatable; the others get "
        "--mechanisms",
    )
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _devices_option(p, "rows")
    common(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("sample", help="observational samples from a saved model")
    p.add_argument("model")
    p.add_argument("-n", "--num", type=int, default=1000)
    p.add_argument("-o", "--output", help="CSV file (default: print)")
    common(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("do", help="interventional samples and summary")
    p.add_argument("model")
    p.add_argument("--set", action="append", required=True, metavar="NODE=VALUE")
    p.add_argument("-n", "--num", type=int, default=1000)
    p.add_argument("-o", "--output", help="CSV file for the samples")
    _query_options(p)
    common(p)
    p.set_defaults(func=cmd_do)

    p = sub.add_parser("counterfactual", help="counterfactuals of factual rows")
    p.add_argument("model")
    p.add_argument("--factual", required=True, help="CSV of factual rows (empty = unobserved)")
    p.add_argument("--set", action="append", required=True, metavar="NODE=VALUE")
    p.add_argument("-o", "--output", help="CSV file (default: print)")
    _query_options(p)
    p.add_argument(
        "--rho",
        type=float,
        nargs="+",
        metavar="RHO",
        help="a latent confounder's sensitivity range: LOW HIGH (or one value); see README, "
        "'Latent confounders'",
    )
    common(p)
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser("ate", help="average treatment effect")
    p.add_argument("model")
    p.add_argument("--target", required=True)
    p.add_argument("--treatment", action="append", required=True, metavar="NODE=VALUE")
    p.add_argument("--control", action="append", required=True, metavar="NODE=VALUE")
    p.add_argument("-n", "--num", type=int, default=10_000)
    common(p)
    p.set_defaults(func=cmd_ate)

    p = sub.add_parser("check", help="evaluation report of a fitted SCM on held-out rows")
    p.add_argument("model", help="a model saved by `fit`")
    p.add_argument("--data", required=True, help="CSV of held-out rows, one column per node")
    p.add_argument("--out", default=None, help="folder for evaluation.csv and evaluation.png")
    p.add_argument("-n", "--num", type=int, default=2000, help="model draws (default 2000)")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the tests (default 0.05)")
    p.add_argument("--no-falsify", action="store_true", help="skip the graph falsification")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("generate", help="write data of a built-in SCM to CSV")
    p.add_argument("scm")
    p.add_argument("-n", "--num", type=int, default=5000)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--graph-output", help="also write the graph as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("scms", help="list the built-in SCMs")
    p.set_defaults(func=cmd_scms)

    p = sub.add_parser("train", help="train a causal representation model on images")
    p.add_argument(
        "model", choices=["icm-vae", "scm-vae", "beta-vae", "cvae", "causal-diffae", "diffae"]
    )
    p.add_argument("--dataset", default="pendulum", choices=["pendulum", "flow", "morpho"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--networks", default=None, help="conv (the VAEs' default) or paper-mlp (VAEs only)"
    )
    p.add_argument(
        "--spike-rollback",
        type=float,
        default=1.5,
        help="undo an epoch whose loss jumps by this factor and halve the rate (0: off)",
    )
    p.add_argument("--missing-labels", type=float, default=0.0, help="share of units unlabelled")
    p.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        help="share of units labelled (weak supervision; overrides --missing-labels)",
    )
    p.add_argument("--latent-dim", type=int, default=4, help="size of each factor's block")
    p.add_argument(
        "--p-uncond", type=float, default=None, help="diffusion models: null-condition rate"
    )
    p.add_argument(
        "--num-inference-steps",
        type=int,
        default=None,
        help="diffusion models: default DDIM steps of the queries",
    )
    p.add_argument(
        "--abduction",
        choices=["latent", "noise"],
        default=None,
        help="what the encoder infers: the latent blocks (ICM-VAE's default) or the noise",
    )
    p.add_argument("--train-size", type=int, default=None, help="use a subset of the split")
    p.add_argument("--out", default=None, help="output folder (default out/<model>-<dataset>)")
    p.add_argument("--resume", action="store_true", help="resume from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    _devices_option(p, "images")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics and image grids of a trained model")
    p.add_argument("checkpoint", help="model.pt or checkpoint.pt written by `train`")
    p.add_argument("--out", default=None, help="output folder (default next to the checkpoint)")
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--oracle", default=None, help="a saved oracle (default: train one)")
    p.add_argument("--oracle-size", type=int, default=8192, help="renders to train the oracle")
    p.add_argument("--oracle-epochs", type=int, default=10)
    p.add_argument(
        "--num-inference-steps", type=int, default=None, help="diffusion models: DDIM steps"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrocausal`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        print(f"pyrocausal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
