"""`opsbook run` output in every format: aggregate Nagios line, skipped entries, files, --validate.

No network: the entries that run fail on bad input (an unreadable hosts file) and become
UNKNOWN, the others are skipped by ``when``; outputs are read back with junitparser and
prometheus_client's text parser.
"""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest
from junitparser import Error, JUnitXml, Skipped
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import run_main

SUITE = """
version: 1
checks:
  - name: broken
    runbook: winrm
    with:
      hosts-file: {missing}
  - name: no-engine
    runbook: docker-root
    when:
      path_exists: {missing_sock}
  - name: no-secret
    runbook: winrm
    when:
      env_set: OPSBOOK_TEST_SURELY_UNSET_VAR
    with:
      hosts: [127.0.0.1]
"""


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("OPSBOOK_TEST_SURELY_UNSET_VAR", raising=False)
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE.format(missing=tmp_path / "hosts.txt", missing_sock=tmp_path / "d.sock")))
    return path


def test_nagios_aggregates_counts_and_lists_skipped(capsys: pytest.CaptureFixture[str], suite: Path) -> None:
    result = run_main(capsys, "run", str(suite), "-f", "nagios")
    assert result.code == 3
    lines = result.out.splitlines()
    assert lines[0] == (
        "OPSBOOK UNKNOWN - 1 check: 1 unknown, 2 skipped | 'checks'=1;;;0 'critical'=0;;;0;1 'warning'=0;;;0;1 "
        "'unknown'=1;;;0;1 'skipped'=2;;;0"
    )
    assert lines[1].startswith("UNKNOWN: broken: suite entry: winrm check: cannot read --hosts-file ")
    assert lines[2:] == [
        f"SKIPPED: no-engine: {suite.parent / 'd.sock'} does not exist",
        "SKIPPED: no-secret: OPSBOOK_TEST_SURELY_UNSET_VAR is not set",
    ]


def test_junit_has_skipped_cases_and_the_file_matches_stdout(
    capsys: pytest.CaptureFixture[str], suite: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    result = run_main(capsys, "run", str(suite), "-f", "junit", "--junit-file", str(junit))
    assert result.code == 3
    for xml in (JUnitXml.fromstring(result.out), JUnitXml.fromfile(str(junit))):
        (testsuite,) = list(xml)
        assert (testsuite.tests, testsuite.errors, testsuite.failures, testsuite.skipped) == (3, 1, 0, 2)
        kinds = {case.classname: type(case.result[0]) for case in testsuite}
        assert kinds == {"broken.broken": Error, "no-engine": Skipped, "no-secret": Skipped}


def test_prometheus_has_a_skipped_gauge_and_textfile(
    capsys: pytest.CaptureFixture[str], suite: Path, tmp_path: Path
) -> None:
    textfile = tmp_path / "node" / "opsbook.prom"
    textfile.parent.mkdir()
    result = run_main(capsys, "run", str(suite), "-f", "json", "--textfile", str(textfile))
    assert result.code == 3
    doc = json.loads(result.out)  # the main format is JSON; the textfile is written as well
    assert [s["name"] for s in doc["skipped"]] == ["no-engine", "no-secret"]
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    assert {(s.labels["suite_check"], s.value) for s in families["opsbook_suite_entry_skipped"].samples} == {
        ("no-engine", 1.0),
        ("no-secret", 1.0),
    }
    assert [(s.labels["suite_check"], s.value) for s in families["opsbook_check_status"].samples] == [("broken", 3.0)]
    assert families["opsbook_status"].samples[0].value == 3.0
    assert sorted(p.name for p in textfile.parent.iterdir()) == ["opsbook.prom"]  # atomic: no temp file left


def test_table_names_the_skipped_entries(capsys: pytest.CaptureFixture[str], suite: Path) -> None:
    result = run_main(capsys, "run", str(suite))
    assert result.code == 3
    assert f"skipped no-engine: {suite.parent / 'd.sock'} does not exist" in result.out
    assert result.out.rstrip().splitlines()[-1].startswith("UNKNOWN  1 checks (1 unknown), 2 skipped; ")


def test_validate_runs_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        path = tmp_path / "s.yaml"
        path.write_text(
            f"version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {{hosts: ['127.0.0.1:{port}']}}\n"
        )
        result = run_main(capsys, "run", "--validate", str(path), "-f", "json")
        assert (result.code, result.out, result.err) == (0, f"{path}: OK, 1 check in 1 file\n", "")
        with pytest.raises(TimeoutError):
            listener.accept()


def test_paths_in_a_suite_are_relative_to_the_suite_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cron and systemd start opsbook elsewhere: hosts-file and when.path_exists mean the same anyway
    folder = tmp_path / "etc" / "opsbook"
    folder.mkdir(parents=True)
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    (folder / "hosts.txt").write_text(f"# fleet\n127.0.0.1:{port}\n")
    (folder / "enabled").write_text("")
    (folder / "suite.yaml").write_text(
        "version: 1\nchecks:\n"
        "  - name: fleet\n    runbook: winrm\n    when: {path_exists: enabled}\n    with: {hosts-file: hosts.txt, timeout: 1}\n"
        "  - name: later\n    runbook: winrm\n    when: {path_exists: disabled}\n    with: {hosts-file: hosts.txt}\n"
    )
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_main(capsys, "run", str(folder / "suite.yaml"), "-f", "json")
    assert result.code == 2, result.err
    doc = json.loads(result.out)
    assert [(c["source"], c["id"], c["target"], c["status"]) for c in doc["checks"]] == [
        ("fleet", "winrm.tcp", f"127.0.0.1:{port}", "CRITICAL")  # the hosts file was read: its host was checked
    ]
    assert doc["skipped"] == [{"name": "later", "reason": f"{folder / 'disabled'} does not exist"}]
