"""Tests of the rendered image data sets: renderers against their formulas, splits, cache, SCMs.

Pixel geometry used throughout (see the modules): scene x maps to column 12 + 3.72 x; the
Pendulum's y to row 85.44 - 3.36 (y + 1); the Flow's y to row 85.44 - 3.696 y.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from pyrocausal.datasets.images import (
    CACHE_ENV,
    DATASETS,
    ImageData,
    default_cache_dir,
    get_dataset,
    load_dataset,
)
from pyrocausal.datasets.morpho import (
    MorphoDigits,
    measure_intensity,
    measure_thickness,
    skeletonize,
)
from pyrocausal.datasets.pendulum import Pendulum, shadow_geometry, x_to_column
from pyrocausal.datasets.pendulum import y_to_row as pendulum_row
from pyrocausal.datasets.waterflow import WaterFlow
from pyrocausal.datasets.waterflow import y_to_row as flow_row

PX = 3.72  # pixels per horizontal scene unit


def _rgb(images: np.ndarray) -> np.ndarray:
    return images[:, :3].astype(np.float64)


# ---------------------------------------------------------------------- pendulum
@pytest.fixture(scope="module")
def pendulum_sample() -> tuple[pd.DataFrame, np.ndarray]:
    pendulum = Pendulum()
    grid = pendulum.grid_factors().iloc[::23].reset_index(drop=True)  # 318 grid images
    return grid, pendulum.render_uint8(grid)


def test_pendulum_grid_matches_the_methods_facts():
    grid = Pendulum().grid_factors()
    assert len(grid) == 84 * 87 == 7308
    length, position = grid["shadow_length"], grid["shadow_position"]
    assert length.min() == pytest.approx(3.0) and length.max() == pytest.approx(12.58, abs=0.005)
    assert position.min() == pytest.approx(2.01, abs=0.005)
    assert position.max() == pytest.approx(19.61, abs=0.005)
    assert (length == 3.0).mean() == pytest.approx(0.40, abs=0.01)
    assert int((position + length / 2 > 20).sum()) == 114
    # angles in degrees are 0.9 x the original grid indices
    assert grid["pendulum_angle"].min() == pytest.approx(-36.0)
    assert grid["light_angle"].max() == pytest.approx(132.3)
    assert not np.isclose(grid["light_angle"], 90.0).any()


def test_pendulum_shadow_in_pixels_matches_its_factors(pendulum_sample):
    grid, images = pendulum_sample
    ground = float(pendulum_row(-0.5))  # 83.76: the 3 pt shadow spans about rows 82-85
    band = _rgb(images)[:, :, int(ground) - 2 : int(ground) + 3].mean(axis=1)
    darkness = ((255.0 - band) / 255.0).max(axis=1)  # (N, 96) coverage per column
    length = grid["shadow_length"].to_numpy()
    position = grid["shadow_position"].to_numpy()
    inside = (position - length / 2 > 0.3) & (position + length / 2 < 19.7)  # not clipped
    assert inside.sum() > 250
    measured_length = darkness.sum(axis=1) / PX
    centre = (darkness * (np.arange(96) + 0.5)).sum(axis=1) / darkness.sum(axis=1)
    # the segment ends are snapped to whole pixels: at most half a pixel each
    assert np.abs(measured_length - length)[inside].max() * PX < 1.0
    assert np.abs(centre - x_to_column(position))[inside].max() < 0.55
    # a clipped shadow stops at the axes edge (column 86.4)
    clipped = position + length / 2 > 20.5
    assert clipped.any()
    assert (darkness[clipped, 87:] == 0).all()


def test_pendulum_bob_and_light_are_where_the_geometry_puts_them(pendulum_sample):
    grid, images = pendulum_sample
    rgb = _rgb(images)
    theta = np.deg2rad(grid["pendulum_angle"].to_numpy())
    phi = np.deg2rad(grid["light_angle"].to_numpy())
    # firebrick bob (178, 34, 34): centroid of red pixels vs its centre
    red = np.clip((rgb[:, 0] - rgb[:, 1]) / (178 - 34), 0, 1)
    red *= np.abs(rgb[:, 1] - rgb[:, 2]) < 30  # grey-ish green = blue: not the orange light
    rows, cols = np.mgrid[0:96, 0:96] + 0.5
    mass = red.sum(axis=(1, 2))
    bob_col = (red * cols).sum(axis=(1, 2)) / mass
    bob_row = (red * rows).sum(axis=(1, 2)) / mass
    assert np.abs(bob_col - x_to_column(10 + 8 * np.sin(theta))).max() < 0.5
    assert np.abs(bob_row - pendulum_row(10.5 - 8 * np.cos(theta))).max() < 0.5
    # orange light (255, 165, 0), cut at the top: its columns centre on the projection
    orange = np.clip((rgb[:, 1] - rgb[:, 2]) / 165.0, 0, 1) * (rgb[:, 0] > 200)
    light_x = 10 + (20.5 - 10.5) * np.cos(phi) / np.sin(phi)
    whole = (light_x > 3.5) & (light_x < 16.5)
    light_col = (orange * cols).sum(axis=(1, 2)) / orange.sum(axis=(1, 2))
    assert np.abs(light_col - x_to_column(light_x))[whole].max() < 0.5
    # the light is always cut by the top of the axes (row 11.52)
    assert (orange[:, :11].sum(axis=(1, 2)) == 0).all()


def test_pendulum_splits_are_fixed_and_disjoint():
    pendulum = Pendulum()
    train, test = pendulum.split_factors("train"), pendulum.split_factors("test")
    assert (len(train), len(test)) == (5482, 1826)
    key = ["pendulum_angle", "light_angle"]
    both = pd.concat([train[key], test[key]]).round(6)
    assert not both.duplicated().any()
    assert test.equals(Pendulum().split_factors("test"))


def test_render_needs_only_roots_and_draws_given_descendants():
    pendulum = Pendulum()
    roots = pd.DataFrame({"pendulum_angle": [10.0, -20.0], "light_angle": [70.0, 110.0]})
    full = pendulum.structural_equations(roots)
    assert torch.equal(pendulum.render(roots), pendulum.render(full))
    # do(shadow_length = 8) on a non-root is drawn as given, the pendulum is unchanged
    longer = pendulum.render(full.assign(shadow_length=8.0))
    assert not torch.equal(longer, pendulum.render(full))
    shadow_rows = slice(80, 88)
    assert torch.equal(longer[:, :, :78], pendulum.render(full)[:, :, :78])
    dark = (1.0 - longer[:, :3, shadow_rows].mean(dim=1)).amax(dim=1).sum(dim=1)
    assert torch.allclose(dark, torch.full((2,), 8.0 * PX), atol=1.0)


# ---------------------------------------------------------------------- flow
def test_flow_grid_split_and_ranges():
    flow = WaterFlow()
    grid = flow.grid_factors()
    assert len(grid) == 30 * 30 * 9
    train, test = flow.split_factors("train"), flow.split_factors("test")
    assert (len(train), len(test)) == (6480, 1620)
    assert test.equals(grid.iloc[4::5].reset_index(drop=True))
    assert grid["jet_noise"].min() == pytest.approx(0.01)
    assert (grid["jet_noise"] == 0.01).mean() == pytest.approx(0.68, abs=0.03)
    codes = flow.normalize(grid)
    # the CausalVAE constants on the original labels (r, h, 10 flow, hole index)
    r, hole = grid["ball_size"] * 30, grid["hole"] * 3
    np.testing.assert_allclose(codes[:, 0], (r - 20) / 15, atol=1e-6)
    np.testing.assert_allclose(codes[:, 2], (hole - 10.5) / 4.5, atol=1e-6)
    np.testing.assert_allclose(codes[:, 3], (10 * grid["water_flow"] - 59.5) / 26.5, atol=1e-5)


def test_flow_water_level_jet_and_ball_match_their_factors():
    flow = WaterFlow()
    grid = flow.grid_factors().iloc[::53].reset_index(drop=True)  # 153 images
    rgb = _rgb(flow.render_uint8(grid))
    # light sky blue (135, 206, 250) coverage against white
    blue = np.clip((255 - rgb[:, 0]) / (255 - 135), 0, 1) * (rgb[:, 2] > 200)
    # water surface: first blue row in the column at x = 3.9 (between wall and ball)
    column = blue[:, :, int(x_to_column(3.9))]
    top = np.argmax(column > 0.02, axis=1)
    edge = top + 1 - column[np.arange(len(grid)), top]
    surface = flow_row(5 + grid["water_height"].to_numpy())
    assert np.abs(edge - surface).max() < 1.0  # the 1 pt outline adds 0.67 px
    # jet: horizontal centre of the curve half way down from the hole
    hole, reach = grid["hole"].to_numpy(), grid["water_flow"].to_numpy()
    noise = grid["jet_noise"].to_numpy()
    errors = []
    for k in range(len(grid)):
        row = int(flow_row((hole[k] + 0.5) / 2))
        y = (85.44 - (row + 0.5)) / 3.696
        x = 8 + reach[k] * np.sqrt((0.98 + noise[k]) / 0.98 * (hole[k] - y) / (hole[k] - 0.5))
        line = blue[k, row].copy()
        line[: int(x_to_column(8.5))] = 0  # keep the jet, not the water in the cup
        errors.append((line * (np.arange(96) + 0.5)).sum() / line.sum() - x_to_column(x))
    assert np.abs(errors).max() < 1.0
    # firebrick ball: its centre row follows the radius (centre at y = r + 0.5)
    red = np.clip((rgb[:, 0] - rgb[:, 2]) / (178 - 34), 0, 1) * (rgb[:, 1] < 120)
    rows = np.arange(96)[None, :, None] + 0.5
    centre = (red * rows).sum(axis=(1, 2)) / red.sum(axis=(1, 2))
    expected = flow_row(grid["ball_size"].to_numpy() + 0.5)
    big = grid["ball_size"].to_numpy() > 0.4  # small balls hide behind the ground line
    assert np.abs(centre - expected)[big].max() < 0.6


def test_flow_render_requires_the_noisy_height():
    flow = WaterFlow()
    with pytest.raises(ValueError, match="water_height"):
        flow.render(pd.DataFrame({"ball_size": [0.5], "hole": [3.0]}))


# ---------------------------------------------------------------------- morpho
def test_skeleton_of_a_bar_is_its_midline():
    bar = np.zeros((15, 40), dtype=bool)
    bar[3:12, 4:36] = True
    skeleton = skeletonize(bar)
    assert np.flatnonzero(skeleton.any(axis=1)).tolist() == [7]
    assert skeleton.sum() >= 20


def test_morpho_thickness_and_intensity_measured_match_factors():
    morpho = MorphoDigits()
    factors = morpho.sample_factors(150, seed=3)
    images = morpho.render(factors)
    assert images.shape == (150, 1, 28, 28)
    thickness = measure_thickness(images)
    error = thickness - factors["thickness"].to_numpy()
    assert np.median(np.abs(error)) < 0.15
    assert np.quantile(np.abs(error), 0.9) < 0.3
    assert np.corrcoef(thickness, factors["thickness"])[0, 1] > 0.98
    intensity = measure_intensity(images)
    gap = np.abs(intensity - factors["intensity"].to_numpy())
    assert np.quantile(gap, 0.95) < 2.0  # rounding to uint8 and the clip at 255


def test_morpho_counterfactual_image_is_the_same_digit_thicker():
    morpho = MorphoDigits()
    factors = morpho.sample_factors(20, seed=4)
    cf = morpho.counterfactual_factors(factors, {"thickness": factors["thickness"] + 1.0})
    assert (cf["base_index"] == factors["base_index"]).all()
    gained = measure_thickness(morpho.render(cf)) - measure_thickness(morpho.render(factors))
    assert np.median(gained) == pytest.approx(1.0, abs=0.2)
    assert (cf["intensity"] > factors["intensity"]).all()  # thicker -> brighter, same noise


def test_morpho_render_requires_the_base_digit():
    with pytest.raises(ValueError, match="base_index"):
        MorphoDigits().render(pd.DataFrame({"thickness": [2.0], "intensity": [150.0]}))


def test_morpho_splits_share_no_base_digit_and_nest():
    small, large = MorphoDigits(n_train=50, n_test=20), MorphoDigits(n_train=120, n_test=20)
    train, test = small.split_factors("train"), small.split_factors("test")
    assert set(train["base_index"]).isdisjoint(test["base_index"])
    assert train.equals(large.split_factors("train").iloc[:50])  # a prefix of a larger set
    bases = small.base_split()
    assert len(bases["test"]) == 300 and len(bases["train"]) == 1497


# ---------------------------------------------------------------------- cache
def test_cache_round_trip_is_identical_and_fast(tmp_path, monkeypatch):
    morpho = MorphoDigits(n_train=120, n_test=30)
    first = morpho.load("train", cache_dir=tmp_path, progress=False)
    path = morpho.cache_path("train", tmp_path)
    assert path.exists() and path.suffix == ".npz"

    def no_render(*args, **kwargs):
        raise AssertionError("a cached split was rendered again")

    monkeypatch.setattr(MorphoDigits, "render_uint8", no_render)
    start = time.perf_counter()
    second = morpho.load("train", cache_dir=tmp_path, progress=False)
    assert time.perf_counter() - start < 1.0
    assert torch.equal(first.images, second.images)
    pd.testing.assert_frame_equal(first.factors, second.factors)
    assert torch.equal(first.labels, second.labels)
    monkeypatch.undo()
    # the cached pixels are the renderer's
    assert torch.equal(first.images.float() / 255, morpho.render(first.factors))


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    data = load_dataset("morpho", "test", progress=False, n_train=10, n_test=12)
    assert len(data) == 12
    assert list((tmp_path / "here").glob("morpho-*-test.npz"))


def test_a_corrupt_cache_file_is_rebuilt(tmp_path):
    morpho = MorphoDigits(n_train=10, n_test=10)
    path = morpho.cache_path("test", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a zip file")
    data = morpho.load("test", cache_dir=tmp_path, progress=False)
    assert len(data) == 10 and path.stat().st_size > 100


def test_image_data_items_are_float_images_and_normalized_labels(tmp_path):
    data = MorphoDigits(n_train=16, n_test=8).load("test", cache_dir=tmp_path, progress=False)
    assert isinstance(data, ImageData) and data.images.dtype == torch.uint8
    image, labels = data[0]
    assert image.dtype == torch.float32 and image.min() >= 0.0 and image.max() <= 1.0
    assert labels.dtype == torch.float32 and labels.shape == (2,)
    batch, batch_labels = data[torch.tensor([1, 3, 5])]
    assert batch.shape == (3, 1, 28, 28) and batch_labels.shape == (3, 2)
    np.testing.assert_allclose(
        data.dataset.denormalize(data.labels)["thickness"], data.factors["thickness"], rtol=1e-5
    )


# ---------------------------------------------------------------------- SCMs of the factors
ROOT_INTERVENTIONS = {
    "pendulum": ("light_angle", 120.0, ("shadow_length", "shadow_position")),
    "flow": ("ball_size", 1.0, ("water_height", "water_flow")),
    "morpho": ("thickness", 4.5, ("intensity",)),
}


@pytest.mark.parametrize("name", sorted(ROOT_INTERVENTIONS))
def test_counterfactual_factors(name):
    dataset = get_dataset(name)
    factors = dataset.sample_factors(40, seed=1)
    # the identity: no intervention, or intervening with the factual values
    for same in (
        dataset.counterfactual_factors(factors, {}),
        dataset.counterfactual_factors(factors, {n: factors[n] for n in dataset.factor_names}),
    ):
        pd.testing.assert_frame_equal(same, factors, check_exact=False, rtol=1e-9, atol=1e-9)
    # intervening on a root changes every descendant and keeps the exogenous terms
    node, value, descendants = ROOT_INTERVENTIONS[name]
    cf = dataset.counterfactual_factors(factors, {node: value})
    assert (cf[node] == value).all()
    assert set(descendants) == dataset.graph.descendants(node)
    for child in descendants:
        assert (np.abs(cf[child] - factors[child]) > 1e-6).mean() > 0.5, child
    pd.testing.assert_frame_equal(dataset.abduct(cf), dataset.abduct(factors), rtol=1e-6)
    for column in dataset.extra_columns:
        assert cf[column].equals(factors[column])


def test_descendant_intervention_leaves_its_parents():
    flow = WaterFlow()
    factors = flow.sample_factors(10, seed=2)
    cf = flow.counterfactual_factors(factors, {"water_height": 4.0})
    assert cf["ball_size"].equals(factors["ball_size"]) and cf["hole"].equals(factors["hole"])
    assert (cf["water_flow"] > 0).all() and not cf["water_flow"].equals(factors["water_flow"])
    with pytest.raises(ValueError, match="unknown factor"):
        flow.counterfactual_factors(factors, {"flow": 1.0})


def test_pendulum_labels_are_the_papers_codes():
    pendulum = Pendulum()
    grid = pendulum.grid_factors()
    codes = pendulum.normalize(grid)
    i, j = grid["pendulum_angle"] / 0.9, grid["light_angle"] / 0.9
    np.testing.assert_allclose(codes[:, 0], i / 44, atol=1e-6)
    np.testing.assert_allclose(codes[:, 1], (j - 100) / 40, atol=1e-6)
    np.testing.assert_allclose(
        pendulum.denormalize(codes), grid[list(pendulum.factor_names)], atol=1e-4
    )
    length, position = shadow_geometry(grid["pendulum_angle"], grid["light_angle"])
    np.testing.assert_array_equal(length, grid["shadow_length"])
    np.testing.assert_array_equal(position, grid["shadow_position"])


def test_registry():
    get_dataset("pendulum")  # imports the built-in modules
    assert {"pendulum", "flow", "morpho"} <= set(DATASETS)
    for name, shape in (("pendulum", (4, 96, 96)), ("flow", (4, 96, 96)), ("morpho", (1, 28, 28))):
        dataset = get_dataset(name)
        assert dataset.name == name and dataset.image_shape == shape
        assert set(dataset.units) == set(dataset.factor_names)
        assert dataset.graph.nodes == dataset.factor_names
    with pytest.raises(ValueError, match="unknown image data set"):
        get_dataset("mnist")
