"""The generated clear-previous-mailbox script: parsed with tree-sitter-powershell."""

from __future__ import annotations

import re

import pytest

from opsbook.runbooks import __version__
from opsbook.runbooks.errors import InputError
from opsbook.runbooks.exchange_mailbox.script import BOM, encode, generate
from tests.powershell_grammar import parse
from tests.runbooks.exchange_mailbox.exchange_scriptcheck import FIXED_TIME, check_script, identity_array

HOSTILE = [
    "o'brien@contoso.com",
    "x'; Remove-Mailbox -Identity * ;'",
    "$(Get-Process)",
    "`$(Stop-Computer)`",
    "back`tick@contoso.com",
    "\u2018quoted\u2019@contoso.com",
    "name\u201bwith\u201ahigh-reversed@contoso.com",
    "\u2019; Remove-Mailbox -Identity *; \u2018",
    "'''",
    "#> <# comment",
    "@' here-string '@",
    'double "quoted" $env:USERNAME',
    "Stop",
    "Zoë Ångström",
]


@pytest.mark.parametrize("license_reset", [False, True])
def test_hostile_identities_stay_data(license_reset: bool) -> None:
    script = generate(HOSTILE, license_reset=license_reset, generated_at=FIXED_TIME)
    parsed = check_script(script, HOSTILE, license_reset=license_reset)
    for bad in ("Remove-Mailbox", "Get-Process", "Stop-Computer"):
        assert bad not in parsed.command_names()


def test_check_script_catches_a_naive_generator() -> None:
    """The checks can fail: a script that does not double the quotes is caught."""
    good = generate(["o'brien@contoso.com"], generated_at=FIXED_TIME)
    naive = good.replace("'o''brien@contoso.com'", "'o'brien@contoso.com'")
    with pytest.raises(AssertionError):
        check_script(naive, ["o'brien@contoso.com"])
    # Unicode quote not doubled: tree-sitter is happy, PowerShell would not be
    good = generate(["a\u2019b"], generated_at=FIXED_TIME)
    naive = good.replace("'a\u2019\u2019b'", "'a\u2019b'")
    assert parse(naive).errors == []
    with pytest.raises(AssertionError):
        check_script(naive, ["a\u2019b"])


@pytest.mark.parametrize("bad", ["a\nb", "a\r\nb", "a\x00b", "a\u2028b", "a\u0085b"])
def test_generate_itself_refuses_control_characters(bad: str) -> None:
    with pytest.raises(InputError, match="refused"):
        generate(["ok", bad])


def test_ten_thousand_identities_one_array_one_loop() -> None:
    ids = [f"user{n}'x\u2019@contoso.com" for n in range(10_000)]
    script = generate(ids, generated_at=FIXED_TIME)
    check_script(script, ids)
    assert len(re.findall(r"(?m)^\s*foreach \(\$identity in \$Identities\)", script)) == 1
    assert script.count("Set-User -Identity") == 1  # one command, in a function, not one per user


def test_header_says_what_irreversible_when_and_version() -> None:
    script = generate(["a@contoso.com", "b"], generated_at=FIXED_TIME)
    head = script[: script.index("#>")]
    assert "Permanently clear the previous cloud-mailbox information of 2 Exchange Online user(s)" in head
    assert "IRREVERSIBLE" in head
    assert "can NEVER be reconnected" in head
    assert "-WhatIf does not work" in head
    assert f"Generated 2026-11-28 12:00:00Z by opsbook {__version__}" in head
    assert "READ-ONLY unless you pass -Apply" in head
    assert "$GeneratedBy = 'opsbook " + __version__ + " at 2026-11-28 12:00:00Z'" in script


def _param_block(script: str) -> str:
    start = script.index("[CmdletBinding()]\nparam(")
    return script[start : script.index("\n)\n", start)]


def test_param_block_and_preamble_order() -> None:
    script = generate(["a"], generated_at=FIXED_TIME)
    params = _param_block(script)
    for name in (
        "[switch]$Apply",
        "[string]$LogPath",
        "[string]$ResultCsv",
        "[switch]$SkipConnect",
        "[string]$AppId",
        "[string]$CertificateThumbprint",
        "[string]$Organization",
    ):
        assert name in params
    assert "LicenseWaitSeconds" not in params
    order = [
        script.index(s)
        for s in (
            "#Requires -Version 5.1",
            "param(",
            "Set-StrictMode -Version 3.0",
            "$ErrorActionPreference = 'Stop'",
            "$Identities = @(",
            "function ",
        )
    ]
    assert order == sorted(order)
    assert "$LicenseReset = $false" in script


def test_per_user_logic() -> None:
    script = generate(["a"], generated_at=FIXED_TIME)
    body = script[script.index("function Invoke-OneUser") :]
    # checks before the change, the change only with -Apply
    steps = [
        "Get-OneUser -Identity $Identity",
        "'HasCloudMailbox'",
        "if (Test-NothingToClear $r.PreviousBefore) {",
        "if (-not $Apply)",
        "$changed = Invoke-Clear -Id $id",
        "Wait-Cleared -Id $id",
        "$r.Result = 'Cleared'; $r.Failed = $restoreFailed",
        "'NotCleared'",
    ]
    positions = [body.index(s) for s in steps]
    assert positions == sorted(positions)
    assert "$r.RecipientTypeDetails -like '*Mailbox' -and $r.RecipientTypeDetails -ne 'MailUser'" in body
    assert "'NotFound'" in body
    assert (
        "Set-User -Identity $Id -PermanentlyClearPreviousMailboxInfo -Confirm:$false "
        "-WarningVariable w -ErrorAction Stop"
    ) in script
    assert "no settings of .* have been modified" in script
    assert "--license-reset" in script  # tells what to do when nothing was modified
    # results: one line per user, transcript, CSV, exit 1 when any failed
    assert "Write-Host ('RESULT {0}: {1} - {2}'" in script
    assert "Start-Transcript -LiteralPath $LogPath" in script
    assert "Export-Csv -LiteralPath $ResultCsv -NoTypeInformation" in script
    assert "if ($Row.Failed) { $script:exitCode = 1 }" in script
    assert script.rstrip().endswith("exit $exitCode")
    assert "New-MoveRequest -Identity" in script and "Start-MigrationBatch" in script


def test_connection_is_interactive_or_app_only() -> None:
    script = generate(["a"], generated_at=FIXED_TIME)
    assert "if (-not $SkipConnect)" in script
    assert "Connect-ExchangeOnline @connect" in script
    assert "$connect.AppId = $AppId" in script
    assert "$connect.CertificateThumbprint = $CertificateThumbprint" in script
    assert "$connect.Organization = $Organization" in script


def test_license_reset_fallback() -> None:
    script = generate(["a"], license_reset=True, generated_at=FIXED_TIME)
    params = _param_block(script)
    assert "[int]$LicenseWaitSeconds = 900" in params
    assert "[string]$RestoreFile" in params and "[string]$Restore," in params
    assert "[ValidateSet('Ask', 'Finish', 'Restore')]\n    [string]$HalfDone = 'Ask'" in params
    assert "$LicenseReset = $true" in script
    assert "$connect.Scopes = @('User.ReadWrite.All')" in script and "$connect.Scopes = @('User.Read.All')" in script
    assert (
        "Get-MgUser -UserId $GraphId -Property 'Id,UserPrincipalName,AssignedLicenses,LicenseAssignmentStates'"
        in script
    )
    assert "AssignedByGroup" in script and "cannot be changed per user" in script
    fn = script[script.index("function Invoke-LicenseReset") :]
    fn = fn[: fn.index("\n}\n")]
    steps = [
        "Get-LicenseState",
        "ByGroup.Count -gt 0",
        "Get-LicensePlan -GraphId $state.Id -Saved $saved",
        "Save-RestoreFile",
        "} finally {",
        "Restore-Entry -Entry $Entry",
    ]
    positions = [fn.index(s) for s in steps]
    assert positions == sorted(positions)
    restore = script[script.index("function Restore-Licenses") : script.index("function Restore-Entry")]
    assert "DisabledPlans = @($l.DisabledPlans)" in restore
    assert "Set-MgUserLicense -UserId $GraphId -AddLicenses $add -RemoveLicenses @()" in restore
    assert "Test-SameLicenses" in restore  # restored licences are verified


def test_no_powershell_7_only_syntax() -> None:
    for lr in (False, True):
        script = generate(["a"], license_reset=lr, generated_at=FIXED_TIME)
        code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
        assert "??" not in code and "&&" not in code and "||" not in code
        assert "-Parallel" not in code and "::new(" not in code
        assert not re.search(r"\)\s*\?\s", code), "ternary operator"
        assert code.isascii()


def test_identity_array_is_right_after_the_preamble() -> None:
    script = generate(["a", "b"], generated_at=FIXED_TIME)
    literals, _ = identity_array(parse(script))
    assert literals == ["'a'", "'b'"]
    assert script.index("$Identities = @(") < script.index("function ")


def test_encode_adds_a_bom_and_why_it_matters() -> None:
    data = encode(generate(["\u0452"], generated_at=FIXED_TIME))
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").count(BOM) == 0
    # Without the BOM, Windows PowerShell 5.1 reads the file as Windows-1252: U+0452 (D1 92)
    # becomes 'Ñ’' and the ’ (0x92) is a PowerShell quote: the literal would end early.
    assert "\u0452".encode().decode("cp1252") == "\u00d1\u2019"


def test_templates_are_package_resources_listed_in_package_data() -> None:
    import tomllib
    from fnmatch import fnmatch
    from pathlib import Path

    from opsbook.runbooks.exchange_mailbox import script as gen

    folder = Path(gen.__file__).parent / "templates"
    names = sorted(p.name for p in folder.glob("*.ps1"))
    assert names == sorted([gen.MAIN, gen.LICENSE_FALLBACK, gen.NO_LICENSE_FALLBACK])
    from tests.helpers import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["opsbook.runbooks"]
    for name in names:
        assert any(fnmatch(f"exchange_mailbox/templates/{name}", p) for p in patterns), name
    # both fragment files define the same regions, and together with the generator fill every marker
    with_fallback, without = gen._fragments(gen.LICENSE_FALLBACK), gen._fragments(gen.NO_LICENSE_FALLBACK)
    assert set(with_fallback) == set(without) and "LICENSE_FUNCTIONS" in with_fallback
    assert "function Invoke-LicenseReset" in with_fallback["LICENSE_FUNCTIONS"]
    markers = set(re.findall(r"@@([A-Z_]+)@@", gen.template_text(gen.MAIN)))
    assert markers == set(with_fallback) | {
        "COUNT",
        "GENERATED_AT",
        "VERSION",
        "IDENTITIES",
        "GENERATED_BY",
        "LICENSE_RESET",
    }
    # no PowerShell left in Python source
    assert not (Path(gen.__file__).parent / "template.py").exists()
