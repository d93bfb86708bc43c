"""The unauthenticated WS-Management probe: is this HTTPS port a WinRM listener?

An Identify request (``POST /wsman``, no credentials) on an open TLS connection. WinRM
answers ``401`` with its authentication schemes (``Negotiate``, ``Kerberos``, maybe
``Basic``, ``CredSSP``) or, when unauthenticated Identify is allowed, ``200`` with an
``IdentifyResponse``. Anything else is not a WinRM listener.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass, field

IDENTIFY_BODY = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
)
MAX_RESPONSE = 256 * 1024
WINRM_SCHEMES = {"negotiate", "kerberos"}


@dataclass
class WsmanAnswer:
    """What the listener answered to the Identify request."""

    status: int | None = None
    reason: str = ""
    server: str = ""
    auth_schemes: list[str] = field(default_factory=list)
    identify: bool = False
    product_vendor: str = ""
    product_version: str = ""
    error: str = ""

    @property
    def is_winrm(self) -> bool:
        """A WinRM listener: IdentifyResponse, or 401 offering Negotiate/Kerberos (or Basic from HTTP.sys)."""
        if self.identify:
            return True
        if self.status != 401:
            return False
        schemes = {s.lower() for s in self.auth_schemes}
        if schemes & WINRM_SCHEMES:
            return True
        return "basic" in schemes and self.server.lower().startswith("microsoft-httpapi")

    @property
    def basic_offered(self) -> bool:
        """Basic authentication offered (the password travels to the server as is)."""
        return any(s.lower() == "basic" for s in self.auth_schemes)

    @property
    def credssp_offered(self) -> bool:
        """CredSSP offered (the client delegates its reusable credentials to the server)."""
        return any(s.lower() == "credssp" for s in self.auth_schemes)


def identify_request(host_header: str) -> bytes:
    """The raw HTTP request for an unauthenticated WS-Man Identify."""
    body = IDENTIFY_BODY.encode()
    head = (
        "POST /wsman HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        "Content-Type: application/soap+xml;charset=UTF-8\r\n"
        "User-Agent: opsbook winrm check\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _read_response(sock: socket.socket, deadline: float) -> bytes:
    """Read until the server closes, the declared body is complete, or *deadline* passes."""
    data = b""
    need: int | None = None
    chunked = False
    while len(data) < MAX_RESPONSE:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if data:
                break
            raise TimeoutError
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if data:
                break
            raise
        if not chunk:
            break
        data += chunk
        if need is None and not chunked and b"\r\n\r\n" in data:
            head, _, _ = data.partition(b"\r\n\r\n")
            match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
            if match:
                need = len(head) + 4 + int(match.group(1))
            chunked = need is None and re.search(rb"(?im)^transfer-encoding:.*\bchunked\b", head) is not None
        if need is not None and len(data) >= need:
            break
        if chunked and data.endswith(b"\r\n0\r\n\r\n"):  # the last chunk: a kept-alive server says no more
            break
    return data


def clean(text: str, limit: int = 120) -> str:
    """Peer-controlled text made safe to show: no control characters, bounded length."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_response(data: bytes) -> WsmanAnswer:
    """Classify raw HTTP response bytes."""
    answer = WsmanAnswer()
    if not data:
        answer.error = "no answer to POST /wsman"
        return answer
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})\s*(.*)", lines[0])
    if not match:
        answer.error = "the answer to POST /wsman is not HTTP"
        return answer
    answer.status = int(match.group(1))
    answer.reason = clean(match.group(2).strip(), 60)
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if name == "server":
            answer.server = clean(value)
        elif name == "www-authenticate":
            answer.auth_schemes.extend(clean(s, 40) for s in _schemes(value))
    if answer.status == 200 and b"IdentifyResponse" in body:
        answer.identify = True
        text = body.decode("utf-8", "replace")
        vendor = re.search(r"<(?:\w+:)?ProductVendor>([^<]*)<", text)
        version = re.search(r"<(?:\w+:)?ProductVersion>([^<]*)<", text)
        answer.product_vendor = clean(vendor.group(1).strip()) if vendor else ""
        answer.product_version = clean(version.group(1).strip()) if version else ""
    return answer


def _schemes(value: str) -> list[str]:
    """Scheme names of one WWW-Authenticate value (several may be comma-joined)."""
    out = []
    for part in value.split(","):
        token = part.strip().split(" ", 1)[0]
        if token and "=" not in token:
            out.append(token)
    return out


def identify(sock: socket.socket, host_header: str, timeout: float) -> WsmanAnswer:
    """Send the Identify request on an open (TLS) connection and classify the answer (within *timeout*)."""
    try:
        sock.settimeout(timeout)
        sock.sendall(identify_request(host_header))
        data = _read_response(sock, time.monotonic() + timeout)
    except TimeoutError:
        return WsmanAnswer(error="no answer to POST /wsman within the timeout")
    except ssl.SSLError as exc:
        if getattr(exc, "reason", None) == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
            return WsmanAnswer(error="the server requires a TLS client certificate before any HTTP request")
        return WsmanAnswer(error=f"TLS error during POST /wsman: {getattr(exc, 'reason', None) or exc}")
    except OSError as exc:
        return WsmanAnswer(error=f"connection failed during POST /wsman: {exc.strerror or exc}")
    return parse_response(data)
