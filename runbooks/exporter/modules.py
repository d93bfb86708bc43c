"""The exporter's module file: named suite entries whose target comes from the request.

The file is read by the suite's own YAML loader (bounded, line-numbered errors) and each
module's ``runbook``/``with:``/``deadline`` is checked by the suite loader's entry
validation; the CLI layer then binds ``with:`` to the check command's options exactly as
``opsbook run`` does. Extra module keys: ``target`` (which option the request's target
fills, when a runbook has a choice) and ``allow`` (networks and names that may be probed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..suite.loader import _entry, _env, _expect, _unknown_key
from ..suite.model import Entry
from ..suite.yamlsafe import Mark, SuiteError, YNode, parse_yaml, read_limited

TOP_KEYS = ("version", "env", "modules")
MODULE_KEYS = ("runbook", "with", "deadline", "description", "target", "allow")
#: runbook -> the options a request's target may fill (the first is the default); docker-root
#: checks the local engine: its target is only a label.
TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "winrm": ("hosts",),
    "adsync": ("domain", "dc"),
    "dns": ("name",),
    "docker-root": (),
}
#: Options whose target may carry a port (HOST[:PORT]).
TARGET_WITH_PORT = {"hosts"}
#: Options whose target is a host the probe connects to (not a name it looks up in DNS): a name
#: allowed by network is pinned to the address the allow list checked.
TARGET_CONNECTED = {"hosts", "dc"}
#: A module's deadline when it sets none (Prometheus' default scrape timeout).
DEFAULT_MODULE_DEADLINE = 10.0
#: Subtracted from the scrape timeout Prometheus announces, so the answer arrives in time
#: (blackbox_exporter's --timeout-offset default).
DEADLINE_MARGIN = 0.5
MAX_MODULES = 256
MAX_TARGET = 255
#: How long a name in a request may take to resolve for a network allow-list.
ALLOW_RESOLVE_TIMEOUT = 2.0

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_NAME_PATTERN_RE = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?$")


class TargetError(InputError):
    """A request's target is malformed or not allowed (HTTP 400/403)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """A request's target, checked: its host (no brackets) and its text as given."""

    text: str
    host: str
    port: int | None = None

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host as an IP address, or None for a name."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_target(text: str, *, port_allowed: bool = True) -> Target:
    """Check a request's target: a DNS name, an IPv4 address or ``[IPv6]``, optionally ``:PORT``.

    Nothing else gets through (no ``${...}`` reference, no URL, no option, no whitespace),
    so a target can never reach the suite's environment or another option.
    """
    if not text:
        raise TargetError("target is empty")
    if len(text) > MAX_TARGET:
        raise TargetError(f"target is longer than {MAX_TARGET} characters")
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise TargetError("target: '[' without ']'")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise TargetError("target: [...] must hold an IPv6 address") from None
        if rest:
            if not rest.startswith(":"):
                raise TargetError("target: expected :PORT after ]")
            port = _port(rest[1:])
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text)
    elif ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise TargetError("target: not a host name or an IP address") from None
    if host and not text.startswith("[") and ":" not in host:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _HOSTNAME_RE.match(host) or host.replace(".", "").isdigit():
                raise TargetError("target: not a host name or an IP address (letters, digits, '-', '.')") from None
    if port is not None and not port_allowed:
        raise TargetError("target: this module takes a name without a port")
    return Target(text, host.rstrip(".").lower() if not host.startswith("[") else host, port)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise TargetError("target: the port must be a number from 1 to 65535")
    return int(text)


@dataclass
class AllowList:
    """Networks and names a module may probe; a name allowed by network must resolve inside them."""

    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def matches_name(self, host: str) -> bool:
        """Whether *host* (a name) matches one of the name patterns (``*.corp.example`` or exact)."""
        host = host.rstrip(".").lower()
        for pattern in self.names:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def matches_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether *address* lies in one of the networks."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.networks)

    async def check(self, target: Target, timeout: float = ALLOW_RESOLVE_TIMEOUT) -> str | None:
        """Raise :class:`TargetError` (403) unless *target* may be probed.

        An IP address must lie in a listed network; a name must match a listed name, or
        (when networks are listed) every address it resolves to must lie in them. For a name
        allowed that way, the first of those addresses is returned: the probe must connect to
        it and not resolve the name again (a DNS server that answers differently the second
        time, "DNS rebinding", would otherwise send the probe outside the networks).
        """
        address = target.address
        if address is not None:
            if not self.matches_address(address):
                raise TargetError(f"target {target.host} is not in this module's allow list", 403)
            return None
        if self.matches_name(target.host):
            return None
        if not self.networks:
            raise TargetError(f"target {target.host} is not in this module's allow list", 403)
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(target.host, None, type=socket.SOCK_STREAM), timeout)
        except (OSError, TimeoutError):
            raise TargetError(f"target {target.host} does not resolve (allow list by network)", 403) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        if not addresses or not all(self.matches_address(a) for a in addresses):
            raise TargetError(f"target {target.host} resolves outside this module's allow list", 403)
        return str(addresses[0])


@dataclass
class Module:
    """One module: the suite entry to run and where the request's target goes."""

    name: str
    entry: Entry
    #: The option the target fills (None: docker-root, the target is only a label).
    target_key: str | None
    #: The longest a probe of this module may take, whatever the scrape timeout (seconds).
    deadline: float
    allow: AllowList | None = None
    description: str = ""

    @property
    def runbook(self) -> str:
        """The runbook the module runs (winrm, adsync, dns, docker-root)."""
        return self.entry.runbook


@dataclass
class ModuleConfig:
    """A validated module file."""

    path: str
    modules: dict[str, Module]
    #: Environment variables the file declares (``env:``) besides ``OPSBOOK_*``.
    env: list[str] = field(default_factory=list)
    #: What the CLI layer's binder keeps for this config (the resolver with its secrets).
    binding: Any = None
    #: The file's text as read (probe worker processes parse the very same text).
    text: str = ""
    #: Which (re)load this is: 0 at start, one more at each successful reload.
    generation: int = 0


def _allow(node: YNode, module: str) -> AllowList:
    items = node.value if isinstance(node.value, list) else [node]
    allow = AllowList()
    if not items:
        raise SuiteError(node.mark, f"modules.{module}.allow is empty: leave it out to allow any target")
    for item in items:
        if not isinstance(item.value, str) or not item.value.strip():
            raise SuiteError(item.mark, f"modules.{module}.allow: list networks (10.0.0.0/8) or names, not {item.kind}")
        text = item.value.strip()
        try:
            allow.networks.append(ipaddress.ip_network(text, strict=False))
            continue
        except ValueError:
            pass
        if not _NAME_PATTERN_RE.match(text):
            raise SuiteError(
                item.mark,
                f"modules.{module}.allow: {text!r} is neither a network (10.0.0.0/8, fd00::/8) nor a name "
                "(host.corp.example, *.corp.example)",
            )
        allow.names.append(text.rstrip(".").lower())
    return allow


def _module(name: str, key_mark: Mark, node: YNode) -> Module:
    _expect(node, ("mapping",), f"modules.{name}")
    _unknown_key(node.keys, MODULE_KEYS, f"module {name}", "; the command's options go under 'with:'")
    fields = dict(node.value)
    keys = dict(node.keys)
    target_node = fields.pop("target", None)
    allow_node = fields.pop("allow", None)
    keys.pop("target", None)
    keys.pop("allow", None)
    fields["name"] = YNode(name, key_mark)
    keys["name"] = key_mark
    entry = _entry(YNode(fields, node.mark, keys), {})
    choices = TARGET_KEYS[entry.runbook]
    target_key: str | None = choices[0] if choices else None
    if target_node is not None:
        if target_node.value not in choices:
            expected = (
                f"one of: {', '.join(choices)}" if choices else f"nothing ({entry.runbook} checks the local engine)"
            )
            raise SuiteError(target_node.mark, f"modules.{name}.target: the target can fill {expected}")
        target_key = target_node.value
    if target_key is not None:
        for key in (target_key, "hosts-file") if entry.runbook == "winrm" else (target_key,):
            if key in entry.options:
                raise SuiteError(
                    entry.options[key].key_mark,
                    f"modules.{name}: {key} comes from the request's target (/probe?target=...); remove it here",
                )
    allow = _allow(allow_node, name) if allow_node is not None else None
    return Module(
        name=name,
        entry=entry,
        target_key=target_key,
        deadline=entry.deadline or DEFAULT_MODULE_DEADLINE,
        allow=allow,
        description=entry.description,
    )


def load_module_config(path: str | os.PathLike[str], text: str | None = None) -> ModuleConfig:
    """Load and structurally validate the module file at *path* (``file:line:col`` errors).

    With *text*, that is the file's content (already read) and *path* only names it.
    The modules' ``with:`` options are checked against the commands by the CLI layer's binder.
    """
    display = os.fspath(path)
    if text is None:
        if not Path(path).is_file():
            raise SuiteError(None, f"{display}: module file does not exist or is not a file")
        text = read_limited(Path(path), display)
    root = parse_yaml(text, display)
    if root is None:
        raise SuiteError(Mark(display, 1, 1), "empty module file (expected 'version: 1' and 'modules:')")
    _expect(root, ("mapping",), "the module file")
    _unknown_key(root.keys, TOP_KEYS, "the module file")
    doc = root.value
    if "version" not in doc:
        raise SuiteError(root.mark, "missing 'version: 1'")
    version = doc["version"]
    if isinstance(version.value, bool) or version.value != 1:
        raise SuiteError(version.mark, f"unsupported version {version.value!r} (this opsbook reads version 1)")
    env = list(_env(doc["env"])) if "env" in doc and doc["env"].value is not None else []
    if "modules" not in doc or not doc["modules"].value:
        raise SuiteError(root.mark, "the module file has no modules (expected 'modules:' with at least one)")
    modules_node = doc["modules"]
    _expect(modules_node, ("mapping",), "modules")
    if len(modules_node.value) > MAX_MODULES:
        raise SuiteError(modules_node.mark, f"too many modules (more than {MAX_MODULES})")
    modules: dict[str, Module] = {}
    for name, node in modules_node.value.items():
        if name.startswith("x-"):
            continue
        modules[name] = _module(name, modules_node.keys[name], node)
    return ModuleConfig(path=display, modules=modules, env=env, text=text)


def probe_deadline(module: Module, scrape_timeout: str | None) -> float:
    """The probe's deadline: the scrape timeout Prometheus announces minus a margin, capped by the module.

    Raises :class:`TargetError` for a header that is not a positive number.
    """
    if scrape_timeout is None or scrape_timeout == "":
        return module.deadline
    try:
        announced = float(scrape_timeout)
    except ValueError:
        raise TargetError("X-Prometheus-Scrape-Timeout-Seconds is not a number") from None
    if not math.isfinite(announced) or announced <= 0:
        raise TargetError("X-Prometheus-Scrape-Timeout-Seconds must be a positive number")
    if announced > DEADLINE_MARGIN:
        announced -= DEADLINE_MARGIN
    return min(module.deadline, announced)
