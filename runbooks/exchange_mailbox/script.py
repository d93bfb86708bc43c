"""Generate the PowerShell script that clears previous-mailbox info (issue: exchange-mailbox).

Every value that enters the script goes through :func:`runbooks.powershell.quote` or
:func:`runbooks.powershell.quote_array`; the rest is the fixed text of :mod:`.template`.
The identities are one array of single-quoted literals at the top, processed by one loop.

The script is meant to be saved as UTF-8 *with* a byte-order mark (:func:`encode`):
Windows PowerShell 5.1 reads a .ps1 file without BOM in the ANSI code page, which would
corrupt non-ASCII names and could even turn the bytes of a UTF-8 character into a quote
character (U+0452 is ``D1 92``, and 0x92 is ``’`` in Windows-1252).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .. import __version__
from ..powershell import BOM, quote, quote_array, render
from ..powershell import encode as _encode
from . import template

__all__ = ["BOM", "encode", "generate"]
_COMMENT_SAFE = re.compile(r"[0-9A-Za-z.:+\- ]*")


def _comment_text(value: str) -> str:
    """A value for the comment-based help: only characters that cannot end a comment."""
    if not _COMMENT_SAFE.fullmatch(value):  # pragma: no cover - our own version/time only
        raise ValueError(f"unsafe text for a comment: {value!r}")
    return value


def generate(
    identities: list[str],
    *,
    license_reset: bool = False,
    generated_at: datetime | None = None,
    version: str | None = None,
) -> str:
    """The script text (without BOM) for *identities*, in order.

    Raises :class:`runbooks.errors.InputError` if a value cannot be quoted safely (the
    caller normally validated them already with :mod:`.identities`).
    """
    if not identities:
        raise ValueError("no identities")
    when = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    version = __version__ if version is None else version
    values = {
        "COUNT": str(len(identities)),
        "GENERATED_AT": _comment_text(when),
        "VERSION": _comment_text(version),
        "LICENSE_HELP": template.LICENSE_HELP if license_reset else template.NO_LICENSE_HELP,
        "LICENSE_PARAM_HELP": template.LICENSE_PARAM_HELP if license_reset else "",
        "EXTRA_PARAMS": template.EXTRA_PARAMS_LICENSE if license_reset else "",
        "IDENTITIES": quote_array(identities, what="identity"),
        "GENERATED_BY": quote(f"opsbook {version} at {when}", what="version"),
        "LICENSE_RESET": "$true" if license_reset else "$false",
        "CONNECT_GRAPH": template.CONNECT_GRAPH if license_reset else "",
    }
    parts = [
        template.HELP,
        template.PARAMS,
        template.FUNCTIONS,
        template.LICENSE_FUNCTIONS if license_reset else "",
        template.PROCESS,
        template.MAIN,
    ]
    return render("".join(parts), values)


def encode(script: str) -> bytes:
    """The bytes to save: UTF-8 with BOM and CRLF line ends (:func:`runbooks.powershell.encode`)."""
    return _encode(script)
