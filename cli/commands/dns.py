"""``opsbook dns check``: every DNS resolver of this host asked on its own, answers compared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .. import terminal
from ..options import FormatOption, SuiteCommand, TextfileOption, examples, timeout_option
from ..outputformat import OutputFormat

if TYPE_CHECKING:  # pragma: no cover
    from opsbook.runbooks.model import Report

app = typer.Typer(
    help="DNS resolvers: each one asked on its own, answers compared (brown-out, down).", no_args_is_help=True
)

HELP = """Ask each DNS server on its own for the same names and compare the answers.

A resolver library fails over silently: a server that is down costs every lookup a
timeout, and a server in "brown-out" (it answers, but without data, or SERVFAIL) gives
intermittent "name not found" errors. Each server is asked for A and AAAA of every name.
A server that does not answer, answers SERVFAIL/REFUSED, or has no data for a name another
server resolves is CRITICAL. A --name no server resolves is a WARNING; the host's own name
(--host-name) may be unknown to DNS.
"""

EPILOG = examples(
    "opsbook dns check                                   # resolv.conf's servers, this host's name",
    "opsbook dns check --name intranet.corp.example.com --dns 10.0.0.1 --dns 10.0.0.2",
    "opsbook dns check --name www.example.com -f nagios",
)


def _own_name() -> str:
    """This host's name, with the resolv.conf domain when the name has none (no DNS lookup)."""
    from opsbook.runbooks.suite.refs import host_facts

    return str(host_facts()["host.fqdn"]())


#: How suites and the exporter run this command.
SUITE = SuiteCommand("dns", "check")


def build_report(
    *,
    dns: list[str] | None = None,
    name: list[str] | None = None,
    host_name: str | None = None,
    timeout: float = 2.0,
) -> Report:
    """Convert the options and run ``dns check`` (also used by ``opsbook run``)."""
    from opsbook.runbooks.errors import InputError
    from opsbook.runbooks.probes.dns import parse_servers
    from opsbook.runbooks.probes.targets import dns_name
    from opsbook.runbooks.resolvers import NameToCheck, check_resolvers

    if not timeout or timeout <= 0:
        raise InputError("--timeout must be greater than zero")
    servers = parse_servers(dns)
    names = [NameToCheck(dns_name(n, "--name"), must_resolve=True) for n in name or []]
    own = (host_name if host_name is not None else _own_name()).strip()
    if own:
        names.append(NameToCheck(dns_name(own, "--host-name"), must_resolve=False))
    if not names:
        raise InputError("nothing to ask: give --name NAME (or --host-name)")
    return check_resolvers(servers, names, timeout=timeout)


@app.command("check", help=HELP, epilog=EPILOG)
def check(
    *,
    dns: Annotated[
        list[str] | None,
        typer.Option(
            "--dns",
            metavar="ADDRESS[:PORT]",
            help="A DNS server; repeatable; IPv6 as [addr]:port (default: the nameservers of /etc/resolv.conf).",
        ),
    ] = None,
    name: Annotated[
        list[str] | None,
        typer.Option("--name", metavar="NAME", help="A name that must resolve (a canary); repeatable."),
    ] = None,
    host_name: Annotated[
        str | None,
        typer.Option(
            "--host-name",
            metavar="NAME",
            help="This host's own name, which may be unknown to DNS (default: the host name, with "
            "resolv.conf's domain; '' for none).",
        ),
    ] = None,
    timeout: Annotated[float, timeout_option(2)] = 2.0,
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Ask each DNS server on its own for the same names and compare the answers."""
    raise typer.Exit(
        terminal.emit_report(
            build_report(dns=dns, name=name, host_name=host_name, timeout=timeout), fmt, textfile=textfile
        )
    )
