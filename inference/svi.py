"""Stochastic variational inference with exact checkpoints, annealing and a NaN stop.

:class:`SVITrainer` minimizes an ELBO's ``differentiable_loss`` (default
:class:`pyro.infer.TraceMeanField_ELBO`: analytic KL terms where they exist) with a torch
optimizer over ``module.parameters()``; the module needs ``model`` and ``guide`` methods that
take the batch's tensors as positional arguments and the scheduled weights as keywords.

* Schedules (:class:`Constant`, :class:`LinearWarmup`) give a keyword weight per epoch; a
  warm-up starts at ``final / warmup_epochs``, never at zero, so epoch 0 already has a KL term.
* Checkpoints hold the module, the optimizer, the epoch, the history and every random state
  (torch, CUDA, NumPy, Python and the trainer's shuffling generator), so a resumed fit
  continues bit for bit where the saved one stopped (on CPU).
* A non-finite loss raises :class:`~pyrocausal.inference.errors.TrainingDivergedError` before
  the optimizer step, so the parameters keep their last finite values.
* ``strategy="ddp"``, ``devices=N``: data-parallel training on ``N`` processes or GPUs with
  DDP (:mod:`~pyrocausal.inference.distributed`); the loss is summed over the replicas
  before the NaN stop, so all of them stop together.

Example:
    >>> import pyro, pyro.distributions as dist, torch
    >>> from torch import nn
    >>> class Toy(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.loc = nn.Parameter(torch.zeros(()))
    ...     def model(self, x):
    ...         with pyro.plate("data", len(x)):
    ...             pyro.sample("x", dist.Normal(self.loc, 1.0), obs=x)
    ...     def guide(self, x):
    ...         pass
    >>> trainer = SVITrainer(Toy(), lr=0.1, device="cpu", progress=False)
    >>> history = trainer.fit((torch.full((64,), 3.0),), epochs=100, batch_size=64)
    >>> abs(trainer.module.loc.item() - 3.0) < 0.3
    True
"""

from __future__ import annotations

__all__ = ["Constant", "LinearWarmup", "SVIHistory", "SVITrainer"]

import copy
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyro
import torch
from pyro.infer import ELBO, TraceMeanField_ELBO
from torch import Tensor, nn

from pyrocausal.inference import distributed
from pyrocausal.inference.devices import resolve_device
from pyrocausal.inference.errors import TrainingDivergedError
from pyrocausal.progress import progress_bar, update_postfix

_FORMAT = "pyrocausal.svi-checkpoint"
_VERSION = 1


@dataclass(frozen=True)
class Constant:
    """The same weight every epoch."""

    value: float

    def __call__(self, epoch: int) -> float:
        return float(self.value)


@dataclass(frozen=True)
class LinearWarmup:
    """``final * min(1, (epoch + 1) / warmup_epochs)``: linear from ``final / warmup_epochs``
    at epoch 0 to ``final`` at epoch ``warmup_epochs - 1``, then constant.

    Example:
        >>> [round(LinearWarmup(1.0, 4)(e), 2) for e in range(6)]
        [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """

    final: float
    warmup_epochs: int

    def __call__(self, epoch: int) -> float:
        return float(self.final) * min(1.0, (epoch + 1) / max(1, int(self.warmup_epochs)))


@dataclass
class SVIHistory:
    """One record per completed epoch: ``epoch``, ``loss`` (mean per unit), ``seconds``, the
    scheduled weights and whatever the evaluation callback returned."""

    records: list[dict[str, float]] = field(default_factory=list)
    #: The epoch whose weights the module was left with (``keep_best``), else ``None``.
    best_epoch: int | None = None

    @property
    def loss(self) -> list[float]:
        return [r["loss"] for r in self.records]

    def to_frame(self) -> pd.DataFrame:
        """The history as a DataFrame indexed by epoch."""
        return pd.DataFrame(self.records).set_index("epoch") if self.records else pd.DataFrame()

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        """A summary: epochs, the final and lowest loss, the kept epoch, the total time.

        Example:
            >>> SVIHistory([{"epoch": 1, "loss": 9.0, "seconds": 0.5},
            ...             {"epoch": 2, "loss": 7.25, "seconds": 1.0}], best_epoch=2)
            SVIHistory(2 epochs, final loss 7.25, lowest 7.25 at epoch 2, kept epoch 2, 1.5 s)
        """
        if not self.records:
            return "SVIHistory(0 epochs)"
        losses = self.loss
        low = min(range(len(losses)), key=losses.__getitem__)
        parts = [
            f"{len(self.records)} epoch{'s' * (len(self.records) != 1)}",
            f"final loss {losses[-1]:.4g}",
            f"lowest {losses[low]:.4g} at epoch {self.records[low].get('epoch', low + 1)}",
        ]
        if self.best_epoch is not None:
            parts.append(f"kept epoch {self.best_epoch}")
        if all("seconds" in r for r in self.records):  # each epoch's time
            parts.append(f"{sum(r['seconds'] for r in self.records):.3g} s")
        return f"SVIHistory({', '.join(parts)})"

    def plot(self, ax: Any = None) -> Any:
        """Plot the training loss; returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3))[1]
        ax.plot([r["epoch"] for r in self.records], self.loss)
        ax.set_xlabel("epoch")
        ax.set_ylabel("negative ELBO per unit")
        return ax


class SVITrainer:
    """Minibatch SVI for a module with ``model`` and ``guide`` methods.

    Arguments:
        module: An :class:`torch.nn.Module` with ``model(*batch, **weights)`` and
            ``guide(*batch, **weights)``. It is moved to ``device``.
        lr: Learning rate.
        optimizer: Optimizer constructor ``(params, lr=...) -> torch.optim.Optimizer``.
        loss: A Pyro ELBO (default :class:`~pyro.infer.TraceMeanField_ELBO`).
        schedules: ``{keyword: schedule(epoch) -> float}``; each epoch's values are passed to
            ``model`` and ``guide`` as keyword arguments (e.g. ``kl_weight``).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        seed: Seeds every random generator when a fit starts from epoch 0, and the trainer's
            shuffling generator.
        grad_clip: Clip the global gradient norm to this value (``None``: no clipping).
        keep_best: When a fit completes, leave the module with the weights of the epoch of
            lowest mean loss among those trained at the final scheduled weights (the loss
            is comparable across them), not of the last one. A VAE's loss can spike late
            in training (an encoder gradient blow-up): the full Pendulum run at lr 2e-3
            ended SCM-VAE's 20 epochs on one (epoch loss 8,029 against 1,383 two epochs
            before), and its counterfactuals with it.
        spike_rollback: Undo an epoch whose mean loss jumps above the last kept epoch's by
            more than this factor (``loss > last + (factor - 1) |last|``): the module and the
            optimizer get back the weights and state (Adam's moments) they started the epoch
            with, and the learning rate is multiplied by ``spike_lr_factor``; the epoch still
            counts towards ``epochs`` and its record says ``rolled_back``. ``None``: no
            rollback. Without it, 6 of 7 Flow fits at lr 2e-3 had such an epoch (SCM-VAE
            seed 1: 9.6 million against 1,909) and ended on a higher plateau than before it
            (ICM-VAE: 2,425 against 2,080). An earlier version cleared Adam's moments instead
            of restoring them; the large first steps of fresh moments made the next epoch
            spike too (7 of the 12 rolled-back fits of the full representation benchmark
            rolled back several epochs in a row; Pendulum SCM-VAE seed 1 at alpha 0.1 four,
            ending at lr 1.25e-4, where restoring the moments gives one rollback and lr 1e-3).
        spike_lr_factor: Learning-rate multiplier applied at each rollback.
        progress: Show a progress bar (``False`` hides it; the global switch
            :func:`pyrocausal.set_progress` can hide it too); rank 0's only, when several
            processes train.
        strategy: ``"ddp"`` for data-parallel training with
            :class:`~torch.nn.parallel.DistributedDataParallel` (``None``: one process, or
            ``devices`` processes when ``devices > 1``).
        devices: Number of processes (one GPU each on CUDA). ``N >= 2``: :meth:`fit` spawns
            ``N`` replicas, each stepping through its shard of every epoch's permutation
            with ``batch_size`` units a step (a step sees ``N * batch_size`` units in all),
            and loads rank 0's final state into this trainer. Under ``torchrun`` leave it
            out: ``strategy="ddp"`` joins the launcher's group. ``module``, ``loss``,
            ``schedules`` and ``fit``'s ``eval_fn`` must then be picklable. The ELBO's
            Monte-Carlo draws are seeded ``seed + rank``; ``eval_fn`` runs on rank 0 only.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        lr: float = 1e-3,
        optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        loss: ELBO | None = None,
        schedules: Mapping[str, Callable[[int], float]] | None = None,
        device: str | torch.device | None = "auto",
        seed: int = 0,
        grad_clip: float | None = None,
        keep_best: bool = False,
        spike_rollback: float | None = None,
        spike_lr_factor: float = 0.5,
        progress: bool = True,
        strategy: str | None = None,
        devices: int | None = None,
    ) -> None:
        distributed.processes(strategy, devices)  # validates both now, not at fit time
        if spike_rollback is not None and not spike_rollback > 1.0:
            raise ValueError(f"spike_rollback must be greater than 1, got {spike_rollback}")
        if not 0.0 < spike_lr_factor <= 1.0:
            raise ValueError(f"spike_lr_factor must be in (0, 1], got {spike_lr_factor}")
        self.device = resolve_device(device)
        self.module = module.to(self.device)
        self.lr = lr
        self.optimizer = optimizer(self.module.parameters(), lr=lr)
        self.loss = loss if loss is not None else TraceMeanField_ELBO()
        self.schedules = dict(schedules or {})
        self.seed = int(seed)
        self.grad_clip = grad_clip
        self.keep_best = keep_best
        self.spike_rollback = spike_rollback
        self.spike_lr_factor = spike_lr_factor
        self._best: dict[str, Any] | None = None  # epoch, loss and weights (keep_best)
        self.progress = progress
        self.strategy = strategy
        self.devices = devices
        self._replica: distributed.Replica | None = None  # set while a replica fits
        # Every replica's random state at the end of the last epoch of a several-process fit
        # (``None`` once one process trains on): what a checkpoint needs to resume the group.
        self._replica_rng: list[Any] | None = None
        self.epoch = 0
        self.history = SVIHistory()
        self._generator = torch.Generator().manual_seed(self.seed)

    # ------------------------------------------------------------------ training
    def weights(self, epoch: int) -> dict[str, float]:
        """The scheduled keyword weights of ``epoch`` (0-based)."""
        return {name: float(schedule(epoch)) for name, schedule in self.schedules.items()}

    def batch_loss(self, batch: Sequence[Tensor], weights: Mapping[str, float]) -> Tensor:
        """Differentiable negative ELBO of ``batch``, per unit."""
        with warnings.catch_warnings():
            # A NaN loss is turned into TrainingDivergedError below, with a clearer message.
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            if self._replica is not None:  # DDP's call, whose backward averages gradients
                return self._ddp(*batch, **weights)
            loss = self.loss.differentiable_loss(
                self.module.model, self.module.guide, *batch, **weights
            )
        return loss / batch[0].shape[0]

    def fit(
        self,
        data: Any,
        epochs: int,
        *,
        batch_size: int = 64,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    ) -> SVIHistory:
        """Train until ``epochs`` epochs are completed in total.

        Arguments:
            data: A tuple of tensors with one row per unit, a
                :class:`~torch.utils.data.TensorDataset`, an indexable data set whose
                ``data[index_tensor]`` returns a batch (such as
                :class:`~pyrocausal.datasets.images.ImageData`), or any map-style data set
                (its items are collated).
            epochs: Total number of epochs (a resumed trainer runs only the missing ones).
            batch_size: Units per step.
            checkpoint: File to write the trainer's state to every ``checkpoint_every``
                epochs and at the end.
            resume: Load ``checkpoint`` first when it exists.
            eval_fn: Called with the module after each epoch; its metrics join the history.

        Raises:
            TrainingDivergedError: The loss became NaN or infinite (on any replica).
        """
        options = dict(
            batch_size=batch_size,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            eval_fn=eval_fn,
        )
        count = distributed.processes(self.strategy, self.devices)
        if count > 1:  # spawn the replicas; this trainer takes rank 0's final state
            replica = copy.copy(self)
            replica.strategy, replica.devices = "ddp", None
            state = distributed.launch(
                _fit_replica, replica, data, epochs, options, devices=count, device=self.device
            )
            self.load_state_dict(state)
            self.module.eval()
            return self.history
        if count == 0:
            with pyro.settings.context(module_local_params=True):
                return self._fit_as_replica(data, epochs, **options)
        return self._fit(data, epochs, **options)

    def _fit_as_replica(self, data: Any, epochs: int, **options: Any) -> SVIHistory:
        """The fit of one replica of a process group (see :mod:`.distributed`)."""
        self.device = distributed.local_device(self.device)
        self.module.to(self.device)
        self._replica = distributed.join(self.device)
        self._ddp = distributed.wrap(_ELBOModule(self.module, self.loss), self.device)
        try:
            return self._fit(data, epochs, **options)
        finally:
            self._replica = None
            del self._ddp

    def _fit(
        self,
        data: Any,
        epochs: int,
        *,
        batch_size: int,
        checkpoint: str | os.PathLike | None,
        checkpoint_every: int,
        resume: bool,
        eval_fn: Callable[[nn.Module], Mapping[str, float]] | None,
    ) -> SVIHistory:
        if resume and checkpoint is not None and Path(checkpoint).exists():
            self.load(checkpoint)
        replica = self._replica
        rank, size = replica if replica is not None else (0, 1)
        if self.epoch == 0:
            pyro.set_rng_seed(self.seed + rank)  # each replica its own Monte-Carlo draws
            self._generator.manual_seed(self.seed)  # and all of them the same permutation
        n = _length(data)
        if n == 0:
            raise ValueError("no training data")
        main = rank == 0
        self.module.train()
        bar = progress_bar(
            total=epochs,
            initial=self.epoch,
            enabled=self.progress and main,
            unit="epoch",
            desc="SVI",
        )
        try:
            for epoch in range(self.epoch, epochs):
                weights = self.weights(epoch)
                start_state = (
                    (_cpu_state(self.module), _cpu_optimizer_state(self.optimizer))
                    if self.spike_rollback
                    else None
                )
                order = torch.randperm(n, generator=self._generator)
                if replica is not None:
                    order = distributed.shard(order, rank, size)
                start_time = time.perf_counter()
                total = 0.0
                for step, start in enumerate(range(0, len(order), batch_size)):
                    index = order[start : start + batch_size]
                    batch = [t.to(self.device) for t in _take(data, index)]
                    if replica is None:
                        loss = self._step_loss(batch, weights, epoch, step)
                        if not torch.isfinite(loss):
                            raise self._diverged(f"the value {loss.item()}", epoch, step)
                        value = loss.item()
                    else:
                        loss, value = self._replica_loss(batch, weights, epoch, step)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip is not None:
                        nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
                    self.optimizer.step()
                    total += value * index.numel() * size
                    if step % 10 == 0 and not bar.disable:
                        update_postfix(bar, loss=f"{value:.4g}", step=step + 1)
                record = {
                    "epoch": epoch + 1,
                    "loss": total / (len(order) * size),
                    "seconds": time.perf_counter() - start_time,
                    **weights,
                }
                if eval_fn is not None and main:
                    self.module.eval()
                    with torch.no_grad():
                        metrics = eval_fn(self.module)
                    record.update({k: _scalar(v) for k, v in metrics.items()})
                    self.module.train()
                if start_state is not None:
                    record["rolled_back"] = self._is_spike(record["loss"])
                    if record["rolled_back"]:
                        self._roll_back(start_state)
                    record["lr"] = self.lr
                self.history.records.append(record)
                self.epoch = epoch + 1
                if replica is None:
                    self._replica_rng = None  # the replicas' states are of an earlier epoch
                kept = not record.get("rolled_back", False)
                if self.keep_best and kept and weights == self.weights(epochs - 1):
                    if self._best is None or record["loss"] < self._best["loss"]:
                        self._best = {
                            "epoch": self.epoch,
                            "loss": record["loss"],
                            "module": _cpu_state(self.module),
                        }
                bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                bar.update(1)
                last = self.epoch == epochs
                if checkpoint is not None and (last or self.epoch % checkpoint_every == 0):
                    self._checkpoint(checkpoint)
            if self.keep_best and self._best is not None and self.epoch == epochs:
                self.history.best_epoch = int(self._best["epoch"])
                if self._best["epoch"] != self.epoch:
                    self.module.load_state_dict(self._best["module"])
                    if checkpoint is not None:
                        self._checkpoint(checkpoint)
        finally:
            bar.close()
            self.module.eval()
        return self.history

    def _step_loss(
        self, batch: Sequence[Tensor], weights: Mapping[str, float], epoch: int, step: int
    ) -> Tensor:
        try:
            return self.batch_loss(batch, weights)
        except ValueError as error:
            # Pyro's validation rejects NaN/inf distribution parameters before a loss
            # exists; report it as the divergence it is.
            if "invalid values" not in str(error):
                raise
            raise self._diverged("non-finite values", epoch, step) from error

    def _replica_loss(
        self, batch: Sequence[Tensor], weights: Mapping[str, float], epoch: int, step: int
    ) -> tuple[Tensor, float]:
        """This replica's loss and the mean over all replicas, checked before any backward
        pass: a NaN on one replica stops every replica at the same step."""
        try:
            loss = self.batch_loss(batch, weights)
            local = loss.detach()
        except ValueError as error:
            if "invalid values" not in str(error):
                raise
            loss, local = None, torch.tensor(math.nan, device=self.device)
        assert self._replica is not None
        mean = float(distributed.all_sum(local.reshape(1).float())) / self._replica.size
        if loss is None or not math.isfinite(mean):
            where = "non-finite values" if loss is None else f"the value {local.item()}"
            if loss is not None and math.isfinite(local.item()):
                where = "non-finite values on another replica (process)"
            raise self._diverged(where, epoch, step)
        return loss, mean

    def _checkpoint(self, path: str | os.PathLike) -> None:
        """Save from rank 0, with every replica's random state (a collective call)."""
        if self._replica is None:
            self.save(path)
            return
        self._replica_rng = distributed.gather(_rng_state())
        if self._replica.rank == 0:
            self.save(path)

    def _is_spike(self, loss: float) -> bool:
        """Whether an epoch's mean ``loss`` is a spike against the last epoch that was kept."""
        kept = [r["loss"] for r in self.history.records if not r.get("rolled_back", False)]
        if not kept or self.spike_rollback is None:
            return False
        last = kept[-1]
        return loss > last + (self.spike_rollback - 1.0) * abs(last)

    def _roll_back(self, state: tuple[Mapping[str, Tensor], dict[str, Any]]) -> None:
        """Restore the start-of-epoch weights and optimizer state, then lower the rate."""
        module_state, optimizer_state = state
        self.module.load_state_dict(module_state)
        # load_state_dict also restores the start-of-epoch learning rate, which equals self.lr.
        self.optimizer.load_state_dict(optimizer_state)
        self.lr *= self.spike_lr_factor
        for group in self.optimizer.param_groups:
            group["lr"] *= self.spike_lr_factor

    def _diverged(self, what: str, epoch: int, step: int) -> TrainingDivergedError:
        last = f"{self.history.records[-1]['loss']:.6g}" if self.history.records else "none yet"
        return TrainingDivergedError(
            f"the loss reached {what} at epoch {epoch + 1}, step {step + 1} (last epoch mean "
            f"loss: {last}); training stopped before the optimizer step, so the parameters keep "
            f"their last finite values. Lower the learning rate (lr={self.lr}), set grad_clip, "
            "check the data for NaN/inf, or resume from a checkpoint."
        )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The trainer's complete state (module, optimizer, epoch, history, random states)."""
        state: dict[str, Any] = {
            "format": _FORMAT,
            "version": _VERSION,
            "epoch": self.epoch,
            "seed": self.seed,
            "module": _cpu_state(self.module),
            "optimizer": self.optimizer.state_dict(),
            "history": [dict(r) for r in self.history.records],
            "rng": _rng_state(),
            "generator": self._generator.get_state(),
            "best": self._best,
        }
        if self._replica_rng is not None:
            state["replica_rng"] = self._replica_rng
        to_blob = getattr(self.module, "to_blob", None)
        if callable(to_blob):
            try:
                state["model"] = to_blob()
            except ValueError:  # a model that cannot be rebuilt by name: weights only
                pass
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (the module must have the same layout).

        A checkpoint of ``N`` replicas holds rank 0's random state in ``"rng"`` (what one
        process resumes with) and all of them in ``"replica_rng"``: replicas of a group of the
        same size resume with their own, so the resumed fit continues exactly.
        """
        if state.get("format") != _FORMAT:
            raise ValueError("not an SVITrainer checkpoint")
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.history = SVIHistory([dict(r) for r in state["history"]])
        self._generator.set_state(state["generator"])
        rng = state["rng"]
        replica_rng = state.get("replica_rng")
        if self._replica is not None and replica_rng and len(replica_rng) == self._replica.size:
            rng = replica_rng[self._replica.rank]
        _set_rng_state(rng)
        self._best = state.get("best")  # absent from checkpoints of earlier versions
        self._replica_rng = replica_rng
        self.lr = float(self.optimizer.param_groups[0]["lr"])

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to ``path`` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load(self, path: str | os.PathLike) -> None:
        """Restore the trainer from a checkpoint written by :meth:`save`."""
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        self.load_state_dict(state)


class _ELBOModule(nn.Module):
    """An ELBO's per-unit loss as a module that owns ``module``'s parameters, for DDP to wrap
    (Pyro's ``ELBO.__call__`` does this for modules; here the model and guide are methods)."""

    def __init__(self, module: nn.Module, elbo: ELBO) -> None:
        super().__init__()
        self.module = module
        self.elbo = elbo

    def forward(self, *batch: Tensor, **weights: float) -> Tensor:
        loss = self.elbo.differentiable_loss(
            self.module.model, self.module.guide, *batch, **weights
        )
        return loss / batch[0].shape[0]


def _fit_replica(
    trainer: SVITrainer, data: Any, epochs: int, options: Mapping[str, Any]
) -> dict[str, Any] | None:
    """What each spawned replica runs: the fit, then rank 0's state (with every replica's
    random state) for the caller."""
    trainer.fit(data, epochs, **options)
    trainer._replica_rng = distributed.gather(_rng_state())
    return trainer.state_dict() if distributed.is_main_process() else None


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _cpu_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A detached CPU copy of ``optimizer.state_dict()`` (its tensors are live references)."""
    state = optimizer.state_dict()
    return {
        "state": {
            k: {n: v.detach().cpu().clone() if isinstance(v, Tensor) else v for n, v in s.items()}
            for k, s in state["state"].items()
        },
        "param_groups": copy.deepcopy(state["param_groups"]),
    }


def _is_tensor_tuple(data: Any) -> bool:
    return isinstance(data, tuple) and all(isinstance(t, Tensor) for t in data)


def _length(data: Any) -> int:
    if _is_tensor_tuple(data):
        return int(data[0].shape[0])
    return len(data)


def _take(data: Any, index: Tensor) -> Sequence[Tensor]:
    """The rows ``index`` of every tensor of ``data``."""
    if _is_tensor_tuple(data):
        return [t[index] for t in data]
    if isinstance(data, torch.utils.data.TensorDataset):
        return [t[index] for t in data.tensors]
    if hasattr(data, "images") and hasattr(data, "labels"):
        batch = data[index]  # ImageData-like: tensor indexing returns a batch
        return list(batch) if isinstance(batch, tuple | list) else [batch]
    items = [data[i] for i in index.tolist()]
    batch = torch.utils.data.default_collate(items)
    return list(batch) if isinstance(batch, tuple | list) else [batch]


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _python_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda: Iterable[Tensor] = state["cuda"]
        torch.cuda.set_rng_state_all(list(cuda))


def _scalar(value: Any) -> float:
    return float(value.detach()) if isinstance(value, Tensor) else float(value)
