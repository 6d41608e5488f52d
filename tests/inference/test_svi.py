"""SVITrainer: determinism, exact resume, NaN stop, schedules, data formats."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyrocausal.inference.errors import TrainingDivergedError
from pyrocausal.inference.svi import Constant, LinearWarmup, SVITrainer
from pyrocausal.models.scm_vae import SCMVAE

SHAPE = (1, 8, 8)
GRAPH = {"a": [], "b": ["a"]}


class Gaussian(nn.Module):
    """A latent-variable toy with a learnable guide, recording the weights it is given."""

    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(()))
        self.q_loc = nn.Parameter(torch.zeros(()))
        self.seen = []

    def model(self, x, kl_weight=1.0):
        self.seen.append(kl_weight)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(self.loc, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(self, x, kl_weight=1.0):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(self.q_loc + 0.5 * x, 0.7))


def tiny_model(seed):
    torch.manual_seed(seed)
    # alpha pinned: the loss trajectories the rollback test relies on were seen with 0.1
    return SCMVAE(GRAPH, SHAPE, latent_dim=2, kl_weight=0.1)


def tiny_data(n=48):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *SHAPE, generator=g), torch.randn(n, 2, generator=g)


def params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)


def test_fit_is_deterministic_under_a_seed():
    data = tiny_data()
    runs = []
    for _ in range(2):
        model = tiny_model(0)
        trainer = SVITrainer(model, device="cpu", seed=3, progress=False)
        trainer.fit(data, epochs=2, batch_size=16)
        runs.append((params(model), trainer.history.loss))
    assert_same(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_resume_continues_exactly(tmp_path):
    data = tiny_data()
    schedules = {"kl_weight": LinearWarmup(0.1, 3)}
    straight = tiny_model(0)
    full = SVITrainer(straight, device="cpu", seed=1, schedules=schedules, progress=False)
    full.fit(data, epochs=3, batch_size=16)

    path = tmp_path / "ckpt.pt"
    first = SVITrainer(tiny_model(0), device="cpu", seed=1, schedules=schedules, progress=False)
    first.fit(data, epochs=2, batch_size=16, checkpoint=path)
    torch.manual_seed(1234)  # disturb every global generator between the two sessions
    pyro.set_rng_seed(99)
    resumed_model = tiny_model(5)  # different initial weights: all must come from the file
    second = SVITrainer(resumed_model, device="cpu", seed=1, schedules=schedules, progress=False)
    second.fit(data, epochs=3, batch_size=16, checkpoint=path, resume=True)

    assert second.epoch == 3
    assert_same(params(straight), params(resumed_model))
    assert [r["loss"] for r in second.history.records] == full.history.loss
    assert [r["kl_weight"] for r in second.history.records] == pytest.approx(
        [0.1 / 3, 0.2 / 3, 0.1]
    )
    assert_same(full.optimizer.state_dict()["state"][0], second.optimizer.state_dict()["state"][0])


def test_keep_best_leaves_the_weights_of_the_lowest_loss_epoch_at_final_weights(tmp_path):
    # A huge learning rate makes the loss move up and down; warm-up epochs (other kl_weight)
    # never count. The kept weights must be exactly those of a plain fit stopped there.
    data = tiny_data()
    schedules = {"kl_weight": LinearWarmup(0.1, 2)}
    kw = dict(device="cpu", seed=2, schedules=schedules, progress=False, lr=0.2)
    model = tiny_model(0)
    trainer = SVITrainer(model, keep_best=True, **kw)
    history = trainer.fit(data, epochs=6, batch_size=16, checkpoint=tmp_path / "c.pt")
    eligible = [r for r in history.records if r["kl_weight"] == pytest.approx(0.1)]
    best = min(eligible, key=lambda r: r["loss"])["epoch"]
    assert history.best_epoch == best and 2 <= best < 6  # seen: epoch 4
    plain = tiny_model(0)
    SVITrainer(plain, **kw).fit(data, epochs=best, batch_size=16)
    assert_same(params(plain), params(model))
    # The checkpoint holds the kept weights too, and a resumed fit keeps the same best.
    resumed = SVITrainer(tiny_model(7), keep_best=True, **kw)
    resumed.fit(data, epochs=6, batch_size=16, checkpoint=tmp_path / "c.pt", resume=True)
    assert resumed.history.best_epoch == best
    assert_same(params(resumed.module), params(model))


def test_checkpoint_holds_a_loadable_model(tmp_path):
    from pyrocausal.models.crl_base import CRLModel

    model = tiny_model(0)
    trainer = SVITrainer(model, device="cpu", progress=False)
    trainer.fit(tiny_data(), epochs=1, batch_size=16, checkpoint=tmp_path / "c.pt")
    loaded = CRLModel.load(tmp_path / "c.pt")
    assert_same(params(model), params(loaded))


def test_nan_loss_stops_with_a_clear_error():
    images, labels = tiny_data()
    images[5] = float("nan")
    model = tiny_model(0)
    before = params(model)
    trainer = SVITrainer(model, device="cpu", progress=False)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step \d+.*learning rate"):
        trainer.fit((images, labels), epochs=2, batch_size=48)
    # One batch holds every row, so the step that met the NaN is the first: no update.
    assert_same(before, params(model))
    assert trainer.epoch == 0


def test_exploding_learning_rate_is_caught():
    x = torch.randn(64) * 1e3
    trainer = SVITrainer(Gaussian(), lr=1e30, device="cpu", progress=False)
    with pytest.raises(TrainingDivergedError):
        trainer.fit((x,), epochs=20, batch_size=8)


def test_schedules_reach_model_and_guide():
    module = Gaussian()
    trainer = SVITrainer(
        module, device="cpu", progress=False, schedules={"kl_weight": LinearWarmup(2.0, 2)}
    )
    trainer.fit((torch.randn(8),), epochs=3, batch_size=8)
    assert module.seen == [1.0, 2.0, 2.0]
    assert [r["kl_weight"] for r in trainer.history.records] == [1.0, 2.0, 2.0]


def test_schedules_start_above_zero():
    assert LinearWarmup(0.1, 94)(0) > 0
    assert LinearWarmup(0.1, 94)(93) == pytest.approx(0.1)
    assert Constant(0.5)(17) == 0.5


def test_data_formats_agree():
    x = torch.randn(32)
    losses = []
    for data in (
        (x,),
        torch.utils.data.TensorDataset(x),
        [(v,) for v in x],  # a plain map-style data set: items are collated
    ):
        trainer = SVITrainer(Gaussian(), device="cpu", progress=False, seed=0)
        trainer.fit(data, epochs=2, batch_size=8)
        losses.append(trainer.history.loss)
    assert losses[0] == losses[1] == losses[2]


def test_eval_fn_metrics_join_the_history():
    trainer = SVITrainer(Gaussian(), device="cpu", progress=False)
    trainer.fit((torch.randn(8),), epochs=2, batch_size=4, eval_fn=lambda m: {"loc": m.loc})
    frame = trainer.history.to_frame()
    assert list(frame.index) == [1, 2]
    assert {"loss", "seconds", "loc"} <= set(frame.columns)


def test_auto_device_is_cpu_without_cuda():
    trainer = SVITrainer(Gaussian(), device="auto", progress=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainer.device.type == expected


def test_train_and_evaluate_end_to_end(tmp_path):
    """train_crl -> evaluate_crl on a tiny Morpho-digits set: files, metrics, resume."""
    import json

    from pyrocausal.inference.crl import evaluate_crl, train_crl

    options = {"n_train": 64, "n_test": 32}
    run = train_crl(
        "icm-vae",
        "morpho",
        epochs=1,
        batch_size=32,
        out_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        dataset_options=options,
        progress=False,
    )
    assert {"model.pt", "checkpoint.pt", "history.json"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }
    again = train_crl(  # resuming a finished run trains nothing more
        "icm-vae",
        "morpho",
        epochs=1,
        batch_size=32,
        out_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        dataset_options=options,
        progress=False,
        resume=True,
    )
    assert_same(params(run.model), params(again.model))
    metrics = evaluate_crl(
        tmp_path / "run" / "checkpoint.pt",  # a trainer checkpoint holds the model too
        tmp_path / "eval",
        oracle_size=64,
        oracle_epochs=1,
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["dataset"] == "morpho" and written["test_size"] == 32
    assert set(written["interventions"]) == {"thickness"}
    assert written["interventions"]["thickness"]["descendants"] == ["intensity"]
    for key in ("mcc", "mic", "tic", "cf_image_mse", "composition", "reversibility"):
        assert 0.0 <= metrics[key] < float("inf"), key
    assert (tmp_path / "eval" / "counterfactuals.png").stat().st_size > 0
    assert (tmp_path / "eval" / "interventions.png").stat().st_size > 0


def test_spike_rollback_restores_the_epoch_start_weights_and_resumes_exactly(tmp_path):
    # At lr 0.015 the tiny VAE's epoch loss rises after epoch 1 (seen: 508, 627 rolled back,
    # then 553, 432, 407, 391 at half the rate). The first rolled-back epoch
    # must leave exactly the weights and Adam moments of a plain fit stopped one epoch
    # earlier, and the rate halved.
    data = tiny_data()
    kw = dict(device="cpu", seed=2, progress=False, lr=0.015)
    full = SVITrainer(tiny_model(0), spike_rollback=1.1, **kw)
    history = full.fit(data, epochs=6, batch_size=16)
    flags = [r["rolled_back"] for r in history.records]
    assert any(flags) and not all(flags[1:]), flags  # seen: epoch 2 rolled back
    first = flags.index(True) + 1  # 1-based epoch of the first rollback
    rollbacks = [sum(flags[: i + 1]) for i in range(6)]
    assert [r["lr"] for r in history.records] == [0.015 * 0.5**k for k in rollbacks]
    kept = [r["loss"] for r in history.records[: first - 1]]
    assert history.records[first - 1]["loss"] > kept[-1] * 1.1

    stopped = SVITrainer(tiny_model(0), spike_rollback=1.1, **kw)
    stopped.fit(data, epochs=first, batch_size=16, checkpoint=tmp_path / "c.pt")
    assert stopped.lr == 0.0075 and stopped.optimizer.param_groups[0]["lr"] == 0.0075
    plain = SVITrainer(tiny_model(0), **kw)
    plain.fit(data, epochs=first - 1, batch_size=16)
    assert_same(params(plain.module), params(stopped.module))
    moments = [plain.optimizer.state_dict()["state"], stopped.optimizer.state_dict()["state"]]
    assert moments[0].keys() == moments[1].keys() and len(moments[0]) > 0
    for key, state in moments[0].items():
        assert state.keys() == moments[1][key].keys()
        for name, value in state.items():
            assert torch.equal(value, moments[1][key][name]), (key, name)

    # Resuming from the checkpoint written at the rollback continues exactly.
    resumed = SVITrainer(tiny_model(7), spike_rollback=1.1, **kw)
    resumed.fit(data, epochs=6, batch_size=16, checkpoint=tmp_path / "c.pt", resume=True)
    assert resumed.lr == full.lr
    assert [r["rolled_back"] for r in resumed.history.records] == flags
    assert_same(params(full.module), params(resumed.module))


def test_spike_rollback_arguments_are_checked():
    with pytest.raises(ValueError, match="spike_rollback must be greater than 1"):
        SVITrainer(Gaussian(), spike_rollback=1.0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="spike_lr_factor"):
        SVITrainer(Gaussian(), spike_rollback=2.0, spike_lr_factor=0.0, device="cpu")


def test_svi_history_repr_is_a_summary():
    from pyrocausal.inference import SVIHistory

    # 200 epochs, the loss falls to 5 at epoch 196, then rises again
    losses = [200.0 - e for e in range(196)] + [6.0, 7.0, 8.0, 9.0]
    records = [{"epoch": e + 1, "loss": x, "seconds": 0.5} for e, x in enumerate(losses)]
    assert repr(SVIHistory(records, best_epoch=196)) == (
        "SVIHistory(200 epochs, final loss 9, lowest 5 at epoch 196, kept epoch 196, 100 s)"
    )
    assert repr(SVIHistory()) == "SVIHistory(0 epochs)"
