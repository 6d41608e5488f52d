"""README.md's code runs as written: every ``python`` block, and every ``pyrocausal`` command
of its ``bash`` blocks, in order, in one namespace and one scratch folder (as a reader pasting
them into one notebook and one shell would).

Only set-up lines are left out, by rule, not by marker: ``make``, ``pip``, ``git`` and
``torchrun`` lines (installing, or launching several processes, which
tests/inference/test_distributed.py covers).
"""

import os
import re
import shlex
from pathlib import Path

import matplotlib
import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
SETUP = ("make", "pip", "git", "torchrun", "cd")


def readme_blocks(text: str) -> list[tuple[str, str, int]]:
    """``(language, code, line number)`` of every fenced block."""
    return [(m[1], m[2], text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)]


def commands(code: str) -> list[list[str]]:
    """The ``pyrocausal`` commands of a bash block, as argument lists (comments dropped)."""
    out = []
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] in SETUP:
            continue
        assert words[0] == "pyrocausal", f"README runs only pyrocausal commands, got {line!r}"
        out.append(words[1:])
    return out


def test_the_extraction_finds_the_blocks():
    text = "a\n```python\nx = 1\n```\n```bash\nmake test   # x\npyrocausal scms  # list\n```\n"
    blocks = readme_blocks(text)
    assert [(lang, line) for lang, _, line in blocks] == [("python", 2), ("bash", 5)]
    assert commands(blocks[1][1]) == [["scms"]]


def test_readme_runs_as_written(tmp_path, monkeypatch, capsys):
    from pyrocausal.cli import main

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYROCAUSAL_PROGRESS", "0")
    monkeypatch.setenv("PYROCAUSAL_CACHE_DIR", os.environ["PYROCAUSAL_CACHE_DIR"])
    blocks = readme_blocks(README.read_text())
    python = [b for b in blocks if b[0] == "python"]
    bash = [b for b in blocks if b[0] == "bash"]
    assert len(python) >= 4 and len(bash) >= 2
    namespace: dict = {"__name__": "__readme__"}
    ran = 0
    for lang, code, line in blocks:
        if lang == "python":
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"README.md python block at line {line} failed: {exc!r}")
            ran += 1
        elif lang == "bash":
            for args in commands(code):
                status = main(args)
                err = capsys.readouterr().err
                assert status == 0, f"README.md line {line}: pyrocausal {shlex.join(args)}: {err}"
                ran += 1
    assert ran >= len(python)
