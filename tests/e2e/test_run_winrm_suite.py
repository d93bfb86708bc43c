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
from junitparser import Error, Failure, JUnitXml, Skipped
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
    assert len(cases) == len(doc["checks"]) + 1  # and the skipped entry
    suite_el = next(iter(xml))
    assert (suite_el.tests, suite_el.skipped, suite_el.errors) == (len(cases), 1, 1)
    skipped = [c for c in cases if c.result and isinstance(c.result[0], Skipped)]
    assert [(c.classname, c.result[0].message) for c in skipped] == [
        ("docker", "/nonexistent/opsbook-test/docker.sock does not exist")
    ]
    kinds = {}
    for case in cases:
        results = case.result
        kinds[(case.classname, case.name)] = type(results[0]).__name__ if results else "pass"
    assert any(k[0].startswith("healthy.") and v == "pass" for k, v in kinds.items())
    assert any(k[0].startswith("expiring.") and v == Failure.__name__ for k, v in kinds.items())
    assert any(k[0].startswith("no-hosts.") and v == Error.__name__ for k, v in kinds.items())
    assert oct(stat.S_IMODE(os.stat(junit).st_mode)) == "0o644"


def test_suite_run_prometheus_textfile_and_nagios(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, peers: dict
) -> None:
    path = suite(tmp_path, peers)
    textfile = tmp_path / "opsbook.prom"
    started = time.time()
    result = run_main(capsys, "run", str(path), "-f", "nagios", "--textfile", str(textfile), "--concurrency", "2")
    assert result.code == 2
    first, *rest = result.out.splitlines()
    assert first.startswith("OPSBOOK CRITICAL - ")
    assert " checks: " in first and "critical" in first and "warning" in first and "unknown" in first
    samples = [
        s.value
        for s in next(
            f for f in text_string_to_metric_families(textfile.read_text()) if f.name == "opsbook_check_status"
        ).samples
    ]
    n = {v: samples.count(v) for v in (1.0, 2.0, 3.0)}
    # the aggregate line, counted from the textfile of the same run (a parser we did not write)
    assert first.split(" | ")[0] == (
        f"OPSBOOK CRITICAL - {len(samples)} checks: {n[2.0]} critical, {n[3.0]} unknown, {n[1.0]} warning, 1 skipped"
    )
    perf = first.split(" | ")[1].split()
    assert perf[:5] == [
        f"'checks'={len(samples)};;;0",
        f"'critical'={n[2.0]};;;0;{len(samples)}",
        f"'warning'={n[1.0]};;;0;{len(samples)}",
        f"'unknown'={n[3.0]};;;0;{len(samples)}",
        "'skipped'=1;;;0",
    ]
    assert rest[-1] == "SKIPPED: docker: /nonexistent/opsbook-test/docker.sock does not exist"
    assert any(line.startswith("UNKNOWN: no-hosts: ") for line in rest)
    assert any(line.startswith("WARNING: expiring: ") for line in rest)

    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    status = families["opsbook_check_status"]
    by_entry: dict[str, list[float]] = {}
    for sample in status.samples:
        by_entry.setdefault(sample.labels["suite_check"], []).append(sample.value)
    assert set(by_entry) == {"healthy", "expiring", "closed", "hung", "no-hosts"}
    skipped = families["opsbook_suite_entry_skipped"].samples
    assert [(x.labels["suite_check"], x.value) for x in skipped] == [("docker", 1.0)]
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


SECRET = "Zq8-not-for-your-eyes-4711"


@pytest.mark.parametrize("fmt", ["table", "json", "nagios", "junit", "prometheus"])
def test_env_values_never_appear_in_any_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, peers: dict, fmt: str
) -> None:
    # winrm check echoes the expected issuer back when it does not match, and a missing hosts
    # file is named in the error: both came from the environment, so both must be masked
    monkeypatch.setenv("OPSBOOK_TEST_ISSUER", SECRET)
    monkeypatch.setenv("OPSBOOK_TEST_HOSTS_DIR", f"/nonexistent/{SECRET}")
    path = tmp_path / "secret.yaml"
    path.write_text(
        f"version: 1\nchecks:\n  - name: issuer\n    runbook: winrm\n    with:\n"
        f"      hosts: ['{NAME}:{peers['healthy'].port}']\n      resolve: ['{NAME}:127.0.0.1']\n"
        f"      ca-file: {peers['ca_file']}\n      issuer: ${{OPSBOOK_TEST_ISSUER}}\n"
        "  - name: hostsfile\n    runbook: winrm\n    with:\n      hosts-file: ${OPSBOOK_TEST_HOSTS_DIR}/hosts.txt\n"
    )
    junit, textfile = tmp_path / "j.xml", tmp_path / "t.prom"
    result = run_main(capsys, "run", str(path), "-f", fmt, "--junit-file", str(junit), "--textfile", str(textfile))
    assert result.code == 2, result.err  # the issuer is CRITICAL (the unreadable hosts file UNKNOWN ranks below)
    everything = result.out + result.err + junit.read_text() + textfile.read_text()
    assert SECRET not in everything
    assert "***" in result.out + junit.read_text()  # masked, not dropped: the reason is still readable
    failures = [c.result[0].message for s in JUnitXml.fromfile(str(junit)) for c in s if c.result]
    assert any("expected an issuer CN starting with '***'" in m for m in failures), failures


def test_entries_run_concurrently_each_under_its_own_timeout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, peers: dict
) -> None:
    # six entries against a listener that never completes the TLS handshake, timeout 1 s each
    hang = peers["hang"]
    lines = ["version: 1", "defaults:", "  timeout: 1", "checks:"]
    for i in range(6):
        lines += [f"  - name: hung-{i}", "    runbook: winrm", f"    with: {{hosts: ['127.0.0.1:{hang.port}']}}"]
    path = tmp_path / "hung.yaml"
    path.write_text("\n".join(lines) + "\n")
    walls = {}
    for concurrency in ("6", "2"):
        started = time.perf_counter()
        result = run_main(capsys, "run", str(path), "-f", "json", "--concurrency", concurrency)
        walls[concurrency] = time.perf_counter() - started
        assert result.code == 2, result.err
        doc = json.loads(result.out)
        groups = by_source(doc["checks"])
        assert sorted(groups) == [f"hung-{i}" for i in range(6)]
        for checks in groups.values():
            tls = next(c for c in checks if c["status"] == "CRITICAL")
            assert 0.9 <= tls["duration_s"] < 2.5, tls  # its own 1 s timeout, not the 300 s deadline
    assert walls["6"] < 2.5, walls  # all six at once: about one timeout
    assert walls["2"] >= 2.9, walls  # two at a time: three rounds of one timeout each


def test_the_process_exits_at_the_deadline_not_when_abandoned_threads_end(tmp_path: Path, peers: dict) -> None:
    # two hung hosts in one entry: winrm check runs them in its own thread pool, with an 8 s
    # timeout; the entry's deadline is 0.3 s. The report comes at the deadline, and the process
    # must end then too (cron's flock, Icinga's timeout), not 8 s later when the pool drains.
    hang = peers["hang"]
    path = tmp_path / "deadline.yaml"
    path.write_text(
        "version: 1\nchecks:\n  - name: wedged\n    runbook: winrm\n    deadline: 0.3\n"
        f"    with: {{hosts: ['127.0.0.1:{hang.port}', 'localhost:{hang.port}'], timeout: 8}}\n"
    )
    textfile = tmp_path / "wedged.prom"
    started = time.perf_counter()
    result = run_cli("run", str(path), "-f", "nagios", "--textfile", str(textfile), timeout=30)
    elapsed = time.perf_counter() - started
    assert result.code == 3, result.err
    assert result.out.startswith("OPSBOOK UNKNOWN - winrm check did not finish within its deadline of 0.3s | ")
    assert elapsed < 5, elapsed
    status = next(f for f in text_string_to_metric_families(textfile.read_text()) if f.name == "opsbook_check_status")
    assert [(s.labels["suite_check"], s.value) for s in status.samples] == [("wedged", 3.0)]
