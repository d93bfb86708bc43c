"""The running dockerd processes (/proc): their arguments, data-root flags and config file."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DATA_ROOT_FLAGS = ("-g", "--graph", "--data-root")


def data_root_flags(args: list[str]) -> list[str]:
    """The data-root flags (``-g``, ``--graph``, ``--data-root``) in a dockerd argument list."""
    found = []
    for i, arg in enumerate(args):
        for flag in DATA_ROOT_FLAGS:
            if arg == flag:
                value = args[i + 1] if i + 1 < len(args) else ""
                found.append(f"{flag} {value}".strip())
            elif arg.startswith(flag + "=") or (flag == "-g" and arg.startswith("-g") and arg[2:3] not in ("", "-")):
                found.append(arg)
    return found


def flag_value(flag: str) -> str:
    """The path of a data-root flag as :func:`data_root_flags` returns it (``--data-root=/x`` -> ``/x``)."""
    for name in DATA_ROOT_FLAGS:
        for sep in (" ", "="):
            if flag.startswith(name + sep):
                return flag[len(name) + 1 :].strip()
    return flag[2:].lstrip("=") if flag.startswith("-g") else ""


def config_file_arg(args: list[str]) -> str | None:
    """The ``--config-file`` a dockerd argument list names, if any."""
    for i, arg in enumerate(args):
        if arg == "--config-file" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config-file="):
            return arg.split("=", 1)[1]
    return None


def _hosts(args: list[str]) -> list[str]:
    hosts = []
    for i, arg in enumerate(args):
        if arg in ("-H", "--host") and i + 1 < len(args):
            hosts.append(args[i + 1])
        elif arg.startswith("--host="):
            hosts.append(arg.split("=", 1)[1])
        elif arg.startswith("-H") and len(arg) > 2:
            hosts.append(arg[2:].lstrip("="))
    return hosts


def _norm_host(url: str) -> str:
    url = url.strip()
    if url.startswith("fd://"):  # systemd socket activation: the path part names the socket unit
        return "fd://"
    if url.startswith("unix://"):
        return "unix://" + os.path.realpath(url[len("unix://") :]) if os.path.exists(url[7:]) else url
    return url.rstrip("/")


@dataclass
class DockerdProcess:
    """A running dockerd: pid, its arguments and the data-root flags among them."""

    pid: int
    args: list[str]
    flags: list[str] = field(default_factory=list)

    @property
    def config_file(self) -> str | None:
        """The daemon.json this dockerd reads when it names one (``--config-file``)."""
        return config_file_arg(self.args)


def dockerd_processes(docker_host: str | None = None, proc: str = "/proc") -> list[DockerdProcess]:
    """Running dockerd processes serving *docker_host* (default: the local socket)."""
    wanted = _norm_host(docker_host or DEFAULT_SOCKET)
    default = wanted in (_norm_host(DEFAULT_SOCKET), _norm_host("unix:///run/docker.sock"))
    found = []
    for entry in glob.glob(os.path.join(proc, "[0-9]*", "cmdline")):
        try:
            with open(entry, "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if not args or os.path.basename(args[0]) != "dockerd":
            continue
        hosts = [_norm_host(h) for h in _hosts(args)]
        if wanted in hosts or (default and (not hosts or "fd://" in hosts)):
            found.append(DockerdProcess(int(entry.split("/")[-2]), args, data_root_flags(args)))
    return found
