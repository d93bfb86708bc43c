"""Load benchmark for `opsbook serve` against blackbox_exporter's tls_connect (loopback only).

200 TLS listeners on 127.0.119.x, of which 40 accept TCP and never complete the handshake;
500 concurrent GET /probe requests spread over them, each announcing a 2 s scrape timeout
(X-Prometheus-Scrape-Timeout-Seconds), first to `opsbook serve` (module: winrm check, which
does more than a handshake: chain, name, expiry, EKU, key, legacy protocols, WS-Man Identify),
then to Debian's prometheus-blackbox-exporter (module tls_connect: TCP + TLS handshake) on the
same targets. The listeners that answer are one nginx (C, as a Windows host's HTTP.sys is) with
a certificate each, answering POST /wsman with a WS-Man IdentifyResponse; the hung ones accept
TCP and never send a byte.

`opsbook serve` runs with its defaults (probe worker processes: one per CPU),
--max-concurrent-probes 256 and --recycle-after 500: each worker is replaced (a new one started
and loaded, the old one drained) under load within the measured rounds, which must lose no
probe. Without it a worker's RSS grows with its first few thousand handshakes (native memory:
OpenSSL and the C allocator's per-thread arenas; Python's own stays flat), ever more slowly. One warm-up round (every target, every probe thread, every
certificate seen once: the steady state Prometheus keeps), then --rounds measured rounds.

Measures, per exporter and round: the slowest answer / scrape timeout (target <= 1.5), errors
for the healthy targets (non-200 or probe_success 0; target 0), the hung targets answered
probe_success 0, the answers after the scrape timeout (Prometheus drops them), the healthy
targets answered probe_success 1 within it, and the CPU time of the exporter (with its worker
processes), the TLS peers and this load client; for opsbook, RSS and open file descriptors of
the exporter and its workers after the warm-up and after each round (once the hung probes' own
timeouts have ended): fds back to the baseline, RSS within 10 % of it.

Usage: .venv/bin/python benchmarks/bench_serve.py [--requests 500] [--hosts 200] [--hung 40]
       [--timeout 2] [--max-concurrent-probes 256] [--rounds 3] [--recycle-after 500]
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from tests.serve_peer import serve  # noqa: E402
from tests.tlspeers import IDENTIFY_RESPONSE, HangServer, TestCA, free_port  # noqa: E402

#: The fleet's targets, the hung ones among them, and the pid of the process serving them.
Fleet = tuple[list[str], set[str], int]

TARGET = 1.5
#: RSS after the measured rounds may exceed the warmed-up baseline by this share (allocator noise).
RSS_GROWTH = 0.10
EXPORTER = "127.0.119.251"
BLACKBOX = "127.0.119.252"


def tree(pid: int) -> list[int]:
    """*pid* and its descendants (the exporter and its probe worker processes)."""
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
            for child in fh.read().split():
                pids += tree(int(child))
    return pids


def rss_fds(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open fds) of *pid* and its descendants, summed."""
    rss = fds = 0
    for one in tree(pid):
        with contextlib.suppress(OSError):
            with open(f"/proc/{one}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{one}/fd"))
    return rss, fds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of *pid* and its descendants, living or waited for (seconds)."""
    total = 0.0
    for one in tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{one}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def own_cpu_seconds() -> float:
    """User + system CPU time of this process (the load client)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


NGINX_SERVER = """
    server {{
        listen {host}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = /wsman {{
            default_type "application/soap+xml;charset=UTF-8";
            return 200 '{body}';
        }}
    }}
"""


def _nginx_conf(folder: Path, servers: str) -> str:
    return f"""daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
{servers}
}}
"""


def _wait_listening(targets: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    for target in targets:
        host, port = target.rsplit(":", 1)
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the TLS peer {target} did not start listening") from None
                time.sleep(0.05)


@contextlib.contextmanager
def fleet(ca: TestCA, hosts: int, hung_count: int, folder: Path) -> Iterator[Fleet]:
    """*hosts* TLS listeners on 127.0.119.x (*hung_count* of them accept TCP and never answer).

    The listeners that answer are one nginx (Debian's nginx-light: one worker process) with a
    certificate of their own each, answering POST /wsman with a WS-Man IdentifyResponse, as a
    fleet of Windows hosts would: the peers are C, as HTTP.sys is, and run beside the exporter
    on this machine's cores without costing much. (The threaded Python TLS servers of the tests
    cost as much CPU as the exporter itself: what the benchmark measured was the peers.) The
    hung ones accept TCP and never send a byte (threads blocked in accept: no CPU).
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        raise SystemExit("nginx is not installed: the benchmark's TLS peers need it (make peers)")
    targets: list[str] = []
    hung: set[str] = set()
    servers: list[str] = []
    with contextlib.ExitStack() as stack:
        for i in range(hosts):
            host = f"127.0.119.{i + 1}"
            if i % (hosts // max(hung_count, 1)) == 0 and len(hung) < hung_count:
                hang = stack.enter_context(HangServer(host))
                hung.add(hang.target)
                targets.append(hang.target)
                continue
            leaf = ca.issue(f"srv{i}.corp.test", names=[f"srv{i}.corp.test", host])
            cert, key = leaf.write(folder, f"srv{i}")
            port = free_port(host)
            servers.append(NGINX_SERVER.format(host=host, port=port, cert=cert, key=key, body=IDENTIFY_RESPONSE))
            targets.append(f"{host}:{port}")
        conf = folder / "nginx.conf"
        conf.write_text(_nginx_conf(folder, "".join(servers)))
        proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(folder), "-e", str(folder / "nginx-error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening([t for t in targets if t not in hung])
            yield targets, hung, proc.pid
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--hung", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--max-concurrent-probes", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="measured load rounds after the warm-up round")
    parser.add_argument(
        "--recycle-after",
        type=int,
        default=500,
        help="opsbook serve --recycle-after (default here 500, so that every worker is replaced, under load, "
        "within the measured rounds; the exporter's own default is 5000)",
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="opsbook-bench-serve-"))
        stack.callback(shutil.rmtree, tmp, True)
        ca = TestCA("Corp Issuing CA")
        ca_file = ca.write(tmp)
        targets, hung, fleet_pid = stack.enter_context(fleet(ca, args.hosts, args.hung, tmp))
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
            "--recycle-after",
            str(args.recycle_after),
            listen=f"{EXPORTER}:0",
        ) as served:
            pid = served.proc.pid
            # Warm-up: one full round, the steady state Prometheus keeps (every target probed,
            # every probe thread used, every certificate seen), so the baseline is not a cold start.
            asyncio.run(load(served.url, "winrm_https", targets, hung, args.requests, args.timeout))
            time.sleep(args.timeout * 2)
            before = rss_fds(pid)
            print(f"opsbook serve after a warm-up round: RSS {before[0] / 1024:.1f} MiB, open fds {before[1]}")
            for round_ in range(1, args.rounds + 1):
                cpu_before = cpu_seconds(pid), cpu_seconds(fleet_pid), own_cpu_seconds()
                res = asyncio.run(load(served.url, "winrm_https", targets, hung, args.requests, args.timeout))
                show(f"opsbook serve, round {round_}", res)
                used = cpu_seconds(pid), cpu_seconds(fleet_pid), own_cpu_seconds()
                exporter_cpu, fleet_cpu, client_cpu = (b - a for a, b in zip(cpu_before, used, strict=True))
                print(
                    f"   CPU time during the load: exporter {exporter_cpu:.2f}s, TLS peers {fleet_cpu:.2f}s, "
                    f"load client {client_cpu:.2f}s (this machine: {os.cpu_count()} cores x {res['wall']:.2f}s wall)"
                )
                time.sleep(args.timeout * 2)  # the hung probes' own timeouts end, their slots come back
                after = rss_fds(pid)
                print(f"   afterwards: RSS {after[0] / 1024:.1f} MiB, open fds {after[1]}")
                failed |= res["ratio"] > TARGET or bool(res["healthy_errors"])  # type: ignore[operator]
                failed |= after[1] > before[1] + 2
            _, metrics, _ = served.get("/metrics")
            replaced = re.findall(
                r'^opsbook_exporter_probe_worker_replacements_total\{reason="(\w+)"\} (\S+)$', metrics, re.M
            )
            print(
                "opsbook serve: probe worker processes replaced: " + ", ".join(f"{r} {float(n):g}" for r, n in replaced)
            )
            grown = after[0] / before[0] - 1
            print(
                f"opsbook serve: RSS {before[0] / 1024:.1f} -> {after[0] / 1024:.1f} MiB ({grown:+.1%} over "
                f"{args.rounds} rounds; target within {RSS_GROWTH:.0%}), open fds {before[1]} -> {after[1]}"
            )
            failed |= grown > RSS_GROWTH
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


if __name__ == "__main__":
    sys.exit(main())
