"""What a WinRM listener's certificate says: names, issuer, validity, EKU, key, signature.

``cryptography`` is imported lazily (inside :func:`parse_certificate`), never at import time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
ANY_EKU = "2.5.29.37.0"
EKU_NAMES = {
    SERVER_AUTH: "Server Authentication",
    "1.3.6.1.5.5.7.3.2": "Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "Secure Email",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.4.1.311.10.3.12": "Document Signing",
    "1.3.6.1.4.1.311.20.2.2": "Smart Card Logon",
    ANY_EKU: "Any Purpose",
}


@dataclass(frozen=True)
class CertInfo:
    """The fields of a certificate that matter for a WinRM HTTPS listener.

    ``thumbprint`` is the SHA-1 of the DER certificate in uppercase hex, as Windows
    (``Cert:\\``, ``winrm enumerate``) shows it. ``eku`` is ``None`` when the
    certificate has no EKU extension (any purpose).
    """

    thumbprint: str
    sha256: str
    subject: str
    subject_cn: str | None
    issuer: str
    issuer_cn: str | None
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    eku: tuple[str, ...] | None = None
    key_type: str = "unknown"
    key_size: int | None = None
    signature_hash: str | None = None
    self_issued: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def eku_names(self) -> list[str]:
        """The EKUs by name (OIDs left as they are when unknown)."""
        return [EKU_NAMES.get(oid, oid) for oid in self.eku or ()]

    def days_left(self, now: dt.datetime | None = None) -> float:
        """Days (fractional) until NotAfter; negative once expired."""
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (for report details)."""
        return {
            "thumbprint": self.thumbprint,
            "sha256": self.sha256,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "eku": self.eku_names if self.eku is not None else None,
            "key": f"{self.key_type} {self.key_size}" if self.key_size else self.key_type,
            "signature_hash": self.signature_hash,
        }


def thumbprint(der: bytes) -> str:
    """The SHA-1 thumbprint of a DER certificate, uppercase hex (Windows style)."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def parse_certificate(der: bytes) -> CertInfo:
    """Parse a DER certificate into :class:`CertInfo` (raises ValueError when it is not one).

    The last few hundred certificates are remembered: an exporter probes the same listeners
    scrape after scrape, and parsing is most of the CPU a probe spends outside OpenSSL.
    """
    return _parse(bytes(der))


@functools.lru_cache(maxsize=512)
def _parse(der: bytes) -> CertInfo:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)

    def cn(name: x509.Name) -> str | None:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else None

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    eku: tuple[str, ...] | None = None
    with contextlib.suppress(x509.ExtensionNotFound):
        eku = tuple(o.dotted_string for o in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    key = cert.public_key()
    key_type, key_size = "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        key_type, key_size = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, key_size = f"EC {key.curve.name}", key.key_size
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, key_size = "DSA", key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key_type = "EdDSA"
    try:
        algorithm = cert.signature_hash_algorithm
        sig_hash = algorithm.name if algorithm is not None else None
    except Exception:  # an algorithm cryptography does not know (MD2, ...)
        sig_hash = cert.signature_algorithm_oid._name if hasattr(cert.signature_algorithm_oid, "_name") else None
    return CertInfo(
        thumbprint=thumbprint(der),
        sha256=hashlib.sha256(der).hexdigest().upper(),
        subject=cert.subject.rfc4514_string(),
        subject_cn=cn(cert.subject),
        issuer=cert.issuer.rfc4514_string(),
        issuer_cn=cn(cert.issuer),
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=dns,
        ip_addresses=ips,
        eku=eku,
        key_type=key_type,
        key_size=key_size,
        signature_hash=sig_hash,
        self_issued=cert.subject == cert.issuer,
    )


def wildcard_match(pattern: str, host: str) -> bool:
    """RFC 6125 6.4.3 matching of a DNS-ID *pattern* against *host* (case-insensitive).

    Only a ``*`` that is the whole left-most label matches, and it matches exactly one
    label (``*.corp.test`` matches ``a.corp.test``, not ``corp.test`` nor ``a.b.corp.test``).
    Partial wildcards (``w*.corp.test``, ``xn--*.corp.test``), wildcards elsewhere and wildcards
    over a public-looking suffix (``*.test``) never match. A whole-label ``*`` does match an IDN
    A-label (``xn--mnchen-3ya.corp.test``), as OpenSSL, Schannel and browsers do.
    """
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if not pattern or not host:
        return False
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    head, _, host_rest = host.partition(".")
    if not head:
        return False
    return host_rest == rest


def name_matches(info: CertInfo, host: str) -> tuple[bool, str]:
    """Does *info* cover *host*? Returns (match, how) — ``how`` names the matching identifier.

    IP addresses match IP SANs only. DNS names match the DNS SANs; the subject CN is used
    only when the certificate has no DNS SAN at all (RFC 6125 6.4.4).
    """
    target = host.strip("[]")
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        ip = None
    if ip is not None:
        for addr in info.ip_addresses:
            if ipaddress.ip_address(addr) == ip:
                return True, f"IP SAN {addr}"
        return False, ""
    for name in info.dns_names:
        if wildcard_match(name, target):
            return True, f"SAN {name}"
    if not info.dns_names and info.subject_cn and wildcard_match(info.subject_cn, target):
        return True, f"CN {info.subject_cn} (no SAN)"
    return False, ""
