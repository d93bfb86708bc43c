"""Generate the PowerShell script that binds the auto-enrolled certificate to WinRM HTTPS.

Every option value that enters the script goes through :func:`runbooks.powershell.quote`
(strings) or is validated as an integer (the port); the rest is the fixed text of
:mod:`.bind_template`. The values appear once each, as the defaults of the param block,
so a reviewer sees them in one place and can override them when running the script.

Filling the markers, the character policy (control, invisible and bidirectional characters
refused) and the bytes to save (UTF-8 *with* BOM, CRLF) are those of every generated script:
:func:`runbooks.powershell.render` and :func:`runbooks.powershell.encode`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import __version__
from ..errors import InputError
from ..powershell import BOM, quote, render
from ..powershell import encode as _encode
from . import bind_template as template

__all__ = ["BOM", "DEFAULT_LOG_DIR", "DEFAULT_PORT", "ScriptOptions", "encode", "generate"]

DEFAULT_PORT = 5986
DEFAULT_LOG_DIR = "C:\\ProgramData\\opsbook\\winrm-https\\logs"
_COMMENT_SAFE = re.compile(r"[0-9A-Za-z.:+\- ]*")


@dataclass(frozen=True)
class ScriptOptions:
    """What the generated script is told (the ``opsbook winrm script`` options)."""

    root_ca: str
    port: int = DEFAULT_PORT
    log_dir: str = DEFAULT_LOG_DIR
    register_renewal_task: bool = False
    template: str = ""

    def validate(self) -> None:
        """Refuse values the script cannot carry safely (:class:`InputError`, exit 3)."""
        quote(self.root_ca, what="--root-ca")
        quote(self.log_dir, what="--log-dir")
        quote(self.template, what="--template")
        if not self.root_ca.strip():
            raise InputError("--root-ca must not be empty")
        if not self.log_dir.strip():
            raise InputError("--log-dir must not be empty")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise InputError(f"--port {self.port!r} must be an integer from 1 to 65535")


def _comment_text(value: str) -> str:
    """Our own version/time for the help comment: only characters that cannot end a comment."""
    if not _COMMENT_SAFE.fullmatch(value):  # pragma: no cover - our own values only
        raise ValueError(f"unsafe text for a comment: {value!r}")
    return value


def generate(opts: ScriptOptions, *, generated_at: datetime | None = None, version: str | None = None) -> str:
    """The script text (without BOM). Raises :class:`InputError` for an unsafe option value."""
    opts.validate()
    when = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    values = {
        "VERSION": _comment_text(__version__ if version is None else version),
        "GENERATED_AT": _comment_text(when),
        "ROOT_CA": quote(opts.root_ca, what="--root-ca"),
        "PORT": str(int(opts.port)),
        "LOG_DIR": quote(opts.log_dir, what="--log-dir"),
        "TEMPLATE": quote(opts.template, what="--template"),
        "REGISTER": "$true" if opts.register_renewal_task else "$false",
        "REGISTER_CALL": template.REGISTER_CALL if opts.register_renewal_task else "",
    }
    parts = [
        template.HELP,
        template.PARAMS,
        template.FUNCTIONS,
        template.RENEWAL_FUNCTION if opts.register_renewal_task else "",
        template.MAIN,
    ]
    return render("".join(parts), values)


def encode(script: str) -> bytes:
    """The bytes to save: UTF-8 with BOM and CRLF line ends (:func:`runbooks.powershell.encode`)."""
    return _encode(script)
