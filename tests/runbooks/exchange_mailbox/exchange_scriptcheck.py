"""Checks every test of the exchange-mailbox generator applies to a generated script.

The script is parsed with the real tree-sitter-powershell grammar. The grammar treats only
the ASCII apostrophe as a quote, while PowerShell also treats U+2018, U+2019, U+201A and
U+201B as quotes; so the doubling of those is asserted separately, and every literal is
also read back with :func:`runbooks.powershell.unquote`, which follows PowerShell's rule.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import tree_sitter as ts

from opsbook.runbooks.exchange_mailbox.script import BOM, generate
from opsbook.runbooks.powershell import unquote
from tests.powershell_grammar import ParsedScript, parse

QUOTES = "'\u2018\u2019\u201a\u201b"
FIXED_TIME = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
EXPECTED_COMMANDS_ALWAYS = {"Get-User", "Set-User", "Start-Transcript", "Export-Csv", "Connect-ExchangeOnline"}
EXPECTED_COMMANDS_LICENSE = {"Connect-MgGraph", "Get-MgUser", "Set-MgUserLicense"}

_baselines: dict[bool, ParsedScript] = {}


def doubled(value: str) -> str:
    """*value* with each of the five PowerShell quote characters doubled (independent of quote())."""
    return "".join(ch + ch if ch in QUOTES else ch for ch in value)


_encoded: dict[int, tuple[str, bytes]] = {}


def _text(parsed: ParsedScript, node: ts.Node) -> str:
    cached = _encoded.get(id(parsed))
    if cached is None or cached[0] is not parsed.source:
        cached = (parsed.source, parsed.source.encode("utf-8"))
        _encoded.clear()  # one slot: the script being checked
        _encoded[id(parsed)] = cached
    return cached[1][node.start_byte : node.end_byte].decode("utf-8")


def _walk(node: ts.Node) -> list[ts.Node]:
    out: list[ts.Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(current.children))
    return out


def identity_array(parsed: ParsedScript) -> tuple[list[str], list[str]]:
    """(the literals of the ``$Identities = @(...)`` array, the statements inside it).

    Fails unless there is exactly one assignment to ``$Identities``.
    """
    found = []
    for node in _walk(parsed.tree.root_node):
        if node.type == "assignment_expression":
            left = node.child_by_field_name("left") or node.children[0]
            if _text(parsed, left).strip().lower() == "$identities":
                found.append(node)
    assert len(found) == 1, f"expected one $Identities assignment, found {len(found)}"
    value = found[0].child_by_field_name("value")
    assert value is not None
    arrays = [n for n in _walk(value) if n.type == "array_expression"]
    assert arrays, "the $Identities value is not an array expression @(...)"
    body = arrays[0].child_by_field_name("statements")
    statements = [] if body is None else [_text(parsed, c) for c in body.children if c.is_named]
    literals = [_text(parsed, n) for n in _walk(value) if n.type == "string_literal"]
    return literals, statements


def baseline(license_reset: bool) -> ParsedScript:
    """The parsed script for one harmless identity (the template's own literals and commands)."""
    if license_reset not in _baselines:
        _baselines[license_reset] = parse(
            generate(["baseline@example.invalid"], license_reset=license_reset, generated_at=FIXED_TIME)
        )
    return _baselines[license_reset]


def _template_literals(parsed: ParsedScript, array_literals: list[str]) -> Counter[str]:
    everything = Counter(parsed.verbatim_literals())
    data = Counter(array_literals)
    assert not data - everything
    rest = everything - data
    generated_by = [s for s in rest if s.startswith("'opsbook ")]
    assert len(generated_by) == 1, generated_by
    del rest[generated_by[0]]
    return rest


def check_script(script: str, identities: list[str], *, license_reset: bool = False) -> ParsedScript:
    """Assert everything the issue demands of a generated script for *identities* (in order)."""
    if script.startswith(BOM):
        script = script[len(BOM) :]
    assert BOM not in script
    if "\r\n" in script:  # as saved (encode): CRLF everywhere, no bare LF or CR
        assert "\n" not in script.replace("\r\n", "") and "\r" not in script.replace("\r\n", "")
        script = script.replace("\r\n", "\n")
    parsed = parse(script)
    assert parsed.errors == [], parsed.errors[:5]

    literals, statements = identity_array(parsed)
    # one verbatim literal per identity, nothing else inside the array, in input order
    assert statements == literals, "something other than plain literals inside $Identities"
    assert len(literals) == len(identities)
    for literal, identity in zip(literals, identities, strict=True):
        assert literal == "'" + doubled(identity) + "'", (literal, identity)
        assert unquote(literal) == identity
        for q in QUOTES[1:]:
            assert literal.count(q) == 2 * identity.count(q)

    # the identities appear nowhere else as literals: the rest is exactly the template's
    base = baseline(license_reset)
    base_literals, _ = identity_array(base)
    assert _template_literals(parsed, literals) == _template_literals(base, base_literals)
    # and no identity smuggled in a command
    assert set(parsed.command_names()) == set(base.command_names())
    expected = EXPECTED_COMMANDS_ALWAYS | (EXPECTED_COMMANDS_LICENSE if license_reset else set())
    assert expected <= set(parsed.command_names())
    if not license_reset:
        assert not EXPECTED_COMMANDS_LICENSE & set(parsed.command_names())
    return parsed
