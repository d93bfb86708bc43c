"""Identity validation and CSV reading for the clear-previous-mailbox generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.exchange_mailbox.identities import (
    MAX_LENGTH,
    collect,
    parse_csv,
    read_csv,
    validate,
)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("jane.doe@contoso.com", "upn"),
        ("o'brien@contoso.com", "upn"),
        ("\u2018quoted\u2019@contoso.com", "upn"),
        ("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "guid"),
        ("{0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0}", "guid"),
        ("jdoe", "alias"),
        ("j.doe_01", "alias"),
        ("Jane Doe", "other"),
        ("CONTOSO\\jdoe", "other"),
        ("CN=Jane Doe,OU=Users,DC=contoso,DC=com", "other"),
        ("Zoë Ångström", "other"),
    ],
)
def test_plausible_identities_are_accepted_and_classified(value: str, kind: str) -> None:
    ident = validate(value, "argument 1")
    assert ident.value == value
    assert ident.kind == kind
    assert ident.source == "argument 1"


def test_surrounding_whitespace_is_removed() -> None:
    assert validate("  jane@contoso.com\t", "argument 1").value == "jane@contoso.com"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty identity"),
        ("   ", "empty identity"),
        ("a\nb", "control character U+000A at position 2"),
        ("a\rb", "control character U+000D"),
        ("a\x00b", "control character U+0000"),
        ("a\u0085b", "control character U+0085"),
        ("a\u2028b", "control character U+2028"),
        ("a\u2029b", "control character U+2029"),
        ("\x1b[31mred", "control character U+001B"),
        ("admin\u202e@contoso.com", "bidirectional control character U+202E"),
        ("ja\u2060ne", "invisible formatting character U+2060"),
        ("adm*", "wildcard '*'"),
        ("*", "wildcard '*'"),
        ("Department -eq 'IT'", "a filter expression"),
        ("x -or y@contoso.com", "a filter expression"),
        ("ja\u200bne@contoso.com", "invisible formatting character U+200B"),
        ("ja\u00adne", "invisible formatting character U+00AD"),
        ('=HYPERLINK("x")', "starts with '='"),
        ("+1", "starts with '+'"),
        ("-Identity", "starts with '-'"),
        ("@contoso.com", "starts with '@'"),
        ("a" * (MAX_LENGTH + 1), f"longer than {MAX_LENGTH} characters"),
    ],
)
def test_refused_identities_name_the_source_and_the_reason(value: str, reason: str) -> None:
    with pytest.raises(InputError) as info:
        validate(value, "users.csv row 7")
    message = str(info.value)
    assert message.startswith("users.csv row 7: identity")
    assert reason in message
    # the message itself never carries the raw control character
    assert "\n" not in message and "\r" not in message and "\x1b" not in message


def test_zero_width_joiners_are_allowed() -> None:
    assert validate("\u0645\u06cc\u200c\u0631\u0648", "argument 1").kind == "other"


def test_max_length_identity_is_accepted() -> None:
    assert len(validate("a" * MAX_LENGTH, "argument 1").value) == MAX_LENGTH


# ------------------------------------------------------------------ CSV


def test_csv_with_bom_and_other_columns() -> None:
    data = "\ufeffname,identity,note\nJane,jane@contoso.com,x\nO,o'brien@contoso.com,\n".encode()
    got = parse_csv(data, "u.csv")
    assert [i.value for i in got] == ["jane@contoso.com", "o'brien@contoso.com"]
    assert [i.source for i in got] == ["u.csv row 2", "u.csv row 3"]


def test_csv_without_bom_crlf_and_case_of_header() -> None:
    got = parse_csv(b"Identity\r\njane@contoso.com\r\n", "u.csv")
    assert [i.value for i in got] == ["jane@contoso.com"]


def test_csv_semicolon_export_from_a_spreadsheet() -> None:
    got = parse_csv(b"Name;Identity\nJane;jane@contoso.com\n", "u.csv")
    assert [i.value for i in got] == ["jane@contoso.com"]


def test_csv_quoted_cell_with_comma_and_quotes() -> None:
    got = parse_csv(b'identity\n"Doe, Jane"\n"say ""hi"""\n', "u.csv")
    assert [i.value for i in got] == ["Doe, Jane", 'say "hi"']


def test_csv_blank_lines_are_skipped_but_rows_keep_their_numbers() -> None:
    with pytest.raises(InputError, match=r"^u.csv row 5: identity 'a\\nb' refused"):
        parse_csv(b'identity\njane@contoso.com\n\n,\n"a\nb"\n', "u.csv")


def test_csv_empty_identity_cell_is_refused() -> None:
    with pytest.raises(InputError, match=r"^u.csv row 3: identity refused: empty identity"):
        parse_csv(b"identity,name\njane@contoso.com,J\n,Nobody\n", "u.csv")


def test_csv_short_row_is_an_empty_identity() -> None:
    with pytest.raises(InputError, match=r"^u.csv row 2: identity refused: empty identity"):
        parse_csv(b"name,identity\nJane\n", "u.csv")


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n  \n"])
def test_csv_empty_file(data: bytes) -> None:
    with pytest.raises(InputError, match=r"^u.csv: the file is empty"):
        parse_csv(data, "u.csv")


def test_csv_header_only() -> None:
    with pytest.raises(InputError, match=r"^u.csv: no identities \(the file has a header but no rows\)"):
        parse_csv(b"identity\n", "u.csv")


def test_csv_missing_column_names_what_was_found() -> None:
    with pytest.raises(InputError, match=r"^u.csv row 1: no column 'identity' in the header \(found: 'upn', 'name'\)"):
        parse_csv(b"upn,name\njane@contoso.com,Jane\n", "u.csv")


def test_csv_two_identity_columns_are_ambiguous() -> None:
    with pytest.raises(InputError, match=r"more than one column 'identity'"):
        parse_csv(b"identity,Identity\na,b\n", "u.csv")


def test_csv_undecodable_bytes_name_the_row() -> None:
    data = b"identity\njane@contoso.com\nj\xe9r\xf4me@contoso.com\n"  # Latin-1, not UTF-8
    with pytest.raises(InputError, match=r"^u.csv row 3: not UTF-8 \(byte 0xE9 at offset 27\)"):
        parse_csv(data, "u.csv")


def test_csv_malformed_quoting() -> None:
    with pytest.raises(InputError, match=r"^u.csv row \d+: malformed CSV"):
        parse_csv(b'identity\n"unterminated\n', "u.csv")


def test_csv_ten_thousand_rows() -> None:
    data = ("identity\n" + "".join(f"user{n}@contoso.com\n" for n in range(10_000))).encode()
    got = parse_csv(data, "big.csv")
    assert len(got) == 10_000
    assert got[-1].source == "big.csv row 10001"


def test_read_csv_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_csv(tmp_path)


# ------------------------------------------------------------------ collect


def test_collect_arguments_then_csv_and_duplicates(tmp_path: Path) -> None:
    csv_file = tmp_path / "u.csv"
    csv_file.write_bytes(b"identity\nb@contoso.com\na@contoso.com\nA@contoso.com\n")
    got = collect(["a@contoso.com", "c"], read_csv(csv_file))
    assert got.values == ["a@contoso.com", "c", "b@contoso.com", "A@contoso.com"]
    assert [(d.source, f.source) for d, f in got.duplicates] == [(f"{csv_file} row 3", "argument 1")]
    assert got.counts() == {"upn": 3, "alias": 1}


def test_collect_nothing_is_an_error() -> None:
    with pytest.raises(InputError, match="no identities"):
        collect([])


def test_collect_names_the_bad_argument() -> None:
    with pytest.raises(InputError, match=r"^argument 2: identity 'x\\ny' refused"):
        collect(["ok@contoso.com", "x\ny"])


def test_csv_type_line_is_skipped_and_rows_keep_spreadsheet_numbers() -> None:
    data = b'#TYPE Selected.System.Management.Automation.PSCustomObject\n"identity"\n"a@contoso.com"\n"b\x1bc"\n'
    with pytest.raises(InputError, match=r"^u.csv row 4: identity 'b\\x1bc' refused"):
        parse_csv(data, "u.csv")
    got = parse_csv(data[: data.index(b'"b')], "u.csv")
    assert [(i.value, i.source) for i in got] == [("a@contoso.com", "u.csv row 3")]


def test_csv_type_text_after_the_header_is_data() -> None:
    """Only a line *before* the header is PowerShell's type line; later it is an identity."""
    got = parse_csv(b"identity\n#TYPE x\n", "u.csv")
    assert [i.value for i in got] == ["#TYPE x"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_csv_utf16_is_named(codec: str) -> None:
    data = "\ufeffidentity\r\njane@contoso.com\r\n".encode(codec)  # with BOM, as Windows writes it
    with pytest.raises(InputError, match=r"^u.csv: the file is UTF-16, not UTF-8"):
        parse_csv(data, "u.csv")
