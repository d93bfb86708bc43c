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

from runbooks.exchange_mailbox.identities import problem_with
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
        "opsbook: error: argument 2: identity 'evil\\nRemove-Mailbox' refused: "
        "control character U+000A at position 5\n"
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
    users.write_bytes("\ufeffDisplayName,identity,Ticket\nJane,jane@contoso.com,1\nO,\"o'brien@contoso.com\",2\n".encode())
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
        (b"identity\n\xff\xfe\n", "row 2: not UTF-8 (byte 0xFF at offset 9); save the file as UTF-8 (with or without BOM)"),
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
    assert res.err.startswith(f"opsbook: error: cannot write {tmp_path / 'no' / 'such' / 'x.ps1'}:")


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
        [sys.executable, "-m", "cli", *CMD, "Zo\u00eb\u2019@contoso.com"],
        capture_output=True, env=env, cwd=REPO, timeout=60, check=False,
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
