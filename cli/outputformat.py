"""The output format names (kept tiny: imported at start-up by every command)."""

from __future__ import annotations

import enum


class OutputFormat(str, enum.Enum):  # noqa: UP042 - Typer needs a str Enum
    """The output formats every checking command accepts."""

    table = "table"
    json = "json"
    nagios = "nagios"
    junit = "junit"
    prometheus = "prometheus"
