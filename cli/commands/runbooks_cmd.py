"""``opsbook runbooks`` and ``opsbook runbooks show NAME``."""

from __future__ import annotations

from typing import Annotated

import typer

from opsbook.runbooks import docs

from .. import terminal
from ..options import examples

app = typer.Typer(
    help="List the runbooks, or show one as a document.",
    epilog=examples("opsbook runbooks", "opsbook runbooks show docker-root | less"),
    invoke_without_command=True,
)


@app.callback()
def list_all(ctx: typer.Context) -> None:
    """List the runbooks (name and what each is for)."""
    if ctx.invoked_subcommand is None:
        terminal.print_lines(docs.list_runbooks())


@app.command(
    "show",
    epilog=examples(
        "opsbook runbooks show winrm-https",
        "opsbook runbooks show exchange",
        "opsbook runbooks show adsync > adsync.md",
    ),
)
def show(
    name: Annotated[
        str,
        typer.Argument(
            help="docker-root, winrm-https (or winrm), adsync or exchange-mailbox (or exchange).",
            autocompletion=docs.complete_name,
        ),
    ],
) -> None:
    """Show a runbook: what, why, steps, rollback and pitfalls (plain Markdown on a pipe)."""
    terminal.markdown(docs.load(name).text)
