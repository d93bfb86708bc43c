"""``opsbook exchange clear-previous-mailbox``: write the script, never touch Exchange."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from opsbook.runbooks.errors import RefusedError

from .. import terminal
from ..options import examples

app = typer.Typer(
    help="Exchange Online: generate reviewed, injection-proof PowerShell for mailbox fixes.",
    epilog=examples(
        "opsbook exchange clear-previous-mailbox jane.doe@contoso.com --output Clear-Jane.ps1",
        "opsbook exchange clear-previous-mailbox --csv users.csv --license-reset -o CHG0042.ps1",
    ),
    no_args_is_help=True,
)

HELP = """Write the PowerShell that clears users' previous cloud-mailbox info.

Fixes "Target user '...' already has a primary mailbox" on New-MoveRequest in a hybrid.
The script is read-only unless run with -Apply; it checks each user with Get-User first,
runs Set-User -PermanentlyClearPreviousMailboxInfo (IRREVERSIBLE) only where there is
something to clear and no cloud mailbox, then proves the result.

Identities: UPN/e-mail, object GUID, alias (or another Exchange identity). An identity
that cannot be written safely (control or invisible characters, empty, ...) or that is a
search rather than one user (wildcard *, filter expression) is refused: exit 3 and nothing
is written. The script is UTF-8 with BOM and CRLF (for Windows PowerShell 5.1).
"""


@app.command(
    "clear-previous-mailbox",
    help=HELP,
    epilog=examples(
        'opsbook exchange clear-previous-mailbox jane.doe@contoso.com "o\'brien@contoso.com"',
        "opsbook exchange clear-previous-mailbox --csv users.csv --output CHG0042.ps1",
        "opsbook exchange clear-previous-mailbox --csv users.csv --license-reset -o CHG0042.ps1 --force",
        "pwsh ./CHG0042.ps1            # on the admin host: read-only report",
        "pwsh ./CHG0042.ps1 -Apply     # after review: make the change",
    ),
)
def clear_previous_mailbox(
    identities: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IDENTITY",
            help="Users: UPN/e-mail, object GUID (ExternalDirectoryObjectId) or alias.",
            show_default=False,
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE",
            help="CSV with a column 'identity' (UTF-8, BOM optional; other columns ignored; - for stdin).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the script to FILE (atomically) instead of standard output.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output FILE.")] = False,
    license_reset: Annotated[
        bool,
        typer.Option(
            "--license-reset",
            help="Add the licence fallback: turn off only the Exchange plans, retry, restore exactly "
            "(restore file written first; -Restore FILE and resuming in the script).",
        ),
    ] = False,
) -> None:
    """Write the clear-previous-mailbox script (see HELP)."""
    from opsbook.runbooks.exchange_mailbox import identities as ids
    from opsbook.runbooks.exchange_mailbox import script
    from opsbook.runbooks.fsutil import check_output_path, write_output

    to_stdout = output is None or str(output) == "-"
    if not to_stdout and output is not None:
        check_output_path(output, force=force)
        if csv is not None and str(csv) != "-" and output.resolve() == csv.resolve():
            raise RefusedError(f"--output {output} is the --csv file; choose another name")
    rows = None
    if csv is not None and str(csv) == "-":
        rows = ids.parse_csv(sys.stdin.buffer.read(), "standard input")
    elif csv is not None:
        rows = ids.read_csv(csv)
    found = ids.collect(list(identities or []), rows)
    for dropped, first in found.duplicates:
        terminal.warn(f"{dropped.source}: {ids.show(dropped.value)} repeats {first.source}; written once")
    data = script.encode(script.generate(found.values, license_reset=license_reset))
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(found.counts().items()))
    summary = f"{len(found.identities)} user(s) ({kinds}); read-only unless run with -Apply"
    if to_stdout:
        terminal.out_bytes(data)
        terminal.info(f"opsbook: script written to standard output: {summary}")
        return
    assert output is not None
    write_output(output, data, force=force)
    terminal.info(f"opsbook: wrote {output}: {summary}")
