"""The WinRM HTTPS binding script: parsed with tree-sitter-powershell, values quoted safely."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.powershell import unquote, unsafe_character
from opsbook.runbooks.winrm_https.script import BOM, DEFAULT_LOG_DIR, ScriptOptions, encode, generate
from tests.powershell_grammar import parse

FIXED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
QUOTES = "'\u2018\u2019\u201a\u201b"
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: Cmdlets (and our own functions) that support ShouldProcess: only these may be given -WhatIf/-Confirm.
SHOULD_PROCESS = {
    "New-Item",
    "Add-Content",
    "Set-Content",
    "Copy-Item",
    "Remove-Item",
    "New-NetFirewallRule",
    "Set-NetFirewallRule",
    "Register-ScheduledTask",
    "Set-ListenerCertificate",
    "Set-FirewallRule",
    "Register-RenewalTask",
    "Invoke-Main",
}


def script(root_ca: str = "Corp Root CA", **kw: object) -> str:
    return generate(ScriptOptions(root_ca=root_ca, **kw), generated_at=FIXED)  # type: ignore[arg-type]


def new_literals(value: str, field: str = "root_ca") -> list[str]:
    """Verbatim literals present with *value* and not with a placeholder: where the value landed."""
    base = parse(script(**{field: "PLACEHOLDER-X"})).verbatim_literals()  # type: ignore[arg-type]
    got = parse(script(**{field: value})).verbatim_literals()  # type: ignore[arg-type]
    return list((Counter(got) - Counter(base)).elements())


@pytest.mark.parametrize("register", [False, True])
def test_script_parses_without_errors(register: bool) -> None:
    parsed = parse(script(register_renewal_task=register))
    assert parsed.errors == []
    names = set(parsed.command_names())
    assert {
        "Set-WSManInstance",
        "New-WSManInstance",
        "Remove-WSManInstance",
        "New-NetFirewallRule",
        "Write-EventLog",
        "Get-WSManInstance",
    } <= names
    assert ("Register-ScheduledTask" in names) is register


def test_script_structure_follows_the_runbook() -> None:
    text = script()
    assert text.startswith("#Requires -Version 5.1")
    assert "[CmdletBinding(SupportsShouldProcess = $true)]" in text
    # param block with the option defaults
    assert re.search(r"\[int\] \$Port = 5986,", text)
    assert "[string] $RootCA = 'Corp Root CA'," in text
    assert f"[string] $LogDir = '{DEFAULT_LOG_DIR}'," in text
    # deterministic choice: EKU, name, chain, key, validity, latest NotAfter then thumbprint
    for needle in (
        "1.3.6.1.5.5.7.3.1",
        "HasPrivateKey",
        "X509Chain",
        "NotAfter }; Descending = $true",
        "Thumbprint }; Descending = $false",
        "DnsNameList",
    ):
        assert needle in text
    # idempotent, safe rebind with restore, verification, firewall Domain profile, logging, exit codes
    assert "nothing to do" in text
    assert "restoring" in text and "Restore-Listener -Previous $Current" in text
    assert "Test-ListenerBinding" in text and "netsh.exe http show sslcert" in text
    assert "-Profile Domain" in text
    assert "winrm-https-{0}.log" in text and "Get-Date -Format 'yyyy-MM-dd'" in text
    assert "exit 1" in text and "exit 0" in text
    assert "$PSCmdlet.ShouldProcess(" in text
    assert "Register-RenewalTask" not in text


def test_renewal_task_watches_lifecycle_events_and_startup() -> None:
    text = script(register_renewal_task=True)
    assert "[switch] $RegisterRenewalTask = $true" in text
    assert "Microsoft-Windows-CertificateServicesClient-Lifecycle-System/Operational" in text
    assert "EventID=1001 or EventID=1006" in text
    assert "New-ScheduledTaskTrigger -AtStartup" in text
    assert "S-1-5-18" in text  # runs as SYSTEM
    assert "$env:ProgramFiles" in text  # installed where only administrators can write
    assert "    if ($RegisterRenewalTask) {\n        Register-RenewalTask" in text


def test_renewal_task_never_points_at_a_missing_copy() -> None:
    """Run as a script block (Invoke-Command -FilePath) there is no $PSCommandPath to copy: fail, don't register."""
    text = script(register_renewal_task=True)
    body = text[text.index("function Register-RenewalTask") : text.index("function Invoke-Main")]
    guard = body.index("if (-not (Test-Path -LiteralPath $installed)) {")
    assert body.index("Copy-Item -LiteralPath $PSCommandPath") < guard < body.index("Register-ScheduledTask")
    assert "throw (" in body[guard : body.index("Register-ScheduledTask")]
    assert parse(text).errors == []


def test_generation_is_deterministic() -> None:
    assert script("Corp Root CA", port=5987) == script("Corp Root CA", port=5987)
    assert "[int] $Port = 5987," in script(port=5987)


@pytest.mark.parametrize(
    "value",
    [
        "Corp Root CA",
        "O'Brien CA",
        "‘Smart’ ‚quotes‛ CA",
        "$(Remove-Item C:\\)",
        "a#>b <#c",
        '"double" `tick` $var @{x}',
        "Ünïcødé Root CA — 2026",
    ],
)
def test_root_ca_is_one_verbatim_literal(value: str) -> None:
    lits = new_literals(value)
    assert len(lits) == 1, lits
    assert unquote(lits[0]) == value
    body = lits[0][1:-1]
    for q in QUOTES:  # every PowerShell quote character doubled, independently of quote()
        assert body.count(q) == 2 * value.count(q)
    assert parse(script(value)).errors == []


def test_log_dir_is_one_verbatim_literal() -> None:
    value = "D:\\Logs\\O'Neil’s WinRM"
    lits = new_literals(value, "log_dir")
    assert lits == ["'D:\\Logs\\O''Neil’’s WinRM'"]
    assert unquote(lits[0]) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "tab\there", "nul\x00", "esc\x1b[0m", "line\u2028sep", "\x85"])
def test_control_characters_are_refused(value: str) -> None:
    with pytest.raises(InputError, match="control character"):
        script(value)
    with pytest.raises(InputError, match="control character"):
        script(log_dir=value)


@pytest.mark.parametrize("value", ["\u202eAC tooR proC", "Corp\u200eRoot", "x\u2066y\u2069", "\u061c"])
def test_bidirectional_controls_are_refused(value: str) -> None:
    """Trojan Source: a right-to-left override would make the script read differently from what it does."""
    with pytest.raises(InputError, match="bidirectional control character"):
        script(value)
    with pytest.raises(InputError, match="bidirectional control character"):
        script(log_dir=value)


@pytest.mark.parametrize("register", [False, True])
def test_whatif_is_given_only_to_commands_that_support_it(register: bool) -> None:
    """Write-EventLog/New-EventLog have no -WhatIf: passing it fails the call, so nothing reached the event log."""
    commands = parse(script(register_renewal_task=register)).commands()
    given_whatif = {name for name, params in commands if any(p.lower() in ("whatif", "confirm") for p in params)}
    assert given_whatif <= SHOULD_PROCESS, given_whatif - SHOULD_PROCESS
    event_log = [(name, params) for name, params in commands if name in ("Write-EventLog", "New-EventLog")]
    assert {name for name, _ in event_log} == {"Write-EventLog", "New-EventLog"}
    assert all("Source" in params for _, params in event_log)


@pytest.mark.parametrize("kw", [{"root_ca": ""}, {"root_ca": "   "}, {"log_dir": ""}, {"port": 0}, {"port": 70000}])
def test_bad_values_are_refused(kw: dict[str, object]) -> None:
    opts = {"root_ca": "Corp Root CA", **kw}
    with pytest.raises(InputError):
        generate(ScriptOptions(**opts))  # type: ignore[arg-type]


def test_encode_bom_and_crlf() -> None:
    data = encode(script("Ünï CA"))
    assert data.startswith(BOM.encode("utf-8"))
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert "'Ünï CA'".encode() in data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
@example("'")
@example("\u2019\u2019")
@example("'; Remove-Item -Recurse C:\\ #")
def test_any_root_ca_is_refused_or_round_trips(value: str) -> None:
    refused = unsafe_character(value) is not None or not value.strip() or any(c in BIDI for c in value)
    if refused:
        with pytest.raises(InputError):
            script(value)
        return
    text = script(value)
    parsed = parse(text)
    assert parsed.errors == []
    lits = new_literals(value)
    assert len(lits) == 1
    assert unquote(lits[0]) == value
    assert text.count("$RootCA = ") == 1


def test_template_parameter_and_selection() -> None:
    """Issue #12: a newer Computer-template certificate must not be bound in place of the WinRM one."""
    text = script(template="WinRM HTTPS")
    parsed = parse(text)
    assert parsed.errors == []
    assert parsed.parameters()["Template"] == "string"
    assert "[string] $Template = 'WinRM HTTPS'," in text
    assert "[string] $Template = ''," in script()  # default: the template of the listener's certificate
    reader = parsed.function("Get-CertificateTemplate")
    assert "1.3.6.1.4.1.311.21.7" in reader.source and "1.3.6.1.4.1.311.20.2" in reader.source
    choose = parsed.function("Get-BindingCertificate")
    assert {"TemplateName", "Like"} <= set(choose.parameters())
    assert choose.first_call("Test-CertificateTemplate") >= 0
    main = parsed.function("Invoke-Main")
    # The listener (and so its certificate's template) is known before the certificate is chosen.
    assert 0 <= main.first_call("Get-HttpsListener") < main.first_call("Get-BindingCertificate")
    call = next(t for n, t, _ in main.calls() if n == "Get-BindingCertificate")
    assert "-TemplateName $Template" in call and "-Like $currentCert" in call


def test_template_value_is_one_verbatim_literal() -> None:
    value = "O'Neil’s WinRM"
    lits = new_literals(value, "template")
    assert len(lits) == 1 and unquote(lits[0]) == value
    with pytest.raises(InputError, match="bidirectional"):
        script(template="Win\u202eRM")
    with pytest.raises(InputError, match="control character"):
        script(template="a\nb")


# ------------------------------------------------------------------ issue #12: the binding script's safety
# PowerShell is not installed here: these tests parse the script with the real grammar and assert its structure.


def test_matching_thumbprint_still_repairs_a_stale_http_sys_binding() -> None:
    parsed = parse(script())
    main = parsed.function("Invoke-Main")
    # "nothing to do" only when the listener AND HTTP.sys serve the chosen certificate
    body = main.source
    assert "$bindingOk = Test-ListenerBinding -Thumbprint $cert.Thumbprint -ListenPort $Port" in body
    assert body.index("$bindingOk") < body.index("nothing to do")
    repair = main.call_contexts("Repair-HttpSysBinding")
    assert repair and any("$listenerOk" in x and "-not $bindingOk" in x for x in repair[0] if x.startswith("if:"))
    fix = parsed.function("Repair-HttpSysBinding")
    assert "SupportsShouldProcess = $true" in fix.source
    netsh = [text for name, text, _ in fix.calls() if name == "netsh.exe"]
    assert any("update" in t and "sslcert" in t and "certhash=" in t and "appid=" in t for t in netsh), netsh
    assert "afebb9ad-9b97-4a91-9ab5-daf4d59122f6" in fix.source  # WinRM's HTTP.sys application id
    assert "$LASTEXITCODE" in fix.source
    # repaired, then verified again
    assert main.first_call("Repair-HttpSysBinding") < main.source.rindex("Test-ListenerBinding")


def test_replacing_the_listener_never_leaves_zero_listeners() -> None:
    parsed = parse(script())
    setter = parsed.function("Set-ListenerCertificate")
    removes = setter.call_contexts("Remove-WSManInstance")
    assert len(removes) == 1
    # the removal and the creation of the new listener are in one try whose catch restores and verifies
    tries = [x for x in removes[0] if x.startswith("try:")]
    assert tries and "New-HttpsListener -Thumbprint $Thumbprint" in tries[0]
    assert tries[0].index("Remove-WSManInstance") < tries[0].index("New-HttpsListener -Thumbprint $Thumbprint")
    assert "Test-ListenerBinding -Thumbprint $Thumbprint" in tries[0]  # the new one must answer, or back
    catch = setter.call_contexts("Restore-Listener")
    assert catch and any(x.startswith("catch:") for x in catch[0])
    catch_text = next(x for x in catch[0] if x.startswith("catch:"))
    assert "Test-ListenerBinding -Thumbprint $old.Thumbprint" in catch_text  # the restore is verified
    restore = parsed.function("Restore-Listener")
    # restore by Remove+New only when the listener is gone or Set failed; always verified at the end
    assert restore.first_call("Get-HttpsListener") >= 0
    assert restore.source.rindex("Test-ListenerBinding") > restore.first_call("New-WSManInstance")
    assert "throw" in restore.source  # a failed restore is loud (exit 1), with the command to run by hand
    # every place that removes a listener is inside a try (never a bare removal)
    for ctx in parsed.call_contexts("Remove-WSManInstance"):
        assert any(x.startswith(("try:", "catch:")) for x in ctx), ctx


def test_whatif_changes_nothing_not_even_the_log_folder_or_event_source() -> None:
    text = script(register_renewal_task=True)
    parsed = parse(text)
    assert "-WhatIf:$false" not in text
    assert "$script:DryRun = [bool]$WhatIfPreference" in text
    for command in ("New-Item", "Add-Content", "New-EventLog", "Write-EventLog"):
        contexts = parsed.function("Write-Log").call_contexts(command)
        assert contexts, command
        for ctx in contexts:
            assert any(x.startswith("if:") and "-not $script:DryRun" in x for x in ctx), (command, ctx)
    # every other change is behind ShouldProcess
    for command in (
        "Set-WSManInstance",
        "New-WSManInstance",
        "Remove-WSManInstance",
        "Register-ScheduledTask",
        "Copy-Item",
        "New-NetFirewallRule",
        "Set-NetFirewallRule",
    ):
        for ctx in parsed.call_contexts(command):
            fn = next(x for x in ctx if x.startswith("function:"))[len("function:") :]
            source = parsed.function(fn).source
            assert "SupportsShouldProcess = $true" in source or fn in ("New-HttpsListener", "Restore-Listener"), fn
    # wevtutil (enables a log) only after ShouldProcess in Register-RenewalTask
    reg = parsed.function("Register-RenewalTask")
    assert reg.source.index("ShouldProcess") < reg.first_call("wevtutil.exe")


def test_register_renewal_task_is_a_switch_that_file_invocation_can_turn_off() -> None:
    parsed = parse(script(register_renewal_task=True))
    assert parsed.parameters()["RegisterRenewalTask"] == "switch"
    assert "[switch] $RegisterRenewalTask = $true" in parsed.source
    assert "[switch] $RegisterRenewalTask = $false" in script()
    assert "[bool] $RegisterRenewalTask" not in parsed.source  # -File passes '$false' as a string to a [bool]
    assert "-RegisterRenewalTask:$false" in parsed.source  # documented in the help and used by the task


def test_scheduled_task_retries_and_does_not_reregister_itself() -> None:
    parsed = parse(script(register_renewal_task=True))
    reg = parsed.function("Register-RenewalTask")
    settings_call = next(text for name, text, _ in reg.calls() if name == "New-ScheduledTaskSettingsSet")
    assert "-RestartCount" in settings_call and "-RestartInterval" in settings_call
    action = next(text for name, text, _ in reg.calls() if name == "New-ScheduledTaskAction")
    assert "$arguments" in action
    assert "-RegisterRenewalTask:$false" in reg.source[: reg.source.index("New-ScheduledTaskAction")]
    # idempotent: an up-to-date task and copy are left alone (no Register-ScheduledTask every run)
    assert reg.first_call("Get-ScheduledTask") < reg.first_call("Register-ScheduledTask")
    assert reg.first_call("Get-FileHash") >= 0
    for ctx in reg.call_contexts("Register-ScheduledTask"):
        assert any(x.startswith("if:") and "$upToDate" in x for x in ctx), ctx
    # the startup trigger waits a little, and the script itself waits for WinRM (bounded)
    assert "$atStartup.Delay = 'PT1M'" in reg.source
    wait = parsed.function("Wait-WinRMService")
    assert wait.first_call("Start-Sleep") >= 0 and wait.first_call("Get-WSManInstance") >= 0
    assert wait.first_call("Test-WSMan") == -1  # needs the HTTP listener, which step 5 retires
    assert "$deadline" in wait.source and "throw" in wait.source
    main = parsed.function("Invoke-Main")
    assert 0 <= main.first_call("Wait-WinRMService") < main.first_call("Get-HttpsListener")
