"""``opsbook exchange clear-previous-mailbox`` through the real entry point (exit codes, files)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsbook.runbooks.exchange_mailbox.identities import problem_with
from tests.helpers import REPO, run_cli, run_main
from tests.runbooks.exchange_mailbox.exchange_scriptcheck import check_script

CMD = ("exchange", "clear-previous-mailbox")
BOM = "\ufeff"


def _script(out: str) -> str:
    assert out.startswith(BOM), "the script must start with a UTF-8 BOM"
    return out[len(BOM) :]


def test_arguments_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ids = ["jane@contoso.com", "o'brien@contoso.com", "\u2018quoted\u2019@contoso.com"]
    res = run_main(capsys, *CMD, *ids)
    assert res.code == 0, res.err
    check_script(_script(res.out), ids)
    assert "3 user(s)" in res.err and "read-only unless run with -Apply" in res.err


def test_license_reset_flag(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, *CMD, "jane@contoso.com", "--license-reset")
    assert res.code == 0, res.err
    check_script(_script(res.out), ["jane@contoso.com"], license_reset=True)


def test_output_file_is_written_with_bom_and_refused_without_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "Clear.ps1"
    res = run_main(capsys, *CMD, "jane@contoso.com", "--output", str(target))
    assert res.code == 0, res.err
    assert res.out == ""
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    check_script(data.decode("utf-8-sig"), ["jane@contoso.com"])
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert f"wrote {target}" in res.err

    res = run_main(capsys, *CMD, "other@contoso.com", "-o", str(target))
    assert res.code == 3
    assert res.err.strip() == f"opsbook: error: {target} already exists; use --force to overwrite it"
    assert target.read_bytes() == data

    res = run_main(capsys, *CMD, "other@contoso.com", "-o", str(target), "--force")
    assert res.code == 0, res.err
    check_script(target.read_bytes().decode("utf-8-sig"), ["other@contoso.com"])
    assert sorted(os.listdir(tmp_path)) == ["Clear.ps1"]  # no temp files left behind


def test_refused_identity_writes_nothing_and_names_the_argument(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out.ps1"
    res = run_main(capsys, *CMD, "ok@contoso.com", "evil\nRemove-Mailbox", "-o", str(target))
    assert res.code == 3
    assert res.out == ""
    assert not target.exists()
    assert os.listdir(tmp_path) == []
    assert res.err == (
        "opsbook: error: argument 2: identity 'evil\\nRemove-Mailbox' refused: control character U+000A at position 5\n"
    )


def test_refused_identity_keeps_an_existing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "out.ps1"
    target.write_text("old")
    res = run_main(capsys, *CMD, "a\u2028b", "-o", str(target), "--force")
    assert res.code == 3
    assert target.read_text() == "old"
    assert "U+2028" in res.err


def test_no_identities_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, *CMD)
    assert res.code == 3
    assert res.out == ""
    assert res.err == "opsbook: error: no identities: give IDENTITY arguments or --csv FILE\n"


def test_csv_with_bom_and_extra_columns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(
        '\ufeffDisplayName,identity,Ticket\nJane,jane@contoso.com,1\nO,"o\'brien@contoso.com",2\n'.encode()
    )
    res = run_main(capsys, *CMD, "first@contoso.com", "--csv", str(users))
    assert res.code == 0, res.err
    check_script(_script(res.out), ["first@contoso.com", "jane@contoso.com", "o'brien@contoso.com"])


def test_csv_row_with_embedded_newline_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(b'identity\njane@contoso.com\n"x\nRemove-Mailbox -Identity *"\n')
    target = tmp_path / "out.ps1"
    res = run_main(capsys, *CMD, "--csv", str(users), "-o", str(target))
    assert res.code == 3
    assert res.err.startswith(f"opsbook: error: {users} row 3: identity 'x\\nRemove-Mailbox -Identity *' refused")
    assert not target.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty; expected a header row with a column 'identity'"),
        (b"identity\n", "no identities (the file has a header but no rows)"),
        (b"upn\njane@contoso.com\n", "row 1: no column 'identity' in the header (found: 'upn')"),
        (
            b"identity\n\xff\xfe\n",
            "row 2: not UTF-8 (byte 0xFF at offset 9); save the file as UTF-8 (with or without BOM)",
        ),
    ],
)
def test_bad_csv_files(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(content)
    res = run_main(capsys, *CMD, "--csv", str(users))
    assert res.code == 3
    assert res.out == ""
    sep = " " if message.startswith("row") else ": "
    assert res.err == f"opsbook: error: {users}{sep}{message}\n"


def test_output_may_not_be_the_csv_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(b"identity\njane@contoso.com\n")
    res = run_main(capsys, *CMD, "--csv", str(users), "-o", str(tmp_path / "." / "users.csv"), "--force")
    assert res.code == 3
    assert "is the --csv file" in res.err
    assert users.read_bytes() == b"identity\njane@contoso.com\n"


def test_missing_csv_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    res = run_main(capsys, *CMD, "--csv", str(tmp_path / "nope.csv"))
    assert res.code == 3
    assert res.err == f"opsbook: error: {tmp_path / 'nope.csv'}: no such file\n"


def test_duplicates_are_written_once_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, *CMD, "a@contoso.com", "b@contoso.com", "a@contoso.com")
    assert res.code == 0
    check_script(_script(res.out), ["a@contoso.com", "b@contoso.com"])
    assert "opsbook: warning: argument 3: 'a@contoso.com' repeats argument 1; written once" in res.err


def test_output_into_a_missing_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    res = run_main(capsys, *CMD, "a@contoso.com", "-o", str(tmp_path / "no" / "such" / "x.ps1"))
    assert res.code == 3
    assert res.err.startswith(f"opsbook: error: cannot write --output {tmp_path / 'no' / 'such' / 'x.ps1'}:")


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, *CMD, "a@contoso.com", "--whatif")
    assert res.code == 3
    assert "No such option: --whatif" in res.err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, *CMD, "--help")
    assert res.code == 0
    assert "Examples:" in res.out and "--license-reset" in res.out and "--csv" in res.out


def test_subprocess_ten_thousand_rows_from_stdin(tmp_path: Path) -> None:
    ids = [f"user{n}'{chr(0x2018 + n % 4)}@contoso.com" for n in range(10_000)]
    csv_text = "identity\n" + "".join(f'"{i}"\n' for i in ids)
    target = tmp_path / "big.ps1"
    res = run_cli(*CMD, "--csv", "-", "-o", str(target), stdin=csv_text)
    assert res.code == 0, res.err
    check_script(target.read_bytes().decode("utf-8-sig"), ids)


def test_subprocess_stdout_is_utf8_with_bom_whatever_the_locale() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "LC_ALL": "C"}
    proc = subprocess.run(
        [sys.executable, "-m", "opsbook", *CMD, "Zo\u00eb\u2019@contoso.com"],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"\xef\xbb\xbf")
    check_script(proc.stdout.decode("utf-8-sig"), ["Zo\u00eb\u2019@contoso.com"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=20), min_size=1, max_size=3))
def test_property_refused_with_exit_3_and_no_output_or_round_trips(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, raw: list[str]
) -> None:
    target = tmp_path / "prop.ps1"
    target.unlink(missing_ok=True)
    args = [*CMD, "-o", str(target), "--", *raw]
    res = run_main(capsys, *args)
    refused = [v for v in raw if problem_with(v.strip(" \t")) is not None]
    if refused:
        assert res.code == 3
        assert res.out == ""
        assert not target.exists()
        assert res.err.startswith("opsbook: error: argument ")
        assert res.err.count("\n") == 1
    else:
        assert res.code == 0, res.err
        expected = list(dict.fromkeys(v.strip(" \t") for v in raw))
        check_script(target.read_bytes().decode("utf-8-sig"), expected)


@pytest.mark.parametrize("force", [False, True])
def test_output_that_is_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path, force: bool) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    res = run_main(capsys, *CMD, "a@contoso.com", "-o", str(folder), *(["--force"] if force else []))
    assert res.code == 3
    assert res.out == ""
    assert res.err == (f"opsbook: error: --output {folder} is a directory; give a file name in it\n")
    assert os.listdir(folder) == []


def test_output_blank_name(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, *CMD, "a@contoso.com", "-o", "  ")
    assert res.code == 3
    assert res.err == "opsbook: error: --output: empty file name; give a file name, or - for standard output\n"


def test_output_into_a_missing_folder_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    res = run_main(capsys, *CMD, "a@contoso.com", "-o", str(tmp_path / "missing" / "x.ps1"))
    assert res.code == 3
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    ("cell", "code_point"),
    [
        ('"a\rb"', "U+000D"),
        ('"a\nb"', "U+000A"),
        ('"a\r\nb"', "U+000D"),
        ("a\x00b", "U+0000"),
        ("a\x85b", "U+0085"),
        ("a\u2028b", "U+2028"),
        ("a\u2029b", "U+2029"),
        ("a\x1b[2Jb", "U+001B"),
        ("a\x7fb", "U+007F"),
        ("admin\u202e@contoso.com", "U+202E"),
    ],
)
def test_csv_row_with_a_refused_character_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cell: str, code_point: str
) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(("identity,ticket\r\nok@contoso.com,1\r\n" + cell + ",2\r\n").encode())
    target = tmp_path / "out.ps1"
    res = run_main(capsys, *CMD, "--csv", str(users), "-o", str(target))
    assert res.code == 3, res.err
    assert res.out == ""
    assert res.err.startswith(f"opsbook: error: {users} row 3: identity ")
    assert code_point in res.err
    assert res.err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["users.csv"]


def test_csv_crlf_without_bom_every_quote_character(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ids = [
        "o'brien@contoso.com",
        "\u2018l\u2019@contoso.com",
        "low\u201a9@contoso.com",
        "rev\u201b@contoso.com",
        "$(Get-Process)",
        "back`tick",
        "x'; Remove-Mailbox -Identity jane ;'",
        'say "hi"',
    ]
    rows = "".join('"' + i.replace('"', '""') + '",n\r\n' for i in ids)
    users = tmp_path / "users.csv"
    users.write_bytes(("identity,note\r\n" + rows).encode())
    res = run_main(capsys, *CMD, "--csv", str(users), "--license-reset")
    assert res.code == 0, res.err
    check_script(_script(res.out), ids, license_reset=True)


def test_csv_saved_as_utf16_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes("identity\r\njane@contoso.com\r\n".encode("utf-16"))  # what 5.1's Out-File writes
    res = run_main(capsys, *CMD, "--csv", str(users))
    assert res.code == 3
    assert res.err == (
        f"opsbook: error: {users}: the file is UTF-16, not UTF-8; save it as UTF-8 "
        "(Export-Csv -Encoding UTF8, or Excel's 'CSV UTF-8')\n"
    )


def test_csv_from_windows_powershell_export_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Windows PowerShell 5.1: Export-Csv -Delimiter ';' -Encoding UTF8 without -NoTypeInformation
    users = tmp_path / "users.csv"
    users.write_bytes(
        "\ufeff#TYPE Selected.System.Management.Automation.PSCustomObject\r\n"
        '"DisplayName";"identity"\r\n"Doe; Jane";"jane@contoso.com"\r\n"Zoë";"zoe@contoso.com"\r\n'.encode()
    )
    res = run_main(capsys, *CMD, "--csv", str(users))
    assert res.code == 0, res.err
    check_script(_script(res.out), ["jane@contoso.com", "zoe@contoso.com"])


def test_csv_with_only_a_type_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(b"#TYPE System.Management.Automation.PSCustomObject\r\n")
    res = run_main(capsys, *CMD, "--csv", str(users))
    assert res.code == 3
    assert res.err == f"opsbook: error: {users}: no header row; expected a header row with a column 'identity'\n"


@pytest.mark.parametrize(
    "value", ["*", "adm*", "*@contoso.com", "jane*doe", "Department -eq 'IT'", "x'; Remove-Mailbox -Identity * ;'"]
)
def test_wildcards_and_filters_are_refused_from_argv_and_csv(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str
) -> None:
    target = tmp_path / "out.ps1"
    res = run_main(capsys, *CMD, "ok@contoso.com", "--", value, "-o", str(target))
    assert res.code == 3, res.err
    assert res.out == "" and res.err.count("\n") == 1 and "Traceback" not in res.err
    assert res.err.startswith("opsbook: error: argument 2: identity ")
    assert ("wildcard '*'" in res.err) == ("*" in value)
    assert os.listdir(tmp_path) == []
    users = tmp_path / "users.csv"
    users.write_bytes(('identity\r\nok@contoso.com\r\n"' + value.replace('"', '""') + '"\r\n').encode())
    res = run_main(capsys, *CMD, "--csv", str(users), "-o", str(target), "--license-reset")
    assert res.code == 3, res.err
    assert res.err.startswith(f"opsbook: error: {users} row 3: identity ") and res.err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["users.csv"]


@pytest.mark.parametrize(("codec", "order"), [("utf-16-le", "little-endian"), ("utf-16-be", "big-endian")])
def test_csv_utf16_without_bom_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, codec: str, order: str
) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes("identity\r\njane@contoso.com\r\n".encode(codec))
    target = tmp_path / "out.ps1"
    res = run_main(capsys, *CMD, "--csv", str(users), "-o", str(target))
    assert res.code == 3
    assert res.err == (
        f"opsbook: error: {users}: the file is UTF-16 ({order}, without byte-order mark), not UTF-8; "
        "save it as UTF-8 (Export-Csv -Encoding UTF8, or Excel's 'CSV UTF-8')\n"
    )
    assert not target.exists()


def test_saved_script_has_crlf_line_ends(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "Clear.ps1"
    assert run_main(capsys, *CMD, "jane@contoso.com", "-o", str(target)).code == 0
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf<#")
    assert data.count(b"\r\n") > 100 and b"\n" not in data.replace(b"\r\n", b"")
