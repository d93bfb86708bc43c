"""What the ``winrm audit`` script reports, parsed: listeners, store certificates, templates.

:func:`parse_inventory` turns the remote script's JSON (:mod:`.audit_script`) into an
:class:`Inventory`, tolerant of PowerShell's JSON quirks (one-element arrays as scalars,
case-insensitive property names).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from .certinfo import SERVER_AUTH, wildcard_match


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
            "thumbprint": self.thumbprint,
            "subject": self.subject,
            "issuer": self.issuer,
            "dns_names": list(self.dns_names),
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "eku": list(self.ekus),
            "has_private_key": self.has_private_key,
            "template": self.template,
            "root": self.root,
            "root_thumbprint": self.root_thumbprint,
            "template_name": self.template_name,
            "template_oid": self.template_oid,
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
            "name": self.name,
            "address": self.address,
            "transport": self.transport,
            "port": self.port,
            "hostname": self.hostname,
            "certificate_thumbprint": self.thumbprint,
            "enabled": self.enabled,
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
        inv.listeners.append(
            Listener(
                name=str(_get(raw, "Name") or ""),
                address=str(_get(raw, "Address") or ""),
                transport=str(_get(raw, "Transport") or "").upper(),
                port=int(port_text) if port_text.isdigit() else None,
                hostname=str(_get(raw, "Hostname") or ""),
                thumbprint=normalise_thumbprint(str(_get(raw, "CertificateThumbprint") or "")),
                enabled=_bool(_get(raw, "Enabled", True)),
                source=str(_get(raw, "Source") or ""),
            )
        )
    auth = _get(doc, "ServiceAuth", None)
    if isinstance(auth, dict):
        inv.service_auth = {str(k): _bool(v) for k, v in auth.items() if str(k).lower() not in ("cbthardeninglevel",)}
    for raw in _as_list(_get(doc, "SslCert", [])):
        if isinstance(raw, dict) and _get(raw, "Hash"):
            inv.ssl_bindings[str(_get(raw, "IpPort"))] = normalise_thumbprint(str(_get(raw, "Hash")))
    for raw in _as_list(_get(doc, "Certificates", [])):
        if not isinstance(raw, dict) or not _get(raw, "Thumbprint"):
            continue
        inv.certificates.append(
            StoreCert(
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
            )
        )
    return inv
