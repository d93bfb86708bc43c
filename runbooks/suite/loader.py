"""Loading a suite file and its includes, and validating their structure.

Everything that can be checked without knowing the commands' options is checked here:
the top-level keys, ``version: 1``, ``include`` (relative to the including file, no
cycles), the entries' keys and types, known runbooks and unique names. Every error
points at ``file:line:col``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .model import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE, RUNBOOKS, SUITE_DEFAULTS, Entry, Setting, Suite, When
from .yamlsafe import Mark, SuiteError, YNode, load_file

TOP_KEYS = ("version", "env", "defaults", "include", "checks")
ENTRY_KEYS = ("name", "runbook", "with", "when", "optional", "deadline", "description")
WHEN_KEYS = ("path_exists", "any_path_exists", "env_set")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:/+-]{0,99}$")
#: Most files in one suite (the top file and everything it includes).
MAX_FILES = 32
#: Most entries in one suite.
MAX_ENTRIES = 1000
MAX_CONCURRENCY = 256


def _expect(node: YNode, kinds: tuple[str, ...], what: str) -> None:
    if node.kind not in kinds:
        raise SuiteError(node.mark, f"{what} must be a {' or '.join(kinds)}, not a {node.kind}")


def _unknown_key(keys: dict[str, Mark], allowed: tuple[str, ...], where: str, hint: str = "") -> None:
    for key, mark in keys.items():
        if key not in allowed and not key.startswith("x-"):
            raise SuiteError(mark, f"unknown key {key!r} in {where} (expected: {', '.join(allowed)}){hint}")


def _positive_number(node: YNode, what: str, *, integer: bool = False, maximum: float | None = None) -> float:
    value = node.value
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or value <= 0 or (maximum is not None and value > maximum):
        kind = "a positive integer" if integer else "a positive number of seconds"
        limit = f" up to {maximum:g}" if maximum is not None else ""
        raise SuiteError(node.mark, f"{what} must be {kind}{limit}, not {node.kind} {value!r}")
    return float(value)


def _str_list(node: YNode, what: str) -> list[str]:
    items = node.value if isinstance(node.value, list) else [node]
    out: list[str] = []
    for item in items:
        if not isinstance(item.value, str) or not item.value:
            raise SuiteError(item.mark, f"{what} must be a non-empty string or a list of them, not {item.kind}")
        out.append(item.value)
    return out


def _check_value(node: YNode, what: str) -> None:
    """Option values are scalars or lists of scalars (repeatable options)."""
    if isinstance(node.value, dict):
        raise SuiteError(node.mark, f"{what} must be a value or a list of values, not a mapping")
    if isinstance(node.value, list):
        for item in node.value:
            if isinstance(item.value, dict | list):
                raise SuiteError(item.mark, f"{what}: list items must be plain values, not a {item.kind}")
            if item.value is None:
                raise SuiteError(item.mark, f"{what}: list items must not be empty")


def _settings(node: YNode, where: str) -> dict[str, Setting]:
    _expect(node, ("mapping",), where)
    out: dict[str, Setting] = {}
    for key, value in node.value.items():
        if key.startswith("x-"):
            continue
        if key.startswith("-"):
            raise SuiteError(node.keys[key], f"{where}: write option names without dashes ({key.lstrip('-')!r})")
        _check_value(value, f"{where}.{key}")
        out[key] = Setting(node.keys[key], value)
    return out


def _env(node: YNode) -> dict[str, Mark]:
    """The ``env:`` list: the environment variables the file's ``${NAME}`` references may read."""
    items = node.value if isinstance(node.value, list) else None
    if items is None:
        raise SuiteError(node.mark, f"env must be a list of environment variable names, not a {node.kind}")
    names: dict[str, Mark] = {}
    for item in items:
        if not isinstance(item.value, str) or not ENV_NAME_RE.fullmatch(item.value):
            shown = item.value if isinstance(item.value, str) else item.kind
            raise SuiteError(item.mark, f"env: {shown!r} is not an environment variable name (letters, digits, _)")
        if item.value in names:
            raise SuiteError(item.mark, f"env: {item.value} is listed twice (first at line {names[item.value].line})")
        names[item.value] = item.mark
    return names


def _when(node: YNode) -> When:
    _expect(node, ("mapping",), "when")
    _unknown_key(node.keys, WHEN_KEYS, "when")
    when = When(mark=node.mark)
    folder = os.path.dirname(os.path.abspath(node.mark.file))  # relative to the suite file, as include: is
    for key in ("path_exists", "any_path_exists"):
        if key in node.value:
            setattr(
                when,
                key,
                [
                    os.path.normpath(os.path.join(folder, os.path.expanduser(p)))
                    for p in _str_list(node.value[key], f"when.{key}")
                ],
            )
    if "env_set" in node.value:
        names = _str_list(node.value["env_set"], "when.env_set")
        for name in names:
            if not ENV_NAME_RE.fullmatch(name):
                raise SuiteError(node.value["env_set"].mark, f"when.env_set: {name!r} is not a variable name")
        when.env_set = names
    return when


def _entry(node: YNode, defaults: dict[str, Setting]) -> Entry:
    _expect(node, ("mapping",), "each item of checks")
    _unknown_key(node.keys, ENTRY_KEYS, "a check", "; the command's options go under 'with:'")
    fields = node.value
    for required in ("name", "runbook"):
        if required not in fields:
            raise SuiteError(node.mark, f"check has no {required!r}")
    name_node = fields["name"]
    if not isinstance(name_node.value, str) or not NAME_RE.match(name_node.value):
        hint = ""
        if not isinstance(name_node.value, str) and name_node.value is not None:
            # `name: off`, `name: no`, `name: 1.10` are YAML booleans/numbers: quote them
            hint = f"; YAML read a {name_node.kind} here: quote it"
        raise SuiteError(
            name_node.mark,
            "name must be a string of letters, digits and . _ - @ : / + (up to 100, starting with a letter or digit)"
            + hint,
        )
    runbook_node = fields["runbook"]
    if runbook_node.value not in RUNBOOKS:
        raise SuiteError(
            runbook_node.mark,
            f"unknown runbook {runbook_node.value!r} (expected one of: {', '.join(RUNBOOKS)})",
        )
    entry = Entry(name=name_node.value, runbook=runbook_node.value, mark=node.mark, defaults=dict(defaults))
    if "with" in fields and fields["with"].value is not None:
        entry.options = _settings(fields["with"], "with")
    if "when" in fields:
        entry.when = _when(fields["when"])
    if "deadline" in fields:
        entry.deadline = _positive_number(fields["deadline"], "deadline", maximum=86400)
    if "optional" in fields:
        if not isinstance(fields["optional"].value, bool):
            raise SuiteError(fields["optional"].mark, f"optional must be true or false, not {fields['optional'].kind}")
        entry.optional = fields["optional"].value
    if "description" in fields:
        _expect(fields["description"], ("string",), "description")
        entry.description = fields["description"].value
    return entry


def _read_suite_file(path: Path, display: str) -> dict[str, YNode]:
    """Parse one suite file and check its frame: a mapping of known top-level keys with ``version: 1``."""
    root = load_file(path, display)
    if root is None:
        raise SuiteError(Mark(display, 1, 1), "empty suite file (expected 'version: 1' and 'checks:')")
    _expect(root, ("mapping",), "a suite file")
    _unknown_key(root.keys, TOP_KEYS, "the suite file")
    doc: dict[str, YNode] = root.value
    if "version" not in doc:
        raise SuiteError(root.mark, "missing 'version: 1'")
    version = doc["version"]
    if isinstance(version.value, bool) or version.value != 1:
        raise SuiteError(version.mark, f"unsupported suite version {version.value!r} (this opsbook reads version 1)")
    return doc


class _Loader:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.names: dict[str, Mark] = {}
        self.files: list[str] = []
        self.seen: set[str] = set()
        self.concurrency = DEFAULT_CONCURRENCY
        self.deadline = DEFAULT_DEADLINE
        self.env: list[str] = []

    def load(self, path: Path, display: str, stack: list[str], inherited: dict[str, Setting], top: bool) -> None:
        real = os.path.realpath(path)
        self.seen.add(real)
        self.files.append(display)
        if len(self.files) > MAX_FILES:
            raise SuiteError(None, f"{display}: too many suite files (more than {MAX_FILES} with includes)")
        doc = _read_suite_file(path, display)
        if "env" in doc and doc["env"].value is not None:
            self.env.extend(n for n in _env(doc["env"]) if n not in self.env)
        defaults = dict(inherited)
        if "defaults" in doc and doc["defaults"].value is not None:
            defaults.update(self._defaults(doc["defaults"], top))
        if "include" in doc and doc["include"].value is not None:
            self._includes(doc["include"], path, display, [*stack, real], defaults)
        if "checks" in doc and doc["checks"].value is not None:
            self._checks(doc["checks"], defaults)

    def _defaults(self, node: YNode, top: bool) -> dict[str, Setting]:
        """The file's ``defaults:`` for its checks; the suite-wide ones (top file only) set the loader's own."""
        own = _settings(node, "defaults")
        for key in SUITE_DEFAULTS:
            if key in own and not top:
                raise SuiteError(own[key].key_mark, f"defaults.{key} is a suite-wide setting: set it in the top file")
        if "concurrency" in own:
            self.concurrency = int(
                _positive_number(
                    own.pop("concurrency").node, "defaults.concurrency", integer=True, maximum=MAX_CONCURRENCY
                )
            )
        if "deadline" in own:
            self.deadline = _positive_number(own.pop("deadline").node, "defaults.deadline", maximum=86400)
        return own

    def _includes(
        self, include: YNode, path: Path, display: str, stack: list[str], defaults: dict[str, Setting]
    ) -> None:
        """Load each file of ``include:`` (one name or a list), with this file's defaults.

        *stack* ends with this file: the chain of includes that led here, for cycle detection.
        """
        items = include.value if isinstance(include.value, list) else [include]
        for item in items:
            if not isinstance(item.value, str) or not item.value:
                raise SuiteError(item.mark, f"include must list file names, not a {item.kind}")
            self._include(item, path, display, stack, defaults)

    def _checks(self, checks: YNode, defaults: dict[str, Setting]) -> None:
        """Add the entries of ``checks:``: names unique across the suite, at most MAX_ENTRIES in all."""
        _expect(checks, ("list",), "checks")
        for item in checks.value:
            entry = _entry(item, defaults)
            name_mark = item.value["name"].mark
            if entry.name in self.names:
                first = self.names[entry.name]
                raise SuiteError(name_mark, f"duplicate check name {entry.name!r} (first defined at {first})")
            self.names[entry.name] = name_mark
            self.entries.append(entry)
            if len(self.entries) > MAX_ENTRIES:
                raise SuiteError(name_mark, f"too many checks (more than {MAX_ENTRIES})")

    def _include(self, item: YNode, path: Path, display: str, stack: list[str], defaults: dict[str, Setting]) -> None:
        text = os.path.expanduser(item.value)
        target = Path(text) if os.path.isabs(text) else path.parent / text
        shown = text if os.path.isabs(text) else os.path.normpath(os.path.join(os.path.dirname(display), text))
        real = os.path.realpath(target)
        if real in stack:
            chain = " -> ".join([*(os.path.basename(p) for p in stack[stack.index(real) :]), os.path.basename(real)])
            raise SuiteError(item.mark, f"include cycle: {chain}")
        if not target.is_file():
            raise SuiteError(item.mark, f"included file {shown} does not exist or is not a file")
        if real in self.seen:  # included twice through different paths (a diamond): read once
            return
        self.load(target, shown, stack, defaults, top=False)


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """Load and structurally validate the suite at *path* and everything it includes.

    Raises :class:`~runbooks.suite.yamlsafe.SuiteError` (an ``InputError``) with
    ``file:line:col`` on the first problem found.
    """
    display = os.fspath(path)
    loader = _Loader()
    if not Path(path).is_file():
        raise SuiteError(None, f"{display}: suite file does not exist or is not a file")
    loader.load(Path(path), display, [], {}, top=True)
    if not loader.entries:
        raise SuiteError(Mark(display, 1, 1), "the suite has no checks")
    return Suite(
        path=display,
        entries=loader.entries,
        files=loader.files,
        concurrency=loader.concurrency,
        deadline=loader.deadline,
        env=loader.env,
    )
