"""Property tests: any Unicode identity is either refused or round-trips through the parse."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.exchange_mailbox.identities import validate
from opsbook.runbooks.exchange_mailbox.script import generate
from tests.runbooks.exchange_mailbox.exchange_scriptcheck import FIXED_TIME, check_script

QUOTEY = st.sampled_from(list("'\u2018\u2019\u201a\u201b\"`$@(){};#<>|&\n\r\x00\u0085\u2028\u2029\u202e\u200b "))
SAFE_CHARS = st.characters(exclude_categories=("Cc", "Cs", "Cn", "Co", "Cf", "Zl", "Zp"))
IDENTITY = st.one_of(
    st.text(max_size=40),  # mostly refused: arbitrary code points
    st.text(st.one_of(QUOTEY, st.characters(codec="utf-8")), max_size=40),
    st.text(st.one_of(QUOTEY, SAFE_CHARS), min_size=1, max_size=40),  # mostly accepted
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(IDENTITY, min_size=1, max_size=4), st.booleans())
@example(["x'; Remove-Mailbox -Identity * ;'", "\u2018quoted\u2019@contoso.com"], False)
@example(["a\u201bb", "$(Get-Process)", "`"], True)
def test_identity_is_refused_or_round_trips(raw: list[str], license_reset: bool) -> None:
    try:
        accepted = [validate(value, f"argument {n}").value for n, value in enumerate(raw, 1)]
    except InputError as exc:
        assert str(exc).startswith("argument ")
        assert "refused" in str(exc)
        return
    unique = list(dict.fromkeys(accepted))
    script = generate(unique, license_reset=license_reset, generated_at=FIXED_TIME)
    check_script(script, unique, license_reset=license_reset)
    for original, value in zip(raw, accepted, strict=True):
        assert value == original.strip(" \t")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_validation_never_lets_a_control_character_through(value: str) -> None:
    try:
        ident = validate(value, "argument 1")
    except InputError:
        return
    assert ident.value
    assert all(ch not in ident.value for ch in "\r\n\x00\u0085\u2028\u2029\ufeff")
    categories = {unicodedata.category(ch) for ch in ident.value}
    assert not categories & {"Cc", "Cs", "Cn", "Co", "Zl", "Zp"}
    assert all(unicodedata.category(ch) != "Cf" or ch in "\u200c\u200d" for ch in ident.value)
    assert ident.value[0] not in "=+-@"
    assert ident.value == value.strip(" \t")
