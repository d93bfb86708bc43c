"""Parse generated PowerShell with the real tree-sitter-powershell grammar (test helper)."""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter as ts
import tree_sitter_powershell as tsp

_PARSER = ts.Parser(ts.Language(tsp.language()))


@dataclass
class ParsedScript:
    """A parsed script: its tree, the ERROR/MISSING nodes and every string literal."""

    source: str
    tree: ts.Tree

    def _nodes(self) -> list[ts.Node]:
        out: list[ts.Node] = []
        stack = [self.tree.root_node]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    @property
    def errors(self) -> list[str]:
        """Text around every ERROR or MISSING node (empty for a clean parse)."""
        data = self.source.encode("utf-8")
        return [
            f"{n.type} at line {n.start_point[0] + 1}: {data[n.start_byte:n.end_byte][:80]!r}"
            for n in self._nodes()
            if n.type == "ERROR" or n.is_missing
        ]

    def string_literals(self) -> list[str]:
        """Source text of every string_literal node (verbatim or expandable)."""
        data = self.source.encode("utf-8")
        return [
            data[n.start_byte : n.end_byte].decode("utf-8")
            for n in self._nodes()
            if n.type == "string_literal"
        ]

    def command_names(self) -> list[str]:
        """Names of every command invoked (``Write-Host``, ``Set-User``...)."""
        data = self.source.encode("utf-8")
        return [
            data[n.start_byte : n.end_byte].decode("utf-8")
            for n in self._nodes()
            if n.type == "command_name"
        ]

    def commands(self) -> list[tuple[str, list[str]]]:
        """Every command invoked: its name and the names of the parameters given (without ``-``)."""
        data = self.source.encode("utf-8")
        out: list[tuple[str, list[str]]] = []
        for node in self._nodes():
            if node.type != "command":
                continue
            name = node.child_by_field_name("command_name") or next(
                (c for c in node.children if c.type == "command_name"), None
            )
            if name is None:
                continue
            params = [
                data[c.start_byte : c.end_byte].decode("utf-8").lstrip("-").rstrip(":")
                for c in self._walk_children(node)
                if c.type == "command_parameter"
            ]
            out.append((data[name.start_byte : name.end_byte].decode("utf-8"), params))
        return out

    @staticmethod
    def _walk_children(node: ts.Node) -> list[ts.Node]:
        """The parameters of *node* itself, not those of commands nested in its arguments."""
        out: list[ts.Node] = []
        for child in node.children:
            if child.type == "command_elements":
                out.extend(child.children)
        return out

    def verbatim_literals(self) -> list[str]:
        """Source text of every single-quoted (verbatim) string literal."""
        return [s for s in self.string_literals() if s[:1] in "'\u2018\u2019\u201a\u201b"]


def parse(source: str) -> ParsedScript:
    """Parse *source* with tree-sitter-powershell."""
    return ParsedScript(source, _PARSER.parse(source.encode("utf-8")))
