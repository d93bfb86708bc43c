from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from opsbook.runbooks.fsutil import atomic_write


def test_atomic_write_creates_and_replaces_keeping_mode(tmp_path: Path) -> None:
    target = tmp_path / "daemon.json"
    atomic_write(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert target.stat().st_mode & 0o777 == 0o644
    os.chmod(target, 0o600)
    atomic_write(target, '{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n'
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]  # no temp left behind


def test_atomic_write_refuses_overwrite_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "out.ps1"
    target.write_text("old")
    with pytest.raises(FileExistsError):
        atomic_write(target, "new", overwrite=False)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ps1"]


def test_atomic_write_failure_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_text("old")

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_write_output_refuses_existing_directory_and_missing_folder(tmp_path: Path) -> None:
    from opsbook.runbooks.errors import InputError, RefusedError
    from opsbook.runbooks.fsutil import write_output

    existing = tmp_path / "a.ps1"
    existing.write_bytes(b"old")
    with pytest.raises(RefusedError, match="already exists; use --force"):
        write_output(existing, b"new", force=False)
    assert existing.read_bytes() == b"old"
    assert write_output(existing, b"new", force=True) == existing
    assert existing.read_bytes() == b"new"
    with pytest.raises(InputError, match="is a directory"):
        write_output(tmp_path, b"x", force=True)
    with pytest.raises(InputError, match=r"cannot write .*No such file or directory"):
        write_output(tmp_path / "no" / "x.ps1", b"x", force=False)
    with pytest.raises(InputError, match="empty file name"):
        write_output(" ", b"x", force=False)


def test_atomic_write_never_copies_setuid_or_owner_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "setuid-binary"
    victim.write_bytes(b"\x7fELF")
    os.chown(victim, 1234, 1234)
    os.chmod(victim, 0o4755)
    link = tmp_path / "opsbook.prom"
    link.symlink_to(victim)
    atomic_write(link, "metric 1\n")
    st = link.lstat()
    assert stat.S_ISREG(st.st_mode), "the symlink is replaced by a regular file"
    assert stat.S_IMODE(st.st_mode) == 0o644, oct(st.st_mode)
    assert st.st_uid == os.geteuid()
    assert victim.read_bytes() == b"\x7fELF" and stat.S_IMODE(victim.stat().st_mode) == 0o4755


def test_atomic_write_keeps_permission_bits_only(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    os.chmod(target, 0o2640)
    atomic_write(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    atomic_write(target, "newer", mode=0o4700)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
