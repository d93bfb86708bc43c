"""daemon.json: read exactly (duplicate keys, NaN and Infinity refused), followed through a symlink."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"


def default_daemon_json() -> str:
    """The daemon.json path: /etc/docker/daemon.json, or ~/.config/docker/daemon.json when rootless."""
    if os.geteuid() != 0:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return os.path.join(base, "docker", "daemon.json")
    return DEFAULT_DAEMON_JSON


class DuplicateKeyError(ValueError):
    """daemon.json holds the same key twice (dockerd would take one silently)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r}")
        out[key] = value
    return out


@dataclass
class DaemonConfig:
    """daemon.json as read: ``data`` is None when missing or unusable (see ``error``)."""

    path: str
    exists: bool
    text: str = ""
    data: dict[str, Any] | None = None
    error: str = ""
    mode: int = 0o644
    owner: tuple[int, int] = (0, 0)
    #: The bytes read (what is backed up and what the new file is built from).
    raw: bytes = b""
    #: The file opsbook writes: *path* itself, or the file a symlink at *path* points to.
    real_path: str = ""

    @property
    def is_symlink(self) -> bool:
        """Whether *path* is a symlink (opsbook then edits the file it points to)."""
        return bool(self.real_path) and self.real_path != os.path.abspath(self.path)

    @property
    def sha256(self) -> str:
        """SHA-256 of the bytes read ('' when the file does not exist)."""
        return hashlib.sha256(self.raw).hexdigest() if self.exists else ""

    @property
    def snapshotter(self) -> bool:
        """Whether it turns on the containerd image store (``features.containerd-snapshotter``)."""
        features = (self.data or {}).get("features")
        return isinstance(features, dict) and features.get("containerd-snapshotter") is True

    @property
    def usable(self) -> bool:
        """Whether opsbook may rewrite this file (readable, valid, an object, no duplicates)."""
        return not self.error

    @property
    def data_root(self) -> str | None:
        """The data-root it sets (``data-root`` or the deprecated ``graph``), if any."""
        if not self.data:
            return None
        value = self.data.get("data-root", self.data.get("graph"))
        return str(value) if value else None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (dockerd refuses it)")


def parse_daemon_json(text: str) -> dict[str, Any]:
    """Parse daemon.json text; raises ValueError (invalid, not an object, duplicate keys, NaN/Infinity)."""
    if not text.strip():
        return {}
    data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    if not isinstance(data, dict):
        raise ValueError(f"the top level is a JSON {type(data).__name__}, not an object")
    return data


def read_daemon_json(path: str | os.PathLike[str]) -> DaemonConfig:
    """Read daemon.json; never raises for a bad file (the error is in ``.error``).

    A symlink is followed: ``real_path`` names the file it points to, which is the one
    that is backed up and rewritten (replacing the link by a file would leave the real
    file, which other tools read, on the old root).
    """
    name = str(path)
    real = os.path.realpath(name)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return DaemonConfig(name, exists=False, data={}, real_path=real)
    except OSError as exc:
        return DaemonConfig(name, exists=True, error=f"cannot read {name}: {exc.strerror}", real_path=real)
    cfg = DaemonConfig(name, exists=True, mode=st.st_mode & 0o777, owner=(st.st_uid, st.st_gid), real_path=real)
    if not os.path.isfile(real):
        cfg.error = f"cannot read {name}: not a regular file"
        return cfg
    try:
        with open(real, "rb") as handle:
            cfg.raw = handle.read()
        cfg.text = cfg.raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        cfg.error = f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}"
        return cfg
    try:
        cfg.data = parse_daemon_json(cfg.text)
    except DuplicateKeyError as exc:
        cfg.error = f"{name} has a {exc}: dockerd would silently use one of them"
    except ValueError as exc:
        cfg.error = f"{name} is not a valid daemon.json: {exc}"
    return cfg
