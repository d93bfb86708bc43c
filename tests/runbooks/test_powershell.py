from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbooks.errors import InputError
from runbooks.powershell import SINGLE_QUOTES, quote, quote_array, unquote, unsafe_character
from tests.powershell_grammar import parse


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("o'brien", "'o''brien'"),
        ("\u2018q\u2019", "'\u2018\u2018q\u2019\u2019'"),
        ("a\u201ab\u201bc", "'a\u201a\u201ab\u201b\u201bc'"),
        ("$(Get-Process) `n \"x\"", "'$(Get-Process) `n \"x\"'"),
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
