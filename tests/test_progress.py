"""Progress bars: the global switch, the environment variable, throttled redraws, no warning."""

import sys
import time
import types
import warnings

import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pyrocausal as pc
from pyrocausal import progress
from pyrocausal.inference import SVITrainer, train_mle


@pytest.fixture(autouse=True)
def _default_switch(monkeypatch):
    """Each test starts with the switch unset and no environment override, and leaves it so."""
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    previous = pc.set_progress(None)
    yield
    pc.set_progress(previous)


def _tiny_fit(epochs: int = 5, progress_arg: bool = True) -> float:
    """A fit of a one-parameter model; returns its wall time in seconds."""
    lin = nn.Linear(1, 1)
    x = torch.randn(64, 1)
    start = time.perf_counter()
    train_mle(lin, lambda b: ((lin(b) - 2 * b) ** 2).mean(), x, epochs=epochs, batch_size=16,
              progress=progress_arg, seed=0)  # fmt: skip
    return time.perf_counter() - start


def test_bar_shown_by_default(capsys):
    _tiny_fit()
    assert "fit" in capsys.readouterr().err  # the bar's description: shown, so the next tests
    # (empty stderr) can fail


def test_set_progress_false_silences_every_bar(capsys):
    assert pc.set_progress(False) is None
    _tiny_fit(progress_arg=True)  # explicit progress=True does not override the switch

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = nn.Parameter(torch.zeros(()))

        def model(self, x):
            with pyro.plate("data", len(x)):
                pyro.sample("x", dist.Normal(self.loc, 1.0), obs=x)

        def guide(self, x):
            pass

    SVITrainer(Toy(), lr=0.1, device="cpu", progress=True).fit((torch.ones(8),), epochs=3)
    assert capsys.readouterr().err == ""
    assert pc.set_progress(True) is False  # returns the previous setting
    _tiny_fit()
    assert "fit" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
def test_environment_variable_turns_bars_off(monkeypatch, capsys, value):
    monkeypatch.setenv(progress.ENV_VAR, value)
    assert pc.get_progress() is False
    _tiny_fit()
    assert capsys.readouterr().err == ""


def test_set_progress_wins_over_the_environment(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV_VAR, "0")
    pc.set_progress(True)
    _tiny_fit()
    assert "fit" in capsys.readouterr().err
    pc.set_progress(None)  # back to the environment
    _tiny_fit()
    assert capsys.readouterr().err == ""


def test_progress_false_hides_a_bar_while_the_switch_is_on(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV_VAR, "1")
    _tiny_fit(progress_arg=False)
    assert capsys.readouterr().err == ""


def test_bad_environment_value_names_variable_and_value(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "maybe")
    with pytest.raises(ValueError, match=r"PYROCAUSAL_PROGRESS='maybe'"):
        pc.get_progress()
    with pytest.raises(TypeError, match="True, False or None"):
        pc.set_progress("off")


def test_long_fit_redraws_a_few_times_a_second(capsys):
    """200 epochs with a loss read-out each epoch: the bar redraws on time, not per epoch.

    A text redraw starts with a carriage return. Bound: one initial draw, at most one redraw
    per MININTERVAL (0.5 s) of the fit plus one, and two for clearing at close (leave=False),
    plus one of slack. Before throttling, set_postfix redrew every epoch (200+ returns).
    """
    scm = pc.SCM({"a": [], "b": ["a"]}, mechanisms=pc.MAF(hidden_features=(8,)))
    a = torch.randn(256)
    frame = pd.DataFrame({"a": a.numpy(), "b": (a + 0.5 * torch.randn(256)).numpy()})
    start = time.perf_counter()
    history = scm.fit(frame, epochs=200, batch_size=32, seed=0, progress=True, patience=None)
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert len(history) == 200
    returns = err.count("\r")
    bound = 5 + seconds / progress.MININTERVAL
    assert 2 <= returns <= bound, (returns, seconds)
    assert returns < 40  # "far fewer than 200": holds for fits up to ~17 s


def test_update_postfix_redraws_at_most_once_per_interval(capsys):
    bar = progress.progress_bar(total=1, mininterval=60.0, desc="svi")
    drawn = capsys.readouterr().err.count("\r")
    for step in range(500):
        progress.update_postfix(bar, step=step)
    assert capsys.readouterr().err.count("\r") == 0  # within the minute: no redraw
    assert bar.postfix == "step=499"
    bar.close()
    assert drawn == 1


def _pretend_kernel_without_ipywidgets(monkeypatch):
    """What tqdm.autonotebook looks at: a Jupyter kernel's shell module and IPython loaded."""
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    for name in ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_kernel_without_ipywidgets_gets_text_bars_and_no_warning(monkeypatch):
    import tqdm.std

    _pretend_kernel_without_ipywidgets(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls = progress._tqdm_class()
        bar = progress.progress_bar(range(2), file=sys.stdout)
        list(bar)
    assert cls is tqdm.std.tqdm
    assert caught == []


def test_tqdm_auto_itself_warns_there(monkeypatch):
    """The situation of the previous test is real: tqdm.auto warns in a kernel without
    ipywidgets (what our fallback avoids)."""
    from tqdm import TqdmWarning

    _pretend_kernel_without_ipywidgets(monkeypatch)
    with pytest.warns(TqdmWarning, match="IProgress not found"):
        import tqdm.auto  # noqa: F401


def test_oracle_training_follows_the_switch(capsys):
    from pyrocausal.datasets.morpho import MorphoDigits
    from pyrocausal.metrics import train_oracle

    train_oracle(MorphoDigits(), n=32, epochs=1, progress=True)
    assert "oracle morpho" in capsys.readouterr().err.lower()
    pc.set_progress(False)
    train_oracle(MorphoDigits(), n=32, epochs=1, progress=True)
    assert capsys.readouterr().err == ""
