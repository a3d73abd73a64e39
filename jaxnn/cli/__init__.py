"""The ``jaxnn`` command line (``jaxnn train``, ``jaxnn gradcheck``): a thin layer over the public API.

Modules: ``main`` (the dispatcher), ``train`` and ``gradcheck`` (one subcommand each), ``flags``
and ``recipes`` (``jaxnn train``'s flags and per-data-set settings), ``report`` (its printed
tables, history.json and curves.png). This wing uses only ``jaxnn``'s public face.
"""

from jaxnn.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
