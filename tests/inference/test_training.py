import math

import pytest
import torch

from pyrocausal.inference import History, TrainingDivergedError, resolve_device, train_mle


def _problem():
    torch.manual_seed(0)
    x = torch.randn(400, 1)
    lin = torch.nn.Linear(1, 1)
    return lin, x, lambda b: ((lin(b) - 3 * b) ** 2).mean()


def test_loss_falls_and_history_is_recorded():
    lin, x, nll = _problem()
    h = train_mle(lin, nll, x, epochs=20, batch_size=64, lr=0.05, progress=False, seed=0)
    assert isinstance(h, History) and len(h) == 20
    assert h.loss[-1] < 0.1 * h.loss[0]
    assert h.lr[-1] < h.lr[0]  # cosine schedule
    assert list(h.to_frame().columns) == ["loss", "lr"]


def test_a_loss_offset_shifts_the_record_but_not_the_training():
    runs = []
    for offset in ((0.0, 0.0), (2.5, -1.0)):
        lin, x, nll = _problem()
        h = train_mle(lin, nll, x[:300], val_data=x[300:], epochs=5, lr=0.05, progress=False,
                      seed=0, loss_offset=offset)  # fmt: skip
        runs.append((h, [p.detach().clone() for p in lin.parameters()]))
    (plain, w0), (shifted, w1) = runs
    assert all(torch.equal(a, b) for a, b in zip(w0, w1))
    assert shifted.loss == pytest.approx([v + 2.5 for v in plain.loss])
    assert shifted.val_loss == pytest.approx([v - 1.0 for v in plain.val_loss])
    assert shifted.best_epoch == plain.best_epoch


def test_early_stopping_keeps_the_best_weights():
    lin, x, nll = _problem()
    h = train_mle(lin, nll, x[:300], val_data=x[300:], epochs=500, lr=0.05, patience=5,
                  progress=False, seed=0)  # fmt: skip
    assert h.stopped_early and len(h) < 500
    with torch.no_grad():
        assert math.isclose(float(nll(x[300:])), h.val_loss[h.best_epoch], rel_tol=1e-5)


def test_same_seed_same_result():
    runs = []
    for _ in range(2):
        lin, x, nll = _problem()
        train_mle(lin, nll, x, epochs=3, batch_size=32, progress=False, seed=1)
        runs.append(lin.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_nan_loss_raises_and_keeps_finite_weights():
    lin, x, _ = _problem()
    calls = {"n": 0}

    def nll(b):
        calls["n"] += 1
        out = ((lin(b) - b) ** 2).mean()
        return out * float("nan") if calls["n"] == 7 else out

    with pytest.raises(TrainingDivergedError, match="became nan at epoch 0, step 6"):
        train_mle(lin, nll, x, epochs=3, batch_size=64, progress=False, seed=0)
    assert torch.isfinite(lin.weight).all()


def test_bad_arguments():
    lin, x, nll = _problem()
    with pytest.raises(ValueError, match="epochs"):
        train_mle(lin, nll, x, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_mle(lin, nll, x, batch_size=0)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type in {"cpu", "cuda"}


def test_history_repr_is_a_summary_not_every_float():
    from pyrocausal.inference import History

    losses = [1.0 / (1 + e) for e in range(300)]
    history = History(
        loss=losses,
        val_loss=[x + 0.1 for x in losses],
        lr=[1e-3] * 300,
        best_epoch=250,
        seconds=12.5,
    )
    text = repr(history)
    assert text == (
        "History(300 epochs, best epoch 250: val loss 0.104 (loss 0.003984), "
        "final loss 0.003333, 12.5 s)"
    )
    history.stopped_early = True
    assert "stopped early" in repr(history)
    assert repr(History()) == "History(0 epochs)"
