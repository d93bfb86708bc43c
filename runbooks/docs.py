"""The runbook documents shipped with the package (Markdown in ``runbooks/docs``)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

#: Runbook names, in the order they are listed, with a one-line description.
RUNBOOKS: dict[str, str] = {
    "docker-root": "Move Docker's data-root to another disk without losing images, containers or volumes.",
    "winrm-https": "WinRM over HTTPS with an auto-enrolled AD CS certificate that survives renewal.",
    "adsync": "Azure AD Connect cannot reach AD: per-DNS-server brown-outs, DC ports, sync freshness.",
    "exchange-mailbox": "Clear a user's previous cloud mailbox info so a hybrid move can proceed.",
}


@dataclass(frozen=True)
class RunbookDoc:
    """A runbook's name, one-line description and Markdown text."""

    name: str
    description: str
    text: str


def list_runbooks() -> list[tuple[str, str]]:
    """(name, description) for every runbook."""
    return list(RUNBOOKS.items())


def load(name: str) -> RunbookDoc:
    """The document of runbook *name*; unknown names are an :class:`InputError`."""
    if name not in RUNBOOKS:
        raise InputError(f"unknown runbook {name!r}; choose from: {', '.join(RUNBOOKS)}")
    from importlib import resources

    text = resources.files("runbooks").joinpath("docs", f"{name}.md").read_text(encoding="utf-8")
    return RunbookDoc(name, RUNBOOKS[name], text)
