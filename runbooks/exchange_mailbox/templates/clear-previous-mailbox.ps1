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

    Before clearing, each user is checked for what Microsoft documents as blockers, each
    reported with the next step, and the user is left alone: a litigation hold or in-place /
    eDiscovery holds (LitigationHoldEnabled, InPlaceHolds), an archive (ArchiveGuid: after
    clearing it is left behind, a reported problem; pass -ArchiveChecked once you confirmed it
    is the on-premises archive), and a soft-deleted mailbox with the same identity
    (Get-Mailbox -SoftDeletedMailbox).
@@LICENSE_HELP@@
    One result line per user is printed, the run is logged with Start-Transcript (-LogPath)
    and each user's result is appended to a CSV file (-ResultCsv) as soon as it is known, so
    an interrupted run keeps the rows of the users it finished. The exit code is 1 when any
    user failed, was blocked or was not cleared, 0 otherwise.

    Generated @@GENERATED_AT@@ by opsbook @@VERSION@@ (opsbook exchange clear-previous-mailbox).
    The identities are the data in $Identities at the top of the script; review them.

.PARAMETER Apply
    Make the change. Without it the script only reads and reports.

.PARAMETER LogPath
    Transcript file (default: clear-previous-mailbox-<time>.log in the current folder).

.PARAMETER ResultCsv
    CSV file with one row per user, appended as each user finishes (default:
    clear-previous-mailbox-<time>.csv).

.PARAMETER ArchiveChecked
    Clear users whose mail user has an ArchiveGuid too: only once you confirmed it is the
    archive of the on-premises mailbox (Get-RemoteMailbox on-premises shows the same ArchiveGuid).

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
    [string]$Organization,
    [switch]$ArchiveChecked@@EXTRA_PARAMS@@
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$WarningPreference = 'Continue'  # Exchange's "no settings ... modified" is a warning: show it, collect it, never stop on it

# ---- The users: review this list. One single-quoted literal per user. ----
$Identities = @@IDENTITIES@@

$GeneratedBy = @@GENERATED_BY@@
$LicenseReset = @@LICENSE_RESET@@
$ResultColumns = @('Identity', 'UserPrincipalName', 'RecipientType', 'RecipientTypeDetails', 'ExchangeGuid', 'PreviousBefore', 'PreviousAfter', 'Result', 'Failed', 'Message', 'Time')
$results = New-Object -TypeName System.Collections.Generic.List[object]
$exitCode = 0
$Journal = [ordered]@{}
$FinishHalfDone = $false

$NoChangePattern = 'no settings of .* have been modified|have not been modified'
$NotFoundPattern = "couldn't be found|could not be found|no user matches|not found"
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
    foreach ($name in @('Get-User', 'Get-MailUser', 'Get-Mailbox', 'Set-User')) {
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

function Get-Blockers {
    # What Microsoft documents as a reason not to clear (or a reported problem after it), one line each with the next step.
    param($MailUser, [string]$Lookup)
    if ($null -ne $MailUser) {
        if ((Get-Prop $MailUser 'LitigationHoldEnabled') -eq 'True') {
            'litigation hold (LitigationHoldEnabled): the previous mailbox''s data may be required; clear only after compliance agrees and the hold is lifted'
        }
        $holds = Get-Prop $MailUser 'InPlaceHolds'
        if ($holds) {
            'in-place, eDiscovery or retention holds (InPlaceHolds {0}): clear only after compliance agrees and the user is taken out of them' -f $holds
        }
        $archive = Get-Prop $MailUser 'ArchiveGuid'
        if (-not (Test-EmptyGuid $archive) -and -not $ArchiveChecked) {
            'an archive (ArchiveGuid {0}) that clearing would leave behind: compare with Get-RemoteMailbox on-premises; if it is the on-premises archive run again with -ArchiveChecked, otherwise export the previous archive and open a case with Microsoft' -f $archive
        }
    }
    try {
        $soft = @(Get-Mailbox -SoftDeletedMailbox -Identity $Lookup -ErrorAction Stop)
    } catch {
        $soft = @()
        if ("$_" -notmatch $NotFoundPattern) { "cannot check for a soft-deleted mailbox: $_" }
    }
    if ($soft.Count -gt 0) {
        'a soft-deleted mailbox with the same identity (Get-Mailbox -SoftDeletedMailbox {0}): restore its content if needed (New-MailboxRestoreRequest), or purge it (Remove-Mailbox -PermanentlyDelete), then run again' -f (ConvertTo-Literal $Lookup)
    }
}

function New-Result {
    param([string]$Identity)
    return [ordered]@{
        Identity = $Identity; UserPrincipalName = ''; RecipientType = ''; RecipientTypeDetails = ''
        ExchangeGuid = ''; PreviousBefore = ''; PreviousAfter = ''; Result = ''; Failed = $true; Message = ''
        Time = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
    }
}

function Add-Result {
    # One row: printed, kept for the summary, and appended to the results CSV at once (an interrupted run keeps it).
    param($Row)
    if ($Row.Failed) { $script:exitCode = 1 }
    $results.Add([pscustomobject]$Row)
    Write-Host ('RESULT {0}: {1} - {2}' -f $Row.Identity, $Row.Result, $Row.Message)
    [pscustomobject]$Row | Select-Object -Property $ResultColumns | Export-Csv -LiteralPath $ResultCsv -NoTypeInformation -Encoding $CsvEncoding -Append
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
    $r = New-Result -Identity $Identity
    try {
        $user = Get-OneUser -Identity $Identity
    } catch {
        $message = "$_"
        if ($message -match $NotFoundPattern) { $r.Result = 'NotFound' } else { $r.Result = 'Error' }
        $r.Message = "cannot read the user: $message"
        return $r
    }
    $r.UserPrincipalName = Get-Prop $user 'UserPrincipalName'
    $r.RecipientType = Get-Prop $user 'RecipientType'
    $r.RecipientTypeDetails = Get-Prop $user 'RecipientTypeDetails'
    $r.PreviousBefore = Get-Prop $user 'PreviousRecipientTypeDetails'
    $r.PreviousAfter = $r.PreviousBefore
    Write-Host ('{0}: RecipientType={1} RecipientTypeDetails={2} PreviousRecipientTypeDetails={3}' -f $Identity, $r.RecipientType, $r.RecipientTypeDetails, $r.PreviousBefore)
    $id = Get-UniqueId -User $user -Fallback $Identity

    # A user an earlier run left half-done (licences saved in the restore file, not restored yet).
    $halfDone = $null
    if ($LicenseReset) {
        $key = Get-GraphId -User $user
        if ($Journal.Contains($key) -and $Journal[$key].State -ne 'Restored') { $halfDone = $Journal[$key] }
    }
    if ($null -ne $halfDone -and -not ($Apply -and $FinishHalfDone)) {
        $r.Result = 'HalfDone'
        $r.Message = ('left half-done by an earlier run: licences not restored (state {0} in {1}); run with -Apply -HalfDone Finish to finish, or -Restore {2} to restore the licences' -f $halfDone.State, $RestoreFile, (ConvertTo-Literal $RestoreFile))
        return $r
    }
    if ($null -ne $halfDone -and (Test-NothingToClear $r.PreviousBefore)) {
        $restoreError = Restore-Entry -Entry $halfDone
        if ($restoreError) {
            $r.Result = 'Cleared-LicencesNotRestored'; $r.Message = "the earlier run cleared the user; LICENCES NOT RESTORED: $restoreError"
        } else {
            $r.Result = 'Cleared'; $r.Failed = $false; $r.Message = 'the earlier run cleared the user; licences restored from the restore file (verified)'
        }
        return $r
    }

    if ($null -eq $halfDone -and ($r.RecipientType -eq 'UserMailbox' -or ($r.RecipientTypeDetails -like '*Mailbox' -and $r.RecipientTypeDetails -ne 'MailUser'))) {
        $r.Result = 'HasCloudMailbox'
        $r.Message = 'the user has a mailbox in Exchange Online right now; clearing previous-mailbox info is not the fix (the move would still fail); nothing done'
        return $r
    }
    if (Test-NothingToClear $r.PreviousBefore) {
        $r.Result = 'NothingToClear'; $r.Failed = $false
        $r.Message = 'PreviousRecipientTypeDetails is empty: nothing to clear'
        return $r
    }
    $mailUser = $null
    if ($r.RecipientTypeDetails -eq 'MailUser') {
        try {
            $mailUser = Get-MailUser -Identity $id -ErrorAction Stop
            $r.ExchangeGuid = Get-Prop $mailUser 'ExchangeGuid'
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
    $lookup = $r.UserPrincipalName
    if (-not $lookup) { $lookup = $Identity }
    $blockers = @(Get-Blockers -MailUser $mailUser -Lookup $lookup)
    if ($blockers.Count -gt 0) {
        $r.Result = 'Blocked'
        $r.Message = ('not cleared, {0} blocker(s): {1}; nothing done' -f $blockers.Count, ($blockers -join ' | '))
        return $r
    }
    if (-not $Apply) {
        $r.Result = 'WouldClear'; $r.Failed = $false
        $r.Message = 'would run Set-User -PermanentlyClearPreviousMailboxInfo (read-only run: pass -Apply)'
        if ($LicenseReset) { $r.Message = $r.Message + '; ' + (Get-PlanText -User $user) }
        return $r
    }

    $changed = $false
    $restoreFailed = $false
    try {
        if ($null -eq $halfDone) { $changed = Invoke-Clear -Id $id }
        if (-not $changed -and $LicenseReset) {
            if ($null -eq $halfDone) { Write-Host ('  {0}: Exchange reported that nothing was modified; trying the licence fallback' -f $Identity) }
            $reset = Invoke-LicenseReset -User $user -Id $id -Identity $Identity -Entry $halfDone
            $changed = $reset.Changed
            $restoreFailed = $reset.RestoreFailed
            $r.Message = $reset.Note
        } elseif (-not $changed) {
            $r.Message = 'Exchange reported that nothing was modified; generate the script with --license-reset (turn off the Exchange plans, retry, restore the licences)'
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
$ResultCsv = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($ResultCsv)
# UTF-8 with BOM on both versions, so Excel shows non-ASCII names right ('UTF8' has no BOM on 7)
$CsvEncoding = 'UTF8'
if ($PSVersionTable.PSVersion.Major -ge 6) { $CsvEncoding = 'utf8BOM' }
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

$current = $null
$restoreOnly = $false
try {
    if ($Apply) { $mode = 'APPLY (irreversible changes)' } else { $mode = 'read-only (pass -Apply to make changes)' }
    Write-Host ('{0}: {1} user(s), mode {2}, licence fallback {3}' -f $GeneratedBy, $Identities.Count, $mode, $LicenseReset)
    Write-Host ('results (one row per user, appended as each finishes): {0}' -f $ResultCsv)
@@LICENSE_SETUP@@
    if (-not $restoreOnly) {
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
            $current = $identity
            $r = Invoke-OneUser -Identity $identity
            Add-Result $r
            $current = $null
            if ($r.Result -eq 'Cleared') {
                $upn = $r.UserPrincipalName
                if (-not $upn) { $upn = $r.Identity }
                Write-Host ('  next: retry the move, e.g. New-MoveRequest -Identity {0} -Remote -RemoteHostName <hybrid endpoint> -TargetDeliveryDomain <tenant>.mail.onmicrosoft.com -RemoteCredential (Get-Credential), or resume the migration batch that holds the user (Get-MigrationUser -Identity {0}; Start-MigrationBatch)' -f (ConvertTo-Literal $upn))
            }
        }
    }
} catch {
    $exitCode = 1
    Write-Error -Message ("stopped: $_") -ErrorAction Continue
} finally {
    if ($null -ne $current) {
        # Best effort: a second Ctrl+C or a closed window skips this; the restore file still has the licences.
        try {
            $row = New-Result -Identity $current
            $row.Result = 'Interrupted'
            $row.Message = 'the run stopped while this user was processed; run the script again (it finds a user left half-done in the restore file)'
            Add-Result $row
        } catch {
            Write-Warning "cannot write the row of the interrupted user: $_"
        }
    }
    if ($results.Count -gt 0) { Write-Host ('results: {0}' -f $ResultCsv) }
    $failed = @($results | Where-Object { $_.Failed }).Count
    $total = $Identities.Count
    if ($restoreOnly) { $total = $Journal.Count }
    Write-Host ('summary: {0} user(s), {1} failed, blocked or not cleared, {2} not processed' -f $total, $failed, [Math]::Max(0, $total - $results.Count))
    if ($transcript) { Stop-Transcript | Out-Null }
}
exit $exitCode
