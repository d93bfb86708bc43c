"""Real peers for end-to-end tests: a missing one is a failure, never a skip, in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def need_binary(name: str) -> str:
    """Path of *name*; fails the test (CI) or skips it (a developer without it) when absent."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
    )
    if path:
        return path
    message = f"{name} is not installed: run 'make test' (it installs the test peers)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError  # unreachable


def need_root() -> None:
    """Fail (CI) or skip (developer) unless running as root (network namespaces, dockerd)."""
    if os.geteuid() != 0:
        message = "needs root (network namespaces / dockerd): CI runs as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
