"""``opsbook winrm check``: WinRM HTTPS listeners from the outside, without credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsbook.runbooks.model import Report

from .. import terminal
from ..options import FormatOption, ResolveOption, SuiteCommand, TextfileOption, examples, timeout_option
from ..outputformat import OutputFormat

HELP = (
    "Check WinRM HTTPS listeners from the outside (no credentials): TCP, TLS handshake and version, "
    "certificate chain, name, issuer, expiry, EKU, key, signature, and an unauthenticated WS-Man Identify."
)
EPILOG = examples(
    "opsbook winrm check srv1.corp.example.com srv2.corp.example.com:5986 --ca-file corp-root.pem",
    "opsbook winrm check --hosts-file winrm-hosts.txt --issuer 'Corp Issuing CA' -f nagios",
    "opsbook winrm check srv1.corp.example.com --resolve srv1.corp.example.com:10.0.0.21",
    "opsbook winrm check --hosts-file fleet.txt -f prometheus --textfile /var/lib/node_exporter/winrm.prom",
)


#: How suites and the exporter run this command.
SUITE = SuiteCommand("winrm", "check", needs_one_of=(("hosts", "hosts-file"),))


def build_report(
    *,
    hosts: list[str] | None = None,
    hosts_file: Path | None = None,
    port: int = 5986,
    ca_file: Path | None = None,
    issuer: str | None = None,
    warn_days: int = 30,
    crit_days: int = 7,
    timeout: float = 5.0,
    concurrency: int = 64,
    resolve: list[str] | None = None,
) -> Report:
    """Convert the options and run the check (``opsbook run`` calls this with the same names)."""
    from opsbook.runbooks.probes import parse_resolve
    from opsbook.runbooks.winrm_https.check import CheckOptions, parse_targets, read_hosts_file, run_check

    names = list(hosts or [])
    if hosts_file is not None:
        names += read_hosts_file(hosts_file)
    targets = parse_targets(names, port, parse_resolve(resolve))
    opts = CheckOptions(
        ca_file=str(ca_file) if ca_file is not None else None,
        issuer=issuer or None,
        warn_days=warn_days,
        crit_days=crit_days,
        timeout=timeout,
    )
    return run_check(targets, opts, concurrency=concurrency)


def check(  # noqa: PLR0917 - Typer maps every parameter
    hosts: Annotated[
        list[str] | None, typer.Argument(metavar="HOST[:PORT]...", help="Listeners to check (IPv6 as [addr]:port).")
    ] = None,
    hosts_file: Annotated[
        Path | None,
        typer.Option("--hosts-file", metavar="FILE", dir_okay=False, help="One host a line, '#' comments."),
    ] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port when HOST has none.")] = 5986,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file", metavar="PEM", dir_okay=False, help="Trust these CA certificates (default: system store)."
        ),
    ] = None,
    issuer: Annotated[
        str | None, typer.Option("--issuer", metavar="TEXT", help="The issuer CN must start with TEXT.")
    ] = None,
    warn_days: Annotated[int, typer.Option("--warn-days", min=0, help="WARNING below this many days left.")] = 30,
    crit_days: Annotated[int, typer.Option("--crit-days", min=0, help="CRITICAL below this many days left.")] = 7,
    timeout: Annotated[float, timeout_option(5)] = 5.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=4096, help="Hosts checked at once.")] = 64,
    resolve: ResolveOption = None,
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Check WinRM HTTPS listeners from the outside."""
    report = build_report(
        hosts=hosts,
        hosts_file=hosts_file,
        port=port,
        ca_file=ca_file,
        issuer=issuer,
        warn_days=warn_days,
        crit_days=crit_days,
        timeout=timeout,
        concurrency=concurrency,
        resolve=resolve,
    )
    raise typer.Exit(terminal.emit_report(report, fmt, textfile=textfile))
