"""Option types shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .outputformat import OutputFormat

FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        envvar="OPSBOOK_FORMAT",
        case_sensitive=False,
        help="Output format: table, json, nagios, junit or prometheus (env OPSBOOK_FORMAT).",
    ),
]


def check_output_file(ctx: Any, param: Any, value: Path | None) -> Path | None:
    """Option callback: an output file (``--textfile``, ``--junit-file``) must be writable.

    Checked while the command line is parsed, so before any probe runs: a cron job or a
    Nagios check given a missing or read-only folder fails at once (exit 3, one line)
    instead of running every check and printing nothing.
    """
    if value is None or getattr(ctx, "resilient_parsing", False):  # shell completion parses too
        return value
    from opsbook.runbooks.fsutil import check_writable_file

    option = next((o for o in getattr(param, "opts", ()) if o.startswith("--")), "--output")
    check_writable_file(value, option=option)
    return value


TextfileOption = Annotated[
    Path | None,
    typer.Option(
        "--textfile",
        metavar="PATH",
        help="Also write the Prometheus text format to PATH, atomically (node_exporter textfile collector).",
        dir_okay=False,
        callback=check_output_file,
    ),
]

JunitFileOption = Annotated[
    Path | None,
    typer.Option(
        "--junit-file",
        metavar="PATH",
        dir_okay=False,
        help="Also write JUnit XML to PATH, atomically (for CI), in addition to --format.",
        callback=check_output_file,
    ),
]

ResolveOption = Annotated[
    list[str] | None,
    typer.Option(
        "--resolve",
        metavar="HOST:ADDRESS",
        help="Connect to ADDRESS but check HOST (like curl's --resolve). Repeatable.",
    ),
]


def timeout_option(default: float) -> object:
    """A --timeout option (seconds, > 0) with *default*."""
    return typer.Option(
        "--timeout",
        min=0.001,
        max=3600,
        help=f"Seconds to wait for each network step (default {default:g}).",
    )


class SuiteCommand:
    """How suites (``opsbook run``) and the exporter (``opsbook serve``) run a check command.

    Each check command module declares one as ``SUITE``: the command it is (group and name),
    and the option groups of which at least one must be given (what the command itself
    would refuse at run time, found by ``--validate`` instead). A plain class: the command
    modules are imported on every run.
    """

    def __init__(self, group: str, command: str, needs_one_of: tuple[tuple[str, ...], ...] = ()) -> None:
        self.group = group
        self.command = command
        self.needs_one_of = needs_one_of


def examples(*lines: str) -> str:
    """An epilog of examples that Click prints as written (no re-wrapping)."""
    body = "\n".join(f"  {line}" for line in lines)
    return f"\b\nExamples:\n{body}"
