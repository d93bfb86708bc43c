"""Colour only on a TTY, NO_COLOR and --no-color honoured, data never read as markup."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

from tests.helpers import REPO

SCRIPT = textwrap.dedent(
    """
    import sys
    from opsbook.cli import terminal
    from opsbook.runbooks.model import CheckResult, Report, Status
    terminal.configure(no_color="--no-color" in sys.argv)
    report = Report(command="demo", checks=[
        CheckResult("a", "[bold]host[/bold]", "check", Status.OK, "fine [red]not markup[/red]"),
        CheckResult("b", "host2", "check", Status.CRITICAL, "broken"),
    ])
    sys.exit(terminal.emit_report(report, "table"))
    """
)


def _run_in_pty(*extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *extra],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
        env={**os.environ, "TERM": "xterm-256color", **(env or {})},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_colour_on_a_tty() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    code, output = _run_in_pty(env=env)
    assert code == 2
    assert "\x1b[32m" in output or "\x1b[1;31m" in output  # green OK / bold red CRITICAL


def test_no_color_env_and_flag() -> None:
    for extra, env in (((), {"NO_COLOR": "1"}), (("--no-color",), {})):
        code, output = _run_in_pty(*extra, env=env)
        assert code == 2
        assert "\x1b[32m" not in output and "\x1b[31m" not in output and "\x1b[1;31m" not in output


def test_pipe_gets_plain_text_and_markup_is_literal() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 2
    assert "\x1b[" not in proc.stdout
    assert "[bold]host[/bold]" in proc.stdout
    assert "fine [red]not markup[/red]" in proc.stdout
    assert "CRITICAL" in proc.stdout
