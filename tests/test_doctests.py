"""Every docstring example in the package runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import pyrocausal

MODULES = sorted(
    {
        info.name
        for info in pkgutil.walk_packages(pyrocausal.__path__, prefix="pyrocausal.")
        if not info.name.endswith("__main__")
    }
    | {"pyrocausal"}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
