"""A fake Microsoft identity platform + Microsoft Graph, on loopback, over real HTTPS.

It speaks just enough of the wire protocol for MSAL and ``runbooks.adsync.graph``:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (400 ``AADSTS90002`` for an unknown tenant)
- ``POST /{tenant}/oauth2/v2.0/token`` (client credentials grant; checks ``client_id``, the
  ``scope`` and either ``client_secret`` or a ``client_assertion`` JWT signed by the
  registered certificate: RS256/PS256, ``x5t``/``x5t#S256``, ``aud``, ``iss``, ``sub``, ``exp``)
- ``GET /v1.0/organization``, ``GET /beta/organization`` (honouring ``$select``)
- ``GET /v1.0/users`` with ``$count`` (users with ``onPremisesProvisioningErrors``)
- anything else, e.g. ``/common/discovery/instance``: 404, and recorded

Every request is recorded (``fake.requests``), so tests can assert what was (not) asked.
A :class:`ProxyRecorder` plays an HTTPS proxy that refuses everything and records the
CONNECT targets: with ``HTTPS_PROXY`` pointing at it, any attempt to reach a
non-loopback host (Microsoft's cloud) is caught without a packet leaving the machine.

    ca = TestCA("Fake Entra CA")
    with FakeGraph(ca, Scenario(last_sync_age=2 * 3600)) as fake:
        fake.authority_host, fake.graph_endpoint, fake.scenario.client_secret ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.tlspeers import HttpRequest, HttpResponse, Leaf, TestCA, TlsServer

FAKE_HOST = "127.0.30.1"
PROXY_HOST = "127.0.30.2"


@dataclass
class Scenario:
    """What the fake tenant looks like and how the fake services behave."""

    tenant_id: str = "5f1c2a7e-0b4d-4c1e-9a8f-3d2e1b0c9a87"
    client_id: str = "0e6f5d4c-3b2a-4190-8f7e-6d5c4b3a2910"
    client_secret: str = "Zq8~fake.SECRET-value_3141592653589793"
    #: Certificate registered on the app (for client-assertion logins).
    client_cert: Leaf | None = None
    sync_enabled: bool | None = True
    #: Age in seconds of onPremisesLastSyncDateTime at request time (None: null).
    last_sync_age: float | None = 600.0
    #: Age in seconds of onPremisesLastPasswordSyncDateTime (beta only; None: null).
    password_sync_age: float | None = 120.0
    #: Status of the OpenID configuration document (an authority outage when >= 500).
    openid_status: int = 200
    org_status: int = 200
    beta_status: int = 200
    users_status: int = 200
    #: UPNs of users with a PropertyConflict provisioning error.
    provisioning_errors: list[str] = field(default_factory=list)
    #: The app's Graph permission on the organization: with "User.Read" alone, every property except
    #: id, displayName and verifiedDomains comes back null (what Graph really does).
    org_permission: str = "Organization.Read.All"
    #: Misbehave: put the submitted client secret into the token error text.
    echo_secret_in_error: bool = False
    #: ... upper-cased, as a service that normalises what it logs would.
    echo_secret_upper: bool = False
    #: Misbehave: put the bearer token into Graph error messages.
    echo_token_in_error: bool = False


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _iso(age: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    reasons = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    return HttpResponse(
        status,
        reasons.get(status, "Status"),
        [("Content-Type", "application/json; charset=utf-8"), ("request-id", str(uuid.uuid4())), *(headers or [])],
        json.dumps(body).encode(),
    )


def _aad_error(status: int, error: str, code: int, description: str) -> HttpResponse:
    trace, corr = uuid.uuid4(), uuid.uuid4()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return _json(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\n"
            f"Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": str(trace),
            "correlation_id": str(corr),
        },
    )


def _graph_error(status: int, code: str, message: str) -> HttpResponse:
    return _json(status, {"error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}})


class FakeGraph:
    """The fake authority + Graph on one loopback HTTPS server (``127.0.30.1``, a free port)."""

    def __init__(self, ca: TestCA, scenario: Scenario | None = None, host: str = FAKE_HOST) -> None:
        self.scenario = scenario or Scenario()
        self.leaf = ca.issue(host, names=[host, "localhost"])
        self.issued_tokens: list[str] = []
        self.token_requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = self.leaf.write(tmp)
            context.load_cert_chain(cert_path, key_path)
        self.server = TlsServer(mode="handler", host=host, handler=self._handle, context=context)

    # ------------------------------------------------------------------ addresses

    @property
    def base(self) -> str:
        """``https://127.0.30.1:PORT``."""
        return f"https://{self.server.host}:{self.server.port}"

    @property
    def authority_host(self) -> str:
        """The value for ``--authority-host``."""
        return self.base

    @property
    def graph_endpoint(self) -> str:
        """The value for ``--graph-endpoint``."""
        return self.base

    @property
    def token_endpoint(self) -> str:
        """The token endpoint of the scenario's tenant."""
        return f"{self.base}/{self.scenario.tenant_id}/oauth2/v2.0/token"

    @property
    def requests(self) -> list[HttpRequest]:
        """Every request received, in order."""
        return list(self.server.requests)

    def paths(self) -> list[str]:
        """The path (without query) of every request received."""
        return [urlsplit(r.path).path for r in self.server.requests]

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()

    def __enter__(self) -> FakeGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ dispatch

    def _handle(self, req: HttpRequest) -> HttpResponse:
        parts = urlsplit(req.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        sc = self.scenario
        if req.method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            return self._openid(path.split("/")[1])
        if req.method == "POST" and path.endswith("/oauth2/v2.0/token"):
            return self._token(path.split("/")[1], req)
        if path.startswith(("/v1.0/", "/beta/")):
            token = req.headers.get("authorization", "")
            if not token.startswith("Bearer ") or token[7:] not in self.issued_tokens:
                return _graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
            if req.method != "GET":
                return _graph_error(405, "Request_BadRequest", "Method not allowed.")
            if path == "/v1.0/organization":
                return self._organization(query, beta=False, token=token[7:])
            if path == "/beta/organization":
                return self._organization(query, beta=True, token=token[7:])
            if path == "/v1.0/users":
                return self._users(query, req, token=token[7:])
        del sc
        return _json(404, {"error": "not_found", "path": path})

    def _openid(self, tenant: str) -> HttpResponse:
        if self.scenario.openid_status != 200:
            return _json(self.scenario.openid_status, {"error": "temporarily_unavailable"})
        if tenant != self.scenario.tenant_id:
            return _aad_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            )
        base = f"{self.base}/{tenant}"
        return _json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.base}/{tenant}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "issuer": f"{self.base}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
            },
        )

    def _token(self, tenant: str, req: HttpRequest) -> HttpResponse:
        sc = self.scenario
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        with self._lock:
            self.token_requests.append(form)
        if tenant != sc.tenant_id:
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if form.get("client_id") != sc.client_id:
            return _aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'.",
            )
        if form.get("scope") != f"{self.base}/.default":
            return _aad_error(
                400, "invalid_scope", 1002012, f"The provided value for scope {form.get('scope')} is not valid."
            )
        if "client_assertion" in form:
            problem = self._check_assertion(form)
            if problem:
                return _aad_error(401, "invalid_client", 700027, f"Client assertion failed validation: {problem}")
        elif form.get("client_secret") != sc.client_secret:
            sent = form.get("client_secret", "")
            sent = sent.upper() if sc.echo_secret_upper else sent
            extra = f" (got '{sent}')" if sc.echo_secret_in_error else ""
            return _aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app "
                f"'{sc.client_id}'{extra}.",
            )
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(48) + "." + secrets.token_urlsafe(32)
        with self._lock:
            self.issued_tokens.append(token)
        return _json(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})

    def _check_assertion(self, form: dict[str, str]) -> str:
        """Validate a client assertion JWT like Entra ID does; return the problem or ''."""
        import jwt

        sc = self.scenario
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return "wrong client_assertion_type"
        if sc.client_cert is None:
            return "no certificate registered on the app"
        assertion = form["client_assertion"]
        try:
            header = json.loads(_b64url_decode(assertion.split(".")[0]))
        except (ValueError, IndexError):
            return "not a JWT"
        der = sc.client_cert.cert_der
        if "x5t#S256" in header:
            if str(header["x5t#S256"]).rstrip("=") != _b64url(hashlib.sha256(der).digest()):
                return "unknown key (x5t#S256)"
        elif str(header.get("x5t")).rstrip("=") != _b64url(hashlib.sha1(der).digest()):  # MSAL pads
            return "unknown key (x5t)"
        try:
            claims = jwt.decode(
                assertion,
                sc.client_cert.cert.public_key(),
                algorithms=["RS256", "PS256"],
                audience=self.token_endpoint,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            return f"signature or claims invalid ({exc.__class__.__name__})"
        if claims.get("iss") != sc.client_id or claims.get("sub") != sc.client_id:
            return "iss/sub is not the client id"
        if claims["exp"] < time.time():
            return "expired"
        return ""

    def _organization(self, query: dict[str, str], *, beta: bool, token: str) -> HttpResponse:
        sc = self.scenario
        status = sc.beta_status if beta else sc.org_status
        if status != 200:
            message = "Insufficient privileges to complete the operation."
            if sc.echo_token_in_error:
                message += f" Token: {token}"
            code = "Authorization_RequestDenied" if status in (401, 403) else "ServiceUnavailable"
            return _graph_error(status, code, message)
        org: dict[str, Any] = {
            "id": sc.tenant_id,
            "displayName": "Contoso Fake",
            "verifiedDomains": [{"name": "contoso.onmicrosoft.com", "isDefault": True}],
            "createdDateTime": "2019-03-04T10:11:12Z",
            "onPremisesSyncEnabled": sc.sync_enabled,
            "onPremisesLastSyncDateTime": None if sc.last_sync_age is None else _iso(sc.last_sync_age),
        }
        if beta:
            org["onPremisesLastPasswordSyncDateTime"] = (
                None if sc.password_sync_age is None else _iso(sc.password_sync_age)
            )
        if sc.org_permission == "User.Read":
            org = {k: (v if k in ("id", "displayName", "verifiedDomains") else None) for k, v in org.items()}
        select = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
        if select:
            unknown = [s for s in select if s not in org]
            if unknown:
                return _graph_error(
                    400,
                    "Request_BadRequest",
                    f"Could not find a property named '{unknown[0]}' on type "
                    "'Microsoft.DirectoryServices.Organization'.",
                )
            org = {k: org[k] for k in select}
        context = f"{self.base}/{'beta' if beta else 'v1.0'}/$metadata#organization"
        return _json(200, {"@odata.context": context, "value": [org]})

    def _users(self, query: dict[str, str], req: HttpRequest, *, token: str) -> HttpResponse:
        sc = self.scenario
        if sc.users_status != 200:
            return _graph_error(
                sc.users_status, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        wants_count = query.get("$count") == "true"
        if wants_count and req.headers.get("consistencylevel", "").lower() != "eventual":
            return _graph_error(
                400, "Request_UnsupportedQuery", "$count is not currently supported without ConsistencyLevel: eventual."
            )
        if "onPremisesProvisioningErrors" not in query.get("$filter", ""):
            return _graph_error(400, "Request_UnsupportedQuery", "this fake only answers the provisioning filter")
        top = int(query.get("$top", "100"))
        users = [
            {
                "userPrincipalName": upn,
                "onPremisesProvisioningErrors": [
                    {
                        "category": "PropertyConflict",
                        "propertyCausingError": "ProxyAddresses",
                        "value": f"smtp:{upn}",
                        "occurredDateTime": _iso(3600),
                    }
                ],
            }
            for upn in sc.provisioning_errors
        ]
        body: dict[str, Any] = {"value": users[:top]}
        if wants_count:
            body["@odata.count"] = len(users)
        return _json(200, body)


class ProxyRecorder:
    """A loopback 'HTTPS proxy' that refuses every CONNECT and records its target (``host:port``)."""

    def __init__(self, host: str = PROXY_HOST) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.targets: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.30.2:PORT`` for ``HTTPS_PROXY``."""
        return f"http://{self.host}:{self.port}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    line = data.split(b"\r\n", 1)[0].decode("latin-1")
                    method, _, rest = line.partition(" ")
                    # "CONNECT host:port HTTP/1.x" -> "host:port"; plain-HTTP proxying: the URL.
                    self.targets.append(rest.split(" ")[0] if method else line)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def stop(self) -> None:
        """Stop and join."""
        self._stop.set()
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ProxyRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "no_proxy",
)
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@contextmanager
def graph_network(monkeypatch: Any, ca_path: str | None) -> Iterator[ProxyRecorder]:
    """Trust *ca_path* through ``REQUESTS_CA_BUNDLE`` (None: trust nothing extra) and send
    every non-loopback HTTPS request to a refusing, recording proxy.

    ``NO_PROXY`` lets the fake on 127.0.30.1 through directly; anything else MSAL or our code
    tries to reach (login.microsoftonline.com, a custom authority) ends up in ``proxy.targets``.
    """
    for name in (*PROXY_VARIABLES, *CA_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    if ca_path:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_path)
    with ProxyRecorder() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", f"{FAKE_HOST},localhost")
        yield proxy
