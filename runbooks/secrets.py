"""Secrets (passwords, client secrets) from environment variables or files, never flags."""

from __future__ import annotations

import contextlib
import os
import re
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


def _idna_forms(value: str) -> set[str]:
    """*value* as a host name in its other spelling: ``xn--`` (IDNA 2003 and 2008) or Unicode."""
    forms: set[str] = set()
    if not value.isascii():
        with contextlib.suppress(UnicodeError):
            forms.add(value.encode("idna").decode("ascii"))  # IDNA 2003 (nameprep: lower case, NFKC)
        try:
            import idna  # IDNA 2008 + UTS 46, as the checks use it when installed

            forms.add(idna.encode(value, uts46=True).decode("ascii"))
        except (ImportError, UnicodeError, ValueError):
            pass
        labels = []  # label by label: a value that is not a whole valid name may still contain one
        for label in value.split("."):
            try:
                labels.append(label.encode("idna").decode("ascii") if label and not label.isascii() else label)
            except UnicodeError:
                labels.append(label)
        forms.add(".".join(labels))
    elif "xn--" in value.lower():
        with contextlib.suppress(UnicodeError):
            forms.add(value.encode("ascii").decode("idna"))
    forms.discard(value)
    return forms


class Scrubber:
    """Masks remembered secret values in any text shown to people (``***``).

    The one scrubber of opsbook's suites: a value is masked whatever its case (a host name is
    lower-cased by resolvers and certificates) and in its IDNA forms (``münchen`` and
    ``xn--mnchen-3ya``), so a secret used as a host name does not leak through its other spelling.
    """

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        """Remember *value* (values shorter than 2 characters cannot be masked usefully)."""
        if len(value) < 2:
            return
        for form in {value, *_idna_forms(value)}:
            if len(form) >= 2 and form not in self.secrets:
                self.secrets.add(form)
                self._pattern = None

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __call__(self, text: str) -> str:
        """*text* with every remembered value (any case, any IDNA form) replaced by ``***``."""
        if not self.secrets or not text:
            return text
        if self._pattern is None:
            alternatives = sorted(self.secrets, key=len, reverse=True)  # longest first: no partial masks
            self._pattern = re.compile("|".join(re.escape(s) for s in alternatives), re.IGNORECASE)
        return self._pattern.sub("***", text)
