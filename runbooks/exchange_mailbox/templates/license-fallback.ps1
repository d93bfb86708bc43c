# Fragments of clear-previous-mailbox.ps1 for the licence fallback (opsbook exchange
# clear-previous-mailbox --license-reset). Each region fills the marker of the same name
# with the text between '#region NAME' and '#endregion NAME' (without the last line end).

#region LICENSE_HELP

    Licence-reset fallback (enabled): when Exchange answers "The command completed
    successfully but no settings of '...' have been modified", the script uses Microsoft
    Graph PowerShell to save the user's exact licences (SkuId and DisabledPlans), removes
    them, waits (at most -LicenseWaitSeconds) until Exchange shows the user as a MailUser
    without licence, runs Set-User again and ALWAYS restores exactly the saved licences
    (in a finally block; the saved licences are also written to the log). Licences
    assigned through a group cannot be removed per user: the script reports them and
    leaves that user unchanged. Needs the Microsoft.Graph.Authentication,
    Microsoft.Graph.Users and Microsoft.Graph.Users.Actions modules (Set-MgUserLicense) and
    the Graph permission User.ReadWrite.All.

#endregion LICENSE_HELP

#region LICENSE_PARAM_HELP

.PARAMETER LicenseWaitSeconds
    How long to wait for Exchange to see a licence removal (default 900 seconds).

#endregion LICENSE_PARAM_HELP

#region EXTRA_PARAMS
,
    [ValidateRange(60, 7200)]
    [int]$LicenseWaitSeconds = 900
#endregion EXTRA_PARAMS

#region CONNECT_GRAPH
    if ($Apply) { Connect-Graph }

#endregion CONNECT_GRAPH

#region LICENSE_FUNCTIONS

function Connect-Graph {
    foreach ($name in @('Get-MgContext', 'Connect-MgGraph', 'Get-MgUser', 'Set-MgUserLicense')) {
        if (-not (Get-Command -Name $name -ErrorAction SilentlyContinue)) {
            throw ('{0} is not available: Install-Module Microsoft.Graph.Authentication, Microsoft.Graph.Users, Microsoft.Graph.Users.Actions -Scope CurrentUser' -f $name)
        }
    }
    if ($SkipConnect) {
        if (-not (Get-MgContext)) { throw 'not connected to Microsoft Graph: run Connect-MgGraph -Scopes User.ReadWrite.All first, or drop -SkipConnect' }
        return
    }
    $connect = @{ ErrorAction = 'Stop' }
    if ($AppId) {
        $connect.ClientId = $AppId
        $connect.CertificateThumbprint = $CertificateThumbprint
        $connect.TenantId = $Organization
    } else {
        $connect.Scopes = @('User.ReadWrite.All')
    }
    if ((Get-Command -Name Connect-MgGraph).Parameters.ContainsKey('NoWelcome')) { $connect.NoWelcome = $true }
    Connect-MgGraph @connect | Out-Null
}

function Get-LicenseState {
    # The user's licences from Graph: SkuId + DisabledPlans, and the group-assigned ones.
    param([string]$GraphId)
    $mg = Get-MgUser -UserId $GraphId -Property 'Id,UserPrincipalName,AssignedLicenses,LicenseAssignmentStates' -ErrorAction Stop
    $saved = @(foreach ($l in @($mg.AssignedLicenses)) {
        @{ SkuId = [string]$l.SkuId; DisabledPlans = @(foreach ($p in @($l.DisabledPlans)) { [string]$p }) }
    })
    $byGroup = @(foreach ($s in @($mg.LicenseAssignmentStates)) {
        if ($s.AssignedByGroup) { '{0} (group {1})' -f $s.SkuId, $s.AssignedByGroup }
    })
    return @{ Id = [string]$mg.Id; Saved = $saved; ByGroup = $byGroup }
}

function Format-Licenses {
    param($Saved)
    return (ConvertTo-Json -InputObject @($Saved) -Compress -Depth 4)
}

function Test-SameLicenses {
    param($Expected, $Actual)
    $e = @(foreach ($l in @($Expected)) { '{0}:{1}' -f $l.SkuId, ((@($l.DisabledPlans) | Sort-Object) -join ',') }) | Sort-Object
    $a = @(foreach ($l in @($Actual)) { '{0}:{1}' -f $l.SkuId, ((@($l.DisabledPlans) | Sort-Object) -join ',') }) | Sort-Object
    return ((@($e) -join ';') -eq (@($a) -join ';'))
}

function Restore-Licenses {
    # Add back exactly the saved licences (same DisabledPlans); retried, then verified.
    param([string]$GraphId, $Saved)
    $add = @(foreach ($l in @($Saved)) { @{ SkuId = $l.SkuId; DisabledPlans = @($l.DisabledPlans) } })
    $lastError = $null
    for ($attempt = 1; $attempt -le 5; $attempt++) {
        try {
            Set-MgUserLicense -UserId $GraphId -AddLicenses $add -RemoveLicenses @() -ErrorAction Stop | Out-Null
            $now = Get-LicenseState -GraphId $GraphId
            if (Test-SameLicenses $Saved $now.Saved) { return $null }
            $lastError = 'licences after restore differ: ' + (Format-Licenses $now.Saved)
        } catch {
            $lastError = "$_"
        }
        if ($attempt -lt 5) { Start-Sleep -Seconds (10 * $attempt) }
    }
    return $lastError
}

function Invoke-LicenseReset {
    # Remove the licences, wait for Exchange, Set-User again, restore the licences (finally).
    # Returns @{ Changed = <bool>; Failed = <bool>; RestoreFailed = <bool>; Note = <text> }.
    param($User, [string]$Id)
    $graphId = Get-Prop $User 'ExternalDirectoryObjectId'
    if (-not $graphId) { $graphId = Get-Prop $User 'UserPrincipalName' }
    $state = Get-LicenseState -GraphId $graphId
    if ($state.ByGroup.Count -gt 0) {
        return @{ Changed = $false; Failed = $true; RestoreFailed = $false; Note = ('licence(s) assigned through a group cannot be removed per user: {0}; remove the user from the licensing group (or exclude it) for the fix, then run again' -f ($state.ByGroup -join ', ')) }
    }
    if ($state.Saved.Count -eq 0) {
        return @{ Changed = $false; Failed = $true; RestoreFailed = $false; Note = 'the user has no licence, so the licence-reset fallback cannot help' }
    }
    $savedJson = Format-Licenses $state.Saved
    Write-Host ("  saved licences of {0} ({1}): {2}" -f $Id, $state.Id, $savedJson)
    $result = @{ Changed = $false; Failed = $true; RestoreFailed = $false; Note = '' }
    $removeAttempted = $false
    try {
        $removeAttempted = $true
        Set-MgUserLicense -UserId $state.Id -AddLicenses @() -RemoveLicenses @($state.Saved | ForEach-Object { $_.SkuId }) -ErrorAction Stop | Out-Null
        Write-Host ('  licences removed; waiting up to {0} s for Exchange to show the user as MailUser' -f $LicenseWaitSeconds)
        $deadline = (Get-Date).AddSeconds($LicenseWaitSeconds)
        $ready = $false
        while (-not $ready -and (Get-Date) -lt $deadline) {
            Start-Sleep -Seconds 15
            $u = Get-OneUser -Identity $Id
            $ready = ((Get-Prop $u 'RecipientTypeDetails') -eq 'MailUser') -and ((Get-Prop $u 'SKUAssigned') -ne 'True')
        }
        if (-not $ready) {
            $result.Note = 'Exchange did not show the licence removal in time; Set-User not retried'
        } elseif (Invoke-Clear -Id $Id) {
            $result.Changed = $true; $result.Failed = $false; $result.Note = 'cleared after the licence reset'
        } else {
            $result.Note = 'Exchange again reported that nothing was modified, even without licence'
        }
    } catch {
        $result.Note = "licence reset failed: $_"
    } finally {
        if ($removeAttempted) {
            $restoreError = Restore-Licenses -GraphId $state.Id -Saved $state.Saved
            if ($restoreError) {
                Write-Warning ("LICENCES NOT RESTORED for {0}: {1}. Restore by hand: Set-MgUserLicense -UserId {2} -RemoveLicenses @() -AddLicenses <the saved list> ; saved: {3}" -f $Id, $restoreError, (ConvertTo-Literal $state.Id), $savedJson)
                $result.Failed = $true
                $result.RestoreFailed = $true
                $result.Note = ($result.Note + '; LICENCES NOT RESTORED: ' + $restoreError).TrimStart('; ')
            } else {
                Write-Host '  licences restored exactly as saved'
            }
        }
    }
    return $result
}

#endregion LICENSE_FUNCTIONS
