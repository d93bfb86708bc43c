"""Real DNS peers for the adsync tests and benchmark: dnsmasq, plus tiny servers in Python.

* :func:`dnsmasq` runs Debian's dnsmasq in the foreground on one loopback address/port:
  :func:`healthy_zone` (A, SRV records of an AD domain), :func:`brownout_zone` (the same
  names holding only TXT records: NOERROR with no data), :func:`refused_zone` (no zone,
  no upstream: REFUSED).
* :class:`ServfailServer` answers every query SERVFAIL; :class:`DeadServer` is a bound
  UDP socket that never answers.
* :class:`TcpListeners` / :class:`UdpResponder` are bare ports (a listener, a fixed UDP reply);
  :func:`domain_controller` is a DC whose ports speak DNS, LDAP, CLDAP, Kerberos (tests/e2e/ad_peer.py).

Everything binds to loopback addresses only and is torn down by its context manager.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def dnsmasq_binary() -> str | None:
    """Path of dnsmasq, or None."""
    return shutil.which("dnsmasq") or next(
        (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if Path(p).exists()), None
    )


def healthy_zone(domain: str, dcs: dict[str, str]) -> list[str]:
    """dnsmasq arguments for an AD zone: A of the domain, DC A records, the locator SRV records."""
    args = [f"--local=/{domain}/"]
    first_ip = next(iter(dcs.values()))
    args.append(f"--host-record={domain},{first_ip}")
    for name, ip in dcs.items():
        args.append(f"--host-record={name},{ip}")
        for srv, port in (
            (f"_ldap._tcp.dc._msdcs.{domain}", 389),
            (f"_kerberos._tcp.{domain}", 88),
            (f"_gc._tcp.{domain}", 3268),
        ):
            args.append(f"--srv-host={srv},{name},{port},0,100")
    return args


def brownout_zone(domain: str, names: Sequence[str] = ()) -> list[str]:
    """dnsmasq arguments for the same zone holding only TXT records: every question gets NOERROR, no data."""
    args = [f"--local=/{domain}/"]
    for name in (domain, f"_ldap._tcp.dc._msdcs.{domain}", f"_kerberos._tcp.{domain}", f"_gc._tcp.{domain}", *names):
        args.append(f"--txt-record={name},brown-out")
    return args


def nxdomain_zone(domain: str) -> list[str]:
    """dnsmasq arguments for the zone with no records at all: every question gets NXDOMAIN (a Name Error)."""
    return [f"--local=/{domain}/"]


def refused_zone() -> list[str]:
    """dnsmasq arguments with no zone and no upstream: it answers REFUSED."""
    return []


def _answers(address: str, port: int) -> bool:
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04test\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(query, (address, port))
            sock.recvfrom(4096)
        except OSError:
            return False
    return True


@contextlib.contextmanager
def dnsmasq(
    address: str, port: int, zone_args: Sequence[str], startup_s: float = 10.0, paused: bool = False
) -> Iterator[str]:
    """Run dnsmasq on *address*:*port* (loopback) with *zone_args*; yield ``address:port``.

    ``paused=True`` stops the process (SIGSTOP) once it answers: a real DNS server that is
    up, bound and reachable but never answers (a hung DC), until the context ends.
    """
    binary = dnsmasq_binary()
    if binary is None:
        raise RuntimeError("dnsmasq is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="opsbook-dnsmasq-"))
    cmd = [
        binary,
        "-k",
        "--conf-file=/dev/null",
        f"--pid-file={workdir / 'pid'}",
        "--user=root",
        "--group=root",
        f"--port={port}",
        f"--listen-address={address}",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--cache-size=0",
        f"--log-facility={workdir / 'log'}",
        *zone_args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + startup_s
        while not _answers(address, port):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"dnsmasq exited ({proc.returncode}): {err.strip()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq on {address}:{port} does not answer")
            time.sleep(0.05)
        if paused:
            proc.send_signal(signal.SIGSTOP)
        yield f"{address}:{port}"
    finally:
        if paused and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)


class _Thread:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> _Thread:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass


class UdpResponder(_Thread):
    """Answers every datagram on *address*:*port*: SERVFAIL for DNS (``servfail=True``) or a fixed reply.

    ``received`` keeps the datagrams, so tests can check the probe's payload.
    """

    def __init__(self, address: str, port: int, *, servfail: bool = False, reply: bytes = b"ok") -> None:
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.1)
        self.servfail = servfail
        self.reply = reply
        self.received: list[bytes] = []

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append(data)
            if self.servfail and len(data) >= 12:
                # Same id and question, QR set, RD/RA kept, rcode 2 (SERVFAIL), no records.
                flags = bytes([data[2] | 0x80, (data[3] & 0xF0) | 0x80 | 0x02])
                answer = data[:2] + flags + data[4:6] + b"\x00\x00" * 3 + data[12:]
                self.sock.sendto(answer, peer)
            elif not self.servfail:
                self.sock.sendto(self.reply, peer)

    def close(self) -> None:
        self.sock.close()


def ServfailServer(address: str, port: int) -> UdpResponder:
    """A DNS server that answers every query SERVFAIL."""
    return UdpResponder(address, port, servfail=True)


class DeadServer:
    """A bound UDP socket that never answers (a DNS server that is down but not unreachable)."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))

    def __enter__(self) -> DeadServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


class TcpListeners:
    """Listening TCP sockets on *address* for *ports* (the kernel completes the handshakes)."""

    def __init__(self, address: str, ports: Sequence[int]) -> None:
        self.socks: list[socket.socket] = []
        try:
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.listen(64)
                self.socks.append(sock)
        except OSError:
            self.close()
            raise

    def __enter__(self) -> TcpListeners:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks = []


@contextlib.contextmanager
def domain_controller(
    address: str,
    tcp_ports: Sequence[int] = (53, 88, 135, 389, 445, 636, 3268),
    udp_ports: Sequence[int] = (53, 88, 389),
    **kwargs: object,
) -> Iterator[object]:
    """A fake DC on *address* whose ports speak the real protocols (:class:`tests.e2e.ad_peer.AdDc`)."""
    from tests.e2e.ad_peer import AdDc, dc_leaf

    if "tls_leaf" not in kwargs:
        kwargs["tls_leaf"] = dc_leaf(str(kwargs.get("name", "dc1.corp.test")), address)
    with AdDc(address, tcp_ports=tcp_ports, udp_ports=udp_ports, **kwargs) as dc:  # type: ignore[arg-type]
        yield dc


class ZoneServer:
    """A tiny authoritative DNS server in Python (UDP and TCP on one loopback address and port).

    *records* maps ``(name, type)`` to rdata texts. ``mode`` picks the behaviour: ``"zone"``
    answers from *records* (NXDOMAIN for unknown names, NODATA for known names without the
    type), ``"nodata"`` answers NOERROR with no data to everything, ``"nxdomain"`` NXDOMAIN to
    everything, ``"servfail"``/``"refused"`` that rcode, ``"dead"`` never answers. ``queries``
    keeps the (name, type) of every query received, so tests can assert "nothing was asked".
    """

    def __init__(
        self, address: str, records: dict[tuple[str, str], list[str]] | None = None, mode: str = "zone", port: int = 0
    ) -> None:
        self.records = {(n.rstrip(".").lower(), t.upper()): v for (n, t), v in (records or {}).items()}
        self.mode = mode
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((address, port))
        self.address, self.port = address, self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.tcp.bind((address, self.port))
        except OSError:
            self.udp.close()
            self.tcp.close()
            raise
        self.tcp.listen(16)
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        self._threads = [
            threading.Thread(target=self._udp_loop, daemon=True),
            threading.Thread(target=self._tcp_loop, daemon=True),
        ]

    @property
    def label(self) -> str:
        """``address:port`` for ``--dns``."""
        return f"{self.address}:{self.port}"

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query in wire format (None: stay silent)."""
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        try:
            query = dns.message.from_wire(wire)
        except Exception:  # a peer ignores garbage
            return None
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if self.mode == "dead":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif self.mode == "refused":
            response.set_rcode(dns.rcode.REFUSED)
        elif self.mode == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.mode == "zone":
            if not any(n == name for n, _ in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif (name, rdtype) in self.records:
                response.answer.append(
                    dns.rrset.from_text_list(
                        question.name, 300, dns.rdataclass.IN, question.rdtype, self.records[(name, rdtype)]
                    )
                )
        return response.to_wire()

    def _udp_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(data)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.udp.sendto(reply, peer)

    def _tcp_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    head = conn.recv(2)
                    if len(head) < 2:
                        continue
                    size = int.from_bytes(head, "big")
                    data = b""
                    while len(data) < size:
                        chunk = conn.recv(size - len(data))
                        if not chunk:
                            break
                        data += chunk
                    reply = self.answer(data)
                    if reply is not None:
                        conn.sendall(len(reply).to_bytes(2, "big") + reply)

    def __enter__(self) -> ZoneServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.udp.close()
        self.tcp.close()


def ad_records(domain: str, dcs: dict[str, str]) -> dict[tuple[str, str], list[str]]:
    """The records :class:`ZoneServer` needs to play an AD zone (A of the domain and DCs, locator SRVs)."""
    records: dict[tuple[str, str], list[str]] = {(domain, "A"): [next(iter(dcs.values()))]}
    for srv, port in (
        (f"_ldap._tcp.dc._msdcs.{domain}", 389),
        (f"_kerberos._tcp.{domain}", 88),
        (f"_gc._tcp.{domain}", 3268),
    ):
        records[(srv, "SRV")] = [f"0 100 {port} {name}." for name in dcs]
    for name, ip in dcs.items():
        records[(name, "A")] = [ip]
    return records
