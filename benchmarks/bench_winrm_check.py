"""Fleet benchmark for `opsbook winrm check` (loopback only).

200 WinRM-like TLS listeners spread over 127.0.x.y, of which 20 % accept TCP and never
complete the handshake, checked in ONE run with `--timeout 2`.

Measures:
  1. wall time of `python -m opsbook winrm check ... --timeout 2` (a real subprocess, interpreter
     start-up included) / timeout                        -> target <= 1.5
  2. the same hosts checked by a sequential loop of `timeout 2 openssl s_client ...`
     (a TLS handshake only, no WS-Man probe), and the ratio sequential / opsbook.

Usage: .venv/bin/python benchmarks/bench_winrm_check.py [--hosts 200] [--hang-share 0.2]
       [--timeout 2] [--concurrency 64] [--openssl-sample N]
`--openssl-sample N` runs the openssl loop over N hosts only (same hang share) and
extrapolates to all hosts; the output says so. Default: all hosts (about 90 s).
Exits 1 when the target ratio is missed or the report is wrong.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.tlspeers import HangServer, TestCA, TlsServer  # noqa: E402

TARGET = 1.5


def address(i: int) -> str:
    """127.0.x.y, 250 hosts per /24, avoiding .0 and .255 (and 127.0.0.x used by tests)."""
    return f"127.0.{101 + i // 250}.{1 + i % 250}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--hang-share", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--openssl-sample", type=int, default=0, help="openssl loop over N hosts, extrapolated")
    args = parser.parse_args()

    n_hang = round(args.hosts * args.hang_share)
    hang_every = max(1, round(args.hosts / n_hang)) if n_hang else 0
    ca = TestCA("Bench Issuing CA")
    leaf = ca.issue("*.bench.test", names=["*.bench.test"])
    servers: list[TlsServer | HangServer] = []
    hosts: list[tuple[str, str, int, bool]] = []  # name, address, port, hangs
    tmp = Path(tempfile.mkdtemp(prefix="bench-winrm-"))
    try:
        hung = 0
        for i in range(args.hosts):
            addr = address(i)
            hangs = bool(hang_every) and i % hang_every == hang_every - 1 and hung < n_hang
            srv: TlsServer | HangServer = HangServer(addr) if hangs else TlsServer(leaf, host=addr, mode="winrm")
            hung += hangs
            servers.append(srv)
            hosts.append((f"h{i:03d}.bench.test", addr, srv.port, hangs))
        ca_file = ca.write(tmp)
        hosts_file = tmp / "hosts.txt"
        hosts_file.write_text("".join(f"{name}:{port}\n" for name, _, port, _ in hosts))
        resolve = [a for name, addr, _, _ in hosts for a in ("--resolve", f"{name}:{addr}")]
        cmd = [
            sys.executable,
            "-m",
            "opsbook",
            "winrm",
            "check",
            "--hosts-file",
            str(hosts_file),
            *resolve,
            "--ca-file",
            str(ca_file),
            "--timeout",
            f"{args.timeout:g}",
            "--concurrency",
            str(args.concurrency),
            "-f",
            "json",
        ]
        print(
            f"listeners: {len(hosts)} on 127.0.x.y ({hung} never complete the handshake); "
            f"--timeout {args.timeout:g} --concurrency {args.concurrency}"
        )
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        wall = time.perf_counter() - start
        doc = json.loads(proc.stdout)
        ok = True
        tls_fail = sum(1 for c in doc["checks"] if c["id"] == "winrm.tls" and c["status"] == "CRITICAL")
        wsman_ok = sum(1 for c in doc["checks"] if c["id"] == "winrm.wsman" and c["status"] == "OK")
        if (tls_fail, wsman_ok) != (hung, len(hosts) - hung) or proc.returncode != 2:
            print(
                f"WRONG REPORT: exit {proc.returncode}, {tls_fail} TLS failures (want {hung}), "
                f"{wsman_ok} WinRM listeners OK (want {len(hosts) - hung})"
            )
            ok = False
        ratio = wall / args.timeout
        print(
            f"opsbook winrm check: {wall:.2f} s wall for {len(hosts)} hosts, {doc['duration_s']:.2f} s inside "
            f"the run (exit {proc.returncode}; {tls_fail} hung handshakes reported, {wsman_ok} listeners OK)"
        )
        print(f"wall / timeout = {ratio:.2f} (target <= {TARGET})  {'PASS' if ratio <= TARGET else 'FAIL'}")
        ok = ok and ratio <= TARGET

        openssl = shutil.which("openssl")
        if openssl:
            sample = hosts
            if 0 < args.openssl_sample < len(hosts):  # keep the hang share in the sample
                hanging = [h for h in hosts if h[3]]
                fine = [h for h in hosts if not h[3]]
                k_hang = round(args.openssl_sample * len(hanging) / len(hosts))
                sample = hanging[:k_hang] + fine[: args.openssl_sample - k_hang]
            start = time.perf_counter()
            for name, addr, port, _ in sample:
                subprocess.run(
                    [
                        "timeout",
                        f"{args.timeout:g}",
                        openssl,
                        "s_client",
                        "-connect",
                        f"{addr}:{port}",
                        "-servername",
                        name,
                        "-CAfile",
                        str(ca_file),
                        "-verify_return_error",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
            seq = time.perf_counter() - start
            note = ""
            if len(sample) < len(hosts):
                seq_all = seq * len(hosts) / len(sample)
                note = f" (measured {seq:.2f} s over {len(sample)} hosts, EXTRAPOLATED to {len(hosts)})"
                seq = seq_all
            print(f"sequential `timeout {args.timeout:g} openssl s_client` loop: {seq:.2f} s{note}")
            print(f"sequential openssl / opsbook = {seq / wall:.1f}x")
        else:
            print("openssl not installed: sequential comparison skipped")
        return 0 if ok else 1
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
