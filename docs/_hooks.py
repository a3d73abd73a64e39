"""mkdocs hook: docs/readme.md shows the README, with its links into docs/ made site-relative.

docs/readme.md is the one line ``--8<-- "README.md"``. On GitHub the README's links are
relative to the repository root (``docs/formulas.md``); in the site, readme.md sits inside
docs/, so the hook inserts the README itself with ``](docs/`` turned into ``](`` (the
snippets extension would insert it unchanged).
"""

import re
from pathlib import Path

_DOCS_LINK = re.compile(r"\]\(docs/")
_INCLUDE = '--8<-- "README.md"'


def on_page_markdown(markdown: str, page, config, **kwargs) -> str:
    if page.file.src_uri != "readme.md" or _INCLUDE not in markdown:
        return markdown
    readme = (Path(config.config_file_path).parent / "README.md").read_text(encoding="utf-8")
    return markdown.replace(_INCLUDE, _DOCS_LINK.sub("](", readme))
