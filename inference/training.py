"""Maximum-likelihood training of fully observed models, with progress bar and early stopping.

Fully observed structural causal models are trained on their batched log density directly
(one forward and backward pass over all mechanisms per step). Pyro stays the source of the
program's semantics and queries; paying for a Pyro trace inside the inner loop buys nothing
when every variable is observed (see ``PITFALLS.md``).
"""

from __future__ import annotations

__all__ = ["History", "split_holdout", "train_mle"]

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor, nn

from pyrocausal.inference import distributed
from pyrocausal.inference.errors import TrainingDivergedError
from pyrocausal.progress import progress_bar


@dataclass
class History:
    """Per-epoch record of a fit.

    Attributes:
        loss: Mean training negative log-likelihood per epoch (standardized units).
        val_loss: Validation negative log-likelihood per epoch (empty without validation).
        lr: Learning rate used in each epoch.
        best_epoch: Epoch whose weights were kept (the lowest validation loss, else the last).
        stopped_early: Whether early stopping ended the fit before ``epochs``.
        seconds: Wall time of the fit.
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0

    def to_frame(self) -> pd.DataFrame:
        """The history as a DataFrame indexed by epoch."""
        frame = pd.DataFrame({"loss": self.loss, "lr": self.lr})
        if self.val_loss:
            frame["val_loss"] = self.val_loss
        frame.index.name = "epoch"
        return frame

    def __len__(self) -> int:
        return len(self.loss)

    def __repr__(self) -> str:
        """A summary: epochs, the kept epoch and its losses, the time (not every float).

        Example:
            >>> History(loss=[3.0, 2.0, 1.5], val_loss=[3.1, 2.2, 2.4], lr=[0.01] * 3,
            ...         best_epoch=1, seconds=0.25)
            History(3 epochs, best epoch 1: val loss 2.2 (loss 2), final loss 1.5, 0.25 s)
            >>> History()
            History(0 epochs)
        """
        if not self.loss:
            return "History(0 epochs)"
        parts = [f"{len(self.loss)} epoch{'s' * (len(self.loss) != 1)}"]
        best = self.best_epoch
        if 0 <= best < len(self.loss):
            if self.val_loss:
                parts.append(
                    f"best epoch {best}: val loss {self.val_loss[best]:.4g} "
                    f"(loss {self.loss[best]:.4g})"
                )
            else:
                parts.append(f"best epoch {best}: loss {self.loss[best]:.4g}")
        parts.append(f"final loss {self.loss[-1]:.4g}")
        if self.stopped_early:
            parts.append("stopped early")
        parts.append(f"{self.seconds:.3g} s")
        return f"History({', '.join(parts)})"

    def plot(self, ax=None):  # noqa: ANN001, ANN201
        """Plot the loss curves; returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3))[1]
        self.to_frame().drop(columns="lr").plot(ax=ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel("negative log-likelihood")
        return ax


def split_holdout(
    rows: Tensor, val_fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """Shuffle ``rows`` and hold out ``val_fraction`` of them (none below 20 rows).

    Example:
        >>> train, val = split_holdout(torch.arange(100.0)[:, None], 0.1, torch.Generator())
        >>> train.shape, val.shape
        (torch.Size([90, 1]), torch.Size([10, 1]))
        >>> split_holdout(torch.zeros(10, 1), 0.1, torch.Generator())[1] is None
        True
    """
    perm = torch.randperm(len(rows), generator=generator).to(rows.device)
    n_val = int(round(len(rows) * val_fraction)) if len(rows) >= 20 else 0
    return rows[perm[n_val:]], (rows[perm[:n_val]] if n_val else None)


def train_mle(
    module: nn.Module,
    nll: Callable[[Tensor], Tensor],
    data: Tensor,
    *,
    val_data: Tensor | None = None,
    epochs: int = 200,
    batch_size: int = 512,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    patience: int | None = 30,
    cosine: bool = True,
    seed: int | None = None,
    progress: bool = True,
    description: str = "fit",
    loss_offset: tuple[float, float] = (0.0, 0.0),
    strategy: str | None = None,
) -> History:
    """Minimise ``nll(batch)`` over the parameters of ``module`` with Adam.

    Arguments:
        module: Holds the parameters (already on the device of ``data``).
        nll: Mean negative log-likelihood of a batch of rows of ``data``.
        data: Training rows, shape ``(n, d)``.
        val_data: Held-out rows to pick the best epoch and stop early (``None``: the last
            epoch is kept).
        epochs: Maximum number of passes over the training rows.
        batch_size: Rows per step.
        lr: Initial learning rate.
        weight_decay: Adam weight decay.
        patience: Stop when the validation loss has not improved for this many epochs
            (``None`` never stops early).
        cosine: Anneal the learning rate along a cosine to 1% of ``lr``.
        seed: Seed of the batch order (the global RNG when ``None``).
        progress: Show a progress bar with the current losses (``False`` hides it; the
            global switch :func:`pyrocausal.set_progress` can hide it too).
        description: Label of the progress bar.
        loss_offset: Constant parts of the mean training and validation losses, added to
            the reported values: terms that no trainable parameter enters (a model's
            closed-form factors), which ``nll`` may leave out of every step.
        strategy: ``"ddp"``: this process is one replica of a process group (started by
            :func:`~pyrocausal.inference.distributed.launch` or ``torchrun``; see
            :mod:`~pyrocausal.inference.distributed`). Each replica steps through its shard of
            every epoch's permutation of ``data`` with ``batch_size`` rows a step, and the
            gradients are averaged, so a step equals a one-process step on ``size *
            batch_size`` rows. Every replica must pass the same ``module``, ``data``,
            ``val_data`` and ``seed``; the validation loss is computed on all of ``val_data``
            by each, so every replica stops early at the same epoch. ``None``: one process.

    Returns:
        The :class:`History`; ``module`` holds the weights of ``History.best_epoch``.

    Raises:
        TrainingDivergedError: if a loss turns NaN or infinite. The module is left with the
            last finite weights.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(1, 1)
        >>> x = torch.randn(256, 1)
        >>> h = train_mle(lin, lambda b: ((lin(b) - 2 * b) ** 2).mean(), x, epochs=5,
        ...               progress=False, seed=0)
        >>> len(h), h.loss[-1] < h.loss[0]
        (5, True)
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if strategy is not None and strategy not in distributed.STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not known; choose {distributed.STRATEGIES}")
    replica = distributed.join(data.device) if strategy is not None else None
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed if seed is not None else int(torch.randint(2**31, ()).item()))

    train, val = data, val_data
    n_val = 0 if val is None else int(val.shape[0])

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = _adam(params, lr=lr, weight_decay=weight_decay)
    n_rows = train.shape[0] if replica is None else -(-train.shape[0] // replica.size)
    steps_per_epoch = math.ceil(n_rows / batch_size)
    # A replica calls its loss through DDP, whose backward pass averages the gradients.
    step_loss = (
        nll
        if replica is None
        else distributed.wrap(_Objective(module, nll), data.device, static=True)
    )
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * steps_per_epoch, eta_min=lr * 0.01
        )
        if cosine
        else None
    )

    history = History()
    best = math.inf
    best_state = _snapshot(module)
    since_best = 0
    start = time.perf_counter()
    show = progress and distributed.is_main_process()
    bar = progress_bar(range(epochs), enabled=show, desc=description, leave=False)
    module.train()
    for epoch in bar:
        order = torch.randperm(train.shape[0], generator=generator)
        if replica is not None:
            order = distributed.shard(order, *replica)
        order = order.to(data.device)
        losses: list[Tensor] = []
        epoch_start = _snapshot(module)
        for step in range(steps_per_epoch):
            batch = train[order[step * batch_size : (step + 1) * batch_size]]
            loss = step_loss(batch)
            for p in params:  # zero_grad(set_to_none=True), without the optimizer's overhead
                p.grad = None
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.detach())
        # Checked once an epoch, not once a step: no device sync in the inner loop. A
        # non-finite step spoils the weights after it, and the epoch's start is restored.
        values = torch.stack(losses)
        finite = torch.isfinite(values)
        sizes = torch.full_like(values, float(batch_size))
        sizes[-1] = n_rows - batch_size * (steps_per_epoch - 1)
        if replica is None:
            bad, total, count = int((~finite).sum()), float((values * sizes).sum()), n_rows
        else:  # one exchange an epoch: every replica then takes the same decisions
            local = torch.stack([(~finite).sum().to(values), (values * sizes).sum()])
            bad, total = (float(v) for v in distributed.all_sum(local))
            count = n_rows * replica.size
        if bad:
            module.load_state_dict(best_state if n_val and history.loss else epoch_start)
            if bool(finite.all()):
                where = "on another replica (process)"
            else:
                step = int((~finite).nonzero()[0, 0])
                where = f"{values[step].item()} at epoch {epoch}, step {step}"
            raise TrainingDivergedError(
                f"the training loss became {where}; training stopped and the last finite "
                "weights were kept. Try a smaller learning rate (lr), fewer flow layers, or "
                "check the data for outliers."
            )
        history.loss.append(total / count + loss_offset[0])
        history.lr.append(optimizer.param_groups[0]["lr"])
        if n_val:
            with torch.no_grad():
                val_loss = float(nll(val)) + loss_offset[1]
            history.val_loss.append(val_loss)
            score = val_loss
        else:
            score = history.loss[-1]
        if score < best - 1e-6 or not math.isfinite(best):
            best, since_best = score, 0
            history.best_epoch = epoch
            if n_val:
                best_state = _snapshot(module)
        else:
            since_best += 1
        if not bar.disable:  # shown at the bar's next (throttled) redraw
            post = {"loss": f"{history.loss[-1]:.4f}"}
            if n_val:
                post["val"] = f"{history.val_loss[-1]:.4f}"
            bar.set_postfix(post, refresh=False)
        if n_val and patience is not None and since_best >= patience:
            history.stopped_early = True
            break
    bar.close()
    if n_val:
        module.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.loss) - 1
    module.eval()
    history.seconds = time.perf_counter() - start
    return history


class _Objective(nn.Module):
    """``nll`` as a module that owns ``module``'s parameters, for DDP to wrap."""

    def __init__(self, module: nn.Module, nll: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.module = module
        self.nll = nll

    def forward(self, batch: Tensor) -> Tensor:
        return self.nll(batch)


def _snapshot(module: nn.Module) -> dict[str, Tensor]:
    """A copy of ``module``'s state (cloned tensors; a deep copy's bookkeeping cost a
    twentieth of a small model's fit)."""
    return {
        k: v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v)
        for k, v in module.state_dict().items()
    }


def _adam(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where torch has one for these tensors.

    The per-node networks are many small tensors, so the optimizer's per-tensor overhead
    is a large share of a step: the fused kernel made a 9-node SCM's step ~4x cheaper in
    the optimizer than the default loop (bench/core_speed.py).
    """
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
