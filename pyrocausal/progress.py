"""Progress bars: one global switch, an environment variable, and throttled tqdm bars.

Every progress bar of pyrocausal (model fits, SVI, oracle training, rendering image splits)
comes from :func:`progress_bar`. Whether a bar is shown is decided in this order:

1. ``progress=False`` passed to a function hides its bar, always.
2. Otherwise the global switch decides: :func:`set_progress` (``True`` or ``False``) when it
   was called, else the environment variable ``PYROCAUSAL_PROGRESS`` (``0``/``false``/
   ``no``/``off`` or ``1``/``true``/``yes``/``on``), else bars are on.

So ``set_progress(False)`` (or ``PYROCAUSAL_PROGRESS=0``) silences every bar, including the
ones of calls that pass ``progress=True`` (the command line, ensembles, notebooks), and
``set_progress(True)`` turns bars back on whatever the environment says.

Bars redraw at most every :data:`MININTERVAL` seconds; their loss read-outs are set with
``set_postfix(..., refresh=False)`` so that they do not force a redraw. In a Jupyter kernel the
bar is tqdm's widget when ``ipywidgets`` is installed and tqdm's text bar otherwise (so no
``TqdmWarning: IProgress not found`` is raised).
"""

from __future__ import annotations

__all__ = [
    "ENV_VAR",
    "MININTERVAL",
    "get_progress",
    "progress_bar",
    "set_progress",
    "update_postfix",
]

import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from tqdm.std import tqdm as _text_tqdm

ENV_VAR = "PYROCAUSAL_PROGRESS"
"""Environment variable consulted while :func:`set_progress` has not been called."""

MININTERVAL = 0.5
"""Least number of seconds between two redraws of a bar (at most two redraws a second)."""

_OFF = frozenset({"0", "false", "no", "off"})
_ON = frozenset({"1", "true", "yes", "on"})
_switch: bool | None = None


def set_progress(enabled: bool | None) -> bool | None:
    """Turn every pyrocausal progress bar on or off; returns the previous setting.

    ``None`` hands the decision back to the environment variable ``PYROCAUSAL_PROGRESS``
    (bars on when it is unset). ``False`` wins over a function's ``progress=True``.

    Example:
        >>> import pyrocausal as pc
        >>> previous = pc.set_progress(False)
        >>> pc.get_progress()
        False
        >>> _ = pc.set_progress(previous)          # restore
    """
    global _switch
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_progress takes True, False or None, got {enabled!r}")
    previous, _switch = _switch, enabled
    return previous


def get_progress() -> bool:
    """Whether progress bars are on globally (:func:`set_progress`, else the environment).

    Raises:
        ValueError: ``PYROCAUSAL_PROGRESS`` holds a value that is neither on nor off.

    Example:
        >>> import pyrocausal as pc
        >>> previous = pc.set_progress(True)
        >>> pc.get_progress()
        True
        >>> _ = pc.set_progress(previous)
    """
    if _switch is not None:
        return _switch
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    if raw == "" or raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ValueError(
        f"environment variable {ENV_VAR}={os.environ[ENV_VAR]!r} is neither on "
        f"({', '.join(sorted(_ON))}) nor off ({', '.join(sorted(_OFF))})"
    )


def progress_bar(
    iterable: Iterable[Any] | None = None, *, enabled: bool = True, **kwargs: Any
) -> _text_tqdm:
    """A tqdm bar, shown when ``enabled`` and the global switch are both on.

    Keyword arguments go to tqdm; ``mininterval`` defaults to :data:`MININTERVAL`. A hidden
    bar is still returned (tqdm's ``disable=True``), so callers update it unconditionally.

    Example:
        >>> bar = progress_bar(range(3), enabled=False, desc="fit")
        >>> sum(bar), bar.disable
        (3, True)
    """
    show = bool(enabled) and get_progress()
    kwargs.setdefault("mininterval", MININTERVAL)
    cls = _tqdm_class() if show else _text_tqdm
    return cls(iterable, disable=not show, **kwargs)


def update_postfix(bar: _text_tqdm, **values: Any) -> None:
    """Set ``bar``'s postfix, redrawing only when the bar's ``mininterval`` has passed.

    For read-outs inside a long iteration (the steps of one epoch), where the bar itself
    advances too rarely to redraw.

    Example:
        >>> bar = progress_bar(total=2, enabled=False)
        >>> update_postfix(bar, loss="0.5")             # a hidden bar: nothing happens
    """
    if bar.disable:
        return
    bar.set_postfix(values, refresh=False)
    now = time.time()  # tqdm's clock
    if now - bar.last_print_t >= bar.mininterval:
        bar.refresh()
        bar.last_print_t = now


def _tqdm_class() -> type[_text_tqdm]:
    """``tqdm.auto``'s choice, without its warning when a kernel lacks ipywidgets."""
    kernel = "ipykernel.zmqshell" in sys.modules or "IPython.utils._process_emscripten" in (
        sys.modules
    )
    if not kernel:
        return _text_tqdm
    try:
        from ipywidgets import FloatProgress  # noqa: F401  (what tqdm.notebook needs)
    except ImportError:
        return _text_tqdm
    from tqdm.auto import tqdm

    return tqdm
