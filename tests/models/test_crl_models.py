"""SCM-VAE, ICM-VAE and the baselines at tiny sizes: training, queries, persistence."""

import pyro
import pytest
import torch
from pyro import poutine

from pyrocausal.inference.svi import SVITrainer
from pyrocausal.models.baselines import BetaVAE, ConditionalVAE
from pyrocausal.models.crl_base import CRLModel, mask_labels
from pyrocausal.models.icm_vae import ICMVAE
from pyrocausal.models.networks import count_parameters, paper_mlp_networks
from pyrocausal.models.scm_vae import SCMVAE

# A Pendulum-shaped toy: two roots cause two children; labels are in "units" with a
# non-trivial normalization, so that unit conversion is exercised.
GRAPH = {"a": [], "b": [], "c": ["a", "b"], "d": ["a", "b"]}
FACTORS = ("a", "b", "c", "d")
LOC = (1.0, -2.0, 0.0, 0.5)
SCALE = (2.0, 0.5, 1.0, 3.0)
SHAPE = (1, 16, 16)
CLASSES = [SCMVAE, ICMVAE, ConditionalVAE, BetaVAE]
CAUSAL = [SCMVAE, ICMVAE]


def toy_data(n=128, seed=0):
    """Images with a horizontal bar at a row set by ``a`` and a vertical one set by ``b``."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(n, generator=g) * 2 - 1, torch.rand(n, generator=g) * 2 - 1
    codes = torch.stack([a, b, (a + b) / 2, (a - b) / 2], dim=1)
    rows = ((a + 1) * 6.5 + 1).round().long()
    cols = ((b + 1) * 6.5 + 1).round().long()
    images = torch.zeros(n, *SHAPE)
    idx = torch.arange(n)
    images[idx, 0, rows, :] = 1.0
    images[idx, 0, :, cols] = 1.0
    return images, codes


def build(cls, **kwargs):
    torch.manual_seed(0)
    return cls(
        GRAPH, SHAPE, factor_names=FACTORS, label_loc=LOC, label_scale=SCALE, latent_dim=2, **kwargs
    )


def ready(cls, **kwargs):
    """A model that can answer queries (a β-VAE needs its block read-out first)."""
    model = build(cls, **kwargs)
    if cls is BetaVAE:
        images, codes = toy_data(64)
        model.fit_readout(images, codes)
    return model


def units(code, name):
    i = FACTORS.index(name)
    return code * SCALE[i] + LOC[i]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_training_lowers_the_loss(cls):
    images, codes = toy_data(128)
    model = build(cls)
    trainer = SVITrainer(model, lr=3e-3, device="cpu", progress=False, seed=0)
    final = {k: s(10**6) for k, s in model.default_schedules(4).items()}

    def loss():
        pyro.set_rng_seed(1)  # same reparameterized noise before and after
        with torch.no_grad():
            return trainer.batch_loss([images, codes], final).item()

    before = loss()
    trainer.schedules = model.default_schedules(4)
    history = trainer.fit((images, codes), epochs=4, batch_size=32)
    after = loss()
    assert len(history) == 4
    # Reconstruction of a 16x16 image starts near 256 * log 2 nats; a few epochs of Adam
    # must remove a clear part of it.
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("abduction", ["noise", "latent"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_counterfactual_of_the_factual_value_is_the_reconstruction(cls, abduction):
    model = ready(cls, abduction=abduction)
    images, _ = toy_data(8, seed=1)
    recon = model.reconstruct(images)
    read = model.read_factors(images)
    for name in ("a", "c"):
        out = model.counterfactual(images, {name: read[name].to_numpy()})
        # Exact up to float32 round-off: mu(y_hat) + residual reproduces the factual block.
        torch.testing.assert_close(out.images, recon.images, atol=1e-5, rtol=0)
        for node in FACTORS:
            torch.testing.assert_close(out.latents[node], recon.latents[node], atol=1e-5, rtol=0)


@pytest.mark.parametrize("abduction", ["noise", "latent"])
@pytest.mark.parametrize("cls", CAUSAL, ids=lambda c: c.__name__)
def test_intervening_on_a_root_changes_its_descendants_only(cls, abduction):
    model = ready(cls, abduction=abduction)
    images, _ = toy_data(8, seed=2)
    factual = model.reconstruct(images).latents
    out = model.counterfactual(images, {"a": units(1.5, "a")})
    assert not torch.allclose(out.latents["a"], factual["a"])
    for child in ("c", "d"):  # descendants are recomputed from their own abducted noise
        assert (out.latents[child] - factual[child]).abs().max() > 1e-3
    torch.testing.assert_close(out.latents["b"], factual["b"], atol=0, rtol=0)


@pytest.mark.parametrize("cls", [ConditionalVAE, BetaVAE], ids=lambda c: c.__name__)
def test_baselines_do_not_propagate(cls):
    model = ready(cls)
    images, _ = toy_data(8, seed=2)
    factual = model.reconstruct(images).latents
    out = model.counterfactual(images, {"a": units(1.5, "a")})
    for other in ("b", "c", "d"):
        torch.testing.assert_close(out.latents[other], factual[other], atol=0, rtol=0)


@pytest.mark.parametrize("cls", CAUSAL, ids=lambda c: c.__name__)
def test_traversal_sets_one_block_without_propagation(cls):
    model = ready(cls)
    images, _ = toy_data(8, seed=3)
    factual = model.reconstruct(images).latents
    value = units(-1.0, "a")
    trav = model.traversal(images, {"a": value})
    cf = model.counterfactual(images, {"a": value})
    torch.testing.assert_close(trav.latents["a"], cf.latents["a"])
    for child in ("c", "d"):
        torch.testing.assert_close(trav.latents[child], factual[child], atol=0, rtol=0)
        assert not torch.allclose(cf.latents[child], factual[child])


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_do_goes_through_pyro_do_in_factor_units(cls, monkeypatch):
    model = ready(cls)
    calls = []
    real_do = pyro.do

    def spy(fn, data):
        calls.append(dict(data))
        return real_do(fn, data=data)

    monkeypatch.setattr(pyro, "do", spy)
    value = 4.0  # code (4 - 1) / 2 = 1.5
    with poutine.trace() as tracer:
        out = model.do({"a": value}, num_samples=5)
    a, b = model._label_map("a", out.latents)
    expected = (a * 1.5 + b).expand(5, 2)
    # The final program run is intervened by pyro.do with the block of the value in units...
    torch.testing.assert_close(calls[-1]["a"], expected)
    torch.testing.assert_close(out.latents["a"], expected)
    # ...and pyro.do's split node: the trace keeps the would-be value at site "a" (the
    # root's mechanism applied to its noise), while the program continued with the
    # intervened block.
    trace = tracer.trace
    with torch.no_grad():
        would_be, _ = model._mechanism("a", trace.nodes["a_base"]["value"], {})
    torch.testing.assert_close(trace.nodes["a"]["value"], would_be)
    assert not torch.allclose(trace.nodes["a"]["value"], expected)
    assert out.images.shape == (5, *SHAPE)
    assert float(out.images.min()) >= 0.0 and float(out.images.max()) <= 1.0


def test_unit_conversion_uses_the_label_normalization():
    model = ready(ConditionalVAE)  # prior mean of a block is its code: z = y 1_k
    out = model.do({"b": -1.0}, num_samples=2)  # code (-1 + 2) / 0.5 = 2
    torch.testing.assert_close(out.latents["b"], torch.full((2, 2), 2.0))


def test_do_on_a_child_uses_the_parents_of_the_intervened_world():
    model = ready(ICMVAE)
    images, _ = toy_data(4, seed=4)
    out = model.counterfactual(images, {"a": units(0.5, "a"), "c": units(0.2, "c")})
    factual = model.reconstruct(images).latents
    world = dict(factual, a=out.latents["a"])
    a_cf, b_cf = model._label_map("c", world)
    a_f, b_f = model._label_map("c", factual)
    read = model._read_code("c", factual)
    residual = factual["c"] - (a_f * read[:, None] + b_f)
    torch.testing.assert_close(out.latents["c"], a_cf * 0.2 + b_cf + residual)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_save_load_round_trip(cls, tmp_path):
    # The non-default abduction, so that the option must travel with the file.
    other = {"noise": "latent", "latent": "noise"}[cls.default_abduction]
    model = ready(cls, abduction=other)
    images, codes = toy_data(32)
    SVITrainer(model, device="cpu", progress=False).fit((images, codes), epochs=1, batch_size=16)
    if cls is BetaVAE:
        model.fit_readout(images, codes)
    path = tmp_path / "model.pt"
    model.save(path, metadata={"dataset": "toy"})
    loaded = CRLModel.load(path)
    assert type(loaded) is cls and loaded.metadata == {"dataset": "toy"}
    assert loaded.block_names == model.block_names and loaded.abduction == other
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)
    a = model.counterfactual(images[:4], {"a": 2.0})
    b = loaded.counterfactual(images[:4], {"a": 2.0})
    torch.testing.assert_close(a.images, b.images, atol=0, rtol=0)
    with pytest.raises(TypeError):
        (SCMVAE if cls is not SCMVAE else ICMVAE).load(path)


def test_files_from_before_the_abduction_option_load_as_noise_encoders():
    blob = build(ICMVAE).to_blob()
    del blob["config"]["abduction"]
    loaded = CRLModel.from_blob(blob)
    assert loaded.abduction == "noise" and ICMVAE.default_abduction == "latent"


def test_missing_labels_switch_supervision_off():
    model = build(SCMVAE)
    images, codes = toy_data(16)
    elbo = pyro.infer.TraceMeanField_ELBO()

    def loss(labels):
        pyro.set_rng_seed(0)
        return elbo.differentiable_loss(model.model, model.guide, images, labels).item()

    none = mask_labels(codes, 1.0)
    assert none.isnan().all()
    assert loss(none) == pytest.approx(loss(None), rel=1e-6)
    half = mask_labels(codes, 0.5, seed=0)
    assert int(half.isnan().all(-1).sum()) == 8
    # Supervision terms are non-negative KLs, so every observed row adds to the loss.
    assert loss(none) < loss(half) < loss(codes)


@pytest.mark.parametrize("cls", CAUSAL, ids=lambda c: c.__name__)
def test_latent_abduction_is_the_exact_inverse_of_the_encoded_blocks(cls):
    """With ``abduction="latent"`` the guide's noise is the push-forward of ``q(z | x)``
    through the inverse mechanisms: its log-density is the Gaussian's at ``z`` minus
    ``log|det deps/dz|``, the model replays the guide's ``z`` exactly, and abduction returns
    the noise whose mechanisms give back the encoder's means."""
    model = build(cls, abduction="latent")
    images, codes = toy_data(8, seed=3)
    guide = poutine.trace(model.guide).get_trace(images, codes)
    replay = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(images, codes)
    loc, scale = model.encoder(images)
    latents = {name: replay.nodes[name]["value"] for name in FACTORS}
    assert "log_det" not in replay.nodes  # the Jacobian is in the guide's density instead
    moved = 0.0
    for name in FACTORS:
        block = model._block_slice(name)
        site = guide.nodes[f"{name}_base"]
        z, eps = latents[name], site["value"]
        parents = {p: latents[p] for p in GRAPH[name]}
        transform = model._noise_transform(name, parents)
        if transform is None:
            torch.testing.assert_close(z, eps)
            continue
        torch.testing.assert_close(transform(z), eps, atol=1e-5, rtol=0)
        gaussian = torch.distributions.Normal(loc[:, block], scale[:, block])
        expected = gaussian.log_prob(z).sum(-1) - transform.log_abs_det_jacobian(z, eps)
        torch.testing.assert_close(site["fn"].log_prob(eps), expected, atol=1e-4, rtol=1e-5)
        moved = max(moved, float((eps - z).detach().abs().max()))
    assert moved > 1e-3  # the children's mechanisms are not the identity
    factual = model.reconstruct(images).latents
    for name in FACTORS:
        encoded = loc[:, model._block_slice(name)]
        torch.testing.assert_close(factual[name], encoded, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="abduction"):
        build(cls, abduction="posterior")


def test_icm_vae_flow_options_and_log_det():
    """The reference objective's extra log-determinant factor is there only when the encoder
    infers the noise; the default puts the Jacobian in the guide's push-forward."""
    images, codes = toy_data(8)
    model = build(ICMVAE, flow="nsf", abduction="noise")
    trace = poutine.trace(model.model).get_trace(images, codes)
    assert "log_det" in trace.nodes
    assert trace.nodes["log_det"]["fn"].batch_shape == (8,)
    model = build(ICMVAE, flow="nsf")
    assert model.abduction == "latent"
    assert "log_det" not in poutine.trace(model.model).get_trace(images, codes).nodes
    with pytest.raises(ValueError, match="unknown flow"):
        build(ICMVAE, flow="realnvp")


def test_icm_vae_prior_scale_keeps_the_labels_unit():
    """The label term's scale ``a`` of every prior mean has unit geometric mean, so the latent
    blocks cannot shrink as a whole to make the supervision term cheap."""
    model = build(ICMVAE)
    torch.nn.init.normal_(model.priors["a"].raw, std=3.0)
    for layer in model.priors["c"].net:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.normal_(layer.weight, std=3.0)
    z = model.encode(toy_data(16)[0])
    for name in ("a", "c"):
        a, _ = model._label_map(name, z)
        assert torch.log(a).mean(-1).abs().max() < 1e-5
        assert not torch.allclose(a, torch.ones_like(a))


def test_icm_vae_schedules_start_above_zero():
    schedules = build(ICMVAE).default_schedules(100)
    assert 0 < schedules["kl_weight"](0) < schedules["kl_weight"](12) < 0.1
    assert schedules["kl_weight"](24) == pytest.approx(0.1)
    assert schedules["supervision_weight"](99) == pytest.approx(1.2)
    # The reference code's schedule: 94% of the epochs.
    reference = build(ICMVAE, warmup_fraction=0.94).default_schedules(100)
    assert reference["kl_weight"](50) < 0.1
    assert reference["kl_weight"](93) == pytest.approx(0.1)


def test_beta_vae_needs_its_read_out():
    model = build(BetaVAE)
    with pytest.raises(RuntimeError, match="fit_readout"):
        model.do({"a": 0.0})


def test_paper_mlp_preset_has_the_papers_size():
    with torch.device("meta"):
        encoder, decoder = paper_mlp_networks((4, 96, 96), 4, 4)
    total = count_parameters(encoder) + count_parameters(decoder)
    assert 180e6 < total < 195e6


def test_custom_network_factory_cannot_be_saved_by_object(tmp_path):
    from pyrocausal.models.networks import conv_networks

    model = build(SCMVAE, networks=lambda *a: conv_networks(*a))
    with pytest.raises(ValueError, match="preset name"):
        model.save(tmp_path / "m.pt")
    named = build(SCMVAE, networks="pyrocausal.models.networks:conv_networks")
    named.save(tmp_path / "m.pt")
    assert type(CRLModel.load(tmp_path / "m.pt")) is SCMVAE


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_supervision_term_is_the_kl_to_the_structural_prior(scale):
    model = build(ConditionalVAE, prior_scale=scale, supervision_weight=2.0)
    images, codes = toy_data(6)
    trace = poutine.trace(model.model).get_trace(images, codes)
    z = trace.nodes["b"]["value"]
    prior_mean = codes[:, 1:2].expand(-1, 2)  # the conditional VAE's prior mean: y_b 1_k
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(z, 1.0), torch.distributions.Normal(prior_mean, scale)
    ).sum(-1)
    log_factor = trace.nodes["b_supervision"]["fn"].log_factor
    torch.testing.assert_close(log_factor, -2.0 * expected)


@pytest.mark.parametrize("cls", [SCMVAE, ConditionalVAE])
def test_noise_kl_weight_keeps_the_reference_balance_with_the_prior_scale(cls):
    # alpha = 0.1 / lambda_2^2: the reference's 0.1 at its unit-variance prior, 10 at the
    # default 0.1 (the supervision term scales with 1 / lambda_2^2 and alpha with it).
    assert build(cls).kl_weight == 10.0
    assert build(cls, prior_scale=1.0).kl_weight == pytest.approx(0.1)
    assert build(cls, prior_scale=0.5).kl_weight == pytest.approx(0.4)
    assert build(cls, prior_scale=1.0, kl_weight=2.0).kl_weight == 2.0
    model = build(cls, prior_scale=1.0)
    assert CRLModel.from_blob(model.to_blob()).kl_weight == model.kl_weight  # saved, not re-derived
    # ICM-VAE (its own annealed objective) and the beta-VAE keep their fixed defaults.
    assert build(ICMVAE, prior_scale=1.0).kl_weight == build(ICMVAE).kl_weight == 0.1
    assert build(BetaVAE, prior_scale=1.0).kl_weight == 4.0
