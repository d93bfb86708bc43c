"""UDP reachability in three states, with a real protocol message to tell open from filtered.

A UDP service answers only a message it understands, so an empty datagram proves
nothing. :func:`udp_probe` sends a real request from one of the payload builders and
classifies like PortQry:

* ``open``: a reply came back (``reply`` holds it: the caller checks that it speaks the
  protocol asked, see :mod:`runbooks.probes.adproto`);
* ``closed``: an ICMP port unreachable came back (``ECONNREFUSED`` on a connected socket);
* ``filtered``: nothing came back within the timeout (a firewall dropping the datagram,
  or a service that ignored the request), an ICMP admin-prohibited / host-unreachable
  (a firewall REJECT), or this machine's firewall refused to send (``EPERM``).

Payload builders: :func:`dns_payload` (53/udp), :func:`cldap_payload` (389/udp, a
connectionless LDAP rootDSE search) and :func:`kerberos_payload` (88/udp, an AS-REQ).
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .concurrency import FD_BUDGET
from .tcp import PortState, state_of_errno


@dataclass(frozen=True)
class UdpResult:
    """Outcome of one UDP probe."""

    host: str
    port: int
    state: PortState
    latency_s: float
    error: str = ""
    reply_bytes: int = 0
    #: The first datagram that came back (empty when none).
    reply: bytes = b""


def udp_probe(host: str, port: int, payload: bytes, timeout: float) -> UdpResult:
    """Send *payload* to *host*:*port* over UDP and classify the port as open, closed or filtered.

    *host* should be an address (a name is resolved with the system resolver). The socket
    is connected, so the kernel reports an ICMP port unreachable as ``ECONNREFUSED``.
    """
    with FD_BUDGET.hold():  # one budget for the whole process: concurrent entries share it
        return _udp_probe(host, port, payload, timeout)


def _udp_probe(host: str, port: int, payload: bytes, timeout: float) -> UdpResult:
    start = time.perf_counter()

    def result(state: PortState, error: str = "", data: bytes = b"") -> UdpResult:
        return UdpResult(host, port, state, time.perf_counter() - start, error, len(data), data)

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        return result(PortState.ERROR, f"cannot resolve: {exc.strerror}")
    family, socktype, proto, _name, sockaddr = infos[0]
    deadline = time.monotonic() + timeout
    with socket.socket(family, socktype, proto) as sock:
        try:
            sock.connect(sockaddr)
            sock.send(payload)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return result(PortState.FILTERED, "no answer within the timeout")
                sock.settimeout(remaining)
                data = sock.recv(65535)
                return result(PortState.OPEN, data=data)
        except TimeoutError:
            return result(PortState.FILTERED, "no answer within the timeout")
        except OSError as exc:
            state = state_of_errno(exc.errno)
            if state is PortState.CLOSED:
                return result(state, exc.strerror or "port unreachable")
            return result(state, exc.strerror or exc.__class__.__name__)


# --------------------------------------------------------------------------- DNS


def dns_payload(name: str, qtype: int = 6, txid: int | None = None) -> bytes:
    """A DNS query for *name* (default type SOA), recursion desired, class IN."""
    ident = secrets.randbelow(0x10000) if txid is None else txid
    header = ident.to_bytes(2, "big") + b"\x01\x00" + b"\x00\x01" + b"\x00\x00" * 3
    qname = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
            qname += bytes([len(raw)]) + raw
    return header + qname + b"\x00" + qtype.to_bytes(2, "big") + b"\x00\x01"


# --------------------------------------------------------------------------- BER / DER


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _int(value: int, tag: int = 0x02) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _tlv(tag, raw)


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _ctx(n: int, content: bytes) -> bytes:
    """Explicit context tag [n] (constructed)."""
    return _tlv(0xA0 | n, content)


# --------------------------------------------------------------------------- CLDAP


def cldap_payload(message_id: int = 1, attributes: tuple[str, ...] = ("currentTime", "dnsHostName")) -> bytes:
    """A connectionless LDAP (CLDAP) search of the rootDSE: base "", scope base, (objectClass=*).

    Active Directory answers it on 389/udp (the DC locator uses the same channel).
    """
    search = _tlv(
        0x63,  # [APPLICATION 3] SearchRequest
        _tlv(0x04, b"")  # baseObject ""
        + _tlv(0x0A, b"\x00")  # scope baseObject
        + _tlv(0x0A, b"\x00")  # derefAliases neverDerefAliases
        + _int(0)  # sizeLimit
        + _int(0)  # timeLimit
        + _tlv(0x01, b"\x00")  # typesOnly FALSE
        + _tlv(0x87, b"objectClass")  # filter: present [7] objectClass
        + _seq(*(_tlv(0x04, a.encode("ascii")) for a in attributes)),
    )
    return _seq(_int(message_id), search)


# --------------------------------------------------------------------------- Kerberos


def _kstring(value: str) -> bytes:
    return _tlv(0x1B, value.encode("ascii"))  # GeneralString


def _principal(name_type: int, *parts: str) -> bytes:
    return _seq(_ctx(0, _int(name_type)), _ctx(1, _seq(*(_kstring(p) for p in parts))))


def kerberos_payload(realm: str, client: str = "opsbook-probe", nonce: int | None = None) -> bytes:
    """A Kerberos AS-REQ (RFC 4120) for *client*@*REALM* asking for krbtgt/REALM.

    A KDC answers it with a KRB-ERROR (pre-authentication required, or unknown client);
    any answer proves 88/udp is open. No credential is involved.
    """
    realm = realm.upper()
    till = (datetime.now(UTC) + timedelta(hours=10)).strftime("%Y%m%d%H%M%SZ").encode("ascii")
    body = _seq(
        _ctx(0, _tlv(0x03, b"\x00\x50\x80\x00\x00")),  # kdc-options: forwardable, renewable, canonicalize
        _ctx(1, _principal(1, client)),  # cname NT-PRINCIPAL
        _ctx(2, _kstring(realm)),
        _ctx(3, _principal(2, "krbtgt", realm)),  # sname NT-SRV-INST
        _ctx(5, _tlv(0x18, till)),  # till (GeneralizedTime)
        _ctx(7, _int(secrets.randbelow(0x7FFFFFFF) if nonce is None else nonce)),
        _ctx(8, _seq(_int(18), _int(17), _int(23))),  # aes256, aes128, rc4-hmac
    )
    kdc_req = _seq(_ctx(1, _int(5)), _ctx(2, _int(10)), _ctx(4, body))
    return _tlv(0x6A, kdc_req)  # [APPLICATION 10] AS-REQ


def ntp_payload() -> bytes:
    """An NTP v4 client request (mode 3) whose transmit timestamp is now (the server echoes it)."""
    now = time.time() + 2208988800
    stamp = int(now).to_bytes(4, "big") + int((now % 1) * 2**32).to_bytes(4, "big")
    return b"\x23" + b"\x00" * 39 + stamp


def payload_for(port: int, domain: str) -> bytes:
    """The request to send to UDP *port* of a domain controller of *domain*."""
    if port == 53:
        return dns_payload(domain)
    if port == 389:
        return cldap_payload()
    if port in (88, 464):
        return kerberos_payload(domain)
    if port == 123:
        return ntp_payload()
    return b"\x00"
