"""Placeholder: filled in by the adsync issue."""

from __future__ import annotations

import typer

app = typer.Typer(help="(not yet built)")
