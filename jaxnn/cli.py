"""The ``jaxnn`` command: ``jaxnn train`` and ``jaxnn gradcheck``.

A thin dispatcher: each subcommand's flags and work live in a module of its
own (``jaxnn._cli_train``, ``jaxnn._cli_gradcheck``), which call the library.
Invalid flag values end in a one-line error and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from jaxnn import _cli_gradcheck, _cli_train

    parser = argparse.ArgumentParser(
        prog="jaxnn",
        description="jaxnn: textbook neural networks in JAX with a verified hand-derived backward pass.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,gradcheck}")
    sub.required = True
    for name, module in (("train", _cli_train), ("gradcheck", _cli_gradcheck)):
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxnn`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ValueError as e:
        # Bad flag values and bad data are the user's to fix: one line, no traceback.
        parser.exit(2, f"jaxnn {args.command}: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
