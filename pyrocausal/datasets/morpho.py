r"""Morpho digits: stroke thickness causes intensity, on scikit-learn's offline digits.

The Morpho-MNIST structural causal model of deepscm (Pawlowski, Castro and Glocker, NeurIPS
2020), on base digits that ship with scikit-learn (MNIST cannot be downloaded here):

.. code-block:: text

    thickness ──> intensity

    thickness = 0.5 + Gamma(shape 10, rate 5)                    (pixels)
    intensity = 64 + 191 · sigmoid(2 (thickness - 2.5) + 0.5 u),  u ~ N(0, 1)   (gray level)

Base digits: the 1,797 8x8 digits of :func:`sklearn.datasets.load_digits`, each scaled by its
maximum, upsampled bilinearly into the central 20x20 pixels of a 28x28 image (MNIST's layout)
at :attr:`MorphoDigits.scale` = 4 times the resolution (112x112) and thresholded at one half.

Thickness (Morpho-MNIST's "set thickness", done exactly): the base shape is thinned to its
one-pixel skeleton (Zhang-Suen) and dilated with a disc of diameter ``thickness`` through the
Euclidean distance transform to the skeleton (:mod:`scipy.ndimage`) at 4x resolution; each
high-resolution pixel is covered by a linear ramp one high-resolution pixel wide, then the
4x4 blocks are averaged. Every stroke of the image is therefore ``thickness`` pixels wide
(an erosion of the original shape could delete thin strokes; dilating the skeleton cannot).

Intensity (Morpho-MNIST's "set intensity"): the image is rescaled so that the median of the
pixels at or above half its maximum equals ``intensity`` (0-255 gray levels), then clipped to
``[0, 255]`` and rounded to ``uint8``. :func:`measure_thickness` and
:func:`measure_intensity` read both factors back from images.

Counterfactuals: the intensity noise ``u`` of a unit is abducted from its factual
``(thickness, intensity)``; the ground-truth counterfactual image re-renders the same base
digit (column ``base_index``) with the counterfactual factors.

Splits: the 1,797 base digits are split once by ``numpy.random.default_rng(seed)`` into 300
test bases and 1,497 training bases (no base digit is shared); ``n_train`` (default 10,000)
and ``n_test`` (2,000) images draw their base digit uniformly from their pool and their
factors from the SCM, each variable from its own child of ``numpy.random.SeedSequence``, so a
smaller ``n`` gives a prefix of a larger one. Extra columns: ``base_index`` (row of
``load_digits()``) and ``digit`` (its class).

Label normalization (not from the papers; Morpho-MNIST has none of its own):
``a = (2.5, 159.5)``, ``b = (0.632, 95.5)``: thickness standardized by its SCM mean and
standard deviation ``sqrt(10)/5``, intensity mapped from ``[64, 255]`` onto ``[-1, 1]``.

Example:
    >>> from pyrocausal.datasets.morpho import MorphoDigits, measure_thickness
    >>> morpho = MorphoDigits()
    >>> factors = morpho.sample_factors(2, seed=0)
    >>> list(factors.columns)
    ['thickness', 'intensity', 'base_index', 'digit']
    >>> images = morpho.render(factors)
    >>> tuple(images.shape)
    (2, 1, 28, 28)
    >>> cf = morpho.counterfactual_factors(factors, {"thickness": 4.0})
    >>> bool((cf["intensity"] > factors["intensity"]).all())
    True
"""

from __future__ import annotations

__all__ = ["MorphoDigits", "measure_intensity", "measure_thickness", "skeletonize"]

from functools import lru_cache
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from scipy import ndimage
from scipy.special import expit, logit

from pyrocausal.datasets.images import ImageDataset

SIZE = 28
DIGIT_BOX = 20  # MNIST digits sit in the central 20x20 pixels
N_BASES = 1797
THICKNESS_SHAPE, THICKNESS_RATE, THICKNESS_SHIFT = 10.0, 5.0, 0.5
INTENSITY_MIN, INTENSITY_RANGE, INTENSITY_NOISE = 64.0, 191.0, 0.5


class MorphoDigits(ImageDataset):
    """Morpho digits: a renderer, its factor SCM, splits and cache (see the module).

    Arguments:
        n_train: Number of training images.
        n_test: Number of test images.
        n_test_bases: How many of the 1,797 base digits are reserved for the test split.
        seed: Seed of the base-digit split and of the factors.
    """

    name = "morpho"
    factor_names = ("thickness", "intensity")
    parents = MappingProxyType({"thickness": (), "intensity": ("thickness",)})
    units = MappingProxyType({"thickness": "pixels", "intensity": "gray level (0-255)"})
    extra_columns = ("base_index", "digit")
    noisy = ("intensity",)
    image_shape = (1, SIZE, SIZE)
    label_loc = np.array([2.5, 159.5])
    label_scale = np.array([np.sqrt(THICKNESS_SHAPE) / THICKNESS_RATE, 95.5])
    #: Supersampling factor of the morphology (4 x 28 = 112 pixels a side).
    scale = 4

    def __init__(
        self, n_train: int = 10_000, n_test: int = 2_000, n_test_bases: int = 300, seed: int = 0
    ) -> None:
        if min(n_train, n_test) < 0 or not 0 < n_test_bases < N_BASES:
            raise ValueError(
                f"need n_train, n_test >= 0 and 0 < n_test_bases < {N_BASES}, got "
                f"{n_train}, {n_test}, {n_test_bases}"
            )
        self.n_train = n_train
        self.n_test = n_test
        self.n_test_bases = n_test_bases
        self.seed = seed

    # ------------------------------------------------------------------ SCM
    def mechanism(self, node: str, factors: pd.DataFrame, noise: pd.DataFrame) -> np.ndarray:
        if node != "intensity":
            raise ValueError(f"{node!r} is not a non-root factor of the morpho digits")
        thickness = factors["thickness"].to_numpy(dtype=float)
        u = noise["intensity"].to_numpy(dtype=float)
        return INTENSITY_MIN + INTENSITY_RANGE * expit(
            2.0 * (thickness - 2.5) + INTENSITY_NOISE * u
        )

    def abduct(self, factors: pd.DataFrame) -> pd.DataFrame:
        """The intensity noise ``u`` of each unit (inverts the intensity mechanism)."""
        thickness = factors["thickness"].to_numpy(dtype=float)
        fraction = (factors["intensity"].to_numpy(dtype=float) - INTENSITY_MIN) / INTENSITY_RANGE
        u = (logit(np.clip(fraction, 1e-12, 1 - 1e-12)) - 2.0 * (thickness - 2.5)) / (
            INTENSITY_NOISE
        )
        return pd.DataFrame({"intensity": u}, index=factors.index)

    def _draw(self, n: int, bases: np.ndarray, entropy: tuple[int, ...]) -> pd.DataFrame:
        base_rng, thickness_rng, noise_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(3)
        )
        base = bases[base_rng.integers(0, len(bases), n)]
        thickness = THICKNESS_SHIFT + thickness_rng.gamma(THICKNESS_SHAPE, 1.0 / THICKNESS_RATE, n)
        u = noise_rng.standard_normal(n)
        frame = pd.DataFrame(
            {"thickness": thickness, "base_index": base, "digit": _digits()[1][base]}
        )
        frame.insert(
            1, "intensity", self.mechanism("intensity", frame, pd.DataFrame({"intensity": u}))
        )
        return frame

    def base_split(self) -> dict[str, np.ndarray]:
        """The base digits (rows of ``load_digits()``) of each split, sorted."""
        order = np.random.default_rng(self.seed).permutation(N_BASES)
        return {
            "test": np.sort(order[: self.n_test_bases]),
            "train": np.sort(order[self.n_test_bases :]),
        }

    def sample_factors(self, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` units from the SCM on the *training* base digits (for oracles)."""
        return self._draw(n, self.base_split()["train"], (self.seed, 2, seed))

    def split_factors(self, split: str) -> pd.DataFrame:
        n = self.n_test if split == "test" else self.n_train
        return self._draw(n, self.base_split()[split], (self.seed, self.splits.index(split)))

    def cache_key(self) -> str:
        return (
            f"{self.name}-v{self.cache_version}-n{self.n_train}-{self.n_test}"
            f"-b{self.n_test_bases}-s{self.seed}"
        )

    def required_extra_columns(self) -> tuple[str, ...]:
        return ("base_index",)

    # ------------------------------------------------------------------ rendering
    def render_uint8(self, factors: pd.DataFrame) -> np.ndarray:
        thickness = factors["thickness"].to_numpy(dtype=float)
        intensity = factors["intensity"].to_numpy(dtype=float)
        base = factors["base_index"].to_numpy()
        if (
            not np.array_equal(base, np.round(base))
            or base.min(initial=0) < 0
            or (base.max(initial=0) >= N_BASES)
        ):
            raise ValueError(f"base_index must be integers in [0, {N_BASES}), got {base}")
        base = base.astype(np.int64)
        out = np.empty((len(factors), *self.image_shape), dtype=np.uint8)
        s = self.scale
        for b in np.unique(base):
            rows = np.flatnonzero(base == b)
            dist = _skeleton_distance(int(b), s)  # in 28-pixel units
            radius = thickness[rows, None, None] / 2.0
            cover = np.clip((radius - dist[None]) * s + 0.5, 0.0, 1.0)
            images = cover.reshape(len(rows), SIZE, s, SIZE, s).mean(axis=(2, 4))
            out[rows, 0] = _set_intensity(images, intensity[rows])
        return out


# ---------------------------------------------------------------------- base digits
@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float64), bunch.target.astype(np.int64)


def _base_shape(index: int, scale: int) -> np.ndarray:
    """The base digit as a boolean ``(28 s, 28 s)`` shape."""
    image = _digits()[0][index]
    image = image / max(image.max(), 1e-12)
    box = DIGIT_BOX * scale
    up = ndimage.zoom(image, box / image.shape[0], order=1, grid_mode=True, mode="nearest")
    pad = (SIZE * scale - box) // 2
    return np.pad(up >= 0.5, pad)


@lru_cache(maxsize=N_BASES)
def _skeleton(index: int, scale: int) -> np.ndarray:
    """The base digit's skeleton at ``scale`` times the resolution (cached: 12.5 kB each)."""
    skeleton = skeletonize(_base_shape(index, scale))
    if not skeleton.any():
        raise ValueError(f"base digit {index} is empty")
    skeleton.setflags(write=False)
    return skeleton


def _skeleton_distance(index: int, scale: int) -> np.ndarray:
    """Distance (28-pixel units) of every high-resolution pixel to the base digit's skeleton."""
    return ndimage.distance_transform_edt(~_skeleton(index, scale)) / scale


def _set_intensity(images: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Rescale each image so the median of its pixels >= half its max is ``intensity``."""
    out = np.zeros(images.shape, dtype=np.uint8)
    for k, image in enumerate(images):
        top = image.max()
        if top <= 0:
            continue
        median = np.median(image[image >= 0.5 * top])
        out[k] = np.rint(np.clip(image * (intensity[k] / median), 0.0, 255.0))
    return out


# ---------------------------------------------------------------------- morphology
def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    # bit k of a neighbourhood code is P(k+2) of Zhang & Suen (1984): N, NE, E, SE, S, SW, W, NW
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1
    count = bits.sum(1)
    transitions = ((bits == 0) & (np.roll(bits, -1, axis=1) == 1)).sum(1)
    p2, p4, p6, p8 = bits[:, 0], bits[:, 2], bits[:, 4], bits[:, 6]
    common = (count >= 2) & (count <= 6) & (transitions == 1)
    first = common & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = common & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first, second


_FIRST, _SECOND = _thinning_tables()
# (row, column) slices of a 1-padded image giving the neighbours N, NE, E, SE, S, SW, W, NW
_NEIGHBOURS = tuple(
    (slice(1 + dy, None if dy == 1 else -1 + dy), slice(1 + dx, None if dx == 1 else -1 + dx))
    for dy, dx in ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
)


def skeletonize(shape: npt.ArrayLike) -> np.ndarray:
    """One-pixel-wide skeleton of a boolean image (Zhang-Suen thinning, 8-connected).

    Example:
        >>> import numpy as np
        >>> from pyrocausal.datasets.morpho import skeletonize
        >>> bar = np.zeros((9, 20), dtype=bool)
        >>> bar[2:7, 2:18] = True
        >>> skeleton = skeletonize(bar)
        >>> np.flatnonzero(skeleton.any(axis=1)).tolist()  # one row, the bar's middle
        [4]
    """
    shape = np.asarray(shape, dtype=bool)
    out = np.zeros_like(shape)
    rows, cols = np.flatnonzero(shape.any(1)), np.flatnonzero(shape.any(0))
    if rows.size == 0:
        return out
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    image = np.pad(shape[box], 1).astype(np.uint8)  # work on the bounding box only
    inner = image[1:-1, 1:-1]  # a view: deleting from it deletes from image
    code = np.empty(inner.shape, dtype=np.uint8)
    changed = True
    while changed:
        changed = False
        for table in (_FIRST, _SECOND):
            code[...] = 0
            for bit, (dy, dx) in enumerate(_NEIGHBOURS):
                code |= image[dy, dx] << bit
            delete = (inner == 1) & table[code]
            if delete.any():
                inner[delete] = 0
                changed = True
    out[box] = inner.astype(bool)
    return out


def _as_gray(images: npt.ArrayLike | torch.Tensor) -> np.ndarray:
    """``(N, 28, 28)`` gray levels in 0-255 from ``uint8`` images or floats in ``[0, 1]``."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    gray = arr.astype(np.float64) * (1.0 if np.issubdtype(arr.dtype, np.integer) else 255.0)
    if gray.ndim == 4:
        gray = gray[:, 0]
    return gray[None] if gray.ndim == 2 else gray


def measure_thickness(images: npt.ArrayLike | torch.Tensor, scale: int = 4) -> np.ndarray:
    """Stroke thickness (pixels) of each digit, Morpho-MNIST's way.

    The image is upsampled ``scale`` times (bilinear), thresholded at half its maximum,
    thinned to its skeleton, and the thickness is twice the mean distance from the skeleton
    to the background, taken to the background's pixel edges (the distance transform's
    distance to background pixel *centres* minus half a pixel).

    Arguments:
        images: ``(N, 1, 28, 28)`` (or ``(N, 28, 28)``): ``uint8`` gray levels or floats in
            ``[0, 1]``.
    """
    out = []
    for image in _as_gray(images):
        top = image.max()
        if top <= 0:
            out.append(0.0)
            continue
        up = ndimage.zoom(image / top, scale, order=1, grid_mode=True, mode="nearest") >= 0.5
        skeleton = skeletonize(up)
        dist = ndimage.distance_transform_edt(np.pad(up, 1))[1:-1, 1:-1]
        out.append(2.0 * (dist[skeleton].mean() - 0.5) / scale if skeleton.any() else 0.0)
    return np.asarray(out)


def measure_intensity(images: npt.ArrayLike | torch.Tensor) -> np.ndarray:
    """Median gray level (0-255) of the pixels at or above half of each image's maximum."""
    out = []
    for image in _as_gray(images):
        top = image.max()
        out.append(float(np.median(image[image >= 0.5 * top])) if top > 0 else 0.0)
    return np.asarray(out)
