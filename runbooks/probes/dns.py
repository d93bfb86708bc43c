"""One DNS question to ONE server, classified: data, NXDOMAIN, NODATA, SERVFAIL, REFUSED, timeout.

This deliberately never uses a resolver (``dns.resolver``): a resolver moves on to the
next server by itself and hides exactly the failures a per-server check must see (a
server that answers with no data, a server that is down). Each call asks one address,
over UDP (falling back to TCP when the answer is truncated) or over TCP, always with a
timeout — dnspython's own default is to wait forever.

dnspython is imported lazily, inside the functions.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .targets import HostPort


class DnsOutcome(enum.Enum):
    """What one server said to one question."""

    DATA = "data"  # NOERROR with records of the asked type
    NODATA = "nodata"  # NOERROR, but no records of the asked type
    NXDOMAIN = "nxdomain"  # the name does not exist (a "Name Error")
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"  # no answer within the timeout
    ERROR = "error"  # any other rcode, a malformed answer, a local or connection error

    def __str__(self) -> str:
        return self.value

    @property
    def answered(self) -> bool:
        """True when the server sent a DNS answer (any rcode)."""
        return self not in (DnsOutcome.TIMEOUT, DnsOutcome.ERROR)

    @property
    def negative(self) -> bool:
        """An answer that says "no such data" (NODATA or NXDOMAIN)."""
        return self in (DnsOutcome.NODATA, DnsOutcome.NXDOMAIN)


@dataclass(frozen=True)
class DnsAnswer:
    """The outcome of one query to one server."""

    server: str  # address[:port] as shown to the user
    qname: str
    rdtype: str
    outcome: DnsOutcome
    latency_s: float
    rcode: str = ""
    records: tuple[str, ...] = ()
    transport: str = "udp"
    truncated: bool = False
    error: str = ""
    #: Address records for other names found in the additional section (name -> addresses).
    additional: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def question(self) -> str:
        """``SRV _ldap._tcp.dc._msdcs.corp.test`` style label."""
        return f"{self.rdtype} {self.qname}"

    def srv_targets(self) -> list[tuple[str, int]]:
        """``(target, port)`` of each SRV record, target lower-case without the final dot."""
        out: list[tuple[str, int]] = []
        if self.rdtype != "SRV":
            return out
        for record in self.records:
            parts = record.split()
            if len(parts) == 4 and parts[2].isdigit():
                out.append((parts[3].rstrip(".").lower(), int(parts[2])))
        return out


def server_label(address: str, port: int) -> str:
    """``10.0.0.1``, ``10.0.0.1:5353``, ``[::1]:5353`` — port shown only when not 53."""
    if port == 53:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _records(response: object, qname: object, rdtype: int) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    import dns.rdatatype

    records: list[str] = []
    for rrset in response.answer:  # type: ignore[attr-defined]
        if rrset.rdtype == rdtype:
            records.extend(rdata.to_text() for rdata in rrset)
    additional: dict[str, list[str]] = {}
    for rrset in response.additional:  # type: ignore[attr-defined]
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            name = rrset.name.to_text().rstrip(".").lower()
            additional.setdefault(name, []).extend(rdata.to_text() for rdata in rrset)
    return tuple(records), {k: tuple(v) for k, v in additional.items()}


def dns_query(
    address: str,
    qname: str,
    rdtype: str = "A",
    *,
    port: int = 53,
    timeout: float = 2.0,
    tcp: bool = False,
) -> DnsAnswer:
    """Ask *address*:*port* (an IP address) for *qname*/*rdtype*, once, within *timeout* seconds.

    UDP by default, retried over TCP when the UDP answer is truncated (the TCP attempt gets
    what is left of the timeout); ``tcp=True`` asks over TCP only. Never raises for network
    problems: they become :attr:`DnsOutcome.TIMEOUT` or :attr:`DnsOutcome.ERROR`.
    """
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    label = server_label(address, port)
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    transport = "tcp" if tcp else "udp"
    truncated = False

    def result(outcome: DnsOutcome, **kw: object) -> DnsAnswer:
        if truncated and not tcp and outcome in (DnsOutcome.TIMEOUT, DnsOutcome.ERROR):
            # Say what happened on each transport: UDP did answer (TC set), TCP then failed.
            kw["error"] = f"UDP: truncated reply (TC set); TCP: {kw.get('error') or outcome.value}"
        return DnsAnswer(
            label,
            qname,
            rdtype,
            outcome,
            time.perf_counter() - start,
            transport=transport,
            truncated=truncated,
            **kw,  # type: ignore[arg-type]
        )

    try:
        rdtype_value = dns.rdatatype.from_text(rdtype)
        query = dns.message.make_query(qname, rdtype_value)
    except dns.exception.DNSException as exc:
        return result(DnsOutcome.ERROR, error=f"invalid question: {exc}")
    try:
        if tcp:
            response = dns.query.tcp(query, address, timeout=timeout, port=port)
        else:
            try:
                response = dns.query.udp(
                    query, address, timeout=timeout, port=port, ignore_unexpected=True, raise_on_truncation=True
                )
            except dns.message.Truncated:
                truncated = True
                transport = "tcp"
                remaining = max(0.001, deadline - time.monotonic())
                response = dns.query.tcp(query, address, timeout=remaining, port=port)
    except (dns.exception.Timeout, TimeoutError):
        return result(DnsOutcome.TIMEOUT, error="no answer within the timeout")
    except ConnectionRefusedError:
        return result(DnsOutcome.ERROR, error="connection refused")
    except OSError as exc:
        return result(DnsOutcome.ERROR, error=exc.strerror or exc.__class__.__name__)
    except dns.exception.DNSException as exc:
        return result(DnsOutcome.ERROR, error=f"bad answer: {exc.__class__.__name__}: {exc}")
    except EOFError:
        return result(DnsOutcome.ERROR, error="connection closed before an answer")

    rcode = response.rcode()
    rcode_text = dns.rcode.to_text(rcode)
    records, additional = _records(response, query.question[0].name, rdtype_value)
    if rcode == dns.rcode.NOERROR:
        outcome = DnsOutcome.DATA if records else DnsOutcome.NODATA
    elif rcode == dns.rcode.NXDOMAIN:
        outcome = DnsOutcome.NXDOMAIN
    elif rcode == dns.rcode.SERVFAIL:
        outcome = DnsOutcome.SERVFAIL
    elif rcode == dns.rcode.REFUSED:
        outcome = DnsOutcome.REFUSED
    else:
        return result(DnsOutcome.ERROR, rcode=rcode_text, error=f"rcode {rcode_text}")
    return result(outcome, rcode=rcode_text, records=records, additional=additional)


def system_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf, in order (IPv6 zone ids dropped)."""
    import ipaddress

    servers: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return servers
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = fields[1].split("%", 1)[0]
            try:
                ipaddress.ip_address(address)
            except ValueError:
                continue
            if address not in servers:
                servers.append(address)
    return servers


def parse_servers(
    entries: list[str] | None, *, option: str = "--dns", resolv_conf: str = "/etc/resolv.conf"
) -> list[HostPort]:
    """DNS servers as ``ADDRESS[:PORT]`` (IPv6 as ``[addr]:port``), default: *resolv_conf*'s nameservers.

    Returns :class:`~runbooks.probes.targets.HostPort` items; InputError (exit 3) for a name
    instead of an address, a server given twice, or no server at all.
    """
    import ipaddress

    from ..errors import InputError
    from .targets import parse_host_port

    texts = list(entries or []) or system_nameservers(resolv_conf)
    if not texts:
        raise InputError(f"no {option} given and {resolv_conf} lists no nameserver: give {option} ADDRESS")
    servers = []
    seen: set[str] = set()
    for text in texts:
        hp = parse_host_port(text, 53)
        try:
            ipaddress.ip_address(hp.host)
        except ValueError:
            raise InputError(f"invalid {option} {text!r}: give the server's IP address") from None
        label = server_label(hp.host, hp.port)
        if label in seen:
            raise InputError(f"{option} {text!r} is given twice")
        seen.add(label)
        servers.append(hp)
    return servers
