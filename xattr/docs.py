"""Regenerate the generated parts of README.md: ``python -m xattr.docs [README.md]``."""
from __future__ import annotations

import re
import sys

from .nn import rule_table

START, END = "<!-- rule-table:start -->", "<!-- rule-table:end -->"


def render_readme(text):
    """``text`` with the block between the rule-table markers replaced by the rendered table."""
    if START not in text or END not in text:
        raise ValueError(f"README has no {START} ... {END} block")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{START}\n{rule_table()}\n{END}", text)


def main(path="README.md"):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    new = render_readme(text)
    if new != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
    print(f"{path}: rule table {'updated' if new != text else 'already current'}")


if __name__ == "__main__":  # pragma: no cover
    main(*sys.argv[1:])
