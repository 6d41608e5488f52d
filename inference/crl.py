r"""Train and evaluate causal representation models on the image data sets.

:func:`train_crl` fits one of :data:`CRL_MODELS` to a data set's training split and writes a
model file (``model.pt``), an exact-resume trainer checkpoint (``checkpoint.pt``) and the
per-epoch history (``history.json``). :func:`evaluate_crl` loads such a model and writes
``metrics.json`` with

* disentanglement: MCC (Pearson, Hungarian matching of factors to single latent dimensions),
  DCI (gradient-boosted trees on all latent dimensions; informativeness as held-out R²),
  MIC/TIC between each factor and the mean of its own latent block;
* counterfactuals under ``do(root := value)`` for every root factor with descendants, the
  values being the same root's values of a random permutation of the test units: image MSE
  against the rendered ground truth, the oracle-read factor MAE against the true
  counterfactual factors, effectiveness (oracle MAE of the intervened factor and of each
  descendant), and reversibility; composition with the factual root values;
* reconstruction MSE and the model's seconds per training epoch;

and PNG grids: for every factor, counterfactuals at five values of it (rows: test images),
and for every intervention, factual | counterfactual | ground truth.

The oracle (an anti-causal CNN, :func:`pyrocausal.metrics.train_oracle`) is trained on the
data set's own renders; pass one to share it across models.
"""

from __future__ import annotations

__all__ = [
    "CRL_MODELS",
    "CRLRun",
    "counterfactual_references",
    "evaluate_crl",
    "load_image_split",
    "save_counterfactual_grid",
    "save_guidance_grid",
    "save_intervention_grid",
    "summarize",
    "train_crl",
]

import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyro
import torch
import torch.distributed as dist

from pyrocausal.inference import distributed
from pyrocausal.inference.svi import SVIHistory, SVITrainer
from pyrocausal.models.baselines import BetaVAE, ConditionalVAE
from pyrocausal.models.causal_diffae import CausalDiffAE, DiffAE
from pyrocausal.models.crl_base import CRLModel, mask_labels
from pyrocausal.models.icm_vae import ICMVAE
from pyrocausal.models.networks import count_parameters
from pyrocausal.models.scm_vae import SCMVAE

#: Command-line names of the models.
CRL_MODELS: dict[str, type[CRLModel]] = {
    "scm-vae": SCMVAE,
    "icm-vae": ICMVAE,
    "beta-vae": BetaVAE,
    "cvae": ConditionalVAE,
    "causal-diffae": CausalDiffAE,
    "diffae": DiffAE,
}

_QUERY_BATCH = 256


@dataclass
class CRLRun:
    """What :func:`train_crl` returns."""

    model: CRLModel
    history: SVIHistory
    out_dir: Path | None
    seconds_per_epoch: float


def load_image_split(
    dataset: str,
    split: str,
    size: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """A split of an image data set, optionally a seeded random subset of ``size`` units.

    ``options`` go to the data set's constructor (e.g. Morpho's ``n_train``)."""
    from pyrocausal.datasets.images import ImageData, get_dataset

    generator = get_dataset(dataset, **dict(options or {}))
    data = generator.load(split, cache_dir=cache_dir, progress=progress)
    if size is None or size >= len(data):
        return data
    index = np.sort(np.random.default_rng(seed).permutation(len(data))[:size])
    tensor_index = torch.as_tensor(index)
    return ImageData(
        data.images[tensor_index],
        data.factors.iloc[index],
        data.labels[tensor_index],
        data.dataset,
        data.split,
    )


def train_crl(
    model: str = "icm-vae",
    dataset: str = "pendulum",
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    latent_dim: int = 4,
    networks: str | None = None,
    missing_labels: float = 0.0,
    train_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    grad_clip: float | None = None,
    spike_rollback: float | None = 1.5,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    strategy: str | None = None,
    devices: int | None = None,
    **model_kwargs: Any,
) -> CRLRun:
    """Train a causal representation model on an image data set.

    Arguments:
        model: A key of :data:`CRL_MODELS` (``"icm-vae"``, ``"scm-vae"``, ``"beta-vae"``,
            ``"cvae"``, ``"causal-diffae"``, ``"diffae"``).
        dataset: ``"pendulum"``, ``"flow"`` or ``"morpho"``.
        epochs: Training epochs (the model's annealing schedules scale with them).
        batch_size: Images per SVI step.
        lr: Adam learning rate.
        latent_dim: Size of each factor's latent block.
        networks: Encoder/decoder preset (``"conv"`` or ``"paper-mlp"``; default: the
            model's own, ``"conv"`` for the VAEs; the diffusion models build their own).
        missing_labels: Fraction of training units whose labels are hidden (weak supervision).
        train_size: Train on a seeded random subset of this many units (default: all).
        seed: Seeds the subset, the label mask, the initialization and the training.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        grad_clip: Clip the gradient norm to this value (``None``: no clipping).
        spike_rollback: Undo an epoch whose loss jumps by more than this factor (weights and
            Adam's state back to the epoch's start) and halve the learning rate (see
            :class:`~pyrocausal.inference.SVITrainer`; ``None``: off).
        out_dir: Where ``model.pt``, ``checkpoint.pt`` and ``history.json`` go (optional).
        resume: Continue from ``out_dir/checkpoint.pt`` when it exists.
        progress: Progress bars.
        cache_dir: Data set cache directory.
        dataset_options: Constructor arguments of the data set (recorded for evaluation).
        strategy: ``"ddp"``: data-parallel training (see
            :class:`~pyrocausal.inference.SVITrainer`); under ``torchrun`` every process
            runs this function and only rank 0 writes the files.
        devices: Number of processes (one GPU each on CUDA), spawned here when ``>= 2``;
            each takes ``batch_size`` images a step.
        **model_kwargs: Passed to the model's constructor.
    """
    if model not in CRL_MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {sorted(CRL_MODELS)}")
    options = dict(dataset_options or {})
    data = load_image_split(dataset, "train", train_size, seed, cache_dir, progress, options)
    if missing_labels:
        from pyrocausal.datasets.images import ImageData

        labels = mask_labels(data.labels, missing_labels, seed)
        data = ImageData(data.images, data.factors, labels, data.dataset, data.split)
    pyro.set_rng_seed(seed)
    if networks is not None:
        model_kwargs["networks"] = networks
    net = CRL_MODELS[model].from_dataset(data.dataset, latent_dim=latent_dim, **model_kwargs)
    trainer = SVITrainer(
        net,
        lr=lr,
        schedules=net.default_schedules(epochs),
        device=device,
        seed=seed,
        grad_clip=grad_clip,
        keep_best=True,
        spike_rollback=spike_rollback,
        progress=progress,
        strategy=strategy,
        devices=devices,
    )
    out = Path(out_dir) if out_dir is not None else None
    checkpoint = out / "checkpoint.pt" if out is not None else None
    history = trainer.fit(data, epochs, batch_size=batch_size, checkpoint=checkpoint, resume=resume)
    if isinstance(net, BetaVAE):
        net.fit_readout(data.images, data.labels)
    seconds = [r["seconds"] for r in history.records]
    per_epoch = float(np.mean(seconds)) if seconds else math.nan
    net.metadata = {
        "model": model,
        "dataset": dataset,
        "dataset_options": options,
        "epochs": epochs,
        "batch_size": batch_size,
        "processes": devices or (dist.get_world_size() if dist.is_initialized() else 1),
        "lr": lr,
        "seed": seed,
        "train_size": len(data),
        "missing_labels": missing_labels,
        "networks": net.config().get("networks"),
        "parameters": count_parameters(net),
        "device": str(trainer.device),
        "grad_clip": grad_clip,
        "spike_rollback": spike_rollback,
        "rollbacks": sum(bool(r.get("rolled_back")) for r in history.records),
        "seconds_per_epoch": per_epoch,
        "final_loss": history.records[-1]["loss"] if history.records else math.nan,
        "best_epoch": history.best_epoch,
    }
    if out is not None and distributed.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        net.save(out / "model.pt")
        # Again, so that the checkpoint's model carries the metadata (and a β-VAE's read-out,
        # fitted after the last epoch): `evaluate_crl(checkpoint.pt)` then works too.
        trainer.save(checkpoint)
        (out / "history.json").write_text(json.dumps(history.records, indent=1))
    return CRLRun(net, history, out, per_epoch)


# ---------------------------------------------------------------------- evaluation
def _batched(fn: Any, images: torch.Tensor, *args: Any) -> torch.Tensor:
    """``fn(images, *args).images`` in batches, with per-unit arguments sliced along."""
    parts = []
    for start in range(0, len(images), _QUERY_BATCH):
        stop = start + _QUERY_BATCH
        sliced = [_slice(a, start, stop) for a in args]
        parts.append(fn(images[start:stop], *sliced).images.cpu())
    return torch.cat(parts)


def _slice(arg: Any, start: int, stop: int) -> Any:
    if isinstance(arg, Mapping):
        return {k: _slice(v, start, stop) for k, v in arg.items()}
    if isinstance(arg, np.ndarray | torch.Tensor) and arg.ndim > 0:
        return arg[start:stop]
    if isinstance(arg, pd.Series):
        return arg.to_numpy()[start:stop]
    return arg


def _float_images(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images


def _encode(model: CRLModel, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Latents ``(N, n k)`` with blocks in ``factor_names`` order, and the model's codes."""
    latents, codes = [], []
    for start in range(0, len(images), _QUERY_BATCH):
        z = model.encode(_float_images(images[start : start + _QUERY_BATCH]))
        latents.append(torch.cat([z[name] for name in model.factor_names], -1).cpu())
        codes.append(model.read_codes(z).cpu())
    return torch.cat(latents).double().numpy(), torch.cat(codes).double().numpy()


def evaluate_crl(
    checkpoint: str | os.PathLike | CRLModel,
    out_dir: str | os.PathLike | None = None,
    *,
    dataset: str | None = None,
    test_size: int | None = None,
    oracle: Any = None,
    oracle_size: int = 8192,
    oracle_epochs: int = 10,
    seed: int = 0,
    device: str = "auto",
    grids: bool = True,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Evaluate a trained model on its data set's test split (see the module docstring).

    Arguments:
        checkpoint: A ``model.pt`` or ``checkpoint.pt`` written by :func:`train_crl`, or a
            model.
        out_dir: Where ``metrics.json`` and the PNG grids go (optional).
        dataset: The data set (default: the one recorded in the model's metadata).
        test_size: Evaluate on a seeded random subset of this many test units.
        oracle: A :class:`pyrocausal.metrics.Oracle` or a path to a saved one; ``None``
            trains one (``oracle_size`` renders, ``oracle_epochs`` epochs) and saves it to
            ``out_dir/oracle.pt``.
        seed: Seeds the subset, the intervention values and the oracle.
        device: Where the model runs.
        grids: Write the PNG grids.
        progress: Progress bars.
        cache_dir: Data set cache directory.

    Returns:
        The metrics (also written to ``out_dir/metrics.json``).
    """
    from pyrocausal import metrics as M
    from pyrocausal.inference.devices import resolve_device

    target = resolve_device(device)
    model = checkpoint if isinstance(checkpoint, CRLModel) else CRLModel.load(checkpoint, target)
    model = model.to(target).eval()
    name = dataset or model.metadata.get("dataset")
    if name is None:
        raise ValueError("the model records no data set; pass dataset=")
    options = model.metadata.get("dataset_options") if dataset is None else None
    test = load_image_split(name, "test", test_size, seed, cache_dir, progress, options)
    ds = test.dataset
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if oracle is None:
        oracle = M.train_oracle(
            ds, n=oracle_size, epochs=oracle_epochs, seed=seed, device=target, progress=progress
        )
        if out is not None:
            oracle.save(out / "oracle.pt")
    elif not isinstance(oracle, M.Oracle):
        oracle = M.Oracle.load(oracle)
    oracle = oracle.to(target)

    images = _float_images(test.images)
    factors = test.factors[list(ds.factor_names)].reset_index(drop=True)
    results: dict[str, Any] = {
        "model": model.metadata.get("model", type(model).__name__),
        "dataset": name,
        "test_size": len(test),
        "seconds_per_epoch": model.metadata.get("seconds_per_epoch"),
        "epochs": model.metadata.get("epochs"),
        "train_size": model.metadata.get("train_size"),
        "parameters": count_parameters(model),
        "oracle_validation_mae": dict(getattr(oracle, "validation_mae", {})),
    }
    start = time.perf_counter()

    latents, _ = _encode(model, test.images)
    truth = factors.to_numpy(dtype=np.float64)
    results["mcc"] = M.mcc(truth, latents)
    results["dci"] = M.dci(truth, latents, seed=seed)
    results.update(M.mic_tic(truth, latents, blocks=model.latent_dim))

    recon = _batched(model.reconstruct, images)
    results["reconstruction_mse"] = M.cf_image_mse(recon, images)

    def f(x: torch.Tensor, intervention: Mapping[str, Any]) -> torch.Tensor:
        return _batched(model.counterfactual, x, intervention)

    roots = _roots(ds)
    results["composition"] = M.composition(images, f, factual=factors[roots])
    scale = _label_scale(ds)
    interventions: dict[str, Any] = {}
    examples: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for root, values, descendants, gt_factors, gt_images in _root_interventions(test, seed):
        cf = f(images, {root: values})
        eff = M.effectiveness(oracle, cf, gt_factors[[root, *descendants]])
        mae = M.cf_factor_mae(oracle, cf, gt_factors)
        interventions[root] = {
            "descendants": descendants,
            "cf_image_mse": M.cf_image_mse(cf, gt_images),
            "cf_factor_mae": mae,
            "effectiveness": eff,
            "effectiveness_descendants_normalized": float(
                np.mean([eff[d] / scale[d] for d in descendants])
            ),
            "reversibility": M.reversibility(images, f, factors, {root: values}),
        }
        examples[root] = (cf[:8], gt_images[:8])
    results["interventions"] = interventions
    results["cf_image_mse"] = float(np.mean([v["cf_image_mse"] for v in interventions.values()]))
    results["effectiveness_descendants"] = float(
        np.mean([v["effectiveness_descendants_normalized"] for v in interventions.values()])
    )
    results["effectiveness_intervened"] = float(
        np.mean([v["effectiveness"][r] / scale[r] for r, v in interventions.items()])
    )
    results["cf_factor_mae_normalized"] = float(
        np.mean([v["cf_factor_mae"][k] / scale[k] for v in interventions.values() for k in scale])
    )
    results["reversibility"] = float(np.mean([v["reversibility"] for v in interventions.values()]))
    results["evaluation_seconds"] = time.perf_counter() - start

    if out is not None:
        (out / "metrics.json").write_text(json.dumps(results, indent=1, default=float))
        if grids:
            save_counterfactual_grid(images[:8], examples, out / "counterfactuals.png")
            save_intervention_grid(model, ds, images[:6], factors, out / "interventions.png")
            if hasattr(model, "guidance") and interventions:
                root = next(iter(interventions))
                values = next(_root_interventions(test, seed))[1][:6]
                save_guidance_grid(model, images[:6], {root: values}, out / "guidance.png")
    return results


def _roots(ds: Any) -> list[str]:
    """The root factors that have descendants (the interventions that are evaluated)."""
    return [r for r in ds.graph.nodes if not ds.graph.parents(r) and ds.graph.descendants(r)]


def _label_scale(ds: Any) -> dict[str, float]:
    return dict(zip(ds.factor_names, np.asarray(ds.label_scale, dtype=float), strict=True))


def _root_interventions(test: Any, seed: int) -> Iterator[tuple[Any, ...]]:
    """For every evaluated root: ``(root, values, descendants, true factors, true images)``.

    Each unit's value is another test unit's (a seeded permutation), so interventions stay
    in the data's range; :func:`evaluate_crl` and :func:`counterfactual_references` draw
    the same ones for the same ``seed``.
    """
    ds = test.dataset
    factors = test.factors[list(ds.factor_names)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    for root in _roots(ds):
        values = factors[root].to_numpy()[rng.permutation(len(factors))]
        descendants = [d for d in ds.graph.nodes if d in ds.graph.descendants(root)]
        gt_factors = ds.counterfactual_factors(test.factors, {root: values})
        yield root, values, descendants, gt_factors, ds.render(gt_factors)


def counterfactual_references(
    dataset: str,
    oracle: Any,
    *,
    test_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    dataset_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """What the counterfactual metrics of :func:`evaluate_crl` give without a model.

    Two references on the same interventions: ``"no change"`` answers every
    counterfactual with the factual image (a model that ignores the intervention), and
    ``"rendered truth"`` with the rendered ground truth (the oracle's own error: the floor
    of the effectiveness metrics). A model's descendant effectiveness means something only
    between the two: on Flow the no-change answer already scores 0.22 (descendants move
    little under do(ball_size)), on Pendulum 0.59.

    Arguments:
        dataset: ``"pendulum"``, ``"flow"`` or ``"morpho"``.
        oracle: A :class:`pyrocausal.metrics.Oracle` or the path of a saved one.
        test_size, seed, device, progress, cache_dir: As in :func:`evaluate_crl` (the same
            ``test_size`` and ``seed`` give the same test units and interventions).
        dataset_options: Constructor arguments of the data set (a model's
            ``metadata["dataset_options"]``, which :func:`evaluate_crl` uses).

    Returns:
        One row per reference: ``eff. desc.``, ``eff. int.``, ``CF img MSE`` and
        ``CF factor MAE`` (normalized as in :func:`summarize`).
    """
    from pyrocausal import metrics as M
    from pyrocausal.inference.devices import resolve_device

    target = resolve_device(device)
    oracle = (oracle if isinstance(oracle, M.Oracle) else M.Oracle.load(oracle)).to(target)
    test = load_image_split(dataset, "test", test_size, seed, cache_dir, progress, dataset_options)
    ds = test.dataset
    images = _float_images(test.images)
    scale = _label_scale(ds)
    rows: dict[str, dict[str, list[float]]] = {"no change": {}, "rendered truth": {}}
    for root, _, descendants, gt_factors, gt_images in _root_interventions(test, seed):
        truth = _float_images(gt_images)
        for name, answer in (("no change", images), ("rendered truth", truth)):
            eff = M.effectiveness(oracle, answer, gt_factors[[root, *descendants]])
            mae = M.cf_factor_mae(oracle, answer, gt_factors)
            row = rows[name]
            row.setdefault("eff. desc.", []).append(
                float(np.mean([eff[d] / scale[d] for d in descendants]))
            )
            row.setdefault("eff. int.", []).append(eff[root] / scale[root])
            row.setdefault("CF img MSE", []).append(M.cf_image_mse(answer, truth))
            row.setdefault("CF factor MAE", []).append(
                float(np.mean([mae[k] / scale[k] for k in scale]))
            )
    return pd.DataFrame(
        [
            {"dataset": dataset, "reference": name, **{k: float(np.mean(v)) for k, v in m.items()}}
            for name, m in rows.items()
        ]
    )


# ---------------------------------------------------------------------- figures
def _to_rgb(images: torch.Tensor) -> np.ndarray:
    x = images.detach().cpu().clamp(0, 1)
    x = x[:, :3] if x.shape[1] >= 3 else x[:, :1].expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).numpy()


def save_counterfactual_grid(
    images: torch.Tensor,
    examples: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    path: str | os.PathLike,
) -> None:
    """Rows: units; for every intervention three columns: factual | counterfactual | truth."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = len(images)
    cols = 3 * len(examples)
    fig = Figure(figsize=(1.2 * cols, 1.2 * n + 0.4))
    axes = fig.subplots(n, cols, squeeze=False)
    factual = _to_rgb(images)
    for c, (root, (cf, gt)) in enumerate(examples.items()):
        panels = (factual, _to_rgb(cf), _to_rgb(gt))
        titles = ("factual", f"do({root})", "truth")
        for j, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            for i in range(n):
                ax = axes[i, 3 * c + j]
                ax.imshow(panel[i])
                ax.set_axis_off()
                if i == 0:
                    ax.set_title(title, fontsize=6)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)


def save_intervention_grid(
    model: CRLModel,
    dataset: Any,
    images: torch.Tensor,
    factors: pd.DataFrame,
    path: str | os.PathLike,
    values_per_factor: int = 5,
) -> None:
    """For every factor, counterfactuals of ``images`` at quantiles of its test values."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    names = list(dataset.factor_names)
    quantiles = np.linspace(0.05, 0.95, values_per_factor)
    n = len(images)
    fig = Figure(figsize=(1.1 * (values_per_factor + 1) * len(names), 1.1 * n + 0.5))
    axes = fig.subplots(n, (values_per_factor + 1) * len(names), squeeze=False)
    factual = _to_rgb(images)
    for f, name in enumerate(names):
        base = f * (values_per_factor + 1)
        for i in range(n):
            axes[i, base].imshow(factual[i])
            axes[i, base].set_axis_off()
        axes[0, base].set_title("factual", fontsize=6)
        for q, value in enumerate(np.quantile(factors[name].to_numpy(), quantiles)):
            cf = _to_rgb(model.counterfactual(images, {name: float(value)}).images)
            for i in range(n):
                axes[i, base + q + 1].imshow(cf[i])
                axes[i, base + q + 1].set_axis_off()
            axes[0, base + q + 1].set_title(f"{name}\n={value:.3g}", fontsize=5)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)


def save_guidance_grid(
    model: Any,
    images: torch.Tensor,
    intervention: Mapping[str, Any],
    path: str | os.PathLike,
    weights: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 3.0),
) -> None:
    """Rows: units; columns: factual, then the counterfactual under ``intervention`` at each
    guidance weight ``w`` (a diffusion model's ``counterfactual(..., w=...)``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = len(images)
    panels = [_to_rgb(images)]
    panels += [_to_rgb(model.counterfactual(images, intervention, w=w).images) for w in weights]
    titles = ["factual", *(f"w={w:g}" for w in weights)]
    fig = Figure(figsize=(1.2 * len(panels), 1.2 * n + 0.4))
    axes = fig.subplots(n, len(panels), squeeze=False)
    for j, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        for i in range(n):
            axes[i, j].imshow(panel[i])
            axes[i, j].set_axis_off()
        axes[0, j].set_title(title, fontsize=6)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)


def summarize(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per evaluated model: the headline metrics of :func:`evaluate_crl`."""
    rows = []
    for r in results:
        rows.append(
            {
                "dataset": r["dataset"],
                "model": r["model"],
                "MCC": r["mcc"],
                "DCI-D": r["dci"]["disentanglement"],
                "DCI-C": r["dci"]["completeness"],
                "DCI-I": r["dci"]["informativeness"],
                "MIC": r["mic"],
                "TIC": r["tic"],
                "eff. desc.": r["effectiveness_descendants"],
                "eff. int.": r["effectiveness_intervened"],
                "composition": r["composition"],
                "reversibility": r["reversibility"],
                "CF img MSE": r["cf_image_mse"],
                "CF factor MAE": r["cf_factor_mae_normalized"],
                "recon MSE": r["reconstruction_mse"],
                "s/epoch": r["seconds_per_epoch"],
            }
        )
    return pd.DataFrame(rows)
