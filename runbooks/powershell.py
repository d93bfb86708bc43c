"""Safe PowerShell literals: the one place any value enters a generated script.

PowerShell treats the ASCII apostrophe and the Unicode single quotes U+2018, U+2019,
U+201A and U+201B all as single-quote characters, so each must be doubled inside a
single-quoted string. Control characters (and the Unicode line/paragraph separators)
are refused outright: they could end a line or hide text from a reviewer.
"""

from __future__ import annotations

import unicodedata

from .errors import InputError

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
_DOUBLED = {ord(q): q * 2 for q in SINGLE_QUOTES}


def unsafe_character(value: str) -> str | None:
    """Return a description of the first character of *value* that is refused, or None."""
    if value.isprintable():  # fast path: no Cc/Cf/Cs/Co/Cn/Zl/Zp (so no U+0085, U+FEFF) at all
        return None
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp", "Cs") or char in "\u0085\ufeff":
            return f"control character U+{ord(char):04X} at position {index + 1}"
    return None


def quote(value: str, *, what: str = "value") -> str:
    """Return *value* as a single-quoted PowerShell string literal.

    Raises :class:`InputError` naming *what* when the value holds a control character.
    """
    problem = unsafe_character(value)
    if problem is not None:
        raise InputError(f"{what} {value!r} refused: {problem}")
    escaped = value.translate(_DOUBLED)
    return f"'{escaped}'"


def unquote(literal: str) -> str:
    """Inverse of :func:`quote` for a single-quoted literal (used by tests and audits)."""
    if len(literal) < 2 or literal[0] not in SINGLE_QUOTES or literal[-1] not in SINGLE_QUOTES:
        raise ValueError(f"not a single-quoted literal: {literal!r}")
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in SINGLE_QUOTES:
            if i + 1 < len(body) and body[i + 1] in SINGLE_QUOTES:
                out.append(ch)
                i += 2
                continue
            raise ValueError(f"unescaped quote in literal: {literal!r}")
        out.append(ch)
        i += 1
    return "".join(out)


def quote_array(values: list[str], *, what: str = "value", indent: str = "    ") -> str:
    """A PowerShell array expression ``@(\n    'a'\n    'b'\n)`` of quoted literals."""
    if not values:
        return "@()"
    lines = [f"{indent}{quote(v, what=what)}" for v in values]
    return "@(\n" + "\n".join(lines) + "\n)"
