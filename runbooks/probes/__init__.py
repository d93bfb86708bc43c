"""Bounded-concurrency network probes shared by the runbooks (TCP, UDP, TLS, DNS).

Every probe takes an explicit timeout; fleets are probed through :func:`run_bounded`, so
the total time is bounded by the timeout, not by the number of targets.
"""

from __future__ import annotations

from .concurrency import run_bounded
from .targets import HostPort, parse_host_port, parse_resolve
from .tcp import PortState, TcpResult, tcp_connect, tcp_probe

__all__ = [
    "HostPort",
    "PortState",
    "TcpResult",
    "parse_host_port",
    "parse_resolve",
    "run_bounded",
    "tcp_connect",
    "tcp_probe",
]
