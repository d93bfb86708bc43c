"""``opsbook winrm script``: write the PowerShell that binds the auto-enrolled certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import terminal
from ..options import examples

HELP = """Write the PowerShell script that binds the auto-enrolled certificate to the WinRM HTTPS listener.

The script picks the certificate deterministically (Server Authentication EKU, CN/SAN = the
computer's FQDN, chain to --root-ca, from --template or else the template of the listener's current
certificate, private key, valid now, latest NotAfter), does nothing when
the listener already uses it, rebinds safely otherwise (the old thumbprint is put back on
failure), opens the port for the Domain profile, logs to a dated file and the event log,
exits non-zero on failure and supports -WhatIf. With --register-renewal-task it also registers
a scheduled task that runs it again at startup and whenever auto-enrolment renews the
certificate. Option values are written as safely quoted literals; a value with a control
character is refused (exit 3) and nothing is written. Output: UTF-8 with BOM, CRLF.
"""
EPILOG = examples(
    "opsbook winrm script --root-ca 'Corp Root CA' --output Bind-WinRMHttps.ps1",
    "opsbook winrm script --root-ca 'Corp Root CA' --register-renewal-task -o Bind-WinRMHttps.ps1 --force",
    "opsbook winrm script --root-ca 'Corp Root CA' --port 5986 --log-dir 'D:\\Logs\\WinRM' > Bind.ps1",
    "powershell -File .\\Bind-WinRMHttps.ps1 -WhatIf     # on the server: show what it would do",
)


def script(  # noqa: PLR0917 - Typer maps every parameter
    root_ca: Annotated[
        str,
        typer.Option(
            "--root-ca", metavar="TEXT", help="CN of the root CA the certificate must chain to.", show_default=False
        ),
    ],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="HTTPS listener port.")] = 5986,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write the script to FILE (atomically) instead of standard output.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output FILE.")] = False,
    log_dir: Annotated[
        str, typer.Option("--log-dir", metavar="DIR", help="Folder on the server for the dated log files.")
    ] = "C:\\ProgramData\\opsbook\\winrm-https\\logs",
    register_renewal_task: Annotated[
        bool,
        typer.Option(
            "--register-renewal-task",
            help="The script also registers a task that reruns it at startup and on certificate renewal.",
        ),
    ] = False,
    template: Annotated[
        str,
        typer.Option(
            "--template",
            metavar="NAME",
            help="Certificate template (name or OID) the certificate must come from. Default: the template "
            "of the listener's current certificate.",
            show_default=False,
        ),
    ] = "",
) -> None:
    """Write the WinRM HTTPS binding script (see HELP)."""
    from opsbook.runbooks.fsutil import write_output
    from opsbook.runbooks.winrm_https.script import ScriptOptions, encode, generate

    opts = ScriptOptions(
        root_ca=root_ca, port=port, log_dir=log_dir, register_renewal_task=register_renewal_task, template=template
    )
    data = encode(generate(opts))
    summary = f"root CA CN {root_ca!r}, port {port}" + (", with the renewal task" if register_renewal_task else "")
    if output is None or str(output) == "-":
        terminal.out_bytes(data)
        terminal.info(f"opsbook: script written to standard output ({summary})")
        return
    write_output(output, data, force=force)
    terminal.info(f"opsbook: wrote {output} ({summary})")
