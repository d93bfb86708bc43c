"""Click's exception types, wherever this Typer version keeps them (vendored or not)."""

from __future__ import annotations

try:  # Typer >= 0.28 vendors Click as typer._click
    from typer._click.core import Context
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older Typer on top of Click
    from click import Context, get_current_context  # type: ignore[no-redef]
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

__all__ = ["ClickException", "Context", "NoArgsIsHelpError", "UsageError", "get_current_context"]
