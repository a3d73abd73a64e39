"""mkdocs hooks: the README shown inside the site, and MathJax shipped with the site.

README. docs/readme.md is the one line ``--8<-- "README.md"``. On GitHub the README's links
are relative to the repository root (``docs/formulas.md``); in the site, readme.md sits inside
docs/, so the hook inserts the README itself with ``](docs/`` turned into ``](`` (the
snippets extension would insert it unchanged).

MathJax. The math of the Markdown pages and of the notebooks must render with no network (a
laptop offline, a site served inside a closed network, CI's browser test), so MathJax never
comes from a CDN: the site carries its own copy under ``assets/mathjax/``. The copy comes from
the official npm package ``mathjax`` (version ``MATHJAX_VERSION``, which .ci/run reads from
here), installed at docs-build time into build/mathjax (ignored by git) by one command, the
one .ci/run runs::

    npm install --no-save --no-audit --no-fund --prefix build/mathjax mathjax@3.2.2

Why this and not the alternatives: it is MathJax's own distribution, byte for byte what the
CDN served before, so docs/javascripts/mathjax.js stays a plain MathJax 3 configuration; the
repository holds no megabytes of vendored JavaScript; PyPI has no MathJax 3 package maintained
by MathJax's authors; KaTeX would need another delimiter setup for the notebooks and covers
less of LaTeX. Without the package the build stops at once with the command above
(``on_config``): a site that silently fell back to a CDN would look fine online and show raw
``\\(X = A^{[0]}\\)`` offline.
"""

import json
import re
import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError

_DOCS_LINK = re.compile(r"\]\(docs/")
_INCLUDE = '--8<-- "README.md"'

MATHJAX_VERSION = "3.2.2"
MATHJAX_INSTALL = ("npm install --no-save --no-audit --no-fund --prefix build/mathjax "
                   f"mathjax@{MATHJAX_VERSION}")
MATHJAX_SITE_DIR = "assets/mathjax"  # mkdocs.yml's extra_javascript loads assets/mathjax/tex-mml-chtml.js
# What tex-mml-chtml.js loads at run time, relative to its own folder: the TeX extensions that
# \require or autoload pulls in (input/), the CHTML fonts (output/), the menu and assistive tools
# (ui/, a11y/, sre/). The other combined components of es5/ (tex-svg.js, ...) are not copied.
_MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output", "ui", "a11y", "sre")


def on_page_markdown(markdown: str, page, config, **kwargs) -> str:
    if page.file.src_uri != "readme.md" or _INCLUDE not in markdown:
        return markdown
    readme = (Path(config.config_file_path).parent / "README.md").read_text(encoding="utf-8")
    return markdown.replace(_INCLUDE, _DOCS_LINK.sub("](", readme))


def mathjax_dir(config) -> Path:
    """The es5/ folder of the installed npm package; stops the build, with the fix, if absent."""
    package = Path(config.config_file_path).parent / "build" / "mathjax" / "node_modules" / "mathjax"
    es5 = package / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise PluginError(
            f"MathJax is not installed: {es5 / 'tex-mml-chtml.js'} is missing. The site ships its "
            f"own MathJax (no CDN: the math must render offline). From the repository root run\n"
            f"    {MATHJAX_INSTALL}\nthen build again (npm comes with Node.js).")
    version = json.loads((package / "package.json").read_text(encoding="utf-8")).get("version", "")
    if version != MATHJAX_VERSION:  # the version that docs/javascripts/mathjax.js was checked with
        raise PluginError(
            f"build/mathjax holds MathJax {version!r}, the docs are built with {MATHJAX_VERSION}. "
            f"Reinstall it with\n    {MATHJAX_INSTALL}")
    return es5


def on_config(config, **kwargs):
    mathjax_dir(config)  # fail before the minute of rendering, not after it
    return config


def on_post_build(config, **kwargs) -> None:
    es5 = mathjax_dir(config)
    target = Path(config.site_dir) / MATHJAX_SITE_DIR
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for part in _MATHJAX_PARTS:
        source = es5 / part
        if source.is_dir():
            shutil.copytree(source, target / part)
        else:
            shutil.copy2(source, target / part)
