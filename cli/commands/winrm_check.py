"""``opsbook winrm check``: placeholder until built."""

from __future__ import annotations

import typer

HELP = "(not yet built)"
EPILOG = ""


def check() -> None:
    """Not built yet."""
    raise typer.Exit(3)
