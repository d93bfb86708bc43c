"""``winrm audit``: log in over WinRM and compare the listeners with the machine store.

Per host: one WinRM session (pywinrm, certificate validation on) runs one PowerShell
script (:mod:`.audit_script`) that returns the listeners, the HTTP.sys binding and the
certificates of ``Cert:\\LocalMachine\\My`` as JSON; a separate TLS handshake fetches the
certificate the listener actually presents. :func:`findings` turns that into checks.
The password is handed to pywinrm only; it never reaches a result, a log or an error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..model import CheckResult, Metric, Report, Status
from ..probes import HostPort, run_bounded
from ..secrets import Secret
from . import audit_script
from .certinfo import SERVER_AUTH, CertInfo, wildcard_match

COMMAND = "winrm audit"
DEFAULT_PORT = 5986
TRANSPORTS = ("ntlm", "kerberos", "credssp", "certificate")
_EXTRAS = {"kerberos": "pywinrm[kerberos]", "credssp": "pywinrm[credssp]", "ntlm": "requests-ntlm"}
DEPENDENT_CHECKS = (
    "winrm.audit.http", "winrm.audit.listener", "winrm.audit.listener.thumbprint", "winrm.audit.renewal",
    "winrm.audit.hostname", "winrm.audit.binding", "winrm.audit.presented",
)


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
        _require_transport(self.transport)


def _require_transport(transport: str) -> None:
    """InputError when the library pywinrm needs for *transport* is not installed."""
    import winrm.transport as wt

    have = {"ntlm": wt.HAVE_NTLM, "kerberos": wt.HAVE_KERBEROS, "credssp": wt.HAVE_CREDSSP}.get(transport, True)
    if not have:
        extra = f"pip install 'opsbook[{transport}]'" if transport in ("kerberos", "credssp") else "pip install it"
        raise InputError(f"--transport {transport} needs the {_EXTRAS[transport]} package ({extra})")


# ------------------------------------------------------------------ inventory


@dataclass(frozen=True)
class StoreCert:
    """A certificate of ``Cert:\\LocalMachine\\My`` as the remote script reported it."""

    thumbprint: str
    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    ekus: tuple[str, ...]
    has_private_key: bool
    template: str = ""
    #: The trusted root its chain builds to (validity dates aside); '' when it builds to none.
    root: str = ""
    root_thumbprint: str = ""

    @property
    def cn(self) -> str | None:
        """The subject CN (first ``CN=`` of the Windows subject string)."""
        for part in _split_dn(self.subject):
            key, _, value = part.partition("=")
            if key.strip().upper() == "CN":
                return value.strip()
        return None

    @property
    def names(self) -> tuple[str, ...]:
        """DNS names: the DnsNameList, else the CN."""
        if self.dns_names:
            return self.dns_names
        return (self.cn,) if self.cn else ()

    def covers(self, name: str) -> bool:
        """Does this certificate carry *name* (SAN or CN, RFC 6125 wildcards)?"""
        return any(wildcard_match(n, name) for n in (*self.dns_names, *((self.cn,) if self.cn else ())))

    def server_auth(self) -> bool:
        """Server Authentication EKU present (or no EKU at all: any purpose)."""
        return not self.ekus or SERVER_AUTH in self.ekus or "2.5.29.37.0" in self.ekus

    def valid_at(self, now: dt.datetime) -> bool:
        """NotBefore <= now < NotAfter."""
        return (self.not_before is None or self.not_before <= now) and (
            self.not_after is not None and now < self.not_after
        )

    @property
    def template_name(self) -> str:
        """The certificate template's name ('' when unknown), see :func:`template_identity`."""
        return template_identity(self.template)[0]

    @property
    def template_oid(self) -> str:
        """The certificate template's OID ('' for a v1 template or when absent)."""
        return template_identity(self.template)[1]

    @property
    def template_label(self) -> str:
        """The template as a reader knows it: its name, else its OID ('' when none)."""
        return self.template_name or self.template_oid

    def from_template(self, wanted: str) -> bool:
        """Was this certificate issued from template *wanted* (a name or an OID, case-insensitive)?"""
        want = wanted.strip().lower()
        return bool(want) and want in (self.template_name.lower(), self.template_oid.lower())

    def same_template(self, other: StoreCert) -> bool:
        """Same template as *other*: the OIDs when both have one, else the names."""
        if self.template_oid and other.template_oid:
            return self.template_oid == other.template_oid
        return bool(self.template_name) and self.template_name.lower() == other.template_name.lower()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary for report details."""
        return {
            "thumbprint": self.thumbprint, "subject": self.subject, "issuer": self.issuer,
            "dns_names": list(self.dns_names),
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "eku": list(self.ekus), "has_private_key": self.has_private_key, "template": self.template,
            "root": self.root, "root_thumbprint": self.root_thumbprint,
            "template_name": self.template_name, "template_oid": self.template_oid,
        }


@dataclass(frozen=True)
class Listener:
    """One ``WSMan:\\localhost\\Listener`` entry."""

    name: str
    address: str
    transport: str
    port: int | None
    hostname: str
    thumbprint: str
    enabled: bool
    source: str = ""

    @property
    def label(self) -> str:
        """``HTTPS *:5986`` style label."""
        return f"{self.transport} {self.address}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return {
            "name": self.name, "address": self.address, "transport": self.transport, "port": self.port,
            "hostname": self.hostname, "certificate_thumbprint": self.thumbprint, "enabled": self.enabled,
            "source": self.source,
        }


@dataclass
class Inventory:
    """What the remote script reported."""

    computer: str = ""
    listeners: list[Listener] = field(default_factory=list)
    ssl_bindings: dict[str, str] = field(default_factory=dict)
    certificates: list[StoreCert] = field(default_factory=list)
    #: ``WSMan:\localhost\Service\Auth`` (Basic, Kerberos, Negotiate, Certificate, CredSSP...): on/off.
    service_auth: dict[str, bool] = field(default_factory=dict)

    def cert(self, thumbprint: str) -> StoreCert | None:
        """The store certificate with *thumbprint* (case/space-insensitive), or None."""
        want = normalise_thumbprint(thumbprint)
        return next((c for c in self.certificates if normalise_thumbprint(c.thumbprint) == want), None)


_TEMPLATE_OID = re.compile(r"1\.3\.6\.1\.4\.1\.311\.21\.8(?:\.\d+)+")
_TEMPLATE_NAME = re.compile(r"^[^=,]+=([^(,]+)\(1\.3\.6\.1\.4\.1\.311\.21\.8[.\d]*\)")


def template_identity(text: str) -> tuple[str, str]:
    """(name, OID) of a certificate template from what ``Extension.Format($false)`` printed.

    Certificate Template Information (1.3.6.1.4.1.311.21.7, v2+ templates) reads
    ``Template=WinRM HTTPS(1.3.6.1.4.1.311.21.8.…), Major Version Number=100, …`` (only the OID
    when Windows cannot resolve the name; the labels are translated on non-English systems);
    the v1 Certificate Template Name (1.3.6.1.4.1.311.20.2) is the bare name (``Machine`` for
    the Computer template). Either part is '' when unknown.
    """
    text = (text or "").strip()
    if not text:
        return "", ""
    oid = _TEMPLATE_OID.search(text)
    if oid is None:
        return ("" if "=" in text else text), ""
    name = _TEMPLATE_NAME.match(text)
    return (name.group(1).strip() if name else ""), oid.group(0)


def normalise_thumbprint(value: str) -> str:
    """Upper-case hex without spaces (and without the invisible U+200E some copies carry)."""
    return "".join(ch for ch in value if ch.isalnum()).upper()


def _split_dn(dn: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in dn:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def _get(mapping: dict[str, Any], key: str, default: Any = "") -> Any:
    """Case-insensitive lookup (PowerShell property names)."""
    for k, v in mapping.items():
        if k.lower() == key.lower():
            return v
    return default


def _as_list(value: Any) -> list[Any]:
    """PowerShell's ConvertTo-Json turns one-element arrays into scalars, $null into null."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _date(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


def parse_inventory(doc: dict[str, Any]) -> Inventory:
    """The remote script's JSON as an :class:`Inventory` (tolerant of PowerShell's JSON quirks)."""
    inv = Inventory(computer=str(_get(doc, "Computer") or ""))
    for raw in _as_list(_get(doc, "Listeners", [])):
        if not isinstance(raw, dict):
            continue
        port_text = str(_get(raw, "Port") or "").strip()
        inv.listeners.append(Listener(
            name=str(_get(raw, "Name") or ""),
            address=str(_get(raw, "Address") or ""),
            transport=str(_get(raw, "Transport") or "").upper(),
            port=int(port_text) if port_text.isdigit() else None,
            hostname=str(_get(raw, "Hostname") or ""),
            thumbprint=normalise_thumbprint(str(_get(raw, "CertificateThumbprint") or "")),
            enabled=_bool(_get(raw, "Enabled", True)),
            source=str(_get(raw, "Source") or ""),
        ))
    auth = _get(doc, "ServiceAuth", None)
    if isinstance(auth, dict):
        inv.service_auth = {str(k): _bool(v) for k, v in auth.items()
                            if str(k).lower() not in ("cbthardeninglevel",)}
    for raw in _as_list(_get(doc, "SslCert", [])):
        if isinstance(raw, dict) and _get(raw, "Hash"):
            inv.ssl_bindings[str(_get(raw, "IpPort"))] = normalise_thumbprint(str(_get(raw, "Hash")))
    for raw in _as_list(_get(doc, "Certificates", [])):
        if not isinstance(raw, dict) or not _get(raw, "Thumbprint"):
            continue
        inv.certificates.append(StoreCert(
            thumbprint=normalise_thumbprint(str(_get(raw, "Thumbprint"))),
            subject=str(_get(raw, "Subject") or ""),
            issuer=str(_get(raw, "Issuer") or ""),
            dns_names=tuple(str(n) for n in _as_list(_get(raw, "DnsNameList", [])) if n),
            not_before=_date(_get(raw, "NotBefore")),
            not_after=_date(_get(raw, "NotAfter")),
            ekus=tuple(str(e) for e in _as_list(_get(raw, "EnhancedKeyUsageList", [])) if e),
            has_private_key=_bool(_get(raw, "HasPrivateKey", False)),
            template=str(_get(raw, "Template") or ""),
            root=str(_get(raw, "Root") or ""),
            root_thumbprint=normalise_thumbprint(str(_get(raw, "RootThumbprint") or "")),
        ))
    return inv


# ------------------------------------------------------------------ findings

#: The presented certificate: a CertInfo, None (no handshake), or a string (why not probed).
Presented = CertInfo | str | None


def _date_text(when: dt.datetime | None) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if when else "unknown"


def replacement(
    inv: Inventory, bound: StoreCert | None, hostname: str, now: dt.datetime, template: str | None = None,
) -> StoreCert | None:
    """The certificate the listener should use instead, chosen as the binding script does.

    Same FQDN (the listener Hostname, else a name of the bound certificate), a chain to the
    same trusted root as the bound certificate (the binding script's ``-RootCA`` test: a
    renewal may come from another issuing CA of that root; only when the bound certificate's
    chain builds to no root is the issuer compared instead), Server Authentication, private
    key, valid now, and a later NotAfter than the bound one; the latest NotAfter wins (ties:
    NotBefore, thumbprint). The certificate template must be *template* (name or OID) when
    given, else the bound certificate's (when known): a newer Computer-template certificate
    (Client + Server Authentication, CN = FQDN) is not a renewal of the WinRM one.
    """
    names = [hostname] if hostname else list(bound.names if bound else ())
    candidates = []
    for cert in inv.certificates:
        if bound is not None and cert.thumbprint == bound.thumbprint:
            continue
        if bound is not None and not _same_root(cert, bound):
            continue
        if template is not None:
            if not cert.from_template(template):
                continue
        elif bound is not None and bound.template_label and not cert.same_template(bound):
            continue
        if not (cert.has_private_key and cert.server_auth() and cert.valid_at(now)):
            continue
        if not any(cert.covers(n) for n in names):
            continue
        if bound is not None and bound.not_after is not None and cert.not_after is not None \
                and cert.not_after <= bound.not_after:
            continue
        candidates.append(cert)
    if not candidates:
        return None
    far = dt.datetime.min.replace(tzinfo=dt.UTC)
    candidates.sort(key=lambda c: (c.not_after or far, c.not_before or far), reverse=True)
    best = candidates[0]
    ties = [c for c in candidates if (c.not_after, c.not_before) == (best.not_after, best.not_before)]
    return min(ties, key=lambda c: c.thumbprint)


def _same_root(cert: StoreCert, bound: StoreCert) -> bool:
    """Does *cert* chain to the bound certificate's root (issuer compared when that root is unknown)?"""
    if bound.root_thumbprint:
        return cert.root_thumbprint == bound.root_thumbprint
    return cert.issuer == bound.issuer


def findings(
    hp: HostPort,
    inv: Inventory,
    presented: Presented,
    *,
    port: int,
    warn_days: int = 30,
    now: dt.datetime | None = None,
    template: str | None = None,
) -> list[CheckResult]:
    """Every finding for one host from its inventory (and the certificate it presents).

    *template*: the certificate template a replacement must come from (default: the bound one's).
    """
    now = now or dt.datetime.now(dt.UTC)
    target = str(hp)
    out: list[CheckResult] = []

    def add(cid: str, name: str, status: Status, summary: str, tgt: str = target, **kw: Any) -> None:
        out.append(CheckResult(id=cid, target=tgt, name=name, status=status, summary=summary, **kw))

    http = [lst for lst in inv.listeners if lst.transport == "HTTP" and lst.enabled]
    if http:
        where = ", ".join(lst.label for lst in http)
        add("winrm.audit.http", "HTTP listener", Status.WARNING,
            f"HTTP listener still enabled ({where}): remove it once HTTPS works "
            "(Remove-Item WSMan:\\localhost\\Listener\\<name> -Recurse)",
            details={"listeners": [lst.to_dict() for lst in http]})
    else:
        add("winrm.audit.http", "HTTP listener", Status.OK, "no HTTP listener enabled")

    if inv.service_auth:
        on = [k for k, v in inv.service_auth.items() if v]
        weak = [k for k in ("Basic", "CredSSP") if any(a.lower() == k.lower() for a in on)]
        adetails = {"service_auth": dict(inv.service_auth)}
        if weak:
            from .check import AUTH_FIX

            add("winrm.audit.auth", "service authentication", Status.WARNING,
                f"{' and '.join(weak)} authentication enabled on the WinRM service, {AUTH_FIX}", details=adetails)
        else:
            add("winrm.audit.auth", "service authentication", Status.OK,
                f"enabled: {', '.join(on) or 'none'} (no Basic, no CredSSP)", details=adetails)

    https = [lst for lst in inv.listeners if lst.transport == "HTTPS" and lst.port == port]
    if not https:
        seen = ", ".join(lst.label for lst in inv.listeners) or "none"
        add("winrm.audit.listener", "HTTPS listener", Status.CRITICAL,
            f"no HTTPS listener on port {port} (listeners: {seen})",
            details={"listeners": [lst.to_dict() for lst in inv.listeners],
                     "not_checked": list(DEPENDENT_CHECKS[2:])})
        return out
    for index, listener in enumerate(https):
        tgt = target if index == 0 else f"{target} ({listener.address})"
        out += _listener_findings(hp, tgt, inv, listener, presented, port=port, warn_days=warn_days, now=now,
                                  add_first=index == 0, template=template)
    return out


def _listener_findings(
    hp: HostPort, tgt: str, inv: Inventory, listener: Listener, presented: Presented,
    *, port: int, warn_days: int, now: dt.datetime, add_first: bool, template: str | None = None,
) -> list[CheckResult]:
    out: list[CheckResult] = []

    def add(cid: str, name: str, status: Status, summary: str, **kw: Any) -> None:
        out.append(CheckResult(id=cid, target=tgt, name=name, status=status, summary=summary, **kw))

    ldetails = listener.to_dict()
    state = "enabled" if listener.enabled else "DISABLED"
    add("winrm.audit.listener", "HTTPS listener",
        Status.OK if listener.enabled else Status.CRITICAL,
        f"HTTPS listener {listener.address}:{port} {state}, Hostname {listener.hostname or '(empty)'}, "
        f"certificate {listener.thumbprint or '(none)'}" + (f", source {listener.source}" if listener.source else ""),
        details=ldetails)

    bound = inv.cert(listener.thumbprint) if listener.thumbprint else None
    better = replacement(inv, bound, listener.hostname, now, template)
    wanted = template if template is not None else (bound.template_label if bound is not None else "")
    of_template = f" from template {wanted}" if wanted else ""
    fix = (f"; rebind to {better.thumbprint} (valid until {_date_text(better.not_after)}) with the script "
           "from 'opsbook winrm script'") if better else ""

    # --- the thumbprint is in the store, with its private key
    tdetails: dict[str, Any] = {"thumbprint": listener.thumbprint,
                                "replacement": better.to_dict() if better else None}
    if not listener.thumbprint:
        add("winrm.audit.listener.thumbprint", "listener certificate in store", Status.CRITICAL,
            "the HTTPS listener has no CertificateThumbprint" + fix, details=tdetails)
    elif bound is None:
        add("winrm.audit.listener.thumbprint", "listener certificate in store", Status.CRITICAL,
            f"listener thumbprint {listener.thumbprint} is not in Cert:\\LocalMachine\\My "
            "(deleted or archived after renewal): the listener breaks at the next restart" + fix,
            details=tdetails)
    elif not bound.has_private_key:
        tdetails["certificate"] = bound.to_dict()
        add("winrm.audit.listener.thumbprint", "listener certificate in store", Status.CRITICAL,
            f"certificate {bound.thumbprint} is in the store but has no private key" + fix, details=tdetails)
    else:
        tdetails["certificate"] = bound.to_dict()
        add("winrm.audit.listener.thumbprint", "listener certificate in store", Status.OK,
            f"certificate {bound.thumbprint} ({bound.subject}) is in the store with its private key",
            details=tdetails)

    # --- renewed but not rebound
    if bound is not None and bound.not_after is not None:
        days = (bound.not_after - now).total_seconds() / 86400
        left = math.floor(days)
        outage = _date_text(bound.not_after)
        rdetails: dict[str, Any] = {"bound": bound.to_dict(), "replacement": better.to_dict() if better else None,
                                    "outage_starts": bound.not_after.isoformat(), "template": wanted or None}
        metrics = {"days_left": Metric(left, "", warn=float(warn_days), crit=0.0, low=True)}
        if days <= 0:
            status = Status.CRITICAL
            summary = f"listener serves certificate {bound.thumbprint}, expired since {outage}"
            summary += " although a renewed one is in the store (renewed but not rebound)" + fix if better \
                else f": no renewed certificate{of_template} in the store, check auto-enrolment (certutil -pulse)"
        elif better is not None:
            status = Status.CRITICAL if days < warn_days else Status.WARNING
            summary = (f"renewed but not rebound: listener still uses {bound.thumbprint}; outage starts {outage} "
                       f"({left} days) when it expires{fix}")
        elif days < warn_days:
            status = Status.WARNING
            summary = (f"listener certificate {bound.thumbprint} expires {outage} ({left} days) and no renewed "
                       f"certificate{of_template} is in the store: check auto-enrolment")
        else:
            status = Status.OK
            summary = f"listener certificate valid until {outage} ({left} days); no newer certificate to bind"
        add("winrm.audit.renewal", "renewal rebound", status, summary, details=rdetails, metrics=metrics)

    # --- Hostname vs the certificate
    if bound is not None:
        names = list(bound.names)
        hdetails = {"hostname": listener.hostname, "certificate_names": names, "host": hp.host}
        if not listener.hostname:
            add("winrm.audit.hostname", "listener Hostname", Status.WARNING,
                "the HTTPS listener has an empty Hostname; set it to the FQDN on the certificate", details=hdetails)
        elif bound.covers(listener.hostname):
            add("winrm.audit.hostname", "listener Hostname", Status.OK,
                f"Hostname {listener.hostname} matches the certificate", details=hdetails)
        else:
            add("winrm.audit.hostname", "listener Hostname", Status.WARNING,
                f"Hostname {listener.hostname} is not on the certificate ({', '.join(names) or 'no names'}): "
                "clients using that name fail validation; recreate the listener", details=hdetails)

    # --- HTTP.sys binding
    if listener.address == "*" and inv.ssl_bindings:
        bdetails = {"bindings": dict(inv.ssl_bindings), "thumbprint": listener.thumbprint}
        wrong = {k: v for k, v in inv.ssl_bindings.items() if v != listener.thumbprint}
        if wrong:
            what = ", ".join(f"{k} -> {v}" for k, v in wrong.items())
            add("winrm.audit.binding", "HTTP.sys binding", Status.CRITICAL,
                f"HTTP.sys serves another certificate than the listener's {listener.thumbprint}: {what} "
                "(stale netsh http sslcert binding)", details=bdetails)
        else:
            add("winrm.audit.binding", "HTTP.sys binding", Status.OK,
                f"HTTP.sys binding ({', '.join(inv.ssl_bindings)}) uses the listener's certificate",
                details=bdetails)

    # --- what clients actually get
    if add_first:
        if isinstance(presented, CertInfo):
            pdetails = {"presented": presented.to_dict(), "listener_thumbprint": listener.thumbprint}
            if normalise_thumbprint(presented.thumbprint) == listener.thumbprint:
                add("winrm.audit.presented", "presented certificate", Status.OK,
                    f"the listener presents its configured certificate {presented.thumbprint}", details=pdetails)
            else:
                add("winrm.audit.presented", "presented certificate", Status.CRITICAL,
                    f"the listener presents {presented.thumbprint} ({presented.subject}, valid until "
                    f"{_date_text(presented.not_after)}) but is configured with {listener.thumbprint or '(none)'}",
                    details=pdetails)
        else:
            add("winrm.audit.presented", "presented certificate", Status.UNKNOWN,
                presented or f"no TLS handshake with {hp} to fetch the presented certificate")
    return out


# ------------------------------------------------------------------ running it


class AuditFailure(Exception):
    """Why a host could not be audited: a status and a summary safe to show."""

    def __init__(self, status: Status, summary: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.details = details or {}


def endpoint(hp: HostPort) -> str:
    """The WS-Management URL of *hp* (HTTPS only)."""
    host = f"[{hp.connect_host}]" if ":" in hp.connect_host else hp.connect_host
    return f"https://{host}:{hp.port}/wsman"


def _timeouts(timeout: float) -> tuple[int, int]:
    """(read_timeout_sec, operation_timeout_sec) for pywinrm: integers, read > operation >= 1."""
    read = max(2, math.ceil(timeout))
    operation = max(1, min(read - 1, math.floor(read * 2 / 3)))
    return read, operation


def _scrub(text: str, secret: Secret | None) -> str:
    """*text* from a library (an exception message) with the secret masked, should it be there."""
    value = secret.reveal() if secret else ""
    return text.replace(value, "***") if len(value) >= 4 else text


def _classify(exc: BaseException, hp: HostPort, opts: AuditOptions) -> AuditFailure:
    """A pywinrm/requests exception as an :class:`AuditFailure` (no secrets in it)."""
    import requests
    from winrm import exceptions as wx

    def _short(error: BaseException) -> str:
        return _scrub(_short_text(error), opts.password)

    who = opts.username or "client certificate"
    if isinstance(exc, wx.InvalidCredentialsError):
        return AuditFailure(Status.CRITICAL,
                            f"login refused (HTTP 401) for {who} with {opts.transport}: wrong password, locked or "
                            "expired account, or not a member of Administrators / Remote Management Users",
                            {"http_status": 401, "transport": opts.transport})
    if isinstance(exc, requests.exceptions.SSLError):
        client = " or our client certificate was refused" if opts.transport == "certificate" else ""
        return AuditFailure(Status.CRITICAL,
                            f"TLS certificate of {hp} not trusted or wrong name (use --ca-file for a private CA)"
                            f"{client}: {_short(exc)}", {"error": "tls"})
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return AuditFailure(Status.CRITICAL, f"no answer from {hp} within {opts.timeout:g}s (filtered or down)")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return AuditFailure(Status.UNKNOWN, f"{hp} stopped answering (read timeout {opts.timeout:g}s)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return AuditFailure(Status.CRITICAL, f"cannot connect to {hp}: {_short(exc)}")
    if isinstance(exc, wx.WSManFaultError):
        return AuditFailure(Status.UNKNOWN, _scrub(f"WS-Management fault from {hp}: {exc.reason}", opts.password),
                            {"wsman_fault_code": exc.wsman_fault_code})
    if isinstance(exc, wx.WinRMTransportError):
        return AuditFailure(Status.UNKNOWN, f"HTTP {exc.code} from {hp}", {"http_status": exc.code})
    if isinstance(exc, wx.WinRMError):
        return AuditFailure(Status.UNKNOWN, _scrub(f"WinRM error: {exc}", opts.password))
    return AuditFailure(Status.UNKNOWN, _scrub(f"internal error: {exc.__class__.__name__}: {exc}", opts.password))


def _short_text(exc: BaseException) -> str:
    text = str(exc)
    resolve = re.search(r"Failed to resolve '([^']*)' \(\[Errno -?\d+\] ([^)]*)\)", text)
    if resolve:
        return f"cannot resolve {resolve.group(1)}: {resolve.group(2)}"
    for marker in ("certificate verify failed: ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)
    return " ".join(text.split())[:240].rstrip("')\" ")


def run_remote(hp: HostPort, opts: AuditOptions) -> tuple[bytes, bytes, int, float]:
    """Run the audit script on *hp*: (stdout, stderr, exit code, seconds). Raises AuditFailure."""
    from winrm.exceptions import WinRMOperationTimeoutError
    from winrm.protocol import Protocol

    read, operation = _timeouts(opts.timeout)
    password = opts.password.reveal() if opts.password else None
    pinned = _pinned_name(hp)
    start = time.monotonic()
    try:
        proto = Protocol(
            endpoint(hp),
            transport=opts.transport,  # type: ignore[arg-type]
            username=opts.username if opts.transport != "certificate" else None,  # kerberos: the principal
            password=password if opts.transport != "certificate" else None,
            server_cert_validation="validate",
            ca_trust_path=opts.ca_file if opts.ca_file else "legacy_requests",
            cert_pem=opts.cert_pem,
            cert_key_pem=opts.cert_key_pem,
            read_timeout_sec=read,
            operation_timeout_sec=operation,
            proxy=None,
            kerberos_hostname_override=pinned,  # the SPN is HTTP/<name>, not HTTP/<address>
        )
        if pinned:
            _pin_name(proto.transport.build_session(), pinned, hp.port)
    except Exception as exc:
        raise AuditFailure(Status.UNKNOWN, _scrub(f"cannot set up WinRM: {exc}", opts.password)) from None
    command, arguments = audit_script.command_line(hp.port)
    shell_id = command_id = None
    try:
        shell_id = proto.open_shell(codepage=65001, noprofile=True)
        command_id = proto.run_command(shell_id, command, arguments)
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        deadline = start + opts.timeout
        while True:
            try:
                out, err, code, done = proto.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                out, err, code, done = b"", b"", -1, False
            stdout.append(out)
            stderr.append(err)
            if done:
                break
            if time.monotonic() > deadline:
                raise AuditFailure(Status.UNKNOWN, f"the audit script did not finish within {opts.timeout:g}s")
        return b"".join(stdout), b"".join(stderr), code, time.monotonic() - start
    except AuditFailure:
        raise
    except Exception as exc:
        raise _classify(exc, hp, opts) from None
    finally:
        if shell_id is not None:
            with contextlib.suppress(Exception):
                if command_id is not None:
                    proto.cleanup_command(shell_id, command_id)
            with contextlib.suppress(Exception):
                proto.close_shell(shell_id)
        with contextlib.suppress(Exception):
            proto.transport.close_session()


def _pinned_name(hp: HostPort) -> str | None:
    """With ``--resolve`` (we connect to an address): the name TLS must verify and Kerberos must use."""
    if not hp.address:
        return None
    from .check import wire_name

    return wire_name(hp.host).rstrip(".")


def _pin_name(session: Any, name: str, port: int) -> None:
    """Connect to the URL's address but send SNI, check the certificate and send ``Host:`` for *name*."""
    from requests.adapters import HTTPAdapter

    class PinnedName(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["server_hostname"] = name
            kwargs["assert_hostname"] = name
            super().init_poolmanager(*args, **kwargs)

    session.mount("https://", PinnedName())
    session.headers["Host"] = f"{name}:{port}"


def _stderr_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    if text.startswith("#< CLIXML"):
        parts = re.findall(r"<S S=\"Error\">(.*?)</S>", text, flags=re.S)
        text = "".join(parts).replace("_x000D__x000A_", " ")
    return " ".join(text.split())[:300]


PresentedFetcher = Callable[[HostPort, AuditOptions], Presented]


def fetch_presented(hp: HostPort, opts: AuditOptions) -> Presented:
    """The certificate *hp* presents (via the ``winrm check`` TLS probe), or why not."""
    from .check import presented_certificate

    try:
        info = presented_certificate(hp, timeout=min(opts.timeout, 10.0), ca_file=opts.ca_file)
    except InputError as exc:
        return str(exc)
    return info if info is not None else f"no TLS handshake with {hp}: cannot compare the presented certificate"


def audit_host(hp: HostPort, opts: AuditOptions, now: dt.datetime | None = None,
               presented_fetcher: PresentedFetcher = fetch_presented) -> list[CheckResult]:
    """All findings for one host (one result when it cannot be audited)."""
    start = time.perf_counter()
    who = opts.username or "client certificate"
    login_details: dict[str, Any] = {"transport": opts.transport, "username": opts.username,
                                     "endpoint": endpoint(hp)}
    try:
        stdout, stderr, code, seconds = run_remote(hp, opts)
        if code != 0:
            raise AuditFailure(Status.UNKNOWN, f"the audit script failed (exit {code}): "
                               f"{_scrub(_stderr_text(stderr), opts.password) or 'no error text'}")
        try:
            inv = parse_inventory(audit_script.parse_output(stdout))
        except audit_script.AuditOutputError as exc:
            raise AuditFailure(Status.UNKNOWN, str(exc)) from None
    except AuditFailure as failure:
        login_details.update(failure.details)
        login_details["not_checked"] = list(DEPENDENT_CHECKS)
        result = CheckResult(id="winrm.audit.login", target=str(hp), name="WinRM login", status=failure.status,
                             summary=failure.summary, details=login_details)
        result.duration_s = round(time.perf_counter() - start, 6)
        return [result]
    login_details["computer"] = inv.computer
    results = [CheckResult(
        id="winrm.audit.login", target=str(hp), name="WinRM login", status=Status.OK,
        summary=f"logged in as {who} ({opts.transport}) on {inv.computer or hp.host}; audit script ran in "
                f"{seconds:.1f}s", details=login_details, metrics={"audit_time": Metric(round(seconds, 3), "s")},
    )]
    presented = presented_fetcher(hp, opts)
    results += findings(hp, inv, presented, port=hp.port, warn_days=opts.warn_days, now=now,
                        template=opts.template)
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
        return [CheckResult(id="winrm.audit.login", target=str(hp), name="WinRM login", status=Status.UNKNOWN,
                            summary=_scrub(f"internal error: {exc.__class__.__name__}: {exc}", opts.password))]

    for results in run_bounded(lambda hp: audit_host(hp, opts, now), hosts, concurrency, on_error=crashed):
        report.checks.extend(results)
    return report.finish()
