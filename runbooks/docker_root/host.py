"""What the host shows about Docker without asking the engine.

daemon.json (with duplicate-key detection), data-root flags in the running dockerd's
command line and in the systemd unit, free space and inodes, filesystem type from
``/proc/self/mountinfo`` and a read-only d_type probe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DATA_ROOT_FLAGS = ("-g", "--graph", "--data-root")
UNSUPPORTED_FS = {
    "nfs": "NFS",
    "nfs4": "NFS",
    "cifs": "CIFS/SMB",
    "smb3": "CIFS/SMB",
    "smbfs": "CIFS/SMB",
    "overlay": "overlayfs",
    "9p": "9p",
    "ecryptfs": "eCryptfs",
}
SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def default_daemon_json() -> str:
    """The daemon.json path: /etc/docker/daemon.json, or ~/.config/docker/daemon.json when rootless."""
    if os.geteuid() != 0:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return os.path.join(base, "docker", "daemon.json")
    return DEFAULT_DAEMON_JSON


# ------------------------------------------------------------------ daemon.json

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


# ------------------------------------------------------------------ dockerd flags

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
                return flag[len(name) + 1:].strip()
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
        return "unix://" + os.path.realpath(url[len("unix://"):]) if os.path.exists(url[7:]) else url
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


def systemd_unit_flags(
    unit: str = "docker.service", dirs: tuple[str, ...] = SYSTEMD_UNIT_DIRS
) -> dict[str, list[str]]:
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


# ------------------------------------------------------------------ filesystems

def nearest_existing(path: str) -> str:
    """*path*, or its closest existing ancestor."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _unescape(field_: str) -> str:
    return field_.encode().decode("unicode_escape") if "\\" in field_ else field_


@dataclass
class Mount:
    """A mount from mountinfo: where, what filesystem type, from which source."""

    mount_point: str
    fstype: str
    source: str
    options: str = ""


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> Mount:
    """The mount holding *path* (longest mount-point prefix of its real path)."""
    real = os.path.realpath(nearest_existing(path))
    best = Mount("/", "unknown", "")
    best_len = -1
    for m in mounts(mountinfo):
        point = m.mount_point
        inside = real == point or real.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and len(point) >= best_len:
            best_len = len(point)
            best = m
    return best


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every mount of this mount namespace, in mountinfo order."""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) >= 5 and len(rparts) >= 2:
            out.append(Mount(_unescape(parts[4]), rparts[0], rparts[1], parts[5] if len(parts) > 5 else ""))
    return out


#: Mounts the engine itself makes below its data-root while it runs (gone once it stops):
#: container root filesystems, /dev/shm and secrets, plugin mounts, network namespaces.
_ENGINE_FSTYPES = ("overlay", "aufs", "nsfs")
_ENGINE_FOLDERS = ("containers/", "plugins/", "image/", "rootfs/", "overlay2/", "overlay/", "fuse-overlayfs/")


def mounts_below(root: str, *, volumes_with_options: frozenset[str] = frozenset(),
                 mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Mounts strictly inside *root* that are not the engine's own.

    ``rsync --one-file-system`` does not enter them, so their data would not be copied.
    A local volume created with mount options (``--opt type=nfs``, ``type=tmpfs``...) is
    mounted by the engine at ``volumes/NAME/_data`` while a container uses it: its data
    lives on that device, not in the data-root, and the engine mounts it again after the
    move. Names of such volumes come in *volumes_with_options*.
    """
    real = os.path.realpath(root).rstrip("/")
    found = []
    for m in mounts(mountinfo):
        if not m.mount_point.startswith(real + "/"):
            continue
        rel = m.mount_point[len(real) + 1:]
        parts = rel.split("/")
        if m.fstype in _ENGINE_FSTYPES:
            continue
        if len(parts) >= 3 and rel.startswith(_ENGINE_FOLDERS):
            continue
        if len(parts) == 3 and parts[0] == "volumes" and parts[2] == "_data" and parts[1] in volumes_with_options:
            continue
        found.append(m)
    return found


def unsupported_fs(fstype: str) -> str | None:
    """A readable name when *fstype* cannot hold a data-root (NFS, CIFS, FUSE, overlay...)."""
    if fstype.startswith("fuse"):
        return f"FUSE ({fstype})"
    return UNSUPPORTED_FS.get(fstype)


@dataclass
class Space:
    """Free bytes and inodes of a filesystem (inodes 0 when it does not count them)."""

    free_bytes: int
    total_bytes: int
    free_inodes: int
    total_inodes: int


def space(path: str) -> Space:
    """statvfs of the filesystem holding *path* (or its closest existing ancestor)."""
    st = os.statvfs(nearest_existing(path))
    return Space(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, st.f_favail, st.f_files)


@dataclass
class Usage:
    """Disk usage of a tree: allocated bytes and inodes (hard links counted once)."""

    bytes: int = 0
    inodes: int = 0


def usage(root: str) -> Usage:
    """Allocated bytes and inode count of *root*, staying on its filesystem (like ``du -x``)."""
    out = Usage()
    seen: set[int] = set()
    try:
        dev = os.lstat(root).st_dev
    except OSError:
        return out
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != dev:
                continue
            if st.st_nlink > 1:
                if st.st_ino in seen:
                    continue
                seen.add(st.st_ino)
            out.inodes += 1
            out.bytes += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    out.inodes += 1
    return out


DT_UNKNOWN = 0


class _Dirent(ctypes.Structure):
    _fields_ = [
        ("d_ino", ctypes.c_uint64),
        ("d_off", ctypes.c_int64),
        ("d_reclen", ctypes.c_ushort),
        ("d_type", ctypes.c_ubyte),
        ("d_name", ctypes.c_char * 256),
    ]


def d_types(folder: str) -> list[int]:
    """The d_type values readdir(3) returns for *folder* (read-only; needs glibc)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir64.restype = ctypes.POINTER(_Dirent)
    libc.readdir64.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    handle = libc.opendir(os.fsencode(folder))
    if not handle:
        raise OSError(ctypes.get_errno(), f"cannot open {folder}")
    types = []
    try:
        while True:
            ent = libc.readdir64(handle)
            if not ent:
                break
            types.append(int(ent.contents.d_type))
    finally:
        libc.closedir(handle)
    return types


def supports_d_type(path: str) -> bool | None:
    """Whether the filesystem of *path* fills in d_type (None when it cannot be told).

    Read-only: lists the closest existing folder. A filesystem without d_type (xfs with
    ftype=0) answers DT_UNKNOWN for every entry, ``.`` and ``..`` included.
    """
    folder = nearest_existing(path)
    if not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        types = d_types(folder)
    except (OSError, AttributeError):
        return None
    if not types:
        return None
    return any(t != DT_UNKNOWN for t in types)


def selinux_enforcing(path: str = "/sys/fs/selinux/enforce") -> bool:
    """Whether SELinux is enforcing."""
    try:
        return Path(path).read_text().strip() == "1"
    except OSError:
        return False


def is_under(child: str, parent: str) -> bool:
    """Whether *child* is *parent* or inside it (real paths, component-wise)."""
    c = os.path.realpath(child)
    p = os.path.realpath(parent)
    return c == p or c.startswith(p.rstrip("/") + "/")
