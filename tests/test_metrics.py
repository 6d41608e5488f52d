"""Tests of pyrocausal.metrics: disentanglement scores, counterfactual soundness, oracles."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Lasso

from pyrocausal.datasets.morpho import MorphoDigits
from pyrocausal.datasets.pendulum import Pendulum
from pyrocausal.metrics import (
    FactorReader,
    Oracle,
    cf_factor_mae,
    cf_image_mse,
    composition,
    dci,
    effectiveness,
    information_coefficients,
    l1_distance,
    mcc,
    mic_tic,
    reversibility,
    train_oracle,
)


@pytest.fixture
def factors() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(600, 4))


# ---------------------------------------------------------------------- MCC
def test_mcc_of_a_permuted_scaled_copy_is_one(factors):
    codes = factors[:, [3, 1, 0, 2]] * np.array([2.0, -0.5, 10.0, -3.0]) + 7.0
    assert mcc(factors, codes) == pytest.approx(1.0)
    assert mcc(torch.as_tensor(factors), pd.DataFrame(codes)) == pytest.approx(1.0)


def test_mcc_extra_dimensions_blocks_and_ranks(factors):
    rng = np.random.default_rng(1)
    extra = np.concatenate([rng.normal(size=(600, 3)), factors[:, ::-1]], axis=1)
    assert mcc(factors, extra) == pytest.approx(1.0)  # the 3 noise columns go unmatched
    blocks = np.repeat(factors, 4, axis=1) + 0.01 * rng.normal(size=(600, 16))
    assert mcc(factors, blocks, blocks=4) > 0.999
    monotone = np.exp(factors)
    assert mcc(factors, monotone) < 0.95  # not linear
    assert mcc(factors, monotone, method="spearman") == pytest.approx(1.0)
    assert mcc(factors, rng.normal(size=(600, 4))) < 0.15
    with pytest.raises(ValueError, match="cannot be matched"):
        mcc(factors, factors[:, :2])


def test_mcc_of_mixed_codes_is_below_one(factors):
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))[0]
    assert mcc(factors, factors @ rotation) < 0.9


# ---------------------------------------------------------------------- DCI
def test_dci_separates_true_codes_from_noise_and_mixtures(factors):
    y = factors[:300]
    good = dci(y, y[:, ::-1] * 2.0)
    assert good["informativeness"] > 0.9
    assert good["disentanglement"] > 0.9 and good["completeness"] > 0.9
    noise = dci(y, np.random.default_rng(3).normal(size=(300, 4)))
    assert noise["informativeness"] < 0.1
    mixed = dci(y, y @ np.linalg.qr(np.random.default_rng(4).normal(size=(4, 4)))[0])
    assert mixed["disentanglement"] < good["disentanglement"] - 0.3
    assert set(good) == {"disentanglement", "completeness", "informativeness"}


def test_dci_with_blocks_and_a_lasso(factors):
    codes = np.repeat(factors, 3, axis=1) + 0.05 * np.random.default_rng(5).normal(size=(600, 12))
    lasso = partial(Lasso, alpha=0.01)
    plain = dci(factors, codes, regressor=lasso)
    blocked = dci(factors, codes, blocks=3, regressor=lasso)
    assert blocked["completeness"] > 0.95 > plain["completeness"]
    assert blocked["disentanglement"] > 0.95
    assert blocked["informativeness"] == pytest.approx(plain["informativeness"])


# ---------------------------------------------------------------------- MIC / TIC
def test_information_coefficients_of_relations_and_noise():
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, 1500)
    mic, tic = information_coefficients(x, x**3)
    assert mic == pytest.approx(1.0) and 0.5 < tic < 1.0
    mic_parabola, _ = information_coefficients(x, x**2)  # not monotone, still dependent
    assert mic_parabola > 0.8
    mic_noisy, tic_noisy = information_coefficients(x, x + 0.5 * rng.normal(size=1500))
    assert 0.2 < mic_noisy < mic and tic_noisy < tic
    mic_noise, tic_noise = information_coefficients(x, rng.normal(size=1500))
    assert mic_noise < 0.1 and tic_noise < 0.05


def test_mic_tic_uses_each_factors_own_block(factors):
    z = np.repeat(factors, 2, axis=1)
    assert mic_tic(factors, z, blocks=2)["mic"] == pytest.approx(1.0)
    swapped = mic_tic(factors, z[:, ::-1], blocks=2)  # blocks aligned by position
    assert swapped["mic"] < 0.15
    with pytest.raises(ValueError, match="latent blocks"):
        mic_tic(factors, z)


# ---------------------------------------------------------------------- soundness
@pytest.fixture(scope="module")
def pendulum_units():
    pendulum = Pendulum()
    factors = pendulum.sample_factors(6, seed=0)
    return pendulum, factors, pendulum.render(factors)


class _TrueModel:
    """Ground-truth counterfactuals of images it rendered itself (abduction by lookup)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.known = {}

    def render(self, factors):
        images = self.dataset.render(factors)
        self.known[id(images)] = (images, factors)  # keeps the tensor alive: ids stay unique
        return images

    def __call__(self, images, intervention):
        factors = self.known[id(images)][1]
        return self.render(self.dataset.counterfactual_factors(factors, intervention))


def test_soundness_of_the_true_counterfactual_function(pendulum_units):
    pendulum, factors, _ = pendulum_units
    f = _TrueModel(pendulum)
    images = f.render(factors)
    assert composition(images, f) == 0.0
    assert composition(images, f, factual=factors[["light_angle"]], steps=3) == 0.0
    pa_star = {"light_angle": 120.0}
    assert reversibility(images, f, factors, pa_star) == 0.0
    per_image = reversibility(images, f, factors, pa_star, reduction="none")
    assert per_image.shape == (6,) and torch.all(per_image == 0)
    # an intervention that is not undone is seen
    assert l1_distance(images, f(images, pa_star)).min() > 0


def test_soundness_penalizes_a_model_that_ignores_or_destroys(pendulum_units):
    _, factors, images = pendulum_units

    def blurry(x, intervention):  # an imperfect reconstruction
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)

    assert composition(images, blurry, steps=2) > composition(images, blurry) > 0.0
    assert reversibility(images, blurry, factors, {"light_angle": 60.0}) > 0.0
    assert l1_distance(images, 1.0 - images).shape == (6,)


class _Truth:
    """An oracle that knows the rendered units: reads factors by image identity."""

    factor_names = Pendulum.factor_names

    def __init__(self, table):
        self.table = table

    def predict(self, images, batch_size=256):
        return self.table[id(images)]


def test_effectiveness_and_factor_error(pendulum_units):
    pendulum, factors, _ = pendulum_units
    cf = pendulum.counterfactual_factors(factors, {"pendulum_angle": 20.0})
    cf_images = pendulum.render(cf)
    oracle = _Truth({id(cf_images): cf})
    assert isinstance(oracle, FactorReader)
    assert effectiveness(oracle, cf_images, {"pendulum_angle": 20.0}) == {"pendulum_angle": 0.0}
    # a model that did nothing: the intervened factor and the shadows are off
    oracle.table[id(cf_images)] = factors
    missed = effectiveness(oracle, cf_images, cf[["pendulum_angle", "shadow_position"]])
    assert missed["pendulum_angle"] == pytest.approx((factors["pendulum_angle"] - 20).abs().mean())
    errors = cf_factor_mae(oracle, cf_images, cf)
    assert set(errors) == set(pendulum.factor_names) and errors["shadow_position"] > 0


def test_cf_image_mse():
    a, b = torch.zeros(3, 4, 5, 5), torch.full((3, 4, 5, 5), 0.5)
    assert cf_image_mse(a, a) == 0.0
    assert cf_image_mse(a, b) == pytest.approx(0.25)
    assert cf_image_mse(a, b, reduction="none").shape == (3,)
    with pytest.raises(ValueError, match="shapes differ"):
        cf_image_mse(a, b[:2])


# ---------------------------------------------------------------------- oracle
def test_oracle_learns_and_round_trips(tmp_path):
    morpho = MorphoDigits()
    untrained = train_oracle(morpho, n=400, epochs=0, seed=0)
    oracle = train_oracle(morpho, n=400, epochs=4, seed=0)
    for name in morpho.factor_names:
        assert oracle.validation_mae[name] < 0.8 * untrained.validation_mae[name], name
    again = train_oracle(morpho, n=400, epochs=4, seed=0)  # seeded: identical
    for p, q in zip(oracle.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
    path = tmp_path / "oracle.pt"
    oracle.save(path)
    loaded = Oracle.load(path)
    images = morpho.render(morpho.sample_factors(5, seed=9))
    pd.testing.assert_frame_equal(loaded.predict(images), oracle.predict(images))
    assert loaded.validation_mae == oracle.validation_mae
    assert not loaded.training
    assert oracle(images).shape == (5, 2)
