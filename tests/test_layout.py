"""The test tree mirrors the code and its file names are unique (pytest imports them by basename)."""

from __future__ import annotations

from collections import Counter

from tests.helpers import REPO


def test_test_file_names_are_unique_and_do_not_stutter() -> None:
    files = list((REPO / "tests").rglob("test_*.py"))
    names = Counter(f.name for f in files)
    assert [n for n, c in names.items() if c > 1] == []
    for f in files:
        folder = f.parent.name
        if f.parent.parent.name == "runbooks":  # tests/runbooks/<runbook>/test_<topic>.py
            stem = folder.split("_")[0]
            assert not f.name.startswith(f"test_{stem}_"), f"{f.relative_to(REPO)} repeats its folder's name"
