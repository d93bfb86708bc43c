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
            f"{n.type} at line {n.start_point[0] + 1}: {data[n.start_byte : n.end_byte][:80]!r}"
            for n in self._nodes()
            if n.type == "ERROR" or n.is_missing
        ]

    def string_literals(self) -> list[str]:
        """Source text of every string_literal node (verbatim or expandable)."""
        data = self.source.encode("utf-8")
        return [data[n.start_byte : n.end_byte].decode("utf-8") for n in self._nodes() if n.type == "string_literal"]

    def command_names(self) -> list[str]:
        """Names of every command invoked (``Write-Host``, ``Set-User``...)."""
        data = self.source.encode("utf-8")
        return [data[n.start_byte : n.end_byte].decode("utf-8") for n in self._nodes() if n.type == "command_name"]

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

    def nodes_of(self, node_type: str) -> list[ts.Node]:
        """Every node of *node_type*, in source order."""
        return [n for n in self._nodes() if n.type == node_type]

    def text_of(self, node: ts.Node) -> str:
        """The source text of *node*."""
        return self.source.encode("utf-8")[node.start_byte : node.end_byte].decode("utf-8")

    def function(self, name: str) -> ParsedScript:
        """The script of function *name* (its definition parsed on its own); KeyError when absent."""
        for node in self.nodes_of("function_statement"):
            fname = next((c for c in node.children if c.type == "function_name"), None)
            if fname is not None and self.text_of(fname).lower() == name.lower():
                return parse(self.text_of(node))
        raise KeyError(f"no function {name}")

    def function_names(self) -> list[str]:
        """Names of every function defined, in source order."""
        out = []
        for node in self.nodes_of("function_statement"):
            fname = next((c for c in node.children if c.type == "function_name"), None)
            if fname is not None:
                out.append(self.text_of(fname))
        return out

    def parameters(self) -> dict[str, str]:
        """The first param block's parameters: ``{name: type}`` (``$`` stripped; type '' when none)."""
        blocks = self.nodes_of("param_block")
        if not blocks:
            return {}
        out: dict[str, str] = {}
        for param in self.nodes_of("script_parameter"):
            if not (blocks[0].start_byte <= param.start_byte < blocks[0].end_byte):
                continue
            var = next(c for c in param.children if c.type == "variable")
            types = [self.text_of(t) for t in _descendants(param) if t.type == "type_literal"]
            out[self.text_of(var).lstrip("$")] = types[-1].strip("[]") if types else ""
        return out

    def calls(self) -> list[tuple[str, str, int]]:
        """Every command in source order: (name, the whole command's text, start byte)."""
        out = []
        for node in self.nodes_of("command"):  # ``& netsh.exe ...`` names its command in a command_name_expr
            name = next((c for c in node.children if c.type in ("command_name", "command_name_expr")), None)
            if name is not None:
                out.append((self.text_of(name), self.text_of(node), node.start_byte))
        return sorted(out, key=lambda c: c[2])

    def first_call(self, name: str) -> int:
        """Start byte of the first call of command *name* (case-insensitive); -1 when never called."""
        return next((pos for n, _, pos in self.calls() if n.lower() == name.lower()), -1)

    def call_contexts(self, name: str) -> list[list[str]]:
        """For every call of command *name*: the source text of each enclosing if/try/catch, innermost first.

        Each entry is prefixed with its kind: ``if:<condition text>``, ``try:<try block>``,
        ``catch:<catch block>``, ``function:<name>``.
        """
        out = []
        for node in self.nodes_of("command"):
            cname = next((c for c in node.children if c.type in ("command_name", "command_name_expr")), None)
            if cname is None or self.text_of(cname).lower() != name.lower():
                continue
            chain: list[str] = []
            child, parent = node, node.parent
            while parent is not None:
                if parent.type == "elseif_clause" and child.type == "statement_block":
                    cond = next((c for c in parent.children if c.type == "pipeline"), None)
                    chain.append("if:" + (self.text_of(cond) if cond is not None else ""))
                elif parent.type == "if_statement":
                    cond = next((c for c in parent.children if c.type == "pipeline"), None)
                    # inside the condition itself, or in an else/elseif branch: not guarded by it
                    blocks = [c for c in parent.children if c.type == "statement_block"]
                    if blocks and blocks[0].start_byte <= child.start_byte < blocks[0].end_byte:
                        chain.append("if:" + (self.text_of(cond) if cond is not None else ""))
                elif parent.type == "try_statement" and child.type == "statement_block":
                    chain.append("try:" + self.text_of(child))
                elif parent.type == "catch_clause":
                    chain.append("catch:" + self.text_of(parent))
                elif parent.type == "function_statement":
                    fname = next((c for c in parent.children if c.type == "function_name"), None)
                    chain.append("function:" + (self.text_of(fname) if fname is not None else ""))
                child, parent = parent, parent.parent
            out.append(chain)
        return out


def _descendants(node: ts.Node) -> list[ts.Node]:
    out: list[ts.Node] = []
    stack = list(node.children)
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(n.children)
    return out


def parse(source: str) -> ParsedScript:
    """Parse *source* with tree-sitter-powershell."""
    return ParsedScript(source, _PARSER.parse(source.encode("utf-8")))
