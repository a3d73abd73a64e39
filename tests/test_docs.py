"""The docs: every module has an API page, the site builds with warnings as errors (mkdocs
--strict), its links and math survive the build, and every public parameter is documented."""

import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS_HEADINGS = ("Args:", "Arguments:", "Parameters:")
ATTRIBUTES_HEADINGS = ("Attributes:",)
WINGS = ("core", "check", "train", "devices", "datasets")  # one API page each (docs/api/<wing>.md)


def public_modules() -> dict[str, list[str]]:
    """Each wing's public modules: jaxnn/<wing>/<name>.py (not _private, not __init__)."""
    return {w: sorted(p.stem for p in (ROOT / "jaxnn" / w).glob("*.py") if not p.stem.startswith("_"))
            for w in WINGS}


def test_every_public_module_has_an_api_section():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = []
    for wing, modules in public_modules().items():
        page = ROOT / "docs" / "api" / f"{wing}.md"
        text = page.read_text() if page.exists() else ""
        if f"api/{wing}.md" not in nav:
            missing.append(f"nav entry api/{wing}.md")
        # core, train and devices document each module (::: jaxnn.<wing>.<name>); check and
        # datasets document their package face
        if wing in ("check", "datasets"):
            missing += [] if f"::: jaxnn.{wing}" in text else [f"jaxnn.{wing}"]
        else:
            missing += [f"jaxnn.{wing}.{m}" for m in modules if f"::: jaxnn.{wing}.{m}\n" not in text + "\n"]
    assert not missing, f"add '::: jaxnn.<wing>.<name>' to docs/api/<wing>.md for: {missing}"


# --- the built site -------------------------------------------------------------------------


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


def test_mkdocs_build_strict(site):
    # the docstrings really made it in, doctests rendered as code blocks
    backward = page(site, "api/core")
    assert "value_and_manual_grad" in backward and "delta recursion" in backward
    assert re.search(r'class="[^"]*highlight', backward)
    assert "Quickstart" in page(site, "readme")  # README included


def test_signatures_are_formatted_one_parameter_per_line(site):
    # ruff formats a long signature with one parameter per line (mkdocstrings needs ruff or black)
    backward = page(site, "api/core")
    match = re.search(r'id="jaxnn\.core\.backward\.value_and_manual_grad".*?<code>(.*?)</code>', backward,
                      re.S)
    assert match, "no signature block for value_and_manual_grad"
    signature = re.sub(r"<[^>]+>", "", match.group(1))
    assert signature.count("\n") >= 4, signature


def test_notebooks_are_pages_with_their_outputs(site):
    for name in ("01_formulas_to_code", "02_gradient_checking", "03_training_on_tpu"):
        html = page(site, f"notebooks/{name}")
        assert "jp-Notebook" in html, f"{name} was not rendered by mkdocs-jupyter"
        assert "jp-OutputArea" in html and "devices:" in html, f"{name} lost its stored outputs"


def test_math_is_marked_for_mathjax(site):
    formulas = page(site, "formulas")
    # arithmatex (generic) wraps display math in \[ \] inside .arithmatex for MathJax
    assert formulas.count('class="arithmatex"') > 20
    assert r"\[" in formulas and r"W^{[l]} A^{[l-1]} + b^{[l]}" in formulas
    assert "javascripts/mathjax.js" in formulas and "assets/mathjax/tex-mml-chtml.js" in formulas
    assert (site / "javascripts" / "mathjax.js").is_file()
    assert (site / "assets" / "mathjax" / "tex-mml-chtml.js").is_file()  # shipped, not from a CDN


def test_angle_brackets_and_constant_defaults_render(site):
    check = page(site, "api/check")
    # a bare <g, v> in a docstring must reach the reader, not vanish as an HTML tag
    assert "&lt;g, v&gt;" in check or "&lt;g, v>" in check
    # a default naming a module constant is shown as its value
    text = re.sub(r"<[^>]+>", "", check)
    assert "= DEFAULT_METHODS" not in text


LINK = re.compile(r"\]\(((?:\.\./)?api/[\w/]+\.md)#([\w.]+)\)")


@pytest.mark.parametrize("source", ["formulas.md", "conventions.md"])
def test_links_into_the_api_pages_resolve(site, source):
    text = (ROOT / "docs" / source).read_text()
    links = LINK.findall(text)
    if source == "formulas.md":
        assert len(links) > 40  # each formula is linked to its function
    broken = []
    for target, anchor in links:
        html = page(site, target.replace("../", "").removesuffix(".md"))
        if f'id="{anchor}"' not in html:
            broken.append(f"{target}#{anchor}")
    assert not broken, f"docs/{source} links to API anchors that do not exist: {broken}"


def test_section_links_resolve(site):
    # "formulas §4c" and "conventions §3" are linked by heading anchors; they must exist
    formulas, conventions = page(site, "formulas"), page(site, "conventions")
    for anchor in ("1-forward-propagation", "1a-the-linear-step", "1b-the-activation",
                   "2-activation-functions", "3-losses", "3a-binary-cross-entropy",
                   "3b-mean-squared-error", "4-backpropagation", "4a-the-output-layer",
                   "4b-the-recursion", "4c-the-gradients-of-w-and-b", "5-gradient-descent"):
        assert f'id="{anchor}"' in formulas, anchor
    for anchor in ("0-the-public-contract", "1-notation-and-data-layout", "2-the-cost-and-its-scale",
                   "3-gradient-agreement", "4-code-style", "5-tests", "6-benchmarks"):
        assert f'id="{anchor}"' in conventions, anchor


# --- API pages that list their members: the main function first, none left out ----------


MEMBERS = re.compile(r"^::: (jaxnn[\w.]*)\n(?:[ \t]+.*\n)*?[ \t]+members:\n((?:[ \t]+- \w+\n)+)", re.M)


def defined_public_names(module) -> set[str]:
    """The public functions and classes a module defines (a package: its ``__all__``)."""
    import ast
    if hasattr(module, "__path__"):
        return set(getattr(module, "__all__", ()))
    tree = ast.parse(Path(module.__file__).read_text())
    names = {node.name for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")}
    return names


def test_explicit_member_lists_leave_nothing_out():
    import importlib
    checked, problems = 0, []
    for path in sorted((ROOT / "docs" / "api").glob("*.md")):
        for name, block in MEMBERS.findall(path.read_text()):
            listed = re.findall(r"- (\w+)", block)
            module = importlib.import_module(name)
            missing = sorted(defined_public_names(module) - set(listed))
            unknown = sorted(n for n in listed if not hasattr(module, n))
            if missing:
                problems.append(f"docs/api/{path.name} lists the members of {name} but leaves out {missing}")
            if unknown:
                problems.append(f"docs/api/{path.name} lists {unknown}, which {name} does not have")
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 3


# --- every parameter of the public API documented on its own line ---------------------------


def docstring_entries(doc: str | None, headings: tuple[str, ...]) -> list[str]:
    """The entry names ("X", "l2, key") of a Google-style docstring's sections with these headings."""
    lines = inspect.cleandoc(doc or "").splitlines()
    entries = []
    for i, line in enumerate(lines):
        if line.strip() not in headings:
            continue
        head_indent = len(line) - len(line.lstrip())
        item_indent = None
        for item in lines[i + 1:]:
            if not item.strip():
                continue
            indent = len(item) - len(item.lstrip())
            if indent <= head_indent:
                break  # the next section
            if item_indent is None:
                item_indent = indent
            if indent == item_indent:
                name = re.match(r"\s*([^:]+?)(?:\s*\([^)]*\))?:(?:\s|$)", item)
                entries.append(name.group(1).strip() if name else item.strip())
    return entries


def parameters(obj) -> tuple[list[str], list[str]]:
    """(parameter names, names the docstring documents) of a public function or class."""
    if inspect.isclass(obj):
        doc_names = docstring_entries(obj.__doc__, ARGS_HEADINGS + ATTRIBUTES_HEADINGS)
        if hasattr(obj, "_fields"):  # NamedTuple
            return list(obj._fields), doc_names
        if "__dataclass_fields__" in vars(obj):
            return [f.name for f in obj.__dataclass_fields__.values() if f.init], doc_names
        if "__init__" in vars(obj):
            doc_names += docstring_entries(obj.__init__.__doc__, ARGS_HEADINGS)
            sig = inspect.signature(obj.__init__)
            return [p for p in sig.parameters if p != "self"], doc_names
        return [], doc_names  # the constructor is inherited (an exception class)
    sig = inspect.signature(obj)
    return list(sig.parameters), docstring_entries(obj.__doc__, ARGS_HEADINGS)


def public_callables():
    """(qualified name, object) for each function or class in jaxnn.__all__ and their public methods."""
    import jaxnn  # here, not at the top: the build tests do not need the package to import
    for name in jaxnn.__all__:
        obj = getattr(jaxnn, name)
        if inspect.isclass(obj):
            yield f"{obj.__module__}.{obj.__qualname__}", obj
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    yield f"{obj.__module__}.{obj.__qualname__}.{attr}", member
        elif callable(obj) and not inspect.ismodule(obj):
            yield f"{getattr(obj, '__module__', 'jaxnn')}.{name}", obj


def undocumented(obj) -> list[str]:
    params, doc_names = parameters(obj)
    params = [p for p in params if p not in ("self", "cls")]
    problems = []
    grouped = [d for d in doc_names if re.search(r"[,\s]", d.strip("*"))]
    for entry in grouped:
        problems.append(f"'{entry}' documented on one line (one line per parameter)")
    single = {d.lstrip("*") for d in doc_names if d not in grouped}
    for p in params:
        if p not in single:
            problems.append(f"'{p}' not in Args")
    return problems


def test_public_parameters_are_documented_one_per_line():
    offenders = {}
    for qualname, obj in public_callables():
        problems = undocumented(obj)
        if problems:
            offenders.setdefault(qualname.rsplit(".", 1)[0] if inspect.isfunction(obj) else qualname,
                                 []).append(f"{qualname}: {'; '.join(problems)}")
    lines = [line for module in sorted(offenders) for line in offenders[module]]
    assert not lines, (
        f"{len(lines)} public functions/classes do not document every parameter on a line of its own "
        "in their docstring's Args: section ('name: what it is', one line per parameter; classes "
        "may use Attributes:). Fix these docstrings:\n  " + "\n  ".join(lines))


def test_docstring_entries_parser():
    doc = """Summary.

    Args:
      params: the params.
      X: (n_x, m). Y: (n_L, m).
      l2, key, keep_prob: as in ``cost``,
        continued here: not an entry.
      **kwargs: passed on.

    Returns:
      J: not an argument.
    """
    assert docstring_entries(doc, ARGS_HEADINGS) == ["params", "X", "l2, key, keep_prob", "**kwargs"]

    def f(params, X, Y, *, l2=0.0, key=None, keep_prob=1.0, **kwargs):
        pass

    f.__doc__ = doc
    problems = undocumented(f)
    assert "'l2, key, keep_prob' documented on one line (one line per parameter)" in problems
    assert "'Y' not in Args" in problems and "'key' not in Args" in problems
    assert not any("'params'" in p or "'kwargs'" in p for p in problems)
