"""A synthetic Docker data-root payload for bench_docker_root.py: build it, fingerprint it, compare.

The tree imitates what image layers and volumes hold: thousands of small files, fewer
medium and large ones, hard links (as layers and package managers make them), symlinks,
numeric owners without a passwd entry (user-namespace remapping), ``user.*`` xattrs on
files and folders, an empty folder and one big sparse file. Everything is deterministic
for a given seed, so two runs build the same tree.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from dataclasses import dataclass, field
from pathlib import Path

POOL_BYTES = 4 << 20
SPARSE_NAME = "db/preallocated.img"
SPARSE_APPARENT = 1 << 30  # 1 GiB apparent size
SPARSE_CHUNKS = (0, 512 << 20, SPARSE_APPARENT - (1 << 20))  # 1 MiB of data at each offset
XATTR_PREFIX = "user.opsbook."


@dataclass
class TreeSpec:
    """What :func:`build_tree` made (counts the checks compare against)."""

    files: int = 0
    bytes: int = 0
    hardlinks: int = 0
    link_groups: int = 0
    symlinks: int = 0
    xattrs: int = 0
    owners: set[tuple[int, int]] = field(default_factory=set)


def _size(rng: random.Random) -> int:
    """A file size: mostly small, some medium, a few large (like image layers)."""
    roll = rng.random()
    if roll < 0.85:
        return rng.randint(0, 8 << 10)
    if roll < 0.99:
        return rng.randint(8 << 10, 128 << 10)
    return rng.randint(1 << 20, 8 << 20)


def build_tree(base: Path, files: int = 24_000, seed: int = 20_000) -> TreeSpec:
    """Create *files* regular files (distinct inodes) plus links, xattrs and a sparse file under *base*."""
    rng = random.Random(seed)
    pool = rng.randbytes(POOL_BYTES)
    pool += pool  # slices may wrap around
    spec = TreeSpec()
    folders = [f"layer{i // 20:03d}/usr/{['lib', 'share', 'bin', 'include'][i % 4]}/pkg{i:04d}" for i in range(400)]
    for folder in folders:
        (base / folder).mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    for i in range(files - 1):  # the sparse file is the last one
        rel = f"{folders[i % len(folders)]}/f{i:06d}.{['so', 'py', 'txt', 'bin', 'h'][i % 5]}"
        size = _size(rng)
        start = rng.randrange(POOL_BYTES)
        with open(base / rel, "wb") as handle:
            handle.write(pool[start : start + size])
        mode = (0o644, 0o600, 0o755, 0o640)[i % 4]
        os.chmod(base / rel, mode)
        if i % 7 == 0:  # remapped owners with no passwd entry: only --numeric-ids keeps them
            owner = (100_000 + i % 3, 100_000 + i % 5)
            os.chown(base / rel, *owner)
            spec.owners.add(owner)
        if i % 20 == 0:
            os.setxattr(base / rel, XATTR_PREFIX + "origin", f"layer-{i}".encode())
            os.setxattr(base / rel, XATTR_PREFIX + "blob", rng.randbytes(32))
            spec.xattrs += 2
        spec.files += 1
        spec.bytes += size
        made.append(rel)
    links = base / "links"
    links.mkdir()
    for n, rel in enumerate(made[::40]):  # hard-link groups of 2 to 4 names
        spec.link_groups += 1
        for k in range(1 + n % 3):
            os.link(base / rel, links / f"h{n:05d}-{k}")
            spec.hardlinks += 1
    for n, rel in enumerate(made[5::200]):
        os.symlink(os.path.relpath(base / rel, links), links / f"s{n:04d}")
        spec.symlinks += 1
    for folder in folders[::50]:
        os.setxattr(base / folder, XATTR_PREFIX + "dir", folder.encode())
        spec.xattrs += 1
    (base / "empty" / "folder").mkdir(parents=True)
    sparse = base / SPARSE_NAME
    sparse.parent.mkdir()
    with open(sparse, "wb") as handle:
        handle.truncate(SPARSE_APPARENT)
        for offset in SPARSE_CHUNKS:
            handle.seek(offset)
            handle.write(pool[offset % POOL_BYTES : offset % POOL_BYTES + (1 << 20)])
    os.setxattr(sparse, XATTR_PREFIX + "kind", b"sparse")
    spec.xattrs += 1
    spec.files += 1
    spec.bytes += len(SPARSE_CHUNKS) << 20
    return spec


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _xattrs(path: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name, os.getxattr(path, name, follow_symlinks=False).hex())
        for name in sorted(os.listxattr(path, follow_symlinks=False))
        if name.startswith("user.")
    )


@dataclass(frozen=True)
class Entry:
    """One entry of a fingerprint (inode numbers left out: they differ between copies)."""

    kind: str
    mode: int
    uid: int
    gid: int
    xattrs: tuple[tuple[str, str], ...] = ()
    size: int = 0
    mtime_ns: int = 0
    nlink: int = 0
    leader: str = ""
    digest: str = ""


def fingerprint(base: Path) -> dict[str, Entry]:
    """Every entry under *base*: type, mode, owner, size, mtime, content hash, user xattrs, hard-link group.

    The hard-link group (``leader``) is the first path in sorted order sharing the inode, so
    two copies compare equal exactly when the same names are linked together.
    """
    entries: dict[str, os.stat_result] = {}
    for folder, dirs, names in os.walk(base):
        for name in dirs + names:
            path = os.path.join(folder, name)
            entries[os.path.relpath(path, base)] = os.lstat(path)
    leaders: dict[tuple[int, int], str] = {}
    out: dict[str, Entry] = {}
    for rel in sorted(entries):
        st = entries[rel]
        path = os.path.join(base, rel)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = Entry("link", st.st_mode, st.st_uid, st.st_gid, digest=os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = Entry("dir", st.st_mode, st.st_uid, st.st_gid, _xattrs(path))
        else:
            leader = leaders.setdefault((st.st_dev, st.st_ino), rel)
            out[rel] = Entry(
                "file",
                st.st_mode,
                st.st_uid,
                st.st_gid,
                _xattrs(path),
                st.st_size,
                st.st_mtime_ns,
                st.st_nlink,
                leader,
                _digest(path),
            )
    return out


def check_copy(original: dict[str, Entry], base: Path, spec: TreeSpec) -> list[str]:
    """Problems with the copy at *base* compared to the *original* fingerprint (empty when identical).

    Besides entry-by-entry equality (content, mode, numeric owner, mtime, xattrs, which
    names share an inode) it checks the counts the tree was built with and that the
    sparse file still has holes.
    """
    problems: list[str] = []
    copy = fingerprint(base)
    missing = sorted(set(original) - set(copy))
    extra = sorted(set(copy) - set(original))
    changed = sorted(rel for rel in set(original) & set(copy) if original[rel] != copy[rel])
    if missing:
        problems.append(f"{len(missing)} entries missing, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected entries, e.g. {extra[:3]}")
    for rel in changed[:3]:
        problems.append(f"{rel} differs: {original[rel]} -> {copy[rel]}")
    if len(changed) > 3:
        problems.append(f"... {len(changed)} entries differ in all")
    files = [e for e in copy.values() if e.kind == "file"]
    inodes = {e.leader: e for e in files}
    if len(inodes) != spec.files:
        problems.append(f"{len(inodes)} distinct files (inodes) in the copy, expected {spec.files}")
    linked = sum(1 for e in files if e.nlink > 1)
    if linked != spec.link_groups + spec.hardlinks:
        problems.append(f"{linked} names with st_nlink > 1, expected {spec.link_groups + spec.hardlinks}")
    sparse = os.stat(base / SPARSE_NAME)
    if sparse.st_size != SPARSE_APPARENT or sparse.st_blocks * 512 > 64 * (1 << 20):
        problems.append(
            f"{SPARSE_NAME} is not sparse: {sparse.st_blocks * 512} bytes allocated for {sparse.st_size} apparent"
        )
    xattrs = sum(len(e.xattrs) for e in inodes.values()) + sum(len(e.xattrs) for e in copy.values() if e.kind == "dir")
    if xattrs != spec.xattrs:
        problems.append(f"{xattrs} user.* xattrs in the copy, expected {spec.xattrs}")
    owners = {(e.uid, e.gid) for e in files}
    if not spec.owners <= owners:
        problems.append(f"numeric owners lost: {sorted(spec.owners - owners)[:3]}")
    return problems


def stats(base: Path) -> tuple[int, int, int]:
    """``(regular file names, distinct inodes, names with st_nlink > 1)`` under *base* (a whole data-root)."""
    names = linked = 0
    seen: set[tuple[int, int]] = set()
    for folder, _dirs, files in os.walk(base):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(st.st_mode):
                names += 1
                linked += st.st_nlink > 1
                seen.add((st.st_dev, st.st_ino))
    return names, len(seen), linked
