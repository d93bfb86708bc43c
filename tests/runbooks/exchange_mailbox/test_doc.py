"""The exchange-mailbox runbook document: sections, corrections, and its examples really run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from opsbook.runbooks.docs import load
from tests.helpers import run_main
from tests.runbooks.exchange_mailbox.exchange_scriptcheck import check_script

DOC = load("exchange-mailbox").text


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


def test_document_states_the_dangers() -> None:
    assert "irreversible" in DOC.lower()
    assert "`-WhatIf` does nothing" in DOC
    assert "PreviousRecipientTypeDetails" in DOC
    assert "Teams" in DOC and "OneDrive" in DOC  # why not delete and re-sync the user
    assert "DisabledPlans" in DOC and "AssignedByGroup" in DOC
    assert "BOM" in DOC
    # Set-MgUserLicense is in Microsoft.Graph.Users.Actions; Identity.DirectoryManagement is not needed
    assert "Microsoft.Graph.Users.Actions" in DOC and "Identity.DirectoryManagement" not in DOC
    assert "ExchangeGuid" in DOC and "NoExchangeGuid" in DOC  # the second-mailbox trap is explained


def test_document_explains_the_exchange_only_fallback_and_its_restore_file() -> None:
    assert "only the\n   Exchange Online service plans" in DOC or "only the Exchange Online plans" in DOC
    assert "EXCHANGE_S_STANDARD" in DOC and "Get-MgUserLicenseDetail" in DOC and "AppliesTo" in DOC
    assert "-AddLicenses @(@{SkuId='...'; DisabledPlans=@('...')}) -RemoveLicenses @()" in DOC.replace("\n", " ")
    assert "restore file" in DOC and "-Restore" in DOC and "-HalfDone Finish" in DOC
    assert "#23786" in DOC and "#10457" in DOC  # why a finally block alone is not enough
    for blocker in ("LitigationHoldEnabled", "InPlaceHolds", "ArchiveGuid", "-SoftDeletedMailbox", "-ArchiveChecked"):
        assert blocker in DOC
    assert "Remove-Mailbox -Identity *" not in DOC  # the example identity would now be refused (wildcard)


def _doc_commands() -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("opsbook exchange")]
    assert lines, "the document shows opsbook examples"
    return [shlex.split(line)[1:] for line in lines]


@pytest.mark.parametrize("argv", _doc_commands(), ids=lambda a: " ".join(a)[:60])
def test_document_examples_run(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "users.csv").write_text("identity\njane.doe@contoso.com\no'brien@contoso.com\n", encoding="utf-8")
    res = run_main(capsys, *argv)
    assert res.code == 0, res.err
    written = tmp_path / "CHG0042.ps1"
    assert written.exists()
    expected = [a for a in argv[2:] if not a.startswith("-") and a not in ("users.csv", "CHG0042.ps1")]
    if "--csv" in argv:
        expected += ["jane.doe@contoso.com", "o'brien@contoso.com"]
    check_script(written.read_bytes().decode("utf-8-sig"), expected, license_reset="--license-reset" in argv)
