"""Prove a copy exact: every entry's metadata compared, changed files' content hashed.

After the final copy (engine stopped) the old root and the copy must hold the same tree:
for every path the same type, size, mtime (nanoseconds), mode, owner, link count, extended
attributes (ACLs included), symlink target and device number, and the same hard-link
groups. Files that changed since the warm copy began are the ones rsync's quick check can
miss, so their content is hashed on both sides too.

Each tree is walked once into a table and the tables are compared (not file by file
across the trees); the old root is walked while the final copy runs, and the changed
files are hashed by a small pool of threads (hashing releases the GIL).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

WORKERS = 4
#: Files whose mtime or ctime is this close to the warm copy's start count as changed since:
#: the kernel stamps times from a coarse clock that can lag the one we read by a tick.
CLOCK_MARGIN_NS = 2_000_000_000
#: Names at the top of a fresh filesystem that are not part of the data-root.
IGNORED_TOP = ("lost+found",)

_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "folder",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "char device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


@dataclass(frozen=True)
class Entry:
    """What is compared of one path (``ino``/``ctime_ns`` are read, never compared)."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    nlink: int
    rdev: int
    link: str
    xattrs: tuple[tuple[str, bytes], ...]
    ino: int
    ctime_ns: int


class TreeError(Exception):
    """A tree could not be read (the error names the path)."""


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (95, 61):  # EOPNOTSUPP, ENODATA: no xattrs here
            return ()
        raise
    out = []
    for name in sorted(names):
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError as exc:
            if exc.errno != 61:  # removed meanwhile
                raise
    return tuple(out)


def _entry(path: str, st: os.stat_result) -> Entry:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "other")
    return Entry(
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size if kind in ("file", "symlink") else 0,
        mtime_ns=st.st_mtime_ns,
        nlink=st.st_nlink if kind != "folder" else 0,
        rdev=st.st_rdev if kind in ("char device", "block device") else 0,
        link=os.readlink(path) if kind == "symlink" else "",
        xattrs=_xattrs(path),
        ino=st.st_ino,
        ctime_ns=st.st_ctime_ns,
    )


def scan(root: str) -> dict[str, Entry]:
    """Every entry below *root* (relative path -> :class:`Entry`), ``""`` being *root* itself.

    Stays on *root*'s filesystem, like ``rsync --one-file-system``: a folder on another
    filesystem is listed but not entered. One plain loop: with the metadata cached, a pool
    of threads per folder costs more than it saves (the GIL); the parallelism is between
    the trees and the copy (see the move).
    """
    try:
        top = os.lstat(root)
        out: dict[str, Entry] = {"": _entry(root, top)}
    except OSError as exc:
        raise TreeError(f"cannot read {root}: {exc.strerror or exc}") from None
    stack = [""]
    while stack:
        rel = stack.pop()
        folder = os.path.join(root, rel) if rel else root
        try:
            with os.scandir(folder) as it:
                for item in it:
                    if not rel and item.name in IGNORED_TOP:
                        continue
                    name = f"{rel}/{item.name}" if rel else item.name
                    st = item.stat(follow_symlinks=False)
                    out[name] = _entry(item.path, st)
                    if stat.S_ISDIR(st.st_mode) and st.st_dev == top.st_dev:
                        stack.append(name)
        except OSError as exc:
            raise TreeError(f"cannot read {exc.filename or folder}: {exc.strerror or exc}") from None
    return out


def changed_since(tree: dict[str, Entry], since_ns: int, margin_ns: int = CLOCK_MARGIN_NS) -> list[str]:
    """Regular files whose mtime or ctime is at or after *since_ns* (less a clock margin).

    ctime catches a file rewritten and then given back an old mtime (``touch -d``, tar).
    """
    edge = since_ns - margin_ns
    return sorted(rel for rel, e in tree.items() if e.kind == "file" and rel and max(e.mtime_ns, e.ctime_ns) >= edge)


def _link_groups(tree: dict[str, Entry], counts: dict[int, int]) -> dict[str, str]:
    """For every path whose inode has more than one name in the tree: the first of those names (sorted)."""
    leaders: dict[int, str] = {}
    out: dict[str, str] = {}
    for rel in sorted(r for r, e in tree.items() if e.kind != "folder" and counts[e.ino] > 1):
        out[rel] = leaders.setdefault(tree[rel].ino, rel)
    return out


_FIELDS = ("kind", "size", "mtime_ns", "mode", "uid", "gid", "link", "rdev", "xattrs")
_FIELD_NAMES = {
    "mtime_ns": "mtime",
    "uid": "owner",
    "gid": "group",
    "nlink": "link count",
    "link": "symlink target",
    "rdev": "device number",
}


@dataclass
class TreeDiff:
    """What differs between two trees, with the counts of what was compared."""

    compared: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    #: Entries on the copy that the old root does not have.
    unexpected: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    hashed_files: int = 0
    hashed_bytes: int = 0
    content_differs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the trees are identical in everything compared."""
        return not (self.missing or self.unexpected or self.different or self.content_differs)

    def problems(self, limit: int = 5) -> list[str]:
        """One line per kind of difference, naming the first *limit* paths."""
        out = []
        for label, paths in (
            ("missing on the copy", self.missing),
            ("only on the copy", self.unexpected),
            ("metadata differs", self.different),
            ("content differs", self.content_differs),
        ):
            if paths:
                more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
                out.append(f"{len(paths)} {label}: {', '.join(paths[:limit])}{more}")
        return out

    def summary(self) -> str:
        """What was compared, with counts."""
        kinds = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(self.kinds.items()))
        return (
            f"{self.compared} entries compared ({kinds}): type, size, mtime (ns), mode, owner, link count, "
            f"hard-link groups, xattrs/ACLs, symlink target; content of {self.hashed_files} file(s) changed "
            f"since the warm copy began hashed ({self.hashed_bytes} bytes)"
        )


def compare(old: dict[str, Entry], new: dict[str, Entry]) -> TreeDiff:
    """Compare the metadata of two scanned trees (the old root first)."""
    diff = TreeDiff(compared=len(old))
    for entry in old.values():
        diff.kinds[entry.kind] = diff.kinds.get(entry.kind, 0) + 1
    diff.missing = sorted(set(old) - set(new))
    diff.unexpected = sorted(set(new) - set(old))
    for rel in sorted(set(old) & set(new)):
        a, b = old[rel], new[rel]
        fields = [f for f in _FIELDS if getattr(a, f) != getattr(b, f)]
        if fields:
            diff.different.append(f"{rel or '.'} ({', '.join(_FIELD_NAMES.get(f, f) for f in fields)})")
    # Link counts as the tree sees them (names of the inode inside the tree): a file also
    # linked from outside the old root cannot keep that link on another filesystem.
    old_counts, new_counts = _names_per_inode(old), _names_per_inode(new)
    old_groups, new_groups = _link_groups(old, old_counts), _link_groups(new, new_counts)
    for rel in sorted(set(old) & set(new)):
        a, b = old[rel], new[rel]
        if a.kind == "folder":
            continue
        if old_counts[a.ino] != new_counts[b.ino]:
            diff.different.append(f"{rel} (link count {old_counts[a.ino]} -> {new_counts[b.ino]})")
        elif old_groups.get(rel) != new_groups.get(rel):
            diff.different.append(f"{rel} (hard-link group)")
    return diff


def _names_per_inode(tree: dict[str, Entry]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for entry in tree.values():
        if entry.kind != "folder":
            counts[entry.ino] = counts.get(entry.ino, 0) + 1
    return counts


def _sha256(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _same_content(old_root: str, new_root: str, rel: str) -> tuple[bool, int]:
    try:
        a, size = _sha256(os.path.join(old_root, rel))
    except OSError as exc:
        raise TreeError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
    try:
        b, _ = _sha256(os.path.join(new_root, rel))
    except FileNotFoundError:
        return False, size  # missing on the copy: compare() names it too
    except OSError as exc:
        raise TreeError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
    return a == b, size


def hash_content(old_root: str, new_root: str, paths: Iterable[str], diff: TreeDiff, *, workers: int = WORKERS) -> None:
    """Hash *paths* under both roots; record counts and the ones that differ in *diff*."""
    missing = set(diff.missing)
    todo = [p for p in paths if p not in missing]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opsbook-hash") as pool:
        for rel, (same, size) in zip(todo, pool.map(lambda r: _same_content(old_root, new_root, r), todo), strict=True):
            diff.hashed_files += 1
            diff.hashed_bytes += size
            if not same:
                diff.content_differs.append(rel)
