"""Generate the PowerShell script that clears previous-mailbox info (issue: exchange-mailbox).

The PowerShell itself lives in package resources, ``templates/*.ps1``, read at run time:
``clear-previous-mailbox.ps1`` is the script with ``@@NAME@@`` markers, and
``license-fallback.ps1`` / ``no-license-fallback.ps1`` hold, as ``#region NAME`` blocks, the
fragments that differ with and without ``--license-reset``. No user data is in them.

Every value that enters the script goes through :func:`runbooks.powershell.quote` or
:func:`runbooks.powershell.quote_array`; filling, the character policy and the bytes to save
(UTF-8 with BOM, CRLF: :func:`encode`) are :mod:`runbooks.powershell`'s, shared with the
winrm script. The identities are one array of single-quoted literals at the top, processed
by one loop.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from importlib import resources

from .. import __version__
from ..powershell import BOM, quote, quote_array, render
from ..powershell import encode as _encode

__all__ = ["BOM", "encode", "generate", "template_text"]

MAIN = "clear-previous-mailbox.ps1"
LICENSE_FALLBACK = "license-fallback.ps1"
NO_LICENSE_FALLBACK = "no-license-fallback.ps1"
_COMMENT_SAFE = re.compile(r"[0-9A-Za-z.:+\- ]*")
_REGION = re.compile(r"(?ms)^#region ([A-Z_]+)\n(.*?)\n?^#endregion \1$")


@cache
def template_text(name: str) -> str:
    """The text of the package resource ``templates/NAME`` (LF line ends)."""
    path = resources.files(__package__).joinpath("templates", name)
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")


@cache
def _fragments(name: str) -> dict[str, str]:
    """The ``#region NAME`` ... ``#endregion NAME`` blocks of a fragment resource, by name."""
    return {m.group(1): m.group(2) for m in _REGION.finditer(template_text(name))}


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
    """The script text (without BOM, LF line ends) for *identities*, in order.

    Raises :class:`runbooks.errors.InputError` if a value cannot be quoted safely (the
    caller normally validated them already with :mod:`.identities`).
    """
    if not identities:
        raise ValueError("no identities")
    when = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    version = __version__ if version is None else version
    values = {
        **_fragments(LICENSE_FALLBACK if license_reset else NO_LICENSE_FALLBACK),
        "COUNT": str(len(identities)),
        "GENERATED_AT": _comment_text(when),
        "VERSION": _comment_text(version),
        "IDENTITIES": quote_array(identities, what="identity"),
        "GENERATED_BY": quote(f"opsbook {version} at {when}", what="version"),
        "LICENSE_RESET": "$true" if license_reset else "$false",
    }
    return render(template_text(MAIN), values)


def encode(script: str) -> bytes:
    """The bytes to save: UTF-8 with BOM and CRLF line ends (:func:`runbooks.powershell.encode`)."""
    return _encode(script)
