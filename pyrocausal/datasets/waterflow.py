r"""Flow: a ball in a cup of water and the jet out of a hole in its wall (CausalVAE, CVPR 2021).

A renderer of the generative procedure of the original "flow" data set: 96x96 RGBA images,
8,100 of them on the original grid. The ball's size raises the water; the water height and
the height of the hole set the flow of the jet:

.. code-block:: text

    ball_size ──> water_height ──┬──> water_flow
    hole ────────────────────────┘

Units: every factor is in **scene units**, the axes' data coordinates (``x, y ∈ [0, 20]``;
in the image ``column ≈ 12 + 3.72·x``, ``row ≈ 85.44 - 3.696·y``, see :func:`y_to_row`):

- ``ball_size``: the ball's radius ``r/30`` for the grid index ``r ∈ [5, 34]``;
- ``water_height``: ``h = ball_size³ + u`` with exogenous ``u = h_raw/10``,
  ``h_raw ∈ [10, 39]`` (the water's surface is drawn at ``y = 5 + h``);
- ``hole``: the height of the hole above the ground, ``hole_index/3`` for ``[6, 14]``;
- ``water_flow``: ``sqrt(2·0.98·h·(hole - 0.5))``, how far the jet has travelled from the
  wall when it reaches ``y = 0.5`` (the original labels are ten times this, truncated).

Drawing (the original's artists and colours): the water, a light-sky-blue rectangle over
``x ∈ [3, 8]``, ``y ∈ [0, 5 + h]``; a firebrick ball of radius ``r`` at ``(5.5, r + 0.5)``;
black 2 pt walls at ``x = 3`` (``y ∈ [0, 19]``) and ``x = 8`` with a gap of 0.4 above
``y = hole``; the jet, a 2 pt light-sky-blue curve ``x = 8 + sqrt(2 (0.98 + e) h (hole - y))``
sampled at 50 heights from ``hole`` down to 0.5; a black 2 pt ground line at ``y = 0.2``.
The jet's exogenous wobble ``e = 0.01·max(|N(0, 1)|, 1)`` is an *image* noise, not a factor:
it is kept per image in the extra column ``jet_noise`` (default 0.01, its most likely value)
so that a unit's counterfactual image keeps it. A jet is drawn from the ``water_flow`` value
(``x = 8 + flow·sqrt((0.98 + e)/0.98)·sqrt((hole - y)/(hole - 0.5))``, the same curve when the
factors are consistent), so an intervention on the flow itself is drawn as asked.

Split: grid order ``r`` outer, ``h_raw``, ``hole`` inner; every 5th image (index 4, 9, ...)
is a test image: 6,480 train, 1,620 test. The jet noise is drawn in grid order from
``numpy.random.default_rng(0)``.

Label normalization ``(y - a) / b``: ``a = (2/3, 2, 3.5, 5.95)``,
``b = (0.5, 2, 1.5, 2.65)``. These are the CausalVAE flow constants
``[[20, 15], [2, 2], [59.5, 26.5], [10.5, 4.5]]``, which apply to the original file-name labels
``(r, h, 10·flow, hole_index)`` in that order, converted to the units above. (They map
``hole_index ∈ [6, 14]`` onto ``[-1, 0.78]``; paired with the factors in the order
``(ball, height, hole, flow)`` they would not.)

Example:
    >>> import pandas as pd
    >>> from pyrocausal.datasets.waterflow import WaterFlow
    >>> flow = WaterFlow()
    >>> f = pd.DataFrame({"ball_size": [0.5], "water_height": [2.125], "hole": [3.0]})
    >>> full = flow.structural_equations(f)
    >>> round(float(full["water_flow"][0]), 4)
    3.2268
    >>> cf = flow.counterfactual_factors(full, {"ball_size": 1.0})
    >>> round(float(cf["water_height"][0]), 4)  # u = 2.125 - 0.5**3 = 2.0 is kept
    3.0
"""

from __future__ import annotations

__all__ = ["WaterFlow", "x_to_column", "y_to_row"]

from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Polygon, Rectangle

from pyrocausal.datasets.images import AggCanvas, ImageDataset
from pyrocausal.datasets.pendulum import x_to_column

XLIM = (0.0, 20.0)
YLIM = (0.0, 20.0)
GRAVITY = 0.98
CUP_LEFT, CUP_RIGHT, CUP_TOP = 3.0, 8.0, 19.0
WATER_BASE = 5.0  # the water's surface is at y = 5 + water_height
HOLE_GAP = 0.4
JET_END = 0.5
GROUND = 0.2
BALL_X = 5.5
BALL_LIFT = 0.5  # the ball floats 0.5 above the ground: centre (5.5, r + 0.5)
WATER = "lightskyblue"
BALL_INDEX = range(5, 35)
HEIGHT_INDEX = range(10, 40)
HOLE_INDEX = range(6, 15)
DEFAULT_JET_NOISE = 0.01


def y_to_row(y: npt.ArrayLike) -> np.ndarray:
    """Image row (pixel edge coordinate, 0 at the top) of scene ``y``: ``85.44 - 3.696·y``."""
    bottom = AggCanvas.SIZE * (1.0 - AggCanvas.AXES_RECT[1])
    height = AggCanvas.AXES_RECT[3] * AggCanvas.SIZE
    return bottom - height / (YLIM[1] - YLIM[0]) * (np.asarray(y, dtype=float) - YLIM[0])


def _flow(water_height: np.ndarray, hole: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(2.0 * GRAVITY * water_height * (hole - JET_END), 0.0))


def _jet_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return 0.01 * np.maximum(np.abs(rng.standard_normal(n)), 1.0)


class WaterFlow(ImageDataset):
    """The Flow data set: a renderer, its factor SCM, splits and cache (see the module)."""

    name = "flow"
    factor_names = ("ball_size", "water_height", "hole", "water_flow")
    parents = MappingProxyType(
        {
            "ball_size": (),
            "water_height": ("ball_size",),
            "hole": (),
            "water_flow": ("water_height", "hole"),
        }
    )
    units = MappingProxyType(
        {
            "ball_size": "scene units (ball radius)",
            "water_height": "scene units (surface at 5 + height)",
            "hole": "scene units (height of the hole)",
            "water_flow": "scene units (jet reach at y = 0.5)",
        }
    )
    extra_columns = ("jet_noise",)
    noisy = ("water_height",)
    image_shape = (4, 96, 96)
    label_loc = np.array([20.0 / 30.0, 2.0, 10.5 / 3.0, 5.95])
    label_scale = np.array([15.0 / 30.0, 2.0, 4.5 / 3.0, 2.65])
    test_every = 5
    noise_seed = 0

    # ------------------------------------------------------------------ SCM
    def mechanism(self, node: str, factors: pd.DataFrame, noise: pd.DataFrame) -> np.ndarray:
        if node == "water_height":
            ball = factors["ball_size"].to_numpy(dtype=float)
            return ball**3 + noise["water_height"].to_numpy(dtype=float)
        if node == "water_flow":
            return _flow(
                factors["water_height"].to_numpy(dtype=float),
                factors["hole"].to_numpy(dtype=float),
            )
        raise ValueError(f"{node!r} is not a non-root factor of the flow data set")

    def abduct(self, factors: pd.DataFrame) -> pd.DataFrame:
        """The water's own height ``u = water_height - ball_size³`` (the original ``h_raw/10``)."""
        height = factors["water_height"].to_numpy(dtype=float)
        ball = factors["ball_size"].to_numpy(dtype=float)
        return pd.DataFrame({"water_height": height - ball**3}, index=factors.index)

    def sample_factors(self, n: int, seed: int = 0) -> pd.DataFrame:
        """Roots and ``u`` uniform over the grid's continuous ranges; the SCM for the rest."""
        rng = np.random.default_rng(seed)
        ball = rng.uniform(BALL_INDEX[0] / 30, BALL_INDEX[-1] / 30, n)
        u = rng.uniform(HEIGHT_INDEX[0] / 10, HEIGHT_INDEX[-1] / 10, n)
        hole = rng.uniform(HOLE_INDEX[0] / 3, HOLE_INDEX[-1] / 3, n)
        noise = _jet_noise(rng, n)
        frame = pd.DataFrame(
            {"ball_size": ball, "water_height": ball**3 + u, "hole": hole, "jet_noise": noise}
        )
        return self.structural_equations(frame)

    def grid_factors(self) -> pd.DataFrame:
        """The original 8,100 images' factors and jet noise, in the original's loop order."""
        r, h_raw, hole = np.meshgrid(
            np.array(BALL_INDEX), np.array(HEIGHT_INDEX), np.array(HOLE_INDEX), indexing="ij"
        )
        ball = r.ravel() / 30.0
        frame = pd.DataFrame(
            {
                "ball_size": ball,
                "water_height": ball**3 + h_raw.ravel() / 10.0,
                "hole": hole.ravel() / 3.0,
            }
        )
        frame["jet_noise"] = _jet_noise(np.random.default_rng(self.noise_seed), len(frame))
        return self.structural_equations(frame)

    def split_factors(self, split: str) -> pd.DataFrame:
        grid = self.grid_factors()
        test = np.arange(len(grid)) % self.test_every == self.test_every - 1
        return grid[test if split == "test" else ~test].reset_index(drop=True)

    # ------------------------------------------------------------------ rendering
    def render_uint8(self, factors: pd.DataFrame) -> np.ndarray:
        ball = factors["ball_size"].to_numpy(dtype=float)
        height = factors["water_height"].to_numpy(dtype=float)
        hole = factors["hole"].to_numpy(dtype=float)
        flow = factors["water_flow"].to_numpy(dtype=float)
        if "jet_noise" in factors.columns:
            noise = factors["jet_noise"].to_numpy(dtype=float)
        else:
            noise = np.full(len(factors), DEFAULT_JET_NOISE)
        out = np.empty((len(factors), *self.image_shape), dtype=np.uint8)
        with AggCanvas.style():
            canvas = AggCanvas(XLIM, YLIM)
            # The original's artists, styles and drawing order: patches (zorder 1) in insertion
            # order, then the two lines (zorder 2); `color=` also outlines the patches (1 pt).
            water = Rectangle((CUP_LEFT, 0.0), CUP_RIGHT - CUP_LEFT, WATER_BASE, color=WATER)
            ball_patch = Circle((BALL_X, 1.0), 1.0, color="firebrick")
            left = Polygon([[CUP_LEFT, 0.0], [CUP_LEFT, CUP_TOP]], color="black", linewidth=2)
            below = Polygon([[CUP_RIGHT, 0.0], [CUP_RIGHT, 1.0]], color="black", linewidth=2)
            above = Polygon([[CUP_RIGHT, 1.0], [CUP_RIGHT, CUP_TOP]], color="black", linewidth=2)
            jet = Line2D([], [], color=WATER, linewidth=2)
            ground_x = np.linspace(XLIM[0], XLIM[1], 50)
            ground = Line2D(ground_x, np.full(50, GROUND), color="black", linewidth=2)
            canvas.add(water, left, below, above, ball_patch, jet, ground)
            for k in range(len(factors)):
                water.set_height(WATER_BASE + height[k])
                ball_patch.set_center((BALL_X, ball[k] + BALL_LIFT))
                ball_patch.set_radius(ball[k])
                below.set_xy([[CUP_RIGHT, 0.0], [CUP_RIGHT, hole[k]]])
                above.set_xy([[CUP_RIGHT, hole[k] + HOLE_GAP], [CUP_RIGHT, CUP_TOP]])
                jet.set_data(*_jet_curve(flow[k], hole[k], noise[k]))
                out[k] = canvas.pixels()
        return out


def _jet_curve(flow: float, hole: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    y = np.linspace(hole, JET_END, 50)
    drop = hole - JET_END
    if not drop > 0:  # the hole sits at or below the end of the jet: nothing to draw
        return np.full(50, np.nan), y
    reach = flow * np.sqrt((GRAVITY + noise) / GRAVITY)
    return CUP_RIGHT + reach * np.sqrt(np.maximum(hole - y, 0.0) / drop), y
