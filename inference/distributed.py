"""Data-parallel training on several processes or GPUs, on ``torch.distributed`` (DDP).

The trainers (:class:`~pyrocausal.inference.SVITrainer`, :func:`~pyrocausal.inference.train_mle`
and through them ``SCM.fit`` and :func:`~pyrocausal.inference.train_crl`) take
``strategy="ddp"`` and ``devices=N``. Each process is a *replica*: it holds the whole model,
sees its shard of every epoch's rows, and
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients, so every replica
takes the same optimizer step. Two ways in:

* ``devices=N`` (``N >= 2``) from an ordinary Python process: :func:`launch` spawns ``N``
  processes (``gloo`` on CPU, ``nccl`` on CUDA, one GPU each), runs the fit in them and hands
  rank 0's result back, so the caller's model ends up trained as after a one-process fit.
* ``strategy="ddp"`` under a launcher that starts the processes itself (``torchrun
  --nproc-per-node N ...``): each process joins the group the launcher describes in its
  environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) and trains its replica in place.

What the trainers do as replicas (the Pyro-specific part in ``PITFALLS.md``):

* every replica draws the same permutation of the rows from the same seeded generator and takes
  the rows ``rank, rank + N, ...`` of it (:func:`shard`, the rule of torch's
  ``DistributedSampler`` with the trainer's own generator), so global step ``k`` sees the rows a
  one-process fit with an ``N`` times larger batch sees at its step ``k``;
* the parameters live in the modules, never in Pyro's global parameter store (the ELBO is
  wrapped as a module for DDP, and ``module_local_params`` is on while replicas train);
  initial weights agree (DDP starts every replica from rank 0's); the Monte-Carlo draws of an
  ELBO are seeded ``seed + rank``, so replicas draw independent noise;
* losses are summed over the replicas before any decision (the NaN stop, the epoch loss, early
  stopping, rollbacks), so every replica decides alike: a NaN on one replica raises
  :class:`~pyrocausal.inference.errors.TrainingDivergedError` on all of them, no hang;
* only rank 0 shows progress bars and writes checkpoints.

Example:
    >>> from pyrocausal.inference.distributed import launch, shard
    >>> shard(torch.arange(5), rank=1, size=2)    # padded by wrapping round, as DDP's sampler
    tensor([1, 3, 0])
    >>> launch(torch.add, torch.ones(2), 1.0, devices=1)    # one process: runs here
    tensor([2., 2.])
"""

from __future__ import annotations

__all__ = [
    "STRATEGIES",
    "Replica",
    "agree",
    "all_sum",
    "gather",
    "is_main_process",
    "join",
    "launch",
    "local_device",
    "processes",
    "shard",
    "wrap",
]

import os
import socket
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pyro
import torch
import torch.distributed as dist
from torch import Tensor, nn

from pyrocausal.inference.devices import resolve_device

#: Accepted values of the trainers' ``strategy`` argument (``None``: one process).
STRATEGIES = ("ddp",)
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class Replica(NamedTuple):
    """This process's place in the group: ``rank`` among ``size`` replicas."""

    rank: int
    size: int


def processes(strategy: str | None, devices: int | None) -> int:
    """How many processes a fit with ``strategy`` and ``devices`` asks this call to start.

    ``1``: train here without DDP (``devices`` ``None`` or 1, no strategy). ``N >= 2``:
    spawn ``N`` replicas with :func:`launch`. ``0``: this process already is a replica (a
    group started by :func:`launch` or ``torchrun``): train in place with DDP.

    Raises:
        ValueError: an unknown strategy, fewer than one device, ``strategy="ddp"`` without
            ``devices`` and without a launcher, or ``devices`` other than the launcher's
            number of processes.

    Example:
        >>> processes(None, None), processes("ddp", 2), processes(None, 4)
        (1, 2, 4)
    """
    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not known; choose one of {STRATEGIES} or None")
    if devices is not None and (isinstance(devices, bool) or int(devices) < 1):
        raise ValueError(f"devices must be a positive number of processes, got {devices!r}")
    group = _group_size()
    if group is not None and (strategy is not None or (devices or 1) > 1):
        if devices is not None and int(devices) != group:
            raise ValueError(
                f"devices={devices} but this process is one of {group} started by a launcher "
                "(torchrun); leave devices out or make it match --nproc-per-node"
            )
        return 0
    if devices is None:
        if strategy is not None:
            raise ValueError(
                f"strategy={strategy!r} needs devices=N, or a launcher that starts the "
                "processes and sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun)"
            )
        return 1
    return int(devices)


def _group_size() -> int | None:
    """The size of the group this process belongs to (initialized or described by a launcher)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    if all(v in os.environ for v in _LAUNCHER_VARIABLES):
        return int(os.environ["WORLD_SIZE"])
    return None


def join(device: torch.device) -> Replica:
    """Join the process group (once; from the launcher's environment) and return this replica.

    The backend is ``nccl`` for CUDA and ``gloo`` otherwise; on CUDA the process's current
    device becomes ``cuda:LOCAL_RANK``.
    """
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Replica(dist.get_rank(), dist.get_world_size())


def is_main_process() -> bool:
    """Whether this process writes files and shows progress: rank 0, or no group at all."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", 0)) == 0


def local_device(device: str | torch.device | None) -> torch.device:
    """This replica's device: ``cuda:LOCAL_RANK`` for a CUDA device, else ``device`` itself.

    Example:
        >>> local_device("cpu")
        device(type='cpu')
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dev.index or 0)))
    return dev


def shard(order: Tensor, rank: int, size: int) -> Tensor:
    """Replica ``rank``'s share of a permutation: ``order[rank::size]``, padded by wrapping.

    The rule of :class:`torch.utils.data.DistributedSampler` (``drop_last=False``), applied
    to a permutation the trainer draws itself: every replica gets ``ceil(n / size)`` rows, and
    the replicas' ``k``-th batches together are the rows ``k * size * batch`` onwards.
    """
    n = order.numel()
    per_replica = -(-n // size)
    padding = per_replica * size - n
    if padding:
        order = torch.cat([order, order.repeat(-(-padding // n))[:padding]])
    return order[rank::size]


def wrap(module: nn.Module, device: torch.device, *, static: bool = False) -> nn.Module:
    """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel`: call the wrapper in
    place of the module and its backward pass averages the gradients across replicas.

    Parameters that a step leaves out of the loss (a root node's context weights, a latent
    block's read-out on a batch without labels) get no gradient on any replica. ``static``:
    the same parameters enter every step (DDP's ``static_graph``, found out on the first);
    otherwise DDP looks for the unused ones every step (``find_unused_parameters``).
    """
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    if static:
        return DistributedDataParallel(module, device_ids=ids, static_graph=True)
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def all_sum(values: Tensor) -> Tensor:
    """The sum of ``values`` over the replicas (a new tensor; every replica gets the same)."""
    total = values.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def agree(value: Any) -> Any:
    """Rank 0's ``value`` on every replica (for choices each process would make alone, such as
    a seed drawn when none was given)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every replica's ``value``, in rank order, on every replica."""
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


# ---------------------------------------------------------------------- launcher
def launch(
    fn: Callable[..., Any],
    *args: Any,
    devices: int,
    device: str | torch.device = "cpu",
    timeout: float = 1800.0,
) -> Any:
    """Run ``fn(*args)`` in ``devices`` spawned processes that form a group; return rank 0's
    result.

    Each process joins the group (``gloo`` on CPU, ``nccl`` with one GPU per process on
    CUDA), gets the caller's Pyro settings (validation) and its share of the caller's CPU
    threads, and calls ``fn(*args)``; ``fn`` and ``args`` must be picklable (module-level
    functions; the processes are spawned, not forked). An exception raised by ``fn`` is
    raised here with its own type, rank 0's first (a
    :class:`~pyrocausal.inference.errors.TrainingDivergedError` stays one); when one process
    fails, torch stops the others. ``devices=1`` calls ``fn`` here.

    Arguments:
        fn: What every process runs.
        *args: Its arguments (sent to every process).
        devices: Number of processes.
        device: ``"cpu"`` or ``"cuda"`` (then ``devices`` GPUs must be visible).
        timeout: Seconds a collective may wait for the other processes before failing.
    """
    if devices == 1:
        return fn(*args)
    dev = resolve_device(device)
    if dev.type == "cuda" and devices > torch.cuda.device_count():
        raise ValueError(
            f"devices={devices} GPUs were asked for but torch sees {torch.cuda.device_count()}"
        )
    threads = max(1, torch.get_num_threads() // devices) if dev.type == "cpu" else None
    with tempfile.TemporaryDirectory(prefix="pyrocausal-ddp-") as tmp:
        # The call goes through a file that every process memory-maps: no tensor is pickled
        # through a pipe (torch's shared-memory hand-over is not available everywhere).
        torch.save((fn, args), Path(tmp) / "call.pt")
        spec = (devices, _free_port(), dev.type, timeout, tmp, pyro.settings.get(), threads)
        try:
            torch.multiprocessing.start_processes(
                _replica_main, args=(spec,), nprocs=devices, start_method="spawn"
            )
        except Exception as failure:
            errors = sorted(Path(tmp).glob("error-*.pt"))  # rank 0's first
            if errors:
                raise torch.load(errors[0], weights_only=False) from failure
            raise
        return torch.load(Path(tmp) / "result.pt", weights_only=False)


def _replica_main(rank: int, spec: tuple) -> None:
    size, port, device_type, timeout, tmp, settings, threads = spec
    fn, args = torch.load(Path(tmp) / "call.pt", mmap=True, weights_only=False)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(size),
    )  # fmt: skip
    pyro.settings.set(**settings)
    if threads is not None:
        torch.set_num_threads(threads)
    if device_type == "cuda":
        torch.cuda.set_device(rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=size, timeout=timedelta(seconds=timeout))
    try:
        result = fn(*args)
        if rank == 0:
            torch.save(result, Path(tmp) / "result.pt")
    except BaseException as error:
        try:
            torch.save(error, Path(tmp) / f"error-{rank:04d}.pt")
        except Exception:  # an exception that does not pickle: torch reports its traceback
            pass
        raise
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
