"""``opsbook winrm check`` end to end in a throwaway network namespace (``unshare -n``).

Inside the namespace: a healthy listener, one that never handshakes, a closed port and a port
that nft silently drops (filtered). The real CLI runs there as a subprocess; no traffic leaves
the namespace's own loopback.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.peers import need_binary, need_root

pytestmark = pytest.mark.e2e

PEER = Path(__file__).with_name("winrm_check_nspeer.py")


def run_in_namespace(tmp_path: Path, check_args: str, *, dead_dns: bool = False) -> tuple[int, dict, float]:
    """Run the peers and the CLI in a new network namespace (and mount namespace for *dead_dns*).

    *dead_dns*: /etc/resolv.conf (bind-mounted, private to the namespace) points at 127.0.0.53,
    where nft drops every DNS packet, so the system resolver hangs on any name lookup.
    """
    need_root()
    need_binary("unshare")
    nft = need_binary("nft")
    ip = need_binary("ip")
    ready = tmp_path / "ready"
    py = shlex.quote(sys.executable)
    script = f"""
set -e
{ip} link set lo up
{nft} add table inet opsbook_t
{nft} add chain inet opsbook_t c '{{ type filter hook input priority 0; }}'
{nft} add rule inet opsbook_t c tcp dport 9999 drop
{nft} add rule inet opsbook_t c udp dport 53 drop
{nft} add rule inet opsbook_t c tcp dport 53 drop
{"mount --bind " + shlex.quote(str(tmp_path / "resolv.conf")) + " /etc/resolv.conf" if dead_dns else ""}
{py} {shlex.quote(str(PEER))} {shlex.quote(str(tmp_path))} {shlex.quote(str(ready))} &
PEER=$!
trap 'kill $PEER 2>/dev/null; wait $PEER 2>/dev/null' EXIT
for i in $(seq 1 100); do [ -f {shlex.quote(str(ready))} ] && break; sleep 0.1; done
start=$(date +%s.%N)
set +e
{py} -m opsbook winrm check {check_args} -f json > {tmp_path}/out.json
code=$?
end=$(date +%s.%N)
echo "$code $start $end" > {tmp_path}/rc
"""
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\noptions timeout:5 attempts:2\n")
    flags = ["-n", "-m"] if dead_dns else ["-n"]
    proc = subprocess.run(
        ["unshare", *flags, "sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    code, start, end = (tmp_path / "rc").read_text().split()
    return int(code), json.loads((tmp_path / "out.json").read_text()), float(end) - float(start)


def test_fleet_in_a_namespace(tmp_path: Path) -> None:
    started = time.monotonic()
    code, doc, wall = run_in_namespace(
        tmp_path,
        f"srv1.corp.test 127.0.0.2 127.0.0.1:9998 127.0.0.1:9999 --resolve srv1.corp.test:127.0.0.1 "
        f"--ca-file {tmp_path}/ca.pem --timeout 1.5",
    )
    assert time.monotonic() - started < 30
    assert code == 2
    checks = {(c["target"], c["id"]): c for c in doc["checks"]}
    # Healthy listener: all OK.
    healthy = [c for (t, _), c in checks.items() if t == "srv1.corp.test:5986"]
    assert len(healthy) == 11 and all(c["status"] == "OK" for c in healthy), healthy
    # Filtered port: one CRITICAL "filtered" result, nothing else for that target.
    filtered = [c for (t, _), c in checks.items() if t == "127.0.0.1:9999"]
    assert [c["id"] for c in filtered] == ["winrm.tcp"]
    assert filtered[0]["status"] == "CRITICAL" and "filtered" in filtered[0]["summary"]
    assert filtered[0]["details"]["state"] == "filtered"
    # Closed port: refused.
    closed = checks[("127.0.0.1:9998", "winrm.tcp")]
    assert closed["details"]["state"] == "closed" and "refused" in closed["summary"]
    # Never-handshaking listener: TCP OK, TLS CRITICAL, dependent checks not run.
    assert checks[("127.0.0.2:5986", "winrm.tcp")]["status"] == "OK"
    assert "no TLS handshake" in checks[("127.0.0.2:5986", "winrm.tls")]["summary"]
    assert ("127.0.0.2:5986", "winrm.cert.expiry") not in checks
    # The hung and filtered hosts wait in parallel: the run is bounded by the timeout, not summed.
    assert wall < 1.5 * 1.5 + 1.5  # timeout x 1.5, plus interpreter start-up


def test_hanging_dns_costs_one_timeout(tmp_path: Path) -> None:
    """The system resolver has no timeout of its own (here 2 x 5 s); the check waits --timeout only."""
    code, doc, wall = run_in_namespace(
        tmp_path, f"srv9.corp.test 127.0.0.1:9998 --ca-file {tmp_path}/ca.pem --timeout 1", dead_dns=True
    )
    assert code == 2
    tcp = {c["target"]: c for c in doc["checks"] if c["id"] == "winrm.tcp"}
    assert "cannot resolve srv9.corp.test: no answer within 1s" in tcp["srv9.corp.test:5986"]["summary"]
    assert tcp["srv9.corp.test:5986"]["details"]["state"] == "error"
    assert tcp["127.0.0.1:9998"]["details"]["state"] == "closed"
    assert wall < 4  # not the resolver's 10 s
