"""Filesystems: mounts from /proc/self/mountinfo, unsupported types, d_type, SELinux, paths."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

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


def mounts_below(
    root: str, *, volumes_with_options: frozenset[str] = frozenset(), mountinfo: str = "/proc/self/mountinfo"
) -> list[Mount]:
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
        rel = m.mount_point[len(real) + 1 :]
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
