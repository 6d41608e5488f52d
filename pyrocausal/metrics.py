r"""Metrics for causal representation learning and counterfactual images.

*Disentanglement of learned codes against true factors*

- :func:`mcc`: mean correlation coefficient after Hungarian matching.
- :func:`dci`: disentanglement, completeness and informativeness (Eastwood and Williams,
  ICLR 2018), informativeness as held-out R² (not accuracy: the factors are continuous).
- :func:`mic_tic`: maximal and total information coefficients between each factor and its
  latent block (CausalVAE's table), with the estimator documented in
  :func:`information_coefficients`.

*Counterfactual soundness* (Monteiro, Ribeiro, Pawlowski, Castro and Glocker, ICLR 2023) of a
counterfactual function ``f(images, intervention) -> images``, where ``intervention`` maps
factor names to values in their own units (a scalar or one value per image):

- :func:`composition`: ``d(x, f(x, do(pa := pa)))``: a null intervention changes nothing;
- :func:`reversibility`: ``d(x, f(f(x, do(pa*)), do(pa)))``: undoing an intervention
  restores the image;
- :func:`effectiveness`: ``|oracle_k(f(x, do(pa*))) - pa*_k|``: the intervention took.

*Error against ground truth* (renderable data sets, where the true counterfactual image is
:meth:`~pyrocausal.datasets.images.ImageDataset.render` of
:meth:`~pyrocausal.datasets.images.ImageDataset.counterfactual_factors`):
:func:`cf_image_mse` and :func:`cf_factor_mae` (factors read by an :class:`Oracle`).

An :class:`Oracle` is an anti-causal regressor, a small CNN trained by :func:`train_oracle` on
images rendered from the data set's own factor distribution; it maps images to factors in
their own units and saves and loads itself.

Example:
    >>> import numpy as np
    >>> from pyrocausal.metrics import mcc
    >>> rng = np.random.default_rng(0)
    >>> factors = rng.normal(size=(500, 3))
    >>> codes = 2.0 * factors[:, [2, 0, 1]] - 1.0  # permuted, scaled, shifted
    >>> round(mcc(factors, codes), 6)
    1.0
"""

from __future__ import annotations

__all__ = [
    "CounterfactualFunction",
    "FactorReader",
    "Oracle",
    "cf_factor_mae",
    "cf_image_mse",
    "composition",
    "dci",
    "effectiveness",
    "information_coefficients",
    "l1_distance",
    "mcc",
    "mic_tic",
    "reversibility",
    "train_oracle",
]

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from torch import nn

from pyrocausal.progress import progress_bar

if TYPE_CHECKING:
    from pyrocausal.datasets.images import ImageDataset

#: Samples x variables: a numpy array, a tensor or a data frame.
Matrix = npt.ArrayLike | torch.Tensor | pd.DataFrame
#: Latent blocks: ``k`` consecutive dimensions per factor, or explicit index lists.
Blocks = int | Sequence[Sequence[int]] | None
#: ``f(images, intervention) -> counterfactual images``; values in the factors' own units.
CounterfactualFunction = Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor]
Reduction = Literal["mean", "none"]


@runtime_checkable
class FactorReader(Protocol):
    """Anything that reads factors off images, like an :class:`Oracle`."""

    factor_names: tuple[str, ...]

    def predict(self, images: torch.Tensor, batch_size: int = 256) -> pd.DataFrame:
        """Factor values (own units) of ``images``, one row per image."""
        ...


# ---------------------------------------------------------------------- helpers
def _matrix(x: Matrix, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    elif isinstance(x, pd.DataFrame | pd.Series):
        x = x.to_numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (samples, variables), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has non-finite values")
    return arr


def _pair(true: Matrix, codes: Matrix) -> tuple[np.ndarray, np.ndarray]:
    t, z = _matrix(true, "true factors"), _matrix(codes, "codes")
    if len(t) != len(z):
        raise ValueError(f"{len(t)} factor rows but {len(z)} code rows")
    if len(t) < 4:
        raise ValueError("need at least 4 samples")
    return t, z


def _block_means(z: np.ndarray, blocks: Blocks, n_factors: int) -> np.ndarray:
    if blocks is None:
        return z
    if isinstance(blocks, int):
        if blocks < 1 or z.shape[1] != blocks * n_factors:
            raise ValueError(
                f"blocks={blocks} needs {blocks * n_factors} code dimensions for {n_factors} "
                f"factors, got {z.shape[1]}"
            )
        return z.reshape(len(z), n_factors, blocks).mean(axis=2)
    return np.stack([z[:, list(index)].mean(axis=1) for index in blocks], axis=1)


def _abs_correlation(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``|corr(t_i, z_j)|`` as a ``(t.shape[1], z.shape[1])`` matrix; constant columns give 0."""
    tc, zc = t - t.mean(0), z - z.mean(0)
    tn, zn = np.linalg.norm(tc, axis=0), np.linalg.norm(zc, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (tc.T @ zc) / np.outer(tn, zn)
    return np.nan_to_num(np.abs(corr), nan=0.0, posinf=0.0, neginf=0.0)


def _reduce(values: torch.Tensor, reduction: Reduction) -> float | torch.Tensor:
    if reduction == "mean":
        return float(values.mean())
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _column(values: Any, name: str) -> Any:
    if isinstance(values, pd.DataFrame):
        return values[name].to_numpy()
    return values[name]


# ---------------------------------------------------------------------- MCC
def mcc(
    true_factors: Matrix,
    latents: Matrix,
    blocks: Blocks = None,
    method: Literal["pearson", "spearman"] = "pearson",
) -> float:
    """Mean absolute correlation between factors and latents after Hungarian matching.

    Each factor is matched to a distinct latent column so that the sum of absolute
    correlations is maximal (:func:`scipy.optimize.linear_sum_assignment`); the MCC is the
    mean over factors. Latents may have more columns than there are factors (the unmatched
    ones are ignored), but not fewer.

    Arguments:
        true_factors: ``(N, n_factors)``.
        latents: ``(N, d)`` codes, e.g. posterior means.
        blocks: Summarize the latents by block means first: ``k`` for ``n_factors``
            consecutive blocks of ``k`` dimensions (SCM-VAE / ICM-VAE layout), or a list of
            index lists. Without it, single dimensions are matched.
        method: ``"pearson"`` (linear) or ``"spearman"`` (rank: any monotone relation).

    Example:
        >>> import numpy as np
        >>> from pyrocausal.metrics import mcc
        >>> rng = np.random.default_rng(0)
        >>> y = rng.normal(size=(1000, 2))
        >>> z = np.concatenate([y[:, [1]], y[:, [1]], y[:, [0]], y[:, [0]]], axis=1)
        >>> round(mcc(y, z, blocks=2), 6), round(mcc(y, rng.normal(size=(1000, 2))), 1)
        (1.0, 0.0)
    """
    t, z = _pair(true_factors, latents)
    z = _block_means(z, blocks, t.shape[1])
    if z.shape[1] < t.shape[1]:
        raise ValueError(f"{z.shape[1]} latent columns cannot be matched to {t.shape[1]} factors")
    if method == "spearman":
        t, z = rankdata(t, axis=0), rankdata(z, axis=0)
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    corr = _abs_correlation(t, z)
    rows, cols = linear_sum_assignment(-corr)
    return float(corr[rows, cols].mean())


# ---------------------------------------------------------------------- DCI
def _default_regressor(seed: int) -> Callable[[], Any]:
    from sklearn.ensemble import GradientBoostingRegressor

    return lambda: GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=seed)


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    if base < 2:
        return np.zeros(np.delete(p.shape, axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis) / math.log(base)


def dci(
    true_factors: Matrix,
    codes: Matrix,
    blocks: Blocks = None,
    regressor: Callable[[], Any] | None = None,
    train_fraction: float = 0.8,
    seed: int = 0,
) -> dict[str, float]:
    r"""Disentanglement, completeness and informativeness (Eastwood and Williams, 2018).

    Codes and factors are standardized with the training rows' statistics and the rows are
    split at random (``train_fraction``, ``seed``). One regressor per factor predicts it from
    all codes; its importances fill column ``j`` of ``R`` (codes x factors):
    ``feature_importances_`` when the regressor has them (the default,
    :class:`sklearn.ensemble.GradientBoostingRegressor` with 100 depth-3 trees), else
    ``|coef_|`` (e.g. ``functools.partial(sklearn.linear_model.Lasso, alpha=0.01)``).

    - disentanglement: ``Σ_i ρ_i (1 - H_K(P_i·))`` with ``P_ij = R_ij / Σ_k R_ik``,
      ``ρ_i = Σ_j R_ij / Σ R`` and ``H_K`` the entropy in base K = number of factors;
    - completeness: the mean over factors of ``1 - H_D(P̃_·j)``, ``P̃_ij = R_ij / Σ_k R_kj``,
      in base D = number of codes;
    - informativeness: the mean over factors of the held-out R² (1 is perfect, 0 is no
      better than the mean, negative is worse).

    With ``blocks`` (``k`` consecutive dimensions per factor, or index lists) the regressors
    still see every dimension, but the importances of a block's dimensions are summed, so D
    and C are computed over blocks, the units a block-structured model (SCM-VAE, ICM-VAE)
    assigns to factors; without it, a factor spread evenly over its 4-dimensional block has
    a completeness of only ``1 - log(4)/log(d)``.

    Example:
        >>> import numpy as np
        >>> from pyrocausal.metrics import dci
        >>> rng = np.random.default_rng(0)
        >>> y = rng.uniform(size=(400, 2))
        >>> good = dci(y, y[:, ::-1] * 3.0)
        >>> bad = dci(y, rng.normal(size=(400, 2)))
        >>> good["informativeness"] > 0.95, good["disentanglement"] > 0.9
        (True, True)
        >>> bad["informativeness"] < 0.1
        True
    """
    t, z = _pair(true_factors, codes)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    order = np.random.default_rng(seed).permutation(len(t))
    n_train = round(train_fraction * len(t))
    if not 2 <= n_train <= len(t) - 2:
        raise ValueError(f"{len(t)} samples are too few for train_fraction={train_fraction}")
    train, test = order[:n_train], order[n_train:]

    def standardize(a: np.ndarray) -> np.ndarray:
        mean, std = a[train].mean(0), a[train].std(0)
        return (a - mean) / np.where(std > 0, std, 1.0)

    t, z = standardize(t), standardize(z)
    make = regressor if regressor is not None else _default_regressor(seed)
    importance = np.zeros((z.shape[1], t.shape[1]))
    r2 = np.zeros(t.shape[1])
    for j in range(t.shape[1]):
        model = make().fit(z[train], t[train, j])
        if hasattr(model, "feature_importances_"):
            importance[:, j] = np.asarray(model.feature_importances_, dtype=float)
        elif hasattr(model, "coef_"):
            importance[:, j] = np.abs(np.asarray(model.coef_, dtype=float).reshape(-1))
        else:
            raise TypeError(f"{type(model).__name__} has neither feature_importances_ nor coef_")
        residual = t[test, j] - model.predict(z[test])
        total = ((t[test, j] - t[test, j].mean()) ** 2).sum()
        r2[j] = 1.0 - (residual**2).sum() / total if total > 0 else 0.0

    if blocks is not None:
        if isinstance(blocks, int):
            if blocks < 1 or z.shape[1] % blocks:
                raise ValueError(f"blocks={blocks} does not divide {z.shape[1]} code dimensions")
            groups = [range(k, k + blocks) for k in range(0, z.shape[1], blocks)]
        else:
            groups = [list(g) for g in blocks]
        importance = np.stack([importance[list(g)].sum(axis=0) for g in groups])
    total = importance.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0, "informativeness": float(r2.mean())}
    per_code = importance.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_code = np.where(per_code[:, None] > 0, importance / per_code[:, None], 0.0)
        per_factor = importance.sum(axis=0)
        p_factor = np.where(per_factor[None] > 0, importance / per_factor[None], 0.0)
    disentanglement = 1.0 - _entropy(p_code, t.shape[1], axis=1)
    completeness = 1.0 - _entropy(p_factor, importance.shape[0], axis=0)
    return {
        "disentanglement": float((per_code / total * disentanglement).sum()),
        "completeness": float(completeness[per_factor > 0].sum() / t.shape[1]),
        "informativeness": float(r2.mean()),
    }


# ---------------------------------------------------------------------- MIC / TIC
def _bins(ranks: np.ndarray, k: int) -> np.ndarray:
    # equal-frequency bins on average ranks (1..n): tied values always share a bin
    return np.minimum(((ranks - 0.5) * k / len(ranks)).astype(np.int64), k - 1)


def _mutual_information(xb: np.ndarray, yb: np.ndarray, a: int, b: int) -> float:
    joint = np.bincount(xb * b + yb, minlength=a * b).reshape(a, b) / len(xb)
    px, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (px @ py)[nz])).sum())


def information_coefficients(
    x: npt.ArrayLike, y: npt.ArrayLike, alpha: float = 0.6
) -> tuple[float, float]:
    r"""MIC and TIC of two samples, from an equal-frequency grid characteristic matrix.

    No reference code exists for CausalVAE's MIC/TIC (it called ``minepy``); this is the
    estimator pyrocausal uses, an *equipartition* approximation of Reshef et al.'s maximal
    information coefficient (Science 2011) and total information coefficient (JMLR 2016):

    1. For every grid of ``a x b`` cells with ``a, b ≥ 2`` and ``a·b ≤ B = max(n^alpha, 4)``,
       ``x`` is cut into ``a`` and ``y`` into ``b`` equal-frequency bins (on average ranks,
       so ties share a bin) and the plug-in mutual information ``I_ab`` of the bin labels is
       computed.
    2. The characteristic matrix is ``M_ab = I_ab / log min(a, b)``, in ``[0, 1]``.
    3. ``MIC = max M_ab`` and ``TIC = mean M_ab`` (the sum of Reshef et al., divided by the
       number of grids, as ``minepy``'s ``tic(norm=True)``).

    Unlike MINE, the ``x`` axis partition is not optimized (no dynamic programming), so the
    MIC is a lower bound of MINE's on non-monotone relations; it is 1 for a noiseless
    monotone relation and near 0 for independent samples (the plug-in bias is about
    ``(a - 1)(b - 1) / 2n`` nats). TIC is below 1 even for noiseless relations (grids with
    ``a != b`` cannot reach ``log min(a, b)``); compare it between models, not to 1.

    Example:
        >>> import numpy as np
        >>> from pyrocausal.metrics import information_coefficients
        >>> rng = np.random.default_rng(0)
        >>> x = rng.uniform(-1, 1, 1000)
        >>> mic, tic = information_coefficients(x, np.exp(x))
        >>> round(mic, 3), tic > 0.5
        (1.0, True)
        >>> mic_noise, _ = information_coefficients(x, rng.normal(size=1000))
        >>> mic_noise < 0.1
        True
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if xs.shape != ys.shape or len(xs) < 4:
        raise ValueError(f"need two samples of equal length >= 4, got {xs.shape} and {ys.shape}")
    budget = max(len(xs) ** alpha, 4.0)
    x_ranks, y_ranks = rankdata(xs), rankdata(ys)
    y_bins = {b: _bins(y_ranks, b) for b in range(2, int(budget // 2) + 1)}
    scores = []
    for a in range(2, int(budget // 2) + 1):
        xb = _bins(x_ranks, a)
        for b in range(2, int(budget // a) + 1):
            scores.append(_mutual_information(xb, y_bins[b], a, b) / math.log(min(a, b)))
    values = np.clip(np.asarray(scores), 0.0, 1.0)
    return float(values.max()), float(values.mean())


def mic_tic(
    true_factors: Matrix, codes: Matrix, blocks: Blocks = None, alpha: float = 0.6
) -> dict[str, float]:
    """MIC and TIC between each factor and its own latent block, averaged over factors.

    As in CausalVAE's tables: factor ``j`` is compared with the mean of latent block ``j``
    (the blocks are aligned with the factors by position, as in label-supervised models;
    no matching). The estimator is :func:`information_coefficients`.

    Arguments:
        true_factors: ``(N, n_factors)``.
        codes: ``(N, n_factors)`` or ``(N, d)`` with ``blocks``.
        blocks: ``k`` consecutive dimensions per factor, or one index list per factor.

    Example:
        >>> import numpy as np
        >>> from pyrocausal.metrics import mic_tic
        >>> rng = np.random.default_rng(0)
        >>> y = rng.normal(size=(800, 2))
        >>> z = np.repeat(np.tanh(y), 3, axis=1)  # 3 copies per factor
        >>> scores = mic_tic(y, z, blocks=3)
        >>> round(scores["mic"], 3), scores["tic"] > 0.5
        (1.0, True)
    """
    t, z = _pair(true_factors, codes)
    z = _block_means(z, blocks, t.shape[1])
    if z.shape[1] != t.shape[1]:
        raise ValueError(
            f"{z.shape[1]} latent blocks for {t.shape[1]} factors; pass blocks= to group them"
        )
    pairs = [information_coefficients(t[:, j], z[:, j], alpha) for j in range(t.shape[1])]
    return {
        "mic": float(np.mean([p[0] for p in pairs])),
        "tic": float(np.mean([p[1] for p in pairs])),
    }


# ---------------------------------------------------------------------- soundness
def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image: ``(N, ...) x (N, ...) -> (N,)``."""
    return (a - b).abs().flatten(1).mean(dim=1)


def composition(
    images: torch.Tensor,
    f: CounterfactualFunction,
    factual: Mapping[str, Any] | pd.DataFrame | None = None,
    steps: int = 1,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = l1_distance,
    reduction: Reduction = "mean",
) -> float | torch.Tensor:
    """Composition: ``d(x, f^steps(x, do(pa := pa)))``, a null intervention applied ``steps`` times.

    Arguments:
        images: Factual images ``x``.
        f: The counterfactual function ``f(images, intervention) -> images``.
        factual: The factual values to intervene with (a data frame or mapping; every column
            is used). ``None`` uses the empty intervention ``{}`` (abduct and decode).
        steps: How many times the null intervention is applied (Monteiro et al. report 1
            and 10).
        distance: Per-image distance, :func:`l1_distance` by default.
        reduction: ``"mean"`` (a float) or ``"none"`` (per-image tensor).

    Example:
        >>> import torch
        >>> from pyrocausal.metrics import composition
        >>> x = torch.rand(4, 1, 8, 8)
        >>> composition(x, lambda images, do: images)  # the identity is perfectly composable
        0.0
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    intervention: dict[str, Any] = {}
    if factual is not None:
        names = factual.columns if isinstance(factual, pd.DataFrame) else factual.keys()
        intervention = {name: _column(factual, name) for name in names}
    out = images
    for _ in range(steps):
        out = f(out, intervention)
    return _reduce(distance(images, out.to(images.device)), reduction)


def reversibility(
    images: torch.Tensor,
    f: CounterfactualFunction,
    pa: Mapping[str, Any] | pd.DataFrame,
    pa_star: Mapping[str, Any],
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = l1_distance,
    reduction: Reduction = "mean",
) -> float | torch.Tensor:
    """Reversibility: ``d(x, f(f(x, do(pa*)), do(pa)))``.

    Arguments:
        images: Factual images ``x``.
        f: The counterfactual function.
        pa: The factual factor values (at least those named in ``pa_star``).
        pa_star: The intervention ``{factor: value}`` (own units).

    Example:
        >>> import torch
        >>> from pyrocausal.metrics import reversibility
        >>> x = torch.ones(2, 1, 4, 4)
        >>> brighten = lambda images, do: images * 0 + float(do["level"])
        >>> reversibility(x, brighten, pa={"level": 1.0}, pa_star={"level": 0.2})
        0.0
    """
    counterfactual = f(images, dict(pa_star))
    back = f(counterfactual, {name: _column(pa, name) for name in pa_star})
    return _reduce(distance(images, back.to(images.device)), reduction)


def _factor_mae(
    oracle: FactorReader,
    images: torch.Tensor,
    target: Mapping[str, Any] | pd.DataFrame,
    names: Sequence[str],
) -> dict[str, float]:
    read = oracle.predict(images)
    out = {}
    for name in names:
        if name not in read.columns:
            raise ValueError(f"the oracle reads {list(read.columns)}, not {name!r}")
        value = _column(target, name)
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (len(read),))
        out[name] = float(np.mean(np.abs(read[name].to_numpy(dtype=np.float64) - value)))
    return out


def effectiveness(
    oracle: FactorReader,
    cf_images: torch.Tensor,
    target_factors: Mapping[str, Any] | pd.DataFrame,
) -> dict[str, float]:
    """Effectiveness: mean absolute error, per given factor, of the oracle's reading of the
    counterfactual images against the intended values ``pa*`` (own units).

    Give the intervened factor (Monteiro et al.'s definition) and, to check that the
    intervention propagated, its descendants' true counterfactual values; only the factors
    in ``target_factors`` are scored.

    Example:
        >>> import pandas as pd, torch
        >>> from pyrocausal.metrics import effectiveness
        >>> class Brightness:  # a toy oracle: the mean pixel is the factor "level"
        ...     factor_names = ("level",)
        ...     def predict(self, images, batch_size=256):
        ...         return pd.DataFrame({"level": images.flatten(1).mean(1).numpy()})
        >>> effectiveness(Brightness(), torch.full((3, 1, 2, 2), 0.5), {"level": 0.25})
        {'level': 0.25}
    """
    if isinstance(target_factors, pd.DataFrame):
        names = list(target_factors.columns)
    else:
        names = list(target_factors)
    return _factor_mae(oracle, cf_images, target_factors, names)


def cf_factor_mae(
    oracle: FactorReader, pred_images: torch.Tensor, true_factors: pd.DataFrame
) -> dict[str, float]:
    """Mean absolute error per factor between the oracle's reading of predicted counterfactual
    images and the ground-truth counterfactual factors (every factor the oracle reads).

    Example:
        >>> import pandas as pd, torch
        >>> from pyrocausal.metrics import cf_factor_mae
        >>> class Brightness:
        ...     factor_names = ("level",)
        ...     def predict(self, images, batch_size=256):
        ...         return pd.DataFrame({"level": images.flatten(1).mean(1).numpy()})
        >>> truth = pd.DataFrame({"level": [0.5, 1.0]})
        >>> cf_factor_mae(Brightness(), torch.full((2, 1, 2, 2), 0.5), truth)
        {'level': 0.25}
    """
    return _factor_mae(oracle, pred_images, true_factors, oracle.factor_names)


def cf_image_mse(
    pred_images: torch.Tensor, true_images: torch.Tensor, reduction: Reduction = "mean"
) -> float | torch.Tensor:
    """Mean squared pixel error between predicted and true counterfactual images (``[0, 1]``).

    Example:
        >>> import torch
        >>> from pyrocausal.metrics import cf_image_mse
        >>> cf_image_mse(torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5))
        0.25
    """
    if pred_images.shape != true_images.shape:
        raise ValueError(f"shapes differ: {tuple(pred_images.shape)} vs {tuple(true_images.shape)}")
    error = (pred_images.float() - true_images.to(pred_images.device).float()) ** 2
    return _reduce(error.flatten(1).mean(dim=1), reduction)


# ---------------------------------------------------------------------- oracle
class Oracle(nn.Module):
    """An anti-causal regressor: a small CNN from images to factors in their own units.

    Stride-2 3x3 convolutions (``width``, ``2 width``, ``4 width``, ...) with SiLU halve the
    image until it is at most 7 pixels a side, then an MLP head predicts the normalized codes
    ``(y - label_loc) / label_scale``; :meth:`forward` returns them in the factors' own units.
    Train one with :func:`train_oracle`.

    Arguments:
        factor_names: The factors it reads, in output order.
        image_shape: ``(C, H, W)`` of its input.
        label_loc, label_scale: The data set's normalization constants.
        width: Channels of the first convolution.

    Example:
        >>> import torch
        >>> from pyrocausal.metrics import Oracle
        >>> oracle = Oracle(("a", "b"), (1, 28, 28), [0.0, 10.0], [1.0, 2.0])
        >>> tuple(oracle(torch.rand(3, 1, 28, 28)).shape)
        (3, 2)
        >>> list(oracle.predict(torch.rand(3, 1, 28, 28)).columns)
        ['a', 'b']
    """

    def __init__(
        self,
        factor_names: Sequence[str],
        image_shape: Sequence[int],
        label_loc: npt.ArrayLike,
        label_scale: npt.ArrayLike,
        width: int = 16,
    ) -> None:
        super().__init__()
        self.factor_names = tuple(factor_names)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.width = int(width)
        self.validation_mae: dict[str, float] = {}
        loc = torch.as_tensor(np.asarray(label_loc, dtype=np.float32)).reshape(-1)
        scale = torch.as_tensor(np.asarray(label_scale, dtype=np.float32)).reshape(-1)
        if not len(loc) == len(scale) == len(self.factor_names):
            raise ValueError("label_loc, label_scale and factor_names must have equal lengths")
        self.register_buffer("label_loc", loc)
        self.register_buffer("label_scale", scale)
        channels, height, side = self.image_shape[0], self.image_shape[1], self.image_shape[2]
        layers: list[nn.Module] = []
        c_in, c_out = channels, self.width
        while max(height, side) > 7:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.SiLU()]
            height, side = (height + 1) // 2, (side + 1) // 2
            c_in, c_out = c_out, min(2 * c_out, 4 * self.width)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * height * side, 128),
            nn.SiLU(),
            nn.Linear(128, len(self.factor_names)),
        )

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized codes ``(N, n_factors)`` of float images in ``[0, 1]``."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return self.head(self.features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Factor values ``(N, n_factors)`` in their own units."""
        return self.codes(images) * self.label_scale + self.label_loc

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> pd.DataFrame:
        """Factor values of ``images`` as a data frame, computed in batches in eval mode."""
        was_training = self.training
        self.eval()
        device = self.label_loc.device
        parts = [
            self(images[k : k + batch_size].to(device)).cpu()
            for k in range(0, len(images), batch_size)
        ]
        self.train(was_training)
        values = torch.cat(parts).numpy() if parts else np.zeros((0, len(self.factor_names)))
        return pd.DataFrame(values.astype(np.float64), columns=self.factor_names)

    def config(self) -> dict[str, Any]:
        """The constructor arguments (and validation errors), JSON-friendly."""
        return {
            "factor_names": list(self.factor_names),
            "image_shape": list(self.image_shape),
            "label_loc": self.label_loc.cpu().tolist(),
            "label_scale": self.label_scale.cpu().tolist(),
            "width": self.width,
            "validation_mae": dict(self.validation_mae),
        }

    def save(self, path: str | Path) -> None:
        """Write the configuration and weights to ``path`` (``torch.save``)."""
        state = {k: v.cpu() for k, v in self.state_dict().items()}
        torch.save({"config": self.config(), "state_dict": state}, Path(path))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Oracle:
        """Read an oracle written by :meth:`save` (weights only: no pickled code runs)."""
        blob = torch.load(Path(path), map_location=map_location, weights_only=True)
        config = dict(blob["config"])
        validation = config.pop("validation_mae", {})
        oracle = cls(**config)
        oracle.load_state_dict(blob["state_dict"])
        oracle.validation_mae = {k: float(v) for k, v in validation.items()}
        return oracle.eval()


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_oracle(
    dataset: ImageDataset,
    n: int = 4096,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 1e-3,
    width: int = 16,
    validation_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Oracle:
    """Train an :class:`Oracle` on ``n`` images rendered from ``dataset``'s factor distribution.

    Factors come from :meth:`~pyrocausal.datasets.images.ImageDataset.sample_factors`
    (continuous ranges, so the oracle also reads off-grid counterfactuals); the loss is the
    mean squared error of the normalized codes, optimized with Adam. The last
    ``validation_fraction`` of the images is held out: their mean absolute error per factor
    (own units) is stored in ``oracle.validation_mae`` and saved with it. Everything is seeded
    by ``seed`` without touching the global random state; the result is in eval mode.

    Example:
        >>> from pyrocausal.datasets.morpho import MorphoDigits
        >>> from pyrocausal.metrics import train_oracle
        >>> oracle = train_oracle(MorphoDigits(), n=64, epochs=1)
        >>> sorted(oracle.validation_mae)
        ['intensity', 'thickness']
    """
    target = _resolve_device(device)
    factors = dataset.sample_factors(n, seed=seed)
    images = torch.from_numpy(dataset.render_uint8(dataset.complete_factors(factors)))
    codes = torch.from_numpy(dataset.normalize(factors))
    n_val = max(1, round(validation_fraction * n)) if validation_fraction > 0 else 0
    n_fit = n - n_val
    if n_fit < 1:
        raise ValueError(f"n={n} leaves no training images")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        oracle = Oracle(
            dataset.factor_names, dataset.image_shape, dataset.label_loc, dataset.label_scale, width
        )
    oracle.to(target)
    optimizer = torch.optim.Adam(oracle.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    oracle.train()
    for _ in progress_bar(range(epochs), enabled=progress, desc=f"oracle {dataset.name}"):
        for index in torch.randperm(n_fit, generator=generator).split(batch_size):
            batch = images[index].to(target).float().div_(255.0)
            loss = nn.functional.mse_loss(oracle.codes(batch), codes[index].to(target))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    oracle.eval()
    if n_val:
        read = oracle.predict(images[n_fit:])
        truth = factors.iloc[n_fit:].reset_index(drop=True)
        oracle.validation_mae = {
            name: float(np.mean(np.abs(read[name].to_numpy() - truth[name].to_numpy())))
            for name in dataset.factor_names
        }
    return oracle
