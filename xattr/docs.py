"""The generated parts of the documentation, rendered from the registries and the code itself.

A page in ``docs/`` holds a line ``<!-- generated: NAME [ARGUMENT] -->`` where a table or a list belongs;
:func:`render` replaces it with what the code says today (the Sphinx build calls it on every page as it reads
it, so the published tables cannot drift from the registries):

* ``rule-table``: :func:`xattr.rule_table`, the layer × rule registry;
* ``claims-table``: :func:`xattr.testing.claims.claims_table`, the axioms each method claims or violates;
* ``methods``: every method of the registry (:func:`xattr.available_methods`) with its function;
* ``api PACKAGE``: the API reference of ``PACKAGE`` and of every public module below it (autodoc);
* ``readme-methods``: the README's methods table, kept in the file between ``<!-- begin generated: NAME -->`` and
  ``<!-- end generated -->`` (GitHub renders no generator): ``python -m xattr.docs update README.md`` rewrites it,
  ``tests/test_docs.py`` fails when it is stale.

``python -m xattr.docs NAME [ARGUMENT]`` prints one of them.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys

MARKER = re.compile(r"^<!-- generated: ([a-z-]+)(?: ([\w.]+))? -->$", re.M)


def _rule_table(arg=None):
    from .nn import rule_table

    return rule_table()


def _claims_table(arg=None):
    from .testing.claims import claims_table

    return claims_table()


def _first_line(obj):
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _methods(arg=None):
    """A Markdown table: registry name, the function (a cross-reference) and its docstring's first line."""
    from .methods.registry import available_methods, get_method

    out = ["| name | function | what it computes |", "|---|---|---|"]
    for name in available_methods():
        fn = get_method(name)
        ref = f"{{py:func}}`{fn.__module__}.{fn.__qualname__}`"
        summary = _first_line(fn).replace("|", "\\|")
        out.append(f"| `{name}` | {ref} | {summary} |")
    return "\n".join(out)


def _is_private(module_name):
    return any(part.startswith("_") for part in module_name.split(".")[1:])


def public_modules(package="xattr"):
    """Every public module of ``package`` (itself first), in import-path order; private ones (``_name``) skipped."""
    pkg = importlib.import_module(package)
    names = [package]
    if hasattr(pkg, "__path__"):
        for info in pkgutil.walk_packages(pkg.__path__, package + "."):
            if not _is_private(info.name) and not info.name.endswith("__main__"):
                names.append(info.name)
    return names


def _owner(obj):
    """The public module that documents ``obj``: where it is defined, or the nearest public package above a private
    module that defines it (``xattr.io._torch.from_torch`` belongs to ``xattr.io``)."""
    parts = obj.__module__.split(".")
    while _is_private(".".join(parts)):
        parts.pop()
    return ".".join(parts)


def api_members(module_name):
    """The functions and classes that ``module_name``'s API page documents (each object on exactly one page)."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    members = []
    for name in names:
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", None) \
                and _owner(obj) == module_name:
            members.append(name)
    return members


def _api(package):
    """MyST autodoc blocks for ``package`` and every public module below it."""
    if not package:
        raise ValueError("the 'api' marker needs a package: <!-- generated: api xattr.nn -->")
    blocks = []
    for name in public_modules(package):
        members = api_members(name)
        # undoc-members: a public function without a docstring still shows its signature (and is easy to spot)
        options = f"\n   :members: {', '.join(members)}\n   :undoc-members:" if members else ""
        # autodoc writes reStructuredText: MyST pages hand it to the rST parser in an eval-rst block
        blocks.append(f"## `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}{options}\n```\n")
    return "\n".join(blocks)


def _needs_text(needs):
    rules = [n.split(":", 1)[1] for n in needs if n.startswith("rule:")]
    other = [n for n in needs if not n.startswith("rule:")]
    return ", ".join(other + ([f"rule {'/'.join(rules)}"] if rules else [])) or "scores only"


def _readme_methods(arg=None):
    """The README's methods table (plain Markdown, read on GitHub): name, call, paper, what it needs; one row per
    :class:`~xattr.methods.registry.MethodSpec`."""
    import xattr

    from .methods.registry import available_methods, get_spec

    out = ["| method | call | paper | needs |", "|---|---|---|---|"]
    for name in available_methods():
        spec = get_spec(name)
        public = getattr(xattr, spec.fn.__name__, None) is spec.fn
        call = f"`xattr.{spec.fn.__name__}`" if public else f'`xattr.get_method("{name}")`'
        out.append(f"| `{name}` | {call} | {spec.paper} | {_needs_text(spec.needs)} |")
    return "\n".join(out)


GENERATORS = {"rule-table": _rule_table, "claims-table": _claims_table, "methods": _methods, "api": _api,
              "readme-methods": _readme_methods}

#: a generated block kept in a plain Markdown file (the README, read where nothing renders it): the block sits
#: between these two lines and ``python -m xattr.docs update FILE`` rewrites it.
BLOCK = re.compile(r"(<!-- begin generated: ([a-z-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def update_blocks(text):
    """``text`` with every ``<!-- begin generated: NAME -->`` ... ``<!-- end generated -->`` block regenerated."""
    def replace(match):
        name = match.group(2)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated block {name!r}; known: {', '.join(GENERATORS)}")
        return match.group(1) + GENERATORS[name](None) + "\n" + match.group(4)

    return BLOCK.sub(replace, text)


def render(text):
    """``text`` with every ``<!-- generated: NAME [ARGUMENT] -->`` line replaced by the generated content."""
    def replace(match):
        name, arg = match.group(1), match.group(2)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated block {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name](arg)

    return MARKER.sub(replace, text)


def main(argv=None):
    """``python -m xattr.docs NAME [ARGUMENT]``: print one generated block; returns the exit status (2: unknown)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "update":  # rewrite a file's generated blocks in place
        with open(argv[1], encoding="utf-8") as f:
            text = f.read()
        with open(argv[1], "w", encoding="utf-8") as f:
            f.write(update_blocks(text))
        return 0
    if not argv or argv[0] not in GENERATORS:
        print(f"usage: python -m xattr.docs {{{','.join(GENERATORS)}}} [ARGUMENT]", file=sys.stderr)
        return 2
    print(GENERATORS[argv[0]](argv[1] if len(argv) > 1 else None))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
