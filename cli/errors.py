"""One error handler: every failure becomes one clean line on stderr and one exit code.

Modelled on pre-commit's ``error_handler``: :func:`error_handler` wraps a whole run;
the table :data:`HANDLED` says, for each kind of failure, what the user reads and which
exit code follows (monitoring-plugins convention: 3 is UNKNOWN). Anything not in the
table is an internal error: a traceback with ``--debug``, else one line that says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import typer

from opsbook.runbooks.errors import OpsbookError

from .clickcompat import ClickException, NoArgsIsHelpError, UsageError
from .terminal import Terminal, err, error


class Outcome:
    """The exit code of the run (set by the run, or by the handler when it fails)."""

    def __init__(self) -> None:
        self.code = 0


def _usage_line(exc: BaseException) -> str:
    message = exc.format_message() if isinstance(exc, ClickException) else str(exc)
    hint = ""
    if isinstance(exc, UsageError) and exc.ctx is not None:
        hint = f" (see '{exc.ctx.command_path} --help')"
    return f"{message}{hint}"


def _group_help(exc: BaseException) -> int:
    """A group called without a subcommand: its help, as a usage error."""
    assert isinstance(exc, NoArgsIsHelpError)
    if exc.ctx is not None:
        err(exc.ctx.get_help())
    return 3


def _line(
    text: Callable[[BaseException], str], code: Callable[[BaseException], int] = lambda _: 3
) -> Callable[[BaseException], int]:
    def show(exc: BaseException) -> int:
        error(text(exc))
        return code(exc)

    return show


def _exit_code(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, OpsbookError) else 3


#: (exception types, what to do) in the order they are tried; each returns the exit code.
HANDLED: list[tuple[tuple[type[BaseException], ...], Callable[[BaseException], int]]] = [
    ((NoArgsIsHelpError,), _group_help),  # before ClickException: it is one
    ((ClickException,), _line(_usage_line)),
    ((OpsbookError,), _line(str, _exit_code)),
    ((typer.Abort, EOFError), _line(lambda _: "aborted")),
    ((KeyboardInterrupt,), _line(lambda _: "interrupted")),
    ((BrokenPipeError,), lambda _: 3),  # the reader went away: nothing left to tell it
]


@contextlib.contextmanager
def error_handler(term: Terminal) -> Iterator[Outcome]:
    """Run the body; a failure sets ``outcome.code`` after one line on stderr (never a traceback without --debug)."""
    outcome = Outcome()
    try:
        yield outcome
    except BaseException as exc:  # SystemExit included: Click's own exits stay what they are
        if isinstance(exc, SystemExit):
            raise
        for types, handle in HANDLED:
            if isinstance(exc, types):
                outcome.code = handle(exc)
                return
        if not isinstance(exc, Exception):
            raise
        if term.debug:
            import traceback

            traceback.print_exc()
        else:
            error(f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for a traceback)")
        outcome.code = 3
