"""Safe, bounded YAML loading that keeps every value's position (file, line, column).

Suite files come from people and from configuration management, so they are parsed
defensively: the file size is checked before parsing, the composer counts nodes and
aliases and limits nesting depth, and aliases are expanded under a budget, so an
anchor bomb ("billion laughs") or a huge file fails fast with a clear error instead of
exhausting memory. Only the YAML safe schema is used (no Python objects).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

#: Largest suite file read (bytes).
MAX_FILE_BYTES = 256 * 1024
#: Most alias references (``*name``) in one file.
MAX_ALIASES = 1024
#: Most nodes in one file after alias expansion.
MAX_NODES = 20_000
#: Deepest nesting of sequences/mappings.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Mark:
    """A position in a suite file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SuiteError(InputError):
    """A problem in a suite file, reported as ``file:line:col: message``."""

    def __init__(self, mark: Mark | None, message: str) -> None:
        self.mark = mark
        self.message = message
        super().__init__(f"{mark}: {message}" if mark else message)


class SuiteErrors(SuiteError):
    """Several independent problems (one per check entry), each with its own position.

    ``str()`` is the first with a count of the others; :attr:`errors` holds them all, for a
    caller that shows one line each.
    """

    def __init__(self, errors: list[SuiteError]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first.mark, first.message + more)


@dataclass
class YNode:
    """A YAML value with its position.

    ``value`` is a scalar (str, int, float, bool, None), a ``list[YNode]`` or a
    ``dict[str, YNode]``; for mappings ``keys`` holds the position of each key.
    """

    value: Any
    mark: Mark
    keys: dict[str, Mark] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``mapping``, ``list`` or the scalar's type name (for error messages)."""
        if isinstance(self.value, dict):
            return "mapping"
        if isinstance(self.value, list):
            return "list"
        if self.value is None:
            return "null"
        return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
            type(self.value), type(self.value).__name__
        )

    def plain(self) -> Any:
        """The value without positions (nested lists/dicts of scalars)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def _mark(file: str, yaml_mark: Any) -> Mark:
    if yaml_mark is None:
        return Mark(file, 0, 0)
    return Mark(file, yaml_mark.line + 1, yaml_mark.column + 1)


def _limited_loader_class() -> type:
    """A SafeLoader subclass whose composer counts nodes and aliases and bounds depth."""
    import yaml

    class LimitedLoader(yaml.SafeLoader):
        """SafeLoader that refuses anchor bombs and absurd nesting while composing."""

        def __init__(self, stream: str, file: str) -> None:
            super().__init__(stream)
            self.opsbook_file = file
            self.opsbook_nodes = 0
            self.opsbook_aliases = 0
            self.opsbook_depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML's parser is untyped
            where = _mark(self.opsbook_file, event.start_mark)
            if isinstance(event, yaml.AliasEvent):
                self.opsbook_aliases += 1
                if self.opsbook_aliases > MAX_ALIASES:
                    raise SuiteError(where, f"too many YAML aliases (more than {MAX_ALIASES})")
            self.opsbook_nodes += 1
            if self.opsbook_nodes > MAX_NODES:
                raise SuiteError(where, f"too many YAML nodes (more than {MAX_NODES})")
            self.opsbook_depth += 1
            try:
                if self.opsbook_depth > MAX_DEPTH:
                    raise SuiteError(where, f"YAML nested too deeply (more than {MAX_DEPTH} levels)")
                return super().compose_node(parent, index)
            finally:
                self.opsbook_depth -= 1

    return LimitedLoader


class _Expander:
    """Turns composed nodes into :class:`YNode` trees, expanding aliases under a budget."""

    def __init__(self, loader: Any, file: str) -> None:
        self.loader = loader
        self.file = file
        self.budget = MAX_NODES
        self.active: set[int] = set()

    def convert(self, node: Any, depth: int = 0) -> YNode:
        import yaml

        where = _mark(self.file, node.start_mark)
        self.budget -= 1
        if self.budget < 0:
            raise SuiteError(where, f"YAML aliases expand to more than {MAX_NODES} nodes (anchor bomb?)")
        if depth > MAX_DEPTH:
            raise SuiteError(where, f"YAML nested too deeply (more than {MAX_DEPTH} levels)")
        if id(node) in self.active:
            raise SuiteError(where, "recursive YAML alias")
        if isinstance(node, yaml.ScalarNode):
            return YNode(self._scalar(node), where)
        if node.tag not in ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"):
            raise SuiteError(where, f"invalid YAML: unsupported tag {node.tag!r}")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return YNode([self.convert(child, depth + 1) for child in node.value], where)
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, where, depth)
        finally:
            self.active.discard(id(node))
        raise SuiteError(where, f"unsupported YAML node {node.tag}")  # pragma: no cover

    def _scalar(self, node: Any) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception as exc:  # a bad !!int, an unknown tag ...
            problem = getattr(exc, "problem", None) or str(exc)
            raise SuiteError(_mark(self.file, node.start_mark), f"invalid YAML value: {problem}") from None
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return str(node.value)  # timestamps, binary ...: keep the text as written

    def _mapping(self, node: Any, where: Mark, depth: int) -> YNode:
        import yaml

        out: dict[str, YNode] = {}
        keys: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            key_mark = _mark(self.file, key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SuiteError(key_mark, "YAML merge keys ('<<') are not supported in suite files")
            if not isinstance(key_node, yaml.ScalarNode):
                raise SuiteError(key_mark, "mapping keys must be plain strings")
            key = self._scalar(key_node)
            if not isinstance(key, str):
                key = str(key_node.value)
            if key in out:
                raise SuiteError(key_mark, f"duplicate key {key!r} (first at line {keys[key].line})")
            keys[key] = key_mark
            out[key] = self.convert(value_node, depth + 1)
        return YNode(out, where, keys)


def read_limited(path: Path, display: str) -> str:
    """Read *path* as UTF-8, refusing files larger than :data:`MAX_FILE_BYTES` before parsing."""
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise SuiteError(None, f"{display}: file too large ({size} bytes; the limit is {MAX_FILE_BYTES})")
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except SuiteError:
        raise
    except OSError as exc:
        raise SuiteError(None, f"{display}: cannot read suite file: {exc.strerror or exc.__class__.__name__}") from None
    if len(data) > MAX_FILE_BYTES:  # grew while we looked, or a special file
        raise SuiteError(None, f"{display}: file too large (the limit is {MAX_FILE_BYTES} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(None, f"{display}: not UTF-8 text (byte {exc.start})") from None


def parse_yaml(text: str, display: str) -> YNode | None:
    """Parse one YAML document from *text*; None for an empty document.

    Syntax errors, anchor bombs and over-deep nesting raise :class:`SuiteError` with the
    parser's position.
    """
    import yaml

    loader = _limited_loader_class()(text, display)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _Expander(loader, display).convert(node)
    except SuiteError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = _mark(display, exc.problem_mark or exc.context_mark)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SuiteError(mark, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(None, f"{display}: invalid YAML: {exc}") from None
    except RecursionError:
        raise SuiteError(None, f"{display}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_file(path: Path, display: str | None = None) -> YNode | None:
    """Read and parse the suite file at *path* under the size and expansion limits."""
    shown = display or str(path)
    return parse_yaml(read_limited(path, shown), shown)
