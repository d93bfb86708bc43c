"""``winrm audit``: log in over WinRM and compare the listeners with the machine store.

Per host: one WinRM session (pywinrm, certificate validation on) runs one PowerShell
script (:mod:`.audit_script`) that returns the listeners, the HTTP.sys binding and the
certificates of ``Cert:\\LocalMachine\\My`` as JSON; a separate TLS handshake fetches the
certificate the listener actually presents. :func:`.findings.findings` turns that into checks;
:mod:`.inventory` parses what the script returns, :mod:`.transport` is the WinRM session.
The password is handed to pywinrm only; it never reaches a result, a log or an error.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..model import CheckResult, Metric, Report, Status
from ..probes import HostPort, run_bounded
from ..secrets import Secret
from . import audit_script
from .findings import DEPENDENT_CHECKS, Presented, findings
from .inventory import parse_inventory
from .transport import TRANSPORTS, AuditFailure, endpoint, require_transport, run_remote, scrub, stderr_text

COMMAND = "winrm audit"
DEFAULT_PORT = 5986


@dataclass(frozen=True)
class AuditOptions:
    """How to log in and how to judge (the command's options, converted)."""

    username: str | None = None
    password: Secret | None = None
    transport: str = "ntlm"
    ca_file: str | None = None
    port: int = DEFAULT_PORT
    timeout: float = 30.0
    cert_pem: str | None = None
    cert_key_pem: str | None = None
    warn_days: int = 30
    #: The certificate template a replacement must come from (name or OID); None: the bound one's.
    template: str | None = None

    def validate(self) -> None:
        """Refuse inconsistent options (:class:`InputError`), before any connection."""
        if self.template is not None and not self.template.strip():
            raise InputError("--template must not be empty (a template name or OID)")
        if self.transport not in TRANSPORTS:
            raise InputError(f"--transport {self.transport!r}: expected one of {', '.join(TRANSPORTS)}")
        if not (self.timeout >= 2 and math.isfinite(self.timeout)):
            raise InputError("--timeout must be at least 2 seconds")
        if self.warn_days < 0:
            raise InputError("--warn-days must be >= 0")
        if self.transport == "certificate":
            if not self.cert_pem or not self.cert_key_pem:
                raise InputError("--transport certificate needs --cert-pem and --cert-key-pem")
            for option, path in (("--cert-pem", self.cert_pem), ("--cert-key-pem", self.cert_key_pem)):
                if not Path(path).is_file():
                    raise InputError(f"{option} {path}: no such file")
        elif self.transport != "kerberos":  # Kerberos uses the ticket cache (kinit), no password
            if not self.username:
                raise InputError(f"--username is required with --transport {self.transport}")
            if not self.password:
                raise InputError("no password: set OPSBOOK_WINRM_PASSWORD, give --password-file, or run interactively")
        if self.ca_file is not None:
            if not Path(self.ca_file).is_file():
                raise InputError(f"--ca-file {self.ca_file}: no such file")
            from ..probes.tls import client_context

            client_context(self.ca_file, verify=True)  # InputError when it holds no PEM certificate
        require_transport(self.transport)


# ------------------------------------------------------------------ running it


PresentedFetcher = Callable[[HostPort, AuditOptions], Presented]


def fetch_presented(hp: HostPort, opts: AuditOptions) -> Presented:
    """The certificate *hp* presents (via the ``winrm check`` TLS probe), or why not."""
    from .check import presented_certificate

    try:
        info = presented_certificate(hp, timeout=min(opts.timeout, 10.0), ca_file=opts.ca_file)
    except InputError as exc:
        return str(exc)
    return info if info is not None else f"no TLS handshake with {hp}: cannot compare the presented certificate"


def audit_host(
    hp: HostPort,
    opts: AuditOptions,
    now: dt.datetime | None = None,
    presented_fetcher: PresentedFetcher = fetch_presented,
) -> list[CheckResult]:
    """All findings for one host (one result when it cannot be audited)."""
    start = time.perf_counter()
    who = opts.username or "client certificate"
    login_details: dict[str, Any] = {"transport": opts.transport, "username": opts.username, "endpoint": endpoint(hp)}
    try:
        stdout, stderr, code, seconds = run_remote(hp, opts)
        if code != 0:
            raise AuditFailure(
                Status.UNKNOWN,
                f"the audit script failed (exit {code}): "
                f"{scrub(stderr_text(stderr), opts.password) or 'no error text'}",
            )
        try:
            inv = parse_inventory(audit_script.parse_output(stdout))
        except audit_script.AuditOutputError as exc:
            raise AuditFailure(Status.UNKNOWN, str(exc)) from None
    except AuditFailure as failure:
        login_details.update(failure.details)
        login_details["not_checked"] = list(DEPENDENT_CHECKS)
        result = CheckResult(
            id="winrm.audit.login",
            target=str(hp),
            name="WinRM login",
            status=failure.status,
            summary=failure.summary,
            details=login_details,
        )
        result.duration_s = round(time.perf_counter() - start, 6)
        return [result]
    login_details["computer"] = inv.computer
    results = [
        CheckResult(
            id="winrm.audit.login",
            target=str(hp),
            name="WinRM login",
            status=Status.OK,
            summary=f"logged in as {who} ({opts.transport}) on {inv.computer or hp.host}; audit script ran in "
            f"{seconds:.1f}s",
            details=login_details,
            metrics={"audit_time": Metric(round(seconds, 3), "s")},
        )
    ]
    presented = presented_fetcher(hp, opts)
    results += findings(hp, inv, presented, port=hp.port, warn_days=opts.warn_days, now=now, template=opts.template)
    elapsed = round(time.perf_counter() - start, 6)
    for result in results:
        result.duration_s = elapsed
    return results


def parse_hosts(hosts: list[str], port: int, resolve: dict[str, str] | None = None) -> list[HostPort]:
    """``HOST[:PORT]`` strings to unique :class:`HostPort` (default port *port*), ``--resolve`` applied.

    Same rules as ``winrm check`` (:func:`.check.parse_targets`): a name no lookup could take
    is an :class:`InputError` (exit 3).
    """
    from .check import parse_targets

    return parse_targets(hosts, port, resolve or {})


def run_audit(hosts: list[HostPort], opts: AuditOptions, concurrency: int = 8) -> Report:
    """Audit every host, at most *concurrency* at once; one report."""
    if not hosts:
        raise InputError("no hosts to audit: give HOST[:PORT] arguments")
    if concurrency < 1:
        raise InputError("--concurrency must be >= 1")
    opts.validate()
    report = Report(command=COMMAND)
    now = dt.datetime.now(dt.UTC)

    def crashed(hp: HostPort, exc: BaseException) -> list[CheckResult]:
        return [
            CheckResult(
                id="winrm.audit.login",
                target=str(hp),
                name="WinRM login",
                status=Status.UNKNOWN,
                summary=scrub(f"internal error: {exc.__class__.__name__}: {exc}", opts.password),
            )
        ]

    for results in run_bounded(lambda hp: audit_host(hp, opts, now), hosts, concurrency, on_error=crashed):
        report.checks.extend(results)
    return report.finish()
