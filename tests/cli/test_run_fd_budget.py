"""One open-file budget for the whole `opsbook run`: entries share it instead of each sizing
its own pool from RLIMIT_NOFILE (4 winrm entries x 100 hosts under `ulimit -n 256` gave
"Too many open files" UNKNOWNs)."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

ENTRIES = 4
HOSTS = 100


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback TCP listener that accepts and holds every connection, never speaking TLS:
    each probe keeps its socket open until its handshake times out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        sock.close()


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_four_winrm_entries_of_100_hosts_fit_in_ulimit_256(tmp_path: Path, silent_listener: int) -> None:
    lines = ["version: 1", "defaults: {concurrency: 4}", "checks:"]
    for e in range(ENTRIES):
        names = [f"h{e}-{i}.corp.test" for i in range(HOSTS)]
        lines += [
            f"  - name: fleet{e}",
            "    runbook: winrm",
            "    with:",
            f"      hosts: [{', '.join(f'{n}:{silent_listener}' for n in names)}]",
            f"      resolve: [{', '.join(f'{n}:127.0.0.1' for n in names)}]",
            "      timeout: 0.5",
            "      concurrency: 100",
        ]
    suite = tmp_path / "suite.yaml"
    suite.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "opsbook", "run", str(suite), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        preexec_fn=_limit_fds,
        check=False,
    )
    doc = json.loads(proc.stdout)
    tcp = [c for c in doc["checks"] if c["id"] == "winrm.tcp"]
    assert len(tcp) == ENTRIES * HOSTS, proc.stderr
    assert "Too many open files" not in proc.stdout
    assert [c["summary"] for c in tcp if c["status"] != "OK"] == []  # every port was reached


def test_the_budget_makes_probes_wait_instead_of_failing() -> None:
    from opsbook.runbooks.probes.concurrency import FdBudget

    budget = FdBudget(capacity=4)
    peak = 0
    lock = threading.Lock()

    def probe() -> None:
        nonlocal peak
        with budget.hold(2):
            with lock:
                peak = max(peak, budget.in_use)
            time.sleep(0.05)

    threads = [threading.Thread(target=probe) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert peak == 4 and budget.in_use == 0
    with budget.hold(100):  # more than the capacity: capped, never a deadlock
        assert budget.in_use == 4
