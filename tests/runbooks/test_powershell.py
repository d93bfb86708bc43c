from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.exchange_mailbox.identities import problem_with
from opsbook.runbooks.exchange_mailbox.script import encode as exchange_encode
from opsbook.runbooks.exchange_mailbox.script import generate as exchange_generate
from opsbook.runbooks.powershell import (
    BOM,
    SINGLE_QUOTES,
    encode,
    quote,
    quote_array,
    render,
    unquote,
    unsafe_character,
)
from opsbook.runbooks.winrm_https.script import ScriptOptions
from opsbook.runbooks.winrm_https.script import encode as winrm_encode
from opsbook.runbooks.winrm_https.script import generate as winrm_generate
from tests.powershell_grammar import parse


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("o'brien", "'o''brien'"),
        ("\u2018q\u2019", "'\u2018\u2018q\u2019\u2019'"),
        ("a\u201ab\u201bc", "'a\u201a\u201ab\u201b\u201bc'"),
        ('$(Get-Process) `n "x"', "'$(Get-Process) `n \"x\"'"),
    ],
)
def test_quote_doubles_every_single_quote_character(value: str, expected: str) -> None:
    assert quote(value) == expected
    assert unquote(expected) == value


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "a\u0085b", "a\u2028b", "a\u2029b", "\x1b[31m"])
def test_quote_refuses_control_characters(bad: str) -> None:
    with pytest.raises(InputError, match="control character"):
        quote(bad, what="identity")


def test_injection_attempt_stays_one_literal() -> None:
    hostile = "x'; Remove-Mailbox -Identity * ;'"
    script = f"$v = {quote(hostile)}\n"
    parsed = parse(script)
    assert parsed.errors == []
    assert parsed.verbatim_literals() == [quote(hostile)]
    assert "Remove-Mailbox" not in parsed.command_names()
    # the unquoted text would have run the command: the grammar sees it then
    assert "Remove-Mailbox" in parse(f"$v = '{hostile}'\n").command_names()


def test_quote_array_parses_as_array_of_literals() -> None:
    values = ["a", "o'b", "‘c’"]
    parsed = parse(f"$ids = {quote_array(values)}\n")
    assert parsed.errors == []
    assert [unquote(s) for s in parsed.verbatim_literals()] == values


@given(st.text(max_size=40))
def test_quote_round_trips_or_refuses(value: str) -> None:
    if unsafe_character(value):
        with pytest.raises(InputError):
            quote(value)
        return
    literal = quote(value)
    assert unquote(literal) == value
    inner = literal[1:-1]
    # every quote character inside the literal comes in pairs
    run = 0
    for ch in inner + "x":
        if ch in SINGLE_QUOTES:
            run += 1
        else:
            assert run % 2 == 0
            run = 0


# ---- one character policy and one renderer for every generated script ----

REFUSED = {
    "\u200b": "invisible formatting character",  # zero-width space
    "\u00ad": "invisible formatting character",  # soft hyphen
    "\u2060": "invisible formatting character",  # word joiner
    "\ufeff": "invisible formatting character",  # BOM inside a value
    "\u202e": "bidirectional control character",
    "\u2066": "bidirectional control character",
    "\x1b": "control character",
    "\u2028": "control character",
    "\ue000": "unassigned or private-use character",
    "\U000e0001": "invisible formatting character",  # language tag
}


@pytest.mark.parametrize("char", sorted(REFUSED))
def test_one_policy_for_both_generators(char: str) -> None:
    value = f"Corp{char}Root"
    assert unsafe_character(value) is not None and REFUSED[char] in unsafe_character(value)  # type: ignore[operator]
    with pytest.raises(InputError, match=REFUSED[char]):
        quote(value)
    with pytest.raises(InputError, match=REFUSED[char]):
        winrm_generate(ScriptOptions(root_ca=value))
    with pytest.raises(InputError, match=REFUSED[char]):
        exchange_generate([value])
    assert problem_with(value) == unsafe_character(value)


@pytest.mark.parametrize(
    "value", ["ka\u200dr", "a\u200cb", "Zo\u00eb \u00c5ngstr\u00f6m", "\u0928\u092e\u0938\u094d\u200d"]
)
def test_joiners_and_visible_unicode_are_allowed_by_both(value: str) -> None:
    assert unsafe_character(value) is None
    assert quote(value) == f"'{value}'"
    assert f"'{value}'" in winrm_generate(ScriptOptions(root_ca=value))
    assert f"'{value}'" in exchange_generate([value])


def test_render_fills_markers_in_one_pass() -> None:
    out = render("a @@ONE@@ b @@TWO@@\r\n", {"ONE": "@@TWO@@", "TWO": "'x'"})
    assert out == "a @@TWO@@ b 'x'\n"  # a value is never rescanned; CRLF becomes LF


def test_render_refuses_missing_and_unused_values() -> None:
    with pytest.raises(ValueError, match="@@TWO@@ has no value"):
        render("@@ONE@@ @@TWO@@", {"ONE": "1"})
    with pytest.raises(ValueError, match="without a marker"):
        render("@@ONE@@", {"ONE": "1", "EXTRA": "2"})


@pytest.mark.parametrize("char", ["\u200b", "\u202e", "\x07", "\u2028", "\x0b"])
def test_render_checks_the_whole_script_against_the_policy(char: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        render("ok\nWrite-Host @@V@@\n", {"V": f"'a{char}b'"})
    with pytest.raises(ValueError, match="line 1"):
        render(f"# template {char}\n", {})
    assert render("\tindented\n", {}) == "\tindented\n"


def test_encode_is_bom_and_crlf_for_both_generators() -> None:
    text = "line 1\nline 2\r\nline 3\n"
    assert encode(text) == b"\xef\xbb\xbfline 1\r\nline 2\r\nline 3\r\n"
    assert encode(BOM + text) == encode(text)  # never two BOMs
    for data in (exchange_encode(exchange_generate(["a"])), winrm_encode(winrm_generate(ScriptOptions(root_ca="x")))):
        assert data.startswith(b"\xef\xbb\xbf")
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        assert data.count(b"\xef\xbb\xbf") == 1
