"""The one module that writes to the terminal.

Results go to stdout; progress, logs, warnings and prompts go to stderr. Rich is
imported lazily (only the table format, Markdown and prompts need it), colour is used
only on a TTY and never when ``NO_COLOR`` is set or ``--no-color`` is given, and data is
never interpreted as Rich markup.

The preferences of a run (colour, debug, whether a person is at the terminal) live in a
:class:`Terminal` object that :func:`opsbook.cli.app.main` creates and hands to Click as
the context's ``obj``; the functions below act on the current run's object
(:func:`current`). Files written beside the report (``--textfile``, ``--junit-file``)
belong to :mod:`opsbook.cli.outputs`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .outputformat import OutputFormat

if TYPE_CHECKING:
    from rich.console import Console

    from opsbook.runbooks.docker_root.move import MoveProgress
    from opsbook.runbooks.model import Report


#: Style of each status, by its value (the result model is not imported for `opsbook --help`).
STATUS_STYLE = {
    "OK": "green",
    "WARNING": "yellow",
    "CRITICAL": "bold red",
    "UNKNOWN": "magenta",
}


class Terminal:
    """How this run talks to the terminal: colour, tracebacks, and whether someone is there.

    A plain class, not a dataclass: it is created on every start, before `--help` prints.
    """

    def __init__(self, *, no_color: bool = False, debug: bool = False) -> None:
        self.no_color = no_color
        #: ``--debug``: internal errors show a traceback.
        self.debug = debug

    @property
    def color(self) -> bool:
        """Whether colours and styles may be used (never with --no-color or NO_COLOR)."""
        return not (self.no_color or os.environ.get("NO_COLOR"))

    @property
    def interactive(self) -> bool:
        """Whether a person can answer a prompt (stdin is a terminal)."""
        return stdin_is_tty()

    def console(self, stream: str) -> Console:
        """A Rich console bound to the *current* sys.stdout / sys.stderr (never cached)."""
        return _make_console(stream, color=self.color)


#: Used outside a run (library use, tests calling renderers directly).
_FALLBACK = Terminal()


def current() -> Terminal:
    """The :class:`Terminal` of the run in progress (the root Click context's ``obj``)."""
    from .clickcompat import get_current_context

    ctx = get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Terminal) else _FALLBACK


def configure(*, no_color: bool | None = None, debug: bool | None = None) -> None:
    """Set the current run's preferences (from the root command's and each command's options)."""
    term = current()
    if no_color is not None:
        term.no_color = term.no_color or no_color
    if debug is not None:
        term.debug = debug


def debug_enabled() -> bool:
    """Whether ``--debug`` was given."""
    return current().debug


def _console(stream: str) -> Console:
    return current().console(stream)


def _make_console(stream: str, *, color: bool) -> Console:
    from rich.console import Console

    file = sys.stdout if stream == "out" else sys.stderr
    is_tty = file.isatty()
    width = None if is_tty or os.environ.get("COLUMNS") else 120
    no_color = not color
    return Console(
        file=file,
        no_color=no_color,
        # Rich's no_color drops colours but keeps bold and italics; "no colour" here means no
        # escape sequences at all, even on a terminal or with FORCE_COLOR set.
        color_system=None if no_color else "auto",
        highlight=False,
        markup=False,
        emoji=False,
        width=width,
        soft_wrap=False,
    )


# ------------------------------------------------------------------ plain writes


def out(text: str) -> None:
    """Write *text* to stdout as is (machine-readable output, generated scripts)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def out_bytes(data: bytes) -> None:
    """Write raw *data* to stdout (a generated file whose encoding must not change)."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (some test runners): best effort
        sys.stdout.write(data.decode("utf-8"))
    else:
        buffer.write(data)
        buffer.flush()
    sys.stdout.flush()


def err(text: str) -> None:
    """Write a line to stderr as is."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def error(message: str) -> None:
    """One clean error line on stderr."""
    err(f"opsbook: error: {' '.join(message.split())}")


def warn(message: str) -> None:
    """A warning line on stderr."""
    err(f"opsbook: warning: {message}")


def info(message: str) -> None:
    """A progress/log line on stderr."""
    err(message)


def stderr_is_tty() -> bool:
    """Whether stderr is an interactive terminal (progress and prompts go there)."""
    return sys.stderr.isatty()


def stdin_is_tty() -> bool:
    """Whether we can ask the user a question."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


# ------------------------------------------------------------------ reports


def render_table(report: Report, *, stream: str = "out") -> None:
    """Render *report* as Rich tables on stdout (``stream="err"``: on stderr, e.g. a plan before a prompt)."""
    from rich.table import Table
    from rich.text import Text

    console = _console(stream)
    if report.checks:
        table = Table(title=Text(f"opsbook {report.command}"), title_justify="left", expand=False)
        table.add_column("Status", no_wrap=True)
        table.add_column("Check")
        table.add_column("Target")
        table.add_column("Summary", overflow="fold")
        for check in report.checks:
            table.add_row(
                Text(check.status.value, style=STATUS_STYLE[check.status.value]),
                Text(f"{check.source}: {check.name}" if check.source else check.name),
                Text(check.target),
                Text(check.summary),
            )
        console.print(table)
    if report.steps:
        steps = Table(title=Text("steps"), title_justify="left")
        steps.add_column("Status", no_wrap=True)
        steps.add_column("Step")
        steps.add_column("Summary", overflow="fold")
        for step in report.steps:
            steps.add_row(
                Text(step.status.value, style=STATUS_STYLE[step.status.value]),
                Text(step.name),
                Text(step.summary),
            )
        console.print(steps)
    status = report.status
    counts = report.counts()
    tail = ", ".join(f"{n} {s.value.lower()}" for s, n in counts.items() if n)
    line = Text(status.value, style=STATUS_STYLE[status.value])
    line.append(f"  {len(report.checks)} checks" + (f" ({tail})" if tail else ""))
    skipped = report.skipped
    for item in skipped:  # suite entries that did not run here (opsbook run)
        console.print(Text(f"skipped {item.name}: {item.reason}"))
    if skipped:
        line.append(f", {len(skipped)} skipped")
    if report.mutating:
        line.append(f"; changed: {str(report.changed).lower()}; dry run: {str(report.dry_run).lower()}")
    line.append(f"; {report.duration_s:.2f}s")
    console.print(line)


def emit_report(
    report: Report,
    fmt: OutputFormat | str = OutputFormat.table,
    *,
    textfile: str | os.PathLike[str] | None = None,
    junit_file: str | os.PathLike[str] | None = None,
) -> int:
    """Print *report* in *fmt* on stdout, then write the optional files; return the exit code.

    A file that cannot be written raises :class:`~runbooks.errors.InputError` (exit 3) after
    the report is printed.
    """
    fmt = OutputFormat(fmt)
    if report.duration_s == 0.0:
        report.finish()
    if fmt is OutputFormat.table:
        render_table(report)
    else:
        from .formats import RENDERERS

        out(RENDERERS[fmt](report))
    # The files come after stdout: when one cannot be written (its folder vanished since the
    # check at start), Nagios and cron still get the report, then the error (exit 3).
    from .outputs import write_junit_file, write_textfile

    if textfile:
        write_textfile(textfile, report)
    if junit_file:
        write_junit_file(junit_file, report)
    return report.exit_code


# ------------------------------------------------------------------ documents


def markdown(text: str) -> None:
    """Render Markdown on a terminal; print it as plain text on a pipe."""
    if not sys.stdout.isatty():
        out(text if text.endswith("\n") else text + "\n")
        return
    from rich.markdown import Markdown

    _console("out").print(Markdown(text))


def print_lines(rows: list[tuple[str, str]]) -> None:
    """Two aligned columns on stdout (plain text: safe on pipes)."""
    width = max((len(a) for a, _ in rows), default=0)
    out("".join(f"{a.ljust(width)}  {b}\n" for a, b in rows))


# ------------------------------------------------------------------ prompts


def confirm(question: str, *, default: bool = False) -> bool:
    """Ask a yes/no question on stderr; False when stdin is not a terminal."""
    if not stdin_is_tty():
        return False
    suffix = " [y/N] " if not default else " [Y/n] "
    sys.stderr.write(question + suffix)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if not answer:
        return default
    return answer in ("y", "yes")


def ask(question: str) -> str:
    """Ask for a line of text on stderr ('' when stdin is not a terminal)."""
    if not stdin_is_tty():
        return ""
    sys.stderr.write(question + " ")
    sys.stderr.flush()
    return sys.stdin.readline().rstrip("\n")


def prompt_secret(label: str) -> str:
    """Ask for a secret without echo (stderr prompt); '' when not interactive."""
    if not stdin_is_tty():
        return ""
    import getpass

    return getpass.getpass(f"{label}: ", stream=sys.stderr)


@contextmanager
def move_progress() -> Iterator[MoveProgress]:
    """Phases and copy progress of a docker-root move, on stderr.

    On a terminal: a bar labelled with the phase, with an ETA only while the total is
    known (the warm copy). On a pipe: one time-stamped line per phase, for logs.
    """
    from opsbook.runbooks.docker_root.move import MoveProgress

    if not stderr_is_tty():

        def phase_line(label: str, detail: str) -> None:
            stamp = time.strftime("%H:%M:%S")
            print(f"opsbook: {stamp} {label}" + (f": {detail}" if detail else ""), file=sys.stderr, flush=True)

        yield MoveProgress(phase=phase_line)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[files]} files"),
        TimeRemainingColumn(),
        console=_console("err"),
        transient=True,
    ) as bar:
        task = bar.add_task("planning", total=None, files=0)

        def phase(label: str, detail: str) -> None:
            del detail
            bar.reset(task, description=label, total=None, completed=0, files=0)

        def copied(done: int, total: int, files: int) -> None:
            bar.update(task, completed=min(done, total) if total else done, total=total or None, files=files)

        yield MoveProgress(phase=phase, copied=copied)
