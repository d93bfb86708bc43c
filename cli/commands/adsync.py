"""``opsbook adsync check``: AD Connect's DNS per server, DC ports and tenant sync freshness."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsbook.runbooks.errors import InputError

from .. import terminal
from ..options import FormatOption, ResolveOption, SuiteCommand, TextfileOption, examples, timeout_option
from ..outputformat import OutputFormat

if TYPE_CHECKING:  # pragma: no cover
    from opsbook.runbooks.model import CheckResult, Report
    from opsbook.runbooks.probes.targets import HostPort

app = typer.Typer(
    help="Azure AD Connect / Entra Connect: DNS per server, domain controller ports, tenant sync.",
    no_args_is_help=True,
)

HELP = """Check what AD Connect needs from DNS, the domain controllers and (with --graph) the tenant.

Each DNS server is asked on its own, in the sync server's order (never through a resolver
that fails over silently): a server that answers without data while another has data is a
BROWN-OUT, and Windows will not fail over past it (KB2834226). Then every domain controller
is probed on the AD Connect ports (open / closed / filtered), and with --graph the tenant's
last directory and password hash sync are read through Microsoft Graph.
The Graph client secret comes from OPSBOOK_GRAPH_CLIENT_SECRET or --client-secret-file, never a flag."""

EPILOG = examples(
    "opsbook adsync check --domain corp.example.com --dns 10.0.0.1 --dns 10.0.0.2",
    "opsbook adsync check --domain corp.example.com --dc dc1.corp.example.com --ports 389/tcp,389/udp",
    "opsbook adsync check --domain corp.example.com --ports 135/tcp,49152-65535/tcp --dc dc1.corp.example.com",
    "opsbook adsync check --domain corp.example.com -f nagios --timeout 1",
    "OPSBOOK_GRAPH_CLIENT_SECRET=... opsbook adsync check --domain corp.example.com --graph \\",
    "    --tenant-id contoso.onmicrosoft.com --client-id 00000000-0000-0000-0000-000000000000 --max-sync-age 1h,3h",
)


def _dns_servers(entries: list[str] | None) -> list[HostPort]:
    from opsbook.runbooks.probes.dns import parse_servers

    return parse_servers(entries)


#: How suites and the exporter run this command.
SUITE = SuiteCommand("adsync", "check")


def build_report(
    *,
    domain: str,
    dns: list[str] | None = None,
    dc: list[str] | None = None,
    ports: str | None = None,
    timeout: float = 2.0,
    resolve: list[str] | None = None,
    graph: bool = False,
    tenant_id: str | None = None,
    client_id: str | None = None,
    client_secret_file: Path | None = None,
    client_cert: Path | None = None,
    authority_host: str | None = None,
    graph_endpoint: str | None = None,
    max_sync_age: str | None = None,
    max_password_sync_age: str | None = None,
    provisioning_errors: bool = False,
    site: str | None = None,
    max_dcs: int | None = None,
    max_skew: str | None = None,
    ca_file: Path | None = None,
) -> Report:
    """Convert the options and run ``adsync check`` (also used by ``opsbook run``)."""
    from opsbook.runbooks.adsync.check import MAX_DCS, AdsyncOptions, run_check
    from opsbook.runbooks.adsync.dcinfo import SkewThresholds, parse_skew
    from opsbook.runbooks.adsync.names import parse_dcs, parse_domain, parse_site
    from opsbook.runbooks.adsync.ports import DEFAULT_PORTS, parse_ports
    from opsbook.runbooks.probes.targets import a_label, parse_resolve

    if not timeout or timeout <= 0:
        raise InputError("--timeout must be greater than zero")
    if max_dcs is not None and not 1 <= max_dcs <= 1000:
        raise InputError(f"invalid --max-dcs {max_dcs}: give 1 to 1000")
    if site is not None:
        site = parse_site(site)
    if ca_file is not None and not Path(ca_file).is_file():
        raise InputError(f"cannot read --ca-file {ca_file}: no such file")
    port_list = parse_ports(ports) if ports is not None else list(DEFAULT_PORTS)
    asked_ldaps = ports is not None and any(p.proto == "tcp" and p.port in (636, 3269) for p in port_list)
    options = AdsyncOptions(
        domain=parse_domain(domain),
        dns_servers=_dns_servers(dns),
        dns_from_resolv_conf=not dns,
        dcs=parse_dcs(dc),
        ports=port_list,
        timeout=float(timeout),
        site=site,
        max_dcs=max_dcs if max_dcs is not None else MAX_DCS,
        skew=parse_skew(max_skew) if max_skew is not None else SkewThresholds(),
        ca_file=str(ca_file) if ca_file is not None else None,
        ldaps_certs=asked_ldaps or ca_file is not None,
        resolve={a_label(host, "--resolve", host): address for host, address in parse_resolve(resolve).items()},
    )
    graph_values = (
        tenant_id,
        client_id,
        client_secret_file,
        client_cert,
        authority_host,
        graph_endpoint,
        max_sync_age,
        max_password_sync_age,
    )
    graph_given = provisioning_errors or any(v is not None for v in graph_values)
    if graph_given and not graph:
        raise InputError("the Graph options (--tenant-id, --client-id, ...) need --graph")
    tenant_check = None
    if graph:
        from opsbook.runbooks.adsync import graph as graph_mod
        from opsbook.runbooks.adsync.auth import secret_file_check
        from opsbook.runbooks.adsync.checks import parse_age_thresholds
        from opsbook.runbooks.secrets import secret_from

        kwargs: dict[str, object] = {}
        if authority_host is not None:
            kwargs["authority_host"] = authority_host
        if graph_endpoint is not None:
            kwargs["graph_endpoint"] = graph_endpoint
        if max_sync_age is not None:
            kwargs["max_sync_age"] = parse_age_thresholds(max_sync_age)
        if max_password_sync_age is not None:
            kwargs["max_password_sync_age"] = parse_age_thresholds(max_password_sync_age)
        secret = (
            None
            if client_cert is not None and client_secret_file is None
            else secret_from("OPSBOOK_GRAPH_CLIENT_SECRET", client_secret_file)
        )
        graph_options = graph_mod.GraphOptions(
            tenant_id=tenant_id or "",
            client_id=client_id or "",
            client_secret=secret,
            client_cert=client_cert,
            timeout=max(float(timeout), 10.0),
            count_provisioning_errors=provisioning_errors,
            **kwargs,  # type: ignore[arg-type]
        )
        graph_mod.validate_options(graph_options)  # exit 3 before any DNS query or HTTPS request

        file_check = secret_file_check(client_secret_file) if client_secret_file is not None else None

        def tenant_check() -> list[CheckResult]:
            return ([file_check] if file_check else []) + graph_mod.check_tenant(graph_options)

    return run_check(options, tenant_check)


@app.command("check", help=HELP, epilog=EPILOG, no_args_is_help=True)
def check(  # noqa: PLR0917 - one parameter per option
    domain: Annotated[str, typer.Option("--domain", metavar="DOMAIN", help="The AD domain (DNS name).")],
    dns: Annotated[
        list[str] | None,
        typer.Option(
            "--dns",
            metavar="ADDRESS[:PORT]",
            help="A DNS server of the sync server, in its order; repeatable; IPv6 as [addr]:port "
            "(default: the nameservers of /etc/resolv.conf).",
        ),
    ] = None,
    dc: Annotated[
        list[str] | None,
        typer.Option("--dc", metavar="HOST", help="A domain controller to probe; repeatable (default: found by SRV)."),
    ] = None,
    ports: Annotated[
        str | None,
        typer.Option(
            "--ports",
            metavar="LIST",
            help="Comma list of PORT/PROTO or FIRST-LAST/PROTO replacing the default AD ports "
            "(53/tcp,53/udp,88/tcp,88/udp,135/tcp,389/tcp,389/udp,445/tcp,636/tcp,3268/tcp, "
            "Microsoft's Entra Connect port list); the RPC range is probed only when listed, "
            "e.g. 49152-65535/tcp; 3269/tcp, 123/udp and 464 on request.",
        ),
    ] = None,
    timeout: Annotated[float, timeout_option(2)] = 2.0,
    resolve: ResolveOption = None,
    graph: Annotated[bool, typer.Option("--graph", help="Also check the tenant's sync freshness via Graph.")] = False,
    tenant_id: Annotated[str | None, typer.Option("--tenant-id", help="Tenant GUID or domain (--graph).")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="App registration's client id.")] = None,
    client_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--client-secret-file",
            metavar="FILE",
            dir_okay=False,
            help="File holding the client secret (else env OPSBOOK_GRAPH_CLIENT_SECRET).",
        ),
    ] = None,
    client_cert: Annotated[
        Path | None,
        typer.Option(
            "--client-cert",
            metavar="PEM",
            dir_okay=False,
            help="Certificate and private key (PEM) instead of a client secret.",
        ),
    ] = None,
    authority_host: Annotated[
        str | None,
        typer.Option("--authority-host", metavar="URL", help="Default https://login.microsoftonline.com."),
    ] = None,
    graph_endpoint: Annotated[
        str | None, typer.Option("--graph-endpoint", metavar="URL", help="Default https://graph.microsoft.com.")
    ] = None,
    max_sync_age: Annotated[
        str | None,
        typer.Option("--max-sync-age", metavar="WARN[,CRIT]", help="Last directory sync age (default 1h,3h)."),
    ] = None,
    max_password_sync_age: Annotated[
        str | None,
        typer.Option(
            "--max-password-sync-age", metavar="WARN[,CRIT]", help="Last password hash sync age (default 1h,3h)."
        ),
    ] = None,
    provisioning_errors: Annotated[
        bool,
        typer.Option("--provisioning-errors", help="Also count users with provisioning errors (--graph)."),
    ] = False,
    site: Annotated[
        str | None,
        typer.Option("--site", metavar="NAME", help="AD site: find DCs through _ldap._tcp.NAME._sites.dc._msdcs."),
    ] = None,
    max_dcs: Annotated[
        int | None,
        typer.Option(
            "--max-dcs",
            metavar="N",
            help="Most DCs taken from SRV answers (default 50; the rest are reported, not probed).",
        ),
    ] = None,
    max_skew: Annotated[
        str | None,
        typer.Option(
            "--max-skew",
            metavar="WARN[,CRIT]",
            help="DC clock skew thresholds (default 2m,5m; Kerberos fails at 5 minutes).",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            metavar="PEM",
            dir_okay=False,
            help="AD CS root(s) for the LDAPS certificates (checked when given, or when --ports lists 636/3269).",
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Check DNS per server, DC ports and (with --graph) the tenant's sync freshness."""
    raise typer.Exit(
        terminal.emit_report(
            build_report(
                domain=domain,
                dns=dns,
                dc=dc,
                ports=ports,
                timeout=timeout,
                resolve=resolve,
                graph=graph,
                tenant_id=tenant_id,
                client_id=client_id,
                client_secret_file=client_secret_file,
                client_cert=client_cert,
                authority_host=authority_host,
                graph_endpoint=graph_endpoint,
                max_sync_age=max_sync_age,
                max_password_sync_age=max_password_sync_age,
                provisioning_errors=provisioning_errors,
                site=site,
                max_dcs=max_dcs,
                max_skew=max_skew,
                ca_file=ca_file,
            ),
            fmt,
            textfile=textfile,
        )
    )
