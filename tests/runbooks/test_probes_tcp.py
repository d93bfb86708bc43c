from __future__ import annotations

import socket
import threading
import time

from opsbook.runbooks.probes import PortState, run_bounded, tcp_probe


def test_open_and_closed_ports_on_loopback() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        assert tcp_probe("127.0.0.1", port, 1).state is PortState.OPEN
        result = tcp_probe("127.0.0.1", closed_port, 1)
        assert result.state is PortState.CLOSED
        assert result.latency_s < 1
    finally:
        listener.close()


def test_unresolvable_name_is_an_error_not_a_crash() -> None:
    assert tcp_probe("no-such-host.invalid", 80, 1).state is PortState.ERROR


def test_run_bounded_keeps_order_and_runs_concurrently() -> None:
    started = time.perf_counter()
    results = run_bounded(lambda x: (time.sleep(0.2), x * 2)[1], range(20), concurrency=20)
    assert results == [x * 2 for x in range(20)]
    assert time.perf_counter() - started < 1.5  # not 20 x 0.2 s


def test_run_bounded_respects_the_bound() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def work(_: int) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1

    run_bounded(work, range(30), concurrency=4)
    assert peak <= 4


def test_run_bounded_on_error_isolates_failures() -> None:
    def work(x: int) -> int:
        if x == 3:
            raise RuntimeError("boom")
        return x

    assert run_bounded(work, range(5), 3, on_error=lambda item, exc: -1) == [0, 1, 2, -1, 4]
