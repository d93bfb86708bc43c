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

The work is split by job: :mod:`.auth` (the credential and the MSAL token), :mod:`.http`
(the Graph HTTPS calls) and :mod:`.checks` (organization and sync data as check results, the
thresholds); this module holds the options, their validation and :func:`check_tenant`.

Secrets and tokens never leave these modules: they go to MSAL and into the
``Authorization`` header, nowhere else, and every text built from a remote answer is
scrubbed of both (the shared :class:`~runbooks.secrets.Scrubber`: any case, IDNA forms)
before it becomes a summary or a detail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InputError
from ..model import CheckResult
from ..secrets import Scrubber, Secret
from .auth import _acquire_token, load_client_certificate
from .checks import _organization_checks, _provisioning_errors_check
from .http import _Context, _session

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"

_MULTI_TENANT_ALIASES = {"common", "organizations", "consumers"}
_TENANT_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


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


def check_tenant(options: GraphOptions) -> list[CheckResult]:
    """Token, organization sync state, last sync and last password sync as check results.

    Bad options raise :class:`~runbooks.errors.InputError`; everything that happens on
    the wire becomes a check result. The client secret and the access token never appear
    in any result.
    """
    validate_options(options)  # bad input: InputError before any traffic
    tenant, authority = _validate(options)
    graph = _https_base(options.graph_endpoint, "--graph-endpoint")
    scrub = Scrubber()
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
