"""The winrm-https runbook document: sections, corrected recipe, and its script examples run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from opsbook.runbooks.docs import load
from tests.helpers import run_main
from tests.powershell_grammar import parse

DOC = load("winrm-https").text


def test_document_has_the_sections_of_a_runbook() -> None:
    headings = re.findall(r"(?m)^## (.+)$", DOC)
    for wanted in (
        "What",
        "Why it needs care",
        "Before you start",
        "Steps",
        "Verify",
        "Rollback",
        "Pitfalls",
        "How opsbook automates it",
    ):
        assert wanted in headings


def test_document_corrects_the_blog_recipe() -> None:
    lower = DOC.lower()
    assert "renewed but not rebound" in lower
    assert "removes every https listener first" in lower  # the dangerous step, named and corrected
    assert "latest notafter" in lower and "server authentication eku" in lower
    assert "domain profile" in lower
    assert "cannot create an https listener" in lower  # GPO limitation
    assert "read, enroll, autoenroll" in lower and "domain computers" in lower
    assert "winrm enumerate winrm/config/listener" in DOC
    assert "1001" in DOC and "1006" in DOC


def test_script_examples_in_the_document_really_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [ln.strip() for ln in DOC.splitlines() if ln.strip().startswith("opsbook winrm script")]
    assert len(lines) >= 2
    for index, line in enumerate(lines):
        work = tmp_path / str(index)
        work.mkdir()
        monkeypatch.chdir(work)
        argv = shlex.split(line)[1:]
        res = run_main(capsys, *argv)
        assert res.code == 0, (line, res.err)
        text = res.out or next(work.glob("*.ps1")).read_text(encoding="utf-8-sig")
        assert parse(text.lstrip("\ufeff").replace("\r\n", "\n")).errors == []
