"""Every shipped example in runbooks/examples/ parses and passes validation.

The suites are validated with ``opsbook run --validate``; the systemd units, cron line,
GitLab job and Icinga2 CheckCommand are checked for the options they pass to ``opsbook run``
(their opsbook command line is re-run with ``--validate`` on a test suite). Nothing here
sends network traffic: validation runs nothing.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_main

EXAMPLES = REPO / "runbooks" / "examples"
SUITES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
FLEET_ENV = {
    "OPSBOOK_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "OPSBOOK_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "OPSBOOK_GRAPH_CLIENT_SECRET": "not-a-real-secret",
}


@pytest.fixture
def loopback_resolv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search corp.test\nnameserver 127.0.40.1\nnameserver 127.0.40.2\n")
    monkeypatch.setenv("OPSBOOK_RESOLV_CONF", str(conf))
    return conf


@pytest.fixture
def deployed(tmp_path: Path) -> Path:
    """The example suites as deployed: the files they name (/etc/pki/..., /etc/opsbook/...) exist.

    ``--validate`` checks that every file a suite names is readable; on this machine they live
    under *tmp_path* instead of /etc.
    """
    folder = tmp_path / "examples"
    folder.mkdir()
    for name in ("corp-root.pem", "winrm-hosts.txt"):
        (tmp_path / name).write_text("# stand-in\n")
    for suite in EXAMPLES.glob("*.yaml"):
        text = suite.read_text().replace("/etc/pki/corp-root.pem", str(tmp_path / "corp-root.pem"))
        (folder / suite.name).write_text(
            text.replace("/etc/opsbook/winrm-hosts.txt", str(tmp_path / "winrm-hosts.txt"))
        )
    return folder


def test_the_expected_examples_are_shipped() -> None:
    names = {p.name for p in EXAMPLES.iterdir()}
    assert {
        "local.yaml",
        "windows-fleet.yaml",
        "windows-dcs.yaml",
        "opsbook-check.service",
        "opsbook-check.timer",
        "opsbook.cron",
        "gitlab-ci.yml",
        "icinga2-opsbook.conf",
    } <= names


@pytest.mark.parametrize("name", SUITES)
def test_suite_examples_validate(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    loopback_resolv: Path,
    name: str,
    deployed: Path,
) -> None:
    for key, value in FLEET_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(deployed)  # includes are relative to the file, whatever the cwd: try a relative path
    result = run_main(capsys, "run", "--validate", name)
    assert result.code == 0, result.err
    assert result.out.startswith(f"{name}: OK, ")
    assert "not-a-real-secret" not in result.out + result.err


def test_fleet_secrets_missing_is_an_error_before_anything_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, deployed: Path
) -> None:
    monkeypatch.setenv("OPSBOOK_GRAPH_CLIENT_SECRET", "not-a-real-secret")
    for key in ("OPSBOOK_TENANT_ID", "OPSBOOK_CLIENT_ID"):
        monkeypatch.delenv(key, raising=False)
    result = run_main(capsys, "run", "--validate", str(deployed / "windows-fleet.yaml"))
    assert result.code == 3
    assert re.match(
        r"opsbook: error: .*windows-fleet\.yaml:\d+:\d+: environment variable OPSBOOK_TENANT_ID is not set", result.err
    )


def test_fleet_tenant_entry_is_skipped_without_the_graph_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, deployed: Path
) -> None:
    for key in ("OPSBOOK_TENANT_ID", "OPSBOOK_CLIENT_ID", "OPSBOOK_GRAPH_CLIENT_SECRET"):
        monkeypatch.delenv(key, raising=False)
    result = run_main(capsys, "run", "--validate", str(deployed / "windows-fleet.yaml"))
    assert result.code == 0, result.err
    assert "skipped on this host: adsync-tenant (OPSBOOK_GRAPH_CLIENT_SECRET is not set)" in result.out


def test_local_suite_uses_the_host_facts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("options ndots:1\n")  # no domain, no nameserver: the optional dns entry is skipped
    monkeypatch.setenv("OPSBOOK_RESOLV_CONF", str(conf))
    monkeypatch.delenv("OPSBOOK_DOMAIN", raising=False)
    monkeypatch.setattr("socket.gethostname", lambda: "box")
    result = run_main(capsys, "run", "--validate", str(EXAMPLES / "local.yaml"))
    assert result.code == 0, result.err
    assert "skipped on this host: resolvers (" in result.out and "; dns (" in result.out


def opsbook_args(command: str) -> list[str]:
    """The arguments after ``opsbook`` in a shell command line."""
    words = shlex.split(command)
    start = next(i for i, w in enumerate(words) if w.endswith("/opsbook") or w == "opsbook")
    args = []
    for word in words[start + 1 :]:
        if word.startswith((">", "|", "2>")) or word in ("&&", ";", "||"):
            break
        args.append(word)
    return args


def validate_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]) -> None:
    """Re-run an example's ``opsbook run ...`` with its suite swapped for a valid one and --validate."""
    assert args[0] == "run", args
    suite = tmp_path / "suite.yaml"
    suite.write_text("version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {hosts: [127.0.0.1]}\n")
    swapped = [str(suite) if a.endswith((".yaml", ".yml")) else a for a in args[1:]]
    swapped = [a if not a.startswith("/var/lib/node_exporter") else str(tmp_path / "o.prom") for a in swapped]
    result = run_main(capsys, "run", "--validate", *[a for a in swapped if a != "--validate"])
    assert result.code == 0, (args, result.err)


def test_systemd_units(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.optionxform = str  # type: ignore[assignment,method-assign]
    service.read(EXAMPLES / "opsbook-check.service")
    assert service["Service"]["Type"] == "oneshot"
    assert set(service["Service"]["SuccessExitStatus"].split()) == {"1", "2"}
    for key in ("ExecStartPre", "ExecStart"):
        validate_command_line(capsys, tmp_path, opsbook_args(service["Service"][key]))
    assert "--textfile" in service["Service"]["ExecStart"]
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.optionxform = str  # type: ignore[assignment,method-assign]
    timer.read(EXAMPLES / "opsbook-check.timer")
    assert timer["Timer"]["Unit"] == "opsbook-check.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    analyze = shutil.which("systemd-analyze")
    if analyze:  # systemd's own parser too, where systemd is installed (the opsbook path made real)
        real = str(Path(sys.executable).with_name("opsbook"))
        for name in ("opsbook-check.service", "opsbook-check.timer"):
            text = (EXAMPLES / name).read_text().replace("/usr/local/bin/opsbook", real)
            (tmp_path / name).write_text(text)
        proc = subprocess.run(
            [
                analyze,
                "verify",
                "--man=no",
                str(tmp_path / "opsbook-check.service"),
                str(tmp_path / "opsbook-check.timer"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "opsbook-check" not in proc.stderr, proc.stderr  # no warning about our units


def test_cron_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    jobs = [
        line
        for line in (EXAMPLES / "opsbook.cron").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 6)
    assert re.fullmatch(r"(\*|\*/\d+|\d+)", fields[0]) and fields[5] == "root"  # /etc/cron.d format: user field
    args = opsbook_args(fields[6])
    assert "--textfile" in args
    validate_command_line(capsys, tmp_path, args)


def test_gitlab_job(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = doc["opsbook-checks"]
    junit = job["artifacts"]["reports"]["junit"]
    assert job["artifacts"]["when"] == "always"
    runs = [opsbook_args(line) for line in job["script"] if "opsbook run" in line]
    assert any("--junit-file" in args and args[args.index("--junit-file") + 1] == junit for args in runs)
    for args in runs:
        validate_command_line(capsys, tmp_path, args)


def test_icinga_check_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = (EXAMPLES / "icinga2-opsbook.conf").read_text()
    assert 'object CheckCommand "opsbook-run"' in text
    assert text.count("{") == text.count("}")
    command = re.search(r"command = \[ (.*) \]", text)
    assert command is not None and command.group(1).endswith('"run"')
    options = re.findall(r'"(--[a-z-]+)" = \{', text)
    assert "--format" in options
    args = ["run"]
    for opt in options:
        args += [opt, "nagios" if opt == "--format" else ("2" if opt == "--concurrency" else str(tmp_path / f"x{opt}"))]
    args.append("/etc/opsbook/suite.yaml")
    validate_command_line(capsys, tmp_path, args)
