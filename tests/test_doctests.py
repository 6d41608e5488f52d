"""Every docstring example in the package runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import pyrocausal
import pyrocausal.inference
import pyrocausal.models

# pyrocausal.models and pyrocausal.inference live in their own folders (package-dir), so
# each package is walked on its own path.
MODULES = sorted(
    {
        info.name
        for package in (pyrocausal, pyrocausal.models, pyrocausal.inference)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")
        if not info.name.endswith("__main__")
    }
    | {"pyrocausal", "pyrocausal.models", "pyrocausal.inference"}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
