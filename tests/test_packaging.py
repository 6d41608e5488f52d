"""The wheel ships what a user's tools need: the PEP 561 marker for type checkers."""

import importlib.resources
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_package_has_the_py_typed_marker():
    assert importlib.resources.files("pyrocausal").joinpath("py.typed").is_file()


def test_the_wheel_ships_py_typed_and_every_subpackage(tmp_path):
    # Build from a copy so the checkout gets no build/ folder; no network (no isolation).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("pyrocausal", "models", "inference"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("pyrocausal-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pyrocausal/py.typed" in names
    for package in (
        "pyrocausal",
        "pyrocausal/models",
        "pyrocausal/inference",
        "pyrocausal/datasets",
    ):
        assert f"{package}/__init__.py" in names, package
