"""Fixtures for the suite-loading tests: write suite files into a temp folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def suite_file(tmp_path: Path) -> Callable[..., Path]:
    """``suite_file(text, name="suite.yaml")`` writes dedented *text* and returns its path."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
