"""Does a reply speak the protocol asked? DNS, LDAP/CLDAP and Kerberos answers, parsed strictly.

An open port proves little: a reply counts only when it parses as the protocol asked — a DNS
response with our transaction id, an LDAP message with our message id, a Kerberos KRB-ERROR or
AS-REP. The parsed answers also carry the server's clock: the rootDSE's ``currentTime``
(readable anonymously by design) and a KRB-ERROR's ``stime``, which give each DC's clock skew.

The BER reader is deliberately small and strict (every length is checked against the bytes
that are there); it reads only the few structures above. No dependency: pyasn1 would need the
LDAP and Kerberos schemas written out by hand anyway, and ldap3 (which has them) had its last
release in 2021. dnspython (already a dependency) parses DNS, imported lazily.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class BerError(ValueError):
    """The bytes are not the BER structure expected."""


@dataclass(frozen=True)
class Tlv:
    """One BER element: its identifier octet, and the content bytes."""

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Tlv]:
        """The elements inside a constructed element."""
        return read_all(self.value)

    def integer(self) -> int:
        if not self.value or len(self.value) > 16:
            raise BerError("bad INTEGER")
        return int.from_bytes(self.value, "big", signed=True)

    def text(self) -> str:
        return self.value.decode("utf-8", errors="replace")


def read_tlv(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """The element at *offset* and the offset after it (single-octet tags, definite lengths only)."""
    if offset + 2 > len(data):
        raise BerError("truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-octet tags are not used by LDAP or Kerberos messages")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise BerError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise BerError("element longer than the reply")
    return Tlv(tag, data[pos:end]), end


def read_all(data: bytes) -> list[Tlv]:
    """Every element of *data*, which must hold nothing else."""
    out: list[Tlv] = []
    offset = 0
    while offset < len(data):
        tlv, offset = read_tlv(data, offset)
        out.append(tlv)
    return out


def read_one(data: bytes) -> Tlv:
    """The single element *data* holds (trailing bytes are an error)."""
    tlv, end = read_tlv(data)
    if end != len(data):
        raise BerError("trailing bytes after the message")
    return tlv


def _context(tlv: Tlv) -> dict[int, Tlv]:
    """A SEQUENCE of explicit context tags [n] as {n: the element inside}."""
    out: dict[int, Tlv] = {}
    for child in tlv.children():
        if child.tag & 0xE0 != 0xA0:
            raise BerError("expected a context tag")
        inner = child.children()
        if len(inner) != 1:
            raise BerError("bad explicit tag")
        out[child.tag & 0x1F] = inner[0]
    return out


def parse_generalized_time(text: str) -> datetime:
    """``20260101120000.0Z`` / ``20260101120000Z`` (UTC) as an aware datetime."""
    text = text.strip()
    if not text.endswith("Z") or len(text) < 15:
        raise BerError(f"not a UTC GeneralizedTime: {text!r}")
    main = text[:14]
    fraction = text[14:-1].lstrip(".,")
    try:
        value = datetime.strptime(main, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise BerError(f"not a GeneralizedTime: {text!r}") from None
    if fraction:
        if not fraction.isdigit():
            raise BerError(f"not a GeneralizedTime: {text!r}")
        value = value.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return value


# --------------------------------------------------------------------------- answers


@dataclass
class ProtocolAnswer:
    """What a reply turned out to be.

    ``speaks`` is True when it parses as the protocol asked. ``server_time`` is the server's
    clock when the reply carries it (rootDSE currentTime, KRB-ERROR stime), and ``local_time``
    the middle of our request/response round trip, so their difference is the skew.
    """

    protocol: str  # "DNS", "LDAP", "CLDAP", "Kerberos"
    speaks: bool
    note: str = ""
    server_time: datetime | None = None
    local_time: datetime | None = None
    #: Time resolution of ``server_time`` in seconds (currentTime has whole seconds).
    resolution_s: float = 0.0
    attributes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def skew_s(self) -> float | None:
        """Server clock minus ours, in seconds (positive: the server is ahead)."""
        if self.server_time is None or self.local_time is None:
            return None
        return (self.server_time - self.local_time).total_seconds()


def midpoint(sent: float, received: float) -> datetime:
    """The wall-clock moment halfway between two ``time.time()`` readings."""
    return datetime.fromtimestamp((sent + received) / 2, UTC)


def dns_reply(query: bytes, reply: bytes) -> ProtocolAnswer:
    """A DNS response to *query*: same transaction id, QR set, parses as a DNS message."""
    import dns.exception
    import dns.message

    if len(reply) < 12 or reply[:2] != query[:2] or not reply[2] & 0x80:
        return ProtocolAnswer("DNS", False, f"{len(reply)}-byte reply is not a DNS response to our query")
    try:
        dns.message.from_wire(reply)
    except dns.message.Truncated:
        return ProtocolAnswer("DNS", True, "truncated (TC set)")
    except (dns.exception.DNSException, ValueError, EOFError):
        return ProtocolAnswer("DNS", False, "reply has our transaction id but does not parse as DNS")
    return ProtocolAnswer("DNS", True)


def ldap_messages(data: bytes) -> list[tuple[int, Tlv]]:
    """The LDAP messages in *data* as (messageID, protocolOp)."""
    out: list[tuple[int, Tlv]] = []
    for message in read_all(data):
        if message.tag != 0x30:
            raise BerError("not an LDAPMessage (SEQUENCE expected)")
        parts = message.children()
        if len(parts) < 2 or parts[0].tag != 0x02:
            raise BerError("LDAPMessage without messageID and protocolOp")
        out.append((parts[0].integer(), parts[1]))
    return out


def _search_entry(op: Tlv) -> dict[str, list[str]]:
    parts = op.children()
    if len(parts) != 2 or parts[0].tag != 0x04 or parts[1].tag != 0x30:
        raise BerError("bad SearchResultEntry")
    attributes: dict[str, list[str]] = {}
    for attribute in parts[1].children():
        name, values = attribute.children()
        if name.tag != 0x04 or values.tag != 0x31:
            raise BerError("bad attribute")
        attributes[name.text()] = [v.text() for v in values.children()]
    return attributes


def ldap_search_reply(message_id: int, reply: bytes, protocol: str = "LDAP") -> ProtocolAnswer:
    """The rootDSE search result for *message_id*: entry attributes (and the result code)."""
    try:
        messages = ldap_messages(reply)
    except BerError as exc:
        return ProtocolAnswer(protocol, False, f"{len(reply)}-byte reply is not an LDAP message ({exc})")
    attributes: dict[str, list[str]] = {}
    result_code: int | None = None
    for mid, op in messages:
        if mid != message_id:
            return ProtocolAnswer(protocol, False, f"LDAP message id {mid}, not ours ({message_id})")
        try:
            if op.tag == 0x64:  # [APPLICATION 4] SearchResultEntry
                attributes.update(_search_entry(op))
            elif op.tag == 0x65:  # [APPLICATION 5] SearchResultDone
                result_code = op.children()[0].integer()
            elif op.tag == 0x78:  # [APPLICATION 24] ExtendedResponse (notice of disconnection)
                return ProtocolAnswer(protocol, True, "the server ended the session (notice of disconnection)")
            else:
                return ProtocolAnswer(protocol, False, f"unexpected LDAP operation (tag 0x{op.tag:02x})")
        except (BerError, ValueError, IndexError) as exc:
            return ProtocolAnswer(protocol, False, f"malformed LDAP search result ({exc})")
    answer = ProtocolAnswer(protocol, True, attributes=attributes)
    if result_code not in (None, 0):
        answer.note = f"search result code {result_code}"
    if attributes.get("currentTime"):
        try:
            answer.server_time = parse_generalized_time(attributes["currentTime"][0])
            answer.resolution_s = 1.0
        except BerError as exc:
            answer.note = f"currentTime unreadable ({exc})"
    return answer


#: Kerberos error codes a KDC sends to an unauthenticated AS-REQ (RFC 4120 7.5.9).
KRB_ERRORS = {
    6: "KDC_ERR_C_PRINCIPAL_UNKNOWN",
    14: "KDC_ERR_ETYPE_NOSUPP",
    24: "KDC_ERR_PREAUTH_FAILED",
    25: "KDC_ERR_PREAUTH_REQUIRED",
    37: "KRB_AP_ERR_SKEW",
    68: "KDC_ERR_WRONG_REALM",
    52: "KRB_ERR_RESPONSE_TOO_BIG",
}


def kerberos_reply(reply: bytes) -> ProtocolAnswer:
    """A KRB-ERROR ([APPLICATION 30], with the KDC's stime) or an AS-REP ([APPLICATION 11])."""
    try:
        message = read_one(reply)
        if message.tag == 0x6B:
            return ProtocolAnswer("Kerberos", True, "AS-REP")
        if message.tag != 0x7E:
            raise BerError(f"tag 0x{message.tag:02x} is neither KRB-ERROR nor AS-REP")
        (body,) = message.children()
        fields = _context(body)
        if fields[0].integer() != 5 or fields[1].integer() != 30:
            raise BerError("not a Kerberos 5 KRB-ERROR")
        stime = parse_generalized_time(fields[4].text())
        if 5 in fields:
            stime = stime.replace(microsecond=max(0, min(999999, fields[5].integer())))
        code = fields[6].integer()
    except (BerError, KeyError, ValueError) as exc:
        return ProtocolAnswer("Kerberos", False, f"{len(reply)}-byte reply is not a Kerberos message ({exc})")
    return ProtocolAnswer(
        "Kerberos", True, KRB_ERRORS.get(code, f"KRB-ERROR {code}"), server_time=stime, resolution_s=0.001
    )


NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def ntp_reply(query: bytes, reply: bytes) -> ProtocolAnswer:
    """An NTP server reply (mode 4) echoing our transmit timestamp; its transmit time is the server's clock."""
    if len(reply) < 48 or reply[0] & 0x07 != 4 or reply[24:32] != query[40:48]:
        return ProtocolAnswer("NTP", False, f"{len(reply)}-byte reply is not an NTP answer to our request")
    seconds = int.from_bytes(reply[40:44], "big") - NTP_EPOCH_OFFSET
    fraction = int.from_bytes(reply[44:48], "big") / 2**32
    stratum = reply[1]
    note = f"stratum {stratum}" if stratum else "stratum 0 (kiss-o'-death or unsynchronised)"
    return ProtocolAnswer(
        "NTP", True, note, server_time=datetime.fromtimestamp(seconds + fraction, UTC), resolution_s=0.001
    )


# --------------------------------------------------------------------------- LDAP over TCP

#: The rootDSE attributes an AD admin looks at first.
ROOTDSE_ATTRIBUTES = (
    "currentTime",
    "dnsHostName",
    "defaultNamingContext",
    "domainFunctionality",
    "forestFunctionality",
    "domainControllerFunctionality",
    "isSynchronized",
    "isGlobalCatalogReady",
    "highestCommittedUSN",
    "serverName",
    "supportedLDAPVersion",
)


class _Reader:
    """Whole BER elements from a stream socket, each by a deadline (bytes past one element are kept)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def _need(self, count: int) -> None:
        while len(self.buffer) < count:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no LDAP answer within the timeout")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection without an LDAP answer")
            self.buffer += chunk

    def element(self) -> bytes:
        """The next element (raises TimeoutError, EOFError, BerError)."""
        self._need(2)
        first = self.buffer[1]
        if first >= 0x80 and not 0 < first & 0x7F <= 4:
            raise BerError("bad length")
        header = 2 if first < 0x80 else 2 + (first & 0x7F)
        self._need(header)
        length = first if first < 0x80 else int.from_bytes(self.buffer[2:header], "big")
        if length > 1 << 20:
            raise BerError("LDAP answer larger than 1 MiB")
        self._need(header + length)
        element, self.buffer = self.buffer[: header + length], self.buffer[header + length :]
        return element


def ldap_rootdse(sock: socket.socket, timeout: float, message_id: int = 1, protocol: str = "LDAP") -> ProtocolAnswer:
    """An anonymous rootDSE search on a connected (plain or TLS) socket, within *timeout*."""
    from .udp import cldap_payload

    deadline = time.monotonic() + timeout
    sent = time.time()
    try:
        sock.settimeout(timeout)
        sock.sendall(cldap_payload(message_id, ROOTDSE_ATTRIBUTES))
        collected = b""
        reader = _Reader(sock, deadline)
        while True:
            message = reader.element()
            collected += message
            check = ldap_search_reply(message_id, message, protocol)
            if not check.speaks:
                return check
            if not _is_entry(message):  # SearchResultDone (or a notice of disconnection) ends it
                break
    except TimeoutError:
        return ProtocolAnswer(protocol, False, f"accepts connections but sends no LDAP answer within {timeout:g}s")
    except EOFError as exc:
        return ProtocolAnswer(protocol, False, str(exc))
    except BerError as exc:
        return ProtocolAnswer(protocol, False, f"the answer is not an LDAP message ({exc})")
    except OSError as exc:
        return ProtocolAnswer(protocol, False, f"connection failed during the search: {exc.strerror or exc}")
    answer = ldap_search_reply(message_id, collected, protocol)
    answer.local_time = midpoint(sent, time.time())
    return answer


def _is_entry(message: bytes) -> bool:
    try:
        parts = read_one(message).children()
    except BerError:
        return False
    return len(parts) >= 2 and parts[1].tag == 0x64


def summary_attributes(attributes: dict[str, list[str]]) -> dict[str, Any]:
    """The rootDSE attributes as single values (lists only where AD returns several)."""
    out: dict[str, Any] = {}
    for name in ROOTDSE_ATTRIBUTES:
        values = attributes.get(name)
        if values:
            out[name] = values if name == "supportedLDAPVersion" else values[0]
    return out
