"""Secrets (passwords, client secrets) from environment variables or files, never flags."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError


class Secret:
    """A string that never shows itself in repr(), str() or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call only where it is handed to a library."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def secret_from(env_var: str | None = None, file: str | os.PathLike[str] | None = None) -> Secret | None:
    """Read a secret from *file* (first line, trailing newline stripped) or *env_var*.

    A file given but unreadable or empty is an :class:`InputError`. Returns None when
    neither source provides a value (the CLI may then prompt).
    """
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8-sig")  # PowerShell's Out-File -Encoding utf8 adds a BOM
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read secret file {path}: {exc.__class__.__name__}") from None
        value = text.splitlines()[0] if text.strip() else ""
        if not value:
            raise InputError(f"secret file {path} is empty")
        return Secret(value)
    if env_var:
        value = os.environ.get(env_var, "")
        if value:
            return Secret(value)
    return None
