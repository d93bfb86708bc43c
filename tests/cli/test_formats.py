"""Renderers: JSON schema, Nagios plugin output, JUnit XML, Prometheus exposition."""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from junitparser import Error, Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from opsbook.cli import terminal
from opsbook.cli.formats import render_json, render_junit, render_nagios, render_prometheus
from opsbook.runbooks.model import CheckResult, Metric, Report, Status, Step


def sample_report() -> Report:
    report = Report(command="winrm check")
    report.add(
        CheckResult(
            "winrm.tcp",
            "host1.corp.test:5986",
            "tcp reachability",
            Status.OK,
            "open in 3 ms",
            metrics={"latency_s": Metric(0.003, "s")},
        )
    )
    report.add(
        CheckResult(
            "winrm.cert.expiry",
            "host1.corp.test:5986",
            "certificate expiry",
            Status.WARNING,
            "certificate expires in 12 days (2026-12-10)",
            details={"not_after": "2026-12-10T00:00:00Z"},
            metrics={"days_left": Metric(12, "", 30, 7, 0)},
        )
    )
    report.add(
        CheckResult(
            "winrm.cert.expiry",
            "host2.corp.test:5986",
            "certificate expiry",
            Status.CRITICAL,
            "expired | since 'yesterday' <b>&amp;</b>\nsecond line",
            metrics={"days_left": -1},
        )
    )
    report.add(
        CheckResult(
            "winrm.wsman", "host3.corp.test:5986", "WS-Management", Status.UNKNOWN, "not checked: no TLS \x00 \x1b[31m"
        )
    )
    return report.finish()


def test_json_schema_matches_contract() -> None:
    doc = json.loads(render_json(sample_report()))
    assert {"tool", "version", "command", "status", "duration_s", "checks"} <= doc.keys()
    assert doc["tool"] == "opsbook" and doc["command"] == "winrm check"
    assert doc["status"] == "CRITICAL"
    first = doc["checks"][1]
    assert first == {
        "id": "winrm.cert.expiry",
        "target": "host1.corp.test:5986",
        "name": "certificate expiry",
        "status": "WARNING",
        "summary": "certificate expires in 12 days (2026-12-10)",
        "details": {"not_after": "2026-12-10T00:00:00Z"},
        "metrics": {"days_left": 12},
        "duration_s": 0.0,
    }
    assert "changed" not in doc and "steps" not in doc


def test_json_mutating_report_has_changed_dry_run_steps() -> None:
    report = Report(
        command="docker-root move",
        mutating=True,
        dry_run=True,
        changed=False,
        steps=[Step("copy", Status.OK, "planned")],
    )
    doc = json.loads(render_json(report))
    assert doc["changed"] is False and doc["dry_run"] is True
    assert doc["steps"] == [{"name": "copy", "status": "OK", "summary": "planned", "details": {}}]


NAGIOS_FIRST = re.compile(
    r"^OPSBOOK (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+?"
    r"(?: \| (?:'(?:[^'=]|'')+'=-?[0-9.]+(?:[a-zA-Z%]*)(?:;-?[0-9.]*){0,4} ?)+)?$"
)


def test_nagios_first_line_follows_plugin_guidelines() -> None:
    text = render_nagios(sample_report())
    lines = text.splitlines()
    assert NAGIOS_FIRST.match(lines[0]), lines[0]
    assert lines[0].startswith("OPSBOOK CRITICAL - 4 checks: 1 critical, 1 unknown, 1 warning | ")
    assert "'host1.corp.test:5986 winrm.cert.expiry days_left'=12;30;7;0" in lines[0]
    assert "'host1.corp.test:5986 winrm.tcp latency_s'=0.003s" in lines[0]
    # one line per non-OK check, worst first, each on a single line, no stray '|'
    assert len(lines) == 4
    assert lines[1].startswith("CRITICAL: host2.corp.test:5986: certificate expiry: expired / since")
    assert lines[2].startswith("UNKNOWN: host3") and lines[3].startswith("WARNING: host1")
    assert all("|" not in line for line in lines[1:])


def test_nagios_single_check_uses_its_summary() -> None:
    report = Report(command="x", checks=[CheckResult("a", "t", "n", Status.OK, "all good")])
    assert render_nagios(report) == "OPSBOOK OK - all good\n"


def test_junit_is_valid_and_maps_statuses(tmp_path: Path) -> None:
    xml_text = render_junit(sample_report())
    ET.fromstring(xml_text.encode())  # well-formed even with NUL/escape bytes in the data
    path = tmp_path / "r.xml"
    path.write_text(xml_text)
    suites = JUnitXml.fromfile(str(path))
    cases = [case for suite in suites for case in suite]
    assert [c.classname for c in cases] == [
        "host1.corp.test:5986",
        "host1.corp.test:5986",
        "host2.corp.test:5986",
        "host3.corp.test:5986",
    ]
    assert cases[0].is_passed
    kinds = [type(r[0]).__name__ if r else None for r in (c.result for c in cases)]
    assert kinds == [None, "Failure", "Failure", "Error"]
    assert isinstance(cases[1].result[0], Failure) and cases[1].result[0].type == "WARNING"
    assert cases[2].result[0].type == "CRITICAL"
    assert isinstance(cases[3].result[0], Error)
    suite = next(iter(suites))
    assert (suite.tests, suite.failures, suite.errors) == (4, 2, 1)


def test_prometheus_parses_with_the_official_parser() -> None:
    text = render_prometheus(sample_report(), now=1_800_000_000.0)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    status = {(s.labels["check"], s.labels["target"]): s.value for s in families["opsbook_check_status"].samples}
    assert status[("winrm.cert.expiry", "host2.corp.test:5986")] == 2
    assert status[("winrm.tcp", "host1.corp.test:5986")] == 0
    assert status[("winrm.wsman", "host3.corp.test:5986")] == 3
    assert "opsbook_check_duration_seconds" in families
    assert families["opsbook_last_run_timestamp_seconds"].samples[0].value == 1_800_000_000.0
    metrics = {(s.labels["target"], s.labels["metric"]): s.value for s in families["opsbook_check_metric"].samples}
    assert metrics[("host1.corp.test:5986", "days_left")] == 12


def test_textfile_is_written_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "opsbook.prom"
    code = terminal.emit_report(sample_report(), "json", textfile=target)
    assert code == 2
    assert json.loads(capsys.readouterr().out)["status"] == "CRITICAL"
    assert list(text_string_to_metric_families(target.read_text()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opsbook.prom"]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([Status.OK], 0),
        ([Status.OK, Status.WARNING], 1),
        ([Status.WARNING, Status.CRITICAL], 2),
        ([Status.UNKNOWN, Status.WARNING], 3),
        ([Status.UNKNOWN, Status.CRITICAL], 2),
    ],
)
def test_exit_code_follows_worst_status(statuses: list[Status], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    report = Report(command="x", checks=[CheckResult("c", f"t{i}", "n", s, "s") for i, s in enumerate(statuses)])
    for fmt in ("table", "json", "nagios", "junit", "prometheus"):
        assert terminal.emit_report(report, fmt) == code
    capsys.readouterr()
