from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsbook.runbooks.docs import RUNBOOKS
from tests.helpers import run_cli, run_main


def test_runbooks_lists_all_four(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "runbooks")
    assert result.code == 0
    names = [line.split()[0] for line in result.out.splitlines()]
    assert names == ["docker-root", "winrm-https", "adsync", "exchange-mailbox"]


@pytest.mark.parametrize("name", list(RUNBOOKS))
def test_show_every_runbook_plain_on_a_pipe(name: str) -> None:
    result = run_cli("runbooks", "show", name)
    assert result.code == 0, result.err
    assert result.out.startswith("# ")
    assert "\x1b[" not in result.out  # plain Markdown when piped
    for heading in ("## ", "Rollback", "Pitfalls"):
        assert heading in result.out, f"{name}: missing {heading!r}"
    assert len(result.out) > 2000


def test_docker_root_document_corrects_the_blog_recipe() -> None:
    text = run_cli("runbooks", "show", "docker-root").out
    assert "rsync -aHAXS --numeric-ids" in text
    assert "rm -rf /var/lib/docker/overlay2" in text  # named, as the dangerous step
    assert "d_type" in text and "RequiresMountsFor" in text and "containerd" in text


@pytest.mark.parametrize(("alias", "name"), [("exchange", "exchange-mailbox"), ("winrm", "winrm-https")])
def test_command_names_are_aliases_of_their_runbook(alias: str, name: str) -> None:
    by_alias = run_cli("runbooks", "show", alias)
    assert by_alias.code == 0, by_alias.err
    assert by_alias.out == run_cli("runbooks", "show", name).out
    assert by_alias.out.startswith("# ")


def test_unknown_runbook_names_the_aliases_too(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "runbooks", "show", "exch")
    assert result.code == 3
    assert "exchange-mailbox" in result.err and "(or exchange)" in result.err


def test_show_works_from_any_directory(tmp_path: Path) -> None:
    """The documents are package data, not files found through the current directory."""
    proc = subprocess.run(
        [sys.executable, "-m", "opsbook", "runbooks", "show", "adsync"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# ")
