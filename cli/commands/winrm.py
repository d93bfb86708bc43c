"""``opsbook winrm``: check, audit and script (one module per command)."""

from __future__ import annotations

import typer

from ..options import examples
from . import winrm_audit, winrm_check, winrm_script

app = typer.Typer(
    help="WinRM HTTPS listeners: outside check, authenticated audit, binding script.",
    epilog=examples(
        "opsbook winrm check srv1.corp.example.com srv2.corp.example.com:5986",
        "opsbook winrm audit srv1.corp.example.com --username 'CORP\\svc-audit'",
        "opsbook winrm script --root-ca 'Corp Root CA' --output Bind-WinRM.ps1",
    ),
    no_args_is_help=True,
)
app.command("check", help=winrm_check.HELP, epilog=winrm_check.EPILOG)(winrm_check.check)
app.command("audit", help=winrm_audit.HELP, epilog=winrm_audit.EPILOG)(winrm_audit.audit)
app.command("script", help=winrm_script.HELP, epilog=winrm_script.EPILOG)(winrm_script.script)
