"""Benchmark ``opsbook adsync check``: concurrent wall time / timeout, and the same probes one after another.

Scenario (issue 5): 3 DNS servers (one brown-out, one dead, one healthy) and 20 DCs x the
default ports with 30% of the ports filtered, ``--timeout 1``. Everything runs inside a
throwaway network namespace (``unshare -n``: only its own loopback; nft drop rules make
the filtered ports). Target: concurrent wall / timeout <= 2. Exit 1 when missed.

    .venv/bin/python benchmarks/bench_adsync.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TIMEOUT = 1.0
TARGET = 2.0
DOMAIN = "corp.test"
PORTS = [
    (53, "tcp"),
    (53, "udp"),
    (88, "tcp"),
    (88, "udp"),
    (135, "tcp"),
    (389, "tcp"),
    (389, "udp"),
    (445, "tcp"),
    (636, "tcp"),
    (3268, "tcp"),
]


def spec() -> dict:
    dcs = {f"dc{i:02d}.{DOMAIN}": f"127.0.21.{100 + i}" for i in range(1, 21)}
    pairs = [(address, proto, port) for address in dcs.values() for port, proto in PORTS]
    drops = random.Random(5).sample(pairs, k=round(len(pairs) * 0.3))
    dns = [
        {"kind": "brownout", "address": "127.0.21.2", "port": 53},
        {"kind": "dead", "address": "127.0.21.3", "port": 53},
        {"kind": "healthy", "address": "127.0.21.1", "port": 53},
    ]
    return {"domain": DOMAIN, "dcs": dcs, "dns": dns, "drops": [list(d) for d in drops]}


def inside() -> int:
    from opsbook.runbooks.adsync.check import AdsyncOptions, collect
    from opsbook.runbooks.probes.targets import HostPort
    from tests.e2e.adsync_lab import lab, namespace_setup, run_check

    s = spec()
    namespace_setup([tuple(d) for d in s["drops"]])
    with lab(s):
        args = ["--domain", DOMAIN, "--timeout", str(TIMEOUT)]
        for server in s["dns"]:
            args += ["--dns", server["address"]]
        code, wall, report = run_check(args)
        checks = report["checks"]
        dcs = sum(1 for c in checks if c["id"] == "adsync.dc.ports")
        filtered = sum(c["metrics"].get("filtered", 0) for c in checks if c["id"] == "adsync.dc.ports")
        brownout = any("BROWN-OUT" in c["summary"] for c in checks if c["id"] == "adsync.dns.records")
        options = AdsyncOptions(
            domain=DOMAIN, dns_servers=[HostPort(x["address"], 53) for x in s["dns"]], timeout=TIMEOUT, concurrency=1
        )
        start = time.perf_counter()
        sequential_checks = collect(options)
        sequential = time.perf_counter() - start
    print(
        json.dumps(
            {
                "code": code,
                "wall": wall,
                "sequential": sequential,
                "dcs": dcs,
                "filtered": filtered,
                "brownout": brownout,
                "checks": len(checks),
                "sequential_checks": len(sequential_checks),
            }
        )
    )
    return 0


def main() -> int:
    if os.environ.get("OPSBOOK_BENCH_ADSYNC_INSIDE") == "1":
        return inside()
    if os.geteuid() != 0:
        print("bench_adsync: needs root (unshare -n, nft)", file=sys.stderr)
        return 2
    env = {**os.environ, "OPSBOOK_BENCH_ADSYNC_INSIDE": "1"}
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, __file__], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return 2
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = r["wall"] / TIMEOUT
    print("adsync check: 3 DNS servers (1 brown-out, 1 dead), 20 DCs x 10 ports, 30% filtered, --timeout 1")
    print(
        f"  DCs probed: {r['dcs']}, filtered ports seen: {r['filtered']}, brown-out detected: {r['brownout']}, "
        f"exit code {r['code']}"
    )
    print(f"  concurrent wall time:   {r['wall']:.3f} s  -> wall/timeout = {ratio:.2f} (target <= {TARGET})")
    print(
        f"  sequential wall time:   {r['sequential']:.3f} s  -> sequential/concurrent = "
        f"{r['sequential'] / r['wall']:.1f}x"
    )
    ok = ratio <= TARGET and r["dcs"] == 20 and r["filtered"] == 60 and r["brownout"]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
