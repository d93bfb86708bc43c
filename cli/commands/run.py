"""``opsbook run SUITE.yaml``: placeholder until the suite issue is built."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HELP = "Run a YAML suite of checks and report them together."
EPILOG = ""


def run(suite: Annotated[Path, typer.Argument(help="The suite file.")]) -> None:
    """Run a suite."""
    raise typer.Exit(3)
