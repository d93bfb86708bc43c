"""The loaded suite: its entries (one per ``checks:`` item) and suite-wide settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .yamlsafe import Mark, YNode

#: The runbooks a suite entry may name, and the command each one runs.
RUNBOOKS: dict[str, str] = {
    "winrm": "winrm check",
    "adsync": "adsync check",
    "dns": "dns check",
    "docker-root": "docker-root status",
}

#: Suite-level settings that may appear under ``defaults:`` (not passed to commands).
SUITE_DEFAULTS = ("concurrency", "deadline")

#: Entries run at once unless the suite says otherwise: they mostly wait on the network, each
#: bounded by its own timeouts, so a slow entry should not hold up many others.
DEFAULT_CONCURRENCY = 16
#: Wall-clock cap for one entry, whatever its own timeouts (seconds).
DEFAULT_DEADLINE = 300.0


@dataclass(frozen=True)
class Setting:
    """One option value as written: where its key is and the value node."""

    key_mark: Mark
    node: YNode


@dataclass
class When:
    """Conditions under which an entry runs; all must hold (else the entry is skipped)."""

    path_exists: list[str] = field(default_factory=list)
    #: At least one of these paths exists.
    any_path_exists: list[str] = field(default_factory=list)
    env_set: list[str] = field(default_factory=list)
    mark: Mark | None = None


@dataclass
class Entry:
    """One ``checks:`` item: a named run of one check command with its options."""

    name: str
    runbook: str
    mark: Mark
    options: dict[str, Setting] = field(default_factory=dict)
    #: Cascaded ``defaults:`` of the file chain that included this entry.
    defaults: dict[str, Setting] = field(default_factory=dict)
    when: When | None = None
    deadline: float | None = None
    description: str = ""
    #: Skip the entry (instead of failing the suite) when a reference has no value here.
    optional: bool = False

    @property
    def command(self) -> str:
        """The opsbook command this entry runs (``adsync check`` ...)."""
        return RUNBOOKS[self.runbook]


@dataclass
class Suite:
    """A validated suite: entries from the file and its includes, in file order."""

    path: str
    entries: list[Entry]
    files: list[str]
    concurrency: int = DEFAULT_CONCURRENCY
    deadline: float = DEFAULT_DEADLINE
    #: Environment variables the suite's files declare (``env:``) besides ``OPSBOOK_*``.
    env: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def entry(self, name: str) -> Entry:
        """The entry called *name* (KeyError when absent)."""
        for item in self.entries:
            if item.name == name:
                return item
        raise KeyError(name)
