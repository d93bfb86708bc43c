from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.errors import InputError
from runbooks.secrets import Secret, secret_from


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    assert secret.reveal() == "hunter2"


def test_secret_from_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_SECRET", "from-env")
    path = tmp_path / "s"
    path.write_text("from-file\n")
    found = secret_from("X_SECRET", path)
    assert found is not None and found.reveal() == "from-file"
    found = secret_from("X_SECRET", None)
    assert found is not None and found.reveal() == "from-env"
    monkeypatch.delenv("X_SECRET")
    assert secret_from("X_SECRET", None) is None


def test_secret_file_errors_are_clean(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read secret file"):
        secret_from(None, tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        secret_from(None, empty)
