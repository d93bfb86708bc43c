"""A domain controller's ports speaking the real protocol bytes, on loopback (or in a test namespace).

:class:`AdDc` answers, per port:

* 53/udp, 53/tcp: DNS (dnspython builds the response: same id, NOERROR, no records);
* 389/udp (CLDAP) and 389/tcp, 3268/tcp (LDAP): the rootDSE search — a SearchResultEntry with
  ``currentTime`` (this host's clock plus ``clock_offset_s``), dnsHostName, defaultNamingContext,
  domainFunctionality, isSynchronized, highestCommittedUSN, then SearchResultDone;
* 88/udp, 88/tcp (length-prefixed), 464: a KRB-ERROR KDC_ERR_PREAUTH_REQUIRED whose stime is
  the DC's clock;
* 123/udp: an NTP server reply echoing the client's transmit timestamp;
* 636/tcp, 3269/tcp: TLS with the given certificate (``tls_leaf``), then LDAP as above;
* any other TCP port: accepted by the kernel, never answered.

``modes`` overrides a port: ``"junk"`` replies with bytes that are no protocol at all,
``"silent"`` accepts/receives and never answers, ``"close"`` closes at once. ``received``
keeps every UDP datagram per port. The replies are encoded here by hand, independently of
the parser under test (runbooks/probes/adproto.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any


@functools.cache
def dc_ca() -> Any:
    """The test AD CS root that issues the fake DCs' LDAPS certificates."""
    from tests.tlspeers import TestCA

    return TestCA("Corp AD Root CA")


@functools.cache
def dc_leaf(name: str, address: str) -> Any:
    """An LDAPS certificate for *name* (and *address*) from :func:`dc_ca`."""
    return dc_ca().issue(name, names=[name, address])


JUNK = b"\x17\x03\x03\x00\x05hello, this is not the protocol you asked for\r\n"


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def integer(value: int, tag: int = 0x02) -> bytes:
    return tlv(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def octets(text: str) -> bytes:
    return tlv(0x04, text.encode())


def _first_tlv(data: bytes) -> tuple[int, bytes, int]:
    tag, first = data[0], data[1]
    pos = 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        length = int.from_bytes(data[2 : 2 + count], "big")
        pos += count
    return tag, data[pos : pos + length], pos + length


def ldap_message_id(request: bytes) -> int:
    """The messageID of an LDAPMessage request."""
    _tag, body, _end = _first_tlv(request)
    _itag, value, _ = _first_tlv(body)
    return int.from_bytes(value, "big", signed=True)


class AdDc:
    """A fake DC on *address* speaking DNS, CLDAP, LDAP, LDAPS, Kerberos and NTP (see the module doc)."""

    def __init__(
        self,
        address: str,
        *,
        tcp_ports: Sequence[int] = (53, 88, 135, 389, 445, 636, 3268),
        udp_ports: Sequence[int] = (53, 88, 389),
        name: str = "dc1.corp.test",
        naming_context: str = "DC=corp,DC=test",
        clock_offset_s: float = 0.0,
        synchronized: bool = True,
        modes: dict[str, str] | None = None,
        tls_leaf: Any = None,
    ) -> None:
        self.address = address
        self.name = name
        self.naming_context = naming_context
        self.clock_offset_s = clock_offset_s
        self.synchronized = synchronized
        self.modes = modes or {}
        self.received: dict[int, list[bytes]] = {}
        self.tls_context: ssl.SSLContext | None = None
        if tls_leaf is not None:
            from tests.tlspeers import server_context

            self.tls_context = server_context(tls_leaf)
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            for port in tcp_ports:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.listen(64)
                sock.settimeout(0.1)
                self._socks.append(sock)
                self._threads.append(threading.Thread(target=self._accept, args=(sock, port), daemon=True))
            for port in udp_ports:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.bind((address, port))
                sock.settimeout(0.1)
                self._socks.append(sock)
                self.received[port] = []
                self._threads.append(threading.Thread(target=self._udp, args=(sock, port), daemon=True))
        except OSError:
            self.close()
            raise

    # ----------------------------------------------------------------- replies

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_s)

    def rootdse(self, message_id: int) -> bytes:
        now = self.now()
        attributes = {
            "currentTime": now.strftime("%Y%m%d%H%M%S.0Z"),
            "dnsHostName": self.name,
            "defaultNamingContext": self.naming_context,
            "domainFunctionality": "7",
            "forestFunctionality": "7",
            "isSynchronized": "TRUE" if self.synchronized else "FALSE",
            "highestCommittedUSN": "123456",
        }
        partial = b"".join(tlv(0x30, octets(k) + tlv(0x31, octets(v))) for k, v in attributes.items())
        entry = tlv(0x30, integer(message_id) + tlv(0x64, octets("") + tlv(0x30, partial)))
        done = tlv(0x30, integer(message_id) + tlv(0x65, integer(0, 0x0A) + octets("") + octets("")))
        return entry + done

    def krb_error(self) -> bytes:
        now = self.now()
        stime = now.strftime("%Y%m%d%H%M%SZ").encode()
        fields = (
            tlv(0xA0, integer(5))
            + tlv(0xA1, integer(30))
            + tlv(0xA4, tlv(0x18, stime))
            + tlv(0xA5, integer(now.microsecond))
            + tlv(0xA6, integer(25))  # KDC_ERR_PREAUTH_REQUIRED
            + tlv(0xA9, tlv(0x1B, b"CORP.TEST"))
            + tlv(0xAA, tlv(0x30, tlv(0xA0, integer(2)) + tlv(0xA1, tlv(0x30, tlv(0x1B, b"krbtgt")))))
        )
        return tlv(0x7E, tlv(0x30, fields))

    def dns_reply(self, query: bytes) -> bytes | None:
        import dns.message

        try:
            request = dns.message.from_wire(query)
        except Exception:
            return None
        return dns.message.make_response(request).to_wire()

    def ntp_reply(self, query: bytes) -> bytes:
        now = time.time() + self.clock_offset_s + 2208988800
        stamp = int(now).to_bytes(4, "big") + int((now % 1) * 2**32).to_bytes(4, "big")
        return bytes([0x24, 2, 6, 0xEC]) + b"\x00" * 8 + b"LOCL" + stamp + query[40:48] + stamp + stamp

    def answer(self, port: int, proto: str, data: bytes) -> bytes | None:
        mode = self.modes.get(f"{port}/{proto}", "real")
        if mode == "junk":
            return JUNK
        if mode == "silent":
            return None
        if port == 53:
            return self.dns_reply(data)
        if port in (389, 3268, 636, 3269):
            return self.rootdse(ldap_message_id(data))
        if port in (88, 464):
            return self.krb_error()
        if port == 123:
            return self.ntp_reply(data)
        return None

    # ----------------------------------------------------------------- servers

    def _udp(self, sock: socket.socket, port: int) -> None:
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received[port].append(data)
            with contextlib.suppress(Exception):
                reply = self.answer(port, "udp", data)
                if reply is not None:
                    sock.sendto(reply, peer)

    def _accept(self, sock: socket.socket, port: int) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, port), daemon=True).start()

    def _serve(self, conn: socket.socket, port: int) -> None:
        mode = self.modes.get(f"{port}/tcp", "real")
        with contextlib.suppress(Exception), conn:
            conn.settimeout(5)
            if mode == "close":
                return
            if port not in (53, 88, 389, 3268, 464, 636, 3269):
                self._stop.wait(10)  # accepted, never answered (the kernel did the handshake)
                return
            stream: Any = conn
            if port in (636, 3269):
                if self.tls_context is None:
                    self._stop.wait(10)
                    return
                stream = self.tls_context.wrap_socket(conn, server_side=True)
            while not self._stop.is_set():
                data = stream.recv(65535)
                if not data:
                    return
                if port in (53, 88, 464):
                    size = 2 if port == 53 else 4
                    body = data[size:]
                    reply = self.answer(port, "tcp", body)
                    if reply is not None:
                        stream.sendall(reply if mode == "junk" else len(reply).to_bytes(size, "big") + reply)
                    continue
                reply = self.answer(port, "tcp", data)
                if reply is None:
                    self._stop.wait(10)
                    return
                stream.sendall(reply)

    def __enter__(self) -> AdDc:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.close()

    def close(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks = []
