"""Identities for the clear-previous-mailbox script: validation and CSV reading.

Accepted (the policy, also in ``runbooks/docs/exchange-mailbox.md``):

* a UPN or e-mail address (``jane.doe@contoso.com``), a GUID (the Entra object id,
  ``ExternalDirectoryObjectId``; braces allowed), an alias (``jdoe``), and anything else
  Exchange resolves as an identity (a display name, ``CONTOSO\\jdoe``, a distinguished
  name) as long as it can be written as a single-quoted PowerShell literal;
* surrounding spaces and tabs are removed (any other character at the edges is checked
  like the rest, so a trailing CR or LF is refused, not silently dropped);
* an identity given twice (exactly the same text) is written once. Values that differ
  only in case are kept: running the script for the same user twice is harmless (the
  second pass finds nothing to clear), dropping a distinct user silently would not be.

Refused (exit 3, nothing written): empty values; every character the policy of
:func:`runbooks.powershell.unsafe_character` refuses in any generated script (control
characters such as CR, LF, NUL, U+0085, U+2028, U+2029; invisible formatting characters
such as bidi overrides, zero-width space, soft hyphen, word joiner, BOM, with the joiners
U+200C/U+200D allowed; unassigned and private-use code points); values starting with
``=``, ``+``, ``-`` or ``@`` (not a valid identity, and a formula when the result CSV is
opened in a spreadsheet); values longer than :data:`MAX_LENGTH` characters; and what the
cmdlets would treat as a search rather than one identity: the wildcard ``*`` anywhere
(``*``, ``adm*``: ``Get-User -Identity`` matches every user it fits) and filter
expressions (``Department -eq 'IT'``: OPATH, which ``-Identity`` does not take).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import InputError
from ..powershell import unsafe_character

MAX_LENGTH = 1024
COLUMN = "identity"
_FORMULA_START = frozenset("=+-@")
_GUID = re.compile(r"\{?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?")
_UPN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ALIAS = re.compile(r"[A-Za-z0-9!#$%&'+\-/=?^_`{|}~.]+")
#: An OPATH comparison or logical operator between words (``Department -eq 'IT'``): a search, not an identity.
_FILTER = re.compile(
    r"(?i)\s-(?:eq|ne|like|notlike|match|notmatch|gt|ge|lt|le|contains|notcontains|and|or|not)(?:\s|$)"
)


class Identity(NamedTuple):
    """One validated identity and where it came from (``argument 2``, ``users.csv row 5``)."""

    value: str
    kind: str
    source: str


@dataclass
class IdentitySet:
    """The identities to write, in input order, and the duplicates that were dropped."""

    identities: list[Identity] = field(default_factory=list)
    duplicates: list[tuple[Identity, Identity]] = field(default_factory=list)

    @property
    def values(self) -> list[str]:
        """The identity strings, in order."""
        return [i.value for i in self.identities]

    def counts(self) -> dict[str, int]:
        """How many identities of each kind (upn, guid, alias, other)."""
        out: dict[str, int] = {}
        for ident in self.identities:
            out[ident.kind] = out.get(ident.kind, 0) + 1
        return out


def show(value: str, limit: int = 60) -> str:
    """*value* for an error message: escaped (no raw control characters) and shortened."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def classify(value: str) -> str:
    """The kind of identity: ``guid``, ``upn``, ``alias`` or ``other``."""
    if "@" in value:
        return "upn" if _UPN.fullmatch(value) else "other"
    if len(value) in (36, 38) and _GUID.fullmatch(value):
        return "guid"
    if _ALIAS.fullmatch(value):
        return "alias"
    return "other"


def problem_with(value: str) -> str | None:
    """Why *value* (already stripped) cannot be used as an identity, or None when it can."""
    if not value:
        return "empty identity"
    if not value.isprintable():  # fast path: no Cc, Cf, Cs, Co, Cn, Zl, Zp (nor Zs but space)
        problem = unsafe_character(value)
        if problem is not None:
            return problem
    return _edge_problem(value)


def _edge_problem(value: str) -> str | None:
    if value[0] in _FORMULA_START:
        return f"starts with {value[0]!r}, which no Exchange identity does"
    if len(value) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    if "*" in value:
        return (
            "wildcard '*': Get-User -Identity would match every user it fits; "
            "give the UPN, the object id or the alias of one user"
        )
    if _FILTER.search(value):
        return "a filter expression, not an identity; give the UPN, the object id or the alias of one user"
    return None


def validate(raw: str, source: str) -> Identity:
    """Validate one identity; :class:`InputError` names *source* and the reason."""
    value = raw.strip(" \t")
    problem = problem_with(value)
    if problem is not None:
        shown = "" if not value else f" {show(value)}"
        raise InputError(f"{source}: identity{shown} refused: {problem}")
    return Identity(value, classify(value), source)


def _utf16_without_bom(data: bytes) -> str | None:
    """``little-endian``/``big-endian`` when *data* looks like UTF-16 text without a BOM.

    Text in UTF-16 has a NUL in every other byte for ASCII characters (a header such as
    ``identity``); UTF-8 text never contains NUL. Looked at: the first 512 bytes.
    """
    head = data[:512]
    if len(head) < 4 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) >= len(odd) * 3 // 4 and even.count(0) == 0:
        return "little-endian"
    if even.count(0) >= len(even) * 3 // 4 and odd.count(0) == 0:
        return "big-endian"
    return None


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Windows PowerShell 5.1's Out-File / '>' and Excel's "Unicode text" write UTF-16.
        raise InputError(
            f"{name}: the file is UTF-16, not UTF-8; save it as UTF-8 "
            "(Export-Csv -Encoding UTF8, or Excel's 'CSV UTF-8')"
        )
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        raise InputError(
            f"{name}: the file is UTF-16 ({utf16}, without byte-order mark), not UTF-8; save it as UTF-8 "
            "(Export-Csv -Encoding UTF8, or Excel's 'CSV UTF-8')"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name} row {row}: not UTF-8 (byte 0x{data[exc.start]:02X} at offset {exc.start}); "
            "save the file as UTF-8 (with or without BOM)"
        ) from None


def _delimiter(header_line: str) -> str:
    """Comma, unless the header clearly uses semicolons or tabs (spreadsheet exports)."""
    if "," in header_line:
        return ","
    for candidate in (";", "\t"):
        if candidate in header_line:
            return candidate
    return ","


def parse_csv(data: bytes, name: str) -> list[Identity]:
    """Identities from CSV *data* (column ``identity``, other columns ignored).

    UTF-8 with or without BOM. The header row is row 1, so ``row N`` matches a
    spreadsheet's row numbers. A ``#TYPE ...`` line before the header (written by
    Windows PowerShell 5.1's ``Export-Csv``) is skipped, as ``Import-Csv`` does. Raises
    :class:`InputError` naming *name* and the row.
    """
    text = _decode(data, name)
    if not text.strip():
        raise InputError(f"{name}: the file is empty; expected a header row with a column {COLUMN!r}")
    lines = text.lstrip().splitlines()
    first_line = lines[1] if lines[0].startswith("#TYPE ") and len(lines) > 1 else lines[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line), strict=True)
    out: list[Identity] = []
    column: int | None = None
    row_number = 0
    try:
        for row in reader:
            row_number += 1
            if not "".join(row).strip():
                continue  # blank lines (and rows of empty cells) carry no identity
            if column is None and row[0].startswith("#TYPE "):
                continue  # Windows PowerShell 5.1 Export-Csv without -NoTypeInformation (Import-Csv skips it too)
            if column is None:
                names = [cell.strip().lstrip("\ufeff").lower() for cell in row]
                if names.count(COLUMN) != 1:
                    found = ", ".join(show(cell, 30) for cell in row[:10])
                    why = "more than one column" if names.count(COLUMN) > 1 else "no column"
                    raise InputError(f"{name} row {row_number}: {why} {COLUMN!r} in the header (found: {found})")
                column = names.index(COLUMN)
                continue
            cell = row[column] if column < len(row) else ""
            out.append(validate(cell, f"{name} row {row_number}"))
    except csv.Error as exc:
        raise InputError(f"{name} row {row_number + 1}: malformed CSV ({exc})") from None
    if column is None:  # only a '#TYPE' line, or only empty cells
        raise InputError(f"{name}: no header row; expected a header row with a column {COLUMN!r}")
    if not out:
        raise InputError(f"{name}: no identities (the file has a header but no rows)")
    return out


def read_csv(path: str | Path) -> list[Identity]:
    """Read identities from the CSV file *path*."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return parse_csv(data, name)


def collect(arguments: list[str], csv_rows: list[Identity] | None = None) -> IdentitySet:
    """Validate the command-line identities, append *csv_rows*, drop duplicates.

    Any refused identity raises :class:`InputError` (so nothing is written); so does
    having no identity at all.
    """
    found = [validate(arg, f"argument {n}") for n, arg in enumerate(arguments, start=1)]
    found.extend(csv_rows or [])
    if not found:
        raise InputError("no identities: give IDENTITY arguments or --csv FILE")
    result = IdentitySet()
    seen: dict[str, Identity] = {}
    for ident in found:
        key = ident.value
        if key in seen:
            result.duplicates.append((ident, seen[key]))
            continue
        seen[key] = ident
        result.identities.append(ident)
    return result
