"""--textfile / --junit-file: checked before any probe, and the report is printed even when writing fails.

A cron job or a Nagios check given an output file it cannot write must fail at once (exit 3,
one line), and connect to nobody; a file that becomes unwritable during the run must not eat
the report on stdout.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_main


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("opsbook: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0].removeprefix("opsbook: error: ")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP listener: a probe that ran would show up as a pending connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.3)
        yield sock


def nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except TimeoutError:
        return True
    conn.close()
    return False


def bad_targets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    (tmp_path / "adir").mkdir()
    return {
        "missing folder": (tmp_path / "missing" / "out.x", f"the folder {tmp_path / 'missing'} does not exist"),
        "folder is a file": (plain / "out.x", f"the folder {plain} is not a directory"),
        "target is a folder": (tmp_path / "adir", "is a directory"),
    }


@pytest.mark.parametrize("case", ["missing folder", "folder is a file", "target is a folder"])
@pytest.mark.parametrize("option", ["--textfile", "--junit-file"])
def test_run_refuses_an_unwritable_output_before_any_probe(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, listener: socket.socket, option: str, case: str
) -> None:
    port = listener.getsockname()[1]
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {{hosts: ['127.0.0.1:{port}'], timeout: 1}}\n"
    )
    target, reason = bad_targets(tmp_path)[case]
    result = run_main(capsys, "run", str(suite), "-f", "nagios", option, str(target))
    assert result.code == 3
    line = one_error_line(result.err)
    assert option in line and str(target) in line and reason in line  # Click itself refuses a directory
    assert result.out == ""
    assert nobody_connected(listener)


def test_run_validate_checks_the_output_file_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {hosts: [127.0.0.1]}\n")
    result = run_main(capsys, "run", "--validate", str(suite), "--textfile", str(tmp_path / "no" / "x.prom"))
    assert result.code == 3
    assert one_error_line(result.err).startswith(f"cannot write --textfile {tmp_path / 'no' / 'x.prom'}: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["winrm", "check", "127.0.0.1:{port}", "--timeout", "1"],
        ["winrm", "audit", "127.0.0.1:{port}", "--username", "u"],
        [
            "adsync",
            "check",
            "--domain",
            "corp.test",
            "--dns",
            "127.0.0.1:{port}",
            "--dc",
            "127.0.0.1",
            "--ports",
            "{port}/tcp",
            "--timeout",
            "0.5",
        ],
        ["docker-root", "status", "--docker-host", "tcp://127.0.0.1:{port}"],
    ],
    ids=["winrm-check", "winrm-audit", "adsync-check", "docker-root-status"],
)
def test_every_check_command_refuses_an_unwritable_textfile_at_once(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    monkeypatch.setenv("OPSBOOK_WINRM_PASSWORD", "not-used")
    port = listener.getsockname()[1]
    args = [a.format(port=port) for a in argv]
    target = tmp_path / "missing" / "x.prom"
    result = run_main(capsys, *args, "-f", "nagios", "--textfile", str(target))
    assert result.code == 3
    assert one_error_line(result.err) == f"cannot write --textfile {target}: the folder {target.parent} does not exist"
    assert result.out == ""
    assert nobody_connected(listener)


def test_report_is_printed_before_a_late_write_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folder is there when the run starts and gone when the report is written.
    import opsbook.runbooks.suite as suite_pkg

    folder = tmp_path / "textfile_collector"
    folder.mkdir()
    real_run_jobs = suite_pkg.run_jobs

    def run_then_remove_folder(*args: object, **kwargs: object) -> object:
        outcome = real_run_jobs(*args, **kwargs)  # type: ignore[arg-type]
        folder.rmdir()
        return outcome

    monkeypatch.setattr(suite_pkg, "run_jobs", run_then_remove_folder)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {{hosts-file: {tmp_path / 'h'}}}\n"
    )
    for option in ("--textfile", "--junit-file"):
        result = run_main(capsys, "run", str(suite), "-f", "json", option, str(folder / "out"))
        assert result.code == 3
        doc = json.loads(result.out)  # the whole report, on stdout, first
        assert doc["checks"][0]["source"] == "a"
        assert one_error_line(result.err).startswith(f"cannot write {option} {folder / 'out'}: ")
        folder.mkdir()
