r"""Pendulum: a pendulum, a light source and the shadow it casts (CausalVAE, CVPR 2021).

A deterministic renderer of the generative procedure of the original data set: 96x96 RGBA
images, 7,308 of them on the original grid of angles. The pendulum angle and the light angle
cause the shadow's length and position:

.. code-block:: text

    pendulum_angle ──┬──> shadow_length
    light_angle ─────┴──> shadow_position

Units. Angles are in **degrees**: the original grid indices ``i ∈ [-40, 43]`` (pendulum) and
``j ∈ [60, 147] \ {100}`` (light) mean ``θ = iπ/200`` and ``φ = jπ/200`` radians, so a factor
value is ``0.9·i`` degrees (pendulum ``[-36, 38.7]``, light ``[54, 132.3]``, 90 excluded).
Shadow length and position are in **scene units**, the axes' data coordinates
(``x ∈ [0, 20]``, ``y ∈ [-1, 21]``); in the image ``column ≈ 12 + 3.72·x`` and
``row ≈ 85.44 - 3.36·(y + 1)`` (pixel edges, row 0 at the top), see :func:`x_to_column`.
The factors are the exact floats of the geometry, not the ``int()``-truncated values of the
original file names (off by 0.29 in length and 0.50 in position on average). True ranges:
length 3.00–12.58 (40% of the images at the cap of 3), position 2.01–19.61; about 114 shadows
run past ``x = 20`` and are clipped at the axes edge, and the light is always cut at the top.

Geometry (scene units): pivot ``(10, 10.5)``; bob centre ``(10 + 8 sinθ, 10.5 - 8 cosθ)``,
radius 1.5, drawn with a 1 pt outline of its own colour (firebrick); rod 3 pt wide (black);
light: a circle of radius 3 at ``(proj(10, 10.5, 20.5), 20.5)`` (orange), where
``proj(x0, y0, base) = x0 + (base - y0) / tanφ`` is where the ray through ``(x0, y0)`` with
slope ``tanφ`` meets ``y = base``; shadow: a black 3 pt segment at ``y = -0.5`` between
``proj(10, 10.5, -0.5)`` and ``proj(10 + 9.5 sinθ, 10.5 - 9.5 cosθ, -0.5)``, at least 3 long
(centred on their midpoint). The alpha channel is always 255 (an opaque white figure); it is
kept so that the images have the papers' 4 x 96 x 96 shape.

Split: a fixed permutation (``numpy.random.default_rng(0)``) of the 7,308 grid images gives
1,826 test images (its first 1,826 entries) and 5,482 training images, each split in grid
order. Label normalization ``(y - a) / b`` with ``a = (0, 90, 6.5, 10)`` and
``b = (39.6, 36, 3.5, 5)``: the papers' ``a = (0, 100, 6.5, 10)``, ``b = (44, 40, 3.5, 5)``
on grid indices, converted to degrees, so the codes are the papers' codes.

Example:
    >>> import pandas as pd
    >>> from pyrocausal.datasets.pendulum import Pendulum
    >>> pendulum = Pendulum()
    >>> factors = pd.DataFrame({"pendulum_angle": [0.0], "light_angle": [45.0]})
    >>> full = pendulum.structural_equations(factors)
    >>> round(float(full["shadow_length"][0]), 3), round(float(full["shadow_position"][0]), 3)
    (9.5, 3.75)
    >>> cf = pendulum.counterfactual_factors(full, {"light_angle": 135.0})
    >>> round(float(cf["shadow_position"][0]), 3)
    16.25
"""

from __future__ import annotations

__all__ = ["Pendulum", "shadow_geometry", "x_to_column", "y_to_row"]

import math
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.patches import Circle, Polygon

from pyrocausal.datasets.images import AggCanvas, ImageDataset

PIVOT = (10.0, 10.5)
ROD_LENGTH = 8.0
BOB_RADIUS = 1.5
SHADOW_ARM = 9.5  # the shadow is cast by the bob's far edge: 8 + 1.5
LIGHT_HEIGHT = 20.5
LIGHT_RADIUS = 3.0
GROUND = -0.5
MIN_SHADOW = 3.0
XLIM = (0.0, 20.0)
YLIM = (-1.0, 21.0)
DEGREES_PER_INDEX = 0.9  # θ = iπ/200 rad = 0.9·i degrees
PENDULUM_INDEX = range(-40, 44)
LIGHT_INDEX = tuple(j for j in range(60, 148) if j != 100)


def x_to_column(x: npt.ArrayLike) -> np.ndarray:
    """Image column (pixel edge coordinate, 0 at the left) of scene ``x``: ``12 + 3.72·x``."""
    width = AggCanvas.AXES_RECT[2] * AggCanvas.SIZE
    left = AggCanvas.AXES_RECT[0] * AggCanvas.SIZE
    return left + width / (XLIM[1] - XLIM[0]) * (np.asarray(x, dtype=float) - XLIM[0])


def y_to_row(y: npt.ArrayLike) -> np.ndarray:
    """Image row (pixel edge coordinate, 0 at the top) of scene ``y``: ``85.44 - 3.36·(y + 1)``."""
    bottom = AggCanvas.SIZE * (1.0 - AggCanvas.AXES_RECT[1])
    height = AggCanvas.AXES_RECT[3] * AggCanvas.SIZE
    return bottom - height / (YLIM[1] - YLIM[0]) * (np.asarray(y, dtype=float) - YLIM[0])


def _project(x0: np.ndarray, y0: np.ndarray, base: float, phi: np.ndarray) -> np.ndarray:
    # x0 + (base - y0) / tan(phi), written with cos / sin so that phi = 90 degrees is exact
    return x0 + (base - y0) * np.cos(phi) / np.sin(phi)


def shadow_geometry(
    pendulum_angle: npt.ArrayLike, light_angle: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Shadow ``(length, position)`` in scene units for angles in degrees (the true SCM).

    Example:
        >>> from pyrocausal.datasets.pendulum import shadow_geometry
        >>> length, position = shadow_geometry([0.0, 30.0], [90.0, 90.0])
        >>> length.round(3).tolist(), position.round(3).tolist()
        ([3.0, 4.75], [10.0, 12.375])
    """
    theta = np.deg2rad(np.asarray(pendulum_angle, dtype=float))
    phi = np.deg2rad(np.asarray(light_angle, dtype=float))
    px, py = PIVOT
    p1 = _project(np.full_like(theta, px), np.full_like(theta, py), GROUND, phi)
    bx = px + SHADOW_ARM * np.sin(theta)
    by = py - SHADOW_ARM * np.cos(theta)
    p2 = _project(bx, by, GROUND, phi)
    return np.maximum(MIN_SHADOW, np.abs(p1 - p2)), (p1 + p2) / 2.0


class Pendulum(ImageDataset):
    """The Pendulum data set: a renderer, its factor SCM, splits and cache (see the module).

    Arguments:
        image_size: Side of the images in pixels, a divisor of 96 (default 96, the papers'
            size). Smaller images are the 96-pixel renders averaged over ``96 / image_size``
            pixel squares (box filter, rounded to ``uint8``), so a factor still moves the
            pixels continuously; they are cached apart from the full-size ones.

    Example:
        >>> Pendulum(image_size=32).image_shape
        (4, 32, 32)
    """

    name = "pendulum"
    factor_names = ("pendulum_angle", "light_angle", "shadow_length", "shadow_position")
    parents = MappingProxyType(
        {
            "pendulum_angle": (),
            "light_angle": (),
            "shadow_length": ("pendulum_angle", "light_angle"),
            "shadow_position": ("pendulum_angle", "light_angle"),
        }
    )
    units = MappingProxyType(
        {
            "pendulum_angle": "degrees",
            "light_angle": "degrees",
            "shadow_length": "scene units (3.72 px each)",
            "shadow_position": "scene units (x; column = 12 + 3.72 x)",
        }
    )
    image_shape = (4, 96, 96)
    label_loc = np.array([0.0, 90.0, 6.5, 10.0])
    label_scale = np.array([39.6, 36.0, 3.5, 5.0])
    n_test = 1826
    split_seed = 0

    def __init__(self, image_size: int = 96) -> None:
        full = Pendulum.image_shape[1]
        if not 0 < image_size <= full or full % image_size:
            raise ValueError(f"image_size must divide {full}, got {image_size}")
        self.image_size = int(image_size)
        self.image_shape = (Pendulum.image_shape[0], self.image_size, self.image_size)

    def cache_key(self) -> str:
        key = super().cache_key()
        return key if self.image_size == Pendulum.image_shape[1] else f"{key}-px{self.image_size}"

    # ------------------------------------------------------------------ SCM
    def mechanism(self, node: str, factors: pd.DataFrame, noise: pd.DataFrame) -> np.ndarray:
        length, position = shadow_geometry(factors["pendulum_angle"], factors["light_angle"])
        if node == "shadow_length":
            return length
        if node == "shadow_position":
            return position
        raise ValueError(f"{node!r} is not a non-root factor of the pendulum")

    def sample_factors(self, n: int, seed: int = 0) -> pd.DataFrame:
        """Angles uniform over the grid's continuous ranges (degrees); shadows from the SCM."""
        rng = np.random.default_rng(seed)
        pendulum = rng.uniform(-40 * DEGREES_PER_INDEX, 43 * DEGREES_PER_INDEX, n)
        light = rng.uniform(60 * DEGREES_PER_INDEX, 147 * DEGREES_PER_INDEX, n)
        return self.structural_equations(
            pd.DataFrame({"pendulum_angle": pendulum, "light_angle": light})
        )

    def grid_factors(self) -> pd.DataFrame:
        """The original 7,308 images' factors, pendulum index outer, light index inner."""
        i, j = np.meshgrid(np.array(PENDULUM_INDEX), np.array(LIGHT_INDEX), indexing="ij")
        return self.structural_equations(
            pd.DataFrame(
                {
                    "pendulum_angle": i.ravel() * DEGREES_PER_INDEX,
                    "light_angle": j.ravel() * DEGREES_PER_INDEX,
                }
            )
        )

    def split_factors(self, split: str) -> pd.DataFrame:
        grid = self.grid_factors()
        order = np.random.default_rng(self.split_seed).permutation(len(grid))
        index = np.sort(order[: self.n_test] if split == "test" else order[self.n_test :])
        return grid.iloc[index].reset_index(drop=True)

    # ------------------------------------------------------------------ rendering
    def render_uint8(self, factors: pd.DataFrame) -> np.ndarray:
        theta = np.deg2rad(factors["pendulum_angle"].to_numpy(dtype=float))
        phi = np.deg2rad(factors["light_angle"].to_numpy(dtype=float))
        length = factors["shadow_length"].to_numpy(dtype=float)
        position = factors["shadow_position"].to_numpy(dtype=float)
        px, py = PIVOT
        light_x = _project(np.full_like(phi, px), np.full_like(phi, py), LIGHT_HEIGHT, phi)
        out = np.empty((len(factors), *Pendulum.image_shape), dtype=np.uint8)
        with AggCanvas.style():
            canvas = AggCanvas(XLIM, YLIM)
            # Same artists, order and styles as the original script: `color=` gives the
            # circles a 1 pt outline of their own colour; patches share zorder 1, so they
            # are drawn in insertion order; add_artist clips them to the axes.
            rod = Polygon([[px, py], [px, py]], color="black", linewidth=3)
            bob = Circle((px, py), BOB_RADIUS, color="firebrick")
            light = Circle((px, LIGHT_HEIGHT), LIGHT_RADIUS, color="orange")
            shadow = Polygon([[0.0, GROUND], [0.0, GROUND]], color="black", linewidth=3)
            canvas.add(rod, bob, light, shadow)
            for k in range(len(factors)):
                bx = px + ROD_LENGTH * math.sin(theta[k])
                by = py - ROD_LENGTH * math.cos(theta[k])
                rod.set_xy([[px, py], [bx, by]])
                bob.set_center((bx, by))
                light.set_center((light_x[k], LIGHT_HEIGHT))
                half = length[k] / 2.0
                shadow.set_xy([[position[k] - half, GROUND], [position[k] + half, GROUND]])
                out[k] = canvas.pixels()
        k = Pendulum.image_shape[1] // self.image_size
        if k == 1:
            return out
        c, s = out.shape[1], self.image_size
        boxes = out.reshape(len(out), c, s, k, s, k).mean(axis=(3, 5))
        return np.round(boxes).astype(np.uint8)
