"""The public API documents itself: every public query method shows a runnable example.

The examples themselves run in tests/test_doctests.py. Run this file as a script
(``.venv/bin/python tests/test_api_docs.py``) to print how many public callables have one.
"""

import inspect

import pytest

import pyrocausal
import pyrocausal.inference
import pyrocausal.models

PACKAGES = (pyrocausal, pyrocausal.models, pyrocausal.inference)

# The query methods a user meets first: each must have an "Example:" section with ">>>".
QUERY_METHODS = [
    "SCM.fit",
    "SCM.sample",
    "SCM.log_prob",
    "SCM.do",
    "SCM.abduct",
    "SCM.counterfactual",
    "SCM.ate",
    "SCM.save",
    "SCM.load",
    "InterventionalSCM.sample",
    "InterventionalSCM.query",
    "CausalQueryResult.mean",
    "CausalQueryResult.summary",
    "CausalQueryResult.plot",
    "CausalQueryResult.to_inference_data",
    "ATEResult.interval",
    "SCMEnsemble.bootstrap",
    "SCMEnsemble.counterfactual",
    "SCMEnsemble.do",
    "SCMEnsemble.sample",
    "SCMEnsemble.ate",
    "CRLModel.abduct",
    "CRLModel.encode",
    "CRLModel.read_factors",
    "CRLModel.do",
    "CRLModel.counterfactual",
    "CRLModel.reconstruct",
    "CRLModel.traversal",
    "CRLModel.save",
]


def _owned(obj):
    return (getattr(obj, "__module__", "") or "").startswith("pyrocausal")


def public_callables():
    """``{qualified name: object}``: the exported callables and their public methods."""
    found = {}
    for package in PACKAGES:
        for name in package.__all__:
            obj = getattr(package, name)
            if not callable(obj) or not _owned(obj):
                continue
            found[name] = obj
            if inspect.isclass(obj):
                for key, value in vars(obj).items():
                    if key.startswith("_"):
                        continue
                    if isinstance(value, classmethod | staticmethod):
                        value = value.__func__
                    if isinstance(value, property):
                        value = value.fget
                    if callable(value) and _owned(value):
                        found[f"{name}.{key}"] = value
    return found


def has_example(obj):
    doc = inspect.getdoc(obj) or ""
    head, _, body = doc.partition("Example")
    return bool(_) and ">>>" in body


def test_the_stated_query_methods_are_public():
    missing = [name for name in QUERY_METHODS if name not in public_callables()]
    assert not missing, f"not in the public API (renamed?): {missing}"


@pytest.mark.parametrize("name", QUERY_METHODS)
def test_query_method_has_an_example(name):
    assert has_example(public_callables()[name]), f"{name} has no 'Example:' with '>>>'"


def test_an_example_is_recognized_only_with_code():
    def documented():
        """Do it.

        Example:
            >>> 1 + 1
            2
        """

    def prose_only():
        """Do it. For example, call it twice."""

    assert has_example(documented) and not has_example(prose_only)


if __name__ == "__main__":
    items = public_callables()
    with_example = sorted(name for name, obj in items.items() if has_example(obj))
    print(f"{len(with_example)} of {len(items)} public callables have an example")
