"""Sphinx configuration of the API reference (``make docs``; warnings are errors there).

The docstrings are Google style (``Arguments:``, ``Returns:``, ``Example:``) with reST
markup, which :mod:`sphinx.ext.napoleon` renders; autodoc imports the installed package.
"""

project = "pyrocausal"
author = "pyrocausal authors"
copyright = "pyrocausal authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" as fields of the class: a NamedTuple's fields would otherwise be described twice.
napoleon_use_ivar = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Show the aliases by name, not their expansion (the package uses postponed annotations).
autodoc_type_aliases = {
    "Intervention": "pyrocausal.validation.Intervention",
    "MechanismArg": "pyrocausal.models.flow_scm.MechanismArg",
}
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_title = "pyrocausal API reference"
exclude_patterns = ["_build"]
