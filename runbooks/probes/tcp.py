"""TCP reachability in three states, like PortQry: open, closed, filtered."""

from __future__ import annotations

import enum
import errno
import socket
import time
from dataclasses import dataclass

from .concurrency import FD_BUDGET


class PortState(enum.Enum):
    """What a port probe saw."""

    OPEN = "open"
    CLOSED = "closed"  # the host answered and nothing listens: RST (TCP), ICMP port unreachable (UDP)
    FILTERED = "filtered"  # no answer in time, an ICMP admin-prohibited/host-unreachable, or a local firewall
    ERROR = "error"  # name resolution or local failure

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TcpResult:
    """Outcome of one TCP connect."""

    host: str
    port: int
    state: PortState
    latency_s: float
    error: str = ""


#: The host itself answered "nothing listens here" (a TCP RST, an ICMP port unreachable).
_CLOSED_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
}
#: A firewall answered instead of the host (ICMP admin-prohibited, host/net unreachable: an explicit
#: REJECT), or this machine's own firewall refused to send (EPERM/EACCES): "filtered", as nmap says.
_FILTERED_ERRNOS = {
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EACCES,
    errno.EPERM,
}


def state_of_errno(number: int | None) -> PortState:
    """The port state an ``OSError`` errno from connect/send/recv means (closed, filtered, or error)."""
    if number in _CLOSED_ERRNOS:
        return PortState.CLOSED
    if number in _FILTERED_ERRNOS:
        return PortState.FILTERED
    return PortState.ERROR


def tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to *host*:*port* within *timeout* seconds (name resolution included).

    Returns the connected socket (with *timeout* set); raises OSError / TimeoutError.
    """
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for family, socktype, proto, _name, sockaddr in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(remaining)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.settimeout(timeout)
        return sock
    if last_error is not None:
        raise last_error
    raise TimeoutError(f"timed out connecting to {host}:{port}")


def tcp_probe(host: str, port: int, timeout: float) -> TcpResult:
    """Probe one TCP port and classify it as open, closed or filtered."""
    with FD_BUDGET.hold():  # one budget for the whole process: concurrent entries share it
        return _tcp_probe(host, port, timeout)


def _tcp_probe(host: str, port: int, timeout: float) -> TcpResult:
    start = time.perf_counter()
    try:
        sock = tcp_connect(host, port, timeout)
    except TimeoutError:
        return TcpResult(host, port, PortState.FILTERED, time.perf_counter() - start, "timed out")
    except socket.gaierror as exc:
        return TcpResult(host, port, PortState.ERROR, time.perf_counter() - start, f"cannot resolve: {exc.strerror}")
    except OSError as exc:
        state = state_of_errno(exc.errno)
        return TcpResult(host, port, state, time.perf_counter() - start, exc.strerror or str(exc))
    sock.close()
    return TcpResult(host, port, PortState.OPEN, time.perf_counter() - start)
