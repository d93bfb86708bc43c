"""``--no-color`` is accepted after any command, and then nothing is coloured or styled.

Run as a real subprocess on a pseudo-terminal with FORCE_COLOR set: the two reasons Rich
would otherwise colour the output.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SUITE = "version: 1\nchecks:\n  - name: docker\n    runbook: docker-root\n"


def run_on_pty(*args: str, tmp_path: Path) -> tuple[int, str]:
    """``python -m opsbook ARGS`` with stdout and stderr on a pty; (exit code, what it printed)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    env.update(
        FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="160", DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock"
    )  # no engine: a quick, local report
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsbook", *args],
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return path


def test_the_pty_output_is_coloured_without_no_color(tmp_path: Path) -> None:
    """The control: on this pty, with FORCE_COLOR, the table is styled."""
    code, text = run_on_pty("docker-root", "status", tmp_path=tmp_path)
    assert code in (0, 1, 2, 3) and "data-root" in text, text
    assert "\x1b[" in text


@pytest.mark.parametrize(
    "args",
    [
        ["docker-root", "status", "--no-color"],
        ["docker-root", "--no-color", "status"],
        ["--no-color", "docker-root", "status"],
        ["run", "SUITE", "--no-color"],
        ["run", "--no-color", "SUITE"],
        ["runbooks", "show", "docker-root", "--no-color"],
    ],
)
def test_no_color_anywhere_means_no_escape_sequences(tmp_path: Path, suite: Path, args: list[str]) -> None:
    code, text = run_on_pty(*[str(suite) if a == "SUITE" else a for a in args], tmp_path=tmp_path)
    assert "No such option" not in text, text
    assert code in (0, 1, 2, 3)
    assert ("data-root" in text) or ("# Move Docker" in text) or ("docker" in text), text
    assert "\x1b[" not in text, repr(text[:400])


@pytest.mark.parametrize("command", [["docker-root", "status"], ["run"], ["runbooks", "show"], ["winrm", "check"]])
def test_every_command_lists_no_color_in_its_help(command: list[str]) -> None:
    from tests.helpers import run_cli

    result = run_cli(*command, "--help")
    assert result.code == 0, result.err
    assert "--no-color" in result.out


def test_no_color_is_not_a_suite_option(tmp_path: Path) -> None:
    """Colour belongs to the run (`opsbook run --no-color`), not to one suite entry."""
    from tests.helpers import run_cli

    suite = tmp_path / "s.yaml"
    suite.write_text("version: 1\nchecks:\n  - name: d\n    runbook: docker-root\n    with: {no-color: true}\n")
    result = run_cli("run", "--validate", str(suite))
    assert result.code == 3
    assert "no-color is chosen for the whole run (opsbook run --no-color), not per check" in result.err
