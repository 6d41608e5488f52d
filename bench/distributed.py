"""Throughput of data-parallel training (DDP) on 1, 2, ... processes or GPUs.

Two workloads, each trained with the library's own entry points:

* ``scm``: ``SCM.fit`` (all-MAF mechanisms, no early stopping) on rows of a built-in SCM,
  for ``--epochs`` and for three times as many; rows per second = the extra epochs' rows / the
  extra seconds of the fit loop (rank 0's ``History.seconds``), which leaves out what does not
  grow with the epochs (process start-up, data hand-over, first-step set-up; the wall time of
  the longer fit is reported apart);
* ``crl``: a causal representation model (SCM-VAE, conv networks) under ``SVITrainer`` on
  random images of the data sets' shape; images per second = units per epoch / median epoch
  seconds after the first epoch.

Every process takes ``--batch`` units a step (weak scaling: N processes step on N times the
batch, as DDP is used); scaling efficiency = throughput(N) / (N x throughput(1)). On a CPU each
process gets one thread (``torch.set_num_threads(1)``), so N processes use N cores. The
control: N processes each running a one-process fit at the same time (no gradient exchange);
DDP / independent is the share of that ceiling DDP keeps, which separates the cost of the
exchange from a machine that cannot run N processes at full speed (shared cores).

Run (CPU, a few minutes at most):
    .venv/bin/python bench/distributed.py --devices 1,2 --out bench/results/distributed
On a machine with GPUs (one process per GPU, NCCL):
    python bench/distributed.py --device cuda --devices 1,2,4 --rows 400000 --images 20000 \\
        --batch 4096 --crl-batch 256 --out bench/results/distributed_cuda
Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from pyrocausal.datasets import load_scm
from pyrocausal.inference.svi import SVITrainer
from pyrocausal.models import SCM
from pyrocausal.models.scm_vae import SCMVAE

GRAPH = {"a": [], "b": ["a"], "c": ["a", "b"]}


def bench_scm(args: argparse.Namespace, devices: int) -> dict:
    truth = load_scm(args.scm)
    df = truth.sample(args.rows, seed=0)
    seconds, walls, losses = [], [], []
    for epochs in (args.epochs, 3 * args.epochs):  # the difference leaves out fixed costs
        scm = SCM(truth.graph, mechanisms="maf")
        start = time.perf_counter()
        history = scm.fit(df, epochs=epochs, batch_size=args.batch, device=args.device,
                          progress=False, seed=0, val_fraction=0.0, patience=None,
                          devices=devices)  # fmt: skip
        walls.append(time.perf_counter() - start)
        seconds.append(history.seconds)
        losses.append(history.loss[-1])
    return {
        "workload": "scm",
        "devices": devices,
        "rows_per_s": 2 * args.epochs * args.rows / (seconds[1] - seconds[0]),
        "rows_per_s_whole_fit": 3 * args.epochs * args.rows / seconds[1],
        "train_seconds": seconds,
        "wall_seconds": walls[1],
        "final_loss": losses[1],
    }


def bench_crl(args: argparse.Namespace, devices: int) -> dict:
    torch.manual_seed(0)
    shape = (3, args.image_size, args.image_size)
    model = SCMVAE(GRAPH, shape, latent_dim=4, networks="conv")
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(args.images, *shape, generator=g), torch.randn(args.images, 3, generator=g))
    trainer = SVITrainer(model, lr=1e-3, device=args.device, progress=False, devices=devices)
    start = time.perf_counter()
    history = trainer.fit(data, args.crl_epochs, batch_size=args.crl_batch)
    wall = time.perf_counter() - start
    seconds = [r["seconds"] for r in history.records[1:]] or [history.records[0]["seconds"]]
    return {
        "workload": "crl",
        "devices": devices,
        "images_per_s": args.images / statistics.median(seconds),
        "epoch_seconds": seconds,
        "wall_seconds": wall,
        "final_loss": history.loss[-1],
    }


def _independent(args: argparse.Namespace, workload: str) -> list[dict]:
    """In each of N processes at once, a one-process fit: the throughput N processes get on
    this machine without exchanging gradients (the control of the DDP figure)."""
    from pyrocausal.inference.distributed import gather

    return gather(RUNS[workload](args, 1))


RUNS = {"scm": bench_scm, "crl": bench_crl}


def table(results: list[dict]) -> str:
    lines = [
        "| workload | processes | DDP throughput | per process | scaling efficiency "
        "| N independent fits at once | DDP / independent |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        key = "rows_per_s" if r["workload"] == "scm" else "images_per_s"
        unit = "rows/s" if r["workload"] == "scm" else "images/s"
        base = next(b[key] for b in results if b["workload"] == r["workload"] and b["devices"] == 1)
        efficiency = r[key] / (r["devices"] * base)
        free = r.get("independent_total")
        control = f"{free:,.0f} {unit} | {r[key] / free:.2f}" if free else "– | –"
        lines.append(
            f"| {r['workload']} | {r['devices']} | {r[key]:,.0f} {unit} | "
            f"{r[key] / r['devices']:,.0f} | {efficiency:.2f} | {control} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per process)")
    parser.add_argument("--devices", default="1,2", help="comma-separated process counts")
    parser.add_argument("--workloads", default="scm,crl")
    parser.add_argument("--scm", default="triangle_nonlinear", help="built-in SCM (rows)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=512, help="SCM rows per process a step")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--crl-epochs", type=int, default=3)
    parser.add_argument("--crl-batch", type=int, default=64, help="images per process a step")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the N independent one-process fits run at once")  # fmt: skip
    parser.add_argument("--out", default="bench/results/distributed")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(1)  # one core per process, the 1-process run included
    counts = [int(d) for d in args.devices.split(",")]
    results = []
    for workload in args.workloads.split(","):
        for devices in counts:
            result = RUNS[workload](args, devices)
            if devices > 1 and not args.no_control:
                from pyrocausal.inference.distributed import launch

                alone = launch(_independent, args, workload, devices=devices, device=args.device)
                key = "rows_per_s" if workload == "scm" else "images_per_s"
                result["independent"] = [a[key] for a in alone]
                result["independent_total"] = sum(result["independent"])
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "epoch_seconds"}))
    cuda = torch.cuda.is_available() and args.device == "cuda"
    meta = {
        "command": "python bench/distributed.py " + " ".join(argv or sys.argv[1:]),
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "args": vars(args),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    md = f"# Data-parallel throughput\n\n`{meta['command']}`\n\n{table(results)}\n"
    md += (
        f"\n{meta['device']}, {meta['cpu_count']} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in meta['load_average'])} at the end; "
        f"torch {torch.__version__}.\n"
    )
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
