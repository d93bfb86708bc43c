"""Tenant sync freshness through Microsoft Graph (MSAL client credentials).

The checks, in order, each a :class:`~runbooks.model.CheckResult` whose target is the
tenant id:

``adsync.graph.token``
    MSAL ``acquire_token_for_client`` with the Graph ``.default`` scope (client secret or
    certificate). When it fails nothing else can be asked: UNKNOWN with MSAL's error code.
``adsync.graph.sync_enabled``
    ``onPremisesSyncEnabled`` of ``/v1.0/organization``. A tenant that is not synced at
    all is CRITICAL: this is an AD Connect health check, and "no sync" is the outage.
``adsync.graph.last_sync``
    Age of ``onPremisesLastSyncDateTime`` (v1.0) against ``max_sync_age``.
``adsync.graph.last_password_sync``
    Age of ``onPremisesLastPasswordSyncDateTime`` (only in the **beta** API) against
    ``max_password_sync_age``.
``adsync.graph.provisioning_errors``
    Optional: users with ``onPremisesProvisioningErrors`` (duplicate attribute conflicts).

Secrets and tokens never leave this module: they go to MSAL and into the
``Authorization`` header, nowhere else, and every text built from a remote answer is
scrubbed of both before it becomes a summary or a detail.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import InputError
from ..model import CheckResult, Metric, Status, Timer
from ..secrets import Secret

if TYPE_CHECKING:  # pragma: no cover - typing only
    import requests

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"

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

_PERMISSION_HINT = (
    "grant the app registration the Microsoft Graph APPLICATION permission "
    "Organization.Read.All (or Directory.Read.All) and click 'Grant admin consent'"
)
_USERS_PERMISSION_HINT = (
    "counting provisioning errors needs the APPLICATION permission User.Read.All "
    "(or Directory.Read.All) with admin consent"
)
_MULTI_TENANT_ALIASES = {"common", "organizations", "consumers"}
_TENANT_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: A client certificate closer to its expiry than this makes the token check a WARNING.
CERT_WARN_DAYS = 30.0
#: A timestamp further in the future than this means this host's clock is off.
_CLOCK_SKEW_S = 300.0


@dataclass
class GraphOptions:
    """How to reach Microsoft Graph and what counts as too old (seconds: warn, crit)."""

    tenant_id: str
    client_id: str
    client_secret: Secret | None = None
    client_cert: Path | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_endpoint: str = DEFAULT_GRAPH_ENDPOINT
    max_sync_age: tuple[float, float] = (3600.0, 3 * 3600.0)
    max_password_sync_age: tuple[float, float] = (3600.0, 3 * 3600.0)
    timeout: float = 10.0
    count_provisioning_errors: bool = False
    #: How many conflicting users to name in the provisioning-errors details.
    provisioning_error_sample: int = field(default=10)


# --------------------------------------------------------------------------- durations


def parse_duration(text: str) -> float:
    """Parse one duration such as ``90m``, ``3h``, ``45s``, ``1d`` or ``1h30m`` to seconds.

    A bare number is refused: ``3`` could mean seconds, minutes or hours.
    """
    raw = text.strip()
    if not raw:
        raise InputError("empty duration: use e.g. 90m, 3h, 45s or 1d")
    compact = raw.replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
        if re.fullmatch(r"\d+(?:\.\d+)?", compact):
            raise InputError(f"duration {raw!r} has no unit: write e.g. {compact}m or {compact}h (s, m, h, d)")
        raise InputError(f"invalid duration {raw!r}: use e.g. 90m, 3h, 45s, 1d or 1h30m")
    seconds = sum(float(number) * _UNIT_SECONDS[unit.lower()] for number, unit in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"duration {raw!r} must be greater than zero")
    return seconds


def parse_age_thresholds(text: str, default_crit: float = 3 * 3600.0) -> tuple[float, float]:
    """Parse ``WARN`` or ``WARN,CRIT`` durations (``90m``, ``3h``, ``45s``, ``1d``) to seconds.

    With ``WARN`` alone the critical threshold stays at *default_crit* (3 h, Microsoft's own
    look-back), or at WARN when WARN is larger. CRIT below WARN is an :class:`InputError`.
    """
    if not isinstance(text, str):
        raise InputError(f"invalid age threshold {text!r}: use WARN or WARN,CRIT such as 1h,3h")
    pieces = [p.strip() for p in text.split(",")]
    if len(pieces) > 2 or not all(pieces):
        raise InputError(f"invalid age threshold {text!r}: use WARN or WARN,CRIT such as 1h,3h")
    warn = parse_duration(pieces[0])
    crit = parse_duration(pieces[1]) if len(pieces) == 2 else max(default_crit, warn)
    if crit < warn:
        raise InputError(
            f"invalid age threshold {text!r}: the critical age ({format_age(crit)}) "
            f"is below the warning age ({format_age(warn)})"
        )
    return warn, crit


def format_age(seconds: float) -> str:
    """Human form of a duration: ``45s``, ``12m 5s``, ``2h 3m``, ``4d 2h``."""
    s = max(0, round(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


# --------------------------------------------------------------------------- validation


def _https_base(url: str, what: str) -> str:
    """``https://host[:port]`` without a trailing slash; anything else is an InputError."""
    text = (url or "").strip().rstrip("/")
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
    except ValueError:  # e.g. "https://[::1" (unbalanced brackets)
        raise InputError(f"{what} {url!r} is not a valid URL: use https://host[:port]") from None
    if parts.scheme.lower() != "https" or not hostname:
        raise InputError(f"{what} {url!r} must be an https:// URL such as {DEFAULT_AUTHORITY_HOST}")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("",):
        raise InputError(f"{what} {url!r} must be scheme and host only (https://host[:port])")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InputError(f"{what} {url!r} has an invalid port") from None
    return f"https://{parts.netloc}"


_GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")


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
        "adsync.graph.secret_file", str(path), "client secret file permissions", Status.WARNING,
        f"the client secret file {path} is readable by {'group and others' if mode & stat.S_IRWXO else 'its group'} "
        f"(mode {stat.S_IMODE(mode):04o}): anyone who reads it can act as the app — chmod 600 {path}",
        details={"path": str(path), "mode": f"{stat.S_IMODE(mode):04o}"},
    )


def _validate(options: GraphOptions) -> tuple[str, str]:
    tenant = (options.tenant_id or "").strip()
    if not tenant:
        raise InputError("--tenant-id is required with --graph (the tenant GUID or its .onmicrosoft.com name)")
    if tenant.lower() in _MULTI_TENANT_ALIASES:
        raise InputError(f"--tenant-id {tenant!r} is not a tenant: give the tenant GUID or domain name")
    if not _TENANT_RE.match(tenant):
        raise InputError(f"invalid --tenant-id {tenant!r}: expected a GUID or a domain name")
    if not (options.client_id or "").strip():
        raise InputError("--client-id is required with --graph (the app registration's application id)")
    if not _GUID_RE.fullmatch(options.client_id.strip()):
        raise InputError(f"invalid --client-id {options.client_id!r}: expected the application (client) id GUID")
    has_secret = options.client_secret is not None and bool(options.client_secret)
    if has_secret and options.client_cert is not None:
        raise InputError("give either a client secret or --client-cert, not both")
    if not has_secret and options.client_cert is None:
        raise InputError(
            "no client credential: set OPSBOOK_GRAPH_CLIENT_SECRET, use --client-secret-file, or --client-cert PEM"
        )
    for name, (warn, crit) in (
        ("--max-sync-age", options.max_sync_age),
        ("--max-password-sync-age", options.max_password_sync_age),
    ):
        if not (warn > 0 and crit >= warn):
            raise InputError(f"{name}: the critical age must be at least the warning age, both above zero")
    if not options.timeout > 0:
        raise InputError("--timeout must be greater than zero")
    return tenant, _https_base(options.authority_host, "--authority-host")


def validate_options(options: GraphOptions) -> None:
    """Check every Graph option without sending anything: raise :class:`InputError` on the first problem.

    Covers the tenant and client ids, exactly one credential (secret or certificate), both
    URLs, the age thresholds, the timeout, and that the certificate file holds a usable key
    and its matching certificate. The CLI calls it before any probe starts, so a typo
    costs no DNS query and no request to the authority.
    """
    _validate(options)
    _https_base(options.graph_endpoint, "--graph-endpoint")
    if options.client_cert is not None:
        load_client_certificate(options.client_cert)


# --------------------------------------------------------------------------- credentials


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


# --------------------------------------------------------------------------- HTTP


def ca_bundle_from_env() -> str | bool:
    """The CA bundle to verify against: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE, SSL_CERT_DIR.

    ``True`` (the default trust store) when none is set. Verification is never turned off.
    """
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return True


def _session(timeout: float) -> requests.Session:
    """A requests session that verifies against the env's CA bundle and always times out."""
    import requests

    class _BoundedSession(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().request(method, url, *args, **kwargs)

    session = _BoundedSession()
    session.verify = ca_bundle_from_env()
    session.headers["User-Agent"] = "opsbook-adsync"
    return session


class _Scrubber:
    """Removes the secret and the token from any text that came back from the wire."""

    def __init__(self) -> None:
        self._values: list[str] = []

    def add(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._values.append(value)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text


def _first_line(text: str, limit: int = 300) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _net_error(exc: BaseException) -> str:
    """A short description of a requests/network error (no URLs with queries, no bodies)."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed (set REQUESTS_CA_BUNDLE or SSL_CERT_FILE for a private CA or TLS proxy)"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "proxy error"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = str(exc)
        for marker in ("Connection refused", "Name or service not known", "No route to host",
                       "Temporary failure in name resolution", "Network is unreachable"):
            if marker in reason:
                return f"connection failed: {marker.lower()}"
        return "connection failed"
    return exc.__class__.__name__


# --------------------------------------------------------------------------- the checks


@dataclass
class _Context:
    tenant: str
    graph: str
    session: requests.Session
    token: str
    scrub: _Scrubber
    options: GraphOptions


def _result(ctx_tenant: str, check_id: str, name: str, status: Status, summary: str, **kw: Any) -> CheckResult:
    return CheckResult(id=check_id, target=ctx_tenant, name=name, status=status, summary=summary, **kw)


def _acquire_token(
    options: GraphOptions, tenant: str, authority: str, graph: str, *, session: requests.Session, scrub: _Scrubber
) -> tuple[str | None, CheckResult]:
    """Return (access token or None, the token check)."""
    import msal
    import requests

    credential: str | dict[str, str]
    cert_not_after: datetime | None = None
    details: dict[str, Any] = {"authority": f"{authority}/{tenant}", "client_id": options.client_id}
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
    host = (urlsplit(authority).hostname or "").lower()
    microsoft = host in MICROSOFT_AUTHORITY_HOSTS
    details["instance_discovery"] = microsoft
    name = "Graph token (client credentials)"
    check_id = "adsync.graph.token"
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
            return None, _result(
                tenant, check_id, name, Status.UNKNOWN,
                f"cannot reach the authority {host}: {_net_error(exc)}", details=details,
            )
        except ValueError as exc:
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
            return None, _result(tenant, check_id, name, Status.UNKNOWN, summary, details=details)
        except msal.exceptions.MsalServiceError as exc:  # e.g. a 5xx from the authority
            return None, _result(
                tenant, check_id, name, Status.UNKNOWN,
                f"the authority {host} failed: {scrub(_first_line(str(exc), 200))} — retry later, "
                "or check a TLS proxy in between", details=details,
            )
        except Exception as exc:  # MSAL raises assorted types on odd answers; report, never crash
            text = scrub(_first_line(str(exc), 200))
            return None, _result(
                tenant, check_id, name, Status.UNKNOWN,
                f"token request failed: {exc.__class__.__name__}" + (f": {text}" if text else ""), details=details,
            )
    duration = timer.s
    token = result.get("access_token") if isinstance(result, dict) else None
    if token:
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
        return str(token), _result(
            tenant, check_id, name, status, summary,
            details=details, metrics={"token_time": Metric(round(duration, 3), "s", min=0)}, duration_s=duration,
        )
    error = str(result.get("error", "unknown_error")) if isinstance(result, dict) else "unknown_error"
    description = scrub(_first_line(str(result.get("error_description", "")) if isinstance(result, dict) else ""))
    details.update(error=error, error_description=description)
    if isinstance(result, dict):
        if result.get("error_codes"):
            details["error_codes"] = list(result["error_codes"])
        if result.get("correlation_id"):
            details["correlation_id"] = str(result["correlation_id"])
    codes = set(details.get("error_codes") or [])
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
    summary = f"token request failed: {error}" + (f" ({description})" if description else "")
    if hint:
        summary += f" — {hint}"
    return None, _result(tenant, check_id, name, Status.UNKNOWN, summary, details=details, duration_s=duration)


class _GraphError(Exception):
    def __init__(self, summary: str, details: dict[str, Any]) -> None:
        super().__init__(summary)
        self.summary = summary
        self.details = details


def _graph_get(ctx: _Context, path: str, params: dict[str, str], permission_hint: str,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    """GET ``{graph}{path}`` with the token; return the JSON body or raise :class:`_GraphError`."""
    import requests

    url = f"{ctx.graph}{path}"
    all_headers = {"Authorization": f"Bearer {ctx.token}", "Accept": "application/json", **(headers or {})}
    try:
        resp = ctx.session.get(url, params=params, headers=all_headers, allow_redirects=False)
    except requests.exceptions.RequestException as exc:
        raise _GraphError(f"GET {path} failed: {_net_error(exc)}", {"path": path}) from None
    details: dict[str, Any] = {"path": path, "http_status": resp.status_code}
    if resp.status_code == 200:
        try:
            body = resp.json()
        except ValueError:
            raise _GraphError(f"GET {path}: the answer is not JSON", details) from None
        if not isinstance(body, dict):
            raise _GraphError(f"GET {path}: unexpected JSON answer", details)
        return body
    code, message = "", ""
    try:
        error = resp.json().get("error", {})
        if isinstance(error, dict):
            code, message = str(error.get("code", "")), ctx.scrub(_first_line(str(error.get("message", ""))))
    except (ValueError, AttributeError):
        pass
    if code:
        details["error"] = code
    if message:
        details["error_message"] = message
    if request_id := resp.headers.get("request-id"):
        details["request_id"] = request_id
    reason = f"HTTP {resp.status_code}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if resp.status_code in (401, 403):
        raise _GraphError(f"GET {path} refused ({reason}) — {permission_hint}", details)
    if resp.status_code == 429:
        retry = resp.headers.get("Retry-After")
        raise _GraphError(f"GET {path} throttled ({reason})" + (f", retry after {retry}s" if retry else ""), details)
    raise _GraphError(f"GET {path} failed ({reason})", details)


def _parse_time(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Graph may send 7 fractional digits; fromisoformat takes at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _age_check(
    ctx: _Context, check_id: str, name: str, what: str, value: Any, *, thresholds: tuple[float, float],
    sync_enabled: bool | None, null_hint: str, extra: dict[str, Any],
) -> CheckResult:
    """Judge a last-sync timestamp against (warn, crit) seconds."""
    warn, crit = thresholds
    details: dict[str, Any] = {"warn_s": warn, "crit_s": crit, **extra}
    if value in (None, ""):
        details["value"] = None
        return _result(ctx.tenant, check_id, name, Status.UNKNOWN,
                       f"{what} is not visible (null although sync is enabled): {null_hint}", details=details)
    try:
        when = _parse_time(str(value))
    except ValueError:
        details["value"] = str(value)[:100]
        return _result(ctx.tenant, check_id, name, Status.UNKNOWN, f"{what}: cannot parse {str(value)[:40]!r}",
                       details=details)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    details["value"] = stamp
    raw_age = time.time() - when.timestamp()
    age = max(0.0, raw_age)
    details["age_s"] = round(age, 1)
    metric = Metric(round(age, 1), "s", warn=warn, crit=crit, min=0)
    limits = f"warning above {format_age(warn)}, critical above {format_age(crit)}"
    if raw_age < -_CLOCK_SKEW_S:
        return _result(ctx.tenant, check_id, name, Status.WARNING,
                       f"{what} {stamp} is {format_age(-raw_age)} in the future: check this host's clock (NTP)",
                       details=details, metrics={"age": metric})
    status = Status.CRITICAL if age > crit else Status.WARNING if age > warn else Status.OK
    summary = f"{what} {format_age(age)} ago ({stamp}); {limits}"
    if status is not Status.OK and sync_enabled is False:
        summary += " — directory sync is disabled for the tenant"
    elif status is not Status.OK:
        summary += " — check the ADSync service and the Synchronization Service Manager on the sync server"
    return _result(ctx.tenant, check_id, name, status, summary, details=details, metrics={"age": metric})


def _organization_checks(ctx: _Context) -> list[CheckResult]:
    opts = ctx.options
    results: list[CheckResult] = []
    v1_path = "/v1.0/organization"
    try:
        with Timer() as timer:
            body = _graph_get(ctx, v1_path,
                              {"$select": "id,createdDateTime,onPremisesSyncEnabled,onPremisesLastSyncDateTime"},
                              _PERMISSION_HINT)
    except _GraphError as exc:
        return [_result(ctx.tenant, "adsync.graph.sync_enabled", "directory sync enabled", Status.UNKNOWN,
                        exc.summary, details=exc.details)]
    orgs = body.get("value")
    if not isinstance(orgs, list) or not orgs or not isinstance(orgs[0], dict):
        return [_result(ctx.tenant, "adsync.graph.sync_enabled", "directory sync enabled", Status.UNKNOWN,
                        f"GET {v1_path} returned no organization — {_PERMISSION_HINT}", details={"path": v1_path})]
    org = orgs[0]
    enabled = org.get("onPremisesSyncEnabled")
    base = {"api": "v1.0", "path": v1_path}
    if org.get("id") and org.get("createdDateTime") is None:
        # With User.Read alone Graph returns the organization with every property except id, displayName
        # and verifiedDomains null: a null sync date then means "not allowed to read", not "never synced".
        return [_result(
            ctx.tenant, "adsync.graph.sync_enabled", "directory sync enabled", Status.UNKNOWN,
            "missing permission: Graph returned the organization with only id, displayName and verifiedDomains "
            "(createdDateTime is null too), so the sync dates cannot be read — "
            + _PERMISSION_HINT, details={**base, "createdDateTime": None, "missing_permission": True},
            duration_s=timer.s)]
    if enabled is True:
        results.append(_result(ctx.tenant, "adsync.graph.sync_enabled", "directory sync enabled", Status.OK,
                               "directory synchronisation is enabled for the tenant (onPremisesSyncEnabled=true)",
                               details={**base, "onPremisesSyncEnabled": True}, duration_s=timer.s))
    elif enabled is False:
        results.append(_result(
            ctx.tenant, "adsync.graph.sync_enabled", "directory sync enabled", Status.CRITICAL,
            "directory synchronisation is DISABLED for the tenant (onPremisesSyncEnabled=false): nothing from "
            "on-premises AD reaches Entra ID — someone turned sync off (or it is being decommissioned)",
            details={**base, "onPremisesSyncEnabled": False}, duration_s=timer.s))
    else:
        results.append(_result(
            ctx.tenant, "adsync.graph.sync_enabled", "directory sync enabled", Status.CRITICAL,
            "directory synchronisation is not enabled for the tenant (onPremisesSyncEnabled is null: "
            "Entra ID has no record of on-premises sync) — wrong tenant, or AD Connect was never set up",
            details={**base, "onPremisesSyncEnabled": None}, duration_s=timer.s))
    last_sync = org.get("onPremisesLastSyncDateTime")
    if enabled is True or last_sync:
        results.append(_age_check(
            ctx, "adsync.graph.last_sync", "last directory sync", "last directory sync", last_sync,
            thresholds=opts.max_sync_age, sync_enabled=enabled,
            null_hint="the app most likely lacks Organization.Read.All — " + _PERMISSION_HINT, extra=base))
    # With sync off and no password sync on record, sync_enabled already says it all.
    password_check = _password_sync_check(ctx, enabled)
    if enabled is True or password_check.details.get("value") is not None:
        results.append(password_check)
    return results


def _password_sync_check(ctx: _Context, enabled: bool | None) -> CheckResult:
    path = "/beta/organization"
    check_id, name = "adsync.graph.last_password_sync", "last password hash sync (beta API)"
    base = {"api": "beta", "path": path, "note": "onPremisesLastPasswordSyncDateTime exists only in Graph beta"}
    try:
        body = _graph_get(ctx, path, {"$select": "id,onPremisesLastPasswordSyncDateTime"}, _PERMISSION_HINT)
    except _GraphError as exc:
        return _result(ctx.tenant, check_id, name, Status.UNKNOWN, f"{exc.summary} (beta API)",
                       details={**base, **exc.details})
    orgs = body.get("value")
    org = orgs[0] if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict) else {}
    value = org.get("onPremisesLastPasswordSyncDateTime")
    return _age_check(
        ctx, check_id, name, "last password hash sync (beta API)", value,
        thresholds=ctx.options.max_password_sync_age,
        sync_enabled=enabled,
        null_hint="the app most likely lacks Organization.Read.All (" + _PERMISSION_HINT + "); "
        "a tenant that signs in through pass-through authentication or federation without "
        "password hash sync has no such timestamp at all",
        extra=base,
    )


def _provisioning_errors_check(ctx: _Context) -> CheckResult:
    check_id, name = "adsync.graph.provisioning_errors", "users with provisioning errors"
    path = "/v1.0/users"
    params = {
        "$filter": "onPremisesProvisioningErrors/any(e:e/category eq 'PropertyConflict')",
        "$count": "true",
        "$select": "userPrincipalName,onPremisesProvisioningErrors",
        "$top": str(max(1, min(999, ctx.options.provisioning_error_sample))),
    }
    try:
        body = _graph_get(ctx, path, params, _USERS_PERMISSION_HINT, headers={"ConsistencyLevel": "eventual"})
    except _GraphError as exc:
        return _result(ctx.tenant, check_id, name, Status.UNKNOWN, exc.summary, details=exc.details)
    raw_users = body.get("value")
    users: list[Any] = raw_users if isinstance(raw_users, list) else []
    count = body.get("@odata.count")
    if not isinstance(count, int) or isinstance(count, bool):
        count = len(users)
    sample: list[dict[str, Any]] = []
    for user in users[: ctx.options.provisioning_error_sample]:
        if not isinstance(user, dict):
            continue
        errors = user.get("onPremisesProvisioningErrors") or []
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        sample.append({
            "userPrincipalName": str(user.get("userPrincipalName", "")),
            "property": str(first.get("propertyCausingError", "")),
            "category": str(first.get("category", "")),
        })
    details: dict[str, Any] = {"path": path, "count": count, "sample": sample}
    metric = Metric(count, "", warn=0, min=0)
    if count == 0:
        return _result(ctx.tenant, check_id, name, Status.OK, "no users with provisioning errors",
                       details=details, metrics={"count": metric})
    names = ", ".join(s["userPrincipalName"] for s in sample[:3] if s["userPrincipalName"])
    return _result(
        ctx.tenant, check_id, name, Status.WARNING,
        f"{count} user(s) with provisioning errors (duplicate attribute conflicts: these objects do not sync)"
        + (f", e.g. {names}" if names else ""),
        details=details, metrics={"count": metric})


def check_tenant(options: GraphOptions) -> list[CheckResult]:
    """Token, organization sync state, last sync and last password sync as check results.

    Bad options raise :class:`~runbooks.errors.InputError`; everything that happens on
    the wire becomes a check result. The client secret and the access token never appear
    in any result.
    """
    validate_options(options)  # bad input: InputError before any traffic
    tenant, authority = _validate(options)
    graph = _https_base(options.graph_endpoint, "--graph-endpoint")
    scrub = _Scrubber()
    session = _session(options.timeout)
    try:
        token, token_check = _acquire_token(options, tenant, authority, graph, session=session, scrub=scrub)
        results = [token_check]
        if token is None:
            return results
        ctx = _Context(tenant=tenant, graph=graph, session=session, token=token, scrub=scrub, options=options)
        results.extend(_organization_checks(ctx))
        if options.count_provisioning_errors:
            results.append(_provisioning_errors_check(ctx))
        return results
    finally:
        session.close()
