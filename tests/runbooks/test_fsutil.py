from __future__ import annotations

import os
from pathlib import Path

import pytest

from runbooks.fsutil import atomic_write


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
