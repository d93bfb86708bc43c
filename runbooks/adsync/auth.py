"""Microsoft Graph credentials: the client secret or certificate, and the MSAL token.

``adsync.graph.token`` comes from here: MSAL ``acquire_token_for_client`` with the Graph
``.default`` scope, MSAL's error codes turned into hints, a client certificate near its expiry
as a WARNING; :func:`secret_file_check` warns about a client secret file others can read. The
secret and the token go to MSAL and into the scrubber, nowhere else.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import InputError
from ..model import CheckResult, Metric, Status, Timer
from ..secrets import Scrubber
from .checks import _result
from .http import _first_line, _net_error

if TYPE_CHECKING:  # pragma: no cover - typing only
    import requests

    from .graph import GraphOptions

#: Authority hosts MSAL knows itself (public and national clouds); any other host is a
#: private authority for which MSAL must never call Microsoft's instance discovery.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
    }
)
#: A client certificate closer to its expiry than this makes the token check a WARNING.
CERT_WARN_DAYS = 30.0


def secret_file_check(path: Path) -> CheckResult | None:
    """A WARNING when the client secret file can be read by its group or by others (None: it is private)."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return CheckResult(
        "adsync.graph.secret_file",
        str(path),
        "client secret file permissions",
        Status.WARNING,
        f"the client secret file {path} is readable by {'group and others' if mode & stat.S_IRWXO else 'its group'} "
        f"(mode {stat.S_IMODE(mode):04o}): anyone who reads it can act as the app — chmod 600 {path}",
        details={"path": str(path), "mode": f"{stat.S_IMODE(mode):04o}"},
    )


@dataclass
class _CertCredential:
    private_key_pem: str
    thumbprint_sha1: str
    subject: str
    not_after: datetime


def load_client_certificate(path: Path) -> _CertCredential:
    """Private key and matching certificate from one PEM file, with the SHA-1 thumbprint.

    The thumbprint is what Entra ID shows for the uploaded certificate (``x5t`` header).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read --client-cert {path}: {exc.strerror or exc.__class__.__name__}") from None
    key_match = re.search(rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----", data, re.S)
    if not key_match:
        raise InputError(f"--client-cert {path} holds no private key: the PEM needs the key and the certificate")
    if key_match.group(1) == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in key_match.group(0):
        raise InputError(f"the private key in --client-cert {path} is encrypted: store it unencrypted, mode 0600")
    try:
        key = serialization.load_pem_private_key(key_match.group(0), password=None)
    except (ValueError, TypeError):
        raise InputError(f"cannot parse the private key in --client-cert {path}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise InputError(f"--client-cert {path} holds no certificate: the PEM needs the key and the certificate")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pub = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    cert = next((c for c in certs if c.public_key().public_bytes(serialization.Encoding.DER, spki) == pub), None)
    if cert is None:
        raise InputError(f"no certificate in --client-cert {path} matches its private key")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return _CertCredential(
        private_key_pem=pem,
        thumbprint_sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's x5t
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )


def _token_check(tenant: str, status: Status, summary: str, **kw: Any) -> CheckResult:
    """The ``adsync.graph.token`` check, whichever way the token request ended."""
    return _result(tenant, "adsync.graph.token", "Graph token (client credentials)", status, summary, **kw)


def _token_credential(
    options: GraphOptions, details: dict[str, Any], scrub: Scrubber
) -> tuple[str | dict[str, str], datetime | None]:
    """The MSAL client credential (certificate or secret) and the certificate's expiry, if any.

    Records which credential is used in ``details``; a client secret goes into the scrubber.
    """
    credential: str | dict[str, str]
    cert_not_after: datetime | None = None
    if options.client_cert is not None:
        cert = load_client_certificate(options.client_cert)
        credential = {"private_key": cert.private_key_pem, "thumbprint": cert.thumbprint_sha1}
        cert_not_after = cert.not_after
        details.update(
            credential="certificate",
            certificate_thumbprint=cert.thumbprint_sha1,
            certificate_subject=cert.subject,
            certificate_not_after=cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    else:
        assert options.client_secret is not None  # checked by _validate
        credential = options.client_secret.reveal()
        scrub.add(credential)
        details["credential"] = "client secret"
    return credential, cert_not_after


def _configuration_refused_summary(
    exc: ValueError, tenant: str, host: str, details: dict[str, Any], scrub: Scrubber
) -> str:
    """The summary for a ValueError from MSAL (unknown tenant, or a configuration MSAL refuses).

    An AADSTS code in the authority's answer goes into ``details["error_code"]``.
    """
    # MSAL wraps the authority's own answer (with its AADSTS code) as the context.
    text = scrub(f"{exc} {exc.__context__ or ''}")
    if "OIDC Discovery failed" in text or "Unable to get authority configuration" in text:
        summary = (
            f"tenant {tenant!r} is unknown to the authority {host} (OpenID configuration "
            "not found): check --tenant-id and --authority-host (national cloud?)"
        )
        aadsts = re.search(r"AADSTS\d+", text)
        if aadsts:
            details["error_code"] = aadsts.group(0)
    else:
        summary = f"MSAL refused the configuration: {_first_line(text)}"
    return summary


def _token_acquired(
    token: Any,
    result: Any,
    options: GraphOptions,
    tenant: str,
    host: str,
    *,
    cert_not_after: datetime | None,
    details: dict[str, Any],
    duration: float,
    scrub: Scrubber,
) -> tuple[str, CheckResult]:
    """The OK check for an acquired token (a WARNING when the client certificate expires soon)."""
    scrub.add(str(token))
    details["expires_in_s"] = result.get("expires_in")
    details["token_source"] = result.get("token_source")
    status, summary = Status.OK, f"token for app {options.client_id} acquired from {host} ({duration:.2f}s)"
    if cert_not_after is not None:
        days_left = (cert_not_after.timestamp() - time.time()) / 86400
        details["certificate_days_left"] = round(days_left, 1)
        if days_left < CERT_WARN_DAYS:
            status = Status.WARNING
            summary += (
                f"; the client certificate expires in {max(0.0, days_left):.0f} days "
                f"({details['certificate_not_after']}): upload a new one to the app registration now"
            )
    return str(token), _token_check(
        tenant,
        status,
        summary,
        details=details,
        metrics={"token_time": Metric(round(duration, 3), "s", min=0)},
        duration_s=duration,
    )


def _token_error_hint(codes: set[Any], error: str) -> str:
    """What to do about MSAL's error (its AADSTS codes first, then the OAuth error); "" when unknown."""
    if 7000215 in codes or 7000222 in codes:
        hint = "the client secret is wrong or expired: create a new one in the app registration"
    elif 700016 in codes:
        hint = "no application with this --client-id in the tenant (or admin consent never given)"
    elif 700027 in codes or 700024 in codes:
        hint = "the client assertion was rejected: is this certificate uploaded to the app registration?"
    elif 90002 in codes:
        hint = "the tenant does not exist: check --tenant-id"
    elif error == "invalid_client":
        hint = "the client credential was rejected (wrong or expired secret, or certificate not uploaded)"
    elif error == "unauthorized_client":
        hint = "the app is not allowed in this tenant (wrong --client-id or missing admin consent)"
    else:
        hint = ""
    return hint


def _token_refused(
    result: Any, tenant: str, *, details: dict[str, Any], duration: float, scrub: Scrubber
) -> CheckResult:
    """The UNKNOWN check for an answer without a token: MSAL's error, description, codes and a hint."""
    error = str(result.get("error", "unknown_error")) if isinstance(result, dict) else "unknown_error"
    description = scrub(_first_line(str(result.get("error_description", "")) if isinstance(result, dict) else ""))
    details.update(error=error, error_description=description)
    if isinstance(result, dict):
        if result.get("error_codes"):
            details["error_codes"] = list(result["error_codes"])
        if result.get("correlation_id"):
            details["correlation_id"] = str(result["correlation_id"])
    codes = set(details.get("error_codes") or [])
    hint = _token_error_hint(codes, error)
    summary = f"token request failed: {error}" + (f" ({description})" if description else "")
    if hint:
        summary += f" — {hint}"
    return _token_check(tenant, Status.UNKNOWN, summary, details=details, duration_s=duration)


def _acquire_token(
    options: GraphOptions, tenant: str, authority: str, graph: str, *, session: requests.Session, scrub: Scrubber
) -> tuple[str | None, CheckResult]:
    """Return (access token or None, the token check)."""
    import msal
    import requests

    details: dict[str, Any] = {"authority": f"{authority}/{tenant}", "client_id": options.client_id}
    credential, cert_not_after = _token_credential(options, details, scrub)
    host = (urlsplit(authority).hostname or "").lower()
    microsoft = host in MICROSOFT_AUTHORITY_HOSTS
    details["instance_discovery"] = microsoft
    with Timer() as timer:
        try:
            app = msal.ConfidentialClientApplication(
                options.client_id,
                authority=f"{authority}/{tenant}",
                client_credential=credential,
                # A private or test authority must never make MSAL ask Microsoft's public
                # cloud about itself (instance discovery, authority aliases).
                instance_discovery=None if microsoft else False,
                validate_authority=microsoft,
                http_client=session,
                token_cache=None,
            )
            result = app.acquire_token_for_client(scopes=[f"{graph}/.default"])
        except requests.exceptions.RequestException as exc:
            return None, _token_check(
                tenant,
                Status.UNKNOWN,
                f"cannot reach the authority {host}: {_net_error(exc)}",
                details=details,
            )
        except ValueError as exc:
            summary = _configuration_refused_summary(exc, tenant, host, details, scrub)
            return None, _token_check(tenant, Status.UNKNOWN, summary, details=details)
        except msal.exceptions.MsalServiceError as exc:  # e.g. a 5xx from the authority
            return None, _token_check(
                tenant,
                Status.UNKNOWN,
                f"the authority {host} failed: {scrub(_first_line(str(exc), 200))} — retry later, "
                "or check a TLS proxy in between",
                details=details,
            )
        except Exception as exc:  # MSAL raises assorted types on odd answers; report, never crash
            text = scrub(_first_line(str(exc), 200))
            return None, _token_check(
                tenant,
                Status.UNKNOWN,
                f"token request failed: {exc.__class__.__name__}" + (f": {text}" if text else ""),
                details=details,
            )
    duration = timer.s
    token = result.get("access_token") if isinstance(result, dict) else None
    if token:
        return _token_acquired(
            token,
            result,
            options,
            tenant,
            host,
            cert_not_after=cert_not_after,
            details=details,
            duration=duration,
            scrub=scrub,
        )
    return None, _token_refused(result, tenant, details=details, duration=duration, scrub=scrub)
