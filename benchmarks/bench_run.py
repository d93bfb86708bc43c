"""`opsbook run` benchmark: a suite of 50 checks against loopback peers, 10 of which time out.

40 entries check a healthy loopback WinRM-like TLS listener; 10 entries check a listener
that accepts TCP and never completes the TLS handshake, with ``timeout: 1``. Entries run
concurrently (opsbook's default suite concurrency unless ``--concurrency N`` writes
``defaults.concurrency: N`` into the suite), so the whole run should take about one
timeout, not ten. Measured: wall time of the real CLI (a subprocess, start-up included)
divided by the 1 s timeout. Target: <= 2.

Usage: .venv/bin/python benchmarks/bench_run.py [--runs N] [--concurrency N]
Loopback only.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.tlspeers import HangServer, TestCA, TlsServer, make_leaf  # noqa: E402

TARGET = 2.0
TIMEOUT = 1.0
NAME = "bench.corp.test"


def write_suite(folder: Path, ca_file: Path, healthy: TlsServer, hang: HangServer, concurrency: int | None) -> Path:
    lines = ["version: 1", "defaults:", f"  timeout: {TIMEOUT:g}"]
    if concurrency is not None:
        lines.append(f"  concurrency: {concurrency}")
    lines.append("checks:")
    for i in range(50):
        slow = i % 5 == 4  # 10 slow entries spread through the suite
        lines += [f"  - name: {'slow' if slow else 'fast'}-{i:02d}", "    runbook: winrm", "    with:"]
        if slow:
            lines += [f"      hosts: ['127.0.0.1:{hang.port}']"]
        else:
            lines += [
                f"      hosts: ['{NAME}:{healthy.port}']",
                f"      resolve: ['{NAME}:127.0.0.1']",
                f"      ca-file: {ca_file}",
            ]
    path = folder / "bench-suite.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_once(suite: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "opsbook", "run", str(suite), "-f", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1, 2):
        raise SystemExit(f"opsbook run failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="write defaults.concurrency into the suite (default: opsbook's own default)",
    )
    args = parser.parse_args()
    socket.setdefaulttimeout(None)
    with tempfile.TemporaryDirectory(prefix="opsbook-bench-run-") as tmp:
        folder = Path(tmp)
        ca = TestCA("Bench CA")
        ca_file = ca.write(folder)
        healthy = TlsServer(make_leaf("valid", ca, NAME), mode="winrm")
        hang = HangServer()
        try:
            suite = write_suite(folder, ca_file, healthy, hang, args.concurrency)
            walls = []
            for _ in range(args.runs):
                wall, doc = run_once(suite)
                walls.append(wall)
                sources = {c["source"] for c in doc["checks"]}
                slow_bad = {
                    c["source"] for c in doc["checks"] if c["source"].startswith("slow") and c["status"] != "OK"
                }
                fast_ok = {c["source"] for c in doc["checks"] if c["source"].startswith("fast")} - {
                    c["source"] for c in doc["checks"] if c["source"].startswith("fast") and c["status"] != "OK"
                }
                if len(sources) != 50 or len(slow_bad) != 10 or len(fast_ok) != 40:
                    raise SystemExit(
                        f"unexpected results: {len(sources)} entries reported, {len(slow_bad)} slow failed, "
                        f"{len(fast_ok)} fast OK"
                    )
        finally:
            healthy.stop()
            hang.stop()
    median = statistics.median(walls)
    ratio = median / TIMEOUT
    from opsbook.runbooks.suite.model import DEFAULT_CONCURRENCY

    concurrency = args.concurrency or f"{DEFAULT_CONCURRENCY} (the default)"
    print(f"suite: 50 checks (10 time out at {TIMEOUT:g}s), concurrency {concurrency}, runs {args.runs}")
    print(f"wall times: {', '.join(f'{w:.2f}s' for w in walls)}; median {median:.2f}s")
    print(f"ratio wall/timeout = {ratio:.2f} (target <= {TARGET:g}): {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
