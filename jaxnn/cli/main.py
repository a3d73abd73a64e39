"""The ``jaxnn`` command: ``jaxnn train`` and ``jaxnn gradcheck``.

A thin dispatcher: each subcommand's flags and work live in a module of its
own (``jaxnn.cli.train``, ``jaxnn.cli.gradcheck``), which call the library.
A user error (a bad flag value, a missing or malformed file, bad data) ends in
ONE line on stderr and exit status 2, never a traceback; a run that fails
(a failed gradient check, divergence) prints one line and exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message, no usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxnn`` parser with its ``train`` and ``gradcheck`` subcommands.

    Returns:
      The top-level ``argparse.ArgumentParser``; each subcommand's parser
      sets ``_run``, the function that runs it.

    >>> from jaxnn import cli
    >>> sorted(cli.build_parser()._subparsers._group_actions[0].choices)
    ['gradcheck', 'train']
    """
    from jaxnn import __version__
    from jaxnn.cli import gradcheck, train

    parser = _Parser(
        prog="jaxnn",
        description="jaxnn: textbook neural networks in JAX with a verified hand-derived "
                    "backward pass.",
        epilog=f"{train.CACHE_HELP} An error is one line; JAXNN_TRACEBACK=1 shows the "
               "traceback behind it (for a bug report).",
    )
    parser.add_argument("--version", action="version", version=f"jaxnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,gradcheck}",
                                parser_class=_Parser)
    sub.required = True
    p = sub.add_parser("train", help=train.HELP, description=train.HELP,
                       epilog=train.epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_arguments(p)
    p.set_defaults(_run=train.run)
    p = sub.add_parser("gradcheck", help=gradcheck.HELP, description=gradcheck.HELP)
    gradcheck.add_arguments(p)
    p.set_defaults(_run=gradcheck.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxnn`` console script.

    Args:
      argv: the arguments after ``jaxnn`` (default: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success, 1 when the run failed (gradient check,
      divergence, a lost peer process); user errors exit with 2 and Ctrl-C
      with 130, through ``SystemExit``.

    >>> from jaxnn import cli
    >>> cli.main(["train", "--seed", "-1"])  # prints one line on stderr
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ValueError as e:
        if os.environ.get("JAXNN_TRACEBACK"):  # for a bug report: the whole story
            raise
        # Bad flag values and bad data are the user's to fix: one line, no traceback.
        message = " ".join(str(e).split())
        parser.exit(2, f"jaxnn {args.command}: error: {message}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"jaxnn {args.command}: interrupted (Ctrl-C)\n")


if __name__ == "__main__":
    sys.exit(main())
