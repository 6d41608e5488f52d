"""Every tutorial runs top to bottom at smoke-test size (the CI variable shrinks budgets), with
the inline backend, so its figures are drawn as a reader sees them; each figure is saved as a
PNG and every panel must show something (tests/notebook_figures.py measures them)."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
# A panel with axes whose interior has ink in fewer than this share of its pixel columns
# shows (next to) nothing: a histogram of one repeated value on a wide axis scores ~0.01,
# a line or histogram across the panel 0.5-1.
MIN_COVERAGE = 0.05


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and not any(c.get("outputs") for c in code)
    assert all(c.get("execution_count") is None for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws_every_figure(path, tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv(
        "PYROCAUSAL_CACHE_DIR", os.environ.get("PYROCAUSAL_CACHE_DIR", str(tmp_path))
    )
    figures = Path(os.environ.get("PYROCAUSAL_FIGURE_DIR", tmp_path / "figures")) / path.stem
    nb = nbformat.read(path, as_version=4)
    hook = nbformat.v4.new_code_cell(
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"import notebook_figures; notebook_figures.install({str(figures)!r})"
    )
    nb.cells.insert(0, hook)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    shown = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.output_type == "display_data" and "image/png" in o.get("data", {})
    ]
    records = json.loads((figures / "figures.json").read_text())
    assert records and len(shown) >= len(records)  # every saved figure was also displayed
    for record in records:
        assert (figures / record["png"]).stat().st_size > 2000, record["png"]
        for panel in record["panels"]:
            where = f"{record['png']} panel {panel['title']!r}"
            if panel["image"]:
                assert panel["spread"] > 1, f"{where}: a blank image"
            elif panel["axis_on"]:
                assert panel["coverage"] >= MIN_COVERAGE, f"{where} is (nearly) empty: {panel}"
