"""`opsbook run`: malformed suites give one clear error line with file:line and exit 3."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_main


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("opsbook: error: "), err
    assert "Traceback" not in err
    return lines[0].removeprefix("opsbook: error: ")


WINRM = "version: 1\nchecks:\n  - name: fleet\n    runbook: winrm\n    with:\n      hosts: [127.0.0.1]\n"


@pytest.mark.parametrize(
    ("extra", "position", "message"),
    [
        ("      warn-dayz: 3\n", "7:7", "unknown option 'warn-dayz' for winrm check (known: ca-file,"),
        ("      warn-days: soon\n", "7:18", "Invalid value for warn-days"),
        ("      warn-days: -1\n", "7:18", "Invalid value for warn-days"),
        ("      port: [1, 2]\n", "7:13", "port takes one value, not a list"),
        ("      format: json\n", "7:7", "format is chosen for the whole run"),
        ("      textfile: /tmp/x.prom\n", "7:7", "textfile is chosen for the whole run"),
        ("      issuer: ${OPSBOOK_TEST_UNSET_VAR}\n", "7:15", "environment variable OPSBOOK_TEST_UNSET_VAR is not set"),
        ("      issuer:\n", "7:14", "issuer needs a value"),
    ],
)
def test_bad_options_point_at_the_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: str, position: str, message: str
) -> None:
    path = write(tmp_path, WINRM + extra)
    result = run_main(capsys, "run", "--validate", str(path))
    assert result.code == 3
    line = one_error_line(result.err)
    assert line.startswith(f"{path}:{position}: "), line
    assert message in line
    assert result.out == ""


def test_unknown_default_and_defaults_for_other_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ndefaults:\n  colour: red\n" + WINRM.removeprefix("version: 1\n"))
    result = run_main(capsys, "run", "--validate", str(path))
    assert result.code == 3
    assert one_error_line(result.err) == f"{path}:3:3: defaults.colour is not an option of any check command"


def test_defaults_apply_only_where_the_command_has_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # daemon-json belongs to docker-root status only: fine for a winrm entry to ignore it
    path = write(
        tmp_path,
        "version: 1\ndefaults:\n  daemon-json: /nonexistent/daemon.json\n  timeout: 1\n"
        + WINRM.removeprefix("version: 1\n"),
    )
    result = run_main(capsys, "run", "--validate", str(path))
    assert (result.code, result.err) == (0, "")
    assert result.out == f"{path}: OK, 1 check in 1 file\n"


def test_bad_default_value_points_at_the_defaults_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ndefaults:\n  timeout: never\n" + WINRM.removeprefix("version: 1\n"))
    result = run_main(capsys, "run", "--validate", str(path))
    assert result.code == 3
    assert one_error_line(result.err).startswith(f"{path}:3:12: Invalid value for timeout")


def test_env_value_is_masked_in_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_SECRET_DAYS", "Sup3rS3cret")
    path = write(tmp_path, WINRM + "      warn-days: ${OPSBOOK_TEST_SECRET_DAYS}\n")
    result = run_main(capsys, "run", "--validate", str(path))
    assert result.code == 3
    line = one_error_line(result.err)
    assert line.startswith(f"{path}:7:18: Invalid value for warn-days")
    assert "Sup3rS3cret" not in result.err + result.out


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("version: 1\nchecks:\n  - name: [oops\n", "4:1", "invalid YAML"),
        ("version: 1\nchecks:\n  - name: a\n    runbook: ftp\n", "4:14", "unknown runbook 'ftp'"),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n  - name: a\n    runbook: winrm\n",
            "5:11",
            "duplicate check name 'a'",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    timeout: 3\n",
            "5:5",
            "unknown key 'timeout' in a check",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {port: 1, port: 2}\n",
            "5:21",
            "duplicate key 'port'",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {port: true}\n",
            "5:18",
            "Invalid value for port",
        ),
        ("version: 1\nchecks:\n  - name: off\n    runbook: winrm\n", "3:11", "YAML read a boolean here: quote it"),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {port: 5986, hosts: []}\n",
            "3:5",
            "a: winrm check needs hosts or hosts-file under 'with:'",
        ),
    ],
)
def test_malformed_suites(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, position: str, message: str
) -> None:
    path = write(tmp_path, text)
    result = run_main(capsys, "run", "--validate", str(path))
    assert result.code == 3
    line = one_error_line(result.err)
    assert line.startswith(f"{path}:{position}: "), line
    assert message in line


def test_include_cycle_through_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path, "version: 1\ninclude: [suite.yaml]\n", "other.yaml")
    path = write(tmp_path, "version: 1\ninclude: [other.yaml]\n" + WINRM.removeprefix("version: 1\n"))
    result = run_main(capsys, "run", str(path))  # a run validates first, too
    assert result.code == 3
    assert (
        one_error_line(result.err)
        == f"{tmp_path / 'other.yaml'}:2:11: include cycle: suite.yaml -> other.yaml -> suite.yaml"
    )


def test_anchor_bomb_and_oversize_file_fail_fast(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lines = ["version: 1", 'x-0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"x-{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]")
    bomb = write(tmp_path, "\n".join(lines) + "\nchecks: []\n", "bomb.yaml")
    result = run_main(capsys, "run", "--validate", str(bomb))
    assert result.code == 3
    assert re.match(
        rf"{re.escape(str(bomb))}:\d+:\d+: (YAML aliases expand to more than|too many YAML aliases)",
        one_error_line(result.err),
    )

    huge = tmp_path / "huge.yaml"
    huge.write_text("version: 1\n" + "# padding\n" * 100_000)
    result = run_main(capsys, "run", "--validate", str(huge))
    assert result.code == 3
    assert one_error_line(result.err).startswith(f"{huge}: file too large")


def test_missing_file_and_usage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = run_main(capsys, "run", "--validate", str(tmp_path / "nope.yaml"))
    assert result.code == 3
    assert "suite file does not exist" in one_error_line(result.err)
    result = run_main(capsys, "run", "--concurrency", "0", str(tmp_path / "nope.yaml"))
    assert result.code == 3


def test_unset_variable_stops_the_run_before_anything_runs(tmp_path: Path) -> None:
    # the first entry would connect to a loopback port; nothing may run when a later entry is broken
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        path = write(
            tmp_path,
            f"version: 1\nchecks:\n  - name: first\n    runbook: winrm\n    with: {{hosts: ['127.0.0.1:{port}'], timeout: 1}}\n"
            "  - name: second\n    runbook: winrm\n    with:\n      hosts: [a]\n      issuer: ${OPSBOOK_TEST_NOT_SET_EITHER}\n",
        )
        result = run_cli("run", str(path), "-f", "json")
        assert result.code == 3
        assert one_error_line(result.err) == (
            f"{path}:10:15: environment variable OPSBOOK_TEST_NOT_SET_EITHER is not set "
            "(referenced as ${OPSBOOK_TEST_NOT_SET_EITHER})"
        )
        assert result.out == ""
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected


def test_unwritable_output_file_is_one_clean_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(
        tmp_path, "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {hosts-file: /nonexistent/h.txt}\n"
    )
    result = run_main(capsys, "run", str(path), "-f", "json", "--junit-file", str(tmp_path / "missing" / "j.xml"))
    assert result.code == 3
    target = re.escape(str(tmp_path / "missing" / "j.xml"))
    folder = re.escape(str(tmp_path / "missing"))
    assert re.fullmatch(
        rf"cannot write --junit-file {target}: the folder {folder} does not exist", one_error_line(result.err)
    )
    assert result.out == ""


def test_help_shows_the_options_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "run", "--help")
    assert result.code == 0
    for text in (
        "--validate",
        "--format",
        "--textfile",
        "--junit-file",
        "--concurrency",
        "Examples:",
        "opsbook run --validate",
    ):
        assert text in result.out
    assert "--install-completion" not in result.out  # completion belongs to `opsbook`, not to `opsbook run`


def test_every_broken_entry_is_reported_at_once_one_line_each(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        checks:
          - name: a
            runbook: winrm
            with: {hosts: [x], port: 99999}
          - name: fine
            runbook: winrm
            with: {hosts: [y]}
          - name: b
            runbook: winrm
            with: {colour: red}
          - name: c
            runbook: adsync
            with: {dns: [10.0.0.1]}
          - name: d
            runbook: winrm
            with: {port: 5986}
        """,
    )
    for args in (("--validate", str(path)), (str(path), "-f", "json")):
        result = run_main(capsys, "run", *args)
        assert result.code == 3
        assert result.out == ""
        lines = result.err.splitlines()
        assert all(line.startswith("opsbook: error: ") for line in lines), lines
        assert [line.removeprefix("opsbook: error: ").split(" ", 1)[0] for line in lines] == [
            f"{path}:5:30:",
            f"{path}:11:12:",
            f"{path}:12:5:",
            f"{path}:15:5:",
        ], lines
        assert "Invalid value for port" in lines[0] and "unknown option 'colour'" in lines[1]
        assert "Missing option domain" in lines[2] and "d: winrm check needs hosts or hosts-file" in lines[3]


def test_a_bad_default_is_reported_once_not_for_every_entry(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    entries = "".join(f"  - name: e{i}\n    runbook: winrm\n    with: {{hosts: [h{i}]}}\n" for i in range(5))
    path = write(tmp_path, "version: 1\ndefaults:\n  timeout: never\nchecks:\n" + entries)
    result = run_main(capsys, "run", "--validate", str(path))
    assert result.code == 3
    assert one_error_line(result.err).startswith(f"{path}:3:12: Invalid value for timeout")


def test_validate_checks_the_files_entries_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    unreadable = Path("/dev/null")  # a device, not a file of certificates
    path = write(
        tmp_path,
        f"""
        version: 1
        checks:
          - name: a
            runbook: winrm
            with:
              hosts: [127.0.0.1]
              ca-file: "x\\0y"
          - name: b
            runbook: winrm
            with:
              hosts-file: missing-hosts.txt
          - name: c
            runbook: winrm
            with:
              hosts: [127.0.0.1]
              ca-file: {unreadable}
        """,
    )
    result = run_main(capsys, "run", "--validate", str(path))
    assert result.code == 3 and result.out == ""
    assert result.err.splitlines() == [
        f"opsbook: error: {path}:7:16: ca-file: the value contains a NUL character",
        f"opsbook: error: {path}:11:19: hosts-file {tmp_path / 'missing-hosts.txt'}: no such file",
        f"opsbook: error: {path}:16:16: ca-file {unreadable}: not a regular file",
    ]
    (tmp_path / "missing-hosts.txt").write_text("127.0.0.1\n")
    path.write_text(
        path.read_text().replace('ca-file: "x\\0y"', "port: 5986").replace(str(unreadable), "missing-hosts.txt")
    )
    assert run_main(capsys, "run", "--validate", str(path)).code == 0


def test_a_nul_in_a_value_is_not_an_internal_error_when_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        'version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {hosts: [127.0.0.1], ca-file: "x\\0y"}\n',
    )
    result = run_main(capsys, "run", str(path), "-f", "json")
    assert result.code == 3 and result.out == ""
    assert one_error_line(result.err) == f"{path}:5:41: ca-file: the value contains a NUL character"
