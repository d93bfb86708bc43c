"""Microsoft Graph over HTTPS: one bounded session, GET with the token, errors made short.

Every request has a timeout (:func:`_session`), verifies TLS against the environment's CA
bundle (never turned off), follows no redirect, and every text taken from an error answer is
scrubbed of the secret and the token before it becomes a summary or a detail.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..secrets import Scrubber

if TYPE_CHECKING:  # pragma: no cover - typing only
    import requests

    from .graph import GraphOptions


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
        for marker in (
            "Connection refused",
            "Name or service not known",
            "No route to host",
            "Temporary failure in name resolution",
            "Network is unreachable",
        ):
            if marker in reason:
                return f"connection failed: {marker.lower()}"
        return "connection failed"
    return exc.__class__.__name__


@dataclass
class _Context:
    tenant: str
    graph: str
    session: requests.Session
    token: str
    scrub: Scrubber
    options: GraphOptions


class _GraphError(Exception):
    def __init__(self, summary: str, details: dict[str, Any]) -> None:
        super().__init__(summary)
        self.summary = summary
        self.details = details


def _graph_get(
    ctx: _Context, path: str, params: dict[str, str], permission_hint: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
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
