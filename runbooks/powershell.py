"""Generated PowerShell: the one place values enter a script, and the one renderer.

:func:`quote` / :func:`quote_array` turn a value into a single-quoted literal. PowerShell
treats the ASCII apostrophe and the Unicode single quotes U+2018, U+2019, U+201A and
U+201B all as single-quote characters, so each is doubled inside the literal.

One character policy (:func:`unsafe_character`) for every generated script, refused
outright:

* control characters (``Cc``: CR, LF, NUL, ESC, U+0085...), the line and paragraph
  separators U+2028/U+2029 and lone surrogates: they could end a line or a literal;
* invisible formatting characters (``Cf``: bidirectional controls, zero-width space
  U+200B, soft hyphen U+00AD, word joiner U+2060, the BOM U+FEFF...): they hide text
  from the reviewer of the script or make it read differently from what it does. The
  joiners U+200C/U+200D, needed to spell words in some scripts, are allowed;
* unassigned and private-use code points (``Cn``/``Co``): no reviewer can see what they are.

:func:`render` fills a template's ``@@NAME@@`` markers in one pass and checks the whole
result against that policy; :func:`encode` gives the bytes to save: UTF-8 with a BOM
(Windows PowerShell 5.1 reads a .ps1 without BOM in the ANSI code page) and CRLF line ends.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from .errors import InputError

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
BOM = "\ufeff"
_DOUBLED = {ord(q): q * 2 for q in SINGLE_QUOTES}
#: The zero-width joiners some scripts need (Indic, Arabic, emoji sequences): the only ``Cf`` allowed.
ALLOWED_FORMAT = frozenset("\u200c\u200d")
#: Bidirectional controls: they make a line read differently from what it does ("Trojan Source").
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MARKER = re.compile(r"@@([A-Z_]+)@@")


def unsafe_character(value: str) -> str | None:
    """Why the first refused character of *value* is refused (with its position), or None."""
    if value.isprintable():  # fast path: no Cc/Cf/Cs/Co/Cn/Zl/Zp at all
        return None
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        where = f"U+{ord(char):04X} at position {index + 1}"
        if category in ("Cc", "Zl", "Zp", "Cs"):
            return f"control character {where}"
        if char in BIDI_CONTROLS:
            return f"bidirectional control character {where} (it makes the script read differently from what it does)"
        if category == "Cf" and char not in ALLOWED_FORMAT:
            return f"invisible formatting character {where}"
        if category in ("Cn", "Co"):
            return f"unassigned or private-use character {where}"
    return None


def quote(value: str, *, what: str = "value") -> str:
    """Return *value* as a single-quoted PowerShell string literal.

    Raises :class:`InputError` naming *what* when the value holds a refused character.
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


def render(template: str, values: Mapping[str, str]) -> str:
    """*template* with its ``@@NAME@@`` markers replaced in one pass (values are never rescanned).

    Line ends become LF (:func:`encode` writes CRLF). Every marker must have a value and
    every value must be used; the result must pass :func:`unsafe_character` line by line
    (tabs allowed): a violation is a bug in the caller or the template, so it raises
    :class:`ValueError`, not :class:`InputError` (values reach this point already quoted).
    """
    text = template.replace("\r\n", "\n")
    used: set[str] = set()

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"template marker @@{name}@@ has no value")
        used.add(name)
        return values[name]

    out = _MARKER.sub(value_of, text)
    unused = set(values) - used
    if unused:
        raise ValueError(f"values without a marker in the template: {sorted(unused)}")
    for number, line in enumerate(out.split("\n"), start=1):
        if not line.isprintable():
            problem = unsafe_character(line.replace("\t", " "))
            if problem is not None:
                raise ValueError(f"generated script line {number}: {problem}")
    return out


def encode(script: str) -> bytes:
    """The bytes to save: UTF-8 with BOM and CRLF line ends, as Windows tools expect."""
    text = script[len(BOM) :] if script.startswith(BOM) else script
    return (BOM + text.replace("\r\n", "\n").replace("\n", "\r\n")).encode("utf-8")
