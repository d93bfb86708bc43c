"""The exact final copy and the full verification of a copy (real rsync, real files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from opsbook.runbooks.docker_root import treecopy, treeverify


def _tree(root: Path) -> None:
    (root / "volumes" / "v" / "_data").mkdir(parents=True)
    (root / "volumes" / "v" / "_data" / "counter").write_text("893")
    (root / "a").write_bytes(b"a" * 5000)
    (root / "b").hardlink_to(root / "a")
    (root / "link").symlink_to("a")
    os.setxattr(root / "a", "user.opsbook", b"1")
    os.mkfifo(root / "fifo")


def _rewrite_same_size_same_mtime(path: Path, text: str) -> None:
    """What a busy container can do within one tick of the clock that stamps mtimes."""
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_quick_check_blind_spot_is_closed_by_the_exact_pass(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)
    started = time.time_ns()
    treecopy.rsync(str(src), str(dst))
    counter = src / "volumes" / "v" / "_data" / "counter"
    _rewrite_same_size_same_mtime(counter, "898")
    treecopy.rsync(str(src), str(dst))
    stale = dst / "volumes" / "v" / "_data" / "counter"
    assert stale.read_text() == "893", "rsync's quick check is expected to miss this rewrite"

    old = treeverify.scan(str(src))
    changed = treeverify.changed_since(old, started)
    assert "volumes/v/_data/counter" in changed
    diff = treeverify.compare(old, treeverify.scan(str(dst)))
    assert diff.ok, diff.problems()  # metadata alone cannot see it ...
    treeverify.hash_content(str(src), str(dst), changed, diff)
    assert diff.content_differs == ["volumes/v/_data/counter"]  # ... the content hash does

    again = treecopy.recopy(str(src), str(dst), changed)
    assert again.exit_code == 0
    assert stale.read_text() == "898"
    diff = treeverify.compare(old, treeverify.scan(str(dst)))
    treeverify.hash_content(str(src), str(dst), changed, diff)
    assert diff.ok, diff.problems()
    assert (dst / "a").stat().st_ino == (dst / "b").stat().st_ino, "the re-copy broke a hard link"


def test_same_second_rewrite_is_seen_by_nanosecond_mtimes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    f = src / "c"
    f.write_text("0001")
    os.utime(f, ns=(1_700_000_000_100_000_000, 1_700_000_000_100_000_000))
    treecopy.rsync(str(src), str(dst))
    f.write_text("0002")
    os.utime(f, ns=(1_700_000_000_900_000_000, 1_700_000_000_900_000_000))  # same second, later
    treecopy.rsync(str(src), str(dst))
    assert (dst / "c").read_text() == "0002"


def test_compare_names_every_kind_of_difference(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)
    treecopy.rsync(str(src), str(dst))
    old = treeverify.scan(str(src))
    clean = treeverify.compare(old, treeverify.scan(str(dst)))
    assert clean.ok, clean.problems()
    assert clean.kinds == {"file": 3, "folder": 4, "symlink": 1, "fifo": 1}
    assert "9 entries compared" in clean.summary()

    os.chmod(dst / "volumes", 0o700)
    os.chown(dst / "volumes" / "v", 1234, 1234)
    os.setxattr(dst / "a", "user.opsbook", b"2")
    (dst / "link").unlink()
    (dst / "link").symlink_to("b")
    (dst / "b").unlink()
    (dst / "b").write_bytes(b"a" * 5000)  # same content, but no longer a hard link of a
    os.utime(dst / "b", ns=(old["b"].mtime_ns, old["b"].mtime_ns))
    (dst / "fifo").unlink()
    (dst / "stray").write_text("x")
    diff = treeverify.compare(old, treeverify.scan(str(dst)))
    assert not diff.ok
    assert diff.missing == ["fifo"] and diff.unexpected == ["stray"]
    text = "; ".join(diff.problems(limit=20))
    assert "volumes (mode)" in text
    assert "link (" in text and "symlink target" in text
    assert "xattrs" in text
    assert "volumes/v (owner, group)" in text
    assert "b (xattrs)" in text and "b (link count 2 -> 1)" in text


def test_scan_stays_on_one_filesystem_and_skips_lost_found(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "x").write_text("1")
    tree = treeverify.scan(str(tmp_path))
    assert set(tree) == {"", "x"}
    with pytest.raises(treeverify.TreeError, match="cannot read"):
        treeverify.scan(str(tmp_path / "missing"))


def test_changed_since_uses_ctime_too(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("new")
    os.utime(f, ns=(0, 0))  # mtime in 1970: only the ctime says it changed just now
    tree = treeverify.scan(str(tmp_path))
    assert treeverify.changed_since(tree, time.time_ns() - 10_000_000_000) == ["f"]
    assert treeverify.changed_since(tree, time.time_ns() + 10_000_000_000) == []


def test_a_link_from_outside_the_tree_is_not_a_difference(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f").write_text("data")
    (tmp_path / "outside").hardlink_to(src / "f")  # st_nlink 2, one name inside the tree
    treecopy.rsync(str(src), str(dst))
    assert (dst / "f").stat().st_nlink == 1
    diff = treeverify.compare(treeverify.scan(str(src)), treeverify.scan(str(dst)))
    assert diff.ok, diff.problems()
