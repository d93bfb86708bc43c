# ruff: noqa: E501 - PowerShell text
"""The PowerShell that ``winrm audit`` runs remotely, and how its answer is read back.

The script prints one line ``OPSBOOK-AUDIT:<base64 of UTF-8 JSON>`` so that console code
pages, progress records and stray output cannot corrupt the answer. It is sent as
``powershell -EncodedCommand`` (UTF-16LE base64); WinRS runs commands through cmd.exe,
whose command line is limited to 8191 characters, so the script is kept small and
:func:`command_line` refuses to exceed the limit.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

MARKER = "OPSBOOK-AUDIT:"
CMD_LIMIT = 8191

#: ``@@PORT@@`` is replaced by an integer (never by text).
SCRIPT = r"""$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$port = @@PORT@@
$ls = @()
foreach ($l in Get-ChildItem 'WSMan:\localhost\Listener') {
    $h = [ordered]@{ Name = $l.Name; Keys = @($l.Keys) }
    foreach ($i in Get-ChildItem ('WSMan:\localhost\Listener\' + $l.Name)) {
        if ($i.Name -eq 'ListeningOn') { continue }
        $h[$i.Name] = [string]$i.Value
        if ($i.Name -eq 'Enabled') { $h['Source'] = [string]$i.SourceOfValue }
    }
    $ls += $h
}
$ssl = @()
foreach ($ip in @('0.0.0.0', '[::]')) {
    $t = (& netsh.exe http show sslcert ('ipport={0}:{1}' -f $ip, $port)) -join "`n"
    $m = [regex]::Match($t, ':\s*([0-9a-fA-F]{40})\b')
    if ($m.Success) { $ssl += [ordered]@{ IpPort = ('{0}:{1}' -f $ip, $port); Hash = $m.Groups[1].Value.ToUpperInvariant() } }
}
$cs = @()
foreach ($c in Get-ChildItem 'Cert:\LocalMachine\My') {
    $ch = New-Object System.Security.Cryptography.X509Certificates.X509Chain
    $ch.ChainPolicy.RevocationMode = 'NoCheck'
    $ch.ChainPolicy.VerificationFlags = 'IgnoreNotTimeValid'
    $rt = $null
    if ($ch.Build($c) -and $ch.ChainElements.Count -ge 2) { $rt = $ch.ChainElements[$ch.ChainElements.Count - 1].Certificate }
    $ch.Reset()
    $tpl = ''
    foreach ($e in $c.Extensions) {
        if ($e.Oid.Value -eq '1.3.6.1.4.1.311.21.7' -or $e.Oid.Value -eq '1.3.6.1.4.1.311.20.2') { $tpl = $e.Format($false) }
    }
    $cs += [ordered]@{
        Thumbprint = $c.Thumbprint; Subject = $c.Subject; Issuer = $c.Issuer
        DnsNameList = @($c.DnsNameList | ForEach-Object { [string]$_.Unicode })
        NotBefore = $c.NotBefore.ToUniversalTime().ToString('o'); NotAfter = $c.NotAfter.ToUniversalTime().ToString('o')
        EnhancedKeyUsageList = @($c.EnhancedKeyUsageList | ForEach-Object { [string]$_.ObjectId })
        HasPrivateKey = [bool]$c.HasPrivateKey; Template = $tpl
        Root = $(if ($rt) { $rt.Subject } else { '' }); RootThumbprint = $(if ($rt) { $rt.Thumbprint } else { '' })
    }
}
$au = [ordered]@{}
foreach ($i in Get-ChildItem 'WSMan:\localhost\Service\Auth') { $au[$i.Name] = [string]$i.Value }
$o = [ordered]@{ Computer = $env:COMPUTERNAME; Listeners = $ls; SslCert = $ssl; Certificates = $cs; ServiceAuth = $au }
$j = ConvertTo-Json -InputObject $o -Depth 6 -Compress
'OPSBOOK-AUDIT:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($j))
"""


def render(port: int) -> str:
    """The remote script for listener *port*."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"bad port {port!r}")
    return SCRIPT.replace("@@PORT@@", str(port))


def encoded(script: str) -> str:
    """UTF-16LE base64, as ``powershell -EncodedCommand`` expects."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def command_line(port: int) -> tuple[str, list[str]]:
    """(command, arguments) that run the audit script on the remote host."""
    args = [
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-EncodedCommand",
        encoded(render(port)),
    ]
    total = len("powershell.exe ") + len(" ".join(args))
    if total > CMD_LIMIT:  # pragma: no cover - guarded by a unit test
        raise ValueError(f"remote command line too long ({total} > {CMD_LIMIT})")
    return "powershell.exe", args


class AuditOutputError(ValueError):
    """The remote script's output could not be read (no marker, bad base64/JSON)."""


def parse_output(stdout: bytes) -> dict[str, Any]:
    """The JSON document from the script's stdout (raises :class:`AuditOutputError`)."""
    text = stdout.decode("utf-8", errors="replace")
    for raw in reversed(text.splitlines()):
        line = raw.strip()
        if line.startswith(MARKER):
            try:
                data = json.loads(base64.b64decode(line[len(MARKER) :], validate=True).decode("utf-8"))
            except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise AuditOutputError(f"unreadable audit answer: {exc}") from None
            if not isinstance(data, dict):
                raise AuditOutputError("unreadable audit answer: not a JSON object")
            return data
    raise AuditOutputError("the remote script printed no audit answer")


def make_output(document: dict[str, Any]) -> bytes:
    """What the script prints for *document* (used by the test fake, and documented here)."""
    payload = base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")
    return f"{MARKER}{payload}\r\n".encode("ascii")
