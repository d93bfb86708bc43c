"""Space: free bytes and inodes of a filesystem, and what a tree uses (like ``du -x``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .filesystems import nearest_existing


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
