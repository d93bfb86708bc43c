"""Option types shared by several commands, defined once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from runbooks.errors import InputError

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

TextfileOption = Annotated[
    Path | None,
    typer.Option(
        "--textfile",
        metavar="PATH",
        help="Also write the Prometheus text format to PATH, atomically (node_exporter textfile collector).",
        dir_okay=False,
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


def examples(*lines: str) -> str:
    """An epilog of examples that Click prints as written (no re-wrapping)."""
    body = "\n".join(f"  {line}" for line in lines)
    return f"\b\nExamples:\n{body}"


def check_textfile(textfile: Path | None) -> None:
    """Refuse a --textfile that cannot be written before any probe runs (not after the whole check)."""
    if textfile is None:
        return
    folder = Path(textfile).parent
    if not folder.is_dir():
        raise InputError(f"cannot write --textfile {textfile}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write --textfile {textfile}: the folder {folder} is not writable")
