"""``${...}`` references in option values, resolved when the suite runs.

Grammar (inside any string value under ``with:`` or ``defaults:``):

- ``${NAME}``: the environment variable NAME; unset (or empty) is an error before
  anything runs. NAME must be declared in the suite's top-level ``env:`` list or start with
  ``OPSBOOK_``: a suite cannot read whatever the environment of cron or systemd holds.
- ``${NAME:-fallback}``: NAME, or *fallback* when unset or empty; *fallback* may itself
  contain references (``${OPSBOOK_DOMAIN:-${host.domain}}``).
- ``${host.domain}``, ``${host.nameservers}``, ``${host.hostname}``, ``${host.fqdn}``: facts about this host
  read from resolv.conf (``OPSBOOK_RESOLV_CONF`` names another file). A value that is
  exactly ``${host.nameservers}`` becomes a list (one item per server).
- ``$${`` is a literal ``${``.

Values read from the environment are treated as secrets: they are wrapped in
:class:`~runbooks.secrets.Secret` and masked in every error message (see :class:`Scrubber`).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Collection
from typing import Any

from ..secrets import Scrubber, Secret
from .yamlsafe import Mark, SuiteError, YNode

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FACTS = ("host.domain", "host.nameservers", "host.hostname", "host.fqdn")
MAX_REF_DEPTH = 8

#: A resolved option value: a scalar, a Secret (from the environment) or a list of them.
Value = Any


class UnresolvedReference(SuiteError):
    """A ``${...}`` that has no value here (unset variable, unknown host fact)."""


def reveal(value: Value) -> Any:
    """*value* with secrets revealed (only where it is handed to the command)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _resolv_conf() -> str:
    return os.environ.get("OPSBOOK_RESOLV_CONF", "/etc/resolv.conf")


def host_facts(resolv_conf: str | None = None) -> dict[str, Callable[[], Any]]:
    """Lazy host facts: each is read only when a suite refers to it."""
    path = resolv_conf or _resolv_conf()

    def lines() -> list[list[str]]:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read(64 * 1024)
        except OSError as exc:
            raise LookupError(f"cannot read {path}: {exc.strerror}") from None
        return [line.split() for line in text.splitlines() if line.split() and line.split()[0][0] not in "#;"]

    def nameservers() -> list[str]:
        found = [words[1] for words in lines() if words[0] == "nameserver" and len(words) > 1]
        if not found:
            raise LookupError(f"no 'nameserver' line in {path}")
        return [f"[{ns}]" if ":" in ns else ns for ns in found]

    def domain() -> str:
        for key in ("domain", "search"):
            for words in lines():
                if words[0] == key and len(words) > 1 and words[1] != ".":
                    return words[1].rstrip(".")
        name = socket.gethostname()
        if "." in name:
            return name.split(".", 1)[1]
        raise LookupError(f"no 'domain' or 'search' line in {path} and the host name has no domain")

    def fqdn() -> str:
        # No DNS lookup (socket.getfqdn would ask the very resolvers being checked): the host
        # name, with the resolv.conf domain when it has none.
        name = socket.gethostname()
        if "." in name:
            return name
        try:
            return f"{name}.{domain()}"
        except LookupError:
            return name

    return {
        "host.domain": domain,
        "host.nameservers": nameservers,
        "host.hostname": socket.gethostname,
        "host.fqdn": fqdn,
    }


#: Variables a suite may read without declaring them under ``env:``.
ENV_PREFIX = "OPSBOOK_"


def env_allowed(name: str, declared: Collection[str]) -> bool:
    """Whether a suite may read the environment variable *name*."""
    return name.startswith(ENV_PREFIX) or name in declared


class Resolver:
    """Resolves references in option values, remembering secrets for the scrubber.

    *allowed_env* are the variables the suite declares (``env:``); ``OPSBOOK_*`` are always allowed.
    """

    def __init__(
        self,
        environ: dict[str, str] | None = None,
        facts: dict[str, Callable[[], Any]] | None = None,
        allowed_env: Collection[str] = (),
    ):
        self.environ = dict(os.environ) if environ is None else environ
        self.allowed_env = frozenset(allowed_env)
        self.facts = host_facts() if facts is None else facts
        self.scrub = Scrubber()
        self._fact_cache: dict[str, Any] = {}

    # -- public
    def resolve(self, node: YNode) -> Value:
        """The value of *node* (a scalar or list node) with references resolved."""
        if isinstance(node.value, list):
            out: list[Any] = []
            for item in node.value:
                value = self.resolve(item)
                out.extend(value if isinstance(value, list) else [value])
            return out
        if isinstance(node.value, str) and "$" in node.value:
            return self._text(node.value, node.mark, 0)
        return node.value

    # -- internals
    def _fact(self, name: str, mark: Mark) -> Any:
        if name not in self._fact_cache:
            try:
                self._fact_cache[name] = self.facts[name]()
            except LookupError as exc:
                raise UnresolvedReference(mark, f"${{{name}}}: {exc}") from None
        return self._fact_cache[name]

    def _lookup(self, expr: str, mark: Mark, depth: int) -> Value | None:
        name, sep, fallback = expr.partition(":-")
        if name in FACTS:
            if sep:
                raise SuiteError(mark, f"${{{name}}} takes no fallback")
            return self._fact(name, mark)
        if name.startswith("host."):
            raise SuiteError(mark, f"unknown host fact ${{{name}}} (known: {', '.join(FACTS)})")
        if not ENV_NAME.fullmatch(name):
            raise SuiteError(mark, f"invalid reference ${{{expr}}}: expected ${{NAME}} or ${{NAME:-fallback}}")
        if not env_allowed(name, self.allowed_env):
            raise SuiteError(
                mark,
                f"${{{name}}}: the suite does not declare {name}; list it under the top-level 'env:' "
                f"(or use a name starting with {ENV_PREFIX})",
            )
        value = self.environ.get(name, "")
        if value:
            self.scrub.add(value)
            return Secret(value)
        if sep:
            return self._text(fallback, mark, depth + 1)
        raise UnresolvedReference(mark, f"environment variable {name} is not set (referenced as ${{{name}}})")

    def _text(self, text: str, mark: Mark, depth: int) -> Value:
        if depth > MAX_REF_DEPTH:
            raise SuiteError(mark, "references nested too deeply")
        parts: list[Any] = []
        i = 0
        while i < len(text):
            if text.startswith("$${", i):
                parts.append("${")
                i += 3
                continue
            if text.startswith("${", i):
                end = _closing(text, i + 2)
                if end < 0:
                    raise SuiteError(mark, "unterminated ${...} reference")
                parts.append(self._lookup(text[i + 2 : end], mark, depth))
                i = end + 1
                continue
            j = text.find("$", i + 1)
            j = len(text) if j < 0 else j
            parts.append(text[i:j])
            i = j
        if len(parts) == 1 and not isinstance(parts[0], str):
            return parts[0]  # a whole-value reference keeps its kind (list, Secret)
        secret = any(isinstance(p, Secret) for p in parts) or any(
            isinstance(p, list) and any(isinstance(x, Secret) for x in p) for p in parts
        )
        joined = "".join(",".join(map(str, reveal(p))) if isinstance(p, list) else str(reveal(p)) for p in parts)
        if secret:
            self.scrub.add(joined)
            return Secret(joined)
        return joined


def _closing(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1
