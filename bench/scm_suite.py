"""Counterfactual accuracy and speed of pyrocausal against its peers on the tabular SCM suite.

One command fits every library on every SCM of :func:`pyrocausal.datasets.list_scms` and
scores it against the exact ground truth (the true exogenous noise of every test row is known)::

    .venv-bench/bin/python bench/scm_suite.py                 # full run (see README.md)
    .venv-bench/bin/python bench/scm_suite.py --quick         # a few minutes
    .venv-bench/bin/python bench/scm_suite.py --variants maf,nsf,linear,auto --seeds 0,1

Libraries (a peer whose import fails is skipped with a printed note):

* ``pyrocausal``: ``pc.SCM(graph)`` with its default mechanisms; ``pyrocausal-<variant>``:
  ``pc.SCM(graph, mechanisms=<variant>)`` for each ``--variants`` entry.
* ``causalflows-maf`` / ``causalflows-nsf``: ``causalflows.flows.CausalMAF`` / ``CausalNSF``,
  one masked flow over all variables, ``adjacency`` from the graph; queries through
  causalflows' own ``sample_interventional`` and ``compute_counterfactual``.
* ``dowhy-gcm``: ``gcm.InvertibleStructuralCausalModel`` with
  ``gcm.auto.assign_causal_mechanisms(quality=GOOD)``; ``gcm.interventional_samples`` and
  ``gcm.counterfactual_samples``.

ChiRho cross-check: ChiRho's ``MultiWorldCounterfactual`` and ``TwinWorldCounterfactual`` with
``chirho.interventional.handlers.do`` and ``chirho.observational.handlers.condition`` run on
pyrocausal's own fitted ``scm.model`` (ChiRho abducts the noise itself from the observed
``TransformedDistribution`` sites) and must reproduce ``scm.counterfactual``.

Protocol and metric definitions are written out in :data:`PROTOCOL` (also stored in the JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib
import inspect
import json
import math
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

PROTOCOL = {
    "data": (
        "Per SCM and seed s: n_samples rows from the true SCM (numpy seed s), randomly split "
        "80/10/10 into train/val/test (seed s). Every library sees the same train+val rows "
        "and is scored on the same test rows."
    ),
    "training": (
        "Flow models (pyrocausal, causalflows) share one budget: epochs, batch size, Adam lr "
        "with cosine annealing to 1% of lr, early stopping on the validation NLL with the same "
        "patience, best epoch kept. pyrocausal receives train+val and holds out the same "
        "number of rows itself (val_fraction = 1/9) unless SCM.fit takes val_data; its "
        "closed-form (least-squares) nodes are refitted on all train+val rows. causalflows "
        "trains on train and stops on val. DoWhy-gcm fits on the train+val rows too "
        "(--dowhy-rows train keeps it to the train rows); its automatic assignment "
        "cross-validates internally."
    ),
    "units": (
        "All error metrics are in standardized units: each variable divided by its "
        "training-set standard deviation (and centred by its mean for MMD), so SCMs and "
        "variables of different scales are comparable."
    ),
    "obs_mmd": (
        "MMD between n_eval model samples and n_eval held-out test rows: biased (V-statistic) "
        "estimate of MMD^2 with an RBF kernel exp(-d^2 / (2 h^2)), h = median pairwise "
        "distance of the pooled samples; the square root is reported."
    ),
    "int_mmd": (
        "Same MMD between n_eval model samples of do(x_k = v) and n_eval true interventional "
        "samples, averaged over every intervened node x_k of the SCM and v in its 25th, 50th "
        "and 75th observational percentiles."
    ),
    "cf_rmse": (
        "For each intervened node x_k and v in its 25/50/75th percentiles: counterfactuals of "
        "the first n_eval test rows (ground truth from their true noise); RMSE over those rows "
        "and all descendants of x_k (x_k itself and non-descendants excluded), standardized "
        "units; then the mean over the (x_k, v) queries."
    ),
    "ate_rmse": (
        "For each intervened node x_k, percentile pair (a, b) in (25,50), (25,75), (50,75) and "
        "descendant target t: ATE = E[t | do(x_k=b)] - E[t | do(x_k=a)]; the error against the "
        "true ATE (100,000 common-noise draws) divided by sd(t); RMSE over all "
        "(x_k, pair, t). Models estimate with n_ate common-noise draws (pyrocausal: scm.ate; "
        "peers: the mean difference of two counterfactuals of n_ate of their own samples)."
    ),
    "loglik": (
        "Mean held-out log-likelihood per test row in ORIGINAL units (nats); causalflows' "
        "density is corrected for the standardization. Not defined for DoWhy-gcm."
    ),
    "fit_seconds": "Wall time of fitting (DoWhy: mechanism assignment + fit).",
    "cf_ms_per_1000": (
        "Wall time of one counterfactual query (n_eval factual rows, one intervention) per "
        "1,000 rows in milliseconds, timed after every library of the SCM and seed is fitted, "
        "in 5 interleaved rounds (each round runs every query of every library, the "
        "libraries' order rotating from round to round, so a slow spell of the machine hits "
        "all of them alike): the fastest of the 5 for each query, then the median over the "
        "SCM's queries."
    ),
}

PEERS = ("causalflows-maf", "causalflows-nsf", "dowhy-gcm")
# "No worse than the best peer" allows this relative margin: two least-squares fits of the
# same rows agree to ~1e-7 (collider_linear: ratio 1.00000006), which is a tie, not a loss.
TIE = 1e-3
QUICK_SCMS = ("chain_linear", "triangle_nonlinear", "vaca_triangle_nonadditive")
RANDOM_POOLS = ("random-tune", "random-eval")  # pyrocausal.datasets.POOLS
METRICS = ("cf_rmse", "ate_rmse", "obs_mmd", "int_mmd", "loglik", "fit_seconds", "cf_ms_per_1000")
QUANTILES = (0.25, 0.5, 0.75)
CF_REPEATS = 5  # interleaved timing rounds of every counterfactual query; the fastest counts
ATE_PAIRS = ((0, 1), (0, 2), (1, 2))  # indices into QUANTILES


class Skip(Exception):
    """A library cannot run here (its import failed); the message says why."""


# ---------------------------------------------------------------------------------- metrics
def mmd_rbf(x: np.ndarray, y: np.ndarray) -> float:
    """Biased RBF-kernel MMD (square root of the V-statistic) with the median heuristic.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
        >>> mmd_rbf(a, b) < mmd_rbf(a, b + 1.0)
        True
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.concatenate([x, y])
    sq = np.sum(z**2, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    n = len(z)
    off = d2[~np.eye(n, dtype=bool)]
    h2 = float(np.median(off))
    if not h2 > 0:
        h2 = 1.0
    k = np.exp(-d2 / (2 * h2))
    m = len(x)
    kxx, kyy, kxy = k[:m, :m].mean(), k[m:, m:].mean(), k[:m, m:].mean()
    return float(math.sqrt(max(kxx + kyy - 2 * kxy, 0.0)))


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# ---------------------------------------------------------------------------------- adapters
class Adapter:
    """One library behind a common interface; every frame is in original units."""

    name = "adapter"

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> None:
        raise NotImplementedError

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        raise NotImplementedError

    def interventional(self, node: str, value: float, n: int, seed: int) -> pd.DataFrame:
        raise NotImplementedError

    def counterfactual(self, factual: pd.DataFrame, node: str, value: float) -> pd.DataFrame:
        raise NotImplementedError

    def ates(
        self, targets: Sequence[str], node: str, values: Sequence[float], n: int, seed: int
    ) -> dict[tuple[int, int, str], float]:
        """``{(i, j, target): E[t | do(node=values[j])] - E[t | do(node=values[i])]}``."""
        base = self.sample(n, seed)
        cfs = [self.counterfactual(base, node, v) for v in values]
        return {
            (i, j, t): float(np.mean(cfs[j][t].to_numpy() - cfs[i][t].to_numpy()))
            for i, j in ATE_PAIRS
            for t in targets
        }

    def loglik(self, test: pd.DataFrame) -> float | None:
        return None


def _mechanisms(variant: str | None) -> Any:
    """``None``, a mechanism name, ``auto``, or ``name:HxW`` (hidden sizes: ``maf:32x32``,
    ``auto:32x32`` / ``light:32x32`` for the candidates (and refinement) of ``Auto()`` /
    ``Auto.light()`` with networks of that size)."""
    if variant in ("light+pnl", "light+pnl-spline"):  # Auto.light() refined by PostNonlinear
        from pyrocausal.mechanisms import Auto, PostNonlinear

        shape = "sinh-arcsinh" if variant == "light+pnl" else "spline"
        refinement = PostNonlinear(hidden_features=(24, 24), noise_shape=shape)
        return dataclasses.replace(Auto.light(), refinement=refinement)
    if variant in ("light+pnl-confirm", "light+pnl-nsf-confirm"):
        # PostNonlinear after the sinh-arcsinh refinement, confirmed after training (and, in
        # the second, a conditional spline after it, confirmed too)
        from pyrocausal.mechanisms import NSF, Auto, PostNonlinear

        pnl = PostNonlinear(hidden_features=(24, 24), noise_shape="sinh-arcsinh")
        ladder: tuple = (pnl,)
        if variant == "light+pnl-nsf-confirm":
            ladder += (NSF(hidden_features=(24, 24), location_scale=True),)
        return dataclasses.replace(Auto.light(), refinements=ladder, confirm=ladder)
    if variant == "light+spline":  # Auto.light() refined by a spline noise shape
        from pyrocausal.mechanisms import Auto, LocationScale

        refinement = LocationScale(hidden_features=(24, 24), noise_shape="spline")
        return dataclasses.replace(Auto.light(), refinement=refinement)
    if variant == "light+nsf":  # Auto.light() refined by a conditional spline
        from pyrocausal.mechanisms import NSF, Auto

        return dataclasses.replace(Auto.light(), refinement=NSF(hidden_features=(24, 24)))
    if variant == "light+nsf-ls":  # ... whose spline follows a conditional location-scale
        from pyrocausal.mechanisms import NSF, Auto

        refinement = NSF(hidden_features=(24, 24), location_scale=True)
        return dataclasses.replace(Auto.light(), refinement=refinement)
    if variant in ("light+nsf-ls-quantile", "light+ladder-quantile"):
        # the same, confirmed by the quantile loss (Auto.confirm_by)
        return dataclasses.replace(
            _mechanisms(variant.replace("-quantile", "-confirm" if "nsf" in variant else "")),
            confirm_by="quantile",
        )
    if variant == "flexible-confirm-all":  # Auto.flexible() confirming both splines
        from pyrocausal.mechanisms import Auto

        flexible = Auto.flexible()
        return dataclasses.replace(flexible, confirm=flexible.ladder[1:])
    if variant == "light+ladder-nonsf":  # the ladder's parent-free spline noise only
        from pyrocausal.mechanisms import Auto, LocationScale

        spline = LocationScale(hidden_features=(24, 24), noise_shape="spline")
        return dataclasses.replace(Auto.light(), refinements=(spline,))
    if variant in ("light+nsf-ls-confirm", "light+ladder", "light+ladder-noconfirm"):
        # conditional spline refinements confirmed after training (Auto.confirm); the ladder
        # puts a parent-free spline noise between the MAF and the conditional spline
        from pyrocausal.mechanisms import NSF, Auto, LocationScale

        nsf = NSF(hidden_features=(24, 24), location_scale=True)
        confirm = () if variant.endswith("noconfirm") else (nsf,)
        if variant == "light+nsf-ls-confirm":
            return dataclasses.replace(Auto.light(), refinement=nsf, confirm=confirm)
        spline = LocationScale(hidden_features=(24, 24), noise_shape="spline")
        return dataclasses.replace(Auto.light(), refinements=(spline, nsf), confirm=confirm)
    if variant == "light-norefine":  # Auto.light() without its refinement (MAFs only)
        from pyrocausal.mechanisms import Auto

        return dataclasses.replace(Auto.light(), refinement=None)
    if variant == "light-shaped":  # Auto.light() whose networks are all the refinement's
        from pyrocausal.mechanisms import Auto

        light = Auto.light()
        candidates = tuple(c if c.closed_form else light.refinement for c in light.candidates)
        return dataclasses.replace(light, candidates=candidates, refinement=None)
    if variant == "light-noquadratic":  # Auto.light() without the quadratic regression
        from pyrocausal.mechanisms import Auto

        light = Auto.light()
        candidates = tuple(c for c in light.candidates if getattr(c, "degree", 1) != 2)
        return dataclasses.replace(light, candidates=candidates)
    if variant == "light-nonested":  # Auto.light() without the F-test for the quadratic
        from pyrocausal.mechanisms import Auto

        return dataclasses.replace(Auto.light(), nested_alpha=0.0)
    if variant == "light-noscale":  # Auto.light() without its constant-scale test
        from pyrocausal.mechanisms import Auto

        return dataclasses.replace(Auto.light(), scale_alpha=0.0)
    if variant is None or ":" not in variant:
        return variant
    from pyrocausal.mechanisms import mechanism_from_config

    kind, sizes = variant.split(":")
    hidden = tuple(int(h) for h in sizes.split("x"))
    if kind in ("auto", "light"):  # the candidates with networks of this size
        from pyrocausal.mechanisms import Auto

        base = Auto() if kind == "auto" else Auto.light()
        refinement = base.refinement
        return dataclasses.replace(
            base,
            candidates=tuple(
                c if not c.hidden_features else dataclasses.replace(c, hidden_features=hidden)
                for c in base.candidates
            ),
            refinement=refinement and dataclasses.replace(refinement, hidden_features=hidden),
        )
    return mechanism_from_config({"type": kind, "hidden_features": list(hidden)})


class PyroCausal(Adapter):
    def __init__(self, truth: Any, variant: str | None, budget: dict[str, Any], device: str):
        import pyrocausal as pc

        self.name = "pyrocausal" if variant is None else f"pyrocausal-{variant}"
        # "VARIANT@wd=W": the variant's mechanisms fitted with Adam weight decay W
        # ("default@wd=1e-4" for the default mechanisms)
        self.weight_decay = 0.0
        if variant is not None and "@wd=" in variant:
            variant, wd = variant.split("@wd=")
            self.weight_decay = float(wd)
            variant = None if variant == "default" else variant
        self.scm = pc.SCM(truth.graph, _mechanisms(variant))
        self.budget = budget
        self.device = device

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> None:
        params = inspect.signature(self.scm.fit).parameters
        kwargs: dict[str, Any] = {
            "epochs": self.budget["epochs"],
            "batch_size": self.budget["batch_size"],
            "lr": self.budget["lr"],
            "device": self.device,
            "progress": False,
            "seed": self.budget["seed"],
            "patience": self.budget["patience"],
            "weight_decay": self.weight_decay,
        }
        if "val_data" in params:
            kwargs["val_data"] = val
            data = train
        else:
            data = pd.concat([train, val], ignore_index=True)
            kwargs["val_fraction"] = len(val) / len(data)
        kwargs = {k: v for k, v in kwargs.items() if k in params}
        self.history = self.scm.fit(data, **kwargs)

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        return self.scm.sample(n, seed=seed)

    def interventional(self, node: str, value: float, n: int, seed: int) -> pd.DataFrame:
        return self.scm.do({node: value}).sample(n, seed=seed)

    def counterfactual(self, factual: pd.DataFrame, node: str, value: float) -> pd.DataFrame:
        return self.scm.counterfactual(factual, {node: value})

    def ates(
        self, targets: Sequence[str], node: str, values: Sequence[float], n: int, seed: int
    ) -> dict[tuple[int, int, str], float]:
        return {
            (i, j, t): self.scm.ate(
                t, {node: values[j]}, {node: values[i]}, num_samples=n, seed=seed
            )
            for i, j in ATE_PAIRS
            for t in targets
        }

    def loglik(self, test: pd.DataFrame) -> float | None:
        return float(self.scm.log_prob(test).mean())


def train_flow(
    module: torch.nn.Module,
    nll: Callable[[torch.Tensor], torch.Tensor],
    train: torch.Tensor,
    val: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int | None,
    seed: int,
) -> int:
    """Adam + cosine annealing to 1% of ``lr`` + early stopping on ``val``; best epoch kept.

    The same protocol as ``pyrocausal.SCM.fit``; returns the number of epochs run.
    """
    import copy

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    steps = math.ceil(len(train) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps, eta_min=lr * 0.01)
    best, best_state, since = math.inf, copy.deepcopy(module.state_dict()), 0
    epoch = 0
    for epoch in range(epochs):  # noqa: B007
        module.train()
        order = torch.randperm(len(train), generator=gen).to(train.device)
        for s in range(steps):
            loss = nll(train[order[s * batch_size : (s + 1) * batch_size]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        module.eval()
        with torch.no_grad():
            score = float(nll(val))
        if score < best - 1e-6:
            best, best_state, since = score, copy.deepcopy(module.state_dict()), 0
        else:
            since += 1
        if patience is not None and since >= patience:
            break
    module.load_state_dict(best_state)
    return epoch + 1


class CausalFlows(Adapter):
    def __init__(self, truth: Any, kind: str, budget: dict[str, Any], device: str):
        try:
            from causalflows.flows import CausalMAF, CausalNSF
        except ImportError as err:
            raise Skip(f"causalflows is not importable ({err})") from None
        self.name = f"causalflows-{kind}"
        self.nodes = list(truth.nodes)
        d = len(self.nodes)
        # zuko's convention: adjacency[i, j] = True when x_i depends on x_j; ones on the diagonal.
        adjacency = torch.eye(d, dtype=torch.bool)
        for i, node in enumerate(self.nodes):
            for p in truth.graph.parents(node):
                adjacency[i, self.nodes.index(p)] = True
        torch.manual_seed(budget["seed"])
        cls = CausalMAF if kind == "maf" else CausalNSF
        self.flow = cls(d, adjacency=adjacency).to(device)
        self.budget = budget
        self.device = device

    def _z(self, frame: pd.DataFrame) -> torch.Tensor:
        x = torch.tensor(frame[self.nodes].to_numpy(), dtype=torch.float32, device=self.device)
        return (x - self.mu) / self.sd

    def _frame(self, z: torch.Tensor) -> pd.DataFrame:
        x = (z * self.sd + self.mu).detach().cpu().double().numpy()
        return pd.DataFrame(x, columns=self.nodes)

    def _value(self, node: str, value: float) -> tuple[int, torch.Tensor]:
        i = self.nodes.index(node)
        return i, ((torch.tensor(float(value), device=self.device) - self.mu[i]) / self.sd[i])

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> None:
        x = torch.tensor(train[self.nodes].to_numpy(), dtype=torch.float32, device=self.device)
        self.mu, self.sd = x.mean(0), x.std(0)
        b = self.budget
        self.epochs_run = train_flow(
            self.flow,
            lambda batch: -self.flow().log_prob(batch).mean(),
            self._z(train),
            self._z(val),
            epochs=b["epochs"],
            batch_size=b["batch_size"],
            lr=b["lr"],
            patience=b["patience"],
            seed=b["seed"],
        )

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        torch.manual_seed(seed)
        with torch.no_grad():
            return self._frame(self.flow().sample((n,)))

    def interventional(self, node: str, value: float, n: int, seed: int) -> pd.DataFrame:
        i, v = self._value(node, value)
        torch.manual_seed(seed)
        with torch.no_grad():
            z = self.flow().sample_interventional(i, v, (n,))
        return self._frame(z)

    def counterfactual(self, factual: pd.DataFrame, node: str, value: float) -> pd.DataFrame:
        i, v = self._value(node, value)
        with torch.no_grad():
            z = self.flow().compute_counterfactual(self._z(factual), i, v)
        out = self._frame(z)
        out.index = factual.index
        return out

    def loglik(self, test: pd.DataFrame) -> float | None:
        with torch.no_grad():
            lp = self.flow().log_prob(self._z(test)) - torch.log(self.sd).sum()
        return float(lp.mean())


class DoWhyGCM(Adapter):
    name = "dowhy-gcm"

    def __init__(self, truth: Any, budget: dict[str, Any], rows: str = "train"):
        try:
            import networkx as nx
            from dowhy import gcm
        except ImportError as err:
            raise Skip(f"dowhy is not importable ({err})") from None
        self.gcm = gcm
        gcm.config.disable_progress_bars()
        graph = nx.DiGraph()
        graph.add_nodes_from(truth.nodes)
        graph.add_edges_from((p, n) for n in truth.nodes for p in truth.graph.parents(n))
        self.model = gcm.InvertibleStructuralCausalModel(graph)
        self.nodes = list(truth.nodes)
        self.seed = budget["seed"]
        self.rows = rows

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> None:
        both = self.rows == "train+val"
        data = pd.concat([train, val], ignore_index=True) if both else train
        self.gcm.util.general.set_random_seed(self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.gcm.auto.assign_causal_mechanisms(
                self.model, data, quality=self.gcm.auto.AssignmentQuality.GOOD
            )
            self.gcm.fit(self.model, data)
        self.assigned = {n: str(self.model.causal_mechanism(n)) for n in self.nodes}

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        self.gcm.util.general.set_random_seed(seed)
        return self.gcm.draw_samples(self.model, n)[self.nodes]

    def interventional(self, node: str, value: float, n: int, seed: int) -> pd.DataFrame:
        self.gcm.util.general.set_random_seed(seed)
        out = self.gcm.interventional_samples(
            self.model, {node: lambda x: np.full_like(x, value)}, num_samples_to_draw=n
        )
        return out[self.nodes]

    def counterfactual(self, factual: pd.DataFrame, node: str, value: float) -> pd.DataFrame:
        out = self.gcm.counterfactual_samples(
            self.model,
            {node: lambda x: np.full_like(x, value)},
            observed_data=factual[self.nodes].reset_index(drop=True),
        )
        out = out[self.nodes]
        out.index = factual.index
        return out


def make_adapter(library: str, truth: Any, budget: dict[str, Any], device: str) -> Adapter:
    if library == "pyrocausal":
        return PyroCausal(truth, None, budget, device)
    if library.startswith("pyrocausal-"):
        return PyroCausal(truth, library.removeprefix("pyrocausal-"), budget, device)
    if library in ("causalflows-maf", "causalflows-nsf"):
        return CausalFlows(truth, library.removeprefix("causalflows-"), budget, device)
    if library == "dowhy-gcm":
        return DoWhyGCM(truth, budget, budget.get("dowhy_rows", "train+val"))
    raise ValueError(f"unknown library {library!r}")


# ---------------------------------------------------------------------------------- ground truth
class Task:
    """Data, split, queries and exact answers of one (SCM, seed)."""

    def __init__(self, truth: Any, seed: int, n_samples: int, n_eval: int, n_ate: int):
        self.truth = truth
        self.seed = seed
        data, noise = truth.sample_with_noise(n_samples, seed=seed)
        perm = np.random.default_rng(seed).permutation(n_samples)
        n_tr, n_va = int(0.8 * n_samples), int(0.1 * n_samples)
        self.train = data.iloc[perm[:n_tr]].reset_index(drop=True)
        self.val = data.iloc[perm[n_tr : n_tr + n_va]].reset_index(drop=True)
        test_idx = perm[n_tr + n_va :]
        self.test = data.iloc[test_idx].reset_index(drop=True)
        self.test_noise = noise.iloc[test_idx].reset_index(drop=True)
        self.mu = self.train.mean()
        self.sd = self.train.std()
        self.n_eval = min(n_eval, len(self.test))
        self.n_ate = n_ate
        self.factual = self.test.head(self.n_eval)
        self.factual_noise = self.test_noise.head(self.n_eval)
        self.queries: list[tuple[str, int, float]] = []
        self.values: dict[str, list[float]] = {}
        for node in truth.intervened:
            self.values[node] = truth.intervention_values(node, QUANTILES)
            self.queries += [(node, q, v) for q, v in enumerate(self.values[node])]
        self.descendants = {
            node: [d for d in truth.nodes if d in truth.graph.descendants(node)]
            for node in truth.intervened
        }

    def standardize(self, frame: pd.DataFrame) -> np.ndarray:
        nodes = list(self.truth.nodes)
        return ((frame[nodes] - self.mu[nodes]) / self.sd[nodes]).to_numpy(np.float64)


_TRUE_ATE: dict[str, dict[tuple[str, int, int, str], float]] = {}


def true_ates(truth: Any, task: Task, n: int = 100_000) -> dict[tuple[str, int, int, str], float]:
    """Exact-up-to-Monte-Carlo ATEs with 100,000 common-noise draws (cached per SCM)."""
    if truth.name not in _TRUE_ATE:
        noise = truth.sample_noise(n, seed=12345)
        out: dict[tuple[str, int, int, str], float] = {}
        for node, values in task.values.items():
            worlds = [truth.compute(noise, {node: v}) for v in values]
            for i, j in ATE_PAIRS:
                for t in task.descendants[node]:
                    out[(node, i, j, t)] = float(np.mean(worlds[j][t] - worlds[i][t]))
        _TRUE_ATE[truth.name] = out
    return _TRUE_ATE[truth.name]


# ---------------------------------------------------------------------------------- evaluation
def evaluate(adapter: Adapter, task: Task) -> dict[str, Any]:
    """Fit ``adapter`` on the task's data and compute every metric."""
    truth, seed, n = task.truth, task.seed, task.n_eval
    start = time.perf_counter()
    adapter.fit(task.train, task.val)
    fit_seconds = time.perf_counter() - start

    with torch.no_grad():
        obs = adapter.sample(n, seed=seed + 101)
    obs_mmd = mmd_rbf(task.standardize(obs), task.standardize(task.test.head(n)))

    int_mmds, cf_rmses, per_query = [], [], []
    for qi, (node, q, v) in enumerate(task.queries):
        model_iv = adapter.interventional(node, v, n, seed=seed + 1000 + qi)
        true_iv = truth.interventional({node: v}, n, seed=seed + 2000 + qi)
        int_mmd = mmd_rbf(task.standardize(model_iv), task.standardize(true_iv))
        int_mmds.append(int_mmd)

        cf = adapter.counterfactual(task.factual, node, v)  # timed in time_counterfactuals
        true_cf = truth.counterfactual(task.factual_noise, {node: v})
        desc = task.descendants[node]
        err = (cf[desc].to_numpy() - true_cf[desc].to_numpy()) / task.sd[desc].to_numpy()
        rmse = float(np.sqrt(np.mean(err**2))) if desc else float("nan")
        if desc:
            cf_rmses.append(rmse)
        per_query.append(
            {
                "node": node,
                "quantile": QUANTILES[q],
                "value": v,
                "cf_rmse": _finite_or_none(rmse),  # None: x_k has no descendants
                "cf_rmse_per_target": {
                    t: float(np.sqrt(np.mean(err[:, i] ** 2))) for i, t in enumerate(desc)
                },
                "int_mmd": int_mmd,
            }
        )

    true_ate = true_ates(truth, task)
    ate_errors = []
    for node, values in task.values.items():
        targets = task.descendants[node]
        if not targets:
            continue
        est = adapter.ates(targets, node, values, task.n_ate, seed=seed + 3000)
        for (i, j, t), value in est.items():
            ate_errors.append((value - true_ate[(node, i, j, t)]) / task.sd[t])
    loglik = adapter.loglik(task.test)
    return {
        "cf_rmse": float(np.mean(cf_rmses)),
        "ate_rmse": float(np.sqrt(np.mean(np.square(ate_errors)))),
        "obs_mmd": obs_mmd,
        "int_mmd": float(np.mean(int_mmds)),
        "loglik": _finite_or_none(loglik),
        "fit_seconds": fit_seconds,
        "cf_ms_per_1000": None,  # filled in by time_counterfactuals
        "queries": per_query,
    }


# ---------------------------------------------------------------------------------- ChiRho
def time_counterfactuals(adapters: dict[str, Adapter], task: Task) -> dict[str, float]:
    """Counterfactual query time per 1,000 rows (ms) of each fitted library, side by side.

    ``CF_REPEATS`` rounds; each round times every query of every library, the libraries'
    order rotating by one from round to round. Each query keeps its fastest round, and a
    library's time is the median over the queries.
    """
    names = list(adapters)
    best: dict[str, list[float]] = {n: [math.inf] * len(task.queries) for n in names}
    for r in range(CF_REPEATS):
        order = names[r % len(names) :] + names[: r % len(names)] if names else []
        for qi, (node, _, v) in enumerate(task.queries):
            for name in order:
                t0 = time.perf_counter()
                adapters[name].counterfactual(task.factual, node, v)
                best[name][qi] = min(best[name][qi], time.perf_counter() - t0)
    return {n: 1e6 * float(np.median(b)) / len(task.factual) for n, b in best.items()}


def chirho_crosscheck(scm: Any, truth: Any, task: Task, rows: int = 64) -> dict[str, Any]:
    """Run ChiRho's counterfactual handlers on ``scm.model`` and compare to ``scm.counterfactual``.

    ChiRho abducts the noise itself: under ``condition`` its factual-conditioning handler
    inverts each observed ``TransformedDistribution`` site and pushes the noise through the
    intervened world. Every intervened node of the SCM at its median value is checked.
    """
    try:
        import pyro
        from chirho.counterfactual.handlers import (
            MultiWorldCounterfactual,
            TwinWorldCounterfactual,
        )
        from chirho.indexed.ops import IndexSet, gather, indices_of
        from chirho.interventional.handlers import do
        from chirho.observational.handlers import condition
    except ImportError as err:
        return {"status": "skipped", "reason": f"chirho is not importable ({err})"}

    factual = task.test.head(rows)
    data = {
        n: torch.tensor(factual[n].to_numpy(), dtype=scm.dtype, device=scm.device)
        for n in truth.nodes
    }
    out: dict[str, Any] = {"status": "ok", "checks": []}
    for handler in (MultiWorldCounterfactual, TwinWorldCounterfactual):
        for node in truth.intervened:
            value = task.values[node][1]
            check: dict[str, Any] = {"handler": handler.__name__, "node": node, "value": value}
            try:
                ours = scm.counterfactual(factual, {node: value})
                pyro.clear_param_store()
                with torch.no_grad(), handler(first_available_dim=-2):
                    with do(
                        actions={node: torch.tensor(value, dtype=scm.dtype, device=scm.device)}
                    ):
                        with condition(data=data):
                            values = scm.model(num_rows=rows)
                    theirs = {}
                    for d in truth.nodes:
                        idx = indices_of(values[d], event_dim=0)
                        world = IndexSet(**{name: {1} for name in idx})
                        theirs[d] = gather(values[d], world, event_dim=0).reshape(-1)
                desc = task.descendants[node] or [node]  # a sink: only x_k itself moves
                diff = max(
                    float((theirs[d].cpu().double() - torch.tensor(ours[d].to_numpy())).abs().max())
                    for d in truth.nodes
                )
                moved = min(
                    float(
                        (theirs[d].cpu().double() - torch.tensor(factual[d].to_numpy())).abs().max()
                    )
                    for d in desc
                )
                scale = max(float(task.sd[d]) for d in truth.nodes)
                check.update(
                    max_abs_diff=diff,
                    min_shift_from_factual=moved,
                    agrees=diff <= 1e-4 * max(scale, 1.0),
                    differs_from_factual=moved > 1e-3,
                )
            except Exception as err:  # report precisely, do not hide
                frame = traceback.extract_tb(err.__traceback__)[-1]
                check["error"] = (
                    f"{type(err).__name__}: {err} (at {frame.filename}:{frame.lineno} "
                    f"in {frame.name})"
                )
            out["checks"].append(check)
    if any("error" in c for c in out["checks"]):
        out["status"] = "error"
    elif not all(c["agrees"] and c["differs_from_factual"] for c in out["checks"]):
        out["status"] = "mismatch"
    diffs = [c["max_abs_diff"] for c in out["checks"] if "max_abs_diff" in c]
    out["max_abs_diff"] = max(diffs) if diffs else None
    return out


# ---------------------------------------------------------------------------------- reports
def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{scm: {library: {metric: {"mean", "sd", "n"}}}}`` over seeds."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        if "error" in run:
            continue
        cell = table.setdefault(run["scm"], {}).setdefault(run["library"], {})
        for m in METRICS:
            cell.setdefault(m, []).append(run["metrics"][m])
    for libs in table.values():
        for lib, cell in libs.items():
            for m in METRICS:
                vals = [v for v in cell[m] if v is not None]
                libs[lib][m] = {
                    "mean": float(np.mean(vals)) if vals else None,
                    "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0 if vals else None,
                    "n": len(vals),
                }
    return table


def summarize(
    table: dict[str, dict[str, dict[str, Any]]], pyro: str = "pyrocausal", timing: bool = True
) -> dict:
    """Headline ratios of ``pyro`` against the best peer (CF RMSE) and causalflows-maf (time;
    ``timing=False`` when the peers ran in another run)."""
    wins, ratios, fit_r, cf_r = [], {}, {}, {}
    for scm, libs in table.items():
        if pyro not in libs:
            continue
        peers = {k: v["cf_rmse"]["mean"] for k, v in libs.items() if k in PEERS}
        peers = {k: v for k, v in peers.items() if v is not None}
        ours = libs[pyro]["cf_rmse"]["mean"]
        if peers and ours is not None:
            best = min(peers, key=peers.get)
            wins.append(ours <= peers[best] * (1 + TIE))
            ratios[scm] = {"ratio": ours / peers[best], "best_peer": best}
        ref = libs.get("causalflows-maf")
        if ref is not None and timing:
            fit_r[scm] = libs[pyro]["fit_seconds"]["mean"] / ref["fit_seconds"]["mean"]
            cf_r[scm] = libs[pyro]["cf_ms_per_1000"]["mean"] / ref["cf_ms_per_1000"]["mean"]

    def geo(d: dict[str, float]) -> float | None:
        return float(np.exp(np.mean(np.log(list(d.values()))))) if d else None

    worst = max(ratios, key=lambda s: ratios[s]["ratio"]) if ratios else None
    values = [r["ratio"] for r in ratios.values()]
    return {
        "library": pyro,
        "cf_rmse_le_best_peer_fraction": float(np.mean(wins)) if wins else None,
        "cf_rmse_le_best_peer_count": f"{sum(wins)}/{len(wins)}",
        "median_cf_ratio_vs_best_peer": float(np.median(values)) if values else None,
        "p90_cf_ratio_vs_best_peer": float(np.quantile(values, 0.9)) if values else None,
        "max_cf_ratio_vs_best_peer": ratios[worst]["ratio"] if worst else None,
        "max_cf_ratio_scm": worst,
        "cf_ratio_vs_best_peer": ratios,
        "fit_time_ratio_vs_causalflows_maf_geomean": geo(fit_r),
        "fit_time_ratio_vs_causalflows_maf_max": max(fit_r.values()) if fit_r else None,
        "cf_time_ratio_vs_causalflows_maf_geomean": geo(cf_r),
        "cf_time_ratio_vs_causalflows_maf_max": max(cf_r.values()) if cf_r else None,
        "fit_time_ratio_per_scm": fit_r,
        "cf_time_ratio_per_scm": cf_r,
    }


def family_breakdown(runs: list[dict[str, Any]], truths: dict[str, Any], pyro: str) -> dict:
    """Which mechanism families lose: per family of the *target* node, ``pyro``'s per-target
    counterfactual RMSE over that of the SCM's best peer (same seed, same queries).

    Returns ``{family: {"n", "median_ratio", "p90_ratio", "loss_fraction"}}`` where ``n``
    counts (SCM, seed, query, target) cells and a loss is a ratio above ``1 + TIE``.
    """
    by_task: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for run in runs:
        if "metrics" in run:
            by_task.setdefault((run["scm"], run["seed"]), {})[run["library"]] = run["metrics"]
    cells: dict[str, list[float]] = {}
    for (scm, _seed), libs in by_task.items():
        peers = {k: v for k, v in libs.items() if k in PEERS}
        if pyro not in libs or not peers:
            continue
        best = min(peers, key=lambda k: peers[k]["cf_rmse"])
        families = truths[scm].families
        for ours, theirs in zip(libs[pyro]["queries"], peers[best]["queries"]):
            for target, err in ours["cf_rmse_per_target"].items():
                ref = theirs["cf_rmse_per_target"][target]
                if ref > 0:
                    cells.setdefault(families[target], []).append(err / ref)
    return {
        family: {
            "n": len(r),
            "median_ratio": float(np.median(r)),
            "p90_ratio": float(np.quantile(r, 0.9)),
            "loss_fraction": float(np.mean(np.asarray(r) > 1 + TIE)),
        }
        for family, r in sorted(cells.items())
    }


def _fmt(cell: dict[str, Any] | None, digits: int = 3) -> str:
    if not cell or cell["mean"] is None:
        return "-"
    m, s = cell["mean"], cell["sd"]
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    table, libs = result["table"], result["libraries"]
    titles = {
        "cf_rmse": "Counterfactual RMSE (standardized units; lower is better)",
        "ate_rmse": "ATE RMSE (standardized units; lower is better)",
        "obs_mmd": "Observational MMD (lower is better)",
        "int_mmd": "Interventional MMD (lower is better)",
        "loglik": "Held-out log-likelihood per row, original units (higher is better)",
        "fit_seconds": "Fit wall time, seconds",
        "cf_ms_per_1000": "Counterfactual query time, ms per 1,000 rows",
    }
    cfg = result["config"]
    lines = [
        f"# SCM suite benchmark ({result['date']})"
        + ("" if cfg.get("pool", "literature") == "literature" else f": pool {cfg['pool']}"),
        "",
        f"Machine: {result['machine']}. Seeds: {cfg['seeds']}. Samples per SCM: "
        f"{cfg['n_samples']} (80/10/10). Budget: epochs={cfg['epochs']}, "
        f"batch_size={cfg['batch_size']}, lr={cfg['lr']}, patience={cfg['patience']}. "
        f"n_eval={cfg['n_eval']}, n_ate={cfg['n_ate']}. Device: {cfg['device']}. "
        f"Mean ± sd over seeds; best per row in bold. Total wall time "
        f"{result['total_seconds']:.0f} s.",
        "",
    ]
    for note in result["notes"]:
        lines.append(f"- Note: {note}")
    if result["notes"]:
        lines.append("")
    for summary in result["summary"]:
        lines += _summary_lines(summary)
    lines.append("")
    for lib, families in result.get("families", {}).items():
        lines += [
            f"Per target family, {lib}'s per-target CF RMSE / the best peer's "
            "(median, 90th percentile, share of cells lost):",
            "",
            "| family of the target | cells | median | p90 | lost |",
            "|---|---|---|---|---|",
        ]
        for family, f in families.items():
            lines.append(
                f"| {family} | {f['n']} | {f['median_ratio']:.2f} | {f['p90_ratio']:.2f} | "
                f"{f['loss_fraction']:.0%} |"
            )
        lines.append("")
    lines.append(f"ChiRho cross-check: {_chirho_line(result['chirho'])}")
    lines.append("")
    for metric, title in titles.items():
        lines += [f"## {title}", "", "| SCM | " + " | ".join(libs) + " |"]
        lines.append("|---|" + "---|" * len(libs))
        for scm, row in table.items():
            means = {lb: row.get(lb, {}).get(metric, {}).get("mean") for lb in libs}
            valid = {k: v for k, v in means.items() if v is not None}
            best = None
            if valid and metric not in ("fit_seconds", "cf_ms_per_1000"):
                pick = max if metric == "loglik" else min
                best = pick(valid, key=valid.get)
            cells = []
            digits = 1 if metric in ("fit_seconds", "cf_ms_per_1000") else 3
            for lb in libs:
                text = _fmt(row.get(lb, {}).get(metric), digits)
                cells.append(f"**{text}**" if lb == best else text)
            lines.append(f"| {scm} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _summary_lines(s: dict[str, Any]) -> list[str]:
    def r(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    return [
        f"- **{s['library']}**: CF RMSE ≤ best peer (ties within {TIE:.1%} count) on "
        f"{s['cf_rmse_le_best_peer_count']} SCMs "
        f"({r(s['cf_rmse_le_best_peer_fraction'])}); ratio to best peer: median "
        f"{r(s.get('median_cf_ratio_vs_best_peer'))}, 90th percentile "
        f"{r(s.get('p90_cf_ratio_vs_best_peer'))}, max "
        f"{r(s['max_cf_ratio_vs_best_peer'])} ({s['max_cf_ratio_scm']}); fit time / "
        f"causalflows-maf {r(s['fit_time_ratio_vs_causalflows_maf_geomean'])} (geo-mean, max "
        f"{r(s['fit_time_ratio_vs_causalflows_maf_max'])}); CF query time / causalflows-maf "
        f"{r(s['cf_time_ratio_vs_causalflows_maf_geomean'])} (geo-mean, max "
        f"{r(s['cf_time_ratio_vs_causalflows_maf_max'])})"
    ]


def _chirho_line(chirho: dict[str, Any]) -> str:
    if not chirho:
        return "not run"
    parts = []
    errors = {
        scm: next(c["error"] for c in res["checks"] if "error" in c)
        for scm, res in chirho.items()
        if res["status"] == "error"
    }
    same = len(errors) > 1 and len(set(errors.values())) == 1
    if same:
        parts.append(f"ERROR on {len(errors)}/{len(chirho)} SCMs: {next(iter(errors.values()))}")
    for scm, res in chirho.items():
        if res["status"] == "skipped":
            return f"skipped ({res['reason']})"
        if res["status"] == "error":
            if not same:
                parts.append(f"{scm}: ERROR {errors[scm]}")
        else:
            shift = min(c["min_shift_from_factual"] for c in res["checks"])
            parts.append(
                f"{scm}: {res['status']} (max |ChiRho - ours| = {res['max_abs_diff']:.1e}, "
                f"min shift from factual {shift:.2f})"
            )
    return "; ".join(parts)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, libs = result["table"], result["libraries"]
    scms = list(table)
    width = 0.8 / max(1, len(libs))
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(scms) * max(1, len(libs)) / 3), 4.5))
    for k, lib in enumerate(libs):
        xs, ms, ss = [], [], []
        for i, scm in enumerate(scms):
            cell = table[scm].get(lib, {}).get("cf_rmse")
            if cell and cell["mean"] is not None:
                xs.append(i + (k - (len(libs) - 1) / 2) * width)
                ms.append(cell["mean"])
                ss.append(cell["sd"])
        ax.bar(xs, ms, width, yerr=ss, label=lib, capsize=2)
    ax.set_xticks(range(len(scms)))
    ax.set_xticklabels(scms, rotation=45, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("counterfactual RMSE (standardized)")
    ax.set_title(f"CF RMSE by SCM and library (seeds {result['config']['seeds']})")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pool(result: dict[str, Any], path: Path) -> None:
    """A random pool: each pyrocausal library's CF RMSE / best peer per SCM, sorted (left),
    and the median per-target ratio by the target's mechanism family (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    summaries = result["summary"]
    for s in summaries:
        ratios = sorted(r["ratio"] for r in s["cf_ratio_vs_best_peer"].values())
        left.plot(np.arange(1, len(ratios) + 1), ratios, marker=".", label=s["library"])
    for level, style in ((1.0, "-"), (1.25, "--")):
        left.axhline(level, color="gray", lw=0.8, ls=style)
    left.set_yscale("log")
    left.set_xlabel("SCMs, sorted by ratio")
    left.set_ylabel("CF RMSE / best peer's")
    left.set_title(f"{result['config']['pool']}: {len(result['table'])} SCMs")
    left.legend(fontsize=7)
    families = result.get("families", {})
    names = sorted({f for fams in families.values() for f in fams})
    width = 0.8 / max(1, len(families))
    for k, (lib, fams) in enumerate(families.items()):
        xs = [i + (k - (len(families) - 1) / 2) * width for i in range(len(names))]
        ys = [fams.get(f, {}).get("median_ratio", np.nan) for f in names]
        right.bar(xs, ys, width, label=lib)
    right.axhline(1.0, color="gray", lw=0.8)
    right.set_xticks(range(len(names)))
    right.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    right.set_ylabel("median per-target CF RMSE / best peer's")
    right.set_title("by the target's mechanism family")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------- CLI
def _fit_defaults() -> dict[str, Any]:
    import pyrocausal as pc

    params = inspect.signature(pc.SCM.fit).parameters
    return {
        k: params[k].default
        for k in ("batch_size", "lr", "patience")
        if k in params and params[k].default is not inspect.Parameter.empty
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few SCMs, 1 seed, few epochs")
    p.add_argument("--scms", help="comma-separated SCM names (default: all of the pool)")
    p.add_argument(
        "--pool",
        choices=("literature", *RANDOM_POOLS),
        default="literature",
        help="the 17 literature SCMs (default), or a pool of random SCMs: random-tune (seeds "
        "0-49, for developing defaults) or random-eval (seeds 1000+, never tuned on)",
    )
    p.add_argument("--count", type=int, help="random pools: the first COUNT SCMs (default 50)")
    p.add_argument(
        "--families", help="random pools: comma-separated mechanism families (default: all)"
    )
    p.add_argument("--nodes", help="random pools: nodes per SCM, N or LOW-HIGH (default 3-10)")
    p.add_argument(
        "--seeds", help="comma-separated data seeds (default 0,1,2; random pools and quick: 0)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="max epochs of every flow (default 60, random pools 100, quick 20)",
    )
    p.add_argument("--batch-size", type=int, help="default: pyrocausal.SCM.fit's")
    p.add_argument("--lr", type=float, help="default: pyrocausal.SCM.fit's")
    p.add_argument("--patience", type=int, help="default: pyrocausal.SCM.fit's")
    p.add_argument(
        "--n-samples", type=int, help="rows per SCM (default 10000, random pools 5000, quick 2000)"
    )
    p.add_argument("--n-eval", type=int, help="rows per MMD / CF query (default 1000; quick 500)")
    p.add_argument("--n-ate", type=int, help="draws per ATE estimate (default 10000; quick 2000)")
    p.add_argument(
        "--libraries",
        default="pyrocausal,causalflows-maf,causalflows-nsf,dowhy-gcm",
        help="comma-separated: pyrocausal, causalflows-maf, causalflows-nsf, dowhy-gcm, or "
        "pyrocausal-VARIANT (VARIANT@wd=W adds Adam weight decay W; default@wd=W for the "
        "default mechanisms)",
    )
    p.add_argument(
        "--variants", default="", help="extra pyrocausal mechanisms, e.g. maf,nsf,linear,auto"
    )
    p.add_argument(
        "--dowhy-rows",
        choices=("train", "train+val"),
        default="train+val",
        help="rows DoWhy-gcm fits on (default: train+val, as pyrocausal's closed-form nodes)",
    )
    p.add_argument(
        "--peers-from",
        help="a previous result JSON of the same pool and budget: its peers' runs are reused "
        "(they do not depend on pyrocausal); timing ratios are then left out",
    )
    p.add_argument("--no-chirho", action="store_true", help="skip the ChiRho cross-check")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="output dir")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result dictionary that is also written as JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from pyrocausal.datasets import list_scms, load_scm, random_pool

    quick = args.quick
    pool = args.pool
    truths: dict[str, Any] = {}
    if pool == "literature":
        if args.count or args.families or args.nodes:
            raise SystemExit("--count, --families and --nodes apply to random pools only")
        scms = args.scms.split(",") if args.scms else list(QUICK_SCMS) if quick else list_scms()
        truths = {name: load_scm(name) for name in scms}
    else:
        kwargs: dict[str, Any] = {}
        if args.families:
            kwargs["families"] = args.families.split(",")
        if args.nodes:
            low, _, high = args.nodes.partition("-")
            kwargs["nodes"] = (int(low), int(high or low))
        truths = {t.name: t for t in random_pool(pool, args.count or 50, **kwargs)}
        scms = args.scms.split(",") if args.scms else list(truths)
        unknown = sorted(set(scms) - set(truths))
        if unknown:
            raise SystemExit(f"--scms {unknown} are not in the first SCMs of {pool}")
    random = pool != "literature"
    seeds = (
        [int(s) for s in args.seeds.split(",")]
        if args.seeds
        else [0]
        if quick or random
        else [0, 1, 2]
    )
    defaults = {"batch_size": 512, "lr": 3e-3, "patience": 30, **_fit_defaults()}
    config = {
        "pool": pool,
        "scms": scms,
        "seeds": seeds,
        "epochs": args.epochs or (20 if quick else 100 if random else 60),
        "batch_size": args.batch_size or defaults["batch_size"],
        "lr": args.lr or defaults["lr"],
        "patience": args.patience if args.patience is not None else defaults["patience"],
        "n_samples": args.n_samples or (2000 if quick else 5000 if random else 10_000),
        "n_eval": args.n_eval or (500 if quick else 1000),
        "n_ate": args.n_ate or (2000 if quick else 10_000),
        "device": args.device,
        "threads": args.threads,
        "dowhy_rows": args.dowhy_rows,
        "quick": quick,
    }
    if random:
        config["families"] = args.families.split(",") if args.families else "all"
        config["nodes"] = args.nodes or "3-10"
    libraries = [s for s in args.libraries.split(",") if s]
    libraries += [f"pyrocausal-{v}" for v in args.variants.split(",") if v]
    notes: list[str] = []
    for mod, libs in (("causalflows", "causalflows-"), ("dowhy", "dowhy-")):
        if any(lb.startswith(libs) for lb in libraries):
            try:
                importlib.import_module(mod)
            except ImportError as err:
                note = f"{mod} is not importable ({err}); its libraries are skipped"
                print(f"[scm_suite] {note}", flush=True)
                notes.append(note)
                libraries = [lb for lb in libraries if not lb.startswith(libs)]

    runs: list[dict[str, Any]] = []
    chirho: dict[str, Any] = {}
    t_start = time.perf_counter()
    libraries = _warm_up(libraries, truths[scms[0]], args.device, notes)
    reused_libraries: list[str] = []
    if args.peers_from:
        reused = _reuse_peers(Path(args.peers_from), config, scms, seeds, skip=libraries)
        runs += reused
        reused_libraries = sorted({r["library"] for r in reused})
        notes.append(
            f"the peers' runs ({', '.join(reused_libraries)}) are reused "
            f"from {Path(args.peers_from).name} (same pool, data, queries and budget); "
            "timing ratios across runs are left out"
        )
    for name in scms:
        truth = truths[name]
        for seed in seeds:
            task = Task(truth, seed, config["n_samples"], config["n_eval"], config["n_ate"])
            budget = {k: config[k] for k in ("epochs", "batch_size", "lr", "patience")}
            budget["seed"] = seed
            budget["dowhy_rows"] = config["dowhy_rows"]
            fitted: dict[str, Adapter] = {}
            task_runs: dict[str, dict[str, Any]] = {}
            for lib in libraries:
                t0 = time.perf_counter()
                run: dict[str, Any] = {"scm": name, "seed": seed, "library": lib}
                try:
                    adapter = make_adapter(lib, truth, budget, args.device)
                    run["metrics"] = evaluate(adapter, task)
                    fitted[lib], task_runs[lib] = adapter, run
                    if isinstance(adapter, PyroCausal):
                        run["mechanisms"] = _mechanism_names(adapter.scm)
                        if lib == "pyrocausal" and seed == seeds[0] and not args.no_chirho:
                            chirho[name] = chirho_crosscheck(adapter.scm, truth, task)
                    if isinstance(adapter, DoWhyGCM):
                        run["mechanisms"] = adapter.assigned
                except Skip as err:
                    notes.append(f"{lib} skipped: {err}")
                    print(f"[scm_suite] {lib} skipped: {err}", flush=True)
                    libraries = [lb for lb in libraries if lb != lib]
                    continue
                except Exception as err:
                    run["error"] = f"{type(err).__name__}: {err}"
                    print(f"[scm_suite] {name} seed {seed} {lib} FAILED: {run['error']}")
                    traceback.print_exc()
                runs.append(run)
                m = run.get("metrics", {})
                if m:
                    print(
                        f"[scm_suite] {name:26s} seed {seed} {lib:22s} cf_rmse {m['cf_rmse']:.4f} "
                        f"ate {m['ate_rmse']:.4f} obs_mmd {m['obs_mmd']:.4f} int_mmd "
                        f"{m['int_mmd']:.4f} fit {m['fit_seconds']:.1f}s "
                        f"({time.perf_counter() - t0:.1f}s)",
                        flush=True,
                    )
            with torch.no_grad():
                times = time_counterfactuals(fitted, task)
            for lib, ms in times.items():
                task_runs[lib]["metrics"]["cf_ms_per_1000"] = ms
            print(
                f"[scm_suite] {name:26s} seed {seed} cf ms/1k: "
                + ", ".join(f"{lib} {ms:.1f}" for lib, ms in times.items()),
                flush=True,
            )
        _write_partial(Path(args.out), config, runs, chirho)
    table = aggregate(runs)
    pyro_libs = [lb for lb in libraries if lb.startswith("pyrocausal")]
    result = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": config,
        "libraries": libraries + reused_libraries,
        "protocol": PROTOCOL,
        "notes": notes,
        "table": table,
        "summary": [summarize(table, lb, timing=not args.peers_from) for lb in pyro_libs],
        "best_pyrocausal_variant": _best_variant(table),
        "chirho": chirho,
        "runs": runs,
        "total_seconds": time.perf_counter() - t_start,
    }
    if random:
        result["scm_families"] = {n: dict(truths[n].families) for n in scms}
        result["scm_descriptions"] = {n: truths[n].description for n in scms}
        result["families"] = {lb: family_breakdown(runs, truths, lb) for lb in pyro_libs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(config)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=_json_default))
    (out / f"{stem}.md").write_text(markdown(result))
    (out / f"{stem}.partial.json").unlink(missing_ok=True)
    if not args.no_plot:
        (plot_pool if random else plot)(result, out / f"{stem}_cf_rmse.png")
    print(markdown(result).split("## ")[0], flush=True)
    print(f"[scm_suite] wrote {out / stem}.json / .md in {result['total_seconds']:.0f} s")
    return result


def _reuse_peers(
    path: Path,
    config: dict[str, Any],
    scms: Sequence[str],
    seeds: Sequence[int],
    skip: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The peers' runs of a previous result (but those in ``skip``, which run now), refused
    unless its pool and budget match."""
    previous = json.loads(path.read_text())
    keys = ("pool", "epochs", "batch_size", "lr", "patience", "n_samples", "n_eval", "n_ate")
    keys += ("dowhy_rows", "families", "nodes")
    differ = [k for k in keys if previous["config"].get(k) != config.get(k)]
    if differ:
        raise SystemExit(f"--peers-from {path}: its config differs in {differ}")
    runs = [
        r
        for r in previous["runs"]
        if r["library"] in PEERS
        and r["library"] not in skip
        and r["scm"] in scms
        and r["seed"] in seeds
    ]
    missing = sorted({(s, d) for s in scms for d in seeds} - {(r["scm"], r["seed"]) for r in runs})
    if missing:
        raise SystemExit(f"--peers-from {path}: no peer runs for {missing[:5]}")
    return runs


def _stem(config: dict[str, Any]) -> str:
    """``scm_suite[_random_tune|_random_eval][_quick]``."""
    pool = config.get("pool", "literature")
    middle = "" if pool == "literature" else "_" + pool.replace("-", "_")
    return f"scm_suite{middle}{'_quick' if config['quick'] else ''}"


def _write_partial(out: Path, config: dict[str, Any], runs: list[dict], chirho: dict) -> None:
    """Runs so far, after every SCM, so a long run that is stopped still leaves its numbers."""
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(config)
    blob = {"config": config, "table": aggregate(runs), "chirho": chirho, "runs": runs}
    (out / f"{stem}.partial.json").write_text(json.dumps(blob, indent=1, default=_json_default))


def _warm_up(libraries: list[str], truth: Any, device: str, notes: list[str]) -> list[str]:
    """One tiny fit and query per library, untimed (first-call overheads, lazy imports)."""
    task = Task(truth, seed=0, n_samples=200, n_eval=20, n_ate=20)
    budget = {"epochs": 1, "batch_size": 64, "lr": 1e-3, "patience": None, "seed": 0}
    kept = []
    for lib in libraries:
        try:
            adapter = make_adapter(lib, truth, budget, device)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                adapter.fit(task.train, task.val)
                node, _, value = task.queries[0]
                adapter.counterfactual(task.factual, node, value)
        except Skip as err:
            notes.append(f"{lib} skipped: {err}")
            print(f"[scm_suite] {lib} skipped: {err}", flush=True)
            continue
        except Exception as err:  # the real run reports it per SCM
            print(f"[scm_suite] warm-up of {lib} failed: {type(err).__name__}: {err}", flush=True)
        kept.append(lib)
    return kept


def _mechanism_names(scm: Any) -> dict[str, str]:
    return {n: type(m).__name__ for n, m in scm.mechanisms.items()}


def _best_variant(table: dict[str, Any]) -> dict[str, str]:
    out = {}
    for scm, libs in table.items():
        cands = {
            k: v["cf_rmse"]["mean"]
            for k, v in libs.items()
            if k.startswith("pyrocausal") and v["cf_rmse"]["mean"] is not None
        }
        if cands:
            out[scm] = min(cands, key=cands.get)
    return out


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    python = sys.version.split()[0]
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {python}"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


if __name__ == "__main__":
    main()
