"""Shared pytest configuration. Area-specific fixtures live in each area's own conftest.py."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_ambient_opsbook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a known environment: no inherited format or colour settings."""
    for name in ("OPSBOOK_FORMAT", "NO_COLOR", "OPSBOOK_WINRM_PASSWORD", "OPSBOOK_GRAPH_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", os.environ.get("COLUMNS", "200"))
