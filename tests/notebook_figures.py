"""Kernel-side figure check for the notebook tests (imported by a cell the test prepends).

After every cell, before the inline backend shows and closes the cell's figures, each open
figure is drawn with Agg and saved as a PNG, and every visible panel is measured: the share of
its interior's pixel columns that hold anything but the background (a panel whose drawing
collapsed to a sliver, or stayed empty, scores near 0). The numbers go to a JSON file beside
the PNGs, which the test reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["install", "measure"]


def measure(fig: Any) -> list[dict[str, Any]]:
    """Per visible axes: title, whether it shows an image, and its interior coverage."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    height = pixels.shape[0]
    panels = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        box = ax.get_window_extent()
        x0, x1 = int(box.x0) + 3, int(box.x1) - 3
        y0, y1 = height - int(box.y1) + 3, height - int(box.y0) - 3  # image rows run downwards
        inside = pixels[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
        if inside.size == 0:
            continue
        background = np.array(ax.get_facecolor()[:3]) * 255
        ink = (np.abs(inside - background).sum(-1) > 40).any(0)  # per pixel column
        panels.append(
            {
                "title": ax.get_title() or ax.get_xlabel(),
                "axis_on": bool(ax.axison),
                "image": bool(ax.images),
                "coverage": float(ink.mean()),
                "spread": float(inside.std()),
            }
        )
    return panels


def install(out_dir: str) -> None:
    """Save and measure every figure at the end of every cell (IPython post_execute)."""
    import matplotlib.pyplot as plt
    from IPython import get_ipython

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {"cell": 0, "figure": 0}
    records: list[dict[str, Any]] = []

    def record() -> None:
        for number in plt.get_fignums():
            fig = plt.figure(number)
            state["figure"] += 1
            name = f"cell{state['cell']:02d}_{state['figure']:02d}.png"
            fig.savefig(out / name, dpi=60)
            records.append({"cell": state["cell"], "png": name, "panels": measure(fig)})
        (out / "figures.json").write_text(json.dumps(records, indent=1))

    def after_cell() -> None:
        record()
        state["cell"] += 1

    show = plt.show

    def recorded_show(*args: Any, **kwargs: Any) -> Any:
        record()  # plt.show() in a cell displays and closes its figures at once
        return show(*args, **kwargs)

    plt.show = recorded_show
    ip = get_ipython()
    ip.events.register("post_execute", after_cell)
    # The inline backend closes each cell's figures in its own post_execute hook; ours has to
    # run first, so it is put at the front of the list.
    callbacks = ip.events.callbacks["post_execute"]
    callbacks.insert(0, callbacks.pop(callbacks.index(after_cell)))
