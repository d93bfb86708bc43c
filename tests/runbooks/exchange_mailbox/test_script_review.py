"""A change board's review of the generated script: real cmdlets, real parameters, real properties.

There is no PowerShell on the test machines, so these tests read the parsed script
(tree-sitter-powershell) against the documented interfaces of the cmdlets it calls, and
against what Windows PowerShell 5.1 offers (the script must run on 5.1 and 7).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsbook.runbooks.exchange_mailbox.script import generate
from opsbook.runbooks.powershell import quote, unsafe_character
from tests.powershell_grammar import parse
from tests.runbooks.exchange_mailbox.exchange_scriptcheck import FIXED_TIME

COMMON = {"ErrorAction", "WarningVariable", "Confirm"}

# Parameters as documented (Microsoft Learn: Exchange Online PowerShell, Microsoft Graph
# PowerShell v2, and the PowerShell 5.1 reference). A parameter missing from Windows
# PowerShell 5.1 (Join-Path -AdditionalChildPath, ConvertTo-Json -AsArray, Get-Date -AsUTC,
# Export-Csv -UseQuotes...) must not appear here.
EXTERNAL: dict[str, set[str]] = {
    # ExchangeOnlineManagement
    "Connect-ExchangeOnline": set(),  # splatted; keys checked below
    "Get-User": {"Identity"},
    "Get-MailUser": {"Identity"},
    "Get-Mailbox": {"Identity", "SoftDeletedMailbox"},
    "Set-User": {"Identity", "PermanentlyClearPreviousMailboxInfo"},
    # Microsoft.Graph.Authentication / .Users / .Users.Actions
    "Connect-MgGraph": set(),  # splatted; keys checked below
    "Get-MgContext": set(),
    "Get-MgUser": {"UserId", "Property"},
    "Get-MgUserLicenseDetail": {"UserId"},
    "Set-MgUserLicense": {"UserId", "AddLicenses", "RemoveLicenses"},
    # Windows PowerShell 5.1 built-ins
    "ConvertTo-Json": {"InputObject", "Compress", "Depth"},
    "ConvertFrom-Json": set(),
    "Export-Csv": {"LiteralPath", "NoTypeInformation", "Encoding", "Append"},
    "Get-Content": {"LiteralPath", "Raw", "Encoding"},
    "Read-Host": {"Prompt"},
    "Test-Path": {"LiteralPath"},
    "Write-Verbose": set(),
    "ForEach-Object": set(),
    "Get-Command": {"Name"},
    "Get-Date": set(),
    "Get-Location": set(),
    "Join-Path": {"Path", "ChildPath"},
    "New-Object": {"TypeName", "ArgumentList"},
    "Out-Null": set(),
    "Select-Object": {"Property", "Unique"},
    "Set-StrictMode": {"Version"},
    "Sort-Object": set(),
    "Start-Sleep": {"Seconds"},
    "Start-Transcript": {"LiteralPath", "Append"},
    "Stop-Transcript": set(),
    "Where-Object": set(),
    "Write-Error": {"Message"},
    "Write-Host": set(),
    "Write-Warning": set(),
}

# Properties of the objects Get-User / Get-MailUser return in Exchange Online
# (UserSchema / MailUserSchema), the only ones the script may read with Get-Prop.
USER_PROPERTIES = {
    "ExternalDirectoryObjectId",
    "Guid",
    "PreviousRecipientTypeDetails",
    "RecipientType",
    "RecipientTypeDetails",
    "SKUAssigned",
    "UserPrincipalName",
    "ExchangeGuid",
    # MailUser: the blockers checked before clearing
    "LitigationHoldEnabled",
    "InPlaceHolds",
    "ArchiveGuid",
}
#: Functions only defined with --license-reset, called only behind $LicenseReset / a restore-file entry.
LICENSE_ONLY = {"Invoke-LicenseReset", "Restore-Entry", "Get-GraphId", "Get-PlanText"}


def _functions(script: str) -> dict[str, set[str]]:
    """The script's own functions and the parameter names each declares."""
    out: dict[str, set[str]] = {}
    for match in re.finditer(r"(?m)^function ([\w-]+) \{\n((?:\s*#[^\n]*\n)*)(\s*param\(([^)]*)\))?", script):
        out[match.group(1)] = set(re.findall(r"\$(\w+)", match.group(4) or ""))
    return out


@pytest.mark.parametrize("license_reset", [False, True])
def test_every_command_is_real_and_called_with_real_parameters(license_reset: bool) -> None:
    script = generate(["a@contoso.com"], license_reset=license_reset, generated_at=FIXED_TIME)
    own = _functions(script)
    assert {"Get-OneUser", "Invoke-Clear", "Invoke-OneUser", "ConvertTo-Literal"} <= set(own)
    calls = parse(script).commands()
    assert len(calls) > 50
    for name, params in calls:
        if name in LICENSE_ONLY and not license_reset:
            continue  # only reached when $LicenseReset is $true (checked below)
        if name in own:
            assert set(params) <= own[name], (name, params, own[name])
        else:
            assert name in EXTERNAL, f"{name}: not a known cmdlet (typo, or not in Windows PowerShell 5.1?)"
            assert set(params) <= EXTERNAL[name] | COMMON, (name, params)
    assert "if (-not $changed -and $LicenseReset) {" in script
    assert f"$LicenseReset = ${str(license_reset).lower()}" in script


def test_the_checker_catches_a_wrong_parameter() -> None:
    script = generate(["a"], license_reset=True, generated_at=FIXED_TIME)
    bad = script.replace("-AddLicenses $add", "-AddLicense $add")
    calls = dict((n, p) for n, p in parse(bad).commands() if n == "Set-MgUserLicense" and "AddLicense" in p)
    assert calls and not set(calls["Set-MgUserLicense"]) <= EXTERNAL["Set-MgUserLicense"] | COMMON


def test_splatted_connection_parameters_are_real() -> None:
    script = generate(["a"], license_reset=True, generated_at=FIXED_TIME)
    main = script[script.index("# ---- Main ----") :]
    literal = main[main.index("$connect = @{") + len("$connect = @{") :].split("}")[0]
    exo = set(re.findall(r"\$connect\.(\w+) =", main)) | set(re.findall(r"(\w+) = ", literal))
    assert exo == {"ShowBanner", "ErrorAction", "AppId", "CertificateThumbprint", "Organization"}
    graph_fn = script[script.index("function Connect-Graph") : script.index("function Get-LicenseState")]
    graph = set(re.findall(r"\$connect\.(\w+) =", graph_fn)) | {"ErrorAction"}
    assert graph == {"ErrorAction", "ClientId", "CertificateThumbprint", "TenantId", "Scopes", "NoWelcome"}


@pytest.mark.parametrize("license_reset", [False, True])
def test_only_real_user_properties_are_read(license_reset: bool) -> None:
    script = generate(["a"], license_reset=license_reset, generated_at=FIXED_TIME)
    read = set(re.findall(r"Get-Prop (?:\$\w+|\(.*?\)) '(\w+)'", script)) - {"Format"}  # Format: of the restore file
    assert {"PreviousRecipientTypeDetails", "RecipientTypeDetails", "ExchangeGuid"} <= read
    assert read <= USER_PROPERTIES
    graph = re.search(r"-Property '([^']*)'", script)
    if license_reset:
        assert graph is not None
        assert graph.group(1).split(",") == ["Id", "UserPrincipalName", "AssignedLicenses", "LicenseAssignmentStates"]
        for used in (
            "$mg.AssignedLicenses",
            "$mg.LicenseAssignmentStates",
            "$l.SkuId",
            "$l.DisabledPlans",
            "$s.AssignedByGroup",
            "$s.SkuId",
        ):
            assert used in script
    else:
        assert graph is None


def test_exchange_session_is_checked_before_the_first_user() -> None:
    script = generate(["a"], generated_at=FIXED_TIME)
    fn = script[script.index("function Assert-ExchangeSession") :]
    fn = fn[: fn.index("\n}\n")]
    assert "@('Get-User', 'Get-MailUser', 'Get-Mailbox', 'Set-User')" in fn
    assert ".Parameters.ContainsKey('PermanentlyClearPreviousMailboxInfo')" in fn
    assert "if ($Apply) { throw $message }" in fn and "Write-Warning $message" in fn
    main = script[script.index("# ---- Main ----") :]
    order = [
        main.index(s)
        for s in ("Connect-ExchangeOnline @connect", "Assert-ExchangeSession", "foreach ($identity in $Identities)")
    ]
    assert order == sorted(order)
    # not inside the 'if (-not $SkipConnect)' block: also checked with -SkipConnect
    block = main[main.index("if (-not $SkipConnect) {") : main.index("Assert-ExchangeSession")]
    assert block.count("{") == block.count("}")


def test_mail_user_without_exchange_guid_is_refused_before_any_change() -> None:
    script = generate(["a"], generated_at=FIXED_TIME)
    body = script[script.index("function Invoke-OneUser") :]
    steps = [
        "$id = Get-UniqueId -User $user -Fallback $Identity",
        "'HasCloudMailbox'",
        "if (Test-NothingToClear $r.PreviousBefore) {",
        "if ($r.RecipientTypeDetails -eq 'MailUser')",
        "$mailUser = Get-MailUser -Identity $id -ErrorAction Stop",
        "Test-EmptyGuid $r.ExchangeGuid",
        "'NoExchangeGuid'",
        "Get-Blockers",
        "'Blocked'",
        "if (-not $Apply)",
        "Invoke-Clear -Id $id",
    ]
    positions = [body.index(s) for s in steps]
    assert positions == sorted(positions)
    assert "$EmptyGuid = '00000000-0000-0000-0000-000000000000'" in script
    assert "'ExchangeGuid', 'PreviousBefore'" in script  # a column of the result CSV
    # the object that was checked is the one changed: the Exchange object Guid comes first
    assert "foreach ($name in @('Guid', 'ExternalDirectoryObjectId'))" in script


def test_cloud_mailbox_is_recognised_by_type_or_details() -> None:
    script = generate(["a"], generated_at=FIXED_TIME)
    assert (
        "($r.RecipientType -eq 'UserMailbox' -or ($r.RecipientTypeDetails -like '*Mailbox' "
        "-and $r.RecipientTypeDetails -ne 'MailUser'))"
    ) in script


def test_graph_modules_named_right_and_checked_before_connecting() -> None:
    script = generate(["a"], license_reset=True, generated_at=FIXED_TIME)
    fn = script[script.index("function Connect-Graph") : script.index("function Get-LicenseState")]
    assert "@('Get-MgContext', 'Connect-MgGraph', 'Get-MgUser', 'Get-MgUserLicenseDetail', 'Set-MgUserLicense')" in fn
    assert "Install-Module Microsoft.Graph.Authentication, Microsoft.Graph.Users, Microsoft.Graph.Users.Actions" in fn
    assert fn.index("Set-MgUserLicense')") < fn.index("Get-MgContext)") < fn.index("Connect-MgGraph @connect")
    assert "Identity.DirectoryManagement" not in script  # Set-MgUserLicense lives in Microsoft.Graph.Users.Actions
    assert "Microsoft.Graph.Users.Actions" in script[: script.index("#>")]


def test_restore_retries_without_a_useless_last_sleep() -> None:
    script = generate(["a"], license_reset=True, generated_at=FIXED_TIME)
    restore = script[script.index("function Restore-Licenses") : script.index("function Invoke-LicenseReset")]
    assert "for ($attempt = 1; $attempt -le 5; $attempt++)" in restore
    assert "if ($attempt -lt 5) { Start-Sleep -Seconds (10 * $attempt) }" in restore


def _hint_pattern(script: str) -> str:
    fn = script[script.index("function ConvertTo-Literal") :]
    match = re.search(r'-replace "(\(\[[^"]*\]\))", \'\$1\$1\'', fn)
    assert match is not None, "ConvertTo-Literal doubles the quote characters with -replace"
    return match.group(1)


def test_printed_hints_quote_like_the_generator() -> None:
    script = generate(["a"], license_reset=True, generated_at=FIXED_TIME)
    assert script.count("(ConvertTo-Literal $upn)") == 1
    assert "(ConvertTo-Literal $Entry.GraphId)" in script and "(ConvertTo-Literal $RestoreFile)" in script
    assert '-replace "\'", "\'\'"' not in script  # the old hint doubled only the ASCII quote
    pattern = _hint_pattern(script)
    assert pattern == "(['\\u2018\\u2019\\u201A\\u201B])"  # ASCII in the script, .NET regex escapes


@given(st.text(max_size=30))
def test_hint_quoting_matches_quote(value: str) -> None:
    """.NET and Python read this character-class pattern the same way: the hint equals quote()."""
    if unsafe_character(value):
        return
    pattern = _hint_pattern(generate(["a"], generated_at=FIXED_TIME))
    assert "'" + re.sub(pattern, r"\1\1", value) + "'" == quote(value)


def test_unrestored_licences_show_in_the_result_even_after_an_error() -> None:
    script = generate(["a"], license_reset=True, generated_at=FIXED_TIME)
    body = script[script.index("function Invoke-OneUser") :]
    catch = body[body.index("    } catch {\n        $r.Result = 'Error'\n") :]
    catch = catch[: catch.index("return $r")]
    assert "if ($restoreFailed) { $r.Result = 'Error-LicencesNotRestored' }" in catch
    assert "if ($restoreFailed) { $r.Result = $r.Result + '-LicencesNotRestored' }" in body


def test_result_csv_has_a_bom_on_both_powershell_versions() -> None:
    script = generate(["a"], generated_at=FIXED_TIME)
    steps = [
        "$CsvEncoding = 'UTF8'",
        "if ($PSVersionTable.PSVersion.Major -ge 6) { $CsvEncoding = 'utf8BOM' }",
        "Export-Csv -LiteralPath $ResultCsv -NoTypeInformation -Encoding $CsvEncoding -Append",
    ]
    positions = [script.index(s) for s in steps]
    assert positions[0] < positions[1] and script.count("Export-Csv") == 1


def test_warning_preference_is_pinned_so_the_no_change_warning_is_seen() -> None:
    """A session with $WarningPreference = 'Stop' or 'Ignore' would turn the warning into an error or lose it."""
    script = generate(["a"], generated_at=FIXED_TIME)
    assert script.index("$WarningPreference = 'Continue'") < script.index("$Identities = @(")
    assert "-WarningVariable w" in script and '$w | Where-Object { "$_" -match $NoChangePattern }' in script
