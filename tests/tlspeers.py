"""Real TLS peers for tests: a test CA, leaf certificates, and loopback TLS servers.

Shared by several areas (winrm check, winrm audit, the adsync Graph fake). Loopback only.

Certificates (made with ``cryptography``; keys are cached, so making many is cheap)::

    ca = TestCA("Corp Issuing CA")                 # the CA's CN is yours to choose
    leaf = ca.issue("srv1.corp.test")              # valid, RSA 2048, SHA-256, Server Auth EKU
    leaf = ca.issue("srv1.corp.test", days=10)     # expires in 10 days
    leaf = ca.issue("srv1.corp.test", not_after=past)            # expired (see :func:`days_from_now`)
    leaf = ca.issue("srv1.corp.test", eku=["client"])            # client-auth-only EKU
    leaf = ca.issue("srv1.corp.test", hash_name="sha1")          # SHA-1 signed
    leaf = ca.issue("srv1.corp.test", key_size=1024)             # weak RSA key
    leaf = ca.issue("a.corp.test", names=["a.corp.test", "127.0.0.1"])  # SANs (IPs become IP SANs)
    leaf = self_signed("srv1.corp.test")                         # self-signed
    leaf = make_leaf("expired", ca, "srv1.corp.test")            # by kind name, see LEAF_KINDS

    ca.cert_pem / ca.write(dir) -> Path of the PEM (use as --ca-file, REQUESTS_CA_BUNDLE ...)
    sub = ca.intermediate("Corp Issuing CA")         # an issuing CA under ca; sub.issue(...) as above
    leaf.cert_pem, leaf.key_pem, leaf.cert_der, leaf.thumbprint (SHA-1, uppercase hex, as Windows)
    leaf.write(dir) -> (cert_path, key_path)       # cert file holds leaf + issuing CA
    server_context(leaf) -> ssl.SSLContext         # server side, TLS 1.2+ (min_version=TLSv1 for legacy)

Servers (threaded; use as context managers or call ``stop()``; they record what they saw)::

    with TlsServer(leaf, mode="winrm") as srv:     # srv.host, srv.port, srv.target ("127.0.0.1:port")
        ...                                        # srv.sni_seen, srv.requests (list of HttpRequest)

    modes: "winrm"     POST /wsman -> 401, WWW-Authenticate: Negotiate and Kerberos
                       (200 IdentifyResponse when the request carries WSMANIDENTIFY: unauthenticated)
           "identify"  POST /wsman -> 200 IdentifyResponse, whatever the headers
           "basic"     like "winrm" but also offers Basic
           "credssp"   like "winrm" but also offers CredSSP
           "https"     a plain HTTPS web server (200 text/html for everything): not WinRM
           "handler"   your own callable ``handler(request: HttpRequest) -> HttpResponse``
    HangServer(host)   accepts TCP and never sends a byte (a handshake that never completes)

``free_port(host)`` gives a free TCP port (for a "closed port" target). Everything binds to
127.0.0.0/8 only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EKU_OIDS = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code": ExtendedKeyUsageOID.CODE_SIGNING,
}
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {  # "sha1" also works (RSA CA only)
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}


def days_from_now(days: float) -> dt.datetime:
    """A UTC datetime *days* from now (negative: in the past)."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


@functools.lru_cache(maxsize=16)
def _key(key_type: str, key_size: int, slot: int = 0) -> Any:
    """A cached private key (RSA generation is slow; tests don't need unique keys)."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@dataclass
class Leaf:
    """A certificate with its key (and the CA that issued it, if any)."""

    cert: x509.Certificate
    key: Any
    issuer_pem: bytes = b""

    @property
    def cert_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        """The certificate alone, DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        """The private key, PKCS#8 PEM, unencrypted."""
        return _pem_key(self.key)

    @property
    def thumbprint(self) -> str:
        """SHA-1 of the DER certificate, uppercase hex (what Windows calls the thumbprint)."""
        return hashlib.sha1(self.cert_der).hexdigest().upper()

    def write(self, directory: str | Path, stem: str = "leaf") -> tuple[Path, Path]:
        """Write ``stem.crt`` (leaf + issuer) and ``stem.key`` in *directory*; return both paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = d / f"{stem}.crt", d / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem + self.issuer_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path


def _ca_key_usage() -> x509.KeyUsage:
    """Key usage of a CA certificate (root or intermediate): certificate and CRL signing."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


class TestCA:
    """A self-signed root CA whose CN you choose; issues leaf certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, common_name: str = "Opsbook Test Root CA", *, key_type: str = "rsa", slot: int = 0) -> None:
        self.common_name = common_name
        self.key = _key(key_type, 2048, slot + 100)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = days_from_now(0)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def intermediate(
        self,
        common_name: str,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        slot: int = 7,
    ) -> TestCA:
        """An intermediate (issuing) CA signed by this one; its leaves' ``write`` sends the intermediate too.

        Use ``dataclasses.replace(leaf, issuer_pem=b"")`` for a server that does not send it.
        """
        sub = TestCA.__new__(TestCA)
        sub.common_name = common_name
        sub.key = _key("rsa", 2048, slot + 200)
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        sub.cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(sub.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or days_from_now(-30))
            .not_valid_after(not_after or days_from_now(1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(sub.key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return sub

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: str | Path, name: str = "ca.pem") -> Path:
        """Write the CA certificate as PEM in *directory*; return its path."""
        path = Path(directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.cert_pem)
        return path

    def issue(
        self,
        common_name: str,
        *,
        names: Sequence[str] | None = None,
        days: float = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        eku: Sequence[str] | None = ("server",),
        key_type: str = "rsa",
        key_size: int = 2048,
        hash_name: str = "sha256",
    ) -> Leaf:
        """Issue a leaf for *common_name* (SANs default to ``[common_name]``; ``names=[]`` for none).

        ``eku``: names from ``server``, ``client``, ``code`` (``None``: no EKU extension).
        Validity: ``not_before`` (default yesterday) to ``not_after`` (default now + *days*).
        """
        return _build_leaf(
            self.cert.subject,
            self.key,
            common_name,
            names=[common_name] if names is None else list(names),
            not_before=not_before or days_from_now(-1),
            not_after=not_after or days_from_now(days),
            eku=eku,
            key_type=key_type,
            key_size=key_size,
            hash_name=hash_name,
            issuer_pem=self.cert_pem,
            ca_key_id=self.cert,
        )


def _build_leaf(
    issuer: x509.Name,
    signing_key: Any,
    common_name: str,
    *,
    names: list[str],
    not_before: dt.datetime,
    not_after: dt.datetime,
    eku: Sequence[str] | None,
    key_type: str,
    key_size: int,
    hash_name: str,
    issuer_pem: bytes,
    ca_key_id: x509.Certificate | None,
    key: Any = None,
) -> Leaf:
    key = key or _key(key_type, key_size)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([EKU_OIDS[e] for e in eku]), critical=False)
    if ca_key_id is not None:
        ski = ca_key_id.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    if hash_name == "sha1":
        cert = _sign_sha1(builder.sign(signing_key, hashes.SHA256()), signing_key)
    else:
        cert = builder.sign(signing_key, HASHES[hash_name]())
    return Leaf(cert, key, issuer_pem)


_SHA256_RSA_OID = bytes.fromhex("06092a864886f70d01010b")
_SHA1_RSA_OID = bytes.fromhex("06092a864886f70d010105")


def _sign_sha1(cert: x509.Certificate, signing_key: Any) -> x509.Certificate:
    """Re-sign *cert* with SHA-1 (cryptography refuses to build SHA-1 certificates).

    sha256WithRSAEncryption and sha1WithRSAEncryption OIDs have the same length and an
    RSA signature keeps its length, so the DER is patched in place: swap the OIDs, then
    replace the signature with one over the patched TBS.
    """
    from cryptography.hazmat.primitives.asymmetric import padding

    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    new_tbs = tbs.replace(_SHA256_RSA_OID, _SHA1_RSA_OID)
    signature = signing_key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA1())
    assert len(signature) == len(cert.signature)
    start = der.index(tbs)
    rest = der[start + len(tbs) :].replace(_SHA256_RSA_OID, _SHA1_RSA_OID)
    rest = rest[: -len(signature)] + signature
    return x509.load_der_x509_certificate(der[:start] + new_tbs + rest)


def self_signed(common_name: str, *, names: Sequence[str] | None = None, days: float = 365) -> Leaf:
    """A self-signed leaf (Server Auth EKU, not a CA) for *common_name*."""
    key = _key("rsa", 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return _build_leaf(
        name,
        key,
        common_name,
        names=[common_name] if names is None else list(names),
        not_before=days_from_now(-1),
        not_after=days_from_now(days),
        eku=("server",),
        key_type="rsa",
        key_size=2048,
        hash_name="sha256",
        issuer_pem=b"",
        ca_key_id=None,
        key=key,
    )


#: The certificate kinds :func:`make_leaf` knows (the classic WinRM listener problems).
LEAF_KINDS = (
    "valid",
    "expired",
    "expiring",
    "not_yet_valid",
    "wrong_ca",
    "self_signed",
    "name_mismatch",
    "client_eku",
    "sha1",
    "weak_key",
)


@functools.lru_cache(maxsize=4)
def _other_ca() -> TestCA:
    return TestCA("Some Other Root CA", slot=1)


def make_leaf(kind: str, ca: TestCA, host: str, *, names: Sequence[str] | None = None) -> Leaf:
    """A leaf for *host* of one of :data:`LEAF_KINDS` (``expiring``: 10 days left)."""
    if kind == "valid":
        return ca.issue(host, names=names)
    if kind == "expired":
        return ca.issue(host, names=names, not_before=days_from_now(-400), not_after=days_from_now(-5))
    if kind == "expiring":
        return ca.issue(host, names=names, days=10.5)
    if kind == "not_yet_valid":
        return ca.issue(host, names=names, not_before=days_from_now(5), not_after=days_from_now(400))
    if kind == "wrong_ca":
        return _other_ca().issue(host, names=names)
    if kind == "self_signed":
        return self_signed(host, names=names)
    if kind == "name_mismatch":
        return ca.issue("other.corp.test", names=["other.corp.test"])
    if kind == "client_eku":
        return ca.issue(host, names=names, eku=["client"])
    if kind == "sha1":
        return ca.issue(host, names=names, hash_name="sha1")
    if kind == "weak_key":
        return ca.issue(host, names=names, key_size=1024)
    raise ValueError(f"unknown leaf kind {kind!r}; expected one of {LEAF_KINDS}")


def server_context(
    leaf: Leaf,
    *,
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLContext:
    """A server-side context presenting *leaf* (+ its issuer): TLS 1.2+ unless told, weak certs allowed.

    For a legacy server pass ``min_version=ssl.TLSVersion.TLSv1`` (OpenSSL here allows TLS 1.0
    at security level 0, which this context uses).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point of the peer
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = min_version
        ctx.maximum_version = max_version
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = leaf.write(tmp)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


# ------------------------------------------------------------------ servers

IDENTIFY_RESPONSE = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:IdentifyResponse>"
    "<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion>"
    "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
    "<wsmid:ProductVersion>OS: 10.0.20348 SP: 0.0 Stack: 3.0</wsmid:ProductVersion>"
    "<wsmid:SecurityProfiles><wsmid:SecurityProfileName>"
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos"
    "</wsmid:SecurityProfileName></wsmid:SecurityProfiles>"
    "</wsmid:IdentifyResponse></s:Body></s:Envelope>"
)


@dataclass
class HttpRequest:
    """One request a server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpResponse:
    """A response for a ``handler`` server: status, headers (list: repeats allowed), body."""

    status: int = 200
    reason: str = "OK"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _winrm_handler(schemes: Sequence[str], identify_always: bool) -> Callable[[HttpRequest], HttpResponse]:
    def handle(req: HttpRequest) -> HttpResponse:
        server = [("Server", "Microsoft-HTTPAPI/2.0")]
        if req.path.lower() != "/wsman" or req.method != "POST":
            return HttpResponse(404, "Not Found", server, b"")
        unauth = req.headers.get("wsmanidentify", "").lower() == "unauthenticated"
        if identify_always or (unauth and b"Identify" in req.body):
            return HttpResponse(
                200,
                "OK",
                [*server, ("Content-Type", "application/soap+xml;charset=UTF-8")],
                IDENTIFY_RESPONSE.encode(),
            )
        return HttpResponse(401, "", [*server, *(("WWW-Authenticate", s) for s in schemes)], b"")

    return handle


def _web_handler(req: HttpRequest) -> HttpResponse:
    return HttpResponse(200, "OK", [("Server", "nginx"), ("Content-Type", "text/html")], b"<html>hello</html>")


MODES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "winrm": _winrm_handler(("Negotiate", "Kerberos"), identify_always=False),
    "identify": _winrm_handler(("Negotiate", "Kerberos"), identify_always=True),
    "basic": _winrm_handler(("Negotiate", "Kerberos", 'Basic realm="WSMAN"'), identify_always=False),
    "credssp": _winrm_handler(("Negotiate", "Kerberos", "CredSSP"), identify_always=False),
    "https": _web_handler,
}


def _read_request(conn: ssl.SSLSocket) -> HttpRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return HttpRequest(parts[0], parts[1], headers, body)


class _BaseServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("test servers listen on loopback only")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(256)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self._stopping = threading.Event()
        self._conns: list[socket.socket] = []
        #: TCP connections accepted so far.
        self.accepted = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"peer-{host}:{self.port}")
        self._thread.start()

    @property
    def target(self) -> str:
        """``host:port`` of this server (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                self.accepted += 1
            self._on_connection(conn)

    def _on_connection(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop accepting, close every connection, join the accept thread."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> _BaseServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HangServer(_BaseServer):
    """Accepts TCP connections and never sends a byte (the handshake never completes)."""

    def _on_connection(self, conn: socket.socket) -> None:
        pass  # keep it open until stop()

    def __enter__(self) -> HangServer:
        return self


class TlsServer(_BaseServer):
    """A threaded TLS server on loopback that answers HTTP like a WinRM listener (or not).

    ``mode`` is one of :data:`MODES` or ``"handler"`` with *handler*; ``context`` overrides
    the server context made from *leaf* (to restrict TLS versions, for instance).
    """

    def __init__(
        self,
        leaf: Leaf | None = None,
        *,
        mode: str = "winrm",
        host: str = "127.0.0.1",
        port: int = 0,
        context: ssl.SSLContext | None = None,
        handler: Callable[[HttpRequest], HttpResponse] | None = None,
    ) -> None:
        if context is None:
            if leaf is None:
                raise ValueError("give a leaf or a context")
            context = server_context(leaf)
        self.handler = handler if mode == "handler" and handler else MODES[mode]
        self.sni_seen: list[str | None] = []
        self.requests: list[HttpRequest] = []
        self.handshakes = 0

        def sni(sslobj: Any, name: str | None, _ctx: Any) -> None:
            self.sni_seen.append(name)

        context.sni_callback = sni
        self.context = context
        super().__init__(host, port)

    def __enter__(self) -> TlsServer:
        return self

    def _on_connection(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        with self._lock:
            self.handshakes += 1  # completed server-side handshakes (the client may finish first)
        try:
            req = _read_request(conn)
            if req is None:
                return
            self.requests.append(req)
            resp = self.handler(req)
            lines = [f"HTTP/1.1 {resp.status} {resp.reason}".rstrip()]
            lines += [f"{k}: {v}" for k, v in resp.headers]
            lines += [f"Content-Length: {len(resp.body)}", "Connection: close", "", ""]
            conn.sendall("\r\n".join(lines).encode("latin-1") + resp.body)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (bind, read the port, close)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
