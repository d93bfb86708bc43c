"""``opsbook winrm script`` through the CLI: output file handling, refusal, encoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.runbooks.powershell import unquote
from tests.helpers import run_cli, run_main
from tests.powershell_grammar import parse


def test_stdout_script_is_bom_utf8_and_parses(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, "winrm", "script", "--root-ca", "Corp ‘Root’ CA", "--port", "5987")
    assert res.code == 0
    assert res.out.startswith("\ufeff#Requires")
    text = res.out.lstrip("\ufeff").replace("\r\n", "\n")
    parsed = parse(text)
    assert parsed.errors == []
    assert "'Corp ‘‘Root’’ CA'" in parsed.verbatim_literals()
    assert "[int] $Port = 5987," in text
    assert "script written to standard output" in res.err


def test_output_file_atomic_refuses_overwrite_then_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "Bind-WinRMHttps.ps1"
    res = run_main(capsys, "winrm", "script", "--root-ca", "Corp Root CA", "--output", str(out))
    assert res.code == 0 and res.out == ""
    first = out.read_bytes()
    assert first.startswith(b"\xef\xbb\xbf#Requires")
    res = run_main(capsys, "winrm", "script", "--root-ca", "Other CA", "--output", str(out))
    assert res.code == 3 and "already exists" in res.err and "--force" in res.err
    assert out.read_bytes() == first
    res = run_main(
        capsys,
        "winrm",
        "script",
        "--root-ca",
        "Other CA",
        "--output",
        str(out),
        "--force",
        "--register-renewal-task",
        "--log-dir",
        "D:\\Logs",
    )
    assert res.code == 0
    text = out.read_bytes().decode("utf-8-sig")
    assert "'Other CA'" in text and "Register-ScheduledTask" in text and "'D:\\Logs'" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Bind-WinRMHttps.ps1"]  # no temp file left


@pytest.mark.parametrize(
    "args", [["--root-ca", "bad\nname"], ["--root-ca", "ok", "--log-dir", "C:\\x\x07"], ["--root-ca", ""]]
)
def test_unsafe_values_exit_3_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    out = tmp_path / "s.ps1"
    res = run_main(capsys, "winrm", "script", *args, "--output", str(out))
    assert res.code == 3
    assert res.err.startswith("opsbook: error: ") and res.err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    res = run_main(capsys, "winrm", "script", *args)
    assert res.code == 3 and res.out == ""


def test_usage_errors_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(capsys, "winrm", "script").code == 3  # --root-ca missing
    assert run_main(capsys, "winrm", "script", "--root-ca", "x", "--port", "0").code == 3


def test_subprocess_round_trip_of_a_hostile_value() -> None:
    value = "x'; Invoke-Expression $env:EVIL # ’"
    res = run_cli("winrm", "script", "--root-ca", value)
    assert res.code == 0, res.err
    text = res.out.lstrip("\ufeff").replace("\r\n", "\n")
    lits = [lit for lit in parse(text).verbatim_literals() if "EVIL" in lit]
    assert len(lits) == 1 and unquote(lits[0]) == value


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, "winrm", "script", "--help")
    assert res.code == 0
    assert "Examples:" in res.out and "--register-renewal-task" in res.out


def test_template_option_lands_in_the_param_block(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, "winrm", "script", "--root-ca", "Corp Root CA", "--template", "WinRM HTTPS")
    assert res.code == 0, res.err
    text = res.out.lstrip("\ufeff").replace("\r\n", "\n")
    assert parse(text).errors == [] and "[string] $Template = 'WinRM HTTPS'," in text
    res = run_main(capsys, "winrm", "script", "--root-ca", "Corp Root CA", "--template", "a\u202eb")
    assert res.code == 3 and res.err.count("\n") == 1 and "--template" in res.err
