"""``opsbook winrm audit``: log in over WinRM and compare listeners with the machine store."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from opsbook.runbooks.model import Report

from .. import terminal
from ..options import FormatOption, ResolveOption, TextfileOption, examples, timeout_option
from ..outputformat import OutputFormat

PASSWORD_ENV = "OPSBOOK_WINRM_PASSWORD"  # noqa: S105 - the variable name, not a password

HELP = (
    "Log in over WinRM (HTTPS, certificate validated) and audit the listeners: thumbprint missing from "
    "Cert:\\LocalMachine\\My, certificate renewed but not rebound (with the outage date), presented certificate "
    "different from the configured one, Hostname not on the certificate, stale HTTP.sys binding, HTTP listener "
    f"still enabled. The password comes from {PASSWORD_ENV}, --password-file or a prompt, never from a flag."
)
EPILOG = examples(
    "OPSBOOK_WINRM_PASSWORD=... opsbook winrm audit srv1.corp.example.com --username 'CORP\\svc-audit' "
    "--ca-file corp-root.pem",
    "opsbook winrm audit srv1.corp.example.com srv2.corp.example.com -u 'CORP\\svc-audit' "
    "--password-file /etc/opsbook/winrm.pw -f json",
    "opsbook winrm audit srv1.corp.example.com --transport certificate --cert-pem audit.crt --cert-key-pem audit.key",
    "opsbook winrm audit srv1.corp.example.com -u 'CORP\\svc-audit' -f nagios   # prompts for the password",
    "opsbook winrm audit srv1.corp.example.com --resolve srv1.corp.example.com:10.0.0.21 -u 'CORP\\svc-audit'",
)


class Transport(enum.StrEnum):
    """WinRM authentication transports (HTTPS only)."""

    ntlm = "ntlm"
    kerberos = "kerberos"
    credssp = "credssp"
    certificate = "certificate"


def build_report(  # noqa: PLR0917 - same names as the Typer parameters
    hosts: list[str] | None = None,
    username: str | None = None,
    password_file: Path | None = None,
    transport: Transport | str = Transport.ntlm,
    ca_file: Path | None = None,
    port: int = 5986,
    timeout: float = 30.0,
    cert_pem: Path | None = None,
    cert_key_pem: Path | None = None,
    warn_days: int = 30,
    concurrency: int = 8,
    template: str | None = None,
    resolve: list[str] | None = None,
) -> Report:
    """Convert the options (password from env, file or prompt) and run the audit."""
    from opsbook.runbooks.errors import InputError
    from opsbook.runbooks.probes import parse_resolve
    from opsbook.runbooks.secrets import Secret, secret_from
    from opsbook.runbooks.winrm_https.audit import AuditOptions, parse_hosts, run_audit

    kind = Transport(transport).value
    targets = parse_hosts(list(hosts or []), port, parse_resolve(resolve))
    if not targets:
        raise InputError("no hosts to audit: give HOST[:PORT] arguments")
    password = None
    if kind not in ("certificate", "kerberos"):  # kerberos authenticates with the ticket cache (kinit)
        if not username:
            raise InputError(f"--username is required with --transport {kind}")
        password = secret_from(PASSWORD_ENV, password_file)
        if password is None:
            if not terminal.stdin_is_tty():
                raise InputError(
                    f"no password: set {PASSWORD_ENV}, give --password-file, or run on a terminal to be asked"
                )
            password = Secret(terminal.prompt_secret(f"WinRM password for {username}"))
            if not password:
                raise InputError("no password given")
    opts = AuditOptions(
        username=username or None,
        password=password,
        transport=kind,
        ca_file=str(ca_file) if ca_file is not None else None,
        port=port,
        timeout=timeout,
        cert_pem=str(cert_pem) if cert_pem is not None else None,
        cert_key_pem=str(cert_key_pem) if cert_key_pem is not None else None,
        warn_days=warn_days,
        template=template,
    )
    return run_audit(targets, opts, concurrency=concurrency)


def audit(  # noqa: PLR0917 - Typer maps every parameter
    hosts: Annotated[
        list[str] | None,
        typer.Argument(metavar="HOST[:PORT]...", help="Servers to audit (IPv6 as [addr]:port).", show_default=False),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option(
            "--username",
            "-u",
            metavar="USER",
            help="Account to log in with (DOMAIN\\user or user@domain); with kerberos the principal "
            "(optional: the ticket cache's); not with --transport certificate.",
            show_default=False,
        ),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            metavar="FILE",
            dir_okay=False,
            help=f"Read the password from FILE (first line). Default: {PASSWORD_ENV}, else a prompt.",
            show_default=False,
        ),
    ] = None,
    transport: Annotated[
        Transport, typer.Option("--transport", case_sensitive=False, help="Authentication.")
    ] = Transport.ntlm,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            metavar="PEM",
            dir_okay=False,
            help="Trust these CA certificates (default: REQUESTS_CA_BUNDLE or certifi).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="HTTPS listener port when HOST has none.")
    ] = 5986,
    timeout: Annotated[float, timeout_option(30)] = 30.0,
    cert_pem: Annotated[
        Path | None,
        typer.Option(
            "--cert-pem",
            metavar="PEM",
            dir_okay=False,
            help="Client certificate for --transport certificate.",
            show_default=False,
        ),
    ] = None,
    cert_key_pem: Annotated[
        Path | None,
        typer.Option(
            "--cert-key-pem",
            metavar="PEM",
            dir_okay=False,
            help="Its private key (unencrypted PEM).",
            show_default=False,
        ),
    ] = None,
    warn_days: Annotated[
        int, typer.Option("--warn-days", min=0, help="A bound certificate closer than this to expiry is 'soon'.")
    ] = 30,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=256, help="Hosts audited at once.")] = 8,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            metavar="NAME",
            help="Certificate template (name or OID) a replacement must come from. Default: the template "
            "of the listener's current certificate.",
            show_default=False,
        ),
    ] = None,
    resolve: ResolveOption = None,
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Audit WinRM HTTPS listeners over WinRM."""
    report = build_report(
        hosts=hosts,
        username=username,
        password_file=password_file,
        transport=transport,
        ca_file=ca_file,
        port=port,
        timeout=timeout,
        cert_pem=cert_pem,
        cert_key_pem=cert_key_pem,
        warn_days=warn_days,
        concurrency=concurrency,
        template=template,
        resolve=resolve,
    )
    raise typer.Exit(terminal.emit_report(report, fmt, textfile=textfile))
