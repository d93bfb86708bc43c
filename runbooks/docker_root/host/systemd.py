"""systemd: whether it runs the host, docker.service's unit files and the flags they pass dockerd."""

from __future__ import annotations

import glob
import os
import shlex
from pathlib import Path

from .dockerd import data_root_flags

SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def is_systemd_host() -> bool:
    """Whether systemd is PID 1 (``/run/systemd/system`` exists)."""
    return os.path.isdir("/run/systemd/system")


def unit_exists(unit: str, dirs: tuple[str, ...] = SYSTEMD_UNIT_DIRS) -> bool:
    """Whether a unit file *unit* exists in one of the systemd unit folders."""
    return any(os.path.isfile(os.path.join(folder, unit)) for folder in dirs)


def unit_files(unit: str = "docker.service", dirs: tuple[str, ...] = SYSTEMD_UNIT_DIRS) -> list[str]:
    """The unit file and its drop-ins in the order systemd reads them.

    The unit from the first folder that has it; drop-ins from every folder, sorted by
    file name, a name in an earlier folder hiding the same name in a later one.
    """
    main = next((os.path.join(f, unit) for f in dirs if os.path.isfile(os.path.join(f, unit))), None)
    dropins: dict[str, str] = {}
    for folder in dirs:
        for path in glob.glob(os.path.join(folder, unit + ".d", "*.conf")):
            dropins.setdefault(os.path.basename(path), path)
    return ([main] if main else []) + [dropins[name] for name in sorted(dropins)]


def systemd_unit_flags(unit: str = "docker.service", dirs: tuple[str, ...] = SYSTEMD_UNIT_DIRS) -> dict[str, list[str]]:
    """Data-root flags in the ExecStart= lines systemd would run: ``{file: [flags]}``.

    An empty ``ExecStart=`` (the usual first line of a drop-in that replaces the command)
    clears every ExecStart= before it, so their flags do not count.
    """
    effective: list[tuple[str, list[str]]] = []
    for name in unit_files(unit, dirs):
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for raw in text.replace("\\\n", " ").splitlines():
            line = raw.strip()
            if not line.startswith("ExecStart="):
                continue
            command = line.split("=", 1)[1].strip()
            if not command:
                effective.clear()
                continue
            try:
                args = shlex.split(command.lstrip("-@:+!"))
            except ValueError:
                continue
            effective.append((name, data_root_flags(args)))
    out: dict[str, list[str]] = {}
    for name, flags in effective:
        if flags:
            out.setdefault(name, []).extend(flags)
    return out
