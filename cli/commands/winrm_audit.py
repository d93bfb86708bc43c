"""``opsbook winrm audit``: placeholder until built."""

from __future__ import annotations

import typer

HELP = "(not yet built)"
EPILOG = ""


def audit() -> None:
    """Not built yet."""
    raise typer.Exit(3)
