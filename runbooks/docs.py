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

#: Other names a runbook answers to: the command that runs it (`opsbook winrm ...`).
ALIASES: dict[str, str] = {
    "winrm": "winrm-https",
    "exchange": "exchange-mailbox",
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


def canonical_name(name: str) -> str:
    """The runbook *name* stands for (itself or an alias); unknown names are an :class:`InputError`."""
    if name in RUNBOOKS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    aliases = {target: alias for alias, target in ALIASES.items()}
    choices = ", ".join(f"{n} (or {aliases[n]})" if n in aliases else n for n in RUNBOOKS)
    raise InputError(f"unknown runbook {name!r}; choose from: {choices}")


def complete_name(incomplete: str) -> list[tuple[str, str]]:
    """(name, description) of the runbooks whose name starts with *incomplete* (shell completion)."""
    return [(name, text) for name, text in RUNBOOKS.items() if name.startswith(incomplete)]


def load(name: str) -> RunbookDoc:
    """The document of runbook *name* or of its alias; unknown names are an :class:`InputError`."""
    name = canonical_name(name)
    from importlib import resources

    # This package's own data (opsbook.runbooks), whatever the current directory is.
    text = resources.files(__package__).joinpath("docs", f"{name}.md").read_text(encoding="utf-8")
    return RunbookDoc(name, RUNBOOKS[name], text)
