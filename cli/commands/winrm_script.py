"""``opsbook winrm script``: placeholder until built."""

from __future__ import annotations

import typer

HELP = "(not yet built)"
EPILOG = ""


def script() -> None:
    """Not built yet."""
    raise typer.Exit(3)
