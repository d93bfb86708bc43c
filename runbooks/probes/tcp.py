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
    CLOSED = "closed"  # RST, or an ICMP unreachable
    FILTERED = "filtered"  # no answer within the timeout
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


_CLOSED_ERRNOS = {
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ECONNRESET,
    errno.EACCES,
    errno.EPERM,
}


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
        state = PortState.CLOSED if exc.errno in _CLOSED_ERRNOS else PortState.ERROR
        return TcpResult(host, port, state, time.perf_counter() - start, exc.strerror or str(exc))
    sock.close()
    return TcpResult(host, port, PortState.OPEN, time.perf_counter() - start)
