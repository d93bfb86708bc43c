"""The ports AD Connect needs on each domain controller, probed in three states like PortQry.

open (an answer), closed (the DC answered and nothing listens: RST, or ICMP port unreachable
for UDP) and filtered (no answer in time, or a firewall's ICMP admin-prohibited /
host-unreachable, or this machine's own firewall). UDP ports get a real protocol request
(:mod:`runbooks.probes.udp`), and the reply counts only when it parses as that protocol
(:mod:`runbooks.probes.adproto`): junk on 389/udp is "open, not CLDAP", not OK. On TCP, LDAP
(389, 3268) gets an anonymous rootDSE search, Kerberos (88) an AS-REQ, LDAPS (636, 3269) a
TLS handshake and the same search. Each closed or filtered port is reported with the AD
Connect functions it breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..model import CheckResult, MetricValue, Status, worst
from ..probes.adproto import ProtocolAnswer
from ..probes.tcp import PortState, tcp_probe
from ..probes.udp import payload_for, udp_probe

if TYPE_CHECKING:  # pragma: no cover
    import socket

#: The RPC dynamic range (Windows Server 2008 and later); probed only when asked.
RPC_DYNAMIC = (49152, 65535)
#: Most ports one run may probe per DC (the whole RPC range plus the usual ports).
MAX_PORTS = 16384 + 64


@dataclass(frozen=True, order=True)
class PortSpec:
    """One port and protocol, ``389/udp``."""

    port: int
    proto: str  # "tcp" or "udp"

    def __str__(self) -> str:
        return f"{self.port}/{self.proto}"

    @property
    def rpc_dynamic(self) -> bool:
        """Inside the RPC dynamic range 49152-65535/tcp."""
        return self.proto == "tcp" and RPC_DYNAMIC[0] <= self.port <= RPC_DYNAMIC[1]


@dataclass(frozen=True)
class PortRole:
    """What a port is for and what breaks when the sync server cannot reach it."""

    service: str
    breaks: str
    severity: Status = Status.CRITICAL


ROLES: dict[tuple[int, str], PortRole] = {
    (53, "tcp"): PortRole("DNS", "DC location and name lookups of large answers on this DC"),
    (53, "udp"): PortRole("DNS", "DC location and name lookups: import, export and password hash sync"),
    (88, "tcp"): PortRole(
        "Kerberos",
        "Kerberos authentication to AD: import/export, password hash sync, password writeback, Seamless SSO set-up",
    ),
    (88, "udp"): PortRole("Kerberos", "Kerberos authentication to AD (small tickets go over UDP)"),
    (135, "tcp"): PortRole(
        "RPC endpoint mapper",
        "password hash sync (DRS replication over RPC) and the configuration wizard binding to the forest",
    ),
    (389, "tcp"): PortRole(
        "LDAP", "import and export (the whole sync), password writeback, group and device writeback"
    ),
    (389, "udp"): PortRole("CLDAP", "DC locator pings (the sync server cannot pick a DC)"),
    (445, "tcp"): PortRole(
        "SMB", "Seamless SSO (creating/rolling the AZUREADSSOACC computer account) and password writeback"
    ),
    (636, "tcp"): PortRole(
        "LDAPS", "import and export when AD Connect is configured for LDAP over SSL", Status.WARNING
    ),
    (3268, "tcp"): PortRole(
        "Global catalog", "forest-wide lookups by the wizard and multi-domain forests", Status.WARNING
    ),
    (3269, "tcp"): PortRole(
        "Global catalog over SSL", "forest-wide lookups when AD Connect uses LDAP over SSL", Status.WARNING
    ),
    (123, "udp"): PortRole("NTP", "time from the DC (Kerberos fails at 5 minutes of clock skew)", Status.WARNING),
    (464, "tcp"): PortRole("Kerberos password change", "password writeback (kpasswd)", Status.WARNING),
    (464, "udp"): PortRole("Kerberos password change", "password writeback (kpasswd)", Status.WARNING),
}
RPC_ROLE = PortRole("RPC dynamic", "password hash sync (DRS GetNCChanges) and the configuration wizard")

#: Microsoft's Entra Connect port reference (AD Connect to AD); 3269, 123/udp and 464 on request.
DEFAULT_PORTS_TEXT = "53/tcp,53/udp,88/tcp,88/udp,135/tcp,389/tcp,389/udp,445/tcp,636/tcp,3268/tcp"
#: Which protocol each port is expected to speak (the reply is checked against it).
PROTOCOLS = {
    (53, "udp"): "DNS",
    (88, "udp"): "Kerberos",
    (464, "udp"): "Kerberos",
    (389, "udp"): "CLDAP",
    (123, "udp"): "NTP",
    (389, "tcp"): "LDAP",
    (3268, "tcp"): "LDAP",
    (88, "tcp"): "Kerberos",
    (636, "tcp"): "LDAPS",
    (3269, "tcp"): "LDAPS",
}


def role_of(spec: PortSpec) -> PortRole:
    """The role of *spec* (an unknown port: "asked for", CRITICAL when blocked)."""
    if spec.rpc_dynamic:
        return RPC_ROLE
    return ROLES.get((spec.port, spec.proto), PortRole(f"port {spec}", "whatever uses this port (asked for)"))


def parse_ports(text: str) -> list[PortSpec]:
    """Parse ``53/tcp,53/udp,49152-65535/tcp`` (PORT/PROTO or FIRST-LAST/PROTO; tcp when omitted)."""
    specs: list[PortSpec] = []
    seen: set[PortSpec] = set()
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        ports_text, _, proto = item.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise InputError(f"invalid port {raw.strip()!r}: protocol must be tcp or udp")
        first_text, dash, last_text = ports_text.partition("-")
        try:
            first = int(first_text)
            last = int(last_text) if dash else first
        except ValueError:
            raise InputError(f"invalid port {raw.strip()!r}: expected PORT/PROTO such as 389/tcp") from None
        if not (0 < first <= last < 65536):
            raise InputError(f"invalid port {raw.strip()!r}: ports are 1-65535, ranges FIRST-LAST")
        for port in range(first, last + 1):
            spec = PortSpec(port, proto)
            if spec not in seen:
                seen.add(spec)
                specs.append(spec)
        if len(specs) > MAX_PORTS:
            raise InputError(f"--ports lists more than {MAX_PORTS} ports")
    if not specs:
        raise InputError("--ports is empty: give e.g. 389/tcp,389/udp")
    return specs


DEFAULT_PORTS = parse_ports(DEFAULT_PORTS_TEXT)


@dataclass
class PortProbe:
    """The state of one port of one DC, and what answered there.

    ``answer`` is set when a protocol request was sent and the port was open: whether the
    reply speaks the protocol, and the server's clock when it carries it. ``tls`` holds the
    TLS probe of an LDAPS port (certificate, chain) for :func:`assess_ldaps`.
    """

    spec: PortSpec
    state: PortState
    latency_s: float
    error: str = ""
    answer: ProtocolAnswer | None = None
    tls: Any = None

    @property
    def not_protocol(self) -> bool:
        """Open, but what answered does not speak the protocol asked."""
        return self.state is PortState.OPEN and self.answer is not None and not self.answer.speaks


def _udp_answer(port: int, payload: bytes, reply: bytes) -> ProtocolAnswer | None:
    from ..probes import adproto

    if port == 53:
        return adproto.dns_reply(payload, reply)
    if port == 389:
        return adproto.ldap_search_reply(1, reply, "CLDAP")
    if port in (88, 464):
        return adproto.kerberos_reply(reply)
    if port == 123:
        return adproto.ntp_reply(payload, reply)
    return None


def _connect(address: str, spec: PortSpec, timeout: float) -> tuple[socket.socket, float] | PortProbe:
    """A TCP connection and its latency, or the probe result saying why there is none."""
    import time

    from ..probes.tcp import state_of_errno, tcp_connect

    start = time.perf_counter()
    try:
        return tcp_connect(address, spec.port, timeout), time.perf_counter() - start
    except TimeoutError:
        return PortProbe(spec, PortState.FILTERED, time.perf_counter() - start, "timed out")
    except OSError as exc:
        return PortProbe(spec, state_of_errno(exc.errno), time.perf_counter() - start, exc.strerror or str(exc))


def _kerberos_tcp(address: str, port: int, domain: str, timeout: float) -> PortProbe:
    """88/tcp: an AS-REQ with its 4-byte length prefix; the KRB-ERROR carries the KDC's clock."""
    import time

    from ..probes import adproto

    spec = PortSpec(port, "tcp")
    connected = _connect(address, spec, timeout)
    if isinstance(connected, PortProbe):
        return connected
    sock, latency = connected
    deadline = time.monotonic() + timeout
    request = payload_for(port, domain)
    sent = time.time()
    with sock:
        try:
            sock.sendall(len(request).to_bytes(4, "big") + request)
            data = b""
            while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > 1 << 20:
                    break
        except TimeoutError:
            return PortProbe(
                spec,
                PortState.OPEN,
                latency,
                answer=ProtocolAnswer(
                    "Kerberos", False, f"accepts connections but sends no Kerberos answer within {timeout:g}s"
                ),
            )
        except OSError as exc:
            data = b""
            error = exc.strerror or str(exc)
            return PortProbe(
                spec,
                PortState.OPEN,
                latency,
                answer=ProtocolAnswer("Kerberos", False, f"connection failed after the request: {error}"),
            )
    if len(data) < 4:
        answer = ProtocolAnswer("Kerberos", False, "the connection closed without a Kerberos answer")
    else:
        answer = adproto.kerberos_reply(data[4 : 4 + int.from_bytes(data[:4], "big")])
        answer.local_time = adproto.midpoint(sent, time.time())
    return PortProbe(spec, PortState.OPEN, latency, answer=answer)


def _ldap_tcp(address: str, port: int, timeout: float) -> PortProbe:
    """389/3268: connect, then an anonymous rootDSE search (an open port that never answers is not LDAP)."""

    from ..probes import adproto

    spec = PortSpec(port, "tcp")
    connected = _connect(address, spec, timeout)
    if isinstance(connected, PortProbe):
        return connected
    sock, latency = connected
    with sock:
        answer = adproto.ldap_rootdse(sock, timeout)
    return PortProbe(spec, PortState.OPEN, latency, answer=answer)


def _ldaps(address: str, port: int, dc: str, timeout: float, ca_file: str | None) -> PortProbe:
    """636/3269: a TLS handshake (chain against *ca_file* or the system store), then the rootDSE search."""
    from ..probes import adproto
    from ..probes.tls import tls_probe

    spec = PortSpec(port, "tcp")
    probe = tls_probe(
        dc,
        port,
        timeout=timeout,
        address=address,
        ca_file=ca_file,
        then=lambda sock: adproto.ldap_rootdse(sock, timeout, protocol="LDAPS"),
    )
    if probe.tcp_state is not PortState.OPEN:
        return PortProbe(spec, probe.tcp_state, probe.connect_s, probe.tcp_error)
    answer = (
        probe.after
        if isinstance(probe.after, ProtocolAnswer)
        else ProtocolAnswer("LDAPS", False, probe.handshake_error or probe.after_error or "no LDAP answer over TLS")
    )
    return PortProbe(spec, PortState.OPEN, probe.connect_s, answer=answer, tls=probe)


def probe_port(
    address: str, spec: PortSpec, domain: str, timeout: float, *, dc: str = "", ca_file: str | None = None
) -> PortProbe:
    """Probe one port of one DC address, with the request of the protocol expected there."""
    import time

    if spec.proto == "udp":
        payload = payload_for(spec.port, domain)
        sent = time.time()
        u = udp_probe(address, spec.port, payload, timeout)
        received = time.time()
        answer = None
        if u.state is PortState.OPEN:
            from ..probes.adproto import midpoint

            answer = _udp_answer(spec.port, payload, u.reply)
            if answer is not None:
                answer.local_time = midpoint(sent, received)
        return PortProbe(spec, u.state, u.latency_s, u.error, answer=answer)
    if spec.port in (389, 3268):
        return _ldap_tcp(address, spec.port, timeout)
    if spec.port == 88:
        return _kerberos_tcp(address, spec.port, domain, timeout)
    if spec.port in (636, 3269):
        return _ldaps(address, spec.port, dc or address, timeout, ca_file)
    t = tcp_probe(address, spec.port, timeout)
    return PortProbe(spec, t.state, t.latency_s, t.error)


def _port_status(probe: PortProbe) -> Status:
    if probe.not_protocol:
        return Status.WARNING
    if probe.state is PortState.OPEN:
        return Status.OK
    if probe.state is PortState.ERROR:
        return Status.UNKNOWN
    if probe.spec.rpc_dynamic:
        # Nothing listens on most of the range: closed is normal, filtered is the firewall.
        return Status.OK if probe.state is PortState.CLOSED else RPC_ROLE.severity
    return role_of(probe.spec).severity


def _port_row(probe: PortProbe, role: PortRole) -> dict[str, Any]:
    """One plain port's row in the details: state, service, latency, error and protocol answer."""
    row: dict[str, Any] = {
        "port": probe.spec.port,
        "proto": probe.spec.proto,
        "state": probe.state.value,
        "service": role.service,
        "latency_ms": round(probe.latency_s * 1000, 1),
    }
    if probe.error:
        row["error"] = probe.error
    if probe.answer is not None:
        row["protocol"] = probe.answer.protocol
        row["speaks_protocol"] = probe.answer.speaks
        if probe.answer.note:
            row["answer"] = probe.answer.note
    return row


def _port_problem(probe: PortProbe, role: PortRole, status: Status) -> tuple[Status, str] | None:
    """The problem with one plain port (open but another protocol, closed, filtered, error); None when fine."""
    if probe.not_protocol and probe.answer is not None:
        return (status, f"{probe.spec} open, not {probe.answer.protocol} ({probe.answer.note})")
    if status is not Status.OK:
        how = (
            f": {probe.error}"
            if probe.error
            and probe.state is PortState.FILTERED
            and "timeout" not in probe.error
            and "timed out" not in probe.error
            else ""
        )
        return (status, f"{probe.spec} {probe.state.value} ({role.service}{how})")
    return None


def _rpc_dynamic(rpc: Sequence[PortProbe]) -> tuple[dict[str, Any], list[tuple[Status, str]]]:
    """The RPC dynamic range's details (open, closed, filtered) and its problems (filtered ports, failed probes)."""
    problems: list[tuple[Status, str]] = []
    filtered = [p.spec.port for p in rpc if p.state is PortState.FILTERED]
    opened = [p.spec.port for p in rpc if p.state is PortState.OPEN]
    details = {
        "probed": len(rpc),
        "open": opened[:50],
        "open_count": len(opened),
        "closed_count": sum(1 for p in rpc if p.state is PortState.CLOSED),
        "filtered_count": len(filtered),
        "filtered_sample": filtered[:20],
    }
    if filtered:
        problems.append(
            (
                RPC_ROLE.severity,
                (f"RPC dynamic range: {len(filtered)} of {len(rpc)} ports filtered (breaks {RPC_ROLE.breaks})"),
            )
        )
    errors = [p for p in rpc if p.state is PortState.ERROR]
    if errors:
        problems.append((Status.UNKNOWN, f"RPC dynamic range: {len(errors)} probe(s) failed ({errors[0].error})"))
    return details, problems


def _ports_summary(
    who: str,
    problems: list[tuple[Status, str]],
    breaks: list[str],
    *,
    probes: Sequence[PortProbe],
    plain: list[PortProbe],
    rpc: list[PortProbe],
    asked_rpc: bool,
) -> str:
    """The DC's summary: its problems, most severe first, and what they break; or that all ports are open."""
    if problems:
        ordered = sorted(problems, key=lambda p: -p[0].severity)
        summary = f"{who}: " + ", ".join(text for _, text in ordered)
        unique = list(dict.fromkeys(breaks))
        if 0 < len(unique) <= 2:
            summary += " — breaks " + "; ".join(unique)
        elif unique:
            summary += " — see details for what each breaks"
    else:
        spoke = sum(1 for p in plain if p.answer is not None and p.answer.speaks)
        summary = f"{who}: all {len(probes)} ports open"
        if spoke:
            summary += f" ({spoke} answered in their protocol)"
        if rpc:
            summary = f"{who}: all {len(plain)} ports open, RPC dynamic range reachable"
    if not asked_rpc:
        summary += "; RPC dynamic range not probed"
    return summary


def assess_dc(dc: str, address: str, probes: Sequence[PortProbe], asked_rpc: bool, target: str = "") -> CheckResult:
    """One DC's port matrix as a check: the closed/filtered ports and what each breaks."""
    plain = [p for p in probes if not p.spec.rpc_dynamic]
    rpc = [p for p in probes if p.spec.rpc_dynamic]
    rows: list[dict[str, Any]] = []
    problems: list[tuple[Status, str]] = []
    breaks: list[str] = []
    for probe in plain:
        role = role_of(probe.spec)
        row = _port_row(probe, role)
        problem = _port_problem(probe, role, _port_status(probe))
        if problem is not None:
            row["breaks"] = role.breaks
            problems.append(problem)
            breaks.append(f"{role.service}: {role.breaks}")
        rows.append(row)
    details: dict[str, Any] = {"dc": dc, "address": address, "ports": rows}
    counts = {state.value: sum(1 for p in probes if p.state is state) for state in PortState}
    if rpc:
        details["rpc_dynamic"], rpc_problems = _rpc_dynamic(rpc)
        problems.extend(rpc_problems)
    if not asked_rpc:
        details["rpc_dynamic"] = {
            "probed": 0,
            "note": "RPC dynamic range 49152-65535/tcp not probed (ask with --ports 49152-65535/tcp)",
        }
    status = worst(s for s, _ in problems)
    who = dc if dc == address else f"{dc} ({address})"
    summary = _ports_summary(who, problems, breaks, probes=probes, plain=plain, rpc=rpc, asked_rpc=asked_rpc)
    metrics: dict[str, MetricValue] = {state: count for state, count in counts.items() if state != "error" or count}
    return CheckResult(
        "adsync.dc.ports",
        target or dc,
        "ports from the sync server to the DC",
        status,
        summary,
        details=details,
        metrics=metrics,
        duration_s=round(max((p.latency_s for p in probes), default=0.0), 4),
    )


def unresolved_dc(dc: str, servers: Sequence[str]) -> CheckResult:
    """A DC whose address no DNS server (nor --resolve) gave: its ports cannot be probed."""
    return CheckResult(
        "adsync.dc.ports",
        dc,
        "ports from the sync server to the DC",
        Status.CRITICAL,
        f"{dc}: no DNS server ({', '.join(servers) or 'none'}) returns an address for it, ports not probed "
        "(give one with --resolve HOST:ADDRESS)",
        details={"dc": dc, "address": None},
    )
