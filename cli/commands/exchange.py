"""Placeholder: filled in by the exchange issue."""

from __future__ import annotations

import typer

app = typer.Typer(help="(not yet built)")
