"""GPU check: CausalDiffAE on Morpho digits at a real size, plus the core SCM, on CUDA.

One script for a few minutes of a lent GPU (run it as soon as one is lent):

1. CausalDiffAE on the whole Morpho training split (10,000 images) at a real size (UNet
   64-128-128, two residual blocks per level, attention at 14x14 and 7x7: about 9M
   parameters; the reference's 35M model needs about 150 epochs on 5 GPUs), trained for a
   wall-clock budget (``--train-minutes``, default 4, so that the whole script stays under
   8 minutes) with bf16 autocast and ``torch.compile`` of the UNet where they help (each is
   timed on and off for a few steps first, and kept only if faster);
2. images per second for training and for counterfactual generation (DDIM inversion +
   decoding, ``--steps`` respaced steps), on the GPU and on the same machine's CPU;
3. a counterfactual evaluation of the trained model against the rendered truth (oracle MAE of
   thickness and intensity under do(thickness), image MSE);
4. the core: ``pc.SCM(...).fit`` on 20,000 rows of a built-in SCM and a 100,000-row
   counterfactual, on CUDA (and the counterfactual on CPU for comparison).

Writes ``--out`` (default ``bench/results/gpu_check.json``) and prints each figure as it is
measured. ``--smoke`` runs every step on the CPU at toy sizes (about a minute), to check the
script before a GPU is lent.

Usage:
    python bench/gpu_check.py --device cuda                 # on the GPU machine
    python bench/gpu_check.py --smoke --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

import pyrocausal as pc
from pyrocausal import metrics as M
from pyrocausal.datasets import load_scm
from pyrocausal.inference.crl import _float_images, _root_interventions, load_image_split
from pyrocausal.inference.svi import SVITrainer
from pyrocausal.models.causal_diffae import CausalDiffAE
from pyrocausal.models.networks import count_parameters

REAL = dict(unet_channels=(64, 128, 128), layers_per_block=2, attention=True, latent_dim=16)
SMOKE = dict(unet_channels=(16, 16, 16), layers_per_block=1, attention=False, latent_dim=4)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def build(dataset: Any, size: dict[str, Any], device: torch.device, steps: int) -> CausalDiffAE:
    torch.manual_seed(0)
    model = CausalDiffAE.from_dataset(dataset, num_inference_steps=steps, **size)
    return model.to(device)


def train_rate(
    model: CausalDiffAE,
    data: Any,
    device: torch.device,
    steps: int,
    batch: int,
    bf16: bool,
) -> float:
    """Training images per second over ``steps`` steps (after one warm-up step)."""
    trainer = SVITrainer(model, lr=2e-4, device=device, progress=False)
    images, labels = data.images[: batch * (steps + 1)], data.labels[: batch * (steps + 1)]
    x = _float_images(images).to(device)
    y = labels.to(device)
    model.train()

    def step(i: int) -> None:
        with autocast(device, bf16):
            loss = trainer.batch_loss(
                [x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]], {}
            )
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()

    step(0)
    sync(device)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    sync(device)
    model.eval()
    return steps * batch / (time.perf_counter() - start)


def cf_rate(
    model: CausalDiffAE, images: torch.Tensor, device: torch.device, steps: int, bf16: bool
) -> float:
    """Counterfactual images per second (abduction, DDIM inversion, do, DDIM decoding)."""
    x = images.to(device)
    with autocast(device, bf16):
        model.counterfactual(x[:2], {"thickness": 3.0}, num_inference_steps=2)
    sync(device)
    start = time.perf_counter()
    with autocast(device, bf16):
        model.counterfactual(x, {"thickness": 3.0}, num_inference_steps=steps)
    sync(device)
    return len(x) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--train-minutes", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of the queries")
    parser.add_argument("--out", default="bench/results/gpu_check.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.train_minutes, args.batch_size, args.steps = "cpu", 0.2, 16, 3
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device; run with --smoke on a CPU", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    size = SMOKE if args.smoke else REAL
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "size": {k: list(v) if isinstance(v, tuple) else v for k, v in size.items()},
        "steps": args.steps,
        "batch_size": args.batch_size,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def record(key: str, value: Any) -> None:
        report[key] = value
        print(f"{key}: {value}", flush=True)
        out.write_text(json.dumps(report, indent=1, default=float))

    total_start = time.perf_counter()
    options = {"n_train": 512, "n_test": 64} if args.smoke else {}
    train = load_image_split("morpho", "train", progress=False, options=options)
    test = load_image_split("morpho", "test", 256 if not args.smoke else 32, 0, progress=False,
                            options=options)  # fmt: skip
    ds = train.dataset
    model = build(ds, size, device, args.steps)
    record("parameters", count_parameters(model))

    # 1. Which speed-ups help: bf16 autocast and torch.compile, a few steps each.
    probe = 3 if args.smoke else 20
    rates = {"fp32": train_rate(model, train, device, probe, args.batch_size, False)}
    use_bf16 = device.type == "cuda"
    if use_bf16:
        try:
            rates["bf16"] = train_rate(model, train, device, probe, args.batch_size, True)
            use_bf16 = rates["bf16"] > rates["fp32"]
        except Exception as error:  # a dtype clash inside the program: stay in fp32
            record("bf16_error", repr(error)[:300])
            use_bf16 = False
    use_compile = False
    if device.type == "cuda":
        try:
            model.decoder.unet.compile()
            rates["compiled"] = train_rate(model, train, device, probe, args.batch_size, use_bf16)
            use_compile = rates["compiled"] > max(rates["fp32"], rates.get("bf16", 0.0))
        except Exception as error:  # a compile failure must not cost the GPU slot
            record("compile_error", repr(error)[:300])
        if not use_compile:
            model = build(ds, size, device, args.steps)  # a fresh, uncompiled module
    record("train_images_per_s_probe", rates)
    record("bf16", use_bf16)
    record("compile", use_compile)

    # 2. Training for the wall-clock budget.
    pyro.set_rng_seed(0)
    trainer = SVITrainer(model, lr=2e-4, device=device, progress=False, seed=0)
    budget = 60.0 * args.train_minutes
    start = time.perf_counter()
    with autocast(device, use_bf16):
        trainer.fit(train, 1, batch_size=args.batch_size)
    epoch_s = time.perf_counter() - start
    epochs = max(1, int(budget // epoch_s))
    trainer.schedules = model.default_schedules(epochs)
    with autocast(device, use_bf16):
        trainer.fit(train, epochs, batch_size=args.batch_size)
    train_s = time.perf_counter() - start
    record("epochs", epochs)
    record("train_seconds", train_s)
    record("train_images_per_s", epochs * len(train) / train_s)
    record("final_loss", trainer.history.loss[-1])

    # 3. Counterfactual speed on this device and on the CPU, and quality.
    images = _float_images(test.images)
    record("cf_images_per_s", cf_rate(model, images, device, args.steps, use_bf16))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cpu_model = CausalDiffAE.from_blob(model.to_blob()).eval()
    record("cpu_threads", torch.get_num_threads())
    record(
        "cf_images_per_s_cpu",
        cf_rate(cpu_model, images[:16], torch.device("cpu"), args.steps, False),
    )
    record(
        "train_images_per_s_cpu", train_rate(cpu_model, train, torch.device("cpu"), 2, 16, False)
    )
    oracle = M.train_oracle(ds, n=512 if args.smoke else 8192, epochs=1 if args.smoke else 8,
                            seed=0, device=device, progress=False)  # fmt: skip
    root, values, descendants, gt_factors, gt_images = next(_root_interventions(test, 0))
    with autocast(device, use_bf16):
        cf = model.counterfactual(images.to(device), {root: values}).images.float().cpu()
        recon = model.reconstruct(images.to(device)).images.float().cpu()
    record(
        "counterfactual",
        {
            "effectiveness": M.effectiveness(oracle, cf, gt_factors[[root, *descendants]]),
            "cf_image_mse": M.cf_image_mse(cf, _float_images(gt_images)),
            "reconstruction_mse": M.cf_image_mse(recon, images),
            "no_change_image_mse": M.cf_image_mse(images, _float_images(gt_images)),
        },
    )

    # 4. The core SCM on the same device.
    truth = load_scm("triangle_nonlinear")
    rows = 2000 if args.smoke else 20_000
    data = truth.sample(rows, seed=0)
    scm = pc.SCM(truth.graph)
    start = time.perf_counter()
    scm.fit(data, epochs=5 if args.smoke else 50, batch_size=512, progress=False, seed=0,
            device=str(device))  # fmt: skip
    record("scm_fit_seconds", time.perf_counter() - start)
    big = data.sample(10_000 if args.smoke else 100_000, replace=True, random_state=0)
    node = truth.intervened[0]
    value = truth.intervention_values(node)[1]
    scm.counterfactual(big.head(1000), {node: value})  # warm-up
    sync(device)
    start = time.perf_counter()
    answer = scm.counterfactual(big, {node: value})
    sync(device)
    record("scm_cf_rows", len(big))
    record("scm_cf_seconds", time.perf_counter() - start)
    record("scm_cf_finite", bool(np.isfinite(answer.to_numpy(dtype=float)).all()))
    record("total_seconds", time.perf_counter() - total_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
