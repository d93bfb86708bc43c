"""Load benchmark for `opsbook serve` against blackbox_exporter's tls_connect (loopback only).

200 TLS listeners on 127.0.119.x, of which 40 accept TCP and never complete the handshake;
500 concurrent GET /probe requests spread over them, each announcing a 2 s scrape timeout
(X-Prometheus-Scrape-Timeout-Seconds), first to `opsbook serve` (module: winrm check, which
does more than a handshake: chain, name, expiry, EKU, key, WS-Man Identify), then to Debian's
prometheus-blackbox-exporter (module tls_connect: TCP + TLS handshake) on the same targets.

Measures, per exporter: the slowest answer / scrape timeout (target <= 1.5), errors for the
healthy targets (non-200 or probe_success 0; target 0), the hung targets answered
probe_success 0, the answers after the scrape timeout (Prometheus drops them) and the healthy
targets answered probe_success 1 within it; for opsbook, RSS and open file descriptors of the exporter process before
(after a warm-up) and after the load (once the hung probes' own timeouts have ended).

Usage: .venv/bin/python benchmarks/bench_serve.py [--requests 500] [--hosts 200] [--hung 40]
       [--timeout 2] [--max-concurrent-probes 256]
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from tests.serve_peer import serve  # noqa: E402
from tests.tlspeers import HangServer, TestCA, TlsServer, free_port  # noqa: E402

TARGET = 1.5
EXPORTER = "127.0.119.251"
BLACKBOX = "127.0.119.252"


def rss_fds(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open fds) of *pid*."""
    rss = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def load(
    base: str, module: str, targets: list[str], hung: set[str], requests: int, timeout: float
) -> dict[str, object]:
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}"}
    connector = aiohttp.TCPConnector(limit=0)
    results: list[tuple[str, int, float, str]] = []
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            target = targets[i % len(targets)]
            started = time.perf_counter()
            try:
                async with session.get(
                    f"{base}/probe",
                    params={"module": module, "target": target},
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout * 3),
                ) as resp:
                    body = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                body, status = f"{exc.__class__.__name__}", 0
            results.append((target, status, time.perf_counter() - started, body))

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - started
    slowest = max(r[2] for r in results)
    healthy_errors = [r for r in results if r[0] not in hung and (r[1] != 200 or "\nprobe_success 1" not in r[3])]
    hung_ok = sum(1 for r in results if r[0] in hung and r[1] == 200 and "\nprobe_success 0" in r[3])
    # Prometheus drops an answer that comes after the scrape timeout, whatever it says.
    late = sum(1 for r in results if r[2] > timeout)
    healthy_in_time = sum(
        1 for r in results if r[0] not in hung and r[1] == 200 and "\nprobe_success 1" in r[3] and r[2] <= timeout
    )
    statuses: dict[int, int] = {}
    for r in results:
        statuses[r[1]] = statuses.get(r[1], 0) + 1
    return {
        "wall": wall,
        "slowest": slowest,
        "ratio": slowest / timeout,
        "healthy_errors": healthy_errors,
        "hung_ok": hung_ok,
        "hung_total": sum(1 for r in results if r[0] in hung),
        "statuses": statuses,
        "late": late,
        "healthy_in_time": healthy_in_time,
        "healthy_total": sum(1 for r in results if r[0] not in hung),
    }


def show(name: str, res: dict[str, object]) -> None:
    errors = res["healthy_errors"]
    assert isinstance(errors, list)
    print(
        f"{name}: wall {res['wall']:.2f}s, slowest answer {res['slowest']:.2f}s "
        f"({res['ratio']:.2f}x the scrape timeout), HTTP statuses {res['statuses']}, "
        f"healthy errors {len(errors)}, hung answered probe_success 0: {res['hung_ok']}/{res['hung_total']}"
    )
    print(
        f"   answered after the scrape timeout (Prometheus drops them): {res['late']}; healthy targets "
        f"answered probe_success 1 within it: {res['healthy_in_time']}/{res['healthy_total']}"
    )
    for target, status, elapsed, body in errors[:5]:
        print(f"   e.g. {target}: HTTP {status} after {elapsed:.2f}s: {body.strip().splitlines()[-1] if body else ''}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--hung", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--max-concurrent-probes", type=int, default=256)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="opsbook-bench-serve-"))
    ca = TestCA("Corp Issuing CA")
    ca_file = ca.write(tmp)
    servers: list[TlsServer | HangServer] = []
    targets: list[str] = []
    hung: set[str] = set()
    try:
        for i in range(args.hosts):
            host = f"127.0.119.{i + 1}"
            if i % (args.hosts // max(args.hung, 1)) == 0 and len(hung) < args.hung:
                srv: TlsServer | HangServer = HangServer(host)
                hung.add(srv.target)
            else:
                srv = TlsServer(
                    ca.issue(f"srv{i}.corp.test", names=[f"srv{i}.corp.test", host]), mode="identify", host=host
                )
            servers.append(srv)
            targets.append(srv.target)
        print(
            f"{len(targets)} TLS targets ({len(hung)} hung), {args.requests} concurrent requests, "
            f"scrape timeout {args.timeout:g}s"
        )
        config = tmp / "exporter.yaml"
        config.write_text(
            f"version: 1\nmodules:\n  winrm_https:\n    runbook: winrm\n"
            f"    with: {{ca-file: {ca_file}}}\n    allow: [127.0.119.0/24]\n"
        )
        failed = False
        with serve(
            config,
            "--max-concurrent-probes",
            str(args.max_concurrent_probes),
            "--max-queued",
            str(args.requests * 2),
            listen=f"{EXPORTER}:0",
        ) as served:
            pid = served.proc.pid
            asyncio.run(
                load(served.url, "winrm_https", [t for t in targets if t not in hung][:20], set(), 40, args.timeout)
            )  # warm-up: imports, thread pool, fd budget
            time.sleep(1)
            before = rss_fds(pid)
            res = asyncio.run(load(served.url, "winrm_https", targets, hung, args.requests, args.timeout))
            show("opsbook serve", res)
            time.sleep(args.timeout * 2)  # the hung probes' own timeouts end, their slots come back
            after = rss_fds(pid)
            print(
                f"opsbook serve: RSS {before[0] / 1024:.1f} -> {after[0] / 1024:.1f} MiB, "
                f"open fds {before[1]} -> {after[1]}"
            )
            failed |= res["ratio"] > TARGET or bool(res["healthy_errors"])  # type: ignore[operator]
            failed |= after[1] > before[1] + 2
        blackbox = shutil.which("prometheus-blackbox-exporter")
        if blackbox is None:
            print("prometheus-blackbox-exporter is not installed: no comparison (make peers)")
            return 1
        bb_config = tmp / "blackbox.yml"
        bb_config.write_text(
            f"modules:\n  tls_connect:\n    prober: tcp\n    timeout: 10s\n    tcp:\n"
            f"      tls: true\n      tls_config:\n        ca_file: {ca_file}\n"
        )
        port = free_port(BLACKBOX)
        proc = subprocess.Popen(
            [blackbox, f"--config.file={bb_config}", f"--web.listen-address={BLACKBOX}:{port}", "--log.level=error"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.5)
            base = f"http://{BLACKBOX}:{port}"
            asyncio.run(load(base, "tls_connect", [t for t in targets if t not in hung][:20], set(), 40, args.timeout))
            bb = asyncio.run(load(base, "tls_connect", targets, hung, args.requests, args.timeout))
            show("blackbox_exporter tls_connect", bb)
        finally:
            proc.terminate()
            proc.wait(10)
        print(
            f"ratio opsbook / blackbox: slowest answer {res['slowest'] / bb['slowest']:.2f}x, "  # type: ignore[operator]
            f"wall {res['wall'] / bb['wall']:.2f}x"
        )  # type: ignore[operator]
        print("PASS" if not failed else "FAIL")
        return 1 if failed else 0
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
