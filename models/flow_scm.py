"""Structural causal models whose mechanisms are Zuko conditional flows, as Pyro programs."""

from __future__ import annotations

__all__ = ["SCM", "InterventionalSCM"]

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor, nn
from torch.distributions import Independent, Normal, constraints
from torch.distributions.transforms import Transform

from pyrocausal.fused import fuse_stacks
from pyrocausal.graph import CausalGraph, GraphError
from pyrocausal.inference import distributed
from pyrocausal.inference.counterfactual import noise_site, reparam_noise, replay_counterfactual
from pyrocausal.inference.devices import resolve_device
from pyrocausal.inference.training import History, split_holdout, train_mle
from pyrocausal.mechanisms import (
    Auto,
    Mechanism,
    ZukoBase,
    mechanism_from_config,
)
from pyrocausal.models.selection import MechanismSelection, _describe
from pyrocausal.validation import Intervention, check_frame, check_intervention

if TYPE_CHECKING:
    from pyrocausal.inference.posterior import Abduction
    from pyrocausal.inference.sensitivity import Confounding
    from pyrocausal.results import ATEResult, CausalQueryResult

_FORMAT = "pyrocausal.SCM"
# 2: the regression and the first network layer of a stack share one input matrix
# (``weight_in`` / ``bias_in``); files of version 1 hold the older layout.
# 3: learned discrete logits hold every design (``net``, ``table``, ``network``) and the
# choice; a model with latent nodes holds its marginal model (``marginal.*``).
_VERSION = 3

MechanismArg = Mechanism | Auto | str | Mapping[str, Mechanism | Auto | str] | None
#: Refits behind ``fit_uncertainty="bootstrap"`` (10 members: 90% coverage 0.87 where one fit
#: gave 0.69, bench/results/posterior_calibration.md, "Parameter uncertainty").
BOOTSTRAP_MEMBERS = 10
PARAMETER_DRAWS = 10
FIT_UNCERTAINTY = ("parameters", "mechanisms", "bootstrap", "none")


class _NodeTransform(Transform):
    """Noise ``(..., 1)`` -> value ``(...)`` in original units, one node's whole mechanism.

    The same map as the composition ``[flow.inv, AffineTransform(loc, scale, event_dim=1),
    ReshapeTransform((1,), ())]``, as a single transform: a ``TransformedDistribution`` of
    three transforms spent more time building its constraints (domain / codomain of each
    part, recursively) than the counterfactual spent computing, about 1 ms per node and
    query. Values, inverses and log-Jacobians are computed by the flow's own transform.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.real
    bijective = True

    def __init__(self, flow_transform: Transform, loc: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.flow_transform = flow_transform  # standardized value -> noise
        self.loc = loc
        self.scale = scale

    def _call(self, u: Tensor) -> Tensor:
        return (self.flow_transform.inv(u) * self.scale + self.loc).squeeze(-1)

    def _inverse(self, x: Tensor) -> Tensor:
        return self.flow_transform(((x - self.loc) / self.scale).unsqueeze(-1))

    def log_abs_det_jacobian(self, u: Tensor, x: Tensor) -> Tensor:
        z = ((x - self.loc) / self.scale).unsqueeze(-1)
        z = z.expand(_broadcast(z.shape, u.shape))  # u carries the flow's batch
        return self.scale.log() - self.flow_transform.log_abs_det_jacobian(z, u)

    def forward_shape(self, shape: Sequence[int]) -> torch.Size:
        if len(shape) < 1 or shape[-1] != 1:
            raise ValueError(f"expected a noise shape ending in 1, got {tuple(shape)}")
        return torch.Size(shape[:-1])

    def inverse_shape(self, shape: Sequence[int]) -> torch.Size:
        return torch.Size([*shape, 1])


class SCM(MechanismSelection, nn.Module):
    r"""A structural causal model: one invertible conditional flow per node, as a Pyro program.

    Each node ``x_i`` has a mechanism ``p(x_i | pa_i)``, a Zuko flow whose transform maps the
    (standardized) value to its exogenous noise ``u_i``, so the noise of a fully observed row
    is recovered exactly. :attr:`model` is the Pyro program over sites named by node;
    :attr:`guide` is exact abduction (the flow inverse) onto the noise sites ``"<node>_base"``.

    Arguments:
        graph: A :class:`~pyrocausal.CausalGraph` or anything it accepts (a mapping
            ``node -> parents``, a :class:`networkx.DiGraph`, an edge list).
        mechanisms: One :class:`~pyrocausal.mechanisms.Mechanism` for every node, or a name
            (``"maf"``, ``"nsf"``, ``"anm"``, ``"lsnm"``, ``"linear"``, ...), or a selection
            rule: ``"default"`` / ``None`` (:meth:`Auto.light()
            <pyrocausal.mechanisms.Auto.light>`), ``"auto"`` (:class:`Auto`) or any
            :class:`~pyrocausal.mechanisms.Auto`, which chooses each node's mechanism by
            held-out likelihood during :meth:`fit` (the choice is then in :attr:`mechanisms`
            and :attr:`selection`); or a mapping ``node -> any of these``, where nodes left
            out get the default (one selection rule per model). The default,
            :meth:`Auto.light() <pyrocausal.mechanisms.Auto.light>`, takes least squares for
            linear nodes, a 24x24 :class:`~pyrocausal.mechanisms.MAF` for the others, the
            quadratic regression where it ties or beats the trained MAF or an F-test rejects
            the linear fit, and a sinh-arcsinh noise shape on a MAF node where it wins by two
            standard errors; at equal epochs it fits in 0.8-1.1 times one causalflows
            ``CausalMAF``'s time on 3-5 nodes and 1.4-1.5 times on 10. ``"auto"`` adds additive-
            and location-scale-noise mechanisms with 32x32 networks: as accurate by count on
            ``bench/scm_suite.py`` (15 of 17 SCMs) but worse on the large backdoor, at about
            three times the default's fitting time. ``"flexible"``
            (:meth:`Auto.flexible() <pyrocausal.mechanisms.Auto.flexible>`) adds spline
            refinements for non-additive noise.

    Example:
        >>> import pyrocausal as pc
        >>> from pyrocausal.datasets import load_scm
        >>> truth = load_scm("triangle_linear")
        >>> df = truth.sample(2000, seed=0)
        >>> scm = pc.SCM(truth.graph, mechanisms=pc.LinearGaussian())
        >>> history = scm.fit(df, epochs=30, progress=False, seed=0)
        >>> cf = scm.counterfactual(df.head(3), {"x2": 1.5})
        >>> cf["x2"].tolist()
        [1.5, 1.5, 1.5]
        >>> bool((cf["x1"] == df["x1"].head(3)).all())    # non-descendants keep their values
        True
    """

    def __init__(self, graph: Any, mechanisms: MechanismArg = None) -> None:
        super().__init__()
        self.graph = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
        for node in self.graph.nodes:
            if "." in node:
                raise GraphError(f"node name {node!r} must not contain '.'")
        self._mechanism_arg = mechanisms  # what a bootstrap refit starts from
        per_node = _resolve_mechanisms(self.graph, mechanisms)
        autos = {rule for rule in per_node.values() if isinstance(rule, Auto)}
        if len(autos) > 1:
            raise ValueError(
                "one selection rule (Auto) per model: nodes "
                + "; ".join(
                    f"{[n for n, r in per_node.items() if r == rule]} use {rule!r}"
                    for rule in autos
                )
            )
        self.auto: Auto | None = autos.pop() if autos else None
        #: Nodes whose mechanism :meth:`fit` chooses (by :attr:`auto`); the others are given.
        self.auto_nodes: tuple[str, ...] = tuple(
            n for n in self.graph.nodes if isinstance(per_node[n], Auto)
        )
        self.selection: pd.DataFrame | None = None
        if self.auto is not None:  # a placeholder until fit chooses: the last network
            placeholder = next(
                (c for c in reversed(self.auto.candidates) if not c.closed_form),
                self.auto.candidates[-1],
            )
            per_node = {n: placeholder if n in self.auto_nodes else m for n, m in per_node.items()}
        self.mechanisms: dict[str, Mechanism] = per_node  # type: ignore[assignment]
        self._index = {n: i for i, n in enumerate(self.graph.nodes)}
        self._parent_index = {
            n: [self._index[p] for p in self.graph.parents(n)] for n in self.graph.nodes
        }
        self.stacks = self._build_stacks()
        self.register_buffer("loc", torch.zeros(len(self.graph)))
        self.register_buffer("scale", torch.ones(len(self.graph)))
        # A model whose every mechanism is written down without free parameters is complete.
        free = any(p.requires_grad for p in self.stacks.parameters())
        self.register_buffer("fitted", torch.tensor(not free))
        #: After a fit that chose mechanisms: for each node whose choice was a near-tie, this
        #: SCM with that node's runner-up mechanism; posterior queries average over them
        #: with :attr:`alternative_weights` (see ``fit_uncertainty``).
        self.alternatives = nn.ModuleList()
        #: Weights of this model and of each of :attr:`alternatives` (they sum to one).
        self.register_buffer("alternative_weights", torch.ones(1))
        #: With latent nodes: the SCM of the observed nodes alone, fitted beside the latent
        #: model (what the data identify; the base of the sensitivity model of a latent
        #: confounder, :mod:`pyrocausal.inference.sensitivity`). ``None`` otherwise.
        self.marginal: SCM | None = None
        if self.graph.latent:
            from pyrocausal.inference.sensitivity import marginal_structure

            self.marginal = SCM(*marginal_structure(self.graph, mechanisms))

    # ------------------------------------------------------------------ properties
    @property
    def nodes(self) -> tuple[str, ...]:
        """Nodes in topological order."""
        return self.graph.nodes

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.loc.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating point type of the parameters."""
        return self.loc.dtype

    # ------------------------------------------------------------------ Pyro program
    def _columns(self, nodes: list[str]) -> Tensor:
        """The data-matrix columns of ``nodes``, on the model's device."""
        return torch.tensor([self._index[n] for n in nodes], device=self.device)

    def _standardize(self, node: str, value: Tensor) -> Tensor:
        i = self._index[node]
        return (value - self.loc[i]) / self.scale[i]

    def _context(self, node: str, values: Mapping[str, Tensor]) -> Tensor | None:
        parents = self.graph.parents(node)
        if not parents:
            return None
        pa = torch.broadcast_tensors(*(self._standardize(p, values[p]) for p in parents))
        return torch.stack(pa, dim=-1)

    def distribution(
        self, node: str, values: Mapping[str, Tensor], batch_shape: torch.Size
    ) -> dist.TransformedDistribution:
        """The mechanism of ``node`` given its parents' values, in original units.

        The flow's base distribution (the noise) enters Pyro through
        :class:`~pyrocausal.mechanisms.ZukoBase`, followed by one transform: the flow's
        inverse (noise -> standardized value), the de-standardization and the removal of the
        flow's one-feature event dimension.
        """
        g, k = self._slot[node]
        if getattr(self.stacks[g], "raw_units", False):  # hand-written / discrete mechanisms
            parents = {p: values[p] for p in self.graph.parents(node)}
            return self.stacks[g].distribution(k, parents, batch_shape)
        stack = self.stacks[g]
        transform, flow_batch = stack.transform(k, self._context(node, values))
        batch_shape = _broadcast(batch_shape, flow_batch)
        # The flow's base, built once at its final shape; its parameters are the stack's
        # fixed buffers (0 and 1), so they need no validation.
        noise_shape = (*batch_shape, 1)
        normal = Normal(
            stack.base_loc.expand(noise_shape),
            stack.base_scale.expand(noise_shape),
            validate_args=False,
        )
        base = ZukoBase(Independent(normal, 1, validate_args=False))
        i = self._index[node]
        return dist.TransformedDistribution(
            base, _NodeTransform(transform, self.loc[i], self.scale[i])
        )

    def model(
        self,
        data: Mapping[str, Tensor] | None = None,
        num_rows: int | None = None,
        *,
        fixed: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The generative Pyro program (original units).

        Arguments:
            data: Observed values ``{node: tensor of shape (n,)}`` (sites become observed).
            num_rows: Number of rows to generate when ``data`` does not fix it.
            fixed: Values that are given rather than generated, each recorded as a
                :func:`pyro.deterministic` site: a counterfactual's prediction passes the
                nodes no intervention reaches, which keep their factual values, so only the
                changed nodes run their mechanisms.

        Returns:
            ``{node: tensor of shape (n,)}``. Under :func:`pyro.do` the intervened node holds
            the intervened value (read it from here, not from the trace's intervened site).
        """
        data = data or {}
        fixed = fixed or {}
        n = _num_rows({**data, **fixed}, num_rows)
        values: dict[str, Tensor] = {}
        batch = torch.Size([n])
        with pyro.plate("rows", n, dim=-1):
            for node in self.graph.nodes:
                if node in fixed:
                    values[node] = pyro.deterministic(node, fixed[node])
                    continue
                d = self.distribution(node, values, batch)
                x = pyro.sample(node, d, obs=data.get(node))
                values[node] = x.expand(_broadcast(x.shape, d.batch_shape))
        return values

    def guide(
        self,
        data: Mapping[str, Tensor] | None = None,
        num_rows: int | None = None,
        *,
        fixed: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Exact abduction: the noise of every node is the flow transform of its value.

        For fully observed rows the posterior over the noise is a point mass, so the guide
        samples each ``"<node>_base"`` site from a :class:`~pyro.distributions.Delta` at
        ``flow(pa).transform(x)``. Nodes in ``fixed`` (see :meth:`model`) get no noise site.
        """
        fixed = fixed or {}
        if not data or any(node not in data for node in self.graph.nodes):
            missing = [n for n in self.graph.nodes if not data or n not in data]
            raise ValueError(f"exact abduction needs every variable observed; missing {missing}")
        n = _num_rows(data, num_rows)
        batched = self._batched_noise(data, skip=fixed)
        noise: dict[str, Tensor] = {}
        with pyro.plate("rows", n, dim=-1):
            for node in self.graph.nodes:
                if node in fixed:
                    continue
                g, k = self._slot[node]
                if getattr(self.stacks[g], "raw_units", False):
                    # hand-written: the inverse; discrete: the exact Gumbel-max posterior
                    parents = {p: data[p] for p in self.graph.parents(node)}
                    posterior = self.stacks[g].abduction(k, parents, data[node])
                    noise[node] = pyro.sample(noise_site(node), posterior)
                    continue
                if batched is not None:
                    u = batched[node].unsqueeze(-1)
                else:
                    flow = self.flow(node, self._context(node, data))
                    u = flow.transform(self._standardize(node, data[node]).unsqueeze(-1))
                noise[node] = pyro.sample(noise_site(node), dist.Delta(u, event_dim=1))
        return noise

    def _batched_noise(
        self, data: Mapping[str, Tensor], skip: Collection[str] = ()
    ) -> dict[str, Tensor] | None:
        """Every flow node's noise in one pass per stack, for rows given as ``(n,)`` tensors.

        The guide's fast path: the same transform as ``flow(node, parents).transform(x)``
        node by node. ``None`` (node by node, then) when the values carry other batch shapes.
        A stack whose nodes are all in ``skip`` (no noise needed) is not run.
        """
        values = [torch.as_tensor(data[n]) for n in self.graph.nodes]
        if any(v.dim() != 1 or v.shape != values[0].shape for v in values):
            return None
        x = torch.stack(values, dim=-1).to(device=self.loc.device, dtype=self.loc.dtype)
        x = (x - self.loc) / self.scale
        noise: dict[str, Tensor] = {}
        for stack, (_, nodes) in zip(self.stacks, self._groups):
            if getattr(stack, "raw_units", False) or all(n in skip for n in nodes):
                continue
            columns = self._columns(nodes)
            noise.update(zip(nodes, stack.noise_all(x, columns)))
        return noise

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data: pd.DataFrame,
        epochs: int = 200,
        batch_size: int = 512,
        lr: float = 3e-3,
        device: str | torch.device = "auto",
        progress: bool = True,
        *,
        val_fraction: float = 0.1,
        patience: int | None = 30,
        weight_decay: float = 0.0,
        cosine: bool = True,
        seed: int | None = None,
        num_threads: int | None = 1,
        strategy: str | None = None,
        devices: int | None = None,
    ) -> History:
        """Fit every mechanism by maximum likelihood on fully observed rows.

        The per-node log densities are summed and trained in one batched pass per step
        (no Pyro trace in the inner loop). Every fit starts afresh: each mechanism's linear
        part from least squares, its flow part from the identity. The data are standardized
        per column inside the model; every answer comes back in original units.

        Arguments:
            data: One numeric column per observed node, no missing values.
            epochs: Maximum number of passes over the data.
            batch_size: Rows per optimizer step.
            lr: Adam learning rate (annealed along a cosine when ``cosine``).
            device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
            progress: Show a progress bar.
            val_fraction: Rows held out for early stopping and picking the best epoch.
            patience: Epochs without validation improvement before stopping.
            weight_decay: Adam weight decay.
            cosine: Cosine learning-rate schedule.
            seed: Seed of the split, batch order and initial weights.
            num_threads: CPU threads during the fit (restored afterwards). The per-node
                networks are small, and on a CPU one thread is fastest (several threads
                were seen to slow small steps by orders of magnitude). ``None`` keeps
                torch's setting.
            strategy: ``"ddp"``: data-parallel training with DDP (see
                :mod:`~pyrocausal.inference.distributed`): every process prepares the same
                split, standardization and mechanism choice, then trains on its shard of the
                rows, ``batch_size`` rows a step (``devices * batch_size`` rows a step in all).
                Under ``torchrun`` pass it without ``devices``. Fully observed graphs only.
            devices: Number of processes (one GPU each on CUDA); ``N >= 2`` spawns them here,
                and this model ends up fitted as by a one-process fit (``seed=None`` draws
                one seed here for all of them).

        Returns:
            The per-epoch :class:`~pyrocausal.inference.History`.

        Example:
            >>> import pyrocausal as pc
            >>> from pyrocausal.datasets import load_scm
            >>> data = load_scm("triangle_linear").sample(500, seed=0)
            >>> scm = pc.SCM({"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]}, mechanisms="linear")
            >>> history = scm.fit(data, epochs=20, progress=False, seed=0)
            >>> history  # least squares is exact: one epoch
            History(1 epoch, best epoch 0: val loss ..., final loss ..., ... s)
            >>> scm
            SCM(3 nodes, 3 edges, fitted, cpu, float32)
              x1              linear
              x2 <- x1        linear
              x3 <- x1, x2    linear

        Several processes (two on a CPU, over ``gloo``; in a script, under
        ``if __name__ == "__main__":``)::

            history = scm.fit(df, epochs=50, batch_size=256, devices=2, seed=0)
        """
        frame = check_frame(data, self.graph.observed)
        # Kept for fit_uncertainty="bootstrap" (refits on resamples; not saved to files).
        self.__dict__.pop("_bootstrap", None)
        self.__dict__.pop("_parameter_draws", None)
        self.__dict__["_fit_data"] = frame
        self.__dict__["_fit_options"] = dict(
            epochs=epochs, batch_size=batch_size, lr=lr, device=device,
            val_fraction=val_fraction, patience=patience, weight_decay=weight_decay,
            cosine=cosine, seed=seed, num_threads=num_threads,
        )  # fmt: skip
        count = distributed.processes(strategy, devices)
        if count != 1 and self.graph.latent:
            raise ValueError(
                f"strategy={strategy!r}, devices={devices!r}: data-parallel fits support fully "
                f"observed graphs; latent node(s) {list(self.graph.latent)} are fitted by "
                "SVI in one process (leave strategy and devices out)"
            )
        if count > 1:  # spawn the replicas; this model takes rank 0's fit
            if seed is None:
                seed = int(torch.randint(2**31, ()))
            options = dict(epochs=epochs, batch_size=batch_size, lr=lr, device=device,
                           progress=progress, val_fraction=val_fraction, patience=patience,
                           weight_decay=weight_decay, cosine=cosine, seed=seed,
                           num_threads=num_threads, strategy="ddp")  # fmt: skip
            fitted, history = distributed.launch(
                _fit_replica, self, frame, options, devices=count, device=device
            )
            self._adopt(fitted, resolve_device(device))
            return history
        cpu = resolve_device(device).type == "cpu"
        with _torch_threads(num_threads if cpu else None):
            return self._fit(frame, epochs, batch_size, lr, device, progress, val_fraction,
                             patience, weight_decay, cosine, seed,
                             "ddp" if count == 0 else None)  # fmt: skip

    def _adopt(self, fitted: SCM, device: torch.device) -> None:
        """Take the mechanisms, selection and weights of ``fitted`` (a replica's fit)."""
        self.mechanisms, self.selection = fitted.mechanisms, fitted.selection
        self.alternatives = fitted.alternatives
        self.alternative_weights = fitted.alternative_weights
        self._groups, self._slot = fitted._groups, fitted._slot
        self.stacks = fitted.stacks
        for name in ("loc", "scale", "fitted"):
            getattr(self, name).copy_(getattr(fitted, name))
        self.to(device)

    def _fit(
        self,
        frame: pd.DataFrame,
        epochs: int,
        batch_size: int,
        lr: float,
        device: str | torch.device,
        progress: bool,
        val_fraction: float,
        patience: int | None,
        weight_decay: float,
        cosine: bool,
        seed: int | None,
        strategy: str | None = None,
    ) -> History:
        flat = [c for c in frame.columns if frame[c].std() == 0.0 or len(frame) < 2]
        if flat:
            raise ValueError(f"column(s) {flat} have no variation; a mechanism cannot be fitted")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if self.graph.latent:  # SVI with an amortized guide over the latent nodes
            from pyrocausal.inference.posterior import fit_latent

            history = fit_latent(self, frame, epochs=epochs, batch_size=batch_size, lr=lr,
                                 device=device, progress=progress, val_fraction=val_fraction,
                                 patience=patience, weight_decay=weight_decay, cosine=cosine,
                                 seed=seed)  # fmt: skip
            if self.marginal is not None:  # the observed nodes alone (see marginal)
                self.marginal._fit(frame, epochs, batch_size, lr, device, progress,
                                   val_fraction, patience, weight_decay, cosine,
                                   seed)  # fmt: skip
            return history
        dev = resolve_device(device)
        if strategy is not None:  # a replica: its own GPU, and the same seed as every other
            dev = distributed.local_device(dev)
            distributed.join(dev)
            seed = distributed.agree(seed if seed is not None else int(torch.randint(2**31, ())))
        if seed is not None:
            torch.manual_seed(seed)
        self._reset_parameters()  # every fit starts afresh
        self.to(dev)
        x = torch.tensor(frame.to_numpy(), dtype=self.dtype, device=dev)
        with torch.no_grad():
            self.loc.copy_(x.mean(0))
            self.scale.copy_(x.std(0))
            self.fitted.fill_(True)
        z = (x - self.loc) / self.scale
        generator = torch.Generator().manual_seed(
            seed if seed is not None else int(torch.randint(2**31, ()))
        )
        train, val = split_holdout(z, val_fraction, generator)
        options = dict(
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            cosine=cosine,
            seed=seed,
            progress=progress,
            strategy=strategy,
        )
        shadows: tuple[list[nn.Module], list] = ([], [])
        if self.auto is not None:  # builds, starts and pilots the stacks itself
            pilot = max(1, round(epochs * self.auto.pilot_fraction))
            if val is None:  # choose on a hold-out of the training rows all the same
                cut = max(1, len(train) // 5)
                self._select_mechanisms(train[cut:], train[:cut], epochs=pilot, **options)
            else:
                shadows = self._select_mechanisms(train, val, epochs=pilot, **options)
            epochs -= pilot
        else:
            self._initialize(self.stacks, self._groups, train)
        self._freeze_closed_form(self.stacks, self._groups, z)
        if epochs == 0 or not any(p.requires_grad for p in self.stacks.parameters()):
            # Nothing left to fit by gradient (closed-form or written-down mechanisms).
            nll = self._nll(self.stacks, self._groups)
            with torch.no_grad():
                history = History(loss=[float(nll(train))], best_epoch=0)
                if val is not None:
                    history.val_loss.append(float(nll(val)))
        else:
            # Frozen (closed-form) stacks add a constant to the loss: left out of the steps,
            # their share of the training and validation NLL is added to the history once.
            trainable, frozen = self._split_frozen(self.stacks, self._groups)
            with torch.no_grad():
                frozen_nll = self._nll(*frozen) if frozen[0] else None
                offset = (
                    float(frozen_nll(train)) if frozen_nll else 0.0,
                    float(frozen_nll(val)) if frozen_nll and val is not None else 0.0,
                )
            history = self._train(
                (trainable[0] + shadows[0], trainable[1] + shadows[1]),
                train,
                val_data=val,
                epochs=epochs,
                description="SCM.fit",
                loss_offset=offset,
                **options,
            )
        if self.auto is not None and val is not None:
            self._confirm(*shadows, val, z)
            self._challenge(train, val, z)
        return history

    def _train(
        self, trainable: tuple[list[nn.Module], list], rows: Tensor, **options: Any
    ) -> History:
        """:func:`train_mle` of the ``trainable`` stacks and groups (see :meth:`_split_frozen`)
        on ``rows``; stacks of one conditioner shape train as one (see
        :mod:`pyrocausal.fused`), their weights written back after training, also a failed one.
        """
        stacks, groups, write_back = fuse_stacks(*trainable)
        try:
            return train_mle(nn.ModuleList(stacks), self._nll(stacks, groups), rows, **options)
        finally:
            write_back()

    def _initialize(
        self, stacks: nn.ModuleList, groups: list[tuple[Mechanism, list[str]]], train: Tensor
    ) -> None:
        """Least-squares start of every mechanism's linear part (see StackedMechanism).

        Mechanisms in original units (hand-written, discrete) get the rows in original units
        and the node names, and start at their own maximum likelihood (see CustomStack).
        Closed-form stacks are left to :meth:`_freeze_closed_form`, which always follows.
        """
        for stack, (_, nodes) in zip(stacks, groups):
            columns = self._columns(nodes)
            if getattr(stack, "closed_form", False):
                continue
            if getattr(stack, "raw_units", False):
                stack.initialize(self._raw_rows(train), columns, names=self.graph.nodes)
            else:
                stack.initialize(train, columns)

    def _freeze_closed_form(
        self, stacks: nn.ModuleList, groups: list[tuple[Mechanism, list[str]]], rows: Tensor
    ) -> None:
        """Fit linear-Gaussian nodes by least squares on ``rows`` and keep them out of SGD.

        Least squares *is* their maximum-likelihood fit; stochastic gradient steps can only
        move them off it (seen on the benchmark's linear SCMs). Being final, the fit uses
        every row, validation rows included. Discrete nodes with learned logits are treated
        the same way: their design is chosen by cross-validation and their maximum
        likelihood reached by L-BFGS on every row (Adam's polish only added noise to it).
        """
        for stack, (_, nodes) in zip(stacks, groups):
            if getattr(stack, "closed_form", False):
                if getattr(stack, "raw_units", False):  # learned discrete logits (L-BFGS)
                    raw = self._raw_rows(rows)
                    stack.initialize(raw, self._columns(nodes), self.graph.nodes, len(raw))
                else:
                    stack.initialize(rows, self._columns(nodes))
                stack.requires_grad_(False)

    @staticmethod
    def _split_frozen(
        stacks: Sequence[nn.Module], groups: list[tuple[Mechanism, list[str]]]
    ) -> tuple[tuple[list[nn.Module], list], tuple[list[nn.Module], list]]:
        """``(stacks, groups)`` of the stacks with trainable weights, then of the frozen ones.

        Stacks in original units (hand-written, discrete mechanisms) count as trainable:
        their densities are computed row by row with the rest (see :meth:`_nll`).
        """
        trainable: tuple[list[nn.Module], list] = ([], [])
        frozen: tuple[list[nn.Module], list] = ([], [])
        for stack, group in zip(stacks, groups):
            fixed = not getattr(stack, "raw_units", False) and not any(
                p.requires_grad for p in stack.parameters()
            )
            side = frozen if fixed else trainable
            side[0].append(stack)
            side[1].append(group)
        return trainable, frozen

    def _raw_rows(self, rows: Tensor) -> Tensor:
        """Standardized rows back in original units, discrete columns rounded.

        De-standardizing does not give integers back exactly (0 comes back as about
        -6e-8), and discrete mechanisms take only their categories.
        """
        raw = rows * self.scale + self.loc
        discrete = [n for n in self.graph.nodes if self._discrete(n)]
        if discrete:
            columns = self._columns(discrete)
            raw[:, columns] = raw[:, columns].round()
        return raw

    def _nll(
        self, stacks: Sequence[nn.Module], groups: list[tuple[Mechanism, list[str]]]
    ) -> Callable[[Tensor], Tensor]:
        """Mean negative log-likelihood of standardized rows under ``stacks``."""
        columns = [self._columns(nodes) for _, nodes in groups]

        raw_units = [
            (stack, nodes)
            for stack, (_, nodes) in zip(stacks, groups)
            if getattr(stack, "raw_units", False)
        ]

        def nll(batch: Tensor) -> Tensor:
            # (G, n) log densities of each stack, summed over everything at once: the loss
            # is their total over rows and nodes divided by the rows.
            parts = [
                stack.log_prob_all(batch, cols).sum()
                for stack, cols in zip(stacks, columns)
                if not getattr(stack, "raw_units", False)
            ]
            if not raw_units:
                total = parts[0] if len(parts) == 1 else torch.stack(parts).sum()
                return total / -batch.shape[0]
            # Hand-written / discrete mechanisms work in original units, row by row.
            log_prob = sum(parts) / batch.shape[0]  # a per-row mean, broadcast below
            raw = self._raw_rows(batch)
            values = {n: raw[:, i] for i, n in enumerate(self.graph.nodes)}
            for stack, nodes in raw_units:
                for k, node in enumerate(nodes):
                    parents = {p: values[p] for p in self.graph.parents(node)}
                    d = stack.distribution(k, parents, raw.shape[:1])
                    log_prob = log_prob + d.log_prob(values[node])
            return -log_prob.mean()

        return nll

    def _build_stacks(self) -> nn.ModuleList:
        # Nodes that share a mechanism specification are stacked: each keeps its own
        # weights, and one batched pass evaluates all of them.
        groups: dict[Mechanism, list[str]] = {}
        for node in self.graph.nodes:
            groups.setdefault(self.mechanisms[node], []).append(node)
        self._groups = list(groups.items())
        self._slot = {
            node: (g, k)
            for g, (_, nodes) in enumerate(self._groups)
            for k, node in enumerate(nodes)
        }
        return nn.ModuleList(self._build(spec, nodes) for spec, nodes in self._groups)

    def _build(self, spec: Mechanism, nodes: Sequence[str]) -> nn.Module:
        """The stack of ``spec`` over ``nodes``; mechanisms in original units also learn
        which parents are discrete (and their number of categories)."""
        parents = [self._parent_index[n] for n in nodes]
        if not getattr(spec, "raw_units", False):
            return spec.build(parents, len(self.graph))
        categories = [
            [
                int(self.mechanisms[p].num_categories)
                if getattr(self.mechanisms[p], "discrete", False)
                else None
                for p in self.graph.parents(n)
            ]
            for n in nodes
        ]
        return spec.build(parents, len(self.graph), categories=categories)

    def _reset_parameters(self) -> None:
        self.stacks = self._build_stacks().to(device=self.device, dtype=self.dtype)
        self.alternatives = nn.ModuleList()
        self.alternative_weights = torch.ones(1, device=self.device)

    def flow(self, node: str, context: Tensor | None):  # noqa: ANN201
        """The Zuko flow of ``node`` given its parents' standardized values ``(..., k)``."""
        g, k = self._slot[node]
        return self.stacks[g].flow(k, context)

    # ------------------------------------------------------------------ queries
    def _tensors(self, frame: pd.DataFrame) -> dict[str, Tensor]:
        # One conversion of the whole matrix (pandas column by column costs more than the
        # flows on a thousand rows), then a view per column.
        matrix = torch.from_numpy(frame.to_numpy(dtype=np.float64, copy=True))
        matrix = matrix.to(self.device, self.dtype)
        return dict(zip(frame.columns, matrix.T.contiguous()))

    def _frame(self, values: Mapping[str, Tensor], index: pd.Index | None = None) -> pd.DataFrame:
        n = max(v.numel() for v in values.values())
        matrix = torch.stack([values[node].detach().expand(n) for node in self.graph.nodes], -1)
        return pd.DataFrame(
            matrix.cpu().numpy().astype(np.float64), index=index, columns=list(self.graph.nodes)
        )

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("this SCM has not been fitted yet; call scm.fit(data) first")

    def sample(self, num_samples: int, seed: int | None = None) -> pd.DataFrame:
        """Draw ``num_samples`` rows from the observational distribution.

        Example:
            >>> import pyrocausal as pc
            >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
            >>> scm.sample(4, seed=0).shape
            (4, 2)
        """
        return InterventionalSCM(self, {}).sample(num_samples, seed=seed)

    def log_prob(self, data: pd.DataFrame) -> pd.Series:
        """Log density of each row in original units (sum over the nodes' mechanisms).

        Example:
            >>> import pyrocausal as pc
            >>> from pyrocausal.datasets import load_scm
            >>> truth = load_scm("triangle_linear")
            >>> data, test = truth.sample(500, seed=0), truth.sample(200, seed=1)
            >>> scm = pc.SCM(truth.graph, mechanisms="linear")
            >>> _ = scm.fit(data, progress=False, seed=0)
            >>> scm.log_prob(test.head(2)).round(2)
            0   -5.76
            1   -5.69
            Name: log_prob, dtype: float64
            >>> round(float(scm.log_prob(test).mean()), 1)  # held-out nats per row
            -4.1
        """
        frame = check_frame(data, self.graph.nodes)
        values = self._tensors(frame)
        with torch.no_grad():
            trace = poutine.trace(self.model).get_trace(values)
            total = sum(trace.nodes[n]["fn"].log_prob(values[n]) for n in self.graph.nodes)
        return pd.Series(total.cpu().numpy().astype(np.float64), index=frame.index, name="log_prob")

    def do(self, intervention: Intervention) -> InterventionalSCM:
        """The intervened model ``do(intervention)``; this SCM is left unchanged.

        Values are numbers, per-row arrays, or callables of the natural value
        (``{"x2": lambda x: x + 1}``); several variables at once.

        Example:
            >>> import pyrocausal as pc
            >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
            >>> scm.do({"a": 2.0}).sample(3, seed=0)["a"].tolist()
            [2.0, 2.0, 2.0]
        """
        return InterventionalSCM(self, intervention)

    def abduct(self, data: pd.DataFrame) -> pd.DataFrame:
        """Exogenous noise of each fully observed row: a trace of :meth:`guide`.

        Returns a DataFrame with one column per node (the value of site ``"<node>_base"``).

        Example:
            >>> import pyrocausal as pc
            >>> from pyrocausal.datasets import load_scm
            >>> truth = load_scm("triangle_linear")
            >>> data = truth.sample(500, seed=0)
            >>> scm = pc.SCM(truth.graph, mechanisms="linear")
            >>> _ = scm.fit(data, progress=False, seed=0)
            >>> noise = scm.abduct(data)
            >>> list(noise.columns), noise.std().round(1).tolist()  # the noise is N(0, 1)
            (['x1', 'x2', 'x3'], [1.0, 1.0, 1.0])
        """
        self._check_fitted()
        frame = check_frame(data, self.graph.nodes)
        with torch.no_grad():
            trace = poutine.trace(self.guide).get_trace(self._tensors(frame))
        noise = {n: trace.nodes[noise_site(n)]["value"].squeeze(-1) for n in self.graph.nodes}
        return self._frame(noise, frame.index)

    def counterfactual(
        self,
        factual: pd.DataFrame,
        intervention: Intervention,
        num_samples: int | None = None,
        *,
        abduction: Abduction | None = None,
        seed: int | None = None,
        confounding: Confounding | None = None,
        fit_uncertainty: str = "parameters",
    ) -> pd.DataFrame | CausalQueryResult:
        """Counterfactuals of factual rows: abduction, action, prediction.

        Without ``num_samples``: one counterfactual row per fully observed factual row.
        Abduction traces :meth:`guide` (exact flow inversion), action is ``pyro.do`` (or a
        soft-do handler for callables), prediction replays the abducted noise through the
        intervened program. Variables that are not descendants of an intervened one are
        returned as their factual values (recomputing them would only add round-off).

        With ``num_samples``: posterior counterfactuals as a
        :class:`~pyrocausal.results.CausalQueryResult` of ``num_samples`` draws per row.
        Rows may leave variables unobserved (NaN), latent nodes are integrated over, and
        discrete nodes get Gumbel-max counterfactuals; see
        :mod:`pyrocausal.inference.posterior`. With full evidence, no latent and no discrete
        nodes, every draw equals the exact answer.

        Arguments:
            factual: Factual rows, one column per observed node (NaN = not observed when
                ``num_samples`` is given).
            intervention: ``{node: value, per-row array or callable}``.
            num_samples: Posterior draws per row (``None``: the exact one-row answer).
            abduction: How hidden variables are inferred (default
                :class:`~pyrocausal.inference.posterior.SVIAbduction`).
            seed: Seed of the draws (``num_samples`` only).
            confounding: A stated sensitivity range for a latent confounder of the
                intervened treatment and the outcome
                (:class:`~pyrocausal.inference.sensitivity.Confounding`). A query that
                depends on a latent node whose mechanisms were learned raises an
                :class:`~pyrocausal.inference.sensitivity.UnidentifiedQueryWarning`; a latent
                confounder of one treatment and one outcome is then answered under the
                default, wide range (see README, "Latent confounders").
            fit_uncertainty: ``"parameters"`` (default): the uncertainty of the mechanism
                choice and of the least-squares nodes' parameters. Where :meth:`fit` found a
                near-tie between two mechanisms of a node (:attr:`alternatives`), the draws
                are split between the models by their weights (pseudo-BMA: the exponential of
                their held-out log-likelihood); each model's share is split again over
                :data:`PARAMETER_DRAWS` draws of its regressions' coefficients and noise scale
                from their exact posterior (flat prior; saved with the model, the same draws
                every time). Networks and learned discrete logits keep their fit. The draws
                share one fitted guide per missingness pattern (:class:`SVIAbduction`'s
                ``reuse``), so this costs 1.2 to 1.7 times a query of the model alone.
                ``"mechanisms"``: the near-ties only; ``"bootstrap"``: the uncertainty of
                every parameter and of the choices, the draws split over
                :data:`BOOTSTRAP_MEMBERS` refits on bootstrap resamples of the training rows
                (made on first use in the session that fitted the model, then kept; as
                :class:`~pyrocausal.models.SCMEnsemble`); ``"none"``: this model alone.

        Returns:
            Without ``num_samples``, a DataFrame of counterfactual rows (the factual index);
            with it, a :class:`~pyrocausal.results.CausalQueryResult`.

        Example:
            >>> import numpy as np
            >>> import pyrocausal as pc
            >>> from pyrocausal.datasets import load_scm
            >>> from pyrocausal.inference.posterior import ImportanceAbduction
            >>> truth = load_scm("triangle_linear")
            >>> data = truth.sample(500, seed=0)
            >>> scm = pc.SCM(truth.graph, mechanisms="linear")
            >>> _ = scm.fit(data, progress=False, seed=0)
            >>> scm.counterfactual(data.head(2), {"x1": 0.0}).round(2)   # exact, one row each
                x1    x2    x3
            0  0.0 -1.29  0.51
            1  0.0 -0.45  0.06
            >>> evidence = data.head(2).copy()
            >>> evidence["x2"] = np.nan                  # x2 not observed: a distribution
            >>> result = scm.counterfactual(
            ...     evidence, {"x1": 0.0}, num_samples=500,
            ...     abduction=ImportanceAbduction(2000), seed=0)
            >>> result
            CausalQueryResult(counterfactual, do(x1=0.0), 2 row(s) x 500 draws, variables=[...])
            >>> bool((result.summary().loc["x2", "sd"] > 0.5).all())   # x2's noise is unknown
            True
        """
        if num_samples is not None:
            from pyrocausal.inference.posterior import SVIAbduction, counterfactual_query

            if fit_uncertainty == "parameters" and (
                abduction is None or isinstance(abduction, SVIAbduction)
            ):
                # the parameter draws of one model share its fitted guides (one SVI fit)
                abduction = dataclasses.replace(abduction or SVIAbduction(), reuse={})
            return self._pooled(
                fit_uncertainty,
                num_samples,
                seed,
                lambda member, share, member_seed: counterfactual_query(
                    member,
                    factual,
                    intervention,
                    share,
                    abduction=abduction,
                    seed=member_seed,
                    confounding=confounding,
                ),
            )
        self._check_fitted()
        frame = check_frame(factual, self.graph.observed, what="factual", allow_nan=True)
        unobserved = np.isnan(frame.to_numpy()).any(axis=0)
        hidden = list(self.graph.latent) + [c for c, u in zip(frame, unobserved) if u]
        if hidden:
            raise ValueError(
                f"variable(s) {hidden} are not observed in every row (NaN or latent), so the "
                "counterfactual is a distribution: pass num_samples=... (e.g. "
                "num_samples=1000) for posterior draws"
            )
        iv = check_intervention(
            intervention, self.graph, len(frame), dtype=self.dtype, device=self.device
        )
        changed = set(iv).union(*(self.graph.descendants(n) for n in iv))
        discrete = [n for n in changed if n not in iv and self._discrete(n)]
        if discrete:
            raise ValueError(
                f"discrete variable(s) {sorted(discrete)} change under this intervention and "
                "their Gumbel-max counterfactual is a distribution: pass num_samples=..."
            )
        with torch.no_grad():
            tensors = self._tensors(frame)
            # Only the changed nodes run: the others are given their factual values.
            fixed = {n: tensors[n] for n in self.graph.nodes if n not in changed}
            trace = poutine.trace(self.guide).get_trace(tensors, fixed=fixed)
            values = replay_counterfactual(
                self.model, trace, iv, sorted(changed), num_rows=len(frame), fixed=fixed
            )
        # Non-descendants keep their factual values exactly (float64, no round-trip).
        nodes = list(self.graph.nodes)
        matrix = frame[nodes].to_numpy(dtype=np.float64, copy=True)
        for j, node in enumerate(nodes):
            if node in changed:
                matrix[:, j] = values[node].detach().expand(len(frame)).cpu().numpy()
        return pd.DataFrame(matrix, index=frame.index, columns=nodes)

    def ate(
        self,
        target: str,
        treatment: Intervention,
        control: Intervention,
        num_samples: int = 10_000,
        seed: int | None = None,
        fit_uncertainty: str = "parameters",
    ) -> ATEResult:
        """Average treatment effect ``E[target | do(treatment)] - E[target | do(control)]``.

        Both worlds share the same exogenous noise draws (common random numbers), which
        removes most of the Monte Carlo noise from the difference.

        Arguments:
            target: The outcome variable.
            treatment: The intervention of the treated world, e.g. ``{"t": 1.0}``.
            control: The intervention of the control world.
            num_samples: Monte Carlo draws (shared by both worlds).
            seed: Seed of the draws.
            fit_uncertainty: ``"parameters"`` (default): the estimate is the weighted mean
                over the near-tied mechanism choices (:attr:`alternatives`) and the draws of
                the least-squares nodes' parameters (see :meth:`counterfactual`), and ``se``
                includes their weighted spread; ``"mechanisms"``: over the near-ties only;
                ``"bootstrap"``: over the bootstrap refits; ``"none"``: this model alone.

        Returns:
            An :class:`~pyrocausal.results.ATEResult`: a ``float`` (the estimate) whose
            ``se`` is the Monte Carlo standard error of the paired differences plus, with
            several models (``fit_uncertainty``, ``members`` their ATEs), their weighted
            spread, and whose ``interval(prob)`` is the normal interval around it. With
            ``fit_uncertainty="none"`` it measures the Monte Carlo error only, the mechanisms
            taken as known; for the uncertainty of every parameter, networks included, use
            ``"bootstrap"`` or :meth:`SCMEnsemble.ate <pyrocausal.models.SCMEnsemble.ate>`.
            When a learned
            latent node confounds the treatment and the target it warns
            (:class:`~pyrocausal.inference.sensitivity.UnidentifiedQueryWarning`); a latent
            confounder of one treatment and the target is answered under the default
            sensitivity range: ``members`` are the ATEs at 21 values of ``rho`` in
            ``(-0.9, 0.9)`` (their minimum and maximum bound it), ``se`` their spread.

        Example:
            >>> import pyrocausal as pc
            >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
            >>> ate = scm.ate("b", {"a": 1.0}, {"a": 0.0}, num_samples=1000, seed=0)
            >>> isinstance(ate, float), ate.se < 0.1
            (True, True)
            >>> low, high = ate.interval(0.9)
            >>> bool(low <= ate <= high)
            True
        """
        from pyrocausal.results import ATEResult

        self.graph.check_node(target, "target variable")
        if num_samples < 2:
            raise ValueError(f"num_samples must be at least 2, got {num_samples}")
        confounded = self._confounded_ate(target, treatment, control, num_samples, seed)
        if confounded is not None:
            return confounded
        members, w = self._members(fit_uncertainty)
        if len(members) > 1:
            estimates = [
                m.ate(target, treatment, control, num_samples, seed, "none") for m in members
            ]
            values = np.array([float(e) for e in estimates])
            mean = float(w @ values)
            se = math.sqrt(float(w**2 @ np.array([e.se**2 for e in estimates]))
                           + float(w @ (values - mean) ** 2))  # fmt: skip
            return ATEResult(mean, se, num_samples, members=values)
        noise = self._prior_noise(num_samples, seed)
        outcomes = []
        for iv in (treatment, control):
            checked = check_intervention(
                iv, self.graph, num_samples, dtype=self.dtype, device=self.device
            )
            with torch.no_grad():
                values = replay_counterfactual(
                    self.model, noise, checked, self.graph.nodes, num_rows=num_samples
                )
            outcomes.append(values[target].expand(num_samples).double())
        differences = outcomes[0] - outcomes[1]  # paired by the shared noise
        se = differences.std() / math.sqrt(num_samples)
        return ATEResult(float(differences.mean()), float(se), num_samples)

    def _members(self, fit_uncertainty: str) -> tuple[list[SCM], np.ndarray]:
        """The models a query averages over and their weights (see ``fit_uncertainty``)."""
        if fit_uncertainty not in FIT_UNCERTAINTY:
            raise ValueError(
                f"fit_uncertainty must be one of {', '.join(map(repr, FIT_UNCERTAINTY))}, got "
                f"{fit_uncertainty!r}"
            )
        if fit_uncertainty == "bootstrap":
            members = self._bootstrap_members()
            return members, np.full(len(members), 1.0 / len(members))
        if fit_uncertainty == "parameters":
            bases, weights = self._members("mechanisms")
            pairs = [(m, w / len(draws)) for b, w in zip(bases, weights)
                     for draws in [b._parameter_members()] for m in draws]  # fmt: skip
            return [m for m, _ in pairs], np.array([w for _, w in pairs])
        if fit_uncertainty == "mechanisms" and len(self.alternatives):
            return [self, *self.alternatives], self.alternative_weights.double().cpu().numpy()
        return [self], np.ones(1)

    def _parameter_members(self) -> list[SCM]:
        """:data:`PARAMETER_DRAWS` copies of this SCM whose least-squares nodes are draws from
        their posterior (``StackedMechanism.draw_least_squares``; the same draws every time),
        or this SCM alone where it has none."""
        cached = self.__dict__.get("_parameter_draws")
        if cached is not None and cached[0].device == self.device:
            return cached
        regressions = [
            g
            for g, stack in enumerate(self.stacks)
            if getattr(stack, "closed_form", False)
            and not getattr(stack, "raw_units", False)
            and bool((getattr(stack, "ls_dof", torch.zeros(1)) >= 1).any())
        ]
        members: list[SCM] = [self]
        if regressions and not self.graph.latent:
            rng = np.random.default_rng(0)
            state = {
                k: v
                for k, v in self.state_dict().items()
                if not k.startswith(("alternatives.", "marginal.", "alternative_weights"))
            }
            members = []
            for _ in range(PARAMETER_DRAWS):
                draw = SCM(self.graph, self.mechanisms).to(device=self.device, dtype=self.dtype)
                draw.load_state_dict({**state, "alternative_weights": draw.alternative_weights})
                for g in regressions:
                    draw.stacks[g].draw_least_squares(rng)
                draw.__dict__["_parameter_base"] = id(self)  # see SVIAbduction.reuse
                members.append(draw)
        self.__dict__["_parameter_draws"] = members
        return members

    def _bootstrap_members(self) -> list[SCM]:
        """:data:`BOOTSTRAP_MEMBERS` copies of this SCM refitted on bootstrap resamples of its
        training rows with its fit's options (made on first use, then kept)."""
        cached = self.__dict__.get("_bootstrap")
        if cached is not None:
            return cached
        data, options = self.__dict__.get("_fit_data"), self.__dict__.get("_fit_options")
        if data is None or options is None:
            raise ValueError(
                "fit_uncertainty='bootstrap' refits this SCM on resamples of its training rows, "
                "which a loaded or unfitted model does not have: call scm.fit(data) in this "
                "session, or build pc.SCMEnsemble.bootstrap(scm, data) yourself"
            )
        from pyrocausal.models.ensemble import SCMEnsemble

        template = SCM(self.graph, self._mechanism_arg)
        template.to(device=self.device, dtype=self.dtype)
        fit_options = {k: v for k, v in options.items() if k != "seed"}
        ensemble = SCMEnsemble.bootstrap(
            template, data, num_models=BOOTSTRAP_MEMBERS, seed=options["seed"], **fit_options
        )
        self.__dict__["_bootstrap"] = ensemble.members
        return ensemble.members

    def _pooled(
        self,
        fit_uncertainty: str,
        num_samples: int,
        seed: int | None,
        query: Callable[[SCM, int, int | None], CausalQueryResult],
    ) -> CausalQueryResult:
        """``query(member, draws, seed)`` over :meth:`_members`, the draws split evenly and
        pooled (as :class:`~pyrocausal.models.SCMEnsemble` does)."""
        members, weights = self._members(fit_uncertainty)
        if len(members) == 1 and members[0] is self:
            return query(self, num_samples, seed)
        from pyrocausal.models.ensemble import _member_seed, _pool

        shares = np.floor(weights * num_samples).astype(int)
        shares[0] += num_samples - shares.sum()
        parts = [
            query(m, int(k), _member_seed(seed, i))
            for i, (m, k) in enumerate(zip(members, shares))
            if k > 0
        ]
        result = _pool(parts)
        result.info["fit_uncertainty"] = fit_uncertainty
        return result

    def _confounded_ate(
        self,
        target: str,
        treatment: Intervention,
        control: Intervention,
        num_samples: int,
        seed: int | None,
    ) -> ATEResult | None:
        """Warn when the ATE depends on a learned latent confounder; answer a latent
        confounder of one treatment and the target under the default sensitivity range."""
        from pyrocausal.inference import sensitivity as sens
        from pyrocausal.results import ATEResult

        arms = set(treatment) | set(control)
        latent, pair = sens.latent_confounding(self, [target], arms, "interventional")
        if not latent:
            return None
        levels = [arm.get(pair[0]) if pair else None for arm in (treatment, control)]
        supported = (
            pair is not None
            and pair[1] == target
            and set(treatment) == set(control)
            and all(isinstance(v, int | float) for v in levels)
        )
        sens.warn_unidentified(latent, f"the ATE on {target!r}", supported)
        if not supported or self.marginal is None or pair is None:
            return None
        _, ates = sens.confounded_ate(
            self.marginal, pair[0], pair[1], float(levels[0]), float(levels[1]),
            sens.Confounding(), num_samples, seed,
        )  # fmt: skip
        return ATEResult(float(ates.mean()), float(ates.std()), num_samples, members=ates)

    def _discrete(self, node: str) -> bool:
        g, _ = self._slot[node]
        return bool(getattr(self.stacks[g], "discrete", False))

    def _prior_noise(self, num_rows: int, seed: int | None) -> poutine.Trace:
        with _seeded(seed), torch.no_grad():
            return poutine.trace(reparam_noise(self.model, self.graph.nodes)).get_trace(
                num_rows=num_rows
            )

    def render(self, filename: str | os.PathLike | None = None, **options: Any) -> Any:
        """Draw the Pyro program with :func:`pyro.render_model`: sites, plate and edges.

        Returns a :class:`graphviz.Digraph` (an SVG in a notebook). Needs the ``graphviz``
        Python package and the Graphviz ``dot`` program (an ``ImportError`` says what to
        install; :func:`pyrocausal.plotting.plot_graph` needs neither). ``options`` go to
        :func:`pyrocausal.plotting.render_scm`.

        Example:
            >>> import pyrocausal as pc
            >>> scm = pc.SCM({"x1": [], "x2": ["x1"]})
            >>> try:
            ...     print("x1 -> x2" in scm.render().source)
            ... except ImportError:            # graphviz missing: same answer, for the doctest
            ...     print(True)
            True
        """
        from pyrocausal.plotting import render_scm

        return render_scm(self, filename, **options)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save the graph, mechanisms and weights; :meth:`load` restores them exactly.

        Example:
            >>> import os, tempfile
            >>> import pyrocausal as pc
            >>> from pyrocausal.datasets import load_scm
            >>> data = load_scm("triangle_linear").sample(300, seed=0)
            >>> scm = pc.SCM({"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]}, mechanisms="linear")
            >>> _ = scm.fit(data, progress=False, seed=0)
            >>> path = os.path.join(tempfile.mkdtemp(), "scm.pt")
            >>> scm.save(path)
            >>> again = pc.SCM.load(path)
            >>> again.sample(5, seed=0).equals(scm.sample(5, seed=0))
            True
        """
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        torch.save(
            {
                "format": _FORMAT,
                "version": _VERSION,
                "graph": self.graph.to_dict(),
                "latent": list(self.graph.latent),
                "mechanisms": {n: m.to_config() for n, m in self.mechanisms.items()},
                "marginal": None
                if self.marginal is None
                else {n: m.to_config() for n, m in self.marginal.mechanisms.items()},
                "alternatives": _alternative_configs(self),
                "marginal_alternatives": None
                if self.marginal is None
                else _alternative_configs(self.marginal),
                "dtype": str(self.dtype).removeprefix("torch."),
                "state_dict": state,
            },
            Path(path),
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> SCM:
        """Load a model written by :meth:`save` onto ``device``.

        Example:
            >>> import os, tempfile
            >>> import pyrocausal as pc
            >>> path = os.path.join(tempfile.mkdtemp(), "scm.pt")
            >>> pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear").save(path)
            >>> pc.SCM.load(path, device="cpu")
            SCM(2 nodes, 1 edge, not fitted, cpu, float32)
              a         linear
              b <- a    linear
        """
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved pyrocausal SCM")
        if blob.get("version") != _VERSION:
            raise ValueError(
                f"{path} was saved in SCM file format version {blob.get('version')}; this "
                f"pyrocausal reads version {_VERSION} (the mechanisms' weights changed "
                "layout). Fit the model again and save it with this version."
            )
        mechanisms = {n: mechanism_from_config(c) for n, c in blob["mechanisms"].items()}
        graph = CausalGraph(blob["graph"], latent=blob.get("latent", ()))
        scm = cls(graph, mechanisms=mechanisms)
        _restore_alternatives(scm, blob.get("alternatives"))
        if scm.marginal is not None and blob.get("marginal"):
            specs = {n: mechanism_from_config(c) for n, c in blob["marginal"].items()}
            scm.marginal = cls(scm.marginal.graph, mechanisms=specs)
            _restore_alternatives(scm.marginal, blob.get("marginal_alternatives"))
        scm.to(getattr(torch, blob["dtype"]))
        scm.load_state_dict(blob["state_dict"])
        return scm.to(resolve_device(device))

    def extra_repr(self) -> str:
        """The header of the ``nn.Module`` tree (``nn.Module.__repr__(scm)`` prints it all)."""
        mech = ", ".join(f"{n}: {_label(m)}" for n, m in self.mechanisms.items())
        return f"graph={self.graph!r}, mechanisms={{{mech}}}, fitted={bool(self.fitted)}"

    def __repr__(self) -> str:
        """One line per node: its parents and its mechanism; whether fitted; device, dtype.

        The ``nn.Module`` tree of the parameters is ``print(scm.stacks)`` (or
        ``nn.Module.__repr__(scm)``).

        Example:
            >>> import pyrocausal as pc
            >>> pc.SCM({"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]}, mechanisms="linear")
            SCM(3 nodes, 3 edges, not fitted, cpu, float32)
              x1                linear
              x2 <- x1          linear
              x3 <- x1, x2      linear
            >>> pc.SCM({"x1": [], "x2": ["x1"]})  # the default chooses while fitting
            SCM(2 nodes, 1 edge, not fitted, cpu, float32; mechanisms chosen by Auto.light() in fit)
              x1
              x2 <- x1
        """
        graph = self.graph
        edges = sum(len(graph.parents(n)) for n in graph.nodes)
        fitted = "fitted" if bool(self.fitted) else "not fitted"
        dtype = str(self.dtype).removeprefix("torch.")
        pending = self.auto is not None and not bool(self.fitted)
        choice = ""
        if pending:
            name = (
                "Auto.light()"
                if self.auto == Auto.light()
                else "Auto()"
                if self.auto == Auto()
                else "Auto(...)"
            )
            choice = f"; mechanisms chosen by {name} in fit"
        head = (
            f"SCM({len(graph.nodes)} node{'s' * (len(graph.nodes) != 1)}, {edges} "
            f"edge{'s' * (edges != 1)}, {fitted}, {self.device}, {dtype}{choice})"
        )
        latent = set(graph.latent)
        rows = []
        for n in graph.nodes:
            parents = graph.parents(n)
            left = n + (f" <- {', '.join(parents)}" if parents else "")
            left += " (latent)" if n in latent else ""
            rows.append((left, "" if pending else _label(self.mechanisms[n])))
        width = max(len(left) for left, _ in rows) + 4
        lines = [f"  {left:<{width}}{right}".rstrip() for left, right in rows]
        return "\n".join([head, *lines])


class InterventionalSCM:
    """A view of an :class:`SCM` under an intervention; its :attr:`model` is ``pyro.do``.

    Made by :meth:`SCM.do`. The underlying SCM is shared, not copied, and not changed.

    Example:
        >>> import pyrocausal as pc
        >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
        >>> doing = scm.do({"b": 0.0})
        >>> doing, doing.graph.parents("b")          # do() cuts b's incoming edge
        (InterventionalSCM(do={'b': 0.0}), ())
    """

    def __init__(self, scm: SCM, intervention: Intervention) -> None:
        check_intervention(intervention, scm.graph)
        self.scm = scm
        self.intervention = dict(intervention)

    @property
    def graph(self) -> CausalGraph:
        """The mutilated graph (incoming edges of the intervened nodes removed)."""
        return self.scm.graph.do(self.intervention)

    def _checked(self, num_rows: int | None) -> dict[str, Any]:
        return check_intervention(
            self.intervention,
            self.scm.graph,
            num_rows,
            dtype=self.scm.dtype,
            device=self.scm.device,
        )

    @property
    def model(self):  # noqa: ANN201
        """The intervened Pyro program: :func:`pyro.do` (or soft-do) applied to ``scm.model``."""
        from pyrocausal.handlers import intervene

        return intervene(self.scm.model, self._checked(None))

    def sample(self, num_samples: int, seed: int | None = None) -> pd.DataFrame:
        """Draw ``num_samples`` rows from the interventional distribution.

        Example:
            >>> import pyrocausal as pc
            >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
            >>> doing = scm.do({"a": lambda a: a + 1.0})    # a shift: a := a + 1
            >>> draws = doing.sample(4, seed=0)
            >>> bool((draws["a"] - scm.sample(4, seed=0)["a"] - 1.0).abs().max() < 1e-6)
            True
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        from pyrocausal.handlers import intervene

        model = intervene(self.scm.model, self._checked(num_samples))
        with _seeded(seed), torch.no_grad():
            values = model(num_rows=num_samples)
        return self.scm._frame(values)

    def query(
        self, num_samples: int, seed: int | None = None, fit_uncertainty: str = "parameters"
    ) -> CausalQueryResult:
        """Interventional draws as a :class:`~pyrocausal.results.CausalQueryResult`.

        ``fit_uncertainty`` as in :meth:`SCM.counterfactual`: by default the draws are split
        between the SCM and its :attr:`~SCM.alternatives` (near-tied mechanisms) when it
        has them, and over draws of its least-squares nodes' parameters.

        Its ``samples`` are :meth:`sample`'s rows (row ``0``, one draw each); its ``factual``
        group holds observational draws with the same seed (common random numbers), so
        ``.summary(hdi_prob=0.9)`` and ``.plot()`` compare doing with seeing.

        Example:
            >>> import pyrocausal as pc
            >>> scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms="linear")
            >>> scm.do({"a": 2.0}).query(num_samples=100, seed=0).summary().loc["a", "mean"]
            row
            0    2.0
            Name: mean, dtype: float64
        """
        from pyrocausal.inference.posterior import interventional_query

        return self.scm._pooled(
            fit_uncertainty,
            num_samples,
            seed,
            lambda member, share, member_seed: interventional_query(
                member, self.intervention, share, seed=member_seed
            ),
        )

    def __repr__(self) -> str:
        return f"InterventionalSCM(do={self.intervention!r})"


def _fit_replica(
    scm: SCM, frame: pd.DataFrame, options: Mapping[str, Any]
) -> tuple[SCM, History] | None:
    """What each spawned replica runs: the fit, then rank 0's model (on the CPU) and history."""
    history = scm.fit(frame, **options)
    return (scm.cpu(), history) if distributed.is_main_process() else None


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with ``num_threads`` torch threads (``None``: unchanged), then restore."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _seeded:
    """Seed torch's RNG inside a block without touching the caller's RNG state."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        if self.seed is not None:
            self._fork = torch.random.fork_rng(devices=[])
            self._fork.__enter__()
            torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        if self.seed is not None:
            self._fork.__exit__(*exc)


def _alternative_configs(scm: SCM) -> list[dict[str, Any]]:
    """The mechanism configurations of ``scm``'s near-tie alternatives (for :meth:`SCM.save`)."""
    return [{n: m.to_config() for n, m in alt.mechanisms.items()} for alt in scm.alternatives]


def _restore_alternatives(scm: SCM, configs: Sequence[Mapping[str, Any]] | None) -> None:
    """Empty alternatives of ``scm`` from saved configurations, for its state dict to fill."""
    if not configs:
        return
    scm.alternatives = nn.ModuleList(
        SCM(scm.graph, mechanisms={n: mechanism_from_config(c) for n, c in alt.items()})
        for alt in configs
    )
    scm.alternative_weights = torch.ones(len(configs) + 1)


def _label(spec: Mechanism) -> str:
    """A mechanism's short name for reprs: ``_describe`` where it applies, else its class."""
    try:
        return _describe(spec)
    except AttributeError:  # a user's Mechanism without hidden_features
        return type(spec).__name__


def _broadcast(a: Sequence[int], b: Sequence[int]) -> torch.Size:
    """``torch.broadcast_shapes(a, b)``, without its cost in the common cases of a query
    (equal shapes, or one of them empty): about 0.1 ms a call, twice per node and query."""
    if len(b) == 0 or tuple(a) == tuple(b):
        return torch.Size(a)
    if len(a) == 0:
        return torch.Size(b)
    return torch.broadcast_shapes(a, b)


def _num_rows(data: Mapping[str, Tensor], num_rows: int | None) -> int:
    sizes = {int(v.shape[-1]) for v in data.values() if v.dim() > 0}
    if num_rows is not None:
        sizes.add(int(num_rows))
    if len(sizes) > 1:
        raise ValueError(f"the variables have different numbers of rows: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _resolve_one(spec: Any, node: str | None = None) -> Mechanism | Auto:
    """One node's mechanism argument: a :class:`Mechanism`, its config or name, or a rule."""
    if spec is None or (isinstance(spec, str) and spec == "default"):
        return Auto.light()
    if isinstance(spec, str) and spec == "auto":
        return Auto()
    if isinstance(spec, str) and spec == "flexible":
        return Auto.flexible()
    if isinstance(spec, Auto):
        return spec
    if isinstance(spec, Mechanism | str | Mapping):
        try:
            return mechanism_from_config(spec if not isinstance(spec, Mapping) else dict(spec))
        except (TypeError, ValueError) as exc:
            where = f" for node {node!r}" if node is not None else ""
            raise ValueError(
                f"bad mechanism{where}: {exc} (or 'default' for Auto.light(), 'auto' for "
                "Auto(), 'flexible' for Auto.flexible())"
            ) from exc
    where = f" of node {node!r}" if node is not None else ""
    raise TypeError(
        f"the mechanism{where} must be a Mechanism, an Auto rule, a name or a config mapping, "
        f"got {type(spec).__name__}"
    )


def _resolve_mechanisms(
    graph: CausalGraph, mechanisms: MechanismArg
) -> dict[str, Mechanism | Auto]:
    """Every node's mechanism or selection rule; nodes left out of a mapping get the default."""
    if isinstance(mechanisms, Mapping):
        unknown = [n for n in mechanisms if n not in graph]
        if unknown:
            raise GraphError(
                f"mechanisms given for unknown node(s) {unknown}; graph has {list(graph.nodes)}"
            )
        return {n: _resolve_one(mechanisms.get(n), n) for n in graph.nodes}
    if not isinstance(mechanisms, Mechanism | Auto | str | None):
        raise TypeError(
            "mechanisms must be a Mechanism, an Auto rule, a name or a mapping node -> "
            "Mechanism, got " + type(mechanisms).__name__
        )
    spec = _resolve_one(mechanisms)
    return {n: spec for n in graph.nodes}
