"""The licence fallback, restore file, resumption and per-user results: read from the parsed script."""

from __future__ import annotations

import re

import pytest
import tree_sitter as ts

from opsbook.runbooks.exchange_mailbox.script import generate
from tests.powershell_grammar import ParsedScript, parse
from tests.runbooks.exchange_mailbox.exchange_scriptcheck import FIXED_TIME, check_script

HOSTILE = [
    "o'brien@contoso.com",
    "x'; Set-MgUserLicense -UserId jane -RemoveLicenses @() ;'",
    "\u2019$(Remove-Item C:\\)\u2018",
]


def _script(license_reset: bool = True) -> str:
    return generate(HOSTILE, license_reset=license_reset, generated_at=FIXED_TIME)


def _function(script: str, name: str) -> str:
    body = script[script.index(f"function {name} {{") :]
    return body[: body.index("\n}\n") + 3]


def _calls(text: str) -> list[tuple[str, int, str]]:
    """(command name, byte offset, command text) of every command in *text*, in source order."""
    parsed: ParsedScript = parse(text)
    assert parsed.errors == [], parsed.errors[:3]
    data = text.encode()
    out = []
    stack: list[ts.Node] = [parsed.tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type == "command":
            name = next((c for c in node.children if c.type == "command_name"), None)
            if name is not None:
                out.append(
                    (
                        data[name.start_byte : name.end_byte].decode(),
                        node.start_byte,
                        data[node.start_byte : node.end_byte].decode(),
                    )
                )
    return sorted(out, key=lambda c: c[1])


def test_hostile_identities_stay_data_with_the_fallback() -> None:
    parsed = check_script(_script(), HOSTILE, license_reset=True)
    assert "Remove-Item" not in parsed.command_names()
    # the only Set-MgUserLicense calls are the template's two: change and restore
    assert [c for c in parsed.commands() if c[0] == "Set-MgUserLicense"] == [
        ("Set-MgUserLicense", ["UserId", "AddLicenses", "RemoveLicenses", "ErrorAction"])
    ] * 2


def test_restore_file_is_written_before_any_licence_change() -> None:
    script = _script()
    calls = _calls(script)
    changes = [c for c in calls if c[0] == "Set-MgUserLicense"]
    assert len(changes) == 2
    fn = _function(script, "Invoke-LicenseReset")
    order = [name for name, _, _ in _calls(fn)]
    assert order.index("Save-RestoreFile") < order.index("Set-MgUserLicense") < order.index("Restore-Entry")
    # the restore path: Restore-Licenses adds back, never removes
    restore = _function(script, "Restore-Licenses")
    assert [text.strip() for name, _, text in _calls(restore) if name == "Set-MgUserLicense"] == [
        "Set-MgUserLicense -UserId $GraphId -AddLicenses $add -RemoveLicenses @() -ErrorAction Stop"
    ]
    # Save-RestoreFile flushes to disk and swaps the file in
    save = _function(script, "Save-RestoreFile")
    steps = ["$stream.Flush($true)", "[System.IO.File]::Replace($tmp, $RestoreFile, $null)"]
    assert save.index(steps[0]) < save.index(steps[1])
    assert "Save-RestoreFile" in _function(script, "Restore-Entry")  # the outcome is recorded too


def test_only_exchange_plans_are_disabled_and_a_sku_removed_only_when_it_must() -> None:
    script = _script()
    assert "[string]$ExchangePlanPattern = '^(EXCHANGE_[SBL]_|EXCHANGEDESKLESS)'" in script
    for name in (
        "EXCHANGE_S_STANDARD",
        "EXCHANGE_S_ENTERPRISE",
        "EXCHANGE_S_DESKLESS",
        "EXCHANGE_B_STANDARD",
        "EXCHANGEDESKLESS",
        "EXCHANGE_S_FOUNDATION",
    ):
        assert re.match(r"^(EXCHANGE_[SBL]_|EXCHANGEDESKLESS)", name)
    for name in ("TEAMS1", "SHAREPOINTSTANDARD", "MCOEV", "MCOSTANDARD", "INTUNE_A", "EXCHANGE_ANALYTICS"):
        assert not re.match(r"^(EXCHANGE_[SBL]_|EXCHANGEDESKLESS)", name)
    plan = _function(script, "Get-LicensePlan")
    assert [n for n, _, _ in _calls(plan) if n.startswith("Get-Mg")] == ["Get-MgUserLicenseDetail"]
    assert "$_.ServicePlanName -match $ExchangePlanPattern -and $_.ProvisioningStatus -ne 'Disabled'" in plan
    # DisabledPlans = what was disabled before + the Exchange plans' ServicePlanId; the SKU stays
    assert "$add += @{ SkuId = $skuId; DisabledPlans = $disabled }" in plan
    assert "[string]$_.ServicePlanId" in plan
    # a whole SKU only where an Exchange plan does not apply to the user, and the plan line says so
    fixed = plan.index("$fixed = @($exchange | Where-Object { $_.AppliesTo -ne 'User' })")
    removal = plan.index("$remove += $skuId")
    guard = plan.index("if ($fixed.Count -gt 0) {")
    assert fixed < guard < removal < plan.index("continue", removal) < plan.index("$add +=")
    assert "remove the whole SKU" in plan and "cannot be disabled per user" in plan
    change = _function(script, "Invoke-LicenseReset")
    assert "Set-MgUserLicense -UserId $state.Id -AddLicenses @($plan.Add) -RemoveLicenses @($plan.Remove)" in change
    assert "RemoveLicenses @($state.Saved" not in script  # the old remove-everything call is gone


def test_restore_mode_and_half_done_users() -> None:
    script = _script()
    main = script[script.index("# ---- Main ----") :]
    restore = main[
        main.index("    if ($Restore) {\n        # Restore mode") : main.index("    if (-not $restoreOnly) {")
    ]
    names = [n for n, _, _ in _calls("function X {\n" + restore + "\n}\n")]
    assert (
        names.index("Connect-Graph")
        < names.index("Read-RestoreFile")
        < names.index("Restore-Entry")
        < names.index("Add-Result")
    )
    assert "Connect-ExchangeOnline" not in restore and "$restoreOnly = $true" in restore
    assert main.index("Connect-ExchangeOnline @connect") > main.index("if (-not $restoreOnly) {")
    # the rerun: restore file read before the first user; half-done users found before any other check
    order = [main.index(s) for s in ("Connect-Graph\n        Open-HalfDone", "foreach ($identity in $Identities)")]
    assert order == sorted(order)
    open_fn = _function(script, "Open-HalfDone")
    assert "Read-RestoreFile -Path $RestoreFile" in open_fn and "$_.State -ne 'Restored'" in open_fn
    assert "Read-Host -Prompt" in open_fn and "-HalfDone Finish or -HalfDone Restore" in open_fn
    one = _function(script, "Invoke-OneUser")
    assert one.index("$Journal[$key].State -ne 'Restored'") < one.index("'HasCloudMailbox'")
    assert one.index("'HalfDone'") < one.index("Invoke-Clear")
    assert "Invoke-LicenseReset -User $user -Id $id -Identity $Identity -Entry $halfDone" in one
    reset = _function(script, "Invoke-LicenseReset")
    assert "if ($null -ne $Entry) { $saved = @($Entry.Licenses) }" in reset  # finished with the saved licences
    # Ctrl+C during the wait is a key press that ends in the finally block (restore)
    assert "[Console]::TreatControlCAsInput = $true" in script
    assert reset.index("Wait-Interruptible -Seconds 15") < reset.index("} finally {")


def test_each_result_is_appended_to_the_csv_when_known() -> None:
    script = _script(license_reset=False)
    add = _function(script, "Add-Result")
    assert [t.strip() for n, _, t in _calls(add) if n == "Export-Csv"] == [
        "Export-Csv -LiteralPath $ResultCsv -NoTypeInformation -Encoding $CsvEncoding -Append"
    ]
    main = script[script.index("# ---- Main ----") :]
    loop = main[main.index("foreach ($identity in $Identities)") :]
    assert loop.index("$r = Invoke-OneUser -Identity $identity") < loop.index("Add-Result $r") < loop.index("} catch {")
    final = main[main.index("} finally {") :]
    assert "Export-Csv" not in final and "$row.Result = 'Interrupted'" in final and "Add-Result $row" in final
    assert script.count("Export-Csv") == 1


@pytest.mark.parametrize("license_reset", [False, True])
def test_blockers_are_checked_before_clearing(license_reset: bool) -> None:
    script = _script(license_reset)
    blockers = _function(script, "Get-Blockers")
    for needle in (
        "'LitigationHoldEnabled'",
        "'InPlaceHolds'",
        "'ArchiveGuid'",
        "-not $ArchiveChecked",
        "Get-Mailbox -SoftDeletedMailbox -Identity $Lookup -ErrorAction Stop",
        "Remove-Mailbox -PermanentlyDelete",
        "New-MailboxRestoreRequest",
        "-ArchiveChecked",
    ):
        assert needle in blockers
    one = _function(script, "Invoke-OneUser")
    assert (
        one.index("'NoExchangeGuid'")
        < one.index("Get-Blockers")
        < one.index("if (-not $Apply)")
        < one.index("Invoke-Clear")
    )
    assert "[switch]$ArchiveChecked" in script


def test_without_the_fallback_no_licence_code_at_all() -> None:
    script = _script(license_reset=False)
    names = {n for n, _, _ in _calls(script)}
    assert not names & {"Set-MgUserLicense", "Get-MgUserLicenseDetail", "Save-RestoreFile", "Open-HalfDone"}
    assert "$RestoreFile" not in script.split("function Invoke-OneUser")[0]
    assert "[string]$Restore" not in script


def test_read_only_run_prints_the_licence_plan() -> None:
    one = _function(_script(), "Invoke-OneUser")
    wc = one[one.index("$r.Result = 'WouldClear'") : one.index("return $r", one.index("$r.Result = 'WouldClear'"))]
    assert "if ($LicenseReset) { $r.Message = $r.Message + '; ' + (Get-PlanText -User $user) }" in wc
