"""Image data sets with known causal factors: the shared base class, caching and splits.

An :class:`ImageDataset` is a *generator*: it knows the structural causal model of its
factors (:attr:`~ImageDataset.graph`, :meth:`~ImageDataset.structural_equations`,
:meth:`~ImageDataset.counterfactual_factors`) and a deterministic renderer
(:meth:`~ImageDataset.render`) that draws the image of any factor values. Rendering the
counterfactual factors of a unit gives its ground-truth counterfactual image.

:meth:`~ImageDataset.load` builds a split on first use (with a progress bar) and caches it as
compressed arrays (:func:`numpy.savez_compressed`) in :func:`default_cache_dir`, which is
``$PYROCAUSAL_CACHE_DIR`` when set and ``~/.cache/pyrocausal`` otherwise; the ``cache_dir``
argument overrides both. Splits are deterministic: the same files come out on every machine.

Factor values are always in the factor's own units (:attr:`~ImageDataset.units`); the
normalized codes ``(y - a) / b`` that models are supervised with come from
:meth:`~ImageDataset.normalize`, whose constants live with the data set.

Example:
    >>> from pyrocausal.datasets.images import get_dataset
    >>> pendulum = get_dataset("pendulum")
    >>> pendulum.graph.parents("shadow_length")
    ('pendulum_angle', 'light_angle')
    >>> images = pendulum.render(pendulum.sample_factors(3, seed=0))
    >>> tuple(images.shape), images.dtype
    ((3, 4, 96, 96), torch.float32)
"""

from __future__ import annotations

__all__ = [
    "CACHE_ENV",
    "DATASETS",
    "AggCanvas",
    "ImageData",
    "ImageDataset",
    "InterventionValue",
    "default_cache_dir",
    "get_dataset",
    "load_dataset",
]

import importlib
import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import matplotlib.style
import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch.utils.data import Dataset

from pyrocausal.graph import CausalGraph
from pyrocausal.progress import progress_bar

#: Environment variable that moves the data set cache.
CACHE_ENV = "PYROCAUSAL_CACHE_DIR"

#: A scalar (same value for every unit) or one value per unit, in the factor's own units.
InterventionValue = float | npt.ArrayLike | torch.Tensor

#: Registry ``name -> ImageDataset subclass``; every subclass with a ``name`` registers itself.
#: :func:`get_dataset` imports the built-in modules first, so it always sees them.
DATASETS: dict[str, type[ImageDataset]] = {}

_BUILTIN_MODULES = (
    "pyrocausal.datasets.pendulum",
    "pyrocausal.datasets.waterflow",
    "pyrocausal.datasets.morpho",
)
_RENDER_CHUNK = 512


def default_cache_dir() -> Path:
    """The directory data sets are cached in: ``$PYROCAUSAL_CACHE_DIR`` or ``~/.cache/pyrocausal``.

    Example:
        >>> import os
        >>> from pyrocausal.datasets.images import default_cache_dir
        >>> default_cache_dir().name if "PYROCAUSAL_CACHE_DIR" not in os.environ else "pyrocausal"
        'pyrocausal'
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/pyrocausal").expanduser()


class ImageData(Dataset):
    r"""One split of an image data set, as a :class:`torch.utils.data.Dataset`.

    Arguments:
        images: ``uint8`` tensor of shape ``(N, C, H, W)``; pixel value ``v`` stands for
            ``v / 255`` in ``[0, 1]``. Kept as ``uint8`` to save memory (a float copy of the
            Pendulum training split would take 800 MB).
        factors: The factor values of each image, in their own units, plus the data set's
            extra columns (:attr:`ImageDataset.extra_columns`, e.g. Morpho's base digit).
        labels: ``float32`` tensor ``(N, n_factors)``: the normalized codes
            ``(factors - label_loc) / label_scale``, columns in :attr:`factor_names` order.
        dataset: The generator the split came from (its graph, units, renderer).
        split: ``"train"`` or ``"test"``.

    Indexing returns ``(image, labels)`` with the image as ``float32`` in ``[0, 1]``; an
    integer gives one pair, a slice, list or index tensor a batch (so ``data[idx]`` with a
    shuffled index tensor is a fast loader that skips :class:`~torch.utils.data.DataLoader`).

    Example:
        >>> import numpy as np, pandas as pd, torch
        >>> from pyrocausal.datasets.images import ImageData, get_dataset
        >>> gen = get_dataset("pendulum")
        >>> factors = gen.sample_factors(2, seed=0)
        >>> data = ImageData.from_factors(gen, factors)
        >>> image, labels = data[0]
        >>> image.dtype, tuple(image.shape), tuple(labels.shape)
        (torch.float32, (4, 96, 96), (4,))
        >>> tuple(data[[0, 1]][0].shape)
        (2, 4, 96, 96)
    """

    def __init__(
        self,
        images: torch.Tensor,
        factors: pd.DataFrame,
        labels: torch.Tensor,
        dataset: ImageDataset,
        split: str = "train",
    ) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be a uint8 tensor, got {images.dtype}")
        if not (len(images) == len(factors) == len(labels)):
            raise ValueError(
                f"images ({len(images)}), factors ({len(factors)}) and labels ({len(labels)}) "
                "must have one row per image"
            )
        self.images = images
        self.factors = factors.reset_index(drop=True)
        self.labels = labels
        self.dataset = dataset
        self.split = split

    @classmethod
    def from_factors(
        cls, dataset: ImageDataset, factors: pd.DataFrame, split: str = "custom"
    ) -> ImageData:
        """Render ``factors`` with ``dataset`` into an in-memory split (not cached)."""
        factors = dataset.complete_factors(factors)
        images = torch.from_numpy(dataset.render_uint8(factors))
        labels = torch.from_numpy(dataset.normalize(factors))
        return cls(images, factors, labels, dataset, split)

    @property
    def factor_names(self) -> tuple[str, ...]:
        """The factor names, in the column order of :attr:`labels`."""
        return self.dataset.factor_names

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.images[index]
        return images.to(torch.float32).div_(255.0), self.labels[index]

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.images.shape[1:]))
        return f"ImageData({self.dataset.name!r}, split={self.split!r}, n={len(self)}, {shape})"


class ImageDataset(ABC):
    r"""A rendered image data set with a known structural causal model over its factors.

    Subclasses set the class attributes below and implement :meth:`mechanism`,
    :meth:`sample_factors`, :meth:`split_factors` and :meth:`render_uint8`; structural
    noise (where a factor has its own exogenous term) is declared in :attr:`noisy` and
    recovered by :meth:`abduct`.

    Attributes:
        name: Registry name (``"pendulum"``, ``"flow"``, ``"morpho"``).
        factor_names: The causal factors, in topological order.
        parents: ``factor -> parents``: the causal graph.
        units: ``factor -> unit`` of its values.
        extra_columns: Non-factor columns carried with the factors and needed by the renderer
            (exogenous image noise, a base digit index); they never change under interventions.
        noisy: Non-root factors whose mechanism has its own exogenous term, abducted from the
            factual factors by :meth:`abduct`.
        image_shape: ``(C, H, W)``.
        label_loc: ``a`` of the normalization of the factors, ``(y - a) / b``.
        label_scale: ``b`` of that normalization.
        cache_version: Part of the cache file name; bumped whenever the rendered pixels change.
    """

    name: ClassVar[str]
    factor_names: ClassVar[tuple[str, ...]]
    parents: ClassVar[Mapping[str, tuple[str, ...]]]
    units: ClassVar[Mapping[str, str]]
    extra_columns: ClassVar[tuple[str, ...]] = ()
    noisy: ClassVar[tuple[str, ...]] = ()
    image_shape: ClassVar[tuple[int, int, int]]
    label_loc: ClassVar[np.ndarray]
    label_scale: ClassVar[np.ndarray]
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    cache_version: ClassVar[str] = "1"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            DATASETS[name] = cls

    # ------------------------------------------------------------------ structure
    @cached_property
    def graph(self) -> CausalGraph:
        """The causal graph over :attr:`factor_names`."""
        return CausalGraph({n: list(self.parents[n]) for n in self.factor_names})

    @property
    def roots(self) -> tuple[str, ...]:
        """The factors without parents (what a renderer needs at least)."""
        return tuple(n for n in self.factor_names if not self.parents[n])

    # ------------------------------------------------------------------ normalization
    def normalize(self, factors: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Normalized codes ``(y - label_loc) / label_scale``, ``float32 (N, n_factors)``."""
        frame = pd.DataFrame(factors) if not isinstance(factors, pd.DataFrame) else factors
        self._require(frame, self.factor_names)
        values = frame.loc[:, list(self.factor_names)].to_numpy(dtype=np.float64)
        return ((values - self.label_loc) / self.label_scale).astype(np.float32)

    def denormalize(self, codes: npt.ArrayLike | torch.Tensor) -> pd.DataFrame:
        """Factor values (own units) of normalized codes ``(N, n_factors)``."""
        arr = _as_numpy(codes).astype(np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(self.factor_names):
            raise ValueError(
                f"codes must have shape (N, {len(self.factor_names)}) for factors "
                f"{list(self.factor_names)}, got {arr.shape}"
            )
        return pd.DataFrame(arr * self.label_scale + self.label_loc, columns=self.factor_names)

    # ------------------------------------------------------------------ the SCM of the factors
    @abstractmethod
    def mechanism(self, node: str, factors: pd.DataFrame, noise: pd.DataFrame) -> np.ndarray:
        """The structural equation of non-root ``node`` from its parents' columns of
        ``factors`` and (for nodes in :attr:`noisy`) its exogenous column of ``noise``."""

    def abduct(self, factors: pd.DataFrame) -> pd.DataFrame:
        """Exogenous noise of the :attr:`noisy` factors of each unit (one column per node).

        The default has no noisy factors and returns a frame without columns.
        """
        return pd.DataFrame(index=factors.index)

    def structural_equations(
        self, factors: pd.DataFrame, noise: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Recompute every non-root factor from the roots, in topological order.

        Nodes with their own exogenous term use ``noise`` (default: abducted from
        ``factors``, so consistent factors come back unchanged). The result has every factor
        column plus the extra columns.
        """
        frame = self.complete_factors(factors)
        noise = self.abduct(frame) if noise is None else noise.reset_index(drop=True)
        for node in self.graph.nodes:
            if self.parents[node]:
                frame[node] = self.mechanism(node, frame, noise)
        return frame

    def counterfactual_factors(
        self, factors: pd.DataFrame, intervention: Mapping[str, InterventionValue]
    ) -> pd.DataFrame:
        r"""Ground-truth counterfactual factors of each unit under ``do(intervention)``.

        Abduction: the exogenous terms of the :attr:`noisy` factors are recovered from the
        factual ``factors``; action: the intervened factors are set (values in their own
        units, a scalar or one per unit); prediction: every other non-root factor is
        recomputed from its (possibly counterfactual) parents and its own noise. Extra
        columns are carried over unchanged.
        """
        frame = self.complete_factors(factors)
        noise = self.abduct(frame)
        cf = frame.copy()
        for node, value in intervention.items():
            self.graph.check_node(node, "factor")
            cf[node] = _broadcast(value, len(cf), node)
        for node in self.graph.nodes:
            if node not in intervention and self.parents[node]:
                cf[node] = self.mechanism(node, cf, noise)
        return cf

    @abstractmethod
    def sample_factors(self, n: int, seed: int = 0) -> pd.DataFrame:
        """Draw ``n`` units from the generator's factor distribution (continuous ranges where
        the data set uses a grid), with all factor and extra columns. Used to train oracles."""

    # ------------------------------------------------------------------ rendering
    def complete_factors(self, factors: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
        """A copy of ``factors`` with missing non-root columns computed by the mechanisms.

        Columns that are given are kept as they are, so factors set by an intervention on a
        non-root node are drawn as given. A missing factor with its own exogenous term
        (:attr:`noisy`) cannot be computed and raises a :class:`ValueError`.
        """
        frame = pd.DataFrame(factors) if not isinstance(factors, pd.DataFrame) else factors
        frame = frame.reset_index(drop=True).copy()
        self._require(frame, self.roots + self.required_extra_columns())
        empty = pd.DataFrame(index=frame.index)
        for node in self.graph.nodes:
            if node in frame.columns:
                frame[node] = frame[node].to_numpy(dtype=np.float64)
                continue
            if node in self.noisy:
                raise ValueError(
                    f"factor {node!r} has its own exogenous noise and cannot be recomputed from "
                    f"its parents {list(self.parents[node])}; give its values"
                )
            frame[node] = self.mechanism(node, frame, empty)
        first = [*self.factor_names, *(c for c in self.extra_columns if c in frame.columns)]
        return frame[first + [c for c in frame.columns if c not in first]]

    def required_extra_columns(self) -> tuple[str, ...]:
        """Extra columns :meth:`render` cannot do without (default: none)."""
        return ()

    @abstractmethod
    def render_uint8(self, factors: pd.DataFrame) -> np.ndarray:
        """Draw complete ``factors`` (see :meth:`complete_factors`) as ``uint8 (N, C, H, W)``."""

    def render(self, factors: pd.DataFrame | Mapping[str, Any]) -> torch.Tensor:
        """Images of ``factors`` as ``float32 (N, C, H, W)`` in ``[0, 1]``.

        Only the root factors (and :meth:`required_extra_columns`) are needed; missing
        non-root factors are computed by the structural equations, given ones are drawn as
        given. Pixel values are multiples of 1/255, identical to the cached images.
        """
        frame = self.complete_factors(factors)
        return torch.from_numpy(self.render_uint8(frame)).to(torch.float32).div_(255.0)

    # ------------------------------------------------------------------ splits and cache
    @abstractmethod
    def split_factors(self, split: str) -> pd.DataFrame:
        """The factors (and extra columns) of every image of ``split``, deterministic."""

    def cache_key(self) -> str:
        """File-name stem of this generator's cache files (includes all size arguments)."""
        return f"{self.name}-v{self.cache_version}"

    def cache_path(self, split: str, cache_dir: str | Path | None = None) -> Path:
        """Where ``split`` is cached."""
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        return root / f"{self.cache_key()}-{split}.npz"

    def load(
        self, split: str = "train", cache_dir: str | Path | None = None, progress: bool = True
    ) -> ImageData:
        """Load ``split``, building and caching it on first use.

        Arguments:
            split: ``"train"`` or ``"test"``.
            cache_dir: Overrides :func:`default_cache_dir`.
            progress: Show a progress bar while rendering a split for the first time.
        """
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; {self.name} has {list(self.splits)}")
        path = self.cache_path(split, cache_dir)
        loaded = self._read_cache(path)
        if loaded is None:
            factors = self.split_factors(split)
            images = self._render_all(factors, progress, desc=f"{self.name} {split}")
            self._write_cache(path, images, factors)
        else:
            images, factors = loaded
        labels = torch.from_numpy(self.normalize(factors))
        return ImageData(torch.from_numpy(images), factors, labels, self, split)

    def _render_all(self, factors: pd.DataFrame, progress: bool, desc: str) -> np.ndarray:
        out = np.empty((len(factors), *self.image_shape), dtype=np.uint8)
        with progress_bar(total=len(factors), enabled=progress, desc=desc, unit="img") as bar:
            for start in range(0, len(factors), _RENDER_CHUNK):
                chunk = factors.iloc[start : start + _RENDER_CHUNK]
                out[start : start + len(chunk)] = self.render_uint8(chunk.reset_index(drop=True))
                bar.update(len(chunk))
        return out

    def _write_cache(self, path: Path, images: np.ndarray, factors: pd.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = {f"column:{c}": factors[c].to_numpy() for c in factors.columns}
        values, lengths = _encode_runs(images)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:  # a file object keeps numpy from appending ".npz"
            np.savez_compressed(
                fh,
                image_shape=np.asarray(images.shape, dtype=np.int64),
                image_run_values=values,
                image_run_lengths=lengths,
                **columns,
            )
        os.replace(tmp, path)  # atomic: concurrent builders never see a half-written file

    def _read_cache(self, path: Path) -> tuple[np.ndarray, pd.DataFrame] | None:
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                shape = tuple(int(d) for d in archive["image_shape"])
                images = _decode_runs(
                    archive["image_run_values"], archive["image_run_lengths"], shape
                )
                factors = pd.DataFrame(
                    {
                        k.split(":", 1)[1]: archive[k]
                        for k in archive.files
                        if k.startswith("column:")
                    }
                )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None  # unreadable, partial or of an older layout: rebuild it
        if images.shape[1:] != self.image_shape or images.dtype != np.uint8:
            return None
        if not set(self.factor_names).issubset(factors.columns) or len(factors) != len(images):
            return None
        return images, factors

    # ------------------------------------------------------------------ helpers
    def _require(self, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{self.name}: missing columns {missing}; got {list(frame.columns)} "
                f"(factors {list(self.factor_names)}, extra {list(self.extra_columns)})"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, factors={list(self.factor_names)})"


_MAX_RUN = np.iinfo(np.uint16).max


def _encode_runs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length code of the C-order pixels: ``(values uint8, lengths uint16)``.

    Rendered images are mostly flat background, so the runs are ~50x fewer than the pixels;
    :func:`_decode_runs` rebuilds the array with one :func:`numpy.repeat` at memory speed,
    several times faster than inflating the raw pixels (what keeps a second load under a
    second). Runs longer than 65,535 are split.
    """
    flat = np.ascontiguousarray(images).reshape(-1)
    if flat.size == 0:
        return flat[:0].copy(), np.zeros(0, dtype=np.uint16)
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    lengths = np.diff(np.append(starts, flat.size))
    pieces = (lengths + _MAX_RUN - 1) // _MAX_RUN
    values = np.repeat(flat[starts], pieces)
    split = np.full(int(pieces.sum()), _MAX_RUN, dtype=np.uint16)
    split[np.cumsum(pieces) - 1] = (lengths - _MAX_RUN * (pieces - 1)).astype(np.uint16)
    return values, split


def _decode_runs(values: np.ndarray, lengths: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_encode_runs`."""
    flat = np.repeat(values, lengths)
    if flat.size != int(np.prod(shape)):
        raise ValueError(f"run-length code has {flat.size} pixels for shape {shape}")
    return flat.reshape(shape)


def _broadcast(value: InterventionValue, n: int, node: str) -> np.ndarray:
    arr = _as_numpy(value).astype(np.float64).reshape(-1)
    if arr.size == 1:
        return np.full(n, float(arr[0]))
    if arr.size != n:
        raise ValueError(f"intervention on {node!r} has {arr.size} values for {n} units")
    return arr


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, pd.DataFrame | pd.Series):
        return value.to_numpy()
    return np.asarray(value)


class AggCanvas:
    """A white 1x1 inch, 96 dpi figure with one axes-off axes, drawn straight on Agg.

    Shared by the matplotlib-drawn data sets (Pendulum, Flow). The axes fill matplotlib's
    default subplot rectangle (:attr:`AXES_RECT`), as a ``plt.gca()`` in the original scripts
    did: at 96 px the axes span columns 12 .. 86.4 and rows 11.52 .. 85.44 (row 0 at the top).
    Build and draw it inside :meth:`style` so that a user's matplotlib style cannot leak in;
    create the artists once and mutate them per image (no pyplot, no figure per image).
    """

    #: (left, bottom, width, height) in figure fractions: matplotlib's default subplot.
    AXES_RECT = (0.125, 0.11, 0.775, 0.77)
    #: Image side in pixels (1 inch at 96 dpi).
    SIZE = 96

    def __init__(self, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
        self.figure = Figure(figsize=(1.0, 1.0), dpi=self.SIZE, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_axes(self.AXES_RECT)
        self.axes.set_xlim(xlim)
        self.axes.set_ylim(ylim)
        self.axes.set_axis_off()
        self._artists: list[Artist] = []
        self._background: Any = None

    @staticmethod
    def style() -> AbstractContextManager:
        """Matplotlib's default style, for the duration of a render."""
        return matplotlib.style.context("default")

    def add(self, *artists: Artist) -> None:
        """Add ``artists`` to the axes (clipped to it, like ``ax.add_artist``)."""
        for artist in artists:
            self.axes.add_artist(artist)
            self._artists.append(artist)

    def pixels(self) -> np.ndarray:
        """Draw and return the ``uint8 (4, 96, 96)`` RGBA pixels (row 0 at the top).

        The first call draws the empty figure once and keeps it as the background; every call
        restores it and draws the added artists in zorder (stable, as a full figure draw
        does), which gives a full draw's pixels without redrawing the figure and axes.
        """
        if self._background is None:
            for artist in self._artists:
                artist.set_visible(False)
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
            for artist in self._artists:
                artist.set_visible(True)
        self.canvas.restore_region(self._background)
        renderer = self.canvas.get_renderer()
        for artist in sorted(self._artists, key=lambda a: a.get_zorder()):
            artist.draw(renderer)
        return np.asarray(self.canvas.buffer_rgba()).transpose(2, 0, 1).copy()

    def full_draw(self) -> np.ndarray:
        """The pixels of a plain full ``canvas.draw()`` (slower; to check :meth:`pixels`)."""
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba()).transpose(2, 0, 1).copy()


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def get_dataset(name: str, **kwargs: Any) -> ImageDataset:
    """The image data set generator registered as ``name``; ``kwargs`` go to its constructor.

    Example:
        >>> from pyrocausal.datasets.images import get_dataset
        >>> get_dataset("morpho", n_train=100, n_test=20).factor_names
        ('thickness', 'intensity')
    """
    _load_builtins()
    try:
        cls = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown image data set {name!r}; known: {sorted(DATASETS)}") from None
    return cls(**kwargs)


def load_dataset(
    name: str,
    split: str = "train",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> ImageData:
    """``get_dataset(name, **kwargs).load(split, cache_dir, progress)``."""
    return get_dataset(name, **kwargs).load(split, cache_dir=cache_dir, progress=progress)
