"""Griffe extension for the API reference: render bare doctests as code.

Several jaxnn docstrings end with a ``>>>`` doctest without an ``Examples:``
heading. Google-style parsing leaves such a block in the running text, where
Markdown reads ``params[0]["W"]`` as a reference link (and mkdocs --strict
fails on the unresolved reference). This extension inserts an ``Examples:``
heading before the first bare ``>>>`` line, so the block is parsed as an
example and shown as code. Docstrings that already have the heading are left
alone.
"""

from __future__ import annotations

import textwrap

import griffe

_HEADINGS = ("Examples:", "Example:")


def add_examples_heading(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in _HEADINGS:
            return text  # already an examples section: trust it
        if line.lstrip().startswith(">>>"):
            # the doctest runs to the next blank line followed by non-doctest prose, or the end
            end = len(lines)
            for j in range(i + 1, len(lines)):
                if not lines[j].strip():
                    nxt = next((ln for ln in lines[j + 1:] if ln.strip()), "")
                    if nxt and not nxt.lstrip().startswith(">>>"):
                        end = j
                        break
            block = textwrap.indent(textwrap.dedent("\n".join(lines[i:end])), "    ")
            head = lines[:i]
            if head and head[-1].strip():
                head.append("")
            return "\n".join([*head, "Examples:", block, *lines[end:]])
    return text


class DoctestExamples(griffe.Extension):
    """Give bare ``>>>`` blocks an ``Examples:`` heading before the docstring is parsed."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = add_examples_heading(obj.docstring.value)
