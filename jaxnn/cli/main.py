"""The ``jaxnn`` command: ``jaxnn train`` and ``jaxnn gradcheck``.

A thin dispatcher: each subcommand's flags and work live in a module of its
own (``jaxnn.cli.train``, ``jaxnn.cli.gradcheck``), which call the library.
A user error (a bad flag value, a missing or malformed file, bad data) ends in
ONE line on stderr and exit status 2, never a traceback; a run that fails
(a failed gradient check, divergence) prints one line and exits with 1. The
exit statuses are listed in :data:`EXIT_CODES` (and in ``jaxnn --help``).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

EXIT_CODES = (
    "Exit status: 0 done; 1 the run failed (gradient check, divergence, a lost peer "
    "process); 2 it could not start or go on: a bad flag, a missing or malformed file, "
    "an --out another run is writing or that holds a run (without --resume or "
    "--overwrite), an OS error (a full or read-only disk, ...); 130 Ctrl-C; 143 SIGTERM. "
    "Interrupted or failed, --out keeps its last complete checkpoint and its history.")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt (not an Exception,
    so nothing on the way swallows it; the atomic writes on the way delete their temp files)."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
    raise Terminated


def _os_error_line(e: OSError) -> str:
    name = errno.errorcode.get(e.errno or 0)
    where = f": {e.filename}" if e.filename else " (writing its output?)"
    return f"{e.strerror or e}" + (f" ({name})" if name else "") + where


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
               f"traceback behind it (for a bug report). {EXIT_CODES}",
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
      divergence, a lost peer process); user and OS errors exit with 2, Ctrl-C
      with 130 and SIGTERM with 143, through ``SystemExit`` (see ``EXIT_CODES``).

    >>> from jaxnn import cli
    >>> cli.main(["train", "--seed", "-1"])  # prints one line on stderr
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (kill, a scheduler's stop) ends the run like Ctrl-C: one line, exit 143
    sigterm = _install(signal.SIGTERM, _on_sigterm)
    try:
        return int(args._run(args) or 0)
    except (ValueError, OSError) as e:
        if os.environ.get("JAXNN_TRACEBACK"):  # for a bug report: the whole story
            raise
        # Bad flag values, bad data and a refusing OS are the user's to fix: one line.
        message = " ".join((str(e) if isinstance(e, ValueError) else _os_error_line(e)).split())
        if isinstance(e, OSError):
            _drop_stdout()
        parser.exit(2, f"jaxnn {args.command}: error: {message}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"jaxnn {args.command}: interrupted (Ctrl-C)\n")
    except Terminated:
        parser.exit(143, f"jaxnn {args.command}: terminated (SIGTERM); nothing partial was "
                         "written: --out keeps its last complete checkpoint and history "
                         "(--resume continues)\n" if args.command == "train" else
                    f"jaxnn {args.command}: terminated (SIGTERM)\n")
    finally:
        _install(signal.SIGTERM, sigterm)


def _install(signum, handler):
    """signal.signal where it works (the main thread); returns the handler it replaced."""
    try:
        return signal.signal(signum, handler)
    except (ValueError, TypeError):  # not the main thread, or handler None (not Python's)
        return None


def _drop_stdout() -> None:
    """After an OS error, stdout may be a full device: point it at /dev/null so the exit's
    flush cannot fail again with a traceback (the advice of Python's signal docs)."""
    try:
        sys.stdout.flush()
        return  # stdout works: leave it alone
    except OSError:
        pass
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
