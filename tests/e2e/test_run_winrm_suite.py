"""``opsbook run`` end to end: a suite of winrm entries against real loopback TLS peers.

Outputs are read back with parsers we did not write: ``junitparser`` for JUnit XML and
``prometheus_client``'s text parser for the exposition format.
"""

from __future__ import annotations

import json
import os
import stat
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import run_cli, run_main
from tests.tlspeers import HangServer, TestCA, TlsServer, free_port, make_leaf

pytestmark = pytest.mark.e2e

NAME = "winrm1.corp.test"


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    folder = tmp_path_factory.mktemp("run-suite")
    ca = TestCA("Corp Suite CA")
    ca_file = ca.write(folder)
    healthy = TlsServer(make_leaf("valid", ca, NAME), mode="winrm")
    expiring = TlsServer(ca.issue(NAME, days=10), mode="winrm")
    hang = HangServer()
    try:
        yield {"ca_file": ca_file, "healthy": healthy, "expiring": expiring, "hang": hang, "folder": folder}
    finally:
        for srv in (healthy, expiring, hang):
            srv.stop()


def suite(tmp_path: Path, peers: dict, *, deadline: str = "") -> Path:
    healthy, expiring, hang = peers["healthy"], peers["expiring"], peers["hang"]
    closed = free_port()
    text = f"""
    version: 1
    defaults:
      timeout: 2
      concurrency: 4
      warn-days: 30
      crit-days: 7
    checks:
      - name: healthy
        runbook: winrm
        with:
          hosts: ["{NAME}:{healthy.port}"]
          resolve: ["{NAME}:127.0.0.1"]
          ca-file: {peers["ca_file"]}
          issuer: Corp Suite
      - name: expiring
        runbook: winrm
        with:
          hosts: ["{NAME}:{expiring.port}"]
          resolve: ["{NAME}:127.0.0.1"]
          ca-file: {peers["ca_file"]}
      - name: closed
        runbook: winrm
        with:
          hosts: ["127.0.0.1:{closed}"]
      - name: hung
        runbook: winrm
        {deadline}
        with:
          hosts: ["127.0.0.1:{hang.port}"]
          timeout: 1
      - name: no-hosts
        runbook: winrm
        with:
          hosts-file: {tmp_path / "missing-hosts.txt"}
      - name: docker
        runbook: docker-root
        when: {{path_exists: /nonexistent/opsbook-test/docker.sock}}
    """
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def by_source(checks: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for check in checks:
        out.setdefault(check["source"], []).append(check)
    return out


def test_suite_run_json_and_junit_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, peers: dict) -> None:
    path = suite(tmp_path, peers)
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    result = run_main(capsys, "run", str(path), "-f", "json", "--junit-file", str(junit))
    assert result.code == 2, result.err
    doc = json.loads(result.out)
    assert doc["command"] == "run" and doc["status"] == "CRITICAL"
    assert doc["suite"] == str(path)
    assert doc["skipped"] == [{"name": "docker", "reason": "/nonexistent/opsbook-test/docker.sock does not exist"}]
    groups = by_source(doc["checks"])
    assert list(groups) == ["healthy", "expiring", "closed", "hung", "no-hosts"]
    assert {c["status"] for c in groups["healthy"]} == {"OK"}
    expiry = next(c for c in groups["expiring"] if c["id"] == "winrm.cert.expiry")
    assert expiry["status"] == "WARNING"  # warn-days 30 from the defaults, cert has 10 days
    assert groups["closed"][0]["status"] == "CRITICAL" and groups["closed"][0]["id"] == "winrm.tcp"
    assert "CRITICAL" in {c["status"] for c in groups["hung"]}  # TCP connects, the handshake times out
    no_hosts = groups["no-hosts"]
    assert len(no_hosts) == 1 and no_hosts[0]["status"] == "UNKNOWN" and no_hosts[0]["id"] == "suite.entry"

    xml = JUnitXml.fromfile(str(junit))
    cases = [case for s in xml for case in s]
    assert len(cases) == len(doc["checks"])
    kinds = {}
    for case in cases:
        results = case.result
        kinds[(case.classname, case.name)] = type(results[0]).__name__ if results else "pass"
    assert any(k[0].startswith("healthy.") and v == "pass" for k, v in kinds.items())
    assert any(k[0].startswith("expiring.") and v == Failure.__name__ for k, v in kinds.items())
    assert any(k[0].startswith("no-hosts.") and v == Error.__name__ for k, v in kinds.items())
    assert oct(stat.S_IMODE(os.stat(junit).st_mode)) == "0o644"


def test_suite_run_prometheus_textfile_and_nagios(capsys: pytest.CaptureFixture[str], tmp_path: Path, peers: dict) -> None:
    path = suite(tmp_path, peers)
    textfile = tmp_path / "opsbook.prom"
    started = time.time()
    result = run_main(capsys, "run", str(path), "-f", "nagios", "--textfile", str(textfile), "--concurrency", "2")
    assert result.code == 2
    first, *rest = result.out.splitlines()
    assert first.startswith("OPSBOOK CRITICAL - ")
    assert " checks: " in first and "critical" in first and "warning" in first and "unknown" in first
    assert any(line.startswith("UNKNOWN: no-hosts: ") for line in rest)
    assert any(line.startswith("WARNING: expiring: ") for line in rest)

    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    status = families["opsbook_check_status"]
    by_entry: dict[str, list[float]] = {}
    for sample in status.samples:
        by_entry.setdefault(sample.labels["suite_check"], []).append(sample.value)
    assert set(by_entry) == {"healthy", "expiring", "closed", "hung", "no-hosts"}
    assert set(by_entry["healthy"]) == {0.0}
    assert 1.0 in by_entry["expiring"] and by_entry["no-hosts"] == [3.0]
    last = families["opsbook_last_run_timestamp_seconds"].samples[0].value
    assert started - 1 <= last <= time.time() + 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


def test_prometheus_on_stdout_parses(capsys: pytest.CaptureFixture[str], tmp_path: Path, peers: dict) -> None:
    result = run_main(capsys, "run", str(suite(tmp_path, peers)), "-f", "prometheus")
    assert result.code == 2
    families = {f.name for f in text_string_to_metric_families(result.out)}
    assert {"opsbook_check_status", "opsbook_check_duration_seconds", "opsbook_last_run_timestamp_seconds"} <= families


def test_deadline_bounds_a_hung_entry_and_the_others_still_report(tmp_path: Path, peers: dict) -> None:
    # the check itself would wait for its 1 s timeout; the entry's deadline is shorter
    path = suite(tmp_path, peers, deadline="deadline: 0.3")
    started = time.perf_counter()
    result = run_cli("run", str(path), "-f", "json")
    elapsed = time.perf_counter() - started
    assert result.code == 2, result.err
    doc = json.loads(result.out)
    hung = by_source(doc["checks"])["hung"]
    assert len(hung) == 1 and hung[0]["status"] == "UNKNOWN"
    assert hung[0]["summary"] == "winrm check did not finish within its deadline of 0.3s"
    assert {c["status"] for c in by_source(doc["checks"])["healthy"]} == {"OK"}
    assert elapsed < 15


def test_all_ok_suite_exits_0_with_table(capsys: pytest.CaptureFixture[str], tmp_path: Path, peers: dict) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        f"version: 1\nchecks:\n  - name: healthy\n    runbook: winrm\n    with:\n"
        f"      hosts: ['{NAME}:{peers['healthy'].port}']\n      resolve: ['{NAME}:127.0.0.1']\n"
        f"      ca-file: {peers['ca_file']}\n"
    )
    result = run_main(capsys, "run", str(path))
    assert result.code == 0, result.out + result.err
    assert "healthy: " in result.out and result.out.rstrip().splitlines()[-1].startswith("OK")
