"""Griffe extension for the API reference: docstrings and signatures that render as written.

* Bare doctests become code. Several jaxnn docstrings end with a ``>>>`` doctest
  without an ``Examples:`` heading. Google-style parsing leaves such a block in the
  running text, where Markdown reads ``params[0]["W"]`` as a reference link (and
  mkdocs --strict fails on the unresolved reference). An ``Examples:`` heading is
  inserted before the first bare ``>>>`` line, so the block is parsed as an example
  and shown as code. Docstrings that already have the heading are left alone.
* Angle brackets in prose are escaped: Markdown passes ``<g, v>`` through as an
  HTML tag, which the browser then hides. Code spans and doctests are left alone.
* A default that names a module constant (``methods=DEFAULT_METHODS``) is shown as
  the constant's value (``("autodiff", "finite_difference")``), which is what a
  reader needs to know.
"""

from __future__ import annotations

import re
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


_CODE_SPAN = re.compile(r"(``.*?``|`[^`]*`)")


def escape_angle_brackets(text: str) -> str:
    """``<`` becomes ``&lt;`` outside code spans, doctests and indented code blocks."""
    out, in_doctest = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith((">>>", "...")):
            in_doctest = True
        elif not stripped:
            in_doctest = False
        if in_doctest or "<" not in line:
            out.append(line)
            continue
        parts = _CODE_SPAN.split(line)  # odd indices are code spans
        out.append("".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts)))
    return "\n".join(out)


def constant_value(func: griffe.Function, name: str) -> str | None:
    """The source text of the module constant ``name`` seen from ``func``, or None."""
    module = func.module
    try:
        member = module.get_member(name)
        if member.is_alias:
            member = member.final_target
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    if not member.is_attribute or member.value is None:
        return None
    return str(member.value)


def _functions(obj: griffe.Object):
    for member in obj.members.values():
        if member.is_alias:
            continue
        if member.is_function:
            yield member
        elif member.is_class or member.is_module:
            yield from _functions(member)


class DoctestExamples(griffe.Extension):
    """Doctests as examples, escaped angle brackets, constant defaults shown as values."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        text = obj.docstring.value
        if ">>>" in text:
            text = add_examples_heading(text)
        obj.docstring.value = escape_angle_brackets(text)

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for func in _functions(pkg):
            for param in func.parameters:
                default = param.default
                if isinstance(default, griffe.ExprName) or (
                        isinstance(default, str) and default.isidentifier()):
                    value = constant_value(func, str(default))
                    if value is not None:
                        param.default = value
