from __future__ import annotations

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
