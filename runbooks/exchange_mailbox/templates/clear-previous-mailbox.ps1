<#
.SYNOPSIS
    Permanently clear the previous cloud-mailbox information of @@COUNT@@ Exchange Online user(s),
    so that a hybrid move (New-MoveRequest / migration batch) that failed with
    "Target user '...' already has a primary mailbox" can be retried.

.DESCRIPTION
    IRREVERSIBLE. Set-User -PermanentlyClearPreviousMailboxInfo deletes the link to the
    user's previous cloud mailbox: that mailbox and its archive can NEVER be reconnected or
    recovered afterwards. -WhatIf does not work on that parameter.

    This script is READ-ONLY unless you pass -Apply. Without -Apply it reads every user with
    Get-User, shows RecipientType, RecipientTypeDetails and PreviousRecipientTypeDetails and
    says what -Apply would do. It never touches a user that has a mailbox in Exchange Online
    right now, a user it cannot find, a user that matches more than one object, or a mail
    user without ExchangeGuid (the on-premises mailbox GUID was not synchronised: clearing
    could let Exchange Online create a second, empty cloud mailbox, and the move would fail
    anyway). It stops before the first user when Set-User lacks the
    -PermanentlyClearPreviousMailboxInfo parameter (not Exchange Online, or a role without it).

    With -Apply, for each user that has previous-mailbox info: Set-User
    -PermanentlyClearPreviousMailboxInfo, then Get-User again to prove the result.
@@LICENSE_HELP@@
    One result line per user is printed, the run is logged with Start-Transcript (-LogPath)
    and the results are written to a CSV file (-ResultCsv). The exit code is 1 when any user
    failed or was not cleared, 0 otherwise.

    Generated @@GENERATED_AT@@ by opsbook @@VERSION@@ (opsbook exchange clear-previous-mailbox).
    The identities are the data in $Identities at the top of the script; review them.

.PARAMETER Apply
    Make the change. Without it the script only reads and reports.

.PARAMETER LogPath
    Transcript file (default: clear-previous-mailbox-<time>.log in the current folder).

.PARAMETER ResultCsv
    CSV file with one row per user (default: clear-previous-mailbox-<time>.csv).

.PARAMETER SkipConnect
    Do not connect: use the Exchange Online (and Microsoft Graph) sessions already open.

.PARAMETER AppId
    App-only connection: the application (client) id. Needs -CertificateThumbprint and
    -Organization too. Without these three the connection is interactive.

.PARAMETER CertificateThumbprint
    App-only connection: thumbprint of the certificate in the current user's or machine's store.

.PARAMETER Organization
    App-only connection: the tenant's initial domain, e.g. contoso.onmicrosoft.com.
@@LICENSE_PARAM_HELP@@
.EXAMPLE
    .\Clear-PreviousMailbox.ps1
    Reports what would be done (read-only).

.EXAMPLE
    .\Clear-PreviousMailbox.ps1 -Apply -LogPath C:\Change\CHG0042.log -ResultCsv C:\Change\CHG0042.csv
#>
#Requires -Version 5.1
[CmdletBinding()]
param(
    [switch]$Apply,
    [string]$LogPath,
    [string]$ResultCsv,
    [switch]$SkipConnect,
    [string]$AppId,
    [string]$CertificateThumbprint,
    [string]$Organization@@EXTRA_PARAMS@@
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$WarningPreference = 'Continue'  # Exchange's "no settings ... modified" is a warning: show it, collect it, never stop on it

# ---- The users: review this list. One single-quoted literal per user. ----
$Identities = @@IDENTITIES@@

$GeneratedBy = @@GENERATED_BY@@
$LicenseReset = @@LICENSE_RESET@@

$NoChangePattern = 'no settings of .* have been modified|have not been modified'
$VerifySeconds = 120
$EmptyGuid = '00000000-0000-0000-0000-000000000000'

function Get-Prop {
    # A property of a (deserialized) object as a string; '' when it does not exist.
    param($Object, [string]$Name)
    if ($null -eq $Object) { return '' }
    $p = $Object.PSObject.Properties[$Name]
    if ($null -eq $p -or $null -eq $p.Value) { return '' }
    return [string]$p.Value
}

function Test-NothingToClear {
    param([string]$Previous)
    return ([string]::IsNullOrEmpty($Previous) -or $Previous -eq 'None')
}

function Get-OneUser {
    # Exactly one user for $Identity, or throws. Wildcards or a vague name could match several.
    param([string]$Identity)
    $found = @(Get-User -Identity $Identity -ErrorAction Stop)
    if ($found.Count -eq 0) { throw "no user matches '$Identity'" }
    if ($found.Count -gt 1) { throw ('{0} users match; give the UPN or the object id' -f $found.Count) }
    return $found[0]
}

function Test-EmptyGuid {
    param([string]$Value)
    return ([string]::IsNullOrEmpty($Value) -or $Value -eq $EmptyGuid)
}

function Get-UniqueId {
    # The immutable id of the user that was checked, so Set-User acts on that very object
    # (Guid is the Exchange object GUID, which every Exchange -Identity accepts).
    param($User, [string]$Fallback)
    foreach ($name in @('Guid', 'ExternalDirectoryObjectId')) {
        $v = Get-Prop $User $name
        if (-not (Test-EmptyGuid $v)) { return $v }
    }
    return $Fallback
}

function ConvertTo-Literal {
    # $Text as a single-quoted literal for the commands this script prints as hints
    # (PowerShell treats ' and the four typographic single quotes alike: all are doubled).
    param([string]$Text)
    return "'" + ($Text -replace "(['\u2018\u2019\u201A\u201B])", '$1$1') + "'"
}

function Assert-ExchangeSession {
    # Before the first user: the Exchange Online cmdlets are there, and Set-User has the parameter.
    foreach ($name in @('Get-User', 'Get-MailUser', 'Set-User')) {
        if (-not (Get-Command -Name $name -ErrorAction SilentlyContinue)) {
            throw ('{0} is not available: connect with Connect-ExchangeOnline first, or run without -SkipConnect' -f $name)
        }
    }
    if (-not (Get-Command -Name Set-User).Parameters.ContainsKey('PermanentlyClearPreviousMailboxInfo')) {
        $message = 'Set-User has no -PermanentlyClearPreviousMailboxInfo parameter in this session: it exists only in Exchange Online (not in an on-premises Exchange shell) and only for an account whose Exchange role includes it (Exchange Administrator / Organization Management)'
        if ($Apply) { throw $message }
        Write-Warning $message
    }
}

function Invoke-Clear {
    # Set-User -PermanentlyClearPreviousMailboxInfo; returns $true when Exchange reported a change.
    param([string]$Id)
    $w = $null
    Set-User -Identity $Id -PermanentlyClearPreviousMailboxInfo -Confirm:$false -WarningVariable w -ErrorAction Stop | Out-Null
    $noChange = @($w | Where-Object { "$_" -match $NoChangePattern })
    return ($noChange.Count -eq 0)
}

function Wait-Cleared {
    # Re-read PreviousRecipientTypeDetails until it is empty/None (bounded); returns the last value.
    param([string]$Id)
    $deadline = (Get-Date).AddSeconds($VerifySeconds)
    while ($true) {
        $previous = Get-Prop (Get-OneUser -Identity $Id) 'PreviousRecipientTypeDetails'
        if ((Test-NothingToClear $previous) -or (Get-Date) -ge $deadline) { return $previous }
        Start-Sleep -Seconds 10
    }
}
@@LICENSE_FUNCTIONS@@
function Invoke-OneUser {
    param([string]$Identity)
    $r = [ordered]@{
        Identity = $Identity; UserPrincipalName = ''; RecipientType = ''; RecipientTypeDetails = ''
        ExchangeGuid = ''; PreviousBefore = ''; PreviousAfter = ''; Result = ''; Failed = $true; Message = ''
        Time = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
    }
    try {
        $user = Get-OneUser -Identity $Identity
    } catch {
        $message = "$_"
        if ($message -match "couldn't be found|could not be found|no user matches|not found") { $r.Result = 'NotFound' } else { $r.Result = 'Error' }
        $r.Message = "cannot read the user: $message"
        return $r
    }
    $r.UserPrincipalName = Get-Prop $user 'UserPrincipalName'
    $r.RecipientType = Get-Prop $user 'RecipientType'
    $r.RecipientTypeDetails = Get-Prop $user 'RecipientTypeDetails'
    $r.PreviousBefore = Get-Prop $user 'PreviousRecipientTypeDetails'
    $r.PreviousAfter = $r.PreviousBefore
    Write-Host ('{0}: RecipientType={1} RecipientTypeDetails={2} PreviousRecipientTypeDetails={3}' -f $Identity, $r.RecipientType, $r.RecipientTypeDetails, $r.PreviousBefore)

    if ($r.RecipientType -eq 'UserMailbox' -or ($r.RecipientTypeDetails -like '*Mailbox' -and $r.RecipientTypeDetails -ne 'MailUser')) {
        $r.Result = 'HasCloudMailbox'
        $r.Message = 'the user has a mailbox in Exchange Online right now; clearing previous-mailbox info is not the fix (the move would still fail); nothing done'
        return $r
    }
    if (Test-NothingToClear $r.PreviousBefore) {
        $r.Result = 'NothingToClear'; $r.Failed = $false
        $r.Message = 'PreviousRecipientTypeDetails is empty: nothing to clear'
        return $r
    }
    if ($r.RecipientTypeDetails -eq 'MailUser') {
        try {
            $r.ExchangeGuid = Get-Prop (Get-MailUser -Identity (Get-UniqueId -User $user -Fallback $Identity) -ErrorAction Stop) 'ExchangeGuid'
        } catch {
            $r.Result = 'Error'
            $r.Message = "cannot read the mail user: $_"
            return $r
        }
        if (Test-EmptyGuid $r.ExchangeGuid) {
            $r.Result = 'NoExchangeGuid'
            $r.Message = 'the mail user has no ExchangeGuid: the on-premises mailbox GUID is not synchronised, so once the previous-mailbox info is gone a licence would make Exchange Online create a new, empty cloud mailbox (and the move would fail anyway); fix the sync first (on-premises: Get-RemoteMailbox / Set-RemoteMailbox -ExchangeGuid, then a delta sync); nothing done'
            return $r
        }
    }
    if (-not $Apply) {
        $r.Result = 'WouldClear'; $r.Failed = $false
        $r.Message = 'would run Set-User -PermanentlyClearPreviousMailboxInfo (read-only run: pass -Apply)'
        return $r
    }

    $id = Get-UniqueId -User $user -Fallback $Identity
    $changed = $false
    $restoreFailed = $false
    try {
        $changed = Invoke-Clear -Id $id
        if (-not $changed -and $LicenseReset) {
            Write-Host ('  {0}: Exchange reported that nothing was modified; trying the licence reset' -f $Identity)
            $reset = Invoke-LicenseReset -User $user -Id $id
            $changed = $reset.Changed
            $restoreFailed = $reset.RestoreFailed
            $r.Message = $reset.Note
        } elseif (-not $changed) {
            $r.Message = 'Exchange reported that nothing was modified; generate the script with --license-reset (remove licence, retry, restore licence)'
        }
        if ($changed) {
            $r.PreviousAfter = Wait-Cleared -Id $id
        } else {
            $r.PreviousAfter = Get-Prop (Get-OneUser -Identity $id) 'PreviousRecipientTypeDetails'
        }
    } catch {
        $r.Result = 'Error'
        if ($restoreFailed) { $r.Result = 'Error-LicencesNotRestored' }
        $r.Message = ("failed: $_ " + $r.Message).Trim()
        return $r
    }
    if (Test-NothingToClear $r.PreviousAfter) {
        $r.Result = 'Cleared'; $r.Failed = $restoreFailed
        $r.Message = ('PreviousRecipientTypeDetails is now empty. ' + $r.Message).Trim()
    } else {
        $r.Result = 'NotCleared'
        $r.Message = ('PreviousRecipientTypeDetails is still {0}. {1}' -f $r.PreviousAfter, $r.Message).Trim()
    }
    if ($restoreFailed) { $r.Result = $r.Result + '-LicencesNotRestored' }
    return $r
}

# ---- Main ----
$stamp = (Get-Date).ToString('yyyyMMdd-HHmmss')
if (-not $LogPath) { $LogPath = Join-Path -Path (Get-Location).Path -ChildPath "clear-previous-mailbox-$stamp.log" }
if (-not $ResultCsv) { $ResultCsv = Join-Path -Path (Get-Location).Path -ChildPath "clear-previous-mailbox-$stamp.csv" }
if (($AppId -or $CertificateThumbprint -or $Organization) -and -not ($AppId -and $CertificateThumbprint -and $Organization)) {
    throw '-AppId, -CertificateThumbprint and -Organization go together (app-only connection)'
}

$transcript = $false
try {
    Start-Transcript -LiteralPath $LogPath -Append | Out-Null
    $transcript = $true
} catch {
    if ($Apply) { throw "cannot start the transcript at '$LogPath' ($_); not making changes without a log" }
    Write-Warning "cannot start the transcript at '$LogPath': $_"
}

$results = New-Object -TypeName System.Collections.Generic.List[object]
$exitCode = 0
try {
    if ($Apply) { $mode = 'APPLY (irreversible changes)' } else { $mode = 'read-only (pass -Apply to make changes)' }
    Write-Host ('{0}: {1} user(s), mode {2}, licence reset {3}' -f $GeneratedBy, $Identities.Count, $mode, $LicenseReset)

    if (-not $SkipConnect) {
        if (-not (Get-Command -Name Connect-ExchangeOnline -ErrorAction SilentlyContinue)) {
            throw 'the ExchangeOnlineManagement module is not installed: Install-Module ExchangeOnlineManagement -Scope CurrentUser'
        }
        $connect = @{ ShowBanner = $false; ErrorAction = 'Stop' }
        if ($AppId) {
            $connect.AppId = $AppId
            $connect.CertificateThumbprint = $CertificateThumbprint
            $connect.Organization = $Organization
        }
        Connect-ExchangeOnline @connect
    }
    Assert-ExchangeSession
@@CONNECT_GRAPH@@
    foreach ($identity in $Identities) {
        $r = Invoke-OneUser -Identity $identity
        if ($r.Failed) { $exitCode = 1 }
        $results.Add([pscustomobject]$r)
        Write-Host ('RESULT {0}: {1} - {2}' -f $r.Identity, $r.Result, $r.Message)
        if ($r.Result -eq 'Cleared') {
            $upn = $r.UserPrincipalName
            if (-not $upn) { $upn = $r.Identity }
            Write-Host ('  next: retry the move, e.g. New-MoveRequest -Identity {0} -Remote -RemoteHostName <hybrid endpoint> -TargetDeliveryDomain <tenant>.mail.onmicrosoft.com -RemoteCredential (Get-Credential), or resume the migration batch that holds the user (Get-MigrationUser -Identity {0}; Start-MigrationBatch)' -f (ConvertTo-Literal $upn))
        }
    }
} catch {
    $exitCode = 1
    Write-Error -Message ("stopped: $_") -ErrorAction Continue
} finally {
    if ($results.Count -gt 0) {
        $columns = @('Identity', 'UserPrincipalName', 'RecipientType', 'RecipientTypeDetails', 'ExchangeGuid', 'PreviousBefore', 'PreviousAfter', 'Result', 'Failed', 'Message', 'Time')
        # UTF-8 with BOM on both versions, so Excel shows non-ASCII names right ('UTF8' has no BOM on 7)
        $csvEncoding = 'UTF8'
        if ($PSVersionTable.PSVersion.Major -ge 6) { $csvEncoding = 'utf8BOM' }
        $results | Select-Object -Property $columns | Export-Csv -LiteralPath $ResultCsv -NoTypeInformation -Encoding $csvEncoding
        Write-Host ('results: {0}' -f $ResultCsv)
    }
    $failed = @($results | Where-Object { $_.Failed }).Count
    Write-Host ('summary: {0} user(s), {1} failed or not cleared, {2} not processed' -f $Identities.Count, $failed, ($Identities.Count - $results.Count))
    if ($transcript) { Stop-Transcript | Out-Null }
}
exit $exitCode
