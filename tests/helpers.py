"""Small helpers for CLI tests: run opsbook in-process or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """What a command printed and its exit code."""

    code: int
    out: str
    err: str


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """Run ``cli.app.main(args)`` in-process (exit-code mapping included)."""
    from opsbook.cli.app import main

    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: str | None = None) -> Result:
    """Run ``python -m opsbook ARGS`` as a subprocess (no TTY)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "opsbook", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
        input=stdin,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
