"""Sphinx configuration of the xattr documentation: ``sphinx-build -W -b html docs docs/_build/html``.

Pages are Markdown (MyST); the notebooks in ``notebooks/`` are executed at build time (myst-nb) and shown with their
outputs.  Tables that the code can produce (the rule table, the claims table, the methods, the API module list) are
generated from the registries while the pages are read (``xattr.docs``), never copied into the sources.
"""
import os
import re
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)  # document this checkout (as the tests do), whatever is installed

import xattr  # noqa: E402
from xattr import docs as xdocs  # noqa: E402

project = "xattr"
author = "the xattr authors"
release = version = xattr.__version__
copyright = "the xattr authors, MIT licence"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "myst_nb"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["wide_tables.css"]
html_theme_options = {"page_width": "1200px", "sidebar_width": "240px"}
suppress_warnings = ["myst.header", "ref.python"]  # README pages keep their heading levels; see below

# numpydoc-style docstrings through napoleon
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" sections as fields: properties keep their own entries (no duplicates)
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}  # members: listed per module by xattr.docs
autodoc_typehints = "none"  # the docstrings state types and shapes

# MyST: $math$, tables, ``{directive}`` blocks
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# notebooks: executed at build time so a reader sees the figures; `-D nb_execution_mode=off` skips it (the test
# suite does, as tests/test_notebooks.py already executes every notebook)
nb_execution_mode = "force"
# per cell: notebook 09's cascading randomisation of EfficientNet-Lite0 at 224 px takes ~215 s on an idle 2-core
# machine; twice that under load must still pass
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
NOTEBOOKS_SRC = os.path.join(ROOT, "notebooks")
NOTEBOOKS_DST = os.path.join(os.path.dirname(__file__), "notebooks")


def _copy_notebooks(app):
    """The notebooks live in notebooks/ (where JupyterLab opens them); Sphinx reads sources only below docs/."""
    os.makedirs(NOTEBOOKS_DST, exist_ok=True)
    for name in sorted(os.listdir(NOTEBOOKS_SRC)):
        if name.endswith(".ipynb"):
            shutil.copyfile(os.path.join(NOTEBOOKS_SRC, name), os.path.join(NOTEBOOKS_DST, name))


def _generated(app, docname, source):
    source[0] = xdocs.render(source[0])


OUTSIDE_LINK = re.compile(r"\[([^\]]+)\]\((?!docs/|[a-z]+:|#)([^)]+)\)")


def _readme_for_the_site(app, relative_path, parent_docname, content):
    """The front page includes the README, whose links to files outside docs/ (benchmarks/README.md) have no page
    here: they become plain text naming the file."""
    if relative_path.name == "README.md" and relative_path.parent.name != "benchmarks":
        content[0] = OUTSIDE_LINK.sub(lambda m: f"{m.group(1)} (`{m.group(2)}` in the repository)", content[0])


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
    app.connect("source-read", _generated)
    app.connect("include-read", _readme_for_the_site)
# "ref.python": several result classes share field names (classes, name, ...), and an unqualified reference to one
# is ambiguous by design; Sphinx would report it as a warning
