"""The root command: version, help, usage errors mapped to exit 3, error handling."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli, run_main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "--version")
    assert (result.code, result.out, result.err) == (0, "opsbook 0.1.0\n", "")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "--help")
    assert result.code == 0
    from opsbook.cli.app import SUBCOMMANDS

    for command in SUBCOMMANDS:  # every command, from the one table the CLI itself uses
        assert f"  {command} " in result.out
    assert "Examples:" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["nosuchcommand"], "No such command"),
        (["runbooks", "show"], "Missing argument"),
        (["runbooks", "show", "a", "b"], "unexpected extra argument"),
        (["runbooks", "show", "nope"], "unknown runbook 'nope'"),
    ],
)
def test_usage_errors_exit_3_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    result = run_main(capsys, *args)
    assert result.code == 3
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("opsbook: error: ")
    assert message.lower() in lines[0].lower()
    assert "Traceback" not in result.err


def test_bare_group_shows_help_and_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "winrm")
    assert result.code == 3
    assert "Usage: opsbook winrm" in result.err


def test_subprocess_usage_error_has_no_traceback() -> None:
    result = run_cli("--nope")
    assert result.code == 3
    assert result.err.startswith("opsbook: error: No such option: --nope")
    assert "Traceback" not in result.err


def test_completion_is_offered(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "--help")
    assert "--install-completion" in result.out and "--show-completion" in result.out


def test_root_help_lists_every_subcommand_without_importing_it() -> None:
    """`opsbook --help` shows each subcommand's own short help, from the static table."""
    from opsbook.cli.app import SUBCOMMANDS, load_command

    for name, (_, short) in SUBCOMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert (command.help or "").startswith(short.removesuffix("...")), name
