"""A fake WinRM HTTPS listener for tests: real TLS, real HTTP, enough WS-Management for pywinrm.

It runs a threaded ``http.server`` on 127.0.0.x with a certificate from the test CA
(:mod:`tests.tlspeers`) and answers the WinRS shell operations pywinrm sends: Create (shell),
Command, Receive (canned stdout as a base64 stream, then CommandState Done with an exit
code), Signal and Delete. Authentication is checked for real:

* NTLM (``WWW-Authenticate: Negotiate``) with pyspnego's NTLM acceptor: the three-message
  exchange on one keep-alive connection, the NT hash computed from the configured password,
  so a wrong password fails exactly as against Windows (HTTP 401);
* Basic, only when ``basic=True`` (WinRM's default is off);
* client certificates (``client_ca_pem``): the TLS layer verifies the client certificate
  against that CA and the request carries WinRM's ``.../secprofile/https/mutual`` header.

The connection stays authenticated after NTLM, like HTTP.sys. Everything is recorded
(``requests``, ``commands``, ``auth_log``) so tests can assert what the client sent.
Loopback only.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import ipaddress
import os
import socket
import ssl
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsbook.runbooks.winrm_https.audit_script import make_output
from tests.tlspeers import Leaf, TestCA, server_context

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "create",
    f"{SHELL}/Command": "command",
    f"{SHELL}/Receive": "receive",
    f"{SHELL}/Signal": "signal",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "delete",
}
MUTUAL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"
_env_lock = threading.Lock()


@dataclass
class SoapRequest:
    """One authenticated SOAP request the fake received."""

    action: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeBehaviour:
    """What the fake answers: the command's stdout/stderr/exit code, or a hang."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    hang: bool = False  # Receive never reports Done (answers "Running" after a short wait)
    receive_delay: float = 0.0


def cert_entry(
    leaf: Leaf,
    *,
    has_private_key: bool = True,
    template: str = "WinRM Web Server",
    ekus: list[str] | None = None,
    root: TestCA | None = None,
) -> dict[str, Any]:
    """A ``Certificates`` entry as the remote audit script reports *leaf*.

    ``Root``/``RootThumbprint``: the root CA its chain builds to (*root*; by default the
    issuer when that is a self-signed CA, else none: a leaf from an intermediate needs *root*).
    """
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = leaf.cert
    root_cert = root.cert if root is not None else None
    if root_cert is None and leaf.issuer_pem:
        issuer = x509.load_pem_x509_certificate(leaf.issuer_pem)
        root_cert = issuer if issuer.subject == issuer.issuer else None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    if ekus is None:
        try:
            ekus = [o.dotted_string for o in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
        except x509.ExtensionNotFound:
            ekus = []

    def win_dn(name: x509.Name) -> str:  # Windows shows the most specific RDN first, ", " separated
        return ", ".join(f"{a.rfc4514_attribute_name}={a.value}" for a in reversed(list(name)))

    return {
        "Thumbprint": leaf.thumbprint,
        "Subject": win_dn(cert.subject),
        "Issuer": win_dn(cert.issuer),
        "DnsNameList": dns if len(dns) != 1 else dns[0],  # PowerShell JSON: one element -> scalar
        "NotBefore": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "NotAfter": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "EnhancedKeyUsageList": ekus,
        "HasPrivateKey": has_private_key,
        "Template": template,
        "Root": win_dn(root_cert.subject) if root_cert is not None else "",
        "RootThumbprint": hashlib.sha1(root_cert.public_bytes(Encoding.DER)).hexdigest().upper()
        if root_cert is not None
        else "",
    }


def listener_entry(
    transport: str = "HTTPS",
    *,
    port: int = 5986,
    hostname: str = "",
    thumbprint: str = "",
    address: str = "*",
    enabled: bool = True,
    source: str = "",
) -> dict[str, Any]:
    """A ``Listeners`` entry as the remote audit script reports it."""
    return {
        "Name": f"Listener_{abs(hash((transport, address))) % 10**10}",
        "Keys": [f"Transport={transport}", f"Address={address}"],
        "Address": address,
        "Transport": transport,
        "Port": str(port),
        "Hostname": hostname,
        "Enabled": "true" if enabled else "false",
        "URLPrefix": "wsman",
        "CertificateThumbprint": thumbprint,
        "Source": source,
    }


def inventory(
    listeners: list[dict[str, Any]],
    certificates: list[dict[str, Any]],
    *,
    computer: str = "SRV1",
    ssl_hash: str | None = None,
    port: int = 5986,
) -> dict[str, Any]:
    """A whole audit document (what the remote script's JSON holds)."""
    ssl: list[dict[str, str]] = []
    if ssl_hash:
        ssl = [{"IpPort": f"0.0.0.0:{port}", "Hash": ssl_hash}]
    return {"Computer": computer, "Listeners": listeners, "SslCert": ssl, "Certificates": certificates}


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" xmlns:rsp="{NS["rsp"]}">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


class FakeWinRM:
    """The fake listener. Use as a context manager; ``url``/``target``/``host``/``port``."""

    def __init__(
        self,
        leaf: Leaf,
        *,
        host: str = "127.0.0.1",
        users: dict[str, str] | None = None,
        basic: bool = False,
        ntlm: bool = True,
        behaviour: FakeBehaviour | None = None,
        client_ca_pem: bytes | None = None,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the fake WinRM server listens on loopback only")
        self.leaf = leaf
        self.users = dict(users or {})
        self.basic = basic
        self.ntlm = ntlm
        self.behaviour = behaviour or FakeBehaviour()
        self.requests: list[SoapRequest] = []
        self.commands: list[str] = []  # the Command lines (command + arguments)
        self.auth_log: list[str] = []  # "ntlm-ok user", "ntlm-fail", "basic-ok user", ...
        self.shells: set[str] = set()
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-winrm-")
        self._user_file = Path(self._tmp.name) / "ntlm-users"
        lines = []
        for user, password in self.users.items():
            domain, _, name = user.rpartition("\\")
            if ":" in password or ":" in user:
                raise ValueError("NTLM_USER_FILE entries cannot hold ':'")
            lines.append(f"{domain}:{name}:{password}\n")
        self._user_file.write_text("".join(lines), encoding="utf-8")
        self._user_file.chmod(0o600)
        context = server_context(leaf)
        self.client_certs = client_ca_pem is not None
        if client_ca_pem is not None:  # certificate authentication: ask for a client certificate
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
        fake = self

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self) -> tuple[Any, Any]:
                sock, addr = self.socket.accept()
                return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # TLS probes that close early, clients that give up: not our concern

        class Handler(_Handler):
            server_fake = fake

        self._server = Server((host, 0), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-winrm-{host}:{self.port}",
        )
        self._thread.start()

    @property
    def target(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The WS-Management URL."""
        return f"https://{self.host}:{self.port}/wsman"

    def actions(self) -> list[str]:
        """The SOAP operations received, in order (create, command, receive, ...)."""
        return [r.action for r in self.requests]

    def ntlm_accept(self, token: bytes, state: dict[str, Any]) -> bytes | None:
        """Feed one NTLM token to the connection's acceptor; the next token, or b'' when done.

        Returns None when the logon is refused.
        """
        import spnego

        with _env_lock:
            previous = os.environ.get("NTLM_USER_FILE")
            os.environ["NTLM_USER_FILE"] = str(self._user_file)
            try:
                if len(token) >= 12 and token[8:12] == b"\x01\x00\x00\x00":
                    state["ctx"] = spnego.server(protocol="ntlm")
                ctx = state.get("ctx")
                if ctx is None:
                    return None
                try:
                    out = ctx.step(token)
                except Exception:
                    state.pop("ctx", None)
                    self.auth_log.append("ntlm-fail")
                    return None
                if ctx.complete:
                    self.auth_log.append(f"ntlm-ok {ctx.client_principal}")
                    state["user"] = ctx.client_principal
                return out or b""
            finally:
                if previous is None:
                    os.environ.pop("NTLM_USER_FILE", None)
                else:
                    os.environ["NTLM_USER_FILE"] = previous

    def basic_accept(self, value: str) -> str | None:
        """The user name when the Basic credentials are right, else None."""
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        ok = self.basic and self.users.get(user) == password
        self.auth_log.append(f"basic-{'ok' if ok else 'fail'} {user}")
        return user if ok else None

    def soap(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Answer one authenticated SOAP request: (HTTP status, response body)."""
        root = ET.fromstring(body)
        action_uri = (root.findtext("s:Header/a:Action", "", NS) or "").strip()
        message_id = (root.findtext("s:Header/a:MessageID", "", NS) or "").strip()
        action = ACTIONS.get(action_uri, action_uri)
        self.requests.append(SoapRequest(action, body, dict(headers or {})))
        if action == "create":
            shell = str(uuid.uuid4()).upper()
            self.shells.add(shell)
            xml = (
                '<x:ResourceCreated xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">'
                f"<a:Address>{self.url}</a:Address><a:ReferenceParameters>"
                f"<w:ResourceURI>{SHELL}/cmd</w:ResourceURI>"
                f'<w:SelectorSet><w:Selector Name="ShellId">{shell}</w:Selector></w:SelectorSet>'
                "</a:ReferenceParameters></x:ResourceCreated>"
                f"<rsp:Shell><rsp:ShellId>{shell}</rsp:ShellId></rsp:Shell>"
            )
            return 200, _envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", message_id, xml)
        if action == "command":
            line = root.find("s:Body/rsp:CommandLine", NS)
            cmd = line.findtext("rsp:Command", "", NS) if line is not None else ""
            args = line.findtext("rsp:Arguments", "", NS) if line is not None else ""
            self.commands.append(f"{cmd} {args}".strip())
            command_id = str(uuid.uuid4()).upper()
            xml = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
            return 200, _envelope(f"{SHELL}/CommandResponse", message_id, xml)
        if action == "receive":
            stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            command_id = stream.get("CommandId", "") if stream is not None else ""
            behaviour = self.behaviour
            if behaviour.receive_delay:
                time.sleep(behaviour.receive_delay)
            if behaviour.hang:
                time.sleep(0.2)
                xml = (
                    f'<rsp:ReceiveResponse><rsp:CommandState CommandId="{command_id}" '
                    f'State="{SHELL}/CommandState/Running"/></rsp:ReceiveResponse>'
                )
                return 200, _envelope(f"{SHELL}/ReceiveResponse", message_id, xml)
            out = base64.b64encode(behaviour.stdout).decode()
            err = base64.b64encode(behaviour.stderr).decode()
            xml = (
                "<rsp:ReceiveResponse>"
                f'<rsp:Stream Name="stdout" CommandId="{command_id}">{out}</rsp:Stream>'
                f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"></rsp:Stream>'
                + (f'<rsp:Stream Name="stderr" CommandId="{command_id}">{err}</rsp:Stream>' if err else "")
                + f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"></rsp:Stream>'
                f'<rsp:CommandState CommandId="{command_id}" State="{SHELL}/CommandState/Done">'
                f"<rsp:ExitCode>{behaviour.exit_code}</rsp:ExitCode></rsp:CommandState>"
                "</rsp:ReceiveResponse>"
            )
            return 200, _envelope(f"{SHELL}/ReceiveResponse", message_id, xml)
        if action == "signal":
            return 200, _envelope(f"{SHELL}/SignalResponse", message_id, "<rsp:SignalResponse/>")
        if action == "delete":
            return 200, _envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", message_id, "")
        return 500, _envelope(
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault",
            message_id,
            f"<s:Fault><s:Reason><s:Text>unsupported action {action_uri}</s:Text></s:Reason></s:Fault>",
        )

    def decoded_scripts(self) -> list[str]:
        """The PowerShell scripts received as ``-EncodedCommand`` (UTF-16LE base64), decoded."""
        scripts = []
        for line in self.commands:
            parts = line.split()
            for i, part in enumerate(parts[:-1]):
                if part.lower() == "-encodedcommand":
                    scripts.append(base64.b64decode(parts[i + 1]).decode("utf-16-le"))
        return scripts

    def stop(self) -> None:
        """Stop serving and clean up."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._tmp.cleanup()

    def __enter__(self) -> FakeWinRM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeWinRM
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(10)
        try:
            self.request.do_handshake()
        except (OSError, ssl.SSLError):
            with contextlib.suppress(OSError):
                self.request.close()
            raise
        self.auth_state: dict[str, Any] = {}
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _challenge(self, token: bytes | None = None) -> None:
        fake = self.server_fake
        headers = []
        if token:
            headers.append(("WWW-Authenticate", "Negotiate " + base64.b64encode(token).decode()))
        else:
            if fake.ntlm:
                headers.append(("WWW-Authenticate", "Negotiate"))
            if fake.basic:
                headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        self._send(401, b"", headers)

    def do_POST(self) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.lower() != "/wsman":
            self._send(404)
            return
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("negotiate", "ntlm") and fake.ntlm and value:
            try:
                token = base64.b64decode(value)
            except ValueError:
                self._challenge()
                return
            out = fake.ntlm_accept(token, self.auth_state)
            if out is None:
                self._challenge()
                return
            if "user" not in self.auth_state:
                self._challenge(out)
                return
        elif auth == MUTUAL and fake.client_certs:
            peer = self.request.getpeercert()
            if not peer:
                fake.auth_log.append("cert-fail")
                self._challenge()
                return
            subject = dict(x[0] for x in peer.get("subject", ()))
            fake.auth_log.append(f"cert-ok {subject.get('commonName', '')}")
        elif scheme.lower() == "basic":
            if fake.basic_accept(value) is None:
                self._challenge()
                return
        elif "user" not in self.auth_state:
            self._challenge()
            return
        if not body:
            self._send(200)
            return
        status, answer = fake.soap(body, {k.lower(): v for k, v in self.headers.items()})
        self._send(status, answer)


def pick_loopback(index: int) -> str:
    """A distinct 127.0.0.x address for a test server (x from 10 upward)."""
    return f"127.0.0.{10 + index % 200}"


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port (used by tests of 'closed' targets)."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) != 0


def canned(document: dict[str, Any]) -> FakeBehaviour:
    """A behaviour that prints *document* the way the audit script does."""
    return FakeBehaviour(stdout=make_output(document))
