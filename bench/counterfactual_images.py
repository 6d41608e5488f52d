"""Benchmark: counterfactual images of CausalDiffAE, its DiffAE ablation and the VAEs.

CausalDiffAE, DiffAE (same networks, no mechanisms), ICM-VAE, SCM-VAE and the
label-conditional VAE are trained by :func:`pyrocausal.inference.crl.train_crl` on Morpho
digits (thickness -> intensity; the default) or on Pendulum (``--dataset pendulum``:
pendulum angle, light angle -> shadow length, shadow position; the 96x96 RGBA renders
box-averaged to ``--image-size`` pixels, 32 by default) with one budget, at label fractions
1.0, 0.5 and 0.1, and scored against the **rendered true counterfactuals** and one oracle (an
anti-causal CNN trained on renders at the same size). Per intervened factor (Morpho:
``do(thickness)``, root with a descendant, and ``do(intensity)``, leaf; Pendulum: the
preset's ``factors``, ``do(pendulum_angle)``, root with two descendants, and
``do(shadow_length)``, a leaf whose three non-descendants must not move, on the CPU, all four
on a GPU):

* effectiveness: oracle MAE of the intervened factor and of its descendants against the true
  counterfactual factors (own units, and normalized by the label scale);
* preservation: oracle MAE of the factors that must not move (non-descendants), and every
  factor's oracle MAE in its own units (``MAE <factor>`` columns);
* image MSE and SSIM against the rendered truth;
* reversibility ``L1(x, f(f(x, do(v)), do(v_factual)))``;
* composition: ``L1(x, f^m(x, do()))`` after m = 1 and 10 null-intervention cycles;
* wall time per 1,000 counterfactual images.

and, for CausalDiffAE at label fraction 1, a curve over the guidance weight ``w``. Two
references on the same interventions: ``no change`` (the factual image) and ``rendered truth``
(the oracle's own error). Writes ``OUT/results.json``, ``OUT/table.md``, ``OUT/grid.png``
(factual | counterfactual | truth per model) and ``OUT/guidance.png`` (a row over w).

CPU budget (``--preset cpu``, the committed results): 3,000 training images, 6 epochs for the
diffusion models (1.2M parameters: UNet 32-64-64, one residual block per level, no
attention, T = 1000) and 15 for the VAEs, 128 test images, 10 DDIM steps (32 images for the
10-cycle composition), one thread, niced; the DiffAE ablation at label fraction 1 only
(``--all-fractions-for-ablation`` for all). About 35 minutes on a shared 2-core machine.
``--preset gpu --device cuda``: the whole training split and 40 epochs (see
``bench/gpu_check.py`` for a timed GPU run).

Pendulum CPU budget (``--dataset pendulum --preset cpu``, the committed
``bench/results/counterfactual_images_pendulum``): 32x32 RGBA, 2,000 training images, 4
epochs for the diffusion models (125 optimizer steps; their loss was still falling) and 10
for the VAEs, 64 test images, 16 for the 10-cycle composition, 10 DDIM steps,
``do(pendulum_angle)`` and ``do(shadow_length)`` only. 32 minutes on one thread of the
shared 2-core machine.

Usage:
    nice -n 10 python bench/counterfactual_images.py --out bench/results/counterfactual_images
    nice -n 10 python bench/counterfactual_images.py --dataset pendulum \
        --out bench/results/counterfactual_images_pendulum
    python bench/counterfactual_images.py --preset smoke --out /tmp/cf-smoke   # a minute
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from pyrocausal import metrics as M
from pyrocausal.inference.crl import _float_images, load_image_split, train_crl
from pyrocausal.inference.devices import resolve_device

DIFFUSION = ("causal-diffae", "diffae")
VAES = ("icm-vae", "scm-vae", "cvae")
MODELS = (*DIFFUSION, *VAES)
# The scored columns of every model row, in the order of table.md.
METRICS = (
    "eff. intervened",
    "eff. intervened (norm.)",
    "eff. descendants (norm.)",
    "preservation (norm.)",
    "CF img MSE",
    "CF img SSIM",
    "reversibility",
    "composition x1",
    "composition x10",
    "s per 1k CF",
)

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(
        train_size=3000, diffusion_epochs=6, vae_epochs=15, test_size=128, cycles_size=32,
        steps=10, oracle_size=4096, oracle_epochs=6, fractions=(1.0, 0.5, 0.1),
        weights=(0.0, 0.5, 1.0, 2.0, 3.0),
    ),
    "gpu": dict(
        train_size=None, diffusion_epochs=40, vae_epochs=40, test_size=1000, cycles_size=256,
        steps=50, oracle_size=8192, oracle_epochs=10, fractions=(1.0, 0.5, 0.1),
        weights=(0.0, 0.5, 1.0, 2.0, 3.0, 5.0),
    ),
    "smoke": dict(
        train_size=256, diffusion_epochs=1, vae_epochs=1, test_size=16, cycles_size=8, steps=2,
        oracle_size=256, oracle_epochs=1, fractions=(1.0,), weights=(0.0, 1.0),
    ),
}  # fmt: skip

#: Pendulum's presets (32x32 RGBA by default). ``factors``: the interventions scored (all
#: four on a GPU; on the CPU the root ``pendulum_angle``, with two descendants, and the leaf
#: ``shadow_length``, with three non-descendants that must not move). The CPU preset is sized
#: for ~40 minutes on one thread of a shared 2-core machine, where a training image costs the
#: diffusion models ~37 ms and a 10-step counterfactual ~0.23 s (3 times Morpho's).
PENDULUM_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(
        PRESETS["cpu"], train_size=2000, diffusion_epochs=4, vae_epochs=10, test_size=64,
        cycles_size=16, factors=("pendulum_angle", "shadow_length"),
    ),
    "gpu": dict(PRESETS["gpu"]),
    "smoke": dict(PRESETS["smoke"], factors=("pendulum_angle", "shadow_length")),
}  # fmt: skip

#: ``--dataset`` -> title of the table.
TITLES = {
    "morpho": "Morpho digits (thickness -> intensity)",
    "pendulum": "Pendulum (pendulum angle, light angle -> shadow length, shadow position)",
}


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> float:
    """Mean SSIM of two image batches in ``[0, 1]`` (uniform ``window`` x ``window``
    window, the constants of Wang et al. 2004 for a data range of 1)."""
    c1, c2 = 0.01**2, 0.03**2
    a, b = a.float(), b.float().to(a.device)
    pad = window // 2

    def mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, window, stride=1, padding=pad, count_include_pad=False)

    mu_a, mu_b = mean(a), mean(b)
    var_a = mean(a * a) - mu_a**2
    var_b = mean(b * b) - mu_b**2
    cov = mean(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(s.mean())


def counterfactual_fn(model: Any, steps: int, w: float | None = None, batch: int = 128) -> Any:
    """``f(images, intervention) -> images`` for the metrics, in batches."""
    diffusion = hasattr(model, "guidance")

    def f(images: torch.Tensor, intervention: dict[str, Any]) -> torch.Tensor:
        parts = []
        for start in range(0, len(images), batch):
            stop = start + batch
            sliced = {
                k: (v[start:stop] if np.ndim(v) else v)
                for k, v in ((k, np.asarray(v)) for k, v in intervention.items())
            }
            kwargs = {"w": w, "num_inference_steps": steps} if diffusion else {}
            parts.append(model.counterfactual(images[start:stop], sliced, **kwargs).images.cpu())
        return torch.cat(parts)

    return f


def interventions(test: Any, seed: int, only: Any = None) -> list[dict[str, Any]]:
    """For every factor (or those in ``only``): values from a seeded permutation of the test
    units, the true counterfactual factors and images, descendants and non-descendants."""
    ds = test.dataset
    factors = test.factors.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    out = []
    for name in ds.graph.nodes:
        if only is not None and name not in only:
            continue
        values = factors[name].to_numpy()[rng.permutation(len(factors))]
        descendants = [d for d in ds.graph.nodes if d in ds.graph.descendants(name)]
        others = [d for d in ds.graph.nodes if d != name and d not in descendants]
        truth = ds.counterfactual_factors(factors, {name: values})
        out.append(
            dict(
                factor=name,
                values=values,
                descendants=descendants,
                others=others,
                truth=truth,
                images=_float_images(ds.render(truth)),
            )
        )
    return out


def score(
    f: Any,
    images: torch.Tensor,
    factors: pd.DataFrame,
    cases: list[dict[str, Any]],
    oracle: Any,
    scale: dict[str, float],
    reversibility: bool = True,
) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        name = case["factor"]
        start = time.perf_counter()
        cf = f(images, {name: case["values"]})
        seconds = time.perf_counter() - start
        read = oracle.predict(cf)
        truth = case["truth"]
        mae = {k: float(np.mean(np.abs(read[k].to_numpy() - truth[k].to_numpy()))) for k in scale}
        row = {
            "intervened": name,
            "eff. intervened": mae[name],
            "eff. intervened (norm.)": mae[name] / scale[name],
            "eff. descendants (norm.)": (
                float(np.mean([mae[d] / scale[d] for d in case["descendants"]]))
                if case["descendants"]
                else float("nan")
            ),
            "preservation (norm.)": (
                float(np.mean([mae[d] / scale[d] for d in case["others"]]))
                if case["others"]
                else float("nan")
            ),
            "CF img MSE": M.cf_image_mse(cf, case["images"]),
            "CF img SSIM": ssim(cf, case["images"]),
            "s per 1k CF": 1000.0 * seconds / len(images),
            **{f"MAE {k}": v for k, v in mae.items()},
        }
        if reversibility:
            row["reversibility"] = M.reversibility(images, f, factors, {name: case["values"]})
        rows.append(row)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="morpho", choices=sorted(TITLES))
    parser.add_argument(
        "--image-size",
        type=int,
        default=32,
        help="Pendulum only: side of the images (a divisor of 96; the renders are box-averaged)",
    )
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--out", help="default: out/bench-counterfactual-images[-pendulum]")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--fractions", nargs="+", type=float, help="override the label fractions")
    parser.add_argument(
        "--all-fractions-for-ablation",
        action="store_true",
        help="train the DiffAE ablation at every label fraction (default: the first only, "
        "which keeps the CPU preset under 40 minutes)",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (all models)")
    parser.add_argument("--latent-dim", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue each model's training from OUT/runs/<model>/checkpoint.pt where it exists "
        "(an interrupted run; a finished model is not trained again)",
    )
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pendulum = args.dataset == "pendulum"
    p = dict((PENDULUM_PRESETS if pendulum else PRESETS)[args.preset])
    options: dict[str, Any] = {"image_size": args.image_size} if pendulum else {}
    fractions = tuple(args.fractions) if args.fractions else p["fractions"]
    device = resolve_device(args.device)
    suffix = "" if args.dataset == "morpho" else f"-{args.dataset}"
    out = Path(args.out or f"out/bench-counterfactual-images{suffix}")
    out.mkdir(parents=True, exist_ok=True)
    bench_start = time.perf_counter()
    log = functools.partial(print, flush=True)  # followable when the output is redirected

    test = load_image_split(
        args.dataset, "test", p["test_size"], args.seed, progress=False, options=options
    )
    ds = test.dataset
    images = _float_images(test.images).to(device)
    factors = test.factors[list(ds.factor_names)].reset_index(drop=True)
    scale = dict(zip(ds.factor_names, np.asarray(ds.label_scale, dtype=float), strict=True))
    cases = interventions(test, args.seed, p.get("factors"))
    oracle_path = out / "oracle.pt"
    if oracle_path.exists():
        oracle = M.Oracle.load(oracle_path)
    else:
        start = time.perf_counter()
        oracle = M.train_oracle(
            ds, n=p["oracle_size"], epochs=p["oracle_epochs"], seed=args.seed, progress=False
        )
        oracle.save(oracle_path)
        log(f"oracle: {time.perf_counter() - start:.0f} s, MAE {oracle.validation_mae}")
    oracle = oracle.to(device)

    rows: list[dict[str, Any]] = []
    for reference, answer in (("no change", None), ("rendered truth", "truth")):
        for case in cases:
            cf = images.cpu() if answer is None else case["images"]
            row = score(
                lambda x, do, cf=cf: cf, images.cpu(), factors, [case], oracle, scale, False
            )
            rows.append({"model": reference, "label fraction": float("nan"), **row[0]})

    examples: dict[str, torch.Tensor] = {}
    curve: list[dict[str, Any]] = []
    for fraction in fractions:
        for name in args.models:
            diffusion = name in DIFFUSION
            if name == "diffae" and fraction != 1.0 and not args.all_fractions_for_ablation:
                continue  # the ablation at label fraction 1 only (as the docstring says)
            run_dir = out / "runs" / f"{name}-labels{fraction:g}"
            kwargs: dict[str, Any] = {"num_inference_steps": p["steps"]} if diffusion else {}
            start = time.perf_counter()
            run = train_crl(
                name,
                args.dataset,
                epochs=p["diffusion_epochs"] if diffusion else p["vae_epochs"],
                lr=args.lr,
                latent_dim=args.latent_dim,
                missing_labels=1.0 - fraction,
                train_size=p["train_size"],
                seed=args.seed,
                device=str(device),
                out_dir=run_dir,
                progress=False,
                dataset_options=options,
                resume=args.resume,
                **kwargs,
            )
            train_seconds = time.perf_counter() - start
            model = run.model.to(device).eval()
            f = counterfactual_fn(model, p["steps"])
            start = time.perf_counter()
            scored = score(f, images, factors, cases, oracle, scale)
            sub = images[: p["cycles_size"]]
            comp = {f"composition x{m}": float(M.composition(sub, f, steps=m)) for m in (1, 10)}
            eval_seconds = time.perf_counter() - start
            for row in scored:
                rows.append(
                    {
                        "model": name,
                        "label fraction": fraction,
                        **row,
                        **comp,
                        "train s": train_seconds,
                        "eval s": eval_seconds,
                        "parameters": run.model.metadata["parameters"],
                        "rollbacks": run.model.metadata["rollbacks"],
                    }
                )
            log(
                f"{name} labels {fraction:g}: train {train_seconds:.0f} s, eval "
                f"{eval_seconds:.0f} s, total {time.perf_counter() - bench_start:.0f} s"
            )
            if fraction == fractions[0]:
                examples[name] = f(images[:6], {cases[0]["factor"]: cases[0]["values"][:6]})
            if name == "causal-diffae" and fraction == 1.0:  # the guidance curve: all labels
                case = cases[0]
                guided = []
                for w in p["weights"]:
                    fw = counterfactual_fn(model, p["steps"], w=w)
                    row = score(fw, images, factors, [case], oracle, scale, False)[0]
                    curve.append({"w": w, **row})
                    guided.append(fw(images[:6], {case["factor"]: case["values"][:6]}))
                save_guidance(images[:6].cpu(), guided, p["weights"], out / "guidance.png")
            (out / "results.json").write_text(
                json.dumps(
                    {
                        "dataset": args.dataset,
                        "dataset_options": options,
                        "preset": p,
                        "args": vars(args),
                        "rows": rows,
                        "guidance": curve,
                    },
                    indent=1,
                    default=float,
                )
            )

    frame = pd.DataFrame(rows)
    total = time.perf_counter() - bench_start
    write_table(frame, pd.DataFrame(curve), p, args, total, out / "table.md", options)
    save_grid(images[:6].cpu(), examples, cases[0]["images"][:6], out / "grid.png")
    log(f"wrote {out}/results.json, table.md, grid.png, guidance.png ({total:.0f} s)")
    return 0


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (numbers to 4 significant digits)."""

    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v)

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([head, rule, *body])


def write_table(
    frame: pd.DataFrame,
    curve: pd.DataFrame,
    p: dict[str, Any],
    args: argparse.Namespace,
    total: float,
    path: Path,
    options: dict[str, Any] | None = None,
) -> None:
    columns = [
        "model",
        "label fraction",
        *METRICS,
        *(c for c in frame.columns if c.startswith("MAE ")),
    ]
    lines = [
        f"# Counterfactual images on {TITLES[args.dataset]}",
        "",
        f"Budget (`--dataset {args.dataset} --preset {args.preset}`): {json.dumps(p)}; "
        f"dataset options {json.dumps(options or {})}; lr {args.lr}, latent_dim "
        f"{args.latent_dim}, seed {args.seed}, device {args.device}, {args.threads} thread(s). "
        f"Total wall time {total / 60:.1f} min.",
        "",
    ]
    for factor, group in frame.groupby("intervened", sort=False):
        lines += [f"## do({factor})", ""]
        shown = group[[c for c in columns if c in group.columns]]
        lines += [markdown(shown), ""]
    if len(curve):
        first = frame["intervened"].iloc[0]
        lines += [f"## Guidance weight (CausalDiffAE, first label fraction, do({first}))", ""]
        keep = ["w", "eff. intervened", "eff. descendants (norm.)", "CF img MSE", "CF img SSIM"]
        lines += [markdown(curve[keep]), ""]
    path.write_text("\n".join(lines))


def _rgb(x: torch.Tensor) -> np.ndarray:
    """Gray ``(N, H, W)`` of one-channel images, RGB ``(N, H, W, 3)`` of RGB(A) ones."""
    x = x.detach().cpu().clamp(0, 1)
    return x[:, 0].numpy() if x.shape[1] < 3 else x[:, :3].permute(0, 2, 3, 1).numpy()


def save_grid(
    images: torch.Tensor, examples: dict[str, torch.Tensor], truth: torch.Tensor, path: Path
) -> None:
    """Rows: units; columns: factual, each model's counterfactual (first factor), truth."""
    from matplotlib.figure import Figure

    panels = [("factual", images), *examples.items(), ("truth", truth)]
    fig = Figure(figsize=(1.1 * len(panels), 1.1 * len(images) + 0.4))
    axes = fig.subplots(len(images), len(panels), squeeze=False)
    for j, (title, panel) in enumerate(panels):
        pix = _rgb(panel)
        for i in range(len(images)):
            axes[i, j].imshow(pix[i], cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_axis_off()
        axes[0, j].set_title(title, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def save_guidance(
    images: torch.Tensor, guided: list[torch.Tensor], weights: Any, path: Path
) -> None:
    from matplotlib.figure import Figure

    panels = [("factual", images), *((f"w={w:g}", g) for w, g in zip(weights, guided))]
    fig = Figure(figsize=(1.1 * len(panels), 1.1 * len(images) + 0.4))
    axes = fig.subplots(len(images), len(panels), squeeze=False)
    for j, (title, panel) in enumerate(panels):
        pix = _rgb(panel)
        for i in range(len(images)):
            axes[i, j].imshow(pix[i], cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_axis_off()
        axes[0, j].set_title(title, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
