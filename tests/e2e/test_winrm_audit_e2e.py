"""``opsbook winrm audit`` end to end: the real CLI in a subprocess against real peers.

Peers: the fake WinRM HTTPS listener (real TLS + NTLM, tests/fake_winrm.py) on loopback, and
a filtered port inside a throwaway network namespace (``unshare -n`` + an nft drop rule).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_winrm import FakeWinRM, canned, cert_entry, inventory, listener_entry
from tests.helpers import REPO, run_cli
from tests.peers import need_binary, need_root
from tests.tlspeers import TestCA

pytestmark = pytest.mark.e2e

FQDN = "srv9.corp.test"
USER = "CORP\\svc-audit"
PASSWORD = "E2e-Audit-Secret-77"


def test_cli_subprocess_against_fake_listener(tmp_path: Path) -> None:
    ca = TestCA("Corp Root CA")
    ca_file = ca.write(tmp_path)
    old = ca.issue(FQDN, names=[FQDN, "127.0.0.40"], days=5)
    new = ca.issue(FQDN, names=[FQDN, "127.0.0.40"], days=365)
    with FakeWinRM(old, host="127.0.0.40", users={USER: PASSWORD}) as fake:
        fake.behaviour = canned(
            inventory(
                [listener_entry(port=fake.port, hostname=FQDN, thumbprint=old.thumbprint)],
                [cert_entry(old), cert_entry(new)],
                ssl_hash=old.thumbprint,
                port=fake.port,
            )
        )
        env = {"OPSBOOK_WINRM_PASSWORD": PASSWORD, "NO_PROXY": "*", "PYTHONWARNINGS": "always"}
        res = run_cli("winrm", "audit", fake.target, "-u", USER, "--ca-file", str(ca_file), "-f", "json", env=env)
        assert res.code == 2, res.err
        doc = json.loads(res.out)
        checks = {c["id"]: c for c in doc["checks"]}
        assert checks["winrm.audit.login"]["status"] == "OK"
        assert checks["winrm.audit.renewal"]["status"] == "CRITICAL"
        assert "renewed but not rebound" in checks["winrm.audit.renewal"]["summary"]
        assert PASSWORD not in res.out + res.err
        table = run_cli("winrm", "audit", fake.target, "-u", USER, "--ca-file", str(ca_file), env=env)
        assert table.code == 2 and "renewal rebound" in table.out and "CRITICAL" in table.out
        assert PASSWORD not in table.out + table.err
        assert fake.auth_log.count(f"ntlm-ok {USER}") == 2


def test_filtered_port_in_namespace_is_bounded(tmp_path: Path) -> None:
    need_root()
    unshare = need_binary("unshare")
    nft = need_binary("nft")
    ip = need_binary("ip")
    py = shlex.quote(sys.executable)
    script = f"""
set -e
{ip} link set lo up
{nft} add table inet opsbook_audit
{nft} add chain inet opsbook_audit c '{{ type filter hook input priority 0; }}'
{nft} add rule inet opsbook_audit c tcp dport 9999 drop
set +e
{py} -m opsbook winrm audit 127.0.0.1:9999 127.0.0.1:9998 -u 'CORP\\x' --timeout 2 -f json > {tmp_path}/out.json
echo $? > {tmp_path}/rc
"""
    start = time.monotonic()
    proc = subprocess.run(
        [unshare, "-n", "sh", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPSBOOK_WINRM_PASSWORD": PASSWORD},
        check=False,
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rc").read_text().strip() == "2"
    doc = json.loads((tmp_path / "out.json").read_text())
    by_target = {c["target"]: c for c in doc["checks"]}
    assert "no answer" in by_target["127.0.0.1:9999"]["summary"]  # dropped: filtered
    assert "cannot connect" in by_target["127.0.0.1:9998"]["summary"]  # refused: closed
    assert all(c["status"] == "CRITICAL" for c in doc["checks"])
    assert took < 15  # both hosts at once, each bounded by --timeout 2
    assert PASSWORD not in proc.stdout + proc.stderr + (tmp_path / "out.json").read_text()
